"""The regulation's documents for an incident (deployment ``reports``), published in Prefect.

Thin on purpose: :mod:`drp.documents.issue` builds, renders and records the documents; this flow
runs it as a task, re-indexes the incident in the registry, and publishes one markdown artifact
per document (the text an auditor reads in the UI) and a table artifact listing every file with
its digest. Incident flows (failover, resync, failback, drill) call it at their end; its artifacts
go on the incident's own run (the top-level one: the drill's, or the failover's when it runs
alone), not on this subflow's, so that the incident's page holds its documents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_run

from drp.adapters import registry
from drp.documents.issue import issue_reports
from drp.documents.render import render_text
from drp.documents.served import served_documents
from drp.errors import DrpError
from drp.settings import Settings
from drp.tasks.incident import (
    artifact_key,
    incident_run_id,
    is_nested,
    publish_markdown,
    publish_table,
    run_name,
)


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


def _run_name() -> str:
    """``reports/<incident>``."""
    return run_name("reports", current_run.parameters.get("incident_id"))


@flow(name="reports", flow_run_name=_run_name, validate_parameters=True)
def reports(
    incident_id: str,
    kinds: list[str] | None = None,
    formats: list[str] | None = None,
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Write the incident's documents and publish them as artifacts on the incident's run;
    returns the files."""
    logger = get_run_logger()
    result = issue(incident_id, kinds, formats, out_dir)
    target = incident_run_id()
    for kind, text in result["markdown"].items():
        publish_markdown(
            text, artifact_key(f"report-{kind}", incident_id), f"{kind} — {incident_id}", target
        )
    publish_table(
        [
            {"document": f["kind"], "format": f["format"], "file": f["path"], "sha256": f["sha256"]}
            for f in result["files"]
        ],
        artifact_key("reports", incident_id),
        f"Documents of {incident_id} (evidence verified: "
        f"{'yes' if result['evidence_verified'] else 'NO'})",
        target,
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
    a subflow, its artifacts on the incident's run; a failure here is logged, never raised —
    the incident's own outcome must not depend on its paperwork (``drp report`` re-makes it).

    A flow that is itself a subflow (a drill's failover, resync, failback) leaves the documents
    to the run above it, which publishes them once, at its end, with everything in them.
    """
    if is_nested():
        get_run_logger().info(
            "documents of %s: published by the incident's run at its end", incident_id
        )
        return None
    try:
        return reports(incident_id=incident_id, formats=formats)
    except Exception as exc:  # paperwork never fails a recovery; `drp report` re-makes it
        get_run_logger().warning("reports for %s not published: %s", incident_id, exc)
        return None
