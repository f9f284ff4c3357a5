"""Manual mode (deployment ``manual-mode``, Pasal 8–9): open intake for the offices and document
types a declared disaster affects (templates published, ledger, notification), or close it at
the end of the abnormal condition. ``manual-submit`` takes in one declaration file as a flow.

Thin on purpose: the steps live in :mod:`drp.tasks.manual`, the rules in
:mod:`drp.domain.manual`. The evidence is under ``<evidence>/<incident>/manual/``.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run as current_run

from drp.errors import PreconditionFailed
from drp.settings import Settings
from drp.tasks import manual as steps
from drp.tasks.incident import run_name

ACTIONS = ("activate", "deactivate")


def _key(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "incident"


def _run_name() -> str:
    """``manual-mode/<incident>/<activate|deactivate>``."""
    p = current_run.parameters
    return run_name("manual-mode", p.get("incident_id"), p.get("action"))


def _submit_run_name() -> str:
    """``manual-submit/<office>/<file name>``: a declaration file is not yet an incident's."""
    p = current_run.parameters
    return "/".join(
        ["manual-submit", str(p.get("office") or "?"), PurePath(str(p.get("file"))).name]
    )


@flow(name="manual-mode", flow_run_name=_run_name, validate_parameters=True)
def manual_mode(
    incident_id: str,
    action: Literal["activate", "deactivate"] = "activate",
    offices: list[str] | None = None,
    types: list[str] | None = None,
    runbook: str = "runbooks/lab.yaml",
    by: str = "prefect",
) -> dict[str, Any]:
    """Activate or deactivate manual mode for an incident; returns what the store now holds."""
    logger = get_run_logger()
    if action not in ACTIONS:
        raise PreconditionFailed(f"action {action!r}: choose {' or '.join(ACTIONS)}")
    cfg = steps.manual_config(Settings(), runbook)
    if action == "activate":
        result = steps.activate_task(cfg, incident_id, offices or [], types, by)
        logger.info(
            "manual mode active for %s (%s); templates: %s",
            ", ".join(result["offices"]),
            ", ".join(result["doc_types"]),
            ", ".join(result["templates"]),
        )
        lines = [
            f"# Manual mode — {incident_id}: active",
            "",
            f"- Offices: {', '.join(result['offices'])}",
            f"- Documents: {', '.join(result['doc_types'])}",
            f"- Activated by {result['activated_by']} at {result['activated_at']}",
            "- Templates: " + ", ".join(f"`{t}`" for t in result["templates"]),
            f"- Ledger: `{result['ledger']}`",
        ]
    else:
        result = steps.deactivate_task(cfg, incident_id, by)
        logger.info("manual intake for %s: %s", incident_id, result["status"])
        lines = [
            f"# Manual mode — {incident_id}: {result['status']}",
            "",
            f"- Declarations still to serve: {result['pending']}",
            "- Next: `drp manual served` (berita acara, Pasal 10) and "
            "`resync-manual-declarations` within 30 days (Pasal 11)",
            f"- Ledger: `{result['ledger']}`",
        ]
    create_markdown_artifact(
        key=f"manual-mode-{_key(incident_id)}",
        markdown="\n".join(lines) + "\n",
        description=f"Manual mode of {incident_id}",
    )
    return result


@flow(name="manual-submit", flow_run_name=_submit_run_name, validate_parameters=True)
def manual_submit(
    file: str,
    office: str,
    submitted_by: str = "prefect",
    runbook: str = "runbooks/lab.yaml",
) -> dict[str, Any]:
    """Take in one declaration file (.xls or .xlsx): registered whole, or rejected with every
    problem at its sheet, row and column."""
    logger = get_run_logger()
    cfg = steps.manual_config(Settings(), runbook)
    outcome = steps.submit_task(cfg, file, office, submitted_by)
    if outcome["status"] == "registered":
        logger.info(
            "%s: %d declaration(s) registered: %s",
            outcome["file_name"],
            len(outcome["registered"]),
            ", ".join(r["registration_number"] for r in outcome["registered"]),
        )
    else:
        for problem in outcome["problems"]:
            logger.warning("%s: %s", outcome["file_name"], problem["text"])
    return outcome
