"""The failover's decisions, pure: who may approve, whether the DRC can take over, what to do
at each step given what was observed, and whether promotion may go ahead.

Each function takes plain observations (gathered by adapters) and returns a decision with a
``reason`` sentence for the ledger. The flow applies them; nothing here touches a host.
Safety rules encoded here: never a promotion without a fence or a recorded confirmation that
the DC is down or isolated; a real failover needs two people.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    REAL = "real"
    DRILL = "drill"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def check_approval(
    *, mode: Mode, declared_by: str, approver: str, confirmed: bool, two_person_rule: bool = True
) -> Decision:
    """The human gate before anything changes.

    A real failover always needs an approver other than the declarer (two-person rule), whatever
    the runbook says. A drill may be self-approved unless the runbook's ``two_person_rule`` asks
    for two people in drills too.
    """
    if not approver.strip():
        return Decision(False, "no approver named: the approval must say who approves")
    if not confirmed:
        return Decision(False, f"{approver} did not confirm the failover (confirmation unticked)")
    if not _same_person(approver, declared_by):
        return Decision(
            True, f"approved by {approver}, a second person (declared by {declared_by})"
        )
    if mode is Mode.REAL:
        return Decision(
            False,
            f"{approver} declared this disaster and cannot also approve a real failover "
            "(two-person rule): a second person must approve",
        )
    if two_person_rule:
        return Decision(
            False, f"{approver} declared this drill; the runbook asks for two people in drills too"
        )
    return Decision(True, f"drill: self-approval by {approver} is allowed by the runbook")


@dataclass(frozen=True)
class StandbyObservation:
    """What pre-flight saw at the DRC database."""

    reachable: bool
    in_recovery: bool | None = None
    streaming: bool | None = None
    lag_bytes: int | None = None
    replay_delay_s: float | None = None
    replay_paused: bool | None = None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    passed: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def reason(self) -> str:
        if self.ok:
            return "pre-flight passed: " + "; ".join(self.passed)
        return "pre-flight failed: " + "; ".join(self.failures)


def judge_preflight(
    standby: StandbyObservation,
    *,
    primary_reachable: bool,
    max_lag_bytes: int,
    syntax_problems: tuple[str, ...] = (),
    playbook_failures: tuple[str, ...] = (),
) -> Verdict:
    """Can the DRC take over now? Every check is listed, passed or failed.

    The replay backlog (WAL received but not yet replayed) is not data loss — promotion replays
    everything received before the DRC accepts writes — but it delays the recovery, so it is
    judged against ``max_lag_bytes``, a recovery-time limit. (A crashed primary can leave a torn
    record at the end of what it sent, which can never be replayed: a limit of 0 would refuse
    every crash.) Data loss is measured after the fence, from the DC's final WAL position. When
    the DC is down, the standby cannot be streaming: that is expected and not a failure — what
    it received is what can be recovered.
    """
    passed: list[str] = []
    failures: list[str] = []
    if not standby.reachable:
        failures.append("the DRC database cannot be reached")
        return Verdict(False, tuple(passed), tuple(failures + list(syntax_problems)))
    passed.append("the DRC database answers")
    if standby.in_recovery:
        passed.append("it is a standby (in recovery)")
    else:
        passed.append("it is already a primary (an earlier attempt promoted it)")
    if standby.in_recovery:
        if standby.streaming:
            passed.append("it is streaming from the DC")
        elif primary_reachable:
            failures.append("it is not streaming although the DC primary answers")
        else:
            passed.append("it is not streaming: expected, the DC primary is down or unreachable")
        if standby.replay_paused:
            failures.append("WAL replay is paused at the standby (resume it: pg_wal_replay_resume)")
        lag = standby.lag_bytes or 0
        if lag > max_lag_bytes:
            failures.append(
                f"replay backlog {lag} bytes exceeds the {max_lag_bytes}-byte limit (received "
                "WAL still to replay: it would delay the recovery)"
            )
        else:
            passed.append(f"replay backlog {lag} bytes within {max_lag_bytes}")
    if syntax_problems:
        failures.extend(f"playbook syntax: {p}" for p in syntax_problems)
    else:
        passed.append("every playbook passes ansible-playbook --syntax-check")
    failures.extend(playbook_failures)
    return Verdict(not failures, tuple(passed), tuple(failures))


class FenceOutcome(StrEnum):
    FENCED = "fenced"  # stopped (or read-only) and proven to refuse writes
    ALREADY_FENCED = "already_fenced"
    UNREACHABLE = "unreachable"  # the DC cannot be reached: no proof either way
    FAILED = "failed"  # reached, but not proven fenced


def may_promote(fence: FenceOutcome, isolation_confirmed_by: str | None) -> Decision:
    """Never a promotion without a fence or an explicit, recorded confirmation."""
    if fence in (FenceOutcome.FENCED, FenceOutcome.ALREADY_FENCED):
        return Decision(True, "the DC primary is fenced and proven to refuse writes")
    if fence is FenceOutcome.UNREACHABLE:
        if isolation_confirmed_by and isolation_confirmed_by.strip():
            return Decision(
                True,
                f"the DC cannot be reached; {isolation_confirmed_by} confirmed that it is down "
                "or isolated",
            )
        return Decision(
            False,
            "the DC cannot be reached and nobody confirmed that it is down or isolated: "
            "promotion could make two writable primaries (confirm with --confirm-dc-isolated NAME "
            "after checking the DC by other means)",
        )
    return Decision(False, "fencing failed: the DC primary may still accept writes; do not promote")


@dataclass(frozen=True)
class RecoveryPoint:
    """The achieved RPO: what the DRC had when it was promoted."""

    receive_lsn: str | None
    replay_lsn: str | None
    last_replay_ts: str | None
    primary_last_lsn: str | None = None
    lost_bytes: int | None = None

    @property
    def reason(self) -> str:
        last = (
            f" (last replayed transaction at {self.last_replay_ts})" if self.last_replay_ts else ""
        )
        if self.lost_bytes is None:
            return (
                f"the DRC replayed WAL up to {self.replay_lsn}{last}; the DC's final WAL position "
                "is unknown (it was not reported by the fence), so loss cannot be measured"
            )
        if self.lost_bytes == 0:
            return (
                f"no data lost: the DRC replayed WAL up to {self.replay_lsn}, past the DC's final "
                f"checkpoint at {self.primary_last_lsn}{last}"
            )
        return (
            f"{self.lost_bytes} bytes of the DC's WAL (up to {self.primary_last_lsn}) were not "
            f"replayed at the DRC (replayed up to {self.replay_lsn}){last}"
        )


def lsn_to_int(lsn: str) -> int:
    """``'0/3000148'`` -> byte position."""
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)
