"""What every incident flow does the same way: open its ledger (or resume it), and publish its
report — a Markdown file beside the ledger and a Prefect artifact with the same text.

An incident's evidence lives in ``<evidence>/<incident>/<flow>/`` (failover, resync, failback,
drill, ...). A re-run of an interrupted flow opens the same ledger (recording the re-opening)
and reads back what earlier attempts did, so that no step is done twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from drp.ledger import Ledger
from drp.tasks.failover import PriorAttempts, read_prior
from drp.tasks.steps import StepOutcome


@dataclass
class FlowLedger:
    """An incident flow's ledger, opened for this attempt, with what earlier attempts did."""

    ledger: Ledger
    prior: PriorAttempts | None

    @property
    def attempt(self) -> int:
        return (self.prior.attempts if self.prior else 0) + 1


def step_task(name: str, timeout_s: float, call: Callable[[Any], StepOutcome]) -> Task:
    """A side-effecting step as a Prefect task: its name in the UI, a hard timeout, no caching
    (a repeated call must act again, or say "already done" itself), no retries."""

    @task(name=name, timeout_seconds=timeout_s, cache_policy=NO_CACHE, retries=0)
    def _run(run: Any) -> StepOutcome:
        return call(run)

    return _run


def ledger_dir(evidence_dir: Path, incident_id: str, flow: str) -> Path:
    return evidence_dir / incident_id / flow


def prior_attempts(directory: Path) -> PriorAttempts | None:
    """What earlier attempts recorded, or None when this flow never ran for the incident."""
    return read_prior(directory) if (directory / "manifest.json").exists() else None


def open_flow_ledger(
    directory: Path,
    incident_id: str,
    flow: str,
    meta: Mapping[str, Any],
    known_secrets: Iterable[str],
    prior: PriorAttempts | None,
) -> FlowLedger:
    """Create the ledger, or re-open it (recorded as ``<flow> re-run``) after earlier attempts."""
    if prior:
        ledger = Ledger.open(directory, known_secrets=known_secrets, reason=f"{flow} re-run")
    else:
        ledger = Ledger.create(
            directory, incident_id, {"flow": flow, **dict(meta)}, known_secrets=known_secrets
        )
    return FlowLedger(ledger, prior)


def artifact_key(prefix: str, incident_id: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return f"{prefix}-" + "".join(c if c.isalnum() else "-" for c in incident_id.lower())


def steps_table(results: Iterable[Mapping[str, Any]]) -> list[str]:
    """The steps against their budgets, as Markdown table lines (⚠ marks an overrun)."""
    lines = ["| # | step | status | duration | budget | reason |", "|---|---|---|---|---|---|"]
    for i, row in enumerate(results, start=1):
        flag = " ⚠" if row["duration_s"] > row["budget_s"] else ""
        lines.append(
            f"| {i} | {row['name']} | {row['status']} | {row['duration_s']:.1f} s{flag}"
            f" | {row['budget_s']} s | {str(row['reason']).replace('|', '/')} |"
        )
    return lines


def publish_report(
    ledger: Ledger,
    flow: str,
    incident_id: str,
    markdown: str,
    description: str,
    key: str | None = None,
) -> Path:
    """Write ``<flow>-report.md`` beside the ledger and publish it as a keyed artifact (the
    Artifacts page keeps every version of it)."""
    report = ledger.directory.parent / f"{flow}-report.md"
    report.write_text(markdown)
    create_markdown_artifact(
        markdown=markdown,
        key=key or artifact_key(flow, incident_id),
        description=description,
    )
    return report
