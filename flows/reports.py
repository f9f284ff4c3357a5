"""The regulation's documents for an incident (deployment ``reports``), published in Prefect.

Thin on purpose: :mod:`drp.documents.issue` builds, renders and records the documents; this flow
runs it as a task, re-indexes the incident in the registry, and publishes one markdown artifact
per document (the text an auditor reads in the UI) and a table artifact listing every file with
its digest. Incident flows (failover, resync, failback, drill) can call it at their end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from drp.adapters import registry
from drp.documents.issue import issue_reports
from drp.documents.render import render_text
from drp.documents.served import served_documents
from drp.errors import DrpError
from drp.settings import Settings
from drp.tasks.incident import artifact_key


def _ops_dsn(settings: Settings) -> str | None:
    try:
        return registry.resolve_ops_dsn(settings.ops_dsn, settings.lab_root)
    except DrpError:
        return None


@task(name="issue-reports", cache_policy=NO_CACHE, retries=0, timeout_seconds=300)
def issue(
    incident_id: str, kinds: list[str] | None, formats: list[str] | None, out_dir: str | None
) -> dict[str, Any]:
    """Build, render and record the documents; return what the artifacts need."""
    settings = Settings()
    dsn = _ops_dsn(settings)
    facts, docs, files = issue_reports(
        settings.evidence_dir,
        incident_id,
        kinds=kinds,
        formats=formats,
        out_dir=Path(out_dir) if out_dir else None,
        template_dir=settings.template_dir,
        served=lambda incident: served_documents(dsn, incident),
    )
    markdown = {doc.kind: render_text(doc, "md", settings.template_dir) for doc in docs}
    warning = None
    if dsn is not None:
        try:
            registry.index_incident(dsn, settings.evidence_dir, incident_id)
        except DrpError as exc:
            warning = f"registry not updated: {exc}"
    else:
        warning = "no ops database: the registry was not updated"
    return {
        "evidence_verified": facts.evidence_verified,
        "missing": list(facts.missing),
        "files": [f.to_dict() for f in files],
        "markdown": markdown,
        "registry_warning": warning,
    }


@flow(name="reports", validate_parameters=True)
def reports(
    incident_id: str,
    kinds: list[str] | None = None,
    formats: list[str] | None = None,
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Write the incident's documents and publish them as artifacts; returns the files."""
    logger = get_run_logger()
    result = issue(incident_id, kinds, formats, out_dir)
    for kind, text in result["markdown"].items():
        create_markdown_artifact(
            markdown=text,
            key=artifact_key(f"report-{kind}", incident_id),
            description=f"{kind} — {incident_id}",
        )
    create_table_artifact(
        table=[
            {"document": f["kind"], "format": f["format"], "file": f["path"], "sha256": f["sha256"]}
            for f in result["files"]
        ],
        key=artifact_key("reports", incident_id),
        description=f"Documents of {incident_id} (evidence verified: "
        f"{'yes' if result['evidence_verified'] else 'NO'})",
    )
    if not result["evidence_verified"]:
        logger.warning("%s: the evidence does NOT verify; the documents say so", incident_id)
    for gap in result["missing"]:
        logger.info("still to record: %s", gap)
    if result["registry_warning"]:
        logger.warning("%s", result["registry_warning"])
    logger.info("%d file(s) written for %s", len(result["files"]), incident_id)
    return {k: v for k, v in result.items() if k != "markdown"}


def publish_after_flow(incident_id: str, formats: list[str] | None = None) -> dict[str, Any] | None:
    """For the end of an incident flow (failover, resync, failback, drill): run ``reports`` as
    a subflow, so its artifacts appear with the run; a failure here is logged, never raised —
    the incident's own outcome must not depend on its paperwork (``drp report`` re-makes it).
    """
    try:
        return reports(incident_id=incident_id, formats=formats)
    except Exception as exc:  # paperwork never fails a recovery; `drp report` re-makes it
        get_run_logger().warning("reports for %s not published: %s", incident_id, exc)
        return None
