"""Backups against the real lab primary and a real S3 endpoint over HTTP (moto's server mode).

One backup is taken per module and shared; each fault is made on a *copy* of it under another
prefix (a flipped byte, a backup written without a WAL segment, a deleted object), so that the
good backup stays good. The restore test starts a real scratch PostgreSQL on its own port.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from s3_fixture import s3_endpoint  # noqa: F401  (a fixture)
from typer.testing import CliRunner

from drp.adapters.objectstore import LocalRepository, S3Repository, sha256_file
from drp.adapters.postgres import query
from drp.cli import app
from drp.domain import backup as rules
from drp.domain.backup import BackupManifest
from drp.lab.core import Lab
from drp.ledger import verify_ledger
from drp.settings import Settings
from drp.tasks import backups
from drp.tasks.backups import BackupContext

pytestmark = pytest.mark.integration

PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400"))
RESTORE_PORT = PORT_BASE + 801
BUCKET = "drp-backups-test"


@dataclasses.dataclass(frozen=True)
class Taken:
    ctx: BackupContext
    manifest: BackupManifest
    settings: Settings
    rows_at_backup: int


def _insert(lab: Lab, count: int, tag: str) -> None:
    query(
        lab.dsn("dc-db"),
        "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
        " SELECT %s || g, 'BC20', 'KPU-TPK', 'dc' FROM generate_series(1, %s) g",
        (f"{tag}-", count),
    )


@pytest.fixture(scope="module")
def scratch_root() -> Iterator[Path]:
    """Under /tmp, mode 0755: the unprivileged PostgreSQL user must reach the restored copy."""
    root = Path(tempfile.mkdtemp(prefix="drp-test-backups-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def taken(lab: Lab, s3_endpoint: str, scratch_root: Path) -> Taken:  # noqa: F811
    """One backup of the lab's primary in S3, taken through the real path."""
    settings = Settings(
        lab_root=lab.cfg.root,
        evidence_dir=scratch_root / "evidence",
        backup_dir=scratch_root / "repo",
        backup_scratch_dir=scratch_root,
        s3_endpoint_url=s3_endpoint,
        s3_bucket=BUCKET,
        restore_port=RESTORE_PORT,
    )
    ctx = backups.prepare("runbooks/lab.yaml", settings)
    repo = S3Repository.connect(s3_endpoint, "us-east-1", BUCKET)
    repo.ensure_bucket()
    policy = ctx.policy.model_copy(update={"repository": "s3", "prefix": "backups/skp-db"})
    ctx = dataclasses.replace(ctx, policy=policy, repository=repo)
    _insert(lab, 500, "before-backup")
    rows = query(lab.dsn("dc-db"), "SELECT count(*) FROM declarations")[0][0]
    ledger = backups.open_ledger(ctx, "take")
    manifest = backups.take_backup(ctx, ledger)
    ledger.close()
    # Written after the backup: the restore must give back the counts of backup time, not now.
    _insert(lab, 7, "after-backup")
    return Taken(ctx, manifest, settings, rows)


def _copy(taken: Taken, case: str) -> tuple[BackupContext, str]:
    """The shared backup copied under ``backups/<case>/``; returns its context and key prefix."""
    ctx = taken.ctx
    prefix = f"backups/{case}"
    for name in (*(o.name for o in taken.manifest.objects), rules.MANIFEST_NAME):
        src = f"{ctx.policy.prefix}/{taken.manifest.backup_id}/{name}"
        ctx.repository.copy(src, f"{prefix}/{taken.manifest.backup_id}/{name}")
    policy = ctx.policy.model_copy(update={"prefix": prefix})
    return dataclasses.replace(ctx, policy=policy), f"{prefix}/{taken.manifest.backup_id}"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_backup_is_stored_in_s3_with_its_manifest_and_checksums(taken: Taken) -> None:
    repo = taken.ctx.repository
    assert isinstance(repo, S3Repository)
    base = f"{taken.ctx.policy.prefix}/{taken.manifest.backup_id}"
    stored = {o.key.rsplit("/", 1)[1]: o for o in repo.list(base + "/")}
    assert set(stored) == {"base.tar", "pg_wal.tar", "backup_manifest", "drp-manifest.json"}
    for obj in taken.manifest.objects:
        head = repo.head(f"{base}/{obj.name}")
        assert head is not None and head.size == obj.size and head.sha256 == obj.sha256
    answer = repo.client.head_object(Bucket=BUCKET, Key=f"{base}/base.tar", ChecksumMode="ENABLED")
    assert answer.get("ChecksumSHA256"), "multipart upload without S3 checksums"
    (table,) = taken.manifest.tables
    assert table.table == "skp.public.declarations"
    assert table.rows_before == taken.rows_at_backup and table.stable
    assert taken.manifest.wal_segments
    needed = rules.segments_needed(taken.manifest.wal_ranges, taken.manifest.wal_segment_size)
    assert needed and set(needed) <= set(taken.manifest.wal_segments)


def test_a_good_backup_verifies_and_restores(taken: Taken, scratch_root: Path) -> None:
    ledger = backups.open_ledger(taken.ctx, "verify")
    result = backups.verify_backup(taken.ctx, ledger)
    ledger.close()
    assert result.ok, result.reasons
    assert result.backup_id == taken.manifest.backup_id
    names = [c.name for c in result.checks]
    assert names[:2] == ["present", "fresh"]
    assert {"wal", "pg_verifybackup", "restore", "table skp.public.declarations"} <= set(names)
    table = result.check("table skp.public.declarations")
    assert table is not None and f"{taken.rows_at_backup} rows, checksum matches" in table.detail
    assert "restore_s" in result.timings and "verification_s" in result.timings
    # The scratch copy is stopped and removed.
    assert not _port_open(RESTORE_PORT)
    assert not list(scratch_root.glob("drp-restore-*"))
    # Evidence of every check.
    assert verify_ledger(ledger.directory).ok
    kinds = [json.loads(line)["kind"] for line in (ledger.directory / "ledger.jsonl").open()]
    assert kinds.count("backup.check") == len(result.checks)
    assert "backup.verified" in kinds


def test_a_flipped_byte_is_detected_and_named(taken: Taken) -> None:
    ctx, base = _copy(taken, "flipped-byte")
    data = bytearray(ctx.repository.get_bytes(f"{base}/base.tar"))
    middle = len(data) // 2
    data[middle] ^= 0x01
    ctx.repository.put_bytes(f"{base}/base.tar", bytes(data))
    result = backups.verify_backup(ctx)
    assert not result.ok
    check = result.check("object base.tar")
    assert check is not None and not check.ok
    assert "SHA-256 differs from the manifest" in check.detail
    restore = result.check("restore")
    assert restore is not None and restore.skipped and "not attempted" in restore.detail


def test_a_missing_wal_segment_is_detected_and_named(taken: Taken) -> None:
    """A backup *written* without one of its WAL segments (its manifest agrees with what was
    stored), so that only the WAL checks can find it."""
    ctx, base = _copy(taken, "missing-wal")
    needed = rules.segments_needed(taken.manifest.wal_ranges, taken.manifest.wal_segment_size)
    dropped = needed[-1]
    rebuilt = io.BytesIO()
    stored = io.BytesIO(ctx.repository.get_bytes(f"{base}/pg_wal.tar"))
    with tarfile.open(fileobj=stored) as original, tarfile.open(fileobj=rebuilt, mode="w") as out:
        for member in original.getmembers():
            if Path(member.name).name != dropped:
                out.addfile(member, original.extractfile(member) if member.isfile() else None)
    raw = rebuilt.getvalue()
    ctx.repository.put_bytes(f"{base}/pg_wal.tar", raw)
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(raw)
        tmp.flush()
        digest, size = sha256_file(Path(tmp.name))
    objects = tuple(
        dataclasses.replace(o, size=size, sha256=digest) if o.name == "pg_wal.tar" else o
        for o in taken.manifest.objects
    )
    segments = tuple(s for s in taken.manifest.wal_segments if s != dropped)
    forged = dataclasses.replace(taken.manifest, objects=objects, wal_segments=segments)
    ctx.repository.put_bytes(f"{base}/{rules.MANIFEST_NAME}", forged.to_json())

    result = backups.verify_backup(ctx)
    assert not result.ok
    wal = result.check("wal")
    assert wal is not None and not wal.ok
    assert f"WAL segment(s) {dropped} missing from pg_wal.tar" in wal.detail
    verify = result.check("pg_verifybackup")
    assert verify is not None and not verify.ok and "WAL" in verify.detail
    assert result.check("object pg_wal.tar").ok  # type: ignore[union-attr]


def test_a_missing_object_is_detected_and_named(taken: Taken) -> None:
    ctx, base = _copy(taken, "missing-object")
    ctx.repository.delete(f"{base}/pg_wal.tar")
    result = backups.verify_backup(ctx)
    assert not result.ok
    check = result.check("object pg_wal.tar")
    assert check is not None and not check.ok
    assert check.detail.startswith(f"missing from s3://{BUCKET}/backups/missing-object/")
    assert result.reasons[0].startswith("object pg_wal.tar: missing from")


def test_a_stale_backup_is_detected_against_the_runbook_policy(taken: Taken) -> None:
    later = taken.manifest.taken_at + timedelta(hours=30)
    result = backups.verify_backup(taken.ctx, now=later, restore=False)
    assert not result.ok
    fresh = result.check("fresh")
    assert fresh is not None and not fresh.ok
    assert "30.0 h old, older than the 26 h the runbook allows" in fresh.detail
    assert result.reasons == (f"fresh: {fresh.detail}",)  # nothing else is wrong with it


def test_no_backup_at_all_is_a_clear_failure(taken: Taken) -> None:
    policy = taken.ctx.policy.model_copy(update={"prefix": "backups/nothing-here"})
    result = backups.verify_backup(dataclasses.replace(taken.ctx, policy=policy), restore=False)
    assert not result.ok
    assert result.reasons == (
        f"present: no complete backup under s3://{BUCKET}/backups/nothing-here (no "
        "drp-manifest.json): run `drp backup take`",
    )


def test_the_commands_take_and_verify_on_the_lab_with_a_local_repository(
    taken: Taken, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`drp backup take|verify --json` on runbooks/lab.yaml (repository: local)."""
    env = {
        "DRP_LAB_ROOT": str(taken.settings.lab_root),
        "DRP_EVIDENCE_DIR": str(scratch_root / "cli-evidence"),
        "DRP_BACKUP_DIR": str(scratch_root / "cli-repo"),
        "DRP_BACKUP_SCRATCH_DIR": str(scratch_root),
        "DRP_RESTORE_PORT": str(RESTORE_PORT),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    took = runner.invoke(app, ["backup", "take", "--json"])
    assert took.exit_code == 0, took.output
    summary = json.loads(took.stdout)
    assert summary["location"] == str(scratch_root / "cli-repo" / "backups" / "skp-db")
    stored = LocalRepository(scratch_root / "cli-repo").list("backups/skp-db/")
    assert {o.key.rsplit("/", 1)[1] for o in stored} >= {"base.tar", "drp-manifest.json"}

    # The restore test itself is proven above (test_a_good_backup_verifies_and_restores).
    checked = runner.invoke(app, ["backup", "verify", "--json", "--no-restore"])
    assert checked.exit_code == 0, checked.output
    verdict = json.loads(checked.stdout)
    assert verdict["ok"] and verdict["backup_id"] == summary["backup_id"]
    assert {"fresh", "wal", "pg_verifybackup"} <= {c["name"] for c in verdict["checks"] if c["ok"]}
    assert verify_ledger(verdict["ledger"]).ok

    readable = runner.invoke(app, ["backup", "verify", "--no-restore"])
    assert readable.exit_code == 0, readable.output
    assert "verified" in readable.stdout and summary["backup_id"] in readable.stdout
