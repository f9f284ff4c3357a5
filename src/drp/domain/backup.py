"""Backups as data and the rules that judge them (Pasal 3: backups that really restore).

A backup is worth something only if it can be restored, so verification answers a list of
questions, each a :class:`Check` with a sentence that says what was found and, when it failed,
what to do: is the backup there, is it fresh against the runbook's policy, are the stored objects
the ones written (sizes and SHA-256 against the manifest), is every WAL segment the backup needs
inside it, does ``pg_verifybackup`` pass, and does a real restore give back the row counts and
checksums recorded when the backup was taken. This module decides; it reads no file and talks to
no server (the tasks in :mod:`drp.tasks.backups` do, and hand the facts in).

The runbook's policy (:class:`BackupPolicy`) lives here too, so that the runbook model only
refers to it; its limits are pydantic constraints, which the runbook validator reports with the
path of the value (``backups.freshness_hours: should be greater than or equal to 1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from drp.errors import DrpError

MANIFEST_NAME = "drp-manifest.json"
"""The manifest object of one backup; written last, so its presence means the backup is whole."""

BASE_TAR, WAL_TAR, PG_MANIFEST = "base.tar", "pg_wal.tar", "backup_manifest"
"""What ``pg_basebackup -Ft -X stream`` writes: the data directory, its WAL, PostgreSQL's own
manifest (the one ``pg_verifybackup`` checks)."""

MANIFEST_FORMAT = 1

_TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


class BackupError(DrpError):
    """A backup could not be taken or read (not a verdict: verdicts are :class:`Verification`)."""


# --------------------------------------------------------------------------------------------
# Policy (part of the runbook)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TableRef(_Model):
    """A table whose row count and checksum are recorded at backup time and compared after the
    restore test."""

    database: StrictStr = Field(description="the database holding the table, e.g. skp")
    table: StrictStr = Field(
        pattern=_TABLE_RE.pattern,
        description="table name, optionally schema-qualified: declarations or public.declarations",
    )

    @property
    def qualified(self) -> str:
        """``database.schema.table``: how reports name it."""
        schema, _, name = self.table.rpartition(".")
        return f"{self.database}.{schema or 'public'}.{name}"


class BackupPolicy(_Model):
    """How backups of the runbook's databases are kept and judged."""

    freshness_hours: StrictInt = Field(
        default=26,
        ge=1,
        le=24 * 35,
        description="the newest backup must be younger than this (daily backups: 26 hours)",
    )
    repository: Literal["s3", "local"] = Field(
        default="s3",
        description="s3 (bucket DRP_S3_BUCKET at DRP_S3_ENDPOINT_URL) or local (DRP_BACKUP_DIR)",
    )
    prefix: StrictStr = Field(
        default="backups",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        description="where backups go in the repository (key prefix or sub-directory)",
    )
    tables: tuple[TableRef, ...] = Field(
        default=(), description="tables whose counts and checksums the restore test compares"
    )


# --------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class BackupObject:
    """One file of a backup as it was written: its name, size and SHA-256 (hex)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class TableState:
    """A table's row count and order-independent checksum, read before and after the backup.

    An online backup holds the data as of its end; a table written to while the backup ran has
    no single true value, so both readings are kept and the restore is judged against the range.
    """

    table: str  # database.schema.table
    rows_before: int
    checksum_before: str
    rows_after: int
    checksum_after: str

    @property
    def stable(self) -> bool:
        """True when nothing changed the table while the backup ran (exact comparison holds)."""
        return (self.rows_before, self.checksum_before) == (self.rows_after, self.checksum_after)


@dataclass(frozen=True)
class WalRange:
    """A range of WAL the backup needs, from PostgreSQL's ``backup_manifest`` (WAL-Ranges)."""

    timeline: int
    start_lsn: str
    end_lsn: str


@dataclass(frozen=True)
class BackupManifest:
    """What was backed up, when, from where, and what it must contain: the verifier's reference.

    Stored as ``drp-manifest.json`` beside the backup's objects, written after them.
    """

    backup_id: str
    database: str  # the runbook's database pair id
    source: str  # host:port of the server backed up (never a password)
    server_version: str
    taken_at: datetime
    finished_at: datetime
    wal_segment_size: int
    wal_ranges: tuple[WalRange, ...]
    wal_segments: tuple[str, ...]  # segments found in pg_wal.tar at backup time
    objects: tuple[BackupObject, ...]
    tables: tuple[TableState, ...] = ()
    format: int = MANIFEST_FORMAT

    def object(self, name: str) -> BackupObject | None:
        return next((o for o in self.objects if o.name == name), None)

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["taken_at"] = self.taken_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        return data

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str, where: str) -> BackupManifest:
        """Parse a stored manifest; a broken one is an error that names ``where`` and the field."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BackupError(f"{where}: not a JSON backup manifest ({exc})") from exc
        if not isinstance(data, Mapping):
            raise BackupError(f"{where}: a backup manifest must be a JSON object")
        current = "(top level)"
        try:
            current = "format"
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            current = "objects"
            objects = tuple(BackupObject(**o) for o in data["objects"])
            current = "tables"
            tables = tuple(TableState(**t) for t in data.get("tables", ()))
            current = "wal_ranges"
            ranges = tuple(WalRange(**w) for w in data["wal_ranges"])
            current = "taken_at"
            taken = datetime.fromisoformat(data["taken_at"])
            current = "finished_at"
            finished = datetime.fromisoformat(data["finished_at"])
            current = "backup_id"
            return cls(
                backup_id=str(data["backup_id"]),
                database=str(data["database"]),
                source=str(data["source"]),
                server_version=str(data["server_version"]),
                taken_at=taken,
                finished_at=finished,
                wal_segment_size=int(data["wal_segment_size"]),
                wal_ranges=ranges,
                wal_segments=tuple(str(s) for s in data["wal_segments"]),
                objects=objects,
                tables=tables,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(
                f"{where}: field {current!r} of the backup manifest is missing or wrong ({exc}); "
                "the backup cannot be trusted: take a new one"
            ) from exc


# --------------------------------------------------------------------------------------------
# WAL arithmetic (what pg_verifybackup needs to find inside pg_wal.tar)


def parse_lsn(text: str) -> int:
    """``'0/3000028'`` -> 50331688."""
    high, sep, low = text.partition("/")
    if not sep:
        raise ValueError(f"{text!r} is not an LSN (expected two hex numbers around a slash)")
    return (int(high, 16) << 32) | int(low, 16)


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The WAL file that holds ``lsn``, spelt as PostgreSQL does (``TTTTTTTTXXXXXXXXYYYYYYYY``)."""
    number = lsn // segment_size
    per_xlogid = 0x1_0000_0000 // segment_size
    return f"{timeline:08X}{number // per_xlogid:08X}{number % per_xlogid:08X}"


def segments_needed(ranges: Iterable[WalRange], segment_size: int) -> tuple[str, ...]:
    """Every WAL segment a backup needs to be consistent, in order."""
    names: list[str] = []
    for wal in ranges:
        start, end = parse_lsn(wal.start_lsn), parse_lsn(wal.end_lsn)
        # The end LSN points just past the last record: a record ending exactly on a segment
        # boundary does not need the next segment.
        last = max(start, end - 1)
        for number in range(start // segment_size, last // segment_size + 1):
            name = segment_name(wal.timeline, number * segment_size, segment_size)
            if name not in names:
                names.append(name)
    return tuple(names)


def wal_ranges_from_pg_manifest(raw: bytes | str) -> tuple[WalRange, ...]:
    """The ``WAL-Ranges`` of PostgreSQL's ``backup_manifest`` (JSON)."""
    try:
        data = json.loads(raw)
        return tuple(
            WalRange(int(r["Timeline"]), str(r["Start-LSN"]), str(r["End-LSN"]))
            for r in data["WAL-Ranges"]
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(
            f"backup_manifest has no readable WAL-Ranges ({exc}): was the backup taken with "
            "pg_basebackup 13 or later, with a manifest?"
        ) from exc


# --------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class Check:
    """One question of verification: its name, whether it passed, and why."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verification:
    """The verdict on one backup: every check, in the order they ran, and the timings."""

    backup_id: str | None
    location: str
    checks: tuple[Check, ...]
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks if not c.skipped)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The failed checks' sentences: what an operator reads first."""
        return tuple(f"{c.name}: {c.detail}" for c in self.checks if not c.ok and not c.skipped)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backup_id": self.backup_id,
            "location": self.location,
            "reasons": list(self.reasons),
            "checks": [c.as_dict() for c in self.checks],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def no_backup(location: str) -> Check:
    return Check(
        "present",
        False,
        f"no complete backup under {location} (no {MANIFEST_NAME}): run `drp backup take`",
    )


def judge_freshness(taken_at: datetime, now: datetime, policy: BackupPolicy) -> Check:
    """Fresh when younger than the policy's hours; a backup from the future is refused too."""
    age = now - taken_at
    limit = timedelta(hours=policy.freshness_hours)
    hours = age.total_seconds() / 3600
    if age < -timedelta(minutes=5):
        return Check(
            "fresh",
            False,
            f"taken at {taken_at.isoformat()}, {-hours:.1f} h in the future: check the clocks "
            "of this machine and of the database server",
        )
    if age > limit:
        return Check(
            "fresh",
            False,
            f"the newest backup is {hours:.1f} h old, older than the {policy.freshness_hours} h "
            "the runbook allows (backups.freshness_hours): check the backup-take schedule and "
            "take one now with `drp backup take`",
        )
    return Check("fresh", True, f"{hours:.1f} h old (limit {policy.freshness_hours} h)")


@dataclass(frozen=True)
class FoundObject:
    """What the repository says about a stored object (size; sha256 when it was measured)."""

    size: int
    sha256: str | None = None


def judge_objects(
    manifest: BackupManifest, found: Mapping[str, FoundObject | None], location: str
) -> tuple[Check, ...]:
    """Each object listed by the manifest: present, the recorded size, the recorded SHA-256."""
    checks: list[Check] = []
    for obj in manifest.objects:
        seen = found.get(obj.name)
        name = f"object {obj.name}"
        if seen is None:
            checks.append(
                Check(
                    name,
                    False,
                    f"missing from {location}/{manifest.backup_id}/ (the manifest lists it, "
                    f"{human_size(obj.size)}): the backup is incomplete; take a new one and find "
                    "out who deleted it",
                )
            )
        elif seen.size != obj.size:
            checks.append(
                Check(
                    name,
                    False,
                    f"{seen.size} bytes stored, {obj.size} recorded: the object was truncated "
                    "or replaced after the backup",
                )
            )
        elif seen.sha256 is not None and seen.sha256 != obj.sha256:
            checks.append(
                Check(
                    name,
                    False,
                    f"SHA-256 differs from the manifest (recorded {obj.sha256[:16]}…, found "
                    f"{seen.sha256[:16]}…): the object was changed or damaged after the backup",
                )
            )
        else:
            measured = "size and SHA-256 match" if seen.sha256 else "size matches"
            checks.append(Check(name, True, f"{human_size(obj.size)}, {measured}"))
    return tuple(checks)


def judge_wal(manifest: BackupManifest, present: Iterable[str]) -> Check:
    """Every WAL segment the backup's WAL-Ranges need is inside pg_wal.tar."""
    needed = segments_needed(manifest.wal_ranges, manifest.wal_segment_size)
    have = set(present)
    missing = [s for s in needed if s not in have]
    if missing:
        ranges = ", ".join(
            f"{w.start_lsn}..{w.end_lsn} on timeline {w.timeline}" for w in manifest.wal_ranges
        )
        return Check(
            "wal",
            False,
            f"WAL segment(s) {', '.join(missing)} missing from {WAL_TAR} (the backup needs WAL "
            f"{ranges}): it cannot reach a consistent state; take a new backup",
        )
    return Check("wal", True, f"{len(needed)} segment(s) needed, all present")


def judge_verifybackup(returncode: int, output: str) -> Check:
    """``pg_verifybackup``'s exit status and its first complaints."""
    if returncode == 0:
        return Check("pg_verifybackup", True, "backup successfully verified")
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    shown = "; ".join(lines[:4]) + (f"; ... {len(lines) - 4} more" if len(lines) > 4 else "")
    return Check("pg_verifybackup", False, f"failed (exit {returncode}): {shown}")


def judge_tables(
    recorded: Sequence[TableState], restored: Mapping[str, tuple[int, str] | str]
) -> tuple[Check, ...]:
    """Row counts and checksums after the restore against those recorded at backup time.

    ``restored`` maps a table to ``(rows, checksum)``, or to a sentence when it could not be read.
    """
    checks: list[Check] = []
    for state in recorded:
        name = f"table {state.table}"
        got = restored.get(state.table, "not read after the restore")
        if isinstance(got, str):
            checks.append(Check(name, False, f"cannot be read in the restored copy: {got}"))
            continue
        rows, checksum = got
        if state.stable:
            if (rows, checksum) == (state.rows_before, state.checksum_before):
                checks.append(Check(name, True, f"{rows} rows, checksum matches"))
            elif rows != state.rows_before:
                checks.append(
                    Check(
                        name,
                        False,
                        f"{rows} rows restored, {state.rows_before} recorded at backup time",
                    )
                )
            else:
                checks.append(
                    Check(
                        name,
                        False,
                        f"{rows} rows as recorded, but the content checksum differs (recorded "
                        f"{state.checksum_before[:12]}…, restored {checksum[:12]}…)",
                    )
                )
            continue
        low, high = sorted((state.rows_before, state.rows_after))
        matches = checksum in (state.checksum_before, state.checksum_after)
        if low <= rows <= high or matches:
            checks.append(
                Check(
                    name,
                    True,
                    f"{rows} rows, within {low}..{high} (the table changed while the backup ran, "
                    "so the checksum cannot be compared exactly)",
                )
            )
        else:
            checks.append(
                Check(
                    name,
                    False,
                    f"{rows} rows restored, outside the {low}..{high} read before and after the "
                    "backup",
                )
            )
    return tuple(checks)


def newest(manifests: Iterable[BackupManifest]) -> BackupManifest | None:
    """The most recent backup (by the time it was taken)."""
    return max(manifests, key=lambda m: m.taken_at, default=None)
