"""Backups (deployments ``backup-take`` and ``backup-verify``, daily).

Thin on purpose: taking, storing and verifying live in :mod:`drp.tasks.backups`, the verdicts in
:mod:`drp.domain.backup`, the off-site copy of the evidence in :mod:`drp.tasks.evidence_archive`.
Each run keeps its ledger under ``<evidence>/backups/<take|verify>-<time>/``, publishes a markdown
artifact keyed by the database (so the Artifacts page keeps the history), and, when the runbook
has an ``evidence`` policy, archives its closed ledger with Object Lock.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from drp.domain.backup import BackupError
from drp.tasks import backups
from drp.tasks.evidence_archive import archive_after_run_task


@flow(name="backup-take", validate_parameters=True)
def backup_take(runbook: str = "runbooks/lab.yaml") -> dict[str, Any]:
    """Take a base backup of the runbook's primary and store it with its manifest."""
    logger = get_run_logger()
    ctx = backups.prepare(runbook)
    ledger = backups.open_ledger(ctx, "take")
    try:
        manifest = backups.take_task(ctx, ledger, logger.info)
    except Exception as exc:
        ledger.append("error", {"during": "backup-take", "error": str(exc)})
        ledger.close({"status": "failed", "error": str(exc)})
        raise
    result = backups.take_summary(manifest, ctx.location)
    create_markdown_artifact(
        key=f"backup-take-{ctx.database}",
        markdown=f"# Backup {manifest.backup_id}\n\nStored in `{ctx.location}`, "
        f"{manifest.size} bytes, {len(manifest.wal_segments)} WAL segment(s).\n",
        description=f"Latest backup of {ctx.database}",
    )
    ledger.close({"status": "taken", "backup_id": manifest.backup_id})
    result["ledger"] = str(ledger.directory)
    result["archive"] = archive_after_run_task(ctx.runbook, ledger.directory)
    return result


@flow(name="backup-verify", validate_parameters=True)
def backup_verify(runbook: str = "runbooks/lab.yaml") -> dict[str, Any]:
    """Verify the newest backup, restore test included; the run fails when the backup does."""
    logger = get_run_logger()
    ctx = backups.prepare(runbook)
    ledger = backups.open_ledger(ctx, "verify")
    result = backups.verify_task(ctx, ledger, logger.info)
    for check in result.checks:
        logger.info("%s: %s", check.name, check.detail)
    create_markdown_artifact(
        key=f"backup-verify-{ctx.database}",
        markdown=backups.summary_markdown(result),
        description=f"Backup verification of {ctx.database}",
    )
    ledger.close({"ok": result.ok, "backup_id": result.backup_id, "reasons": result.reasons})
    data = {**result.as_dict(), "ledger": str(ledger.directory)}
    data["archive"] = archive_after_run_task(ctx.runbook, ledger.directory)
    if not result.ok:
        raise BackupError("backup verification failed: " + "; ".join(result.reasons))
    return data
