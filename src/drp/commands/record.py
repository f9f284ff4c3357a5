"""``drp record``: what people state about an incident, recorded as evidence.

The parts of the documents that only people can write — the damage assessment and the root
cause (Lampiran B, Pasal 12), the end of the abnormal condition (Pasal 9, which starts Pasal 11's
30-day resync deadline), the yearly internalisation of the continuity plan (Pasal 14) — are
written here, each as its own closed, hash-chained ledger. A later statement corrects an
earlier one; both stay in the evidence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape

from drp.commands._output import console, emit_json, fail
from drp.commands.incidents import index_quietly
from drp.documents.collect import IncidentNotFound, incident_ledger_dirs, list_incident_ids
from drp.documents.records import ORGANISATION, write_record
from drp.domain.classification import UnknownChoice, role_from
from drp.domain.incident import (
    ASSESSMENT,
    END_OF_CONDITION,
    INTERNALISATION,
    parse_time,
    resync_deadline,
)
from drp.domain.report import wib
from drp.errors import DrpError
from drp.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    help="Record what people state (assessment, end of condition, internalisation) as evidence.",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
IncidentOpt = Annotated[str, typer.Option("--incident", help="The incident id.")]


def _require_incident(settings: Settings, incident_id: str) -> None:
    try:
        dirs = incident_ledger_dirs(settings.evidence_dir, incident_id)
    except IncidentNotFound as exc:
        fail(escape(str(exc)), code=2)
    if not any(not name.startswith("records/") for name, _ in dirs):
        known = ", ".join(list_incident_ids(settings.evidence_dir)[-5:]) or "none"
        fail(
            f"incident {escape(incident_id)} has no flow ledger (failover, drill, ...) under "
            f"{settings.evidence_dir} (hint: known incidents: {escape(known)})",
            code=2,
        )


def _done(
    settings: Settings, incident_id: str, path: Any, data: dict[str, Any], json_out: bool
) -> None:
    warning = index_quietly(settings, incident_id) if incident_id != ORGANISATION else None
    if json_out:
        emit_json({"incident_id": incident_id, "ledger": str(path), **data, "warning": warning})
        return
    console.print(f"[green]recorded[/] in {escape(str(path))}")
    if warning:
        console.print(f"[yellow]warning:[/] {escape(warning)}")


@app.command()
def assessment(
    incident: IncidentOpt,
    by: Annotated[str, typer.Option("--by", help="Who writes the assessment.")],
    damage: Annotated[str, typer.Option(help="Damage assessment (penilaian kerusakan).")] = "",
    root_cause: Annotated[
        str, typer.Option("--root-cause", help="Root-cause analysis (analisis penyebab).")
    ] = "",
    actions: Annotated[str, typer.Option(help="Actions taken besides the flows' steps.")] = "",
    impact: Annotated[str, typer.Option(help="Impact on SKP and its users (Pasal 12).")] = "",
    needs: Annotated[str, typer.Option(help="Needs: resources, repairs, mitigation.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Lampiran B / Pasal 12: the damage assessment, root cause, actions, impact and needs."""
    if not by.strip():
        fail("--by NAME is required: who writes the assessment", code=2)
    data = {
        "damage": damage.strip(),
        "root_cause": root_cause.strip(),
        "actions": actions.strip(),
        "impact": impact.strip(),
        "needs": needs.strip(),
        "by": by.strip(),
    }
    if not any(data[k] for k in ("damage", "root_cause", "actions", "impact", "needs")):
        fail(
            "nothing to record (hint: give at least one of --damage, --root-cause, --actions, "
            "--impact, --needs)",
            code=2,
        )
    settings = Settings()
    _require_incident(settings, incident)
    try:
        path = write_record(settings.evidence_dir, incident, ASSESSMENT, "assessment", data)
    except DrpError as exc:
        fail(escape(str(exc)))
    _done(settings, incident, path, data, json_out)


@app.command("end-of-condition")
def end_of_condition(
    incident: IncidentOpt,
    declared_by: Annotated[str, typer.Option("--declared-by", help="Who declares the end.")],
    role: Annotated[str, typer.Option(help="direktur | kepala_kantor (Pasal 9).")],
    restored_at: Annotated[
        str | None,
        typer.Option(
            "--restored-at",
            help="ISO time services worked again (default: the failover's verification).",
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="A note for the notice (Lampiran E).")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Pasal 9: the abnormal condition is over; starts Pasal 11's 30-day resync deadline."""
    try:
        role = role_from(role).value  # Pasal 9 names the declarers: direktur, kepala_kantor
    except UnknownChoice as exc:
        fail(f"--role (Pasal 9 names who ends the condition): {escape(str(exc))}", code=2)
    if not declared_by.strip():
        fail("--declared-by NAME is required", code=2)
    settings = Settings()
    _require_incident(settings, incident)
    if restored_at is not None:
        moment = parse_time(restored_at)
        if moment is None:
            fail(
                f"--restored-at {escape(restored_at)}: expected an ISO time with a zone "
                "(hint: 2026-11-23T21:41:12+07:00)",
                code=2,
            )
        if moment > datetime.now(UTC):
            fail(f"--restored-at {escape(restored_at)} is in the future", code=2)
    else:
        from drp.documents.collect import load_incident

        facts = load_incident(settings.evidence_dir, incident)
        moment = facts.service_restored_at
        if moment is None:
            fail(
                f"incident {escape(incident)}: the failover never verified the service, so the "
                "restored time is unknown (hint: give --restored-at ISO-TIME)",
                code=2,
            )
    data = {
        "declared_by": declared_by.strip(),
        "role": role,
        "restored_at": moment.isoformat(),
        "resync_deadline": resync_deadline(moment).isoformat(),
        "note": note.strip(),
    }
    try:
        path = write_record(settings.evidence_dir, incident, END_OF_CONDITION, "end", data)
    except DrpError as exc:
        fail(escape(str(exc)))
    if not json_out:
        console.print(
            f"end of the condition recorded; Pasal 11 resync deadline: "
            f"{wib(resync_deadline(moment))}"
        )
    _done(settings, incident, path, data, json_out)


@app.command()
def internalisation(
    held_on: Annotated[str, typer.Option("--date", help="Day it was held (YYYY-MM-DD).")],
    by: Annotated[str, typer.Option("--by", help="Who led it.")],
    participants: Annotated[int, typer.Option(help="How many staff took part.")],
    topic: Annotated[str, typer.Option(help="What was taught.")] = (
        "rencana kelangsungan layanan TIK"
    ),
    evidence_ref: Annotated[
        str, typer.Option("--evidence", help="Attendance list, minutes, ... (reference).")
    ] = "",
    json_out: JsonOpt = False,
) -> None:
    """Pasal 14: the continuity plan was taught to staff (at least once a year)."""
    try:
        day = date.fromisoformat(held_on)
    except ValueError:
        fail(f"--date {escape(held_on)}: expected YYYY-MM-DD", code=2)
    if day > datetime.now(UTC).date():
        fail(f"--date {held_on} is in the future", code=2)
    if participants < 1:
        fail("--participants must be at least 1", code=2)
    if not by.strip():
        fail("--by NAME is required", code=2)
    data = {
        "held_on": day.isoformat(),
        "by": by.strip(),
        "participants": participants,
        "topic": topic.strip(),
        "evidence": evidence_ref.strip(),
    }
    settings = Settings()
    try:
        path = write_record(
            settings.evidence_dir, ORGANISATION, INTERNALISATION, "internalisation", data
        )
    except DrpError as exc:
        fail(escape(str(exc)))
    _done(settings, ORGANISATION, path, data, json_out)
