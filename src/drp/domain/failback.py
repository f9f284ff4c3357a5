"""Rules of the planned failback (switchover) to the DC: when it may start and when it lost nothing.

A failback is planned, not a disaster: the DRC is the primary, the DC streams from it (after a
failover and ``drp resync``), and the switch back must lose no committed transaction. Zero data
loss is proven, not assumed: the DRC is stopped cleanly (its final checkpoint is the end of its
WAL) and the DC may only be promoted once it has replayed at least that position. Pure: the
caller observes, these functions decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from drp.domain.failover import Decision, lsn_to_int


@dataclass(frozen=True)
class SitesObservation:
    """Both databases as clients reach them (None: unreachable)."""

    drc_in_recovery: bool | None
    dc_in_recovery: bool | None
    dc_streaming: bool | None = None


def check_precondition(seen: SitesObservation) -> Decision:
    """A failback starts only from "DRC primary, DC streaming from it": anything else would
    either promote a DC that lacks the DRC's writes or demote the only primary there is."""
    if seen.drc_in_recovery is None:
        return Decision(False, "the DRC database cannot be reached: there is nothing to fail back")
    if seen.drc_in_recovery:
        return Decision(
            False,
            "the DRC database is not the primary (it is in recovery): a failback starts after a "
            "failover, from the DRC as primary",
        )
    if seen.dc_in_recovery is None:
        return Decision(False, "the DC database cannot be reached: bring the DC back first")
    if not seen.dc_in_recovery:
        return Decision(
            False,
            "the DC database is a writable primary beside the DRC primary: fence it and run "
            "`drp resync` before a failback",
        )
    if not seen.dc_streaming:
        return Decision(
            False,
            "the DC database is a standby but does not stream from the DRC: run `drp resync` "
            "first (a failback needs the DC to hold every DRC write)",
        )
    return Decision(True, "the DRC is the primary and the DC streams from it")


def already_failed_back(seen: SitesObservation) -> bool:
    """The end state: the DC is the primary and the DRC a standby (streaming or not)."""
    return seen.dc_in_recovery is False and seen.drc_in_recovery is True


@dataclass(frozen=True)
class ZeroLossProof:
    """The DRC's last WAL position against what the DC has replayed."""

    final_lsn: str
    replay_lsn: str | None

    @property
    def missing_bytes(self) -> int | None:
        if self.replay_lsn is None:
            return None
        return max(lsn_to_int(self.final_lsn) - lsn_to_int(self.replay_lsn), 0)

    @property
    def proven(self) -> bool:
        return self.missing_bytes == 0

    @property
    def reason(self) -> str:
        if self.replay_lsn is None:
            return f"the DC reports no replay position yet (DRC final LSN {self.final_lsn})"
        if self.proven:
            return (
                f"zero data loss: the DC replayed up to {self.replay_lsn}, at or past the DRC's "
                f"final checkpoint {self.final_lsn}"
            )
        return (
            f"the DC replayed up to {self.replay_lsn}, {self.missing_bytes} byte(s) short of the "
            f"DRC's final checkpoint {self.final_lsn}: promoting it now would lose data"
        )


def prove_zero_loss(final_lsn: str, replay_lsn: str | None) -> ZeroLossProof:
    """Compare positions; the caller polls until ``proven`` or its deadline."""
    lsn_to_int(final_lsn)  # a malformed final LSN is an error, not "not yet"
    return ZeroLossProof(final_lsn, replay_lsn or None)
