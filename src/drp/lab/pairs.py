"""Extra database pairs for the lab: more DC primaries, each with a streaming standby at the
DRC, so that the readiness check can be exercised (and measured) against many pairs — a real
DRP such as CEISA's holds several databases, each replicated from the DC to the DRC.

An extra pair is just PostgreSQL: a primary (``pairNN-dc``) with a replication slot and a
standby (``pairNN-drc``) built from it by ``pg_basebackup``, on ports ``base+100`` onwards.
They carry no application and sit outside the uplink and the front door: failover drills stay
on the main pair.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from drp.errors import LabError
from drp.lab.config import MAX_EXTRA_PAIRS, extra_pair_names
from drp.lab.pgcluster import Cluster

SLOT = "drc_standby"


def build_and_start(
    cluster: Callable[[str], Cluster], count: int, progress: Callable[[str], None]
) -> None:
    """Build what is missing and start what is stopped, for pairs 1..count (in parallel)."""
    if not 0 <= count <= MAX_EXTRA_PAIRS:
        raise LabError(f"--extra-pairs {count}: choose 0..{MAX_EXTRA_PAIRS}")
    if count == 0:
        return
    progress(f"extra database pairs: {count} (primary + streaming standby each)")

    def one(index: int) -> None:
        dc_name, drc_name = extra_pair_names(index)
        dc, drc = cluster(dc_name), cluster(drc_name)
        if not dc.exists:
            dc.initdb()
        if not dc.running():
            dc.start()
        if not drc.exists:
            dc.ensure_slot(SLOT)
            drc.basebackup_from(dc.port, slot=SLOT)
        if not drc.running():
            drc.start()

    with ThreadPoolExecutor(max_workers=min(8, count), thread_name_prefix="drp-pair") as pool:
        for future in [pool.submit(one, i) for i in range(1, count + 1)]:
            future.result()


def stop_all(cluster: Callable[[str], Cluster], count: int, keep: int = 0) -> list[str]:
    """Stop the servers of pairs keep+1..count; return the names stopped."""
    stopped: list[str] = []
    for index in range(keep + 1, count + 1):
        for name in extra_pair_names(index):
            c = cluster(name)
            if c.exists and c.stop(mode="fast"):
                stopped.append(name)
    return stopped
