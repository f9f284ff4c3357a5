"""Backups that really restore (Pasal 3): take them, store them, and prove them by restoring.

``take_backup`` reads the chosen tables' row counts and checksums, runs ``pg_basebackup``
(tar format, WAL streamed in, PostgreSQL's manifest), reads the tables again, and stores every
file plus our manifest (``drp-manifest.json``, written last) in the repository. ``verify_backup``
finds the newest backup and answers every question of :mod:`drp.domain.backup`: present, fresh,
objects intact (each object is streamed once: hashed and unpacked in the same pass), every WAL
segment there, ``pg_verifybackup`` passes, and a restore into a scratch PostgreSQL gives back the
recorded counts and checksums; the scratch copy is always removed. Each step goes to the ledger.

The plain functions are what ``drp backup`` runs; the Prefect tasks at the bottom wrap them for
``flows/backups.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp.adapters import pgbackup
from drp.adapters.objectstore import (
    CHUNK,
    LocalRepository,
    ObjectStoreError,
    Repository,
    S3Repository,
    sha256_file,
)
from drp.adapters.pgbin import find_pg_bin, run_as_user
from drp.domain import backup as rules
from drp.domain.backup import BackupManifest, BackupPolicy, Check, Verification
from drp.domain.runbook import Runbook
from drp.errors import PostgresError, PreconditionFailed
from drp.ledger import Ledger
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.topology import resolve

Progress = Callable[[str], None]
Clock = Callable[[], datetime]


def _quiet(_: str) -> None:
    pass


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BackupContext:
    """Everything a backup run needs, resolved once from the runbook and the settings."""

    runbook: Runbook
    policy: BackupPolicy
    database: str  # the runbook's database pair id
    primary_dsn: str = field(repr=False)  # the server backed up (holds a password)
    repository: Repository
    pg_bin: Path
    run_as: str | None  # who runs the scratch PostgreSQL (root may not)
    scratch_root: Path
    restore_port: int
    evidence_dir: Path
    known_secrets: tuple[str, ...] = ()

    @property
    def location(self) -> str:
        return self.repository.describe(self.policy.prefix)


def repository_for(policy: BackupPolicy, settings: Settings) -> Repository:
    """The store the policy names: the S3 bucket of the settings, or the local directory."""
    if policy.repository == "local":
        return LocalRepository(settings.backup_dir)
    return S3Repository.connect(settings.s3_endpoint_url, settings.s3_region, settings.s3_bucket)


def prepare(runbook_path: str | Path, settings: Settings | None = None) -> BackupContext:
    """Load the runbook, check it has a backup policy, and find the primary and the store."""
    settings = settings or Settings()
    rb = load_runbook(runbook_path)
    if rb.backups is None:
        raise PreconditionFailed(
            f"{runbook_path}: the runbook has no backups section (hint: add backups: with "
            "freshness_hours, repository, prefix and tables; see runbooks/lab.yaml)"
        )
    if not rb.databases:
        raise PreconditionFailed(f"{runbook_path}: databases: lists no database pair to back up")
    topology = resolve(rb, Path(rb.inventory), settings)
    return BackupContext(
        runbook=rb,
        policy=rb.backups,
        database=rb.databases[0].id,
        primary_dsn=topology.primary_dsn,
        repository=repository_for(rb.backups, settings),
        pg_bin=find_pg_bin(),
        run_as=run_as_user(),
        scratch_root=settings.backup_scratch_dir,
        restore_port=settings.restore_port,
        evidence_dir=settings.evidence_dir,
        known_secrets=topology.known_secrets,
    )


def open_ledger(ctx: BackupContext, action: str, now: datetime | None = None) -> Ledger:
    """The run's ledger under ``<evidence>/backups/<action>-<time>/``."""
    now = now or _now()
    return Ledger.create(
        ctx.evidence_dir / "backups" / f"{action}-{now:%Y%m%d-%H%M%S-%f}",
        f"backup-{action}-{ctx.database}-{now:%Y%m%dT%H%M%S}",
        {"flow": f"backup-{action}", "runbook": ctx.runbook.name, "repository": ctx.location},
        known_secrets=ctx.known_secrets,
    )


# -- taking -------------------------------------------------------------------------------------


def _read_tables(ctx: BackupContext) -> dict[str, tuple[int, str]]:
    conn = pgbackup.Conn.parse(ctx.primary_dsn)
    states: dict[str, tuple[int, str]] = {}
    for ref in ctx.policy.tables:
        states[ref.qualified] = pgbackup.table_state(
            conn.with_target(dbname=ref.database), ref.table
        )
    return states


def _wal_members(path: Path) -> tuple[str, ...]:
    with tarfile.open(path) as tar:
        return tuple(sorted(Path(m.name).name for m in tar.getmembers() if m.isfile()))


def take_backup(
    ctx: BackupContext, ledger: Ledger, progress: Progress = _quiet, clock: Clock = _now
) -> BackupManifest:
    """Take a base backup of the primary and store it with its manifest; the manifest last."""
    taken = clock()
    backup_id = f"{ctx.database}-{taken:%Y%m%dT%H%M%S%fZ}"
    conn = pgbackup.Conn.parse(ctx.primary_dsn)
    source = f"{conn.host}:{conn.port}"
    ledger.append("backup.start", {"backup_id": backup_id, "source": source})
    progress(f"reading {len(ctx.policy.tables)} table(s) before the backup")
    timings: dict[str, float] = {}
    started = time.monotonic()
    before = _read_tables(ctx)
    timings["tables_s"] = time.monotonic() - started
    version, segment_size = pgbackup.server_facts(ctx.primary_dsn)
    try:
        ctx.scratch_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="drp-backup-", dir=ctx.scratch_root))
    except OSError as exc:
        raise rules.BackupError(
            f"cannot make a work directory under {ctx.scratch_root} ({exc}): set "
            "DRP_BACKUP_SCRATCH_DIR to a writable directory with room for one backup"
        ) from exc
    try:
        progress(f"pg_basebackup of {source} (tar, WAL streamed)")
        started = time.monotonic()
        argv = pgbackup.basebackup_argv(ctx.pg_bin, work / "out", conn, backup_id)
        pgbackup.run_tool(argv, password=conn.password)
        timings["basebackup_s"] = time.monotonic() - started
        ledger.append(
            "command",
            {"tool": "pg_basebackup", "argv": argv, "seconds": round(timings["basebackup_s"], 3)},
        )
        started = time.monotonic()
        after = _read_tables(ctx)
        timings["tables_s"] += time.monotonic() - started
        started = time.monotonic()
        out = work / "out"
        ranges = rules.wal_ranges_from_pg_manifest((out / rules.PG_MANIFEST).read_bytes())
        objects = []
        for name in (rules.BASE_TAR, rules.WAL_TAR, rules.PG_MANIFEST):
            digest, size = sha256_file(out / name)
            objects.append(rules.BackupObject(name, size, digest))
        timings["digest_s"] = time.monotonic() - started
        manifest = BackupManifest(
            backup_id=backup_id,
            database=ctx.database,
            source=source,
            server_version=version,
            taken_at=taken,
            finished_at=clock(),
            wal_segment_size=segment_size,
            wal_ranges=ranges,
            wal_segments=_wal_members(out / rules.WAL_TAR),
            objects=tuple(objects),
            tables=tuple(rules.TableState(name, *before[name], *after[name]) for name in before),
        )
        started = time.monotonic()
        for obj in manifest.objects:
            key = _key(ctx, backup_id, obj.name)
            progress(f"storing {obj.name} ({rules.human_size(obj.size)}) at {key}")
            stored = ctx.repository.put_file(key, out / obj.name, sha256=obj.sha256)
            ledger.append(
                "backup.stored",
                {
                    "object": obj.name,
                    "key": key,
                    "size": obj.size,
                    "sha256": obj.sha256,
                    "version_id": stored.version_id,
                },
            )
        key = _key(ctx, backup_id, rules.MANIFEST_NAME)
        ctx.repository.put_bytes(key, manifest.to_json())
        timings["upload_s"] = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rounded = {k: round(v, 3) for k, v in timings.items()}
    ledger.append(
        "backup.taken", {**manifest.to_dict(), "location": ctx.location, "timings": rounded}
    )
    progress(f"backup {backup_id} stored ({rules.human_size(manifest.size)}) in {ctx.location}")
    return manifest


def _key(ctx: BackupContext, backup_id: str, name: str) -> str:
    return f"{ctx.policy.prefix}/{backup_id}/{name}"


# -- finding ------------------------------------------------------------------------------------


def list_backups(ctx: BackupContext) -> tuple[list[BackupManifest], list[str]]:
    """Every complete backup under the policy's prefix, and a sentence per unreadable manifest."""
    manifests: list[BackupManifest] = []
    unreadable: list[str] = []
    for obj in ctx.repository.list(f"{ctx.policy.prefix}/"):
        if not obj.key.endswith(f"/{rules.MANIFEST_NAME}"):
            continue
        where = ctx.repository.describe(obj.key)
        try:
            manifests.append(BackupManifest.from_json(ctx.repository.get_bytes(obj.key), where))
        except (rules.BackupError, ObjectStoreError) as exc:
            unreadable.append(str(exc))
    return manifests, unreadable


# -- verifying ----------------------------------------------------------------------------------


class _HashingReader:
    """A read-only stream that hashes and counts what passes through it (one pass, two uses)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self._raw.read(size if size and size > 0 else CHUNK)
        except Exception as exc:  # botocore/urllib3 stream errors: the store stopped answering
            raise ObjectStoreError(f"reading stopped after {self.size} bytes: {exc}") from exc
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _fetch(
    ctx: BackupContext, manifest: BackupManifest, data: Path
) -> tuple[dict[str, rules.FoundObject | None], tuple[str, ...], list[Check]]:
    """Stream every object once, all at the same time: hash it and unpack it into ``data``."""
    (data / "pg_wal").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(manifest.objects), thread_name_prefix="fetch") as pool:
        fetched = list(
            pool.map(lambda obj: _fetch_one(ctx, manifest, obj.name, data), manifest.objects)
        )
    found = {name: seen for name, seen, _, _ in fetched}
    segments = next((names for name, _, names, _ in fetched if name == rules.WAL_TAR), ())
    problems = [problem for *_, problem in fetched if problem is not None]
    return found, segments, problems


def _fetch_one(
    ctx: BackupContext, manifest: BackupManifest, name: str, data: Path
) -> tuple[str, rules.FoundObject | None, tuple[str, ...], Check | None]:
    key = _key(ctx, manifest.backup_id, name)
    try:
        stream = ctx.repository.open(key)
    except ObjectStoreError:
        return name, None, (), None
    reader = _HashingReader(stream)
    names: tuple[str, ...] = ()
    problem = None
    try:
        if name == rules.PG_MANIFEST:
            with (data / rules.PG_MANIFEST).open("wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
        else:
            names = _unpack(reader, data if name == rules.BASE_TAR else data / "pg_wal")
        reader.drain()
    except (tarfile.TarError, OSError, EOFError) as exc:
        problem = Check(
            f"unpack {name}", False, f"cannot be unpacked ({exc}): the object is damaged"
        )
        with contextlib.suppress(ObjectStoreError):
            reader.drain()
    except ObjectStoreError as exc:
        problem = Check(f"fetch {name}", False, f"{exc}: check the repository and retry")
    finally:
        stream.close()
    return name, rules.FoundObject(reader.size, reader.digest.hexdigest()), names, problem


def _unpack(reader: _HashingReader, target: Path) -> tuple[str, ...]:
    names = []
    with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            tar.extract(member, target, filter="data")
            if member.isfile():
                names.append(Path(member.name).name)
    return tuple(sorted(names))


def _own_tree(root: Path, user: str | None) -> None:
    if not user:
        return
    entry = pwd.getpwnam(user)
    for dirpath, _dirs, files in os.walk(root):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


@contextmanager
def _scratch(ctx: BackupContext) -> Iterator[Path]:
    """A scratch directory for one restore test, removed whatever happens."""
    ctx.scratch_root.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="drp-restore-", dir=ctx.scratch_root))
    os.chmod(root, 0o755)  # the unprivileged PostgreSQL user must reach the data directory
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _restore_test(
    ctx: BackupContext, manifest: BackupManifest, root: Path, progress: Progress
) -> list[Check]:
    """Start the unpacked copy on the scratch port, read the tables, stop it."""
    data = root / "data"
    (data / "backup_manifest").unlink(missing_ok=True)
    for leftover in ("standby.signal", "recovery.signal", "postmaster.pid"):
        (data / leftover).unlink(missing_ok=True)
    os.chmod(data, 0o700)
    log = root / "restore.log"
    log.touch()
    _own_tree(root, ctx.run_as)
    conn = pgbackup.Conn.parse(ctx.primary_dsn)
    progress(f"restore test: starting the copy on 127.0.0.1:{ctx.restore_port}")
    started = time.monotonic()
    try:
        pgbackup.run_tool(
            pgbackup.pg_ctl_start_argv(ctx.pg_bin, data, ctx.restore_port, log),
            user=ctx.run_as,
            timeout=180,
        )
    except PostgresError as exc:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        return [Check("restore", False, f"the restored copy does not start: {exc}; log: {tail}")]
    try:
        seconds = time.monotonic() - started
        restored: dict[str, tuple[int, str] | str] = {}
        for ref in ctx.policy.tables:
            dsn = conn.with_target(host="127.0.0.1", port=ctx.restore_port, dbname=ref.database)
            try:
                restored[ref.qualified] = pgbackup.table_state(dsn, ref.table)
            except PostgresError as exc:
                restored[ref.qualified] = str(exc)
        checks = [Check("restore", True, f"the copy started and was consistent in {seconds:.1f} s")]
        checks.extend(rules.judge_tables(manifest.tables, restored))
        return checks
    finally:
        pgbackup.run_tool(
            pgbackup.pg_ctl_stop_argv(ctx.pg_bin, data), user=ctx.run_as, timeout=60, check=False
        )


def verify_backup(
    ctx: BackupContext,
    ledger: Ledger | None = None,
    progress: Progress = _quiet,
    *,
    backup_id: str | None = None,
    restore: bool = True,
    now: datetime | None = None,
) -> Verification:
    """Judge the newest backup (or ``backup_id``); every check recorded in the ledger."""
    now = now or _now()
    location = ctx.location
    timings: dict[str, float] = {}
    manifests, unreadable = list_backups(ctx)
    for sentence in unreadable:
        progress(f"skipped an unreadable manifest: {sentence}")
        if ledger:
            ledger.append("backup.manifest_unreadable", {"error": sentence})
    if backup_id is not None:
        manifests = [m for m in manifests if m.backup_id == backup_id]
    manifest = rules.newest(manifests)
    if manifest is None:
        where = f"{location} (backup {backup_id})" if backup_id else location
        result = Verification(backup_id, location, (rules.no_backup(where),))
        _record(ledger, result)
        return result
    progress(f"verifying {manifest.backup_id} in {location}")
    checks: list[Check] = [
        Check(
            "present",
            True,
            f"{manifest.backup_id}, taken at {manifest.taken_at.isoformat()} from "
            f"{manifest.source}, {rules.human_size(manifest.size)}",
        ),
        rules.judge_freshness(manifest.taken_at, now, ctx.policy),
    ]
    heads = {
        o.name: ctx.repository.head(_key(ctx, manifest.backup_id, o.name)) for o in manifest.objects
    }
    sizes = {n: (rules.FoundObject(h.size) if h else None) for n, h in heads.items()}
    listed = rules.judge_objects(manifest, sizes, location)
    if not all(c.ok for c in listed):
        checks.extend(listed)
        checks.extend(_skipped("the objects listed by the manifest are not all there"))
        return _finish(ledger, Verification(manifest.backup_id, location, tuple(checks), timings))
    with _scratch(ctx) as root:
        data = root / "data"
        data.mkdir()
        progress("fetching, hashing and unpacking the objects")
        started = time.monotonic()
        found, segments, unpack_problems = _fetch(ctx, manifest, data)
        timings["fetch_and_unpack_s"] = time.monotonic() - started
        checks.extend(rules.judge_objects(manifest, found, location))
        checks.extend(unpack_problems)
        checks.append(rules.judge_wal(manifest, segments))
        progress("pg_verifybackup")
        started = time.monotonic()
        answer = pgbackup.run_tool(
            pgbackup.verifybackup_argv(ctx.pg_bin, data), timeout=3600, check=False
        )
        timings["pg_verifybackup_s"] = time.monotonic() - started
        checks.append(rules.judge_verifybackup(answer.returncode, answer.stderr + answer.stdout))
        timings["verification_s"] = timings["fetch_and_unpack_s"] + timings["pg_verifybackup_s"]
        integrity_ok = all(c.ok for c in checks if c.name != "fresh")
        if not restore:
            checks.append(Check("restore", True, "not run (--no-restore)", skipped=True))
        elif not integrity_ok:
            checks.append(
                Check(
                    "restore",
                    False,
                    "not attempted: the backup failed the checks above",
                    skipped=True,
                )
            )
        else:
            started = time.monotonic()
            checks.extend(_restore_test(ctx, manifest, root, progress))
            timings["restore_s"] = time.monotonic() - started
    return _finish(ledger, Verification(manifest.backup_id, location, tuple(checks), timings))


def _skipped(why: str) -> list[Check]:
    return [
        Check(name, False, f"not run: {why}", skipped=True)
        for name in ("wal", "pg_verifybackup", "restore")
    ]


def _finish(ledger: Ledger | None, result: Verification) -> Verification:
    _record(ledger, result)
    return result


def _record(ledger: Ledger | None, result: Verification) -> None:
    if ledger is None:
        return
    for check in result.checks:
        ledger.append("backup.check", {"backup_id": result.backup_id, **check.as_dict()})
    ledger.append("backup.verified", result.as_dict())


def summary_markdown(result: Verification) -> str:
    """The verdict as a table, for the Prefect artifact."""
    verdict = "**verified**" if result.ok else "**FAILED**"
    lines = [
        f"# Backup {result.backup_id or '(none)'}: {verdict}",
        "",
        f"Repository: `{result.location}`",
        "",
        "| Check | Result | Detail |",
        "|---|---|---|",
    ]
    for c in result.checks:
        mark = "skipped" if c.skipped else ("ok" if c.ok else "FAILED")
        lines.append(f"| {c.name} | {mark} | {c.detail.replace('|', '/')} |")
    if result.timings:
        lines += ["", "Timings: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())]
    return "\n".join(lines) + "\n"


def take_summary(manifest: BackupManifest, location: str) -> dict[str, Any]:
    """What ``drp backup take --json`` and the flow return."""
    return {
        "backup_id": manifest.backup_id,
        "location": location,
        "size": manifest.size,
        "taken_at": manifest.taken_at.isoformat(),
        "objects": [o.__dict__ for o in manifest.objects],
        "tables": [t.__dict__ for t in manifest.tables],
        "wal_segments": list(manifest.wal_segments),
    }


# -- Prefect tasks --------------------------------------------------------------------------------

take_task = task(name="take-backup", cache_policy=NO_CACHE, retries=0)(take_backup)
verify_task = task(name="verify-backup", cache_policy=NO_CACHE, retries=0)(verify_backup)
