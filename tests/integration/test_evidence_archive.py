"""Evidence off-site and immutable, against a real S3 endpoint over HTTP (moto's server mode,
which implements versioning and Object Lock in compliance mode).

One run is archived per module; each test attacks it a different way.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from s3_fixture import s3_endpoint  # noqa: F401  (a fixture)
from typer.testing import CliRunner

from drp.adapters.objectstore import Lock, ObjectStoreError, S3Repository
from drp.commands.evidence import app as evidence_app
from drp.domain.evidence_archive import ArchiveManifest, EvidencePolicy, S3Location
from drp.errors import EvidenceError
from drp.lab.config import repo_root
from drp.ledger import Ledger, verify_ledger
from drp.tasks.evidence_archive import archive_run, verify_archive

pytestmark = pytest.mark.integration

BUCKET = "drp-evidence-test"
POLICY = EvidencePolicy(bucket=BUCKET, prefix="evidence/lab", retention_days=7)
runner = CliRunner()


def _write_run(directory: Path, run_id: str, note: str) -> Path:
    """A closed ledger with an attachment, as a flow leaves it."""
    ledger = Ledger.create(directory, run_id, {"flow": "failover"})
    ref = ledger.attach("ansible-events.json", json.dumps({"task": "promote", "ok": True}).encode())
    ledger.append("step.start", {"step": "promote-drc-db"})
    ledger.append("step.end", {"step": "promote-drc-db", "note": note}, attachments=[ref])
    ledger.close({"status": "verified"})
    return directory


@dataclasses.dataclass(frozen=True)
class Archived:
    repo: S3Repository
    run: Path
    manifest: ArchiveManifest
    location: S3Location
    archived_at: datetime


@pytest.fixture(scope="module")
def archived(
    s3_endpoint: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Archived:
    repo = S3Repository.connect(s3_endpoint, "us-east-1", BUCKET)
    repo.ensure_bucket(object_lock=True)
    run = _write_run(tmp_path_factory.mktemp("evidence") / "inc-2026-001-failover", "inc-1", "ok")
    now = datetime.now(UTC)
    manifest = archive_run(run, repo, POLICY, now=now)
    return Archived(repo, run, manifest, S3Location(BUCKET, manifest.prefix), now)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("DRP_S3_ENDPOINT_URL", s3_endpoint)


def test_every_file_is_archived_locked_in_compliance_mode_with_its_version(
    archived: Archived,
) -> None:
    paths = [o.path for o in archived.manifest.objects]
    assert paths[-2:] == ["ledger.jsonl", "manifest.json"]
    assert len([p for p in paths if p.startswith("attachments/")]) == 1
    until = archived.archived_at + timedelta(days=7)
    for entry in archived.manifest.objects:
        head = archived.repo.head(entry.key, entry.version_id)
        assert head is not None and head.version_id == entry.version_id
        assert head.lock_mode == "COMPLIANCE"
        assert head.retain_until is not None
        assert abs((head.retain_until - until).total_seconds()) < 2
    # The archive manifest is locked too, and kept beside the local ledger.
    original = archived.repo.versions(archived.location.key("archive.json"))[-1]
    assert archived.repo.head(original.key, original.version_id).lock_mode == "COMPLIANCE"  # type: ignore[union-attr]
    assert (archived.run / "archive.json").read_bytes() == archived.manifest.to_json()


def test_verify_from_s3_passes(archived: Archived, s3_env: None) -> None:
    result = runner.invoke(evidence_app, ["verify", str(archived.location), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["problems"] == [] and report["run_id"] == "inc-1"
    assert report["ledger"]["records"] == 4 and report["ledger"]["closed"]
    readable = runner.invoke(evidence_app, ["verify", str(archived.location)])
    assert readable.exit_code == 0
    assert "COMPLIANCE lock until" in readable.stdout


def test_a_locked_version_cannot_be_deleted(archived: Archived) -> None:
    entry = next(o for o in archived.manifest.objects if o.path == "ledger.jsonl")
    with pytest.raises(ObjectStoreError, match="AccessDenied"):
        archived.repo.delete(entry.key, entry.version_id)
    # A plain delete only hides the key behind a delete marker; the recorded version remains.
    archived.repo.delete(entry.key)
    assert archived.repo.head(entry.key) is None
    assert verify_archive(archived.repo, archived.location).ok


def test_an_overwrite_does_not_fool_verification(
    archived: Archived, tmp_path: Path, s3_env: None
) -> None:
    """A consistent forged run (its own valid chain) uploaded over the archived keys, with a
    forged archive manifest that names the forged versions: only newer versions appear, and
    verification keeps reading the originals."""
    forged = _write_run(tmp_path / "forged", "inc-1", "nothing happened here")
    assert verify_ledger(forged).ok
    for name in ("ledger.jsonl", "manifest.json"):
        archived.repo.put_bytes(archived.location.key(name), (forged / name).read_bytes())
    lying = dataclasses.replace(
        archived.manifest,
        objects=tuple(
            dataclasses.replace(o, version_id=archived.repo.versions(o.key)[0].version_id or "")
            for o in archived.manifest.objects
        ),
    )
    archived.repo.put_bytes(archived.location.key("archive.json"), lying.to_json())

    report = verify_archive(archived.repo, archived.location)
    assert report.ok, [str(p) for p in report.problems]
    assert report.ledger is not None and report.ledger.head == archived.manifest.head
    notes = " ".join(str(n) for n in report.notes)
    assert "newer version(s) of archive.json" in notes
    assert "newer version(s) of evidence/lab/inc-2026-001-failover/ledger.jsonl" in notes
    result = runner.invoke(evidence_app, ["verify", str(archived.location)])
    assert result.exit_code == 0 and "note:" in result.stdout


def test_a_tampered_local_copy_is_detected_by_comparing_with_s3(
    archived: Archived, tmp_path: Path, s3_env: None
) -> None:
    """The local run rewritten with a consistent chain passes on its own; S3 says otherwise."""
    local = tmp_path / "local-copy"
    shutil.copytree(archived.run, local)
    forged = _write_run(tmp_path / "forged", "inc-1", "rewritten afterwards")
    for name in ("ledger.jsonl", "manifest.json"):
        shutil.copyfile(forged / name, local / name)
    assert verify_ledger(local).ok  # the forgery is self-consistent

    result = runner.invoke(
        evidence_app, ["verify", str(local), "--against", str(archived.location), "--json"]
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert not report["ok"] and report["local"]["ok"]
    named = {p["path"] for p in report["problems"]}
    assert named == {"ledger.jsonl", "manifest.json"}
    assert "the local copy was changed after archiving" in report["problems"][0]["message"]

    intact = runner.invoke(
        evidence_app, ["verify", str(archived.run), "--against", str(archived.location)]
    )
    assert intact.exit_code == 0, intact.output


def test_an_open_or_broken_ledger_is_not_archived(archived: Archived, tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "open", "inc-2", {})
    ledger.append("step.start", {"step": "x"})
    with pytest.raises(EvidenceError, match="still open"):
        archive_run(ledger.directory, archived.repo, POLICY)
    broken = _write_run(tmp_path / "broken", "inc-3", "x")
    text = (broken / "ledger.jsonl").read_text().replace('"step":"promote-drc-db"', '"step":"y"', 1)
    (broken / "ledger.jsonl").write_text(text)
    with pytest.raises(EvidenceError, match="fails verification"):
        archive_run(broken, archived.repo, POLICY)
    assert archived.repo.list(f"{POLICY.prefix}/broken/") == []


def test_the_archive_command_uses_the_runbooks_evidence_policy(
    archived: Archived, tmp_path: Path, s3_env: None
) -> None:
    data = yaml.safe_load((repo_root() / "runbooks" / "lab.yaml").read_text())
    data["inventory"] = str(repo_root() / "inventory" / "lab.yml")
    data["playbook_dir"] = str(repo_root() / "playbooks")
    data["evidence"] = {"bucket": BUCKET, "prefix": "evidence/cli", "retention_days": 3}
    runbook = tmp_path / "runbook.yaml"
    runbook.write_text(yaml.safe_dump(data))
    run = _write_run(tmp_path / "drill-42", "drill-42", "ok")
    result = runner.invoke(evidence_app, ["archive", str(run), "--runbook", str(runbook), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["location"] == f"s3://{BUCKET}/evidence/cli/drill-42"
    assert answer["lock_mode"] == "COMPLIANCE"
    verified = runner.invoke(evidence_app, ["verify", answer["location"]])
    assert verified.exit_code == 0, verified.output


def test_a_local_lock_request_is_refused_and_bad_addresses_are_named(
    tmp_path: Path, s3_env: None
) -> None:
    from drp.adapters.objectstore import LocalRepository

    with pytest.raises(ObjectStoreError, match="no Object Lock"):
        LocalRepository(tmp_path).put_bytes(
            "x", b"y", lock=Lock("COMPLIANCE", datetime.now(UTC) + timedelta(days=1))
        )
    result = runner.invoke(evidence_app, ["verify", "s3://No_Such/x"])
    assert result.exit_code == 2 and "not a valid bucket name" in result.output
    missing = runner.invoke(evidence_app, ["verify", f"s3://{BUCKET}/evidence/nothing"])
    assert missing.exit_code == 2 and "no archive.json there" in missing.output
