"""The incident kernel: one way for every incident flow (failover, resync, failback, drill) to
open its incident, run and record its steps, and close it.

- :func:`open_incident` loads the runbook and the topology, reads what earlier attempts of the
  same incident recorded, and either says the flow was already completed (an
  :class:`AlreadyCompleted`, or a refusal when what it achieved no longer holds) or opens the
  flow's ledger for a new attempt and returns the :class:`IncidentRun` every step works with.
- :meth:`IncidentRun.step` runs one step as a Prefect task (its name in the UI, a hard timeout,
  no caching) and records it: start, end, duration against its budget, outcome, announcements;
  then honours ``DRP_CRASH_AFTER_STEP`` (the fault injection that proves re-runs).
- :func:`close_incident` records the outcome, closes the ledger, archives and witnesses it,
  publishes the summary report, the timeline and (for the incident's own run) the documents;
  :func:`stop_incident` records a stop the same way and raises.

An incident's evidence lives in ``<evidence>/<incident>/<flow>/``. A re-run of an interrupted
flow opens the same ledger (recording the re-opening) and reads back what earlier attempts did,
so that no step is done twice. What is a flow's own (an RTO clock, a fence, a rejoin) stays in
that flow's task module, in a small state object beside the run.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_run

from drp.domain.failover import Mode
from drp.domain.outcomes import AlreadyCompleted, Outcome
from drp.domain.rto import StepTiming
from drp.domain.runbook import Runbook
from drp.domain.runs import RerunAction, RerunVerdict, parse_mode
from drp.errors import DrpError, PreconditionFailed
from drp.ledger import Ledger, read_records
from drp.notify import Notifier, build_notifiers, notify_safely
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import incident as publishing
from drp.tasks.steps import (
    ALREADY_DONE,
    DONE,
    Announcer,
    StepOutcome,
    crash_if_asked,
    record_step,
)
from drp.topology import Topology, resolve


class IncidentStopped(DrpError):
    """An incident flow stopped on purpose (a gate refused, a step failed); the reason says
    which and what to do. ``outcome`` is what the flow had done."""

    def __init__(self, message: str, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


# -- the ledger as the incident's memory -------------------------------------------------------
@dataclass(frozen=True)
class PriorAttempts:
    """What earlier attempts of this flow for this incident recorded (from its ledger)."""

    attempts: int = 0
    declaration: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    completed_steps: tuple[str, ...] = ()
    closed: bool = False
    selection: dict[str, Any] | None = None


def read_prior(ledger_dir: Path) -> PriorAttempts:
    attempts = 0
    declaration = approval = selection = None
    completed: list[str] = []
    closed = False
    for _, rec in read_records(ledger_dir):
        if isinstance(rec, str):
            continue
        if rec.kind == "attempt.start":
            attempts += 1
        elif rec.kind == "incident.declared":
            declaration = rec.data
        elif rec.kind == "approval.granted":
            approval = rec.data
        elif rec.kind == "incident.selection":
            selection = rec.data
        elif rec.kind == "step.end" and rec.data.get("status") in (DONE, ALREADY_DONE):
            completed.append(rec.data["step_id"])
        elif rec.kind == "ledger.close":
            closed = True
    return PriorAttempts(attempts, declaration, approval, tuple(completed), closed, selection)


def prior_attempts(directory: Path) -> PriorAttempts | None:
    """What earlier attempts recorded, or None when this flow never ran for the incident."""
    return read_prior(directory) if (directory / "manifest.json").exists() else None


def new_incident_id(prefix: str = "inc", now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{prefix}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def ledger_dir(evidence_dir: Path, incident_id: str, flow: str) -> Path:
    return evidence_dir / incident_id / flow


def moved_services(run: IncidentRun) -> tuple[str, ...]:
    """The services the incident's failover moved (its recorded selection); every service of
    the runbook when there is no failover ledger (a resync or failback on its own)."""
    directory = ledger_dir(run.settings.evidence_dir, run.incident_id, "failover")
    prior = prior_attempts(directory)
    if prior and prior.selection and prior.selection.get("services"):
        return tuple(str(s) for s in prior.selection["services"])
    return tuple(s.id for s in run.runbook.services)


# -- the run -----------------------------------------------------------------------------------
@dataclass
class IncidentRun:
    """Everything one attempt of one incident flow works with: which incident, which runbook
    and sites, its ledger, who hears about it, and the steps recorded so far."""

    flow: str
    incident_id: str
    runbook: Runbook
    runbook_path: str
    topology: Topology
    settings: Settings
    ledger: Ledger
    mode: Mode
    attempt: int
    prior: PriorAttempts | None
    logger: logging.Logger | logging.LoggerAdapter
    notifiers: list[Notifier] = field(default_factory=list)
    flow_run_id: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def done_before(self) -> frozenset[str]:
        """The steps earlier attempts completed (done or already done)."""
        return frozenset(self.prior.completed_steps) if self.prior else frozenset()

    @property
    def evidence_dir(self) -> Path:
        return self.ledger.directory.parent.parent

    def outcome_fields(self, status: str, reason: str) -> dict[str, Any]:
        """The fields every outcome (:class:`drp.domain.outcomes.Outcome`) takes from its run:
        which flow and incident, how it ended, the mode, the attempt, the ledger, the steps."""
        return {
            "flow": self.flow,
            "incident_id": self.incident_id,
            "status": status,
            "reason": reason,
            "mode": self.mode.value,
            "attempt": self.attempt,
            "ledger": str(self.ledger.directory),
            "steps": tuple(self.results),
        }

    def notify(self, event: str, text: str, **data: Any) -> None:
        """Tell people (log, ledger, Slack when configured); never raises."""
        notify_safely(
            self.notifiers,
            self.ledger,
            event,
            text,
            incident_id=self.incident_id,
            flow=self.flow,
            **data,
        )

    def step(
        self,
        step_id: str,
        name: str,
        budget_s: float,
        timeout_s: float,
        body: Callable[[], StepOutcome],
        *,
        task_name: str | None = None,
        start_data: Mapping[str, Any] | None = None,
        result_data: Mapping[str, Any] | None = None,
        on_end: Callable[[StepOutcome, StepTiming], None] | None = None,
    ) -> StepOutcome:
        """Run one step as a Prefect task and record it (see
        :func:`drp.tasks.steps.record_step`); ``on_end`` sees the outcome and its timing (an
        RTO clock). Then die here when ``DRP_CRASH_AFTER_STEP`` names the step."""

        def _record() -> StepOutcome:
            outcome, timing = record_step(
                self.ledger,
                step_id=step_id,
                name=name,
                budget_s=budget_s,
                attempt=self.attempt,
                body=body,
                results=self.results,
                logger=self.logger,
                start_data=start_data,
                result_data=result_data,
                announcer=Announcer(self.notifiers, self.flow, self.incident_id),
            )
            if on_end is not None:
                on_end(outcome, timing)
            return outcome

        run_as_task = task(
            name=task_name or f"{self.flow}:{step_id}",
            # Prefect can only time a task out in the flow's own thread; in a service's thread
            # (drp.tasks.services) it would only warn, once per step. There the step's limit is
            # the adapters' own (Ansible's timeout kills the playbook, polls end at theirs).
            timeout_seconds=timeout_s
            if threading.current_thread() is threading.main_thread()
            else None,
            cache_policy=NO_CACHE,
            retries=0,
        )(_record)
        outcome = run_as_task()
        crash_if_asked(self.ledger, step_id)
        return outcome


Rerun = Callable[[PriorAttempts, Topology], RerunVerdict]


def _completed(prior: PriorAttempts, topology: Topology) -> RerunVerdict:
    del prior, topology
    return RerunVerdict(RerunAction.COMPLETED, "already completed; nothing to do")


def open_incident(
    flow: str,
    *,
    incident_id: str,
    runbook: str,
    mode: str | Mode,
    meta: Mapping[str, Any] | None = None,
    rerun: Rerun = _completed,
    refuse: Callable[[str], Exception] | None = None,
) -> IncidentRun | AlreadyCompleted:
    """Open ``flow``'s ledger of ``incident_id`` for a new attempt, or say it is done.

    ``rerun`` judges a re-run of a flow whose ledger is closed (default: already completed);
    a refusal raises ``refuse(reason)`` (default :class:`IncidentStopped`). ``meta`` goes into
    the ``attempt.start`` record (and into a new ledger's manifest)."""
    if not incident_id.strip():
        raise PreconditionFailed(f"incident_id is required: a {flow} belongs to an incident")
    run_mode = parse_mode(mode)
    logger = get_run_logger()
    settings = Settings()
    rb = load_runbook(runbook)
    topology = resolve(rb, Path(rb.inventory), settings)
    directory = ledger_dir(settings.evidence_dir, incident_id, flow)
    prior = prior_attempts(directory)
    if prior and prior.closed:
        verdict = rerun(prior, topology)
        if verdict.action is RerunAction.REFUSE:
            raise (refuse or IncidentStopped)(f"incident {incident_id}: {verdict.reason}")
        logger.info("incident %s: %s", incident_id, verdict.reason)
        return AlreadyCompleted(flow, incident_id, str(directory), verdict.reason)
    if prior:
        ledger = Ledger.open(
            directory, known_secrets=topology.known_secrets, reason=f"{flow} re-run"
        )
    else:
        ledger = Ledger.create(
            directory,
            incident_id,
            {"flow": flow, "runbook": runbook, **dict(meta or {})},
            known_secrets=topology.known_secrets,
        )
    attempt = (prior.attempts if prior else 0) + 1
    flow_run_id = str(current_run.id) if current_run.id else None
    ledger.append(
        "attempt.start",
        {
            "attempt": attempt,
            "flow_run_id": flow_run_id,
            "mode": run_mode.value,
            "runbook": runbook,
            **dict(meta or {}),
            "completed_before": list(prior.completed_steps) if prior else [],
        },
    )
    run = IncidentRun(
        flow=flow,
        incident_id=incident_id,
        runbook=rb,
        runbook_path=runbook,
        topology=topology,
        settings=settings,
        ledger=ledger,
        mode=run_mode,
        attempt=attempt,
        prior=prior,
        logger=logger,
        flow_run_id=flow_run_id,
    )
    run.notifiers.extend(
        build_notifiers(
            ledger,
            logger,
            flow=flow,
            incident_id=incident_id,
            mode=run_mode.value,
            settings=settings,
            runbook=rb,
        )
    )
    return run


# -- closing -----------------------------------------------------------------------------------
def close_incident(
    run: IncidentRun,
    outcome: Outcome,
    *,
    headline: str,
    facts: Sequence[str],
    description: str,
    timeline_flows: Sequence[str] | None = None,
    sections: Sequence[str] = (),
    report_key: str | None = None,
) -> Outcome:
    """The flow succeeded: record the outcome, tell people, close the ledger, archive it,
    publish the summary and timeline; the incident's own run publishes the documents too."""
    from drp.tasks.evidence_archive import archive_after_run_task

    run.ledger.append(f"{run.flow}.completed", outcome.as_dict())
    run.notify(f"{run.flow}.completed", f"{run.incident_id}: {headline}")
    run.ledger.close(outcome.closing_summary())
    outcome = outcome.with_evidence(
        ledger_head=run.ledger.head,
        archive=archive_after_run_task(run.runbook, run.ledger.directory),
    )
    outcome = _publish(run, outcome, facts, description, timeline_flows, sections, report_key)
    return outcome.with_evidence(documents=_documents(run))


def stop_incident(
    run: IncidentRun,
    reason: str,
    outcome: Outcome,
    *,
    facts: Sequence[str],
    description: str,
    error: type[IncidentStopped] = IncidentStopped,
    timeline_flows: Sequence[str] | None = None,
    kind: str | None = None,
    record: Mapping[str, Any] | None = None,
    sections: Sequence[str] = (),
    report_key: str | None = None,
) -> IncidentStopped:
    """The flow stopped: record why (``<flow>.stopped`` unless ``kind`` says otherwise; the
    ledger stays open: a re-run continues it), tell people, publish what was done; returns
    the exception for the flow to raise."""
    stop_kind = kind or f"{run.flow}.stopped"
    run.ledger.append(stop_kind, dict(record or {"reason": reason, "steps": run.results}))
    run.notify(stop_kind, f"{run.incident_id}: stopped — {reason}")
    outcome = _publish(run, outcome, facts, description, timeline_flows, sections, report_key)
    _documents(run)
    return error(
        f"{run.flow} {run.incident_id} stopped: {reason} (ledger: {run.ledger.directory})",
        outcome,
    )


def _publish(
    run: IncidentRun,
    outcome: Outcome,
    facts: Sequence[str],
    description: str,
    timeline_flows: Sequence[str] | None,
    sections: Sequence[str] = (),
    report_key: str | None = None,
) -> Outcome:
    """The run's story for the Prefect UI and a report file beside the ledger: the facts, who
    declared and approved and how long the gates waited, the steps against their budgets, the
    timeline (also a table artifact of its own)."""
    timeline = publishing.publish_timeline(
        run.evidence_dir, run.incident_id, run.flow, timeline_flows
    )
    title = {"drill": "DR drill"}.get(run.flow, run.flow.capitalize())
    lines = [
        f"# {title} {run.incident_id} — {outcome.status}",
        "",
        *(f"- {fact}" for fact in facts),
        f"- Ledger: `{run.ledger.directory}` (head `{run.ledger.head[:16]}…`)",
    ]
    if outcome.reason:
        lines.append(f"- Stopped because: {outcome.reason}")
    lines += list(sections)
    lines += ["", "## Who and when", "", *timeline.summary()]
    if not sections:
        lines += ["", "## Steps against their budgets", "", *publishing.steps_table(run.results)]
    lines += ["", "## Timeline", "", timeline.table_markdown()]
    report = publishing.publish_report(
        run.ledger,
        run.flow,
        run.incident_id,
        "\n".join(lines) + "\n",
        description,
        key=report_key,
    )
    return outcome.with_evidence(report=str(report))


def _documents(run: IncidentRun) -> Mapping[str, Any] | None:
    """The regulation's documents so far (Markdown; every format with ``drp report``),
    published as artifacts on the incident's run and indexed in the registry; never fails the
    flow. In a drill, the drill's run publishes them at its end."""
    from drp.flows import load

    return load("reports").publish_after_flow(run.incident_id, formats=["md"])
