"""Replication and configuration readiness (deployment ``replication-check``, every 5 minutes).

Thin on purpose: observation and alert state live in :mod:`drp.tasks.replication`, the rules in
:mod:`drp.domain.readiness`. This flow sequences them, keeps a small ledger per check under
``<evidence>/checks/replication-<timestamp>/``, publishes the verdicts as a markdown artifact
(``readiness-<runbook slug>``, so the Artifacts page shows their history) and notifies only when
a breach starts or clears.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from drp.domain.readiness import ReadinessReport, Verdict
from drp.domain.runbook import Runbook
from drp.errors import DrpError
from drp.ledger import Ledger
from drp.notify import build_notifiers, notify_safely
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import replication as checks
from drp.tasks.evidence_archive import archive_after_run_task
from drp.topology import resolve


@flow(name="replication-check", validate_parameters=True)
def replication_check(runbook: str = "runbooks/lab.yaml") -> dict[str, Any]:
    """Judge every pair and service of ``runbook``; returns the verdicts and drifts as data."""
    logger = get_run_logger()
    settings = Settings()
    rb = load_runbook(runbook)
    topology = resolve(rb, Path(rb.inventory), settings)
    now = datetime.now(UTC)
    slug = checks.runbook_slug(rb)
    ledger = Ledger.create(
        settings.evidence_dir / "checks" / f"replication-{now:%Y%m%d-%H%M%S-%f}",
        f"replication-{slug}-{now:%Y%m%dT%H%M%S}",
        {"flow": "replication-check", "runbook": runbook},
        known_secrets=topology.known_secrets,
    )
    report, drift = checks.check_all_task(rb, topology)
    result = checks.result_data(report, drift)
    ledger.append("readiness.checked", result)
    for verdict in (*report.verdicts, *drift):
        logger.info("%s: %s %s", verdict.subject, verdict.status.value, "; ".join(verdict.reasons))

    result["alerts"] = _alert(rb, topology.ops_dsn, report, drift, now, ledger, logger, settings)
    create_markdown_artifact(
        key=f"readiness-{slug}",
        markdown=checks.summary_markdown(rb, report, drift),
        description=f"Replication and configuration readiness of {rb.name}",
    )
    ledger.close({"status": result["status"], "alerts": len(result["alerts"])})
    result["archive"] = archive_after_run_task(rb, ledger.directory)
    result["ledger"] = str(ledger.directory)
    return result


def _alert(
    rb: Runbook,
    ops_dsn: str | None,
    report: ReadinessReport,
    drift: tuple[Verdict, ...],
    now: datetime,
    ledger: Ledger,
    logger: Any,
    settings: Settings,
) -> list[dict[str, str]]:
    """Announce breaches that started, worsened or cleared; the verdicts stand without it.

    Without the ops database there is no memory of earlier checks, so nothing is announced
    (announcing every five minutes would teach people to ignore it); that is recorded instead.
    """
    if not ops_dsn:
        logger.warning("no ops database (DRP_OPS_DSN): breaches are not tracked or announced")
        ledger.append("alerts.disabled", {"reason": "no ops database configured (DRP_OPS_DSN)"})
        return []
    keyed = checks.verdicts_by_key(report, drift)
    try:
        alerts = checks.alerts_task(ops_dsn, checks.runbook_slug(rb), keyed, now)
    except DrpError as exc:
        logger.error("alert state not updated: %s", exc)
        ledger.append("alerts.failed", {"error": str(exc)})
        return []
    notifiers = build_notifiers(
        ledger,
        logger,
        flow="replication-check",
        incident_id=f"readiness-{checks.runbook_slug(rb)}",
        mode="check",
        settings=settings,
        runbook=rb,
    )
    for alert in alerts:
        notify_safely(
            notifiers,
            ledger,
            f"readiness.{alert.kind.value}",
            alert.text,
            key=alert.key,
            status=alert.status.value,
        )
    return [{"key": a.key, "kind": a.kind.value, "text": a.text} for a in alerts]
