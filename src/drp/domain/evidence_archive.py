"""Evidence off-site and immutable: the archive manifest and the rules that read it back.

A ledger on the platform's own disk proves nothing once that disk can be rewritten by whoever
holds it, so a closed run's ledger and attachments are copied to object storage with Object Lock
in compliance mode (no one, not even the account's root, can delete or shorten it before the
retention date). Each stored object's *version id* is recorded in an archive manifest: an
overwrite only adds a newer version, and verification reads the recorded versions, never "the
latest". This module holds the policy, the manifest and the comparisons; the copying and reading
are in :mod:`drp.tasks.evidence_archive`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from drp.errors import EvidenceError

ARCHIVE_MANIFEST = "archive.json"
"""Name of the archive manifest, in the archive prefix and beside the local ledger."""

ARCHIVE_FORMAT = 1

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class EvidencePolicy(BaseModel):
    """Where closed ledgers are archived and for how long they cannot be deleted."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    bucket: StrictStr = Field(
        pattern=_BUCKET_RE.pattern,
        description="an S3 bucket created with Object Lock enabled",
    )
    prefix: StrictStr = Field(
        default="evidence",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        description="key prefix; each run goes under <prefix>/<run directory name>/",
    )
    retention_days: StrictInt = Field(
        ge=1,
        le=36500,
        description="compliance-mode retention: days before an archived object may be deleted",
    )


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix`` split into its parts."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/some/prefix`` -> S3Location; anything else is an error with a hint."""
    if not url.startswith("s3://"):
        raise EvidenceError(f"{url!r} is not an s3:// address (hint: s3://bucket/prefix)")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not _BUCKET_RE.match(bucket):
        raise EvidenceError(
            f"{url!r}: {bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, dots "
            "and dashes)"
        )
    return S3Location(bucket, prefix.strip("/"))


@dataclass(frozen=True)
class ArchivedObject:
    """One file of the ledger as archived: its path in the run directory, key, version, digest."""

    path: str  # relative to the ledger directory: ledger.jsonl, attachments/<sha256>, ...
    key: str
    version_id: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ArchiveManifest:
    """What was archived: the run, its chain head, the lock, and every object's version id."""

    run_id: str | None
    records: int
    head: str | None
    bucket: str
    prefix: str
    archived_at: datetime
    retain_until: datetime
    lock_mode: str
    objects: tuple[ArchivedObject, ...]
    format: int = ARCHIVE_FORMAT

    def to_json(self) -> bytes:
        data = asdict(self)
        data["archived_at"] = self.archived_at.isoformat()
        data["retain_until"] = self.retain_until.isoformat()
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> ArchiveManifest:
        """Parse an archive manifest; a broken one names ``where`` and the field."""
        current = "(top level)"
        try:
            data = json.loads(raw)
            if not isinstance(data, Mapping):
                raise ValueError("not a JSON object")
            current = "format"
            if data.get("format") != ARCHIVE_FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            current = "objects"
            objects = tuple(ArchivedObject(**o) for o in data["objects"])
            current = "archived_at"
            archived = datetime.fromisoformat(data["archived_at"])
            current = "retain_until"
            retain = datetime.fromisoformat(data["retain_until"])
            current = "records"
            return cls(
                run_id=data.get("run_id"),
                records=int(data["records"]),
                head=data.get("head"),
                bucket=str(data["bucket"]),
                prefix=str(data["prefix"]),
                archived_at=archived,
                retain_until=retain,
                lock_mode=str(data["lock_mode"]),
                objects=objects,
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise EvidenceError(
                f"{where}: field {current!r} of the archive manifest is missing or wrong ({exc})"
            ) from exc


@dataclass(frozen=True)
class ArchiveFinding:
    """A problem (``ok`` False) or a note about an archive, with the object it concerns."""

    path: str
    message: str
    problem: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def compare_digest(entry: ArchivedObject, sha256: str, size: int) -> ArchiveFinding | None:
    """A downloaded recorded version against the digest recorded when it was archived."""
    if size != entry.size or sha256 != entry.sha256:
        return ArchiveFinding(
            entry.path,
            f"version {entry.version_id} of {entry.key} has {size} bytes, SHA-256 "
            f"{sha256[:16]}…; archived with {entry.size} bytes, {entry.sha256[:16]}…",
        )
    return None


def later_versions_note(entry: ArchivedObject, later: int) -> ArchiveFinding | None:
    """An overwrite of an archived key: not a failure (the locked original is what we read), but
    something an auditor must see."""
    if later <= 0:
        return None
    return ArchiveFinding(
        entry.path,
        f"{later} newer version(s) of {entry.key} were written after archiving (an overwrite); "
        f"the archived version {entry.version_id} was verified, not the newer one(s)",
        problem=False,
    )


def compare_local(
    manifest: ArchiveManifest, local: Mapping[str, tuple[str, int] | None]
) -> tuple[ArchiveFinding, ...]:
    """A local copy of the run (path -> (sha256, size), None when missing) against the archive.

    A local ledger that verifies on its own can still have been rewritten with a consistent
    chain; the archived digests, locked at archiving time, are what decide.
    """
    findings: list[ArchiveFinding] = []
    for entry in manifest.objects:
        found = local.get(entry.path)
        if found is None:
            findings.append(ArchiveFinding(entry.path, "archived but missing from the local copy"))
        elif found != (entry.sha256, entry.size):
            findings.append(
                ArchiveFinding(
                    entry.path,
                    f"the local copy differs from the archived version {entry.version_id} "
                    f"(local SHA-256 {found[0][:16]}…, {found[1]} bytes; archived "
                    f"{entry.sha256[:16]}…, {entry.size} bytes): the local copy was changed "
                    "after archiving; trust the archive",
                )
            )
    archived = {e.path for e in manifest.objects}
    for path in sorted(set(local) - archived):
        if path.startswith("attachments/") and local[path] is not None:
            findings.append(
                ArchiveFinding(path, "present in the local copy but not in the archive")
            )
    return tuple(findings)
