"""Copy a closed run's evidence to S3 with Object Lock, and verify it straight from there.

``archive_run`` refuses a ledger that is open or fails verification (archiving a broken ledger
would lock the damage in), uploads every attachment, then ``ledger.jsonl`` and ``manifest.json``,
each in compliance mode until the runbook's retention date, records each object's version id
in the archive manifest (``archive.json``, uploaded last, locked too, and kept beside the local
ledger), and returns it.

``verify_archive`` reads the *first* version of ``archive.json`` (the locked original: an
overwrite only adds a newer version) and downloads exactly the versions it records, checks each
against its recorded SHA-256, rebuilds the run directory and runs the ordinary ledger
verification on it. Newer versions of any archived key are reported as notes, never read. Given
a local copy, it also names every local file that differs from the archive: a local ledger can be
rewritten with a consistent chain, the locked archive cannot.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp.adapters.objectstore import Lock, ObjectStoreError, S3Repository, sha256_file
from drp.domain import evidence_archive as rules
from drp.domain.evidence import VerificationResult
from drp.domain.evidence_archive import (
    ARCHIVE_MANIFEST,
    ArchivedObject,
    ArchiveFinding,
    ArchiveManifest,
    EvidencePolicy,
    S3Location,
)
from drp.domain.runbook import Runbook
from drp.errors import EvidenceError
from drp.ledger import ATTACHMENTS_DIR, LEDGER_FILE, MANIFEST_FILE, verify_ledger
from drp.settings import Settings

LOCK_MODE = "COMPLIANCE"


def _now() -> datetime:
    return datetime.now(UTC)


def run_files(directory: Path) -> list[str]:
    """The files of a run directory that make up its evidence, as paths relative to it."""
    names = [f"{ATTACHMENTS_DIR}/{p.name}" for p in sorted((directory / ATTACHMENTS_DIR).glob("*"))]
    return [n for n in names if (directory / n).is_file()] + [LEDGER_FILE, MANIFEST_FILE]


def archive_run(
    directory: Path,
    repo: S3Repository,
    policy: EvidencePolicy,
    *,
    now: datetime | None = None,
) -> ArchiveManifest:
    """Archive one closed, intact run directory under ``<prefix>/<directory name>/``."""
    now = now or _now()
    result = verify_ledger(directory)
    if not result.ok:
        first = result.problems[0] if result.problems else "no chain"
        raise EvidenceError(
            f"{directory}: the ledger fails verification ({first}); it is not archived (archiving "
            f"would lock the damage in): run `drp evidence verify {directory}`"
        )
    if not result.closed:
        raise EvidenceError(
            f"{directory}: the run's ledger is still open; archive it after the run closes it"
        )
    location = S3Location(repo.bucket, f"{policy.prefix.strip('/')}/{directory.name}")
    lock = Lock(LOCK_MODE, now + timedelta(days=policy.retention_days))
    objects: list[ArchivedObject] = []
    for path in run_files(directory):
        digest, size = sha256_file(directory / path)
        stored = repo.put_file(location.key(path), directory / path, sha256=digest, lock=lock)
        if not stored.version_id:
            raise EvidenceError(
                f"{repo.describe(location.key(path))} has no version id: the bucket must have "
                "versioning and Object Lock enabled"
            )
        objects.append(ArchivedObject(path, location.key(path), stored.version_id, digest, size))
    manifest = ArchiveManifest(
        run_id=result.run_id,
        records=result.records,
        head=result.head,
        bucket=repo.bucket,
        prefix=location.prefix,
        archived_at=now,
        retain_until=lock.retain_until,
        lock_mode=LOCK_MODE,
        objects=tuple(objects),
    )
    raw = manifest.to_json()
    repo.put_bytes(location.key(ARCHIVE_MANIFEST), raw, lock=lock)
    (directory / ARCHIVE_MANIFEST).write_bytes(raw)
    return manifest


@dataclass(frozen=True)
class ArchiveVerification:
    """The verdict on an archived run: the ledger's own verdict on the recorded versions, digest
    problems, differences with a local copy, and notes (overwrites seen, never read)."""

    location: str
    ledger: VerificationResult | None
    findings: tuple[ArchiveFinding, ...] = field(default=())
    manifest: ArchiveManifest | None = None

    @property
    def problems(self) -> tuple[ArchiveFinding, ...]:
        return tuple(f for f in self.findings if f.problem)

    @property
    def notes(self) -> tuple[ArchiveFinding, ...]:
        return tuple(f for f in self.findings if not f.problem)

    @property
    def ok(self) -> bool:
        return self.ledger is not None and self.ledger.ok and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "ok": self.ok,
            "run_id": self.manifest.run_id if self.manifest else None,
            "archived_at": self.manifest.archived_at.isoformat() if self.manifest else None,
            "retain_until": self.manifest.retain_until.isoformat() if self.manifest else None,
            "ledger": self.ledger.to_dict() if self.ledger else None,
            "problems": [f.as_dict() for f in self.problems],
            "notes": [f.as_dict() for f in self.notes],
        }


def _original_manifest(repo: S3Repository, location: S3Location) -> tuple[ArchiveManifest, int]:
    """The first version of ``archive.json`` and how many were written after it."""
    key = location.key(ARCHIVE_MANIFEST)
    versions = repo.versions(key)
    if not versions:
        raise EvidenceError(
            f"{location}: no {ARCHIVE_MANIFEST} there (hint: give the run's prefix, "
            "s3://bucket/<evidence prefix>/<run directory>)"
        )
    original = versions[-1]
    raw = repo.get_bytes(key, original.version_id)
    where = f"{repo.describe(key)} version {original.version_id}"
    return ArchiveManifest.from_json(raw, where), len(versions) - 1


def verify_archive(
    repo: S3Repository, location: S3Location, local: Path | None = None
) -> ArchiveVerification:
    """Verify an archived run from the versions its archive manifest records."""
    try:
        manifest, rewrites = _original_manifest(repo, location)
    except ObjectStoreError as exc:
        raise EvidenceError(f"{location}: {exc}") from exc
    findings: list[ArchiveFinding] = []
    if rewrites:
        findings.append(
            ArchiveFinding(
                ARCHIVE_MANIFEST,
                f"{rewrites} newer version(s) of {ARCHIVE_MANIFEST} were written after archiving; "
                "the original (first) version was used",
                problem=False,
            )
        )
    with tempfile.TemporaryDirectory(prefix="drp-archive-") as tmp:
        run = Path(tmp) / "run"
        (run / ATTACHMENTS_DIR).mkdir(parents=True)
        for entry in manifest.objects:
            try:
                data = repo.get_bytes(entry.key, entry.version_id)
            except ObjectStoreError as exc:
                findings.append(
                    ArchiveFinding(entry.path, f"version {entry.version_id} unreadable: {exc}")
                )
                continue
            problem = rules.compare_digest(entry, hashlib.sha256(data).hexdigest(), len(data))
            if problem:
                findings.append(problem)
            target = run / entry.path
            if target.parent != run and target.parent != run / ATTACHMENTS_DIR:
                findings.append(ArchiveFinding(entry.path, "not a path of a run directory"))
                continue
            target.write_bytes(data)
            ids = [v.version_id for v in repo.versions(entry.key)]
            newer = ids.index(entry.version_id) if entry.version_id in ids else 0
            note = rules.later_versions_note(entry, newer)
            if note:
                findings.append(note)
        result = verify_ledger(run)
    if result.head != manifest.head or result.records != manifest.records:
        findings.append(
            ArchiveFinding(
                LEDGER_FILE,
                f"the archived ledger has {result.records} records, head {result.head}; the "
                f"archive manifest recorded {manifest.records}, head {manifest.head}",
            )
        )
    if local is not None:
        findings.extend(rules.compare_local(manifest, _local_digests(local)))
    return ArchiveVerification(str(location), result, tuple(findings), manifest)


def _local_digests(directory: Path) -> dict[str, tuple[str, int] | None]:
    if not directory.is_dir():
        raise EvidenceError(f"{directory} is not a run directory to compare with the archive")
    return {path: sha256_file(directory / path) for path in run_files(directory)}


def s3_repository(bucket: str, settings: Settings | None = None) -> S3Repository:
    """The bucket at the configured endpoint (``DRP_S3_ENDPOINT_URL``; credentials: ``AWS_*``)."""
    settings = settings or Settings()
    return S3Repository.connect(settings.s3_endpoint_url, settings.s3_region, bucket)


def archive_after_run(runbook: Runbook, directory: Path) -> dict[str, Any] | None:
    """Archive a flow's closed ledger when the runbook asks for it (``evidence:``).

    A failure does not undo the run: it is returned (and the run's own ledger stays on disk),
    so that the caller can report it.
    """
    policy = runbook.evidence
    if policy is None:
        return None
    try:
        manifest = archive_run(directory, s3_repository(policy.bucket), policy)
    except (EvidenceError, ObjectStoreError) as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # the run is done: an archive failure is reported, never raised
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "location": f"s3://{manifest.bucket}/{manifest.prefix}",
        "retain_until": manifest.retain_until.isoformat(),
        "objects": len(manifest.objects),
    }


archive_after_run_task = task(name="archive-evidence", cache_policy=NO_CACHE)(archive_after_run)
