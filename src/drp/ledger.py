"""The evidence ledger on disk: a directory per run, written so that no crash loses data silently.

Layout (see :mod:`drp.domain.evidence` for the record format and the chain rules)::

    <run>/ledger.jsonl          one canonical JSON record per line, hash-chained
    <run>/attachments/<sha256>  stored files, named by the digest of their content
    <run>/manifest.json         run id, record count, head hash, closed flag, times, attachments

Durability is ordered: a record is written, flushed and fsynced *before* the manifest that counts
it is replaced (temp file, fsync, rename, fsync of the directory). A crash can therefore leave
only two things behind, and :meth:`Ledger.open` repairs both in the open, with a
``ledger.recovered`` record, while :func:`verify_ledger` (read-only) reports them:

- one valid record more than the manifest counts (crash between the record and the manifest);
- a torn last line (crash during the write): its bytes are kept as an attachment, then cut off.

Everything written passes through :func:`drp.domain.redaction.redact` first: secrets never reach
the disk. A :class:`Ledger` is safe to share between threads (Prefect tasks run in a pool).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drp.domain.evidence import (
    FORMAT_VERSION,
    GENESIS,
    AttachmentRef,
    ChainState,
    Kind,
    Problem,
    Record,
    StoredAttachment,
    VerificationResult,
    format_ts,
    jsonable,
    make_record,
    parse_record,
    refs_in,
    sha256_hex,
    validate_kind,
    verify_chain,
)
from drp.domain.redaction import redact, redact_text
from drp.errors import EvidenceError

LEDGER_FILE = "ledger.jsonl"
MANIFEST_FILE = "manifest.json"
ATTACHMENTS_DIR = "attachments"

Clock = Callable[[], datetime]


class NotALedger(EvidenceError):
    """The path given holds no ledger at all (as opposed to a ledger that fails verification)."""


def utc_now() -> datetime:
    """The default clock: now, in UTC."""
    return datetime.now(UTC)


@contextmanager
def _io_errors(action: str) -> Iterator[None]:
    """Turn an OS error into an :class:`EvidenceError` that says what could not be done."""
    try:
        yield
    except OSError as exc:
        raise EvidenceError(f"cannot {action}: {exc}") from exc


# --- Reading and verifying --------------------------------------------------------------------


def resolve_ledger_dir(path: Path | str) -> Path:
    """The ledger directory for ``path``: the directory itself, or the one holding ledger.jsonl."""
    candidate = Path(path)
    if candidate.is_file() and candidate.name == LEDGER_FILE:
        return candidate.parent
    if candidate.is_dir() and any((candidate / n).exists() for n in (LEDGER_FILE, MANIFEST_FILE)):
        return candidate
    raise NotALedger(
        f"{candidate} is not a ledger: give a run's ledger directory (holding {LEDGER_FILE} and "
        f"{MANIFEST_FILE}) or its {LEDGER_FILE}"
    )


def verify_ledger(path: Path | str) -> VerificationResult:
    """Verify the ledger at ``path`` (read-only): chain, manifest and every attachment's digest."""
    directory = resolve_ledger_dir(path)
    manifest_path = directory / MANIFEST_FILE
    stored = _AttachmentFiles(directory / ATTACHMENTS_DIR)
    ledger_path = directory / LEDGER_FILE
    with _io_errors(f"read the ledger at {directory}"):
        manifest = manifest_path.read_bytes() if manifest_path.exists() else None
        if not ledger_path.exists():
            return verify_chain([], manifest, attachments=stored)
        with ledger_path.open("rb") as lines:
            return verify_chain(lines, manifest, attachments=stored)


def read_records(path: Path | str) -> Iterator[tuple[int, Record | str]]:
    """Each line of a ledger as ``(line number, record)``, or a sentence when it cannot be read.

    For display: nothing is verified here (use :func:`verify_ledger` for that).
    """
    ledger_path = resolve_ledger_dir(path) / LEDGER_FILE
    if not ledger_path.exists():
        return
    with ledger_path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n"):
                yield number, f"incomplete last line ({len(line)} bytes): a write was cut off"
                continue
            try:
                yield number, parse_record(line)
            except EvidenceError as exc:
                yield number, str(exc)


class _AttachmentFiles(Mapping[str, StoredAttachment]):
    """The attachments directory as the verifier sees it: digest and size of each file, lazily.

    Files are hashed only when a record references them, and once each.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._seen: dict[str, StoredAttachment | None] = {}

    def __getitem__(self, name: str) -> StoredAttachment:
        if name not in self._seen:
            self._seen[name] = self._measure(name)
        found = self._seen[name]
        if found is None:
            raise KeyError(name)
        return found

    def _measure(self, name: str) -> StoredAttachment | None:
        path = self._directory / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return None
        digest, size = _digest_file(path)
        return StoredAttachment(sha256=digest, size=size)

    def __iter__(self) -> Iterator[str]:
        if not self._directory.is_dir():
            return iter(())
        return iter(sorted(p.name for p in self._directory.iterdir() if p.is_file()))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _digest_file(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks (attachments can be large event logs)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- Durable writes ---------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (POSIX needs the directory synced)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_line(path: Path, line: bytes) -> None:
    """Append one record line and make it durable before anything else happens."""
    with path.open("ab") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _write_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` whole or not at all: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_manifest(directory: Path, state: ChainState) -> None:
    text = json.dumps(state.manifest(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    _write_atomically(directory / MANIFEST_FILE, text.encode("utf-8"))


def _torn_tail(path: Path) -> tuple[int, bytes] | None:
    """Where the last line starts and its bytes, when the file does not end with a newline."""
    if not path.exists():
        return None
    with path.open("rb") as fh:
        position = fh.seek(0, os.SEEK_END)
        if position == 0:
            return None
        fh.seek(position - 1)
        if fh.read(1) == b"\n":
            return None
        tail = b""
        while position > 0:
            step = min(65536, position)
            position -= step
            fh.seek(position)
            tail = fh.read(step) + tail
            cut = tail.rfind(b"\n")
            if cut >= 0:
                return position + cut + 1, tail[cut + 1 :]
        return 0, tail


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)
        fh.flush()
        os.fsync(fh.fileno())


# --- The writer -------------------------------------------------------------------------------


class Ledger:
    """An open, append-only ledger for one run. Create one with :meth:`create` or :meth:`open`."""

    def __init__(
        self,
        directory: Path,
        state: ChainState,
        *,
        known_secrets: Iterable[str] = (),
        clock: Clock = utc_now,
    ) -> None:
        self._directory = directory
        self._state = state
        self._secrets: tuple[str, ...] = tuple(s for s in known_secrets if s)
        self._clock = clock
        self._lock = threading.RLock()
        self._broken: str | None = None

    # Starting and continuing.

    @classmethod
    def create(
        cls,
        directory: Path | str,
        run_id: str,
        meta: Mapping[str, Any] | None = None,
        *,
        known_secrets: Iterable[str] = (),
        clock: Clock = utc_now,
    ) -> Ledger:
        """Start the ledger of a new run in ``directory`` (created; must not hold a ledger yet).

        The empty manifest is written first, so that a crash at any point of creation leaves a
        directory that :meth:`open` can continue.
        """
        directory = Path(directory)
        if any((directory / name).exists() for name in (LEDGER_FILE, MANIFEST_FILE)):
            raise EvidenceError(
                f"{directory} already holds a ledger: use Ledger.open to continue that run"
            )
        if not isinstance(run_id, str) or not run_id.strip():
            raise EvidenceError("a ledger needs a run id (a non-empty string)")
        secrets = tuple(known_secrets)
        run_id = redact_text(run_id, secrets)
        now = format_ts(clock())
        state = ChainState(run_id, 0, GENESIS, closed=False, created=now, updated=now)
        with _io_errors(f"create a ledger in {directory}"):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / ATTACHMENTS_DIR).mkdir(exist_ok=True)
            _fsync_dir(directory.parent)
            _write_manifest(directory, state)
            _append_line(directory / LEDGER_FILE, b"")
            _fsync_dir(directory)
        ledger = cls(directory, state, known_secrets=secrets, clock=clock)
        ledger._write_open_record(meta or {})
        return ledger

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        known_secrets: Iterable[str] = (),
        clock: Clock = utc_now,
        reason: str | None = None,
    ) -> Ledger:
        """Continue an existing ledger (a resumed run appends to the same chain).

        The chain is verified first and a tampered ledger is refused. What a crash leaves behind
        is repaired and said so in a ``ledger.recovered`` record; then, unless the run was
        closed, a ``ledger.resumed`` record marks where the new attempt begins.
        """
        found = resolve_ledger_dir(directory)
        result = verify_ledger(found)
        if not result.recoverable or result.state is None:
            raise EvidenceError(_refusal(found, result))
        ledger = cls(found, result.state, known_secrets=known_secrets, clock=clock)
        with ledger._lock, _io_errors(f"recover the ledger at {found}"):
            ledger._recover(result)
            if not ledger.closed:
                before = {"records": result.records, "head": result.head or GENESIS}
                ledger._write(Kind.LEDGER_RESUMED, ledger._clean({**before, "reason": reason}))
        return ledger

    def _write_open_record(self, meta: Mapping[str, Any], **extra: Any) -> None:
        data = {"run_id": self._state.run_id, "format": FORMAT_VERSION, "meta": meta, **extra}
        self._write(Kind.LEDGER_OPEN, self._clean(data))

    def _recover(self, result: VerificationResult) -> None:
        """Repair what a crash left (torn tail, unconfirmed record) and record that it did."""
        refs: list[AttachmentRef] = []
        tail = _torn_tail(self._directory / LEDGER_FILE)
        if tail is not None:
            offset, torn = tail
            refs.append(self._store(f"torn-tail-line-{result.records + 1}.bin", torn))
            _truncate(self._directory / LEDGER_FILE, offset)
        if self._state.records == 0:
            note = "the first record was never written: the run stopped while creating the ledger"
            self._write_open_record({}, recreated=note)
        if result.problems:
            findings = [_finding(problem) for problem in result.problems]
            data = self._clean({"findings": findings})
            self._write(Kind.LEDGER_RECOVERED, data, tuple(refs), after_close=True)

    # Writing.

    def append(
        self,
        kind: str,
        data: Mapping[str, Any] | None = None,
        attachments: Iterable[AttachmentRef | Mapping[str, Any]] = (),
    ) -> Record:
        """Append one event (redacted), durable on return; refused once the ledger is closed.

        ``attachments`` are references from :meth:`attach`; references placed inside ``data``
        are listed with them, so that verification checks every file a record cites.
        """
        kind = validate_kind(kind)
        if kind.startswith("ledger."):
            raise EvidenceError(f"{kind!r}: ledger.* records are written by the ledger itself")
        cited = [*(AttachmentRef.from_value(ref) for ref in attachments), *refs_in(data)]
        refs = tuple(self._known_ref(ref) for ref in dict.fromkeys(cited))
        clean = self._clean(data or {})
        with self._lock:
            return self._write(kind, clean, refs)

    def attach(self, name: str, content: bytes | bytearray | Path) -> AttachmentRef:
        """Store a file by its digest (text is redacted first) and return its reference.

        Pass the reference to :meth:`append` (``attachments=[ref]``) so the chain vouches for it.
        """
        if not isinstance(name, str) or not name.strip():
            raise EvidenceError("an attachment needs a name (a non-empty string)")
        if isinstance(content, Path):
            with _io_errors(f"read {content} to attach it"):
                raw = content.read_bytes()
        elif isinstance(content, bytes | bytearray):
            raw = bytes(content)
        else:
            raise EvidenceError("attach bytes or a Path (encode text first)")
        with self._lock:
            self._check_writable()
        with _io_errors(f"store attachment {name!r} in {self._directory}"):
            return self._store(redact_text(name, self._secrets), self._redact_bytes(raw))

    def close(self, summary: Mapping[str, Any] | str | None = None) -> Record:
        """Write the closing record and mark the manifest closed; nothing may be appended after."""
        with self._lock:
            return self._write(Kind.LEDGER_CLOSE, self._clean({"summary": summary or {}}))

    def add_known_secrets(self, *secrets: str) -> None:
        """Mask these exact values from now on (a password learnt during the run, say)."""
        with self._lock:
            self._secrets = (*self._secrets, *(s for s in secrets if s))

    def _write(
        self,
        kind: str,
        data: dict[str, Any],
        refs: tuple[AttachmentRef, ...] = (),
        *,
        after_close: bool = False,
    ) -> Record:
        """Write one record, then the manifest that counts it; the caller holds the lock.

        Only a recovery note may follow the closing record (a crash can hit ``close`` too).
        """
        if not after_close:
            self._check_writable()
        if self._broken:
            raise EvidenceError(self._broken)
        state = self._state
        record = make_record(state.records, format_ts(self._clock()), kind, data, state.head, refs)
        following = state.advance(record)
        try:
            _append_line(self._directory / LEDGER_FILE, record.to_line())
            _write_manifest(self._directory, following)
        except OSError as exc:
            self._broken = (
                f"the ledger at {self._directory} could not be written ({exc}); its state is "
                "unknown: continue it with Ledger.open, which verifies and recovers it"
            )
            raise EvidenceError(self._broken) from exc
        self._state = following
        return record

    def _check_writable(self) -> None:
        if self._broken:
            raise EvidenceError(self._broken)
        if self._state.closed:
            raise EvidenceError(
                f"the ledger of run {self._state.run_id} is closed: start a new ledger for a "
                "new run"
            )

    def _store(self, name: str, content: bytes) -> AttachmentRef:
        """Write ``content`` under its digest (durably) unless that digest is already stored."""
        digest = sha256_hex(content)
        target = self._directory / ATTACHMENTS_DIR / digest
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            _write_atomically(target, content)
        return AttachmentRef(name=name, sha256=digest, size=len(content))

    def _known_ref(self, value: AttachmentRef | Mapping[str, Any]) -> AttachmentRef:
        """A reference that names a file this ledger really stores."""
        ref = AttachmentRef.from_value(value)
        target = self._directory / ATTACHMENTS_DIR / ref.sha256
        if not target.is_file() or target.stat().st_size != ref.size:
            raise EvidenceError(
                f"attachment {ref.name!r} ({ref.sha256[:12]}…) is not stored in this ledger: "
                "store it with Ledger.attach first"
            )
        return ref

    def _clean(self, data: Any) -> dict[str, Any]:
        """Record data as plain JSON with every secret masked (the boundary DESIGN.md asks for)."""
        if not isinstance(data, Mapping):
            raise EvidenceError("record data must be a mapping (a dict of JSON values)")
        cleaned = redact(jsonable(data), self._secrets)
        assert isinstance(cleaned, dict)
        return cleaned

    def _redact_bytes(self, content: bytes) -> bytes:
        """Text is redacted like record data; binary content is stored as it is."""
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return content
        return redact_text(text, self._secrets).encode("utf-8")

    # Reading.

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def run_id(self) -> str | None:
        return self._state.run_id

    @property
    def records(self) -> int:
        """How many records the ledger holds."""
        return self._state.records

    @property
    def head(self) -> str:
        """The hash of the last record (the value the manifest, and any outside anchor, keeps)."""
        return self._state.head

    @property
    def closed(self) -> bool:
        return self._state.closed

    def __repr__(self) -> str:
        return f"Ledger({str(self._directory)!r}, records={self.records}, closed={self.closed})"


def _finding(problem: Problem) -> dict[str, Any]:
    """A recovered problem as a ``ledger.recovered`` record lists it."""
    return {
        "code": problem.code,
        "line": problem.line,
        "seq": problem.seq,
        "message": problem.message,
    }


def _refusal(directory: Path, result: VerificationResult) -> str:
    """Why :meth:`Ledger.open` will not continue a ledger, and what to do instead."""
    first = result.problems[0] if result.problems else "no chain state"
    return (
        f"refusing to continue the ledger at {directory}: it fails verification "
        f"({len(result.problems)} problem(s); first: {first}). Run `drp evidence verify "
        f"{directory}` for the details, keep this ledger as evidence, and start a new one"
    )
