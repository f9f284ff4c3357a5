"""DR drills (simulasi dan uji coba, Pasal 15): the scenarios, and the evaluation of one drill.

A drill runs the whole cycle — fault, failover, repair, resync, failback, checks — and measures
what Pasal 15 asks about: the response. Per phase the achieved recovery time against its budget;
per step its duration against its budget; per human gate how long the people took to answer;
the RPO achieved; what failed and how it was handled. :func:`evaluate` turns those measurements
into findings, each with a sentence that says why, and a verdict; the drill report (Laporan
simulasi dan uji coba) is written from them.

Pure: no I/O. The flow (``flows/drill.py``) measures, this module judges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RTO_LIMIT_S = 3600.0
"""Pasal 3(1)(b): recovery under one hour, whatever a runbook says."""


@dataclass(frozen=True)
class Scenario:
    """A fault to rehearse, and how the failover must be driven through it."""

    name: str
    fault: str  # the lab fault that reproduces it (``drp lab break``)
    description: str
    article: str  # what the regulation says about it
    category: str | None  # declared category; None: classified from the facility signals
    needs_isolation_confirmation: bool  # the DC cannot be reached: a person confirms it is down
    old_primary_may_return_writable: bool  # after repair the DC may be a second writable primary
    fault_options: Mapping[str, float] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="dc-db-crash",
            fault="dc-db-crash",
            description="the DC database crashes (the July 2021 CEISA case)",
            article="Pasal 6: a very critical service down nationally (partial, national)",
            category="parsial_nasional",
            needs_isolation_confirmation=False,
            old_primary_may_return_writable=False,
        ),
        Scenario(
            name="dc-power-loss",
            fault="dc-power-loss",
            description="the DC loses power: database, application and uplink gone",
            article="Pasal 7(1)(a): no power supply to the DC (catastrophic)",
            category=None,
            needs_isolation_confirmation=True,
            old_primary_may_return_writable=False,
        ),
        Scenario(
            name="dc-heat",
            fault="dc-heat",
            description="60% of the DC server area reaches 34 °C",
            article="Pasal 7(1)(b): 50% or more of the DC server area above 30 °C (catastrophic)",
            category=None,
            needs_isolation_confirmation=False,
            old_primary_may_return_writable=False,
            fault_options={"percent": 60.0, "celsius": 34.0},
        ),
        Scenario(
            name="national-network-loss",
            fault="national-network-loss",
            description="national network connectivity lost: the DC runs but nobody reaches it",
            article="Pasal 7(1)(c): network connectivity lost nationally (catastrophic)",
            category=None,
            needs_isolation_confirmation=True,
            old_primary_may_return_writable=True,
        ),
    )
}


class UnknownScenario(ValueError):
    pass


def scenario(name: str) -> Scenario:
    """The scenario called ``name``, or an error that lists the ones there are."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenario(
            f"unknown drill scenario {name!r}: choose one of {', '.join(SCENARIOS)}"
        ) from None


# -- measurements ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseResult:
    """One phase of the cycle (failover, resync, failback, ...) as measured."""

    phase: str
    status: str  # done | already_done | failed | skipped
    duration_s: float
    achieved_rto_s: float | None = None  # the flow's own RTO clock, where it has one
    rto_budget_s: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class GateResponse:
    """How long people took to answer one human gate (approval, isolation confirmation)."""

    flow: str
    gate: str  # approval | isolation
    answered_by: str
    channel: str  # prefect-ui | slack | cli, deployment-parameter (answered up front)
    waited_s: float


@dataclass(frozen=True)
class StepResult:
    flow: str
    step_id: str
    name: str
    status: str
    duration_s: float
    budget_s: float


@dataclass(frozen=True)
class Finding:
    """One judgement of the evaluation. ``ok`` False is a finding to act on; ``blocking`` says
    whether it fails the drill (an objective missed) or only improves the plan (a step budget
    overrun: the plan's estimate was wrong, the recovery still met its objective)."""

    subject: str
    ok: bool
    reason: str
    blocking: bool = True


@dataclass(frozen=True)
class Evaluation:
    passed: bool
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> tuple[Finding, ...]:
        """Findings that failed the drill."""
        return tuple(f for f in self.findings if not f.ok and f.blocking)

    @property
    def improvements(self) -> tuple[Finding, ...]:
        """Findings to feed back into the plan (Pasal 15) that did not fail the drill."""
        return tuple(f for f in self.findings if not f.ok and not f.blocking)


def evaluate(
    *,
    phases: Sequence[PhaseResult],
    steps: Iterable[StepResult],
    gates: Iterable[GateResponse],
    rpo_lost_bytes: int | None,
    rpo_reason: str,
    rpo_budget_s: int,
    topology_restored: bool,
    topology_reason: str,
    data_equal: bool | None,
    data_reason: str,
    handled: Iterable[str] = (),
) -> Evaluation:
    """Judge a drill: every phase done within its budget and the one-hour limit; steps over
    budget named; gates measured; no data lost; the topology back to DC primary / DRC standby
    with equal data at both sites. ``handled`` lists what went wrong and how it was handled."""
    findings: list[Finding] = []
    for p in phases:
        if p.status not in ("done", "already_done"):
            findings.append(Finding(p.phase, False, f"{p.phase} did not complete: {p.reason}"))
            continue
        if p.achieved_rto_s is None:
            findings.append(Finding(p.phase, True, f"{p.phase} done in {p.duration_s:.1f} s"))
            continue
        budget = min(p.rto_budget_s or RTO_LIMIT_S, RTO_LIMIT_S)
        within = p.achieved_rto_s <= budget
        findings.append(
            Finding(
                p.phase,
                within,
                f"{p.phase}: recovered in {p.achieved_rto_s:.1f} s "
                f"{'within' if within else 'OVER'} the {budget:.0f} s objective",
            )
        )
    for s in steps:
        if s.status in ("done", "already_done") and s.duration_s > s.budget_s:
            findings.append(
                Finding(
                    f"{s.flow}/{s.step_id}",
                    False,
                    f"{s.flow}: step '{s.name}' took {s.duration_s:.1f} s against a budget of "
                    f"{s.budget_s:.0f} s (revise the budget or the step)",
                    blocking=False,
                )
            )
    for g in gates:
        how = "answered up front" if g.channel == "cli" else f"answered in {g.channel}"
        findings.append(
            Finding(
                f"{g.flow}/{g.gate}",
                True,
                f"{g.flow} {g.gate}: {g.answered_by}, {how}, after {g.waited_s:.1f} s",
            )
        )
    # Unknown loss (the DC could not report its last WAL position) is not a failure in itself:
    # the data check below compares what clients were told was committed with both sites.
    lost_ok = rpo_lost_bytes is None or rpo_lost_bytes == 0 or rpo_budget_s > 0
    findings.append(Finding("rpo", lost_ok, f"RPO (objective {rpo_budget_s} s): {rpo_reason}"))
    findings.append(Finding("topology", topology_restored, topology_reason))
    if data_equal is not None:
        findings.append(Finding("data", data_equal, data_reason))
    for sentence in handled:
        findings.append(Finding("handled", True, sentence))
    return Evaluation(all(f.ok or not f.blocking for f in findings), tuple(findings))


def gates_from_records(
    flow: str, records: Iterable[tuple[str, Mapping[str, Any]]]
) -> list[GateResponse]:
    """The human gates of one flow's ledger (kind, data pairs): approvals and confirmations.

    An isolation confirmation given up front (``--confirm-dc-isolated``) shows only in the
    promotion gate's record; one answered in the UI has its own ``isolation.confirmed``."""
    records = list(records)
    out: list[GateResponse] = []
    asked_in_ui = any(kind == "isolation.confirmed" for kind, _ in records)
    for kind, data in records:
        if (
            kind == "promotion.gate"
            and not asked_in_ui
            and data.get("allowed")
            and data.get("isolation_confirmed_by")
            and "confirmed that it is down" in str(data.get("reason"))
        ):
            out.append(
                GateResponse(flow, "isolation", str(data["isolation_confirmed_by"]), "cli", 0.0)
            )
        if kind == "approval.granted":
            out.append(
                GateResponse(
                    flow,
                    "approval",
                    str(data.get("approver") or data.get("approved_by") or "?"),
                    str(data.get("channel") or "cli"),
                    float(data.get("waited_s") or 0.0),
                )
            )
        elif kind == "isolation.confirmed":
            out.append(
                GateResponse(
                    flow,
                    "isolation",
                    str(data.get("by") or "?"),
                    str(data.get("channel") or "prefect-ui"),
                    float(data.get("waited_s") or 0.0),
                )
            )
    return out
