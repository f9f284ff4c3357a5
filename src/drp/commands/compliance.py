"""``drp compliance``: each standing obligation of PER-19/BC/2023 and whether it is met.

Read from the incident registry (drills, restored services, resync deadlines, reports issued),
the organisation's records (internalisation), the runbook (the DRP and its ADB, the drill
period) and the continuity plan's documents (``DRP_CONTINUITY_DIR``). The rules live in
:mod:`drp.domain.compliance`. Exit status: 0 when every obligation is met, 1 otherwise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from drp.adapters import registry
from drp.commands._output import console, emit_json, fail
from drp.commands.incidents import ops_dsn
from drp.documents.records import organisation_records
from drp.domain import compliance as rules
from drp.domain.incident import INTERNALISATION
from drp.errors import DrpError
from drp.paths import repo_root
from drp.runbooks import load_runbook
from drp.settings import Settings

RISK_PROFILE_NAMES = ("risk-profile", "risk_profile", "profil-risiko", "profil_risiko")


def register(app: typer.Typer) -> None:
    app.command("compliance")(compliance)


def find_risk_profile(directory: Path) -> str | None:
    """The risk profile and treatment plan of Pasal 3(3)(b), by its file name."""
    if not directory.is_dir():
        return None
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.stem.lower().startswith(RISK_PROFILE_NAMES):
            return str(path)
    return None


def views(rows: list[registry.IncidentRow]) -> list[rules.IncidentView]:
    return [
        rules.IncidentView(
            incident_id=r.incident_id,
            is_drill=r.is_drill,
            declared_at=r.declared_at,
            service_restored_at=r.service_restored_at,
            drill_completed=r.failover_status == "completed",
            resync_deadline=r.resync_deadline,
            manual_resync_done=r.manual_resync_done,
            reports_issued=r.reports_issued,
            assessment_missing=any(
                m.startswith(("penilaian kerusakan", "analisis akar")) for m in r.missing
            ),
            evidence_verified=r.evidence_verified,
        )
        for r in rows
    ]


def internalisation_days(evidence_dir: Path) -> list[date]:
    days = []
    for ledger in organisation_records(evidence_dir):
        if not ledger.verification.ok:
            continue  # a tampered record proves nothing
        for record in ledger.records:
            if record.kind == INTERNALISATION:
                try:
                    days.append(date.fromisoformat(str(record.data.get("held_on"))))
                except ValueError:
                    continue
    return days


def evaluate(
    settings: Settings, runbook: Path, now: datetime, rescan: bool
) -> list[rules.Obligation]:
    dsn = ops_dsn(settings)
    if rescan:
        registry.rescan(dsn, settings.evidence_dir)
    rows = registry.list_incidents(dsn)
    incidents = views(rows)
    try:
        rb = load_runbook(str(runbook))
        runbook_ok, problem = True, ""
        period = rb.drills.period_days if rb.drills else rules.DEFAULT_DRILL_PERIOD_DAYS
        adb = [(s.id, str(s.criticality.value)) for s in rb.services]
    except DrpError as exc:
        rb, runbook_ok, problem = None, False, str(exc)
        period, adb = rules.DEFAULT_DRILL_PERIOD_DAYS, []
    drill = rules.drill_obligation(incidents, period, now)
    continuity_dir = settings.continuity_dir or (repo_root() / "docs" / "continuity")
    return [
        drill,
        rules.internalisation_obligation(internalisation_days(settings.evidence_dir), now),
        rules.resync_obligation(incidents, now),
        rules.post_report_obligation(incidents),
        rules.continuity_obligation(
            runbook_ok=runbook_ok,
            runbook_problem=problem,
            adb=adb,
            risk_profile=find_risk_profile(continuity_dir),
            functional_test=drill,
        ),
    ]


def compliance(
    runbook: Annotated[Path, typer.Option(help="The runbook (DRP).")] = Path("runbooks/lab.yaml"),
    rescan: Annotated[
        bool, typer.Option("--rescan", help="Rebuild the registry from the evidence first.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Each standing obligation and whether it is met; exit 0 only when all are."""
    settings = Settings()
    try:
        obligations = evaluate(settings, runbook, datetime.now(UTC), rescan)
    except DrpError as exc:
        fail(escape(str(exc)))
    all_met = all(o.met for o in obligations)
    if json_out:
        emit_json({"all_met": all_met, "obligations": [o.to_dict() for o in obligations]})
    else:
        table = Table(title="Standing obligations (PER-19/BC/2023)", title_justify="left")
        for column in ("article", "obligation", "status", "why"):
            table.add_column(column)
        for o in obligations:
            table.add_row(
                o.article,
                escape(o.title),
                "[green]met[/]" if o.met else "[red]NOT met[/]",
                escape(o.reason),
            )
        console.print(table)
        for o in obligations:
            if o.id == "resync":
                for d in o.details:
                    console.print(
                        f"  Pasal 11: {escape(d['incident_id'])}: deadline {d['deadline']}, "
                        f"{d['days_left']} day(s) left",
                        highlight=False,
                    )
    raise typer.Exit(0 if all_met else 1)
