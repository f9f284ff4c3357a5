"""The rules that judge backups and read evidence archives: pure, no services."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from drp.domain import backup as rules
from drp.domain.backup import BackupPolicy, TableState, WalRange
from drp.domain.evidence_archive import ArchivedObject, ArchiveManifest, compare_local, parse_s3_url
from drp.domain.runbook import validate
from drp.errors import EvidenceError

pytestmark = pytest.mark.unit

SEG = 16 * 1024 * 1024
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _manifest(**changes: object) -> rules.BackupManifest:
    base = rules.BackupManifest(
        backup_id="skp-db-1",
        database="skp-db",
        source="127.0.0.1:5432",
        server_version="15.8",
        taken_at=NOW,
        finished_at=NOW,
        wal_segment_size=SEG,
        wal_ranges=(WalRange(1, "0/3000028", "0/3000100"),),
        wal_segments=("000000010000000000000003",),
        objects=(rules.BackupObject("base.tar", 10, "a" * 64),),
        tables=(TableState("skp.public.declarations", 5, "11", 5, "11"),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_wal_segment_names_are_spelt_as_postgresql_does() -> None:
    assert rules.segment_name(1, rules.parse_lsn("0/3000028"), SEG) == "000000010000000000000003"
    assert rules.segment_name(2, rules.parse_lsn("1/FF000000"), SEG) == "0000000200000001000000FF"
    assert rules.segment_name(1, rules.parse_lsn("2/0"), SEG) == "000000010000000200000000"


def test_a_backup_needs_every_segment_its_wal_range_touches() -> None:
    ranges = (WalRange(1, "0/2FFFFF0", "0/4000010"),)
    assert rules.segments_needed(ranges, SEG) == (
        "000000010000000000000002",
        "000000010000000000000003",
        "000000010000000000000004",
    )
    # An end exactly on a boundary does not need the next segment.
    assert rules.segments_needed((WalRange(1, "0/3000028", "0/4000000"),), SEG) == (
        "000000010000000000000003",
    )


def test_a_missing_segment_is_named_with_the_range_that_needs_it() -> None:
    check = rules.judge_wal(_manifest(), present=())
    assert not check.ok
    assert "000000010000000000000003 missing from pg_wal.tar" in check.detail
    assert "0/3000028..0/3000100 on timeline 1" in check.detail
    assert rules.judge_wal(_manifest(), present=("000000010000000000000003",)).ok


def test_freshness_against_the_policy() -> None:
    policy = BackupPolicy(freshness_hours=26)
    assert rules.judge_freshness(NOW, NOW + timedelta(hours=25), policy).ok
    stale = rules.judge_freshness(NOW, NOW + timedelta(hours=27), policy)
    assert not stale.ok and "27.0 h old, older than the 26 h" in stale.detail
    future = rules.judge_freshness(NOW, NOW - timedelta(hours=2), policy)
    assert not future.ok and "in the future" in future.detail


def test_objects_missing_resized_or_changed_are_each_named() -> None:
    manifest = _manifest(
        objects=(
            rules.BackupObject("base.tar", 10, "a" * 64),
            rules.BackupObject("pg_wal.tar", 20, "b" * 64),
            rules.BackupObject("backup_manifest", 30, "c" * 64),
        )
    )
    found = {
        "base.tar": rules.FoundObject(10, "f" * 64),
        "pg_wal.tar": None,
        "backup_manifest": rules.FoundObject(29),
    }
    checks = {c.name: c for c in rules.judge_objects(manifest, found, "s3://b/p")}
    assert "SHA-256 differs" in checks["object base.tar"].detail
    assert checks["object pg_wal.tar"].detail.startswith("missing from s3://b/p/skp-db-1/")
    assert "29 bytes stored, 30 recorded" in checks["object backup_manifest"].detail
    assert not any(c.ok for c in checks.values())


def test_restored_tables_are_compared_exactly_when_stable_and_by_range_when_not() -> None:
    stable = TableState("t", 5, "11", 5, "11")
    assert rules.judge_tables([stable], {"t": (5, "11")})[0].ok
    assert "4 rows restored, 5 recorded" in rules.judge_tables([stable], {"t": (4, "11")})[0].detail
    assert "checksum differs" in rules.judge_tables([stable], {"t": (5, "12")})[0].detail
    moving = TableState("t", 5, "11", 9, "19")
    assert not moving.stable
    assert rules.judge_tables([moving], {"t": (7, "17")})[0].ok
    assert not rules.judge_tables([moving], {"t": (10, "20")})[0].ok
    assert "cannot be read" in rules.judge_tables([stable], {"t": "no such table"})[0].detail


def test_a_manifest_round_trips_and_a_broken_one_names_the_field() -> None:
    manifest = _manifest()
    assert rules.BackupManifest.from_json(manifest.to_json(), "x") == manifest
    raw = manifest.to_json().replace(b'"taken_at"', b'"taken"')
    with pytest.raises(rules.BackupError, match=r"s3://b/k: field 'taken_at'"):
        rules.BackupManifest.from_json(raw, "s3://b/k")


def test_pg_verifybackup_output_becomes_a_short_reason() -> None:
    check = rules.judge_verifybackup(1, 'pg_verifybackup: error: checksum mismatch for file "x"\n')
    assert not check.ok and 'checksum mismatch for file "x"' in check.detail


def _runbook_data() -> dict:
    path = Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml"
    return yaml.safe_load(path.read_text())


def test_the_runbook_policies_are_validated_with_their_paths() -> None:
    data = _runbook_data()
    data["backups"] = {"freshness_hours": 0, "repository": "tape", "tables": [{"database": "skp"}]}
    data["evidence"] = {"bucket": "Bad_Bucket", "retention_days": 0}
    problems = {p.path: p.message for p in validate(data, playbooks=None, groups=None).problems}
    assert "greater than or equal to 1" in problems["backups.freshness_hours"]
    assert "tape" in problems["backups.repository"]
    assert problems["backups.tables[0].table"] == "required field is missing"
    assert "evidence.bucket" in problems and "evidence.retention_days" in problems


def test_the_lab_runbook_has_a_valid_backup_policy() -> None:
    validation = validate(_runbook_data(), playbooks=None, groups=None)
    assert validation.ok, validation.problems
    assert validation.runbook is not None and validation.runbook.backups is not None
    assert validation.runbook.backups.tables[0].qualified == "skp.public.declarations"


def test_s3_addresses_are_parsed_or_refused_with_a_hint() -> None:
    location = parse_s3_url("s3://drp-evidence/evidence/lab/run-1/")
    assert (location.bucket, location.prefix) == ("drp-evidence", "evidence/lab/run-1")
    with pytest.raises(EvidenceError, match="hint: s3://bucket/prefix"):
        parse_s3_url("/tmp/x")


def test_a_local_copy_that_differs_from_the_archive_is_named() -> None:
    entry = ArchivedObject("ledger.jsonl", "p/ledger.jsonl", "v1", "a" * 64, 10)
    manifest = ArchiveManifest(None, 1, None, "b", "p", NOW, NOW, "COMPLIANCE", (entry,))
    assert compare_local(manifest, {"ledger.jsonl": ("a" * 64, 10)}) == ()
    (finding,) = compare_local(manifest, {"ledger.jsonl": ("b" * 64, 10)})
    assert finding.path == "ledger.jsonl" and "changed after archiving" in finding.message
    (missing,) = compare_local(manifest, {})
    assert "missing from the local copy" in missing.message
