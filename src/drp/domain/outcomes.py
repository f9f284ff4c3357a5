"""What an incident flow hands back: typed outcomes, one per flow, with the fields every flow
shares (:class:`Outcome`) and what is each flow's own. The drill reads its subflows' outcomes
through these types, the command line prints them, ``--json`` gets :meth:`Outcome.as_dict`.

Plain data (no I/O): the ledger holds the same values as ``<flow>.completed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

JsonRow = Mapping[str, Any]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Outcome:
    """What every incident flow reports: which incident, how it ended and why, which attempt,
    the steps it recorded, and where the evidence is."""

    flow: str
    incident_id: str
    status: str
    reason: str = ""
    mode: str = ""
    attempt: int = 0
    ledger: str = ""
    steps: tuple[JsonRow, ...] = ()
    ledger_head: str | None = None
    archive: Any = None
    report: str | None = None
    documents: Any = None

    OK_STATUSES: ClassVar[tuple[str, ...]] = ()

    @property
    def ok(self) -> bool:
        """Did the flow reach what it is for (or had it already)?"""
        return self.status in self.OK_STATUSES or self.status == "already_completed"

    def with_evidence(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def closing_summary(self) -> dict[str, Any]:
        """What the ledger's closing record says about the run."""
        return {"status": self.status}

    def as_dict(self) -> dict[str, Any]:
        return dict(_plain(self))


@dataclass(frozen=True, init=False)
class AlreadyCompleted(Outcome):
    """A re-run of a flow that was completed: nothing was done."""

    def __init__(self, flow: str, incident_id: str, ledger: str, reason: str) -> None:
        super().__init__(
            flow=flow,
            incident_id=incident_id,
            status="already_completed",
            reason=reason,
            ledger=ledger,
        )


@dataclass(frozen=True)
class PairOutcome:
    """One database pair of a failover: fenced how, promoted or not, the data at promotion."""

    pair: str
    services: tuple[str, ...]
    fence_outcome: str | None = None
    promoted: bool = False
    rpo: JsonRow | None = None


@dataclass(frozen=True)
class ServiceOutcome:
    """One service of an incident: verified, failed or never started, against its own RTO."""

    service: str
    status: str  # verified | failed | blocked | pending
    reason: str = ""
    rto_budget_s: float = 0.0
    achieved_rto_s: float | None = None
    rto_verdict: str = ""
    pair: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


@dataclass(frozen=True)
class FailoverOutcome(Outcome):
    declared_at: str | None = None
    achieved_rto_s: float | None = None
    rto_budget_s: float | None = None
    rto_verdict: str = ""
    rpo: JsonRow | None = None  # the first pair's (the whole of it for a one-pair runbook)
    fence_outcome: str | None = None
    services: tuple[ServiceOutcome, ...] = ()
    pairs: tuple[PairOutcome, ...] = ()
    selection: JsonRow | None = None

    OK_STATUSES: ClassVar[tuple[str, ...]] = ("verified",)

    def closing_summary(self) -> dict[str, Any]:
        return {"status": self.status, "achieved_rto_s": self.achieved_rto_s}


@dataclass(frozen=True)
class ResyncOutcome(Outcome):
    method: str | None = None  # the first pair's; every pair's in ``pairs``
    decision_reason: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    drifts: tuple[JsonRow, ...] = ()
    pairs: tuple[JsonRow, ...] = ()
    streaming: bool | None = None

    OK_STATUSES: ClassVar[tuple[str, ...]] = ("streaming",)

    def closing_summary(self) -> dict[str, Any]:
        return {"status": self.status, "method": self.method}


@dataclass(frozen=True)
class FailbackOutcome(Outcome):
    approved_at: str | None = None
    achieved_rto_s: float | None = None
    rto_budget_s: float | None = None
    rto_verdict: str = ""
    final_lsn: str | None = None
    replay_lsn: str | None = None
    zero_loss: str | None = None
    rejoin_method: str | None = None
    pairs: tuple[JsonRow, ...] = ()

    OK_STATUSES: ClassVar[tuple[str, ...]] = ("verified",)

    def closing_summary(self) -> dict[str, Any]:
        return {"status": self.status, "achieved_rto_s": self.achieved_rto_s}


@dataclass(frozen=True)
class DrillOutcome(Outcome):
    """A drill's measurements (Pasal 15). ``steps`` holds every step of its flows (failover,
    resync, failback) with its budget; ``phases`` the drill's own."""

    verdict: str = ""
    scenario: str = ""
    fault: str = ""
    article: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    stopped_at: str | None = None
    phases: tuple[JsonRow, ...] = ()  # the drill's own steps, with each phase's RTO
    gates: tuple[JsonRow, ...] = ()
    rpo: JsonRow | None = None
    checksums: JsonRow | None = None
    findings: tuple[JsonRow, ...] = ()
    handled: tuple[str, ...] = ()
    ledgers: JsonRow = field(default_factory=dict)
    services: tuple[ServiceOutcome, ...] = ()

    OK_STATUSES: ClassVar[tuple[str, ...]] = ("passed",)

    def closing_summary(self) -> dict[str, Any]:
        return {"status": self.status, "verdict": self.verdict}
