"""Resync after recovery (Pasal 11): how to rebuild the old DC primary as a standby of the DRC.

Pure rules over plain observations, like the failover's: the caller looks (pg_controldata on the
old primary, the timeline history on the new one), this module decides and says why in one
sentence, the caller acts. Nothing here does I/O.

The choice, cheapest first:

* ``already``: the old primary already streams from the new one — nothing to do;
* ``standby``: it stopped cleanly before the new primary's timeline forked off, so it holds no
  WAL the new primary lacks — configuring it as a standby is enough (it follows the timeline
  switch by itself);
* ``rewind``: its data directory is intact but it may have written past the fork (it crashed,
  or kept writing after the switchpoint) — ``pg_rewind`` takes back the diverged pages;
* ``basebackup``: its data directory is missing or unusable, its history is unrelated to the
  new primary's, rewinding is impossible (no checksums, no ``wal_log_hints``) or failed, or the
  operator asked for it — a fresh copy (the old directory is moved aside, never deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drp.domain.failover import lsn_to_int


class RejoinMethod(StrEnum):
    ALREADY = "already"
    STANDBY = "standby"
    REWIND = "rewind"
    BASEBACKUP = "basebackup"


CLEAN_SHUTDOWN_STATES = ("shut down", "shut down in recovery")
"""pg_controldata's cluster states after which the checkpoint location is the end of its WAL."""


@dataclass(frozen=True)
class OldPrimaryObservation:
    """What the old primary's host shows (pg_controldata and the server itself)."""

    data_dir_present: bool
    control_readable: bool = True  # pg_controldata could read global/pg_control
    cluster_state: str = ""
    timeline: int | None = None  # Latest checkpoint's TimeLineID
    checkpoint_lsn: str | None = None  # Latest checkpoint location
    redo_lsn: str | None = None  # Latest checkpoint's REDO location
    checksums: bool = False  # Data page checksum version > 0
    wal_log_hints: bool = False
    running: bool = False
    in_recovery: bool | None = None  # None when not running
    streaming_from_new_primary: bool = False


@dataclass(frozen=True)
class TimelineFork:
    """One line of a timeline history file: ``timeline`` ended at ``switchpoint``."""

    timeline: int
    switchpoint: str
    reason: str = ""


@dataclass(frozen=True)
class NewPrimaryObservation:
    """What the new primary (the promoted DRC) shows over SQL."""

    reachable: bool
    in_recovery: bool | None = None
    timeline: int | None = None
    history: tuple[TimelineFork, ...] = ()


@dataclass(frozen=True)
class RejoinDecision:
    """What to do (or a refusal: ``allowed`` False), with the sentence that explains it."""

    allowed: bool
    method: RejoinMethod | None
    reason: str


def parse_timeline_history(text: str) -> tuple[TimelineFork, ...]:
    """Parse a ``0000000N.history`` file: ``<parent tli>\\t<switchpoint>\\t<reason>`` lines."""
    forks: list[TimelineFork] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        forks.append(TimelineFork(int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
    return tuple(forks)


def decide_rejoin(
    old: OldPrimaryObservation,
    new: NewPrimaryObservation,
    *,
    force_basebackup: bool = False,
    rewind_failed: bool = False,
) -> RejoinDecision:
    """Decide how the old primary rejoins as a standby of the new primary."""
    if not new.reachable:
        return RejoinDecision(
            False, None, "the new primary (DRC) cannot be reached: nothing to resync from"
        )
    if new.in_recovery:
        return RejoinDecision(
            False,
            None,
            "the DRC database is not a primary (it is still in recovery): there was no "
            "failover to resync from",
        )
    if old.running and old.in_recovery is False:
        return RejoinDecision(
            False,
            None,
            "the old DC primary is running as a writable primary beside the promoted DRC: "
            "never two primaries — fence it first (playbooks/fence_primary.yml), then resync",
        )
    if old.running and old.in_recovery and old.streaming_from_new_primary:
        return RejoinDecision(
            True, RejoinMethod.ALREADY, "the old primary already streams from the DRC as a standby"
        )
    if force_basebackup:
        return RejoinDecision(
            True, RejoinMethod.BASEBACKUP, "a base backup was asked for by the operator"
        )
    if rewind_failed:
        return RejoinDecision(
            True,
            RejoinMethod.BASEBACKUP,
            "pg_rewind failed on the old data directory: a fresh base backup replaces it "
            "(the old directory is kept aside)",
        )
    if not old.data_dir_present:
        return RejoinDecision(
            True,
            RejoinMethod.BASEBACKUP,
            "the old primary has no data directory: only a base backup can rebuild it",
        )
    if not old.control_readable or old.timeline is None or old.checkpoint_lsn is None:
        return RejoinDecision(
            True,
            RejoinMethod.BASEBACKUP,
            "the old data directory is unusable (its control file cannot be read): a base "
            "backup replaces it (the old directory is kept aside)",
        )
    if not (old.checksums or old.wal_log_hints):
        return RejoinDecision(
            True,
            RejoinMethod.BASEBACKUP,
            "pg_rewind needs data checksums or wal_log_hints, and the old primary has neither: "
            "a base backup is the only way",
        )
    new_tli = new.timeline or 0
    if old.timeline == new_tli:
        return RejoinDecision(
            True,
            RejoinMethod.REWIND,
            f"both sides are on timeline {new_tli} (no promotion recorded between them): "
            "pg_rewind checks for divergence and aligns them if needed",
        )
    fork = next((f for f in new.history if f.timeline == old.timeline), None)
    if fork is None or old.timeline > new_tli:
        return RejoinDecision(
            True,
            RejoinMethod.BASEBACKUP,
            f"the old primary's timeline {old.timeline} is not in the new primary's history "
            f"(timeline {new_tli}): their histories are unrelated, so pg_rewind cannot be "
            "trusted; a base backup rebuilds it",
        )
    clean = old.cluster_state in CLEAN_SHUTDOWN_STATES
    before_fork = lsn_to_int(old.checkpoint_lsn) < lsn_to_int(fork.switchpoint)
    if clean and before_fork:
        return RejoinDecision(
            True,
            RejoinMethod.STANDBY,
            f"the old primary shut down cleanly at {old.checkpoint_lsn}, before timeline "
            f"{old.timeline} forked at {fork.switchpoint}: it holds nothing the DRC lacks, so "
            "no rewind is needed — it is configured as a standby and follows the timeline switch",
        )
    why = (
        f"its last checkpoint {old.checkpoint_lsn} is at or past the fork {fork.switchpoint}"
        if not before_fork
        else f"it was not shut down cleanly ({old.cluster_state or 'unknown state'}), so WAL "
        "past its last checkpoint may have gone beyond the fork"
    )
    return RejoinDecision(
        True,
        RejoinMethod.REWIND,
        f"the old data directory is intact but may have diverged from timeline "
        f"{old.timeline + 1} ({why}): pg_rewind takes back the diverged pages",
    )
