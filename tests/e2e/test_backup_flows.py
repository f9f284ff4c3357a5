"""The backup-take and backup-verify flows through Prefect, against a fresh lab and a real S3
endpoint over HTTP: backups in one bucket, the runs' evidence archived with Object Lock in
another, as a runbook with ``repository: s3`` and an ``evidence`` policy asks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from s3_fixture import s3_endpoint  # noqa: F401  (a fixture)

from drp.adapters.objectstore import S3Repository
from drp.domain.backup import BackupError
from drp.domain.evidence_archive import parse_s3_url
from drp.flows import load
from drp.lab.config import repo_root
from drp.lab.core import Lab
from drp.tasks.evidence_archive import verify_archive

pytestmark = pytest.mark.e2e

RESTORE_PORT = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 802
BACKUPS, EVIDENCE = "drp-e2e-backups", "drp-e2e-evidence"


def _runbook(tmp: Path) -> Path:
    data = yaml.safe_load((repo_root() / "runbooks" / "lab.yaml").read_text())
    data["inventory"] = str(repo_root() / "inventory" / "lab.yml")
    data["playbook_dir"] = str(repo_root() / "playbooks")
    data["backups"] = {**data["backups"], "repository": "s3", "prefix": "backups/skp-db"}
    data["evidence"] = {"bucket": EVIDENCE, "prefix": "evidence/lab", "retention_days": 2}
    path = tmp / "runbook.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_backup_take_then_verify_through_prefect_with_evidence_archived(
    prefect_server: None,
    fresh_lab: Lab,
    s3_endpoint: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flows = load("backups")
    backup_take, backup_verify = flows.backup_take, flows.backup_verify
    # The restore test's scratch server runs as PostgreSQL's user, who cannot enter the fresh
    # lab's temp root (0700): the platform's default scratch place, where each restore test
    # makes (and removes) its own directory.
    scratch = Path("/tmp")
    for name, value in {
        "DRP_S3_ENDPOINT_URL": s3_endpoint,
        "DRP_S3_BUCKET": BACKUPS,
        "DRP_BACKUP_SCRATCH_DIR": str(scratch),
        "DRP_RESTORE_PORT": str(RESTORE_PORT),
    }.items():
        monkeypatch.setenv(name, value)
    S3Repository.connect(s3_endpoint, "us-east-1", BACKUPS).ensure_bucket()
    evidence = S3Repository.connect(s3_endpoint, "us-east-1", EVIDENCE)
    evidence.ensure_bucket(object_lock=True)
    runbook = str(_runbook(tmp_path))

    taken = backup_take(runbook=runbook)
    assert taken["location"] == f"s3://{BACKUPS}/backups/skp-db"
    assert taken["archive"]["ok"], taken["archive"]

    verified = backup_verify(runbook=runbook)
    assert verified["ok"] and verified["backup_id"] == taken["backup_id"]
    assert any(c["name"] == "restore" and c["ok"] for c in verified["checks"])
    location = parse_s3_url(verified["archive"]["location"])
    report = verify_archive(evidence, location, Path(verified["ledger"]))
    assert report.ok, [str(p) for p in report.problems]
    assert "**verified**" in _artifact("backup-verify-skp-db")

    # A damaged backup fails the flow run, with the reason.
    backups = S3Repository.connect(s3_endpoint, "us-east-1", BACKUPS)
    backups.delete(f"backups/skp-db/{taken['backup_id']}/pg_wal.tar")
    with pytest.raises(BackupError, match=r"object pg_wal\.tar: missing from"):
        backup_verify(runbook=runbook)


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
        )
    assert found, f"no artifact {key}"
    return str(found[0].data)
