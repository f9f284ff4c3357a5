"""The evidence chain: how a run's records are encoded, hashed, chained and verified.

Every flow run keeps an append-only ledger (DESIGN.md, "Run records and evidence") that an
auditor must be able to trust years later: a record that was changed, removed, inserted or moved,
or a tail that was cut off, must be found, and the first bad record named. This module holds the
rules, with no I/O, so that they can be tested exhaustively; :mod:`drp.ledger` does the files.

A record is ``{"seq", "ts", "kind", "data", "prev", "hash"}`` (plus ``"attachments"`` when it
references stored files). ``hash`` is the SHA-256 of the canonical JSON of the record without
``hash``; ``prev`` is the previous record's ``hash`` (:data:`GENESIS` for the first record).
Canonical JSON is sorted keys, no whitespace, UTF-8, non-ASCII kept as is.

The chain alone cannot show that its tail is missing, nor that records were appended by someone
else: the manifest holds the head hash and the count, so together they can. The verifier walks
backward from the manifest's head to find which lines really belong to the chain; that is how a
record inserted with a correctly computed hash, chained to its predecessor, is still named.

Positions: ``seq`` counts from 0, line numbers from 1, so record ``seq n`` belongs on line
``n + 1``. ``first_bad_seq`` is the position where the ledger first departs from an intact
chain: for a removed record that is the missing record's ``seq``, whatever the line there holds.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from pathlib import PurePath
from typing import Any
from uuid import UUID

from drp.errors import EvidenceError

GENESIS = "0" * 64
"""The ``prev`` of the first record, and the head of a ledger with no records."""

FORMAT_VERSION = 1
"""Version of the on-disk format, written into the manifest."""


class Kind(StrEnum):
    """Record kinds the platform writes; any dotted lower-case name is accepted."""

    LEDGER_OPEN = "ledger.open"
    LEDGER_RESUMED = "ledger.resumed"
    LEDGER_RECOVERED = "ledger.recovered"
    LEDGER_CLOSE = "ledger.close"
    STEP_START = "step.start"
    STEP_END = "step.end"
    COMMAND = "command"
    ANSIBLE_TASK = "ansible.task"
    SQL_CHECK = "sql.check"
    APPROVAL = "approval"
    NOTIFICATION = "notification"
    ERROR = "error"


RECOVERABLE = frozenset({"torn", "unconfirmed"})
"""Problem codes a crash leaves behind: a writer may recover them, an auditor still sees them."""

_KIND_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_RECORD_KEYS = frozenset({"seq", "ts", "kind", "data", "prev", "hash"})
_OPTIONAL_KEYS = frozenset({"attachments"})
_REF_KEYS = frozenset({"name", "sha256", "size"})
_MANIFEST_KEYS = ("version", "run_id", "records", "head", "closed", "created", "updated")

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


# --- Encoding ---------------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding that is hashed: sorted keys, no whitespace, UTF-8, no NaN."""
    return _ENCODER.encode(obj).encode("utf-8")


def sha256_hex(content: bytes) -> str:
    """SHA-256 of ``content``, lower-case hex (how every digest in a ledger is spelled)."""
    return hashlib.sha256(content).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash of a record: SHA-256 of its canonical JSON without the ``hash`` field."""
    return sha256_hex(canonical_json({k: v for k, v in record.items() if k != "hash"}))


def format_ts(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds (``2024-05-01T03:04:05.123456Z``), sortable as text."""
    if moment.tzinfo is None:
        raise EvidenceError("a ledger time must be timezone-aware: pass datetime.now(UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_kind(kind: str) -> str:
    """``kind`` as a plain string, if it is a dotted lower-case name such as ``step.start``."""
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise EvidenceError(
            f"record kind {kind!r} is not a dotted lower-case name such as 'step.start'"
        )
    return str(kind)


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data, so that what is hashed is exactly what is read back.

    Dataclasses, enums, paths, times, UUIDs and decimals are converted the obvious way; bytes
    and unknown objects are refused (attach them instead), as are non-finite floats, which JSON
    cannot spell.
    """
    if obj is None or (isinstance(obj, bool | int) and not isinstance(obj, Enum)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise EvidenceError(f"cannot record the number {obj}: JSON has no NaN or infinity")
        return obj
    if isinstance(obj, Enum):
        return jsonable(obj.value)
    if isinstance(obj, str):
        return str(obj)
    return _jsonable_compound(obj)


def _jsonable_compound(obj: Any) -> Any:
    """The containers and well-known value types of :func:`jsonable`."""
    if isinstance(obj, Mapping):
        return {_jsonable_key(k): jsonable(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [jsonable(item) for item in obj]
    if isinstance(obj, set | frozenset):
        return sorted((jsonable(item) for item in obj), key=lambda v: canonical_json(v))
    if isinstance(obj, datetime):
        return format_ts(obj) if obj.tzinfo is not None else obj.isoformat()
    if isinstance(obj, date | time):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, PurePath | UUID | Decimal):
        return str(obj)
    kind = "bytes" if isinstance(obj, bytes | bytearray) else type(obj).__name__
    raise EvidenceError(f"cannot record a value of type {kind}: convert it to JSON or attach it")


def _jsonable_key(key: Any) -> str:
    """A mapping key as JSON spells it; only strings, enums and integers are accepted."""
    if isinstance(key, Enum):
        key = key.value
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise EvidenceError(f"cannot record a mapping key of type {type(key).__name__}")


# --- Records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentRef:
    """A stored file as a record names it: by its digest, with the name it was attached under."""

    name: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_value(cls, value: AttachmentRef | Mapping[str, Any]) -> AttachmentRef:
        """Accept a ref or its dict form (as :meth:`Ledger.attach` documents), checking both."""
        if isinstance(value, AttachmentRef):
            value = value.to_dict()
        problem = _ref_problem(value)
        if problem:
            raise EvidenceError(f"not an attachment reference: {problem}")
        return cls(name=value["name"], sha256=value["sha256"], size=value["size"])


def refs_in(obj: Any) -> list[AttachmentRef]:
    """Attachment references placed anywhere inside record data, in order of appearance.

    A caller may put a reference in the data (``{"events": ref}``) rather than pass it apart;
    the ledger lists it with the record's attachments too, so that verification covers it.
    """
    if isinstance(obj, AttachmentRef):
        return [obj]
    if isinstance(obj, Mapping):
        return [ref for value in obj.values() for ref in refs_in(value)]
    if isinstance(obj, list | tuple):
        return [ref for item in obj for ref in refs_in(item)]
    return []


@dataclass(frozen=True)
class StoredAttachment:
    """What a stored attachment file actually holds: its digest and size, as computed on read."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Record:
    """One event of a run. ``data`` is plain JSON data; treat it as read-only."""

    seq: int
    ts: str
    kind: str
    data: dict[str, Any] = field(hash=False)
    prev: str
    hash: str
    attachments: tuple[AttachmentRef, ...] = ()

    def body(self) -> dict[str, Any]:
        """The record without its hash: what the hash covers."""
        body: dict[str, Any] = {
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "data": self.data,
            "prev": self.prev,
        }
        if self.attachments:
            body["attachments"] = [ref.to_dict() for ref in self.attachments]
        return body

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    def to_line(self) -> bytes:
        """The record as one ledger line, newline included."""
        return canonical_json(self.to_dict()) + b"\n"


def make_record(
    seq: int,
    ts: str,
    kind: str,
    data: Mapping[str, Any],
    prev: str,
    attachments: Sequence[AttachmentRef] = (),
) -> Record:
    """A new record chained to ``prev``, its hash computed; ``data`` must already be JSON."""
    record = Record(
        seq=seq,
        ts=ts,
        kind=validate_kind(kind),
        data=dict(data),
        prev=prev,
        hash="",
        attachments=tuple(attachments),
    )
    return dataclasses.replace(record, hash=record_hash(record.body()))


def parse_record(line: bytes | str) -> Record:
    """A record from one ledger line, its shape checked (its hash is *not* checked here)."""
    text = _text(line.rstrip(b"\n") if isinstance(line, bytes) else line.rstrip("\n"))
    raw = _decode_line(text) if text is not None else "not UTF-8: the line was damaged"
    if isinstance(raw, str):
        raise EvidenceError(raw)
    problem = _shape_problem(raw)
    if problem:
        raise EvidenceError(problem)
    return _record_from_raw(raw)


def _text(content: bytes | str) -> str | None:
    """A line's text, or None when its bytes are not UTF-8."""
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _reject_constant(name: str) -> Any:
    """JSON parsing hook: NaN and Infinity are not JSON and never written by a ledger."""
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_line(text: str) -> dict[str, Any] | str:
    """The JSON object on a line, or a sentence saying why there is none."""
    if not text:
        return "empty line"
    try:
        raw = _DECODER.decode(text)
    except ValueError:
        return "not valid JSON: the line was damaged or edited"
    if not isinstance(raw, dict):
        return "not a JSON object"
    return raw


def _shape_problem(raw: Mapping[str, Any]) -> str | None:
    """What is wrong with the fields of a decoded record, or None when its shape is right."""
    problem = _keys_problem(raw) or _field_problem(raw)
    if problem:
        return f"malformed record: {problem}"
    return _attachments_problem(raw.get("attachments"), "attachments" in raw)


def _keys_problem(raw: Mapping[str, Any]) -> str | None:
    keys = raw.keys()
    if keys == _RECORD_KEYS or keys == _RECORD_KEYS | _OPTIONAL_KEYS:
        return None
    missing = _RECORD_KEYS - keys
    if missing:
        return f"missing {', '.join(sorted(missing))}"
    return f"unexpected field {', '.join(sorted(keys - _RECORD_KEYS - _OPTIONAL_KEYS))}"


def _field_problem(raw: Mapping[str, Any]) -> str | None:
    """The first field of a record with the wrong type or spelling (checked in line order)."""
    if not _is_count(raw["seq"]):
        return "seq is not a non-negative integer"
    if not (isinstance(raw["ts"], str) and _TS_RE.fullmatch(raw["ts"])):
        return "ts is not RFC 3339 UTC with microseconds"
    if not (isinstance(raw["kind"], str) and _kind_ok(raw["kind"])):
        return "kind is not a dotted lower-case name"
    if not isinstance(raw["data"], dict):
        return "data is not an object"
    if not _is_hex64(raw["prev"]):
        return "prev is not a SHA-256 hex digest"
    if not _is_hex64(raw["hash"]):
        return "hash is not a SHA-256 hex digest"
    return None


@functools.lru_cache(maxsize=1024)
def _kind_ok(kind: str) -> bool:
    """Kinds repeat a great deal: remember the verdict (verification stays fast)."""
    return _KIND_RE.fullmatch(kind) is not None


def _attachments_problem(refs: Any, present: bool) -> str | None:
    """What is wrong with a record's ``attachments`` list, if it has one."""
    if not present:
        return None
    if not isinstance(refs, list) or not refs:
        return "malformed record: attachments is not a non-empty list"
    for ref in refs:
        problem = _ref_problem(ref)
        if problem:
            return f"malformed record: attachment {problem}"
    return None


def _ref_problem(ref: Any) -> str | None:
    """What is wrong with an attachment reference, or None."""
    if not isinstance(ref, Mapping) or set(ref.keys()) != _REF_KEYS:
        return "needs exactly name, sha256 and size"
    if not isinstance(ref["name"], str) or not ref["name"]:
        return "name is not a non-empty string"
    if not _is_hex64(ref["sha256"]):
        return "sha256 is not a SHA-256 hex digest"
    if not _is_count(ref["size"]):
        return "size is not a non-negative integer"
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hex64(value: Any) -> bool:
    return isinstance(value, str) and _HEX64_RE.fullmatch(value) is not None


def _record_from_raw(raw: Mapping[str, Any]) -> Record:
    """A :class:`Record` from a decoded dict whose shape has been checked."""
    refs = tuple(AttachmentRef.from_value(ref) for ref in raw.get("attachments", ()))
    return Record(
        seq=raw["seq"],
        ts=raw["ts"],
        kind=raw["kind"],
        data=raw["data"],
        prev=raw["prev"],
        hash=raw["hash"],
        attachments=refs,
    )


# --- Manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainState:
    """What a chain implies about itself; the manifest is this, written out."""

    run_id: str | None
    records: int
    head: str
    closed: bool
    created: str | None
    updated: str | None
    attachments: tuple[AttachmentRef, ...] = ()

    def advance(self, record: Record) -> ChainState:
        """The state once ``record`` is appended: what the writer's next manifest says."""
        return dataclasses.replace(
            self,
            records=self.records + 1,
            head=record.hash,
            closed=self.closed or record.kind == Kind.LEDGER_CLOSE,
            created=record.ts if self.records == 0 else self.created,
            updated=record.ts,
            attachments=tuple(dict.fromkeys([*self.attachments, *record.attachments])),
        )

    def manifest(self) -> dict[str, Any]:
        """The manifest for this state; ``created``/``updated`` are the first and last ``ts``."""
        return {
            "version": FORMAT_VERSION,
            "run_id": self.run_id,
            "records": self.records,
            "head": self.head,
            "closed": self.closed,
            "created": self.created,
            "updated": self.updated,
            "attachments": [ref.to_dict() for ref in self.attachments],
        }


def _manifest_problem(manifest: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a manifest, or None."""
    missing = [key for key in (*_MANIFEST_KEYS, "attachments") if key not in manifest]
    if missing:
        return f"missing {', '.join(missing)}"
    checks = (
        (manifest["version"] == FORMAT_VERSION, f"version is not {FORMAT_VERSION}"),
        (isinstance(manifest["run_id"], str), "run_id is not a string"),
        (_is_count(manifest["records"]), "records is not a non-negative integer"),
        (_is_hex64(manifest["head"]), "head is not a SHA-256 hex digest"),
        (isinstance(manifest["closed"], bool), "closed is not true or false"),
        (isinstance(manifest["attachments"], list), "attachments is not a list"),
    )
    for ok, message in checks:
        if not ok:
            return message
    for ref in manifest["attachments"]:
        problem = _ref_problem(ref)
        if problem:
            return f"an attachment entry {problem}"
    return None


# --- Verification results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a ledger, with where it is and what it probably means."""

    code: str
    message: str
    line: int | None = None
    seq: int | None = None
    where: str | None = None

    def __str__(self) -> str:
        if self.line is not None and self.seq is not None:
            return f"line {self.line} (seq {self.seq}): {self.message}"
        if self.line is not None:
            return f"line {self.line}: {self.message}"
        return f"{self.where or 'ledger'}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "line": self.line,
            "seq": self.seq,
            "where": self.where,
            "message": self.message,
            "text": str(self),
        }


@dataclass(frozen=True)
class VerificationResult:
    """The verdict on a ledger: intact or not, and if not, every problem and the first bad one.

    ``records`` counts complete lines; ``head`` is the hash on the last of them; ``state`` is
    what the lines imply (what the manifest should say), which a writer uses to continue.
    """

    ok: bool
    records: int
    head: str | None
    problems: tuple[Problem, ...]
    first_bad_seq: int | None
    first_bad_line: int | None
    closed: bool = False
    run_id: str | None = None
    state: ChainState | None = None

    @property
    def recoverable(self) -> bool:
        """True when every problem is one a crash leaves behind and a writer may repair."""
        return all(problem.code in RECOVERABLE for problem in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head": self.head,
            "closed": self.closed,
            "run_id": self.run_id,
            "first_bad_seq": self.first_bad_seq,
            "first_bad_line": self.first_bad_line,
            "problems": [problem.to_dict() for problem in self.problems],
        }


# --- Verification -----------------------------------------------------------------------------


_Expectation = tuple[int | None, tuple[str, ...] | None]
"""The seq and the possible ``prev`` values of the next line (None: cannot be known)."""


def _follows(expected: _Expectation, seq: int, prev: str) -> bool:
    seq_wanted, prevs = expected
    return (seq_wanted is None or seq == seq_wanted) and (prevs is None or prev in prevs)


@dataclass(frozen=True)
class _ManifestView:
    """The fields of a well-formed manifest that verification compares."""

    run_id: str
    records: int
    head: str
    closed: bool
    created: Any
    updated: Any
    attachments: tuple[AttachmentRef, ...]


class _Scan:
    """One streaming pass over the lines: per-line checks, and just enough kept for the rest.

    For each complete line it keeps the stored hash and seq; ``prev`` values, recomputed hashes
    and attachment references are kept only where they are unusual, so that an intact ledger
    of 100,000 records costs two short lists.
    """

    def __init__(
        self, head: str | None, attachments: Mapping[str, StoredAttachment] | None
    ) -> None:
        self.manifest_head = head
        self.stored = attachments
        self.hashes: list[str | None] = []
        self.seqs: list[int | None] = []
        self.prev_of: dict[int, str] = {}
        self.computed_of: dict[int, str] = {}
        self.refs_of: dict[int, tuple[AttachmentRef, ...]] = {}
        self.close_at: list[int] = []
        self.problems: list[Problem] = []
        self.bad: list[int] = []
        self.first: Mapping[str, Any] | None = None
        self.last_ts: str | None = None
        self.head_ts: str | None = None
        self.anomalous = False
        # What the next line may be: the successor of this line, or, after a break, of the last
        # line that linked properly (so that one inserted line yields one problem, not two).
        self._anchor: _Expectation = (0, (GENESIS,))
        self._expect: list[_Expectation] = [self._anchor]

    # The scan proper.

    def feed(self, line: bytes | str) -> None:
        index = len(self.hashes)
        ends = line.endswith(b"\n") if isinstance(line, bytes) else line.endswith("\n")
        if not ends:
            self._torn(index, line)
            return
        content = _text(line[:-1])
        raw = _decode_line(content) if content is not None else "not UTF-8: the line was damaged"
        problem = raw if isinstance(raw, str) else _shape_problem(raw)
        if problem or content is None:
            self._malformed(index, problem or "", raw)
            return
        assert isinstance(raw, dict)
        self._record(index, raw, content)

    def _torn(self, index: int, line: bytes | str) -> None:
        if not line:
            return
        size = len(line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line)
        self._flag(
            "torn",
            index,
            None,
            f"incomplete last line ({size} bytes, no newline): a write was cut off",
        )

    def _malformed(self, index: int, problem: str, raw: Any) -> None:
        self.hashes.append(None)
        seq = raw.get("seq") if isinstance(raw, dict) else None
        self.seqs.append(seq if _is_count(seq) else None)
        self.anomalous = True
        self._flag("malformed", index, self.seqs[-1], problem)
        expected_seq = self._expect[0][0]
        self._expect = [(None if expected_seq is None else expected_seq + 1, None), self._anchor]

    def _record(self, index: int, raw: dict[str, Any], content: str) -> None:
        stored, (computed, canonical) = raw["hash"], _hash_and_form(raw)
        seq, prev = raw["seq"], raw["prev"]
        self.hashes.append(stored)
        self.seqs.append(seq)
        self._check_hash(index, raw, stored, computed, canonical == content)
        linked = self._check_link(index, seq, prev)
        self._keep(index, raw, stored)
        here: _Expectation = (seq + 1, (stored,) if stored == computed else (stored, computed))
        if linked:
            self._anchor = here
        self._expect = [here] if linked else [here, self._anchor]

    def _check_hash(
        self, index: int, raw: dict[str, Any], stored: str, computed: str, canonical: bool
    ) -> None:
        if stored != computed:
            self.computed_of[index] = computed
            self.anomalous = True
            self._flag("hash_mismatch", index, raw["seq"], "hash mismatch: the record was changed")
            return
        if not canonical:
            self._flag(
                "not_canonical",
                index,
                raw["seq"],
                "not in canonical form: the line was rewritten (its content still matches)",
            )

    def _check_link(self, index: int, seq: int, prev: str) -> bool:
        """True when the line follows on from the one before it (or from the last sound one)."""
        if prev != (self.hashes[index - 1] if index else GENESIS):
            self.prev_of[index] = prev
            self.anomalous = True
        if seq != index:
            self.anomalous = True
        if any(_follows(expected, seq, prev) for expected in self._expect):
            return True
        expected_seq = self._expect[0][0]
        if expected_seq is not None and seq != expected_seq:
            self._flag("seq_break", index, seq, _seq_message(seq, expected_seq))
        else:
            self._flag(
                "prev_break",
                index,
                seq,
                "prev is not the hash of the record before it: that record was rewritten or "
                "replaced, or a record was inserted or removed here",
            )
        return False

    def _keep(self, index: int, raw: dict[str, Any], stored: str) -> None:
        """Remember what the manifest checks and the writer need, and check attachments."""
        if index == 0:
            self.first = raw
            if raw["kind"] != Kind.LEDGER_OPEN:
                self._flag("first_record", 0, raw["seq"], "the first record is not ledger.open")
        if self.close_at and raw["kind"] != Kind.LEDGER_RECOVERED:
            self._flag(
                "after_close",
                index,
                raw["seq"],
                f"{raw['kind']} after the closing record (line {self.close_at[0] + 1}): "
                "it was added after the run was closed",
            )
        if raw["kind"] == Kind.LEDGER_CLOSE:
            self.close_at.append(index)
        if stored == self.manifest_head:
            self.head_ts = raw["ts"]
        self.last_ts = raw["ts"]
        if "attachments" in raw:
            refs = tuple(AttachmentRef.from_value(ref) for ref in raw["attachments"])
            self.refs_of[index] = refs
            self._check_attachments(index, raw["seq"], refs)

    def _check_attachments(self, index: int, seq: int, refs: Iterable[AttachmentRef]) -> None:
        if self.stored is None:
            return
        for ref in refs:
            found = self.stored.get(ref.sha256)
            where = f"attachment {ref.name!r} ({ref.sha256[:12]}…)"
            if found is None:
                self._flag("attachment_missing", index, seq, f"{where} is missing")
            elif found.sha256 != ref.sha256 or found.size != ref.size:
                self._flag(
                    "attachment_changed",
                    index,
                    seq,
                    f"{where} does not match its digest: the file was changed",
                )

    def _flag(self, code: str, index: int, seq: int | None, message: str) -> None:
        self.problems.append(Problem(code, message, line=index + 1, seq=seq))
        self.bad.append(index)

    # Read access for the analysis.

    @property
    def count(self) -> int:
        return len(self.hashes)

    def prev(self, index: int) -> str | None:
        if index in self.prev_of:
            return self.prev_of[index]
        return self.hashes[index - 1] if index else GENESIS

    def intact(self, index: int, position: int) -> bool:
        """True when the line at ``index`` is a sound record for chain ``position``."""
        return (
            self.hashes[index] is not None
            and index not in self.computed_of
            and self.seqs[index] == position
        )

    def last_parsed(self) -> int | None:
        for index in range(self.count - 1, -1, -1):
            if self.hashes[index] is not None:
                return index
        return None


def _hash_and_form(raw: Mapping[str, Any]) -> tuple[str, str]:
    """The recomputed hash of a decoded record, and the canonical spelling of its whole line.

    One encoding serves both: keys are sorted and ``data`` always precedes ``hash``, so cutting
    ``,"hash":"<h>"`` out of the canonical line leaves exactly the canonical JSON of the record
    without its hash. The last occurrence is the top-level one, because the fields after it
    (``kind``, ``prev``, ``seq``, ``ts``) have been checked and cannot hold that text.
    """
    canonical = _ENCODER.encode(raw)
    marker = f',"hash":"{raw["hash"]}"'
    cut = canonical.rfind(marker)
    body = canonical[:cut] + canonical[cut + len(marker) :]
    return sha256_hex(body.encode("utf-8")), canonical


def _seq_message(seq: int, expected: int) -> str:
    if seq > expected:
        return (
            f"seq {seq} where seq {expected} was expected: a record is missing here (removed), "
            "or the records were reordered"
        )
    return (
        f"seq {seq} where seq {expected} was expected: a record was inserted here, or the "
        "records were reordered"
    )


def verify_chain(
    lines: Iterable[bytes | str],
    manifest: Mapping[str, Any] | bytes | str | None,
    *,
    attachments: Mapping[str, StoredAttachment] | None = None,
) -> VerificationResult:
    """Verify a ledger's lines against its manifest; name every problem and the first bad record.

    ``lines`` are the ledger's lines as read, each with its newline (a last line without one is a
    torn write). ``manifest`` is the parsed manifest, its raw text, or None when it is missing.
    ``attachments`` maps each stored attachment's file name (its claimed digest) to what the
    file actually holds; when None, attachments are not checked.
    """
    view, manifest_problems = _read_manifest(manifest)
    scan = _Scan(view.head if view else None, attachments)
    for line in lines:
        scan.feed(line)
    extra, positions = _analyse(scan, view)
    problems = sorted([*scan.problems, *extra], key=lambda p: (p.line is None, p.line or 0, p.code))
    problems += manifest_problems
    bad = [*scan.bad, *positions]
    first_bad = min(bad) if bad else None
    state = _chain_state(scan, view)
    return VerificationResult(
        ok=not problems,
        records=scan.count,
        head=state.head if scan.count == 0 or scan.hashes[-1] is not None else None,
        problems=tuple(problems),
        first_bad_seq=first_bad,
        first_bad_line=None if first_bad is None else first_bad + 1,
        closed=state.closed,
        run_id=state.run_id,
        state=state,
    )


def _read_manifest(
    manifest: Mapping[str, Any] | bytes | str | None,
) -> tuple[_ManifestView | None, list[Problem]]:
    """The manifest's fields, or the problem that makes it unusable."""
    where = "manifest.json"
    if manifest is None:
        message = "missing: the head of the chain cannot be confirmed, so a cut-off tail or "
        message += "appended records would go unnoticed"
        return None, [Problem("manifest_missing", message, where=where)]
    if isinstance(manifest, bytes | str):
        try:
            manifest = json.loads(manifest)
        except ValueError:
            return None, [Problem("manifest_invalid", "not valid JSON", where=where)]
    if not isinstance(manifest, Mapping):
        return None, [Problem("manifest_invalid", "not a JSON object", where=where)]
    problem = _manifest_problem(manifest)
    if problem:
        return None, [Problem("manifest_invalid", f"malformed: {problem}", where=where)]
    refs = tuple(AttachmentRef.from_value(ref) for ref in manifest["attachments"])
    view = _ManifestView(
        run_id=manifest["run_id"],
        records=manifest["records"],
        head=manifest["head"],
        closed=manifest["closed"],
        created=manifest["created"],
        updated=manifest["updated"],
        attachments=refs,
    )
    return view, []


def _analyse(scan: _Scan, view: _ManifestView | None) -> tuple[list[Problem], list[int]]:
    """Compare the lines with the manifest and with the chain that leads to its head."""
    end, head_found = _chain_end(scan, view)
    path, complete = _walk_back(scan, end)
    problems: list[Problem] = []
    positions: list[int] = []
    if not complete:
        return problems, positions  # a broken link: the forward checks already named it
    bad_position = next(
        (p for p, index in enumerate(path) if index != p or not scan.intact(index, p)), None
    )
    if bad_position is not None:
        positions.append(bad_position)
        problems += _intruders(scan, path)
        return problems, positions
    length = len(path)
    if view is None:
        return problems, positions
    if head_found:
        problems += _after_head(scan, view, length, positions)
        problems += _manifest_mismatches(scan, view, length)
    else:
        problems += _head_not_found(scan, view, length, positions)
    return problems, positions


def _chain_end(scan: _Scan, view: _ManifestView | None) -> tuple[int | None, bool]:
    """The line the chain should end at: the manifest's head, or else the last record."""
    if view is not None and view.head == GENESIS:
        return None, True
    if view is not None:
        found = [i for i in reversed(range(scan.count)) if scan.hashes[i] == view.head]
        if found:
            at_home = [i for i in found if scan.seqs[i] == i]
            return (at_home or found)[0], True
    return scan.last_parsed(), False


def _walk_back(scan: _Scan, end: int | None) -> tuple[list[int], bool]:
    """The lines on the chain that ends at ``end``, first to last, and whether it reaches genesis.

    Walking backward by ``prev`` from the head finds the records that truly belong, wherever they
    sit in the file; a record that is not on this path was inserted, however well it is hashed.
    """
    if end is None:
        return [], True
    if not scan.anomalous:
        return list(range(end + 1)), True
    index = _hash_index(scan)
    path, visited, current = [end], {end}, end
    while (prev := scan.prev(current)) != GENESIS:
        if current in scan.computed_of:
            return path[::-1], False  # a changed record: its prev cannot be trusted either
        nxt = _predecessor(scan, index.get(prev or "", ()), current, visited)
        if nxt is None:
            return path[::-1], False
        path.append(nxt)
        visited.add(nxt)
        current = nxt
    return path[::-1], True


def _hash_index(scan: _Scan) -> dict[str, list[int]]:
    """Lines by their stored hash (a copied record appears on several lines)."""
    index: dict[str, list[int]] = {}
    for i, digest in enumerate(scan.hashes):
        if digest is not None:
            index.setdefault(digest, []).append(i)
    return index


def _predecessor(
    scan: _Scan, candidates: Iterable[int], current: int, visited: set[int]
) -> int | None:
    """Which of the lines carrying the wanted hash is the real predecessor.

    Only copies share a hash. The copy on its own line (line ``seq + 1``) is the original;
    failing that, the nearest one before ``current``, then the nearest after it (reordering).
    """
    options = sorted(c for c in candidates if c not in visited)
    at_home = [c for c in options if scan.seqs[c] == c]
    before = [c for c in options if c < current]
    if at_home:
        return at_home[0]
    if before:
        return before[-1]
    return options[0] if options else None


def _intruders(scan: _Scan, path: Sequence[int]) -> list[Problem]:
    """Sound-looking records off the chain that leads to the head: they were inserted."""
    on_path = set(path)
    problems = []
    for index in range(max(path) + 1):
        if index not in on_path and scan.hashes[index] is not None:
            problems.append(
                Problem(
                    "not_in_chain",
                    "not part of the chain that leads to the head: the record was inserted",
                    line=index + 1,
                    seq=scan.seqs[index],
                )
            )
    return problems


def _after_head(
    scan: _Scan, view: _ManifestView, length: int, positions: list[int]
) -> list[Problem]:
    """Records after the manifest's head: one is a crash window, more were appended."""
    extra = scan.count - length
    if extra <= 0:
        return []
    positions.append(length)
    chained = scan.intact(length, length) and scan.prev(length) == view.head
    if extra == 1 and view.records == length and chained:
        message = (
            f"record seq {length} is not yet counted in the manifest: the writer stopped between "
            "writing it and updating the manifest (a crash window)"
        )
        return [Problem("unconfirmed", message, line=length + 1, seq=length)]
    message = (
        f"{extra} record(s) after the manifest's head (seq {length - 1}): they were appended "
        "without the manifest"
    )
    return [Problem("beyond_manifest", message, line=length + 1, seq=scan.seqs[length])]


def _head_not_found(
    scan: _Scan, view: _ManifestView, length: int, positions: list[int]
) -> list[Problem]:
    """The manifest's head is on no line: the tail was cut off, or the manifest was changed."""
    if view.records > length:
        positions.append(length)
        lost = (
            f"seq {length}" if view.records == length + 1 else f"seq {length}..{view.records - 1}"
        )
        message = (
            f"the manifest counts {view.records} records but the ledger ends after seq "
            f"{length - 1}: {lost} cut off"
        )
        if length == 0:
            message = f"the manifest counts {view.records} records but the ledger has none"
        return [Problem("cut_off", message, line=length + 1, seq=length)]
    last = f"the last is seq {length - 1}" if length else "the ledger has no records"
    message = (
        f"its head {view.head[:12]}… is the hash of no record ({last}): the manifest was "
        "changed, or its last record was rewritten"
    )
    return [Problem("manifest_mismatch", message, where="manifest.json")]


def _manifest_mismatches(scan: _Scan, view: _ManifestView, length: int) -> list[Problem]:
    """Fields of the manifest that disagree with the chain up to its head."""
    expected = _state_at(scan, length, view.head)
    pairs = [
        ("records", view.records, expected.records),
        ("run_id", view.run_id, expected.run_id if scan.first is not None else view.run_id),
        ("closed", view.closed, expected.closed),
        ("attachments", view.attachments, expected.attachments),
    ]
    if length:
        pairs += [("created", view.created, expected.created)]
        pairs += [("updated", view.updated, scan.head_ts)]
    return [
        Problem(
            "manifest_mismatch",
            f"{name} is {_show(actual)} but the chain says {_show(wanted)}: the manifest was "
            "changed",
            where="manifest.json",
        )
        for name, actual, wanted in pairs
        if actual != wanted
    ]


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return f"{len(value)} attachment(s)"
    return json.dumps(value, ensure_ascii=False)


def _state_at(scan: _Scan, length: int, head: str) -> ChainState:
    """The state the first ``length`` lines imply (they are known to chain correctly)."""
    first = scan.first
    run_id = first["data"].get("run_id") if first is not None else None
    listed = sorted(i for i in scan.refs_of if i < length)
    refs = dict.fromkeys(ref for index in listed for ref in scan.refs_of[index])
    return ChainState(
        run_id=run_id if isinstance(run_id, str) else None,
        records=length,
        head=head,
        closed=any(i < length for i in scan.close_at),
        created=first["ts"] if first is not None else None,
        updated=None,
        attachments=tuple(refs),
    )


def _chain_state(scan: _Scan, view: _ManifestView | None) -> ChainState:
    """The state all complete lines imply: what a writer continues from once they verify."""
    head = scan.hashes[-1] if scan.count else GENESIS
    state = _state_at(scan, scan.count, head or GENESIS)
    run_id = state.run_id if state.run_id is not None else (view.run_id if view else None)
    return dataclasses.replace(state, run_id=run_id, updated=scan.last_ts)


# --- Presentation -----------------------------------------------------------------------------

_SUMMARY_KEYS = (
    "summary",
    "message",
    "msg",
    "step",
    "name",
    "task",
    "host",
    "command",
    "cmd",
    "check",
    "status",
    "result",
    "rc",
    "exit_status",
    "approved_by",
    "reason",
    "error",
)


def summarize(data: Mapping[str, Any], width: int = 72) -> str:
    """A one-line digest of a record's data for tables: the telling scalar fields first."""
    text = ", ".join(_summary_parts(data))
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary_parts(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """``key=value`` for scalar fields, telling keys first; nested objects one level deep."""
    keys = [k for k in _SUMMARY_KEYS if k in data]
    keys += [k for k in data if k not in keys]
    for key in keys:
        value = data[key]
        if isinstance(value, dict) and not prefix:
            yield from _summary_parts(value, prefix=f"{key}.")
        elif not isinstance(value, dict | list):
            yield f"{prefix}{key}={_short(value)}"


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value.replace("\n", " ")
    return json.dumps(value, ensure_ascii=False)


def iter_lines(content: bytes) -> Iterator[bytes]:
    """Split ledger bytes into lines, newline kept, the way a file iterates."""
    start = 0
    while start < len(content):
        end = content.find(b"\n", start)
        if end < 0:
            yield content[start:]
            return
        yield content[start : end + 1]
        start = end + 1
