"""The evidence chain rules (drp.domain.evidence): encoding, hashing and tamper detection.

The oracle for "the first bad record" is the first line where the tampered ledger differs from
the intact one: that is the record an auditor has to be pointed at.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drp.domain.evidence import (
    GENESIS,
    AttachmentRef,
    ChainState,
    Kind,
    Record,
    StoredAttachment,
    VerificationResult,
    canonical_json,
    format_ts,
    iter_lines,
    jsonable,
    make_record,
    parse_record,
    record_hash,
    sha256_hex,
    summarize,
    validate_kind,
    verify_chain,
)
from drp.errors import EvidenceError

pytestmark = pytest.mark.unit

RUN_ID = "drill-2024-05-01"
START = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def ts(seq: int) -> str:
    return format_ts(START + timedelta(seconds=seq, microseconds=seq))


def build(
    n: int,
    refs_at: dict[int, tuple[AttachmentRef, ...]] | None = None,
    close: bool = False,
) -> tuple[list[Record], ChainState]:
    """An intact chain of ``n`` records (the first is ledger.open) and the state after it."""
    refs_at = refs_at or {}
    state = ChainState(RUN_ID, 0, GENESIS, closed=False, created=ts(0), updated=ts(0))
    records: list[Record] = []
    for seq in range(n):
        if seq == 0:
            kind, data = Kind.LEDGER_OPEN, {"run_id": RUN_ID, "meta": {"runbook": "failover"}}
        elif close and seq == n - 1:
            kind, data = Kind.LEDGER_CLOSE, {"summary": {"result": "ok"}}
        else:
            kind, data = Kind.STEP_END, {"step": f"step-{seq}", "rc": 0, "host": "drc-db"}
        record = make_record(seq, ts(seq), kind, data, state.head, refs_at.get(seq, ()))
        records.append(record)
        state = state.advance(record)
    return records, state


def lines_of(records: Sequence[Record]) -> list[bytes]:
    return [record.to_line() for record in records]


def first_difference(original: Sequence[bytes], tampered: Sequence[bytes]) -> int:
    for index, (a, b) in enumerate(zip(original, tampered, strict=False)):
        if a != b:
            return index
    return min(len(original), len(tampered))


def assert_first_bad(result: VerificationResult, position: int) -> None:
    assert not result.ok
    assert result.first_bad_seq == position
    assert result.first_bad_line == position + 1
    assert any(problem.line == position + 1 for problem in result.problems), result.problems


sizes = st.integers(min_value=2, max_value=9)


# --- Encoding ---------------------------------------------------------------------------------


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_non_ascii() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == (
        '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()
    )


def test_canonical_json_refuses_nan_which_json_cannot_spell() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_record_hash_is_sha256_of_the_canonical_record_without_its_hash() -> None:
    record = make_record(3, ts(3), "sql.check", {"lag_bytes": 0, "ok": True}, "a" * 64)
    body = {k: v for k, v in record.to_dict().items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert record.hash == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert record_hash(record.to_dict()) == record.hash


def test_a_record_line_is_canonical_json_of_the_whole_record_with_a_newline() -> None:
    record = make_record(0, ts(0), "ledger.open", {"run_id": RUN_ID}, GENESIS)
    assert record.to_line() == canonical_json(record.to_dict()) + b"\n"
    assert set(json.loads(record.to_line())) == {"seq", "ts", "kind", "data", "prev", "hash"}


def test_parse_record_reads_back_what_to_line_wrote_including_attachments() -> None:
    ref = AttachmentRef("events.json", "b" * 64, 10)
    record = make_record(1, ts(1), "ansible.task", {"task": "promote"}, "c" * 64, [ref])
    assert parse_record(record.to_line()) == record


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b"[1, 2]\n",
        b'{"seq": 0}\n',
        b"\xff\xfe\n",
    ],
)
def test_parse_record_refuses_a_line_that_is_not_a_record(line: bytes) -> None:
    with pytest.raises(EvidenceError):
        parse_record(line)


def test_format_ts_is_utc_with_microseconds_and_refuses_naive_times() -> None:
    jakarta = timezone(timedelta(hours=7))
    assert format_ts(datetime(2024, 5, 1, 10, 0, 0, 5, tzinfo=jakarta)) == (
        "2024-05-01T03:00:00.000005Z"
    )
    with pytest.raises(EvidenceError, match="timezone-aware"):
        format_ts(datetime(2024, 5, 1))


@pytest.mark.parametrize("kind", ["step.start", "command", "ansible.task", "sql.check"])
def test_dotted_lower_case_kinds_are_accepted(kind: str) -> None:
    assert validate_kind(kind) == kind


@pytest.mark.parametrize("kind", ["", "Step.Start", "step start", "step..end", ".x", "x."])
def test_other_kinds_are_refused(kind: str) -> None:
    with pytest.raises(EvidenceError):
        validate_kind(kind)


class Site(Enum):
    DC = "dc"


@dataclass(frozen=True)
class Probe:
    site: Site
    path: PurePosixPath


def test_jsonable_turns_dataclasses_enums_paths_and_times_into_plain_json() -> None:
    value = {
        "probe": Probe(Site.DC, PurePosixPath("/var/lib/pg")),
        "at": START,
        "took": timedelta(seconds=1.5),
        "hosts": ("dc-db", "drc-db"),
        2: "two",
    }
    assert jsonable(value) == {
        "probe": {"site": "dc", "path": "/var/lib/pg"},
        "at": "2024-05-01T03:00:00.000000Z",
        "took": 1.5,
        "hosts": ["dc-db", "drc-db"],
        "2": "two",
    }


@pytest.mark.parametrize("value", [float("nan"), float("inf"), b"raw", object()])
def test_jsonable_refuses_what_json_cannot_hold_faithfully(value: Any) -> None:
    with pytest.raises(EvidenceError):
        jsonable({"x": value})


# --- Intact ledgers ---------------------------------------------------------------------------


@given(n=st.integers(min_value=0, max_value=12), close=st.booleans())
def test_an_intact_ledger_verifies_with_its_head_count_and_closed_flag(n: int, close: bool) -> None:
    records, state = build(n, close=close and n > 1)
    result = verify_chain(lines_of(records), state.manifest())
    assert result.ok, result.problems
    assert result.records == n
    assert result.head == (records[-1].hash if records else GENESIS)
    assert result.closed == (close and n > 1)
    assert result.first_bad_seq is None and result.first_bad_line is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    # Surrogates cannot be written as UTF-8, so JSON text from a ledger never holds them.
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200)
@given(data=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_any_json_data_round_trips_and_verifies(data: dict[str, Any]) -> None:
    first = make_record(0, ts(0), "ledger.open", {"run_id": RUN_ID}, GENESIS)
    second = make_record(1, ts(1), "step.end", data, first.hash)
    state = ChainState(RUN_ID, 0, GENESIS, False, None, None).advance(first).advance(second)
    result = verify_chain(lines_of([first, second]), state.manifest())
    assert result.ok, result.problems
    assert parse_record(second.to_line()).data == data


def test_verify_reads_its_lines_in_one_pass_so_a_file_can_be_streamed() -> None:
    records, state = build(5)
    result = verify_chain((line for line in lines_of(records)), state.manifest())
    assert result.ok and result.records == 5


def test_verify_accepts_the_manifest_as_raw_json_text() -> None:
    records, state = build(3)
    assert verify_chain(lines_of(records), json.dumps(state.manifest())).ok


def test_iter_lines_splits_like_a_file_keeping_newlines_and_a_torn_tail() -> None:
    assert list(iter_lines(b'{"a":1}\n{"b"')) == [b'{"a":1}\n', b'{"b"']


# --- Tampering with records -------------------------------------------------------------------

FIELD_CHANGES = {
    "data": lambda raw: {**raw, "data": {**raw["data"], "rc": 1}},
    "ts": lambda raw: {**raw, "ts": "2030-01-01T00:00:00.000000Z"},
    "kind": lambda raw: {**raw, "kind": "approval" if raw["kind"] != "approval" else "error"},
    "seq": lambda raw: {**raw, "seq": raw["seq"] + 7},
    "prev": lambda raw: {**raw, "prev": "f" * 64},
    "hash": lambda raw: {**raw, "hash": "e" * 64},
    "attachments": lambda raw: {
        **raw,
        "attachments": [{"name": "x", "sha256": "d" * 64, "size": 1}],
    },
}


@given(n=sizes, data=st.data())
def test_a_changed_field_is_found_at_its_record(n: int, data: st.DataObject) -> None:
    records, state = build(n)
    original = lines_of(records)
    k = data.draw(st.integers(0, n - 1), label="position")
    field = data.draw(st.sampled_from(sorted(FIELD_CHANGES)), label="field")
    tampered = list(original)
    tampered[k] = canonical_json(FIELD_CHANGES[field](json.loads(original[k]))) + b"\n"
    result = verify_chain(tampered, state.manifest())
    assert_first_bad(result, k)
    assert any(p.code == "hash_mismatch" and p.line == k + 1 for p in result.problems)


def test_a_changed_record_is_reported_with_line_seq_and_meaning() -> None:
    records, state = build(8)
    lines = lines_of(records)
    lines[6] = lines[6].replace(b'"rc":0', b'"rc":1')
    result = verify_chain(lines, state.manifest())
    assert [str(p) for p in result.problems] == [
        "line 7 (seq 6): hash mismatch: the record was changed"
    ]


@given(n=sizes, data=st.data())
def test_a_removed_record_is_named_where_it_is_missing(n: int, data: st.DataObject) -> None:
    records, state = build(n)
    k = data.draw(st.integers(0, n - 1), label="position")
    original = lines_of(records)
    tampered = original[:k] + original[k + 1 :]
    result = verify_chain(tampered, state.manifest())
    assert_first_bad(result, k)


def _intruder(kind: str, k: int, records: Sequence[Record], j: int) -> Record:
    """A record to insert at position ``k``: foreign, chained in with a valid hash, or a copy."""
    prev = records[k - 1].hash if k else GENESIS
    if kind == "foreign":
        return make_record(k, ts(k), "approval", {"approved_by": "mallory"}, "a" * 64)
    if kind == "chained":
        return make_record(k, ts(k), "approval", {"approved_by": "mallory"}, prev)
    return records[j]  # an exact copy of another record


@given(n=sizes, data=st.data())
def test_an_inserted_record_is_named_even_when_chained_in_with_a_valid_hash(
    n: int, data: st.DataObject
) -> None:
    records, state = build(n)
    k = data.draw(st.integers(0, n), label="position")
    how = data.draw(st.sampled_from(["foreign", "chained", "copy"]), label="intruder")
    j = data.draw(st.integers(0, n - 1), label="copied record")
    original = lines_of(records)
    tampered = [*original[:k], _intruder(how, k, records, j).to_line(), *original[k:]]
    result = verify_chain(tampered, state.manifest())
    assert_first_bad(result, first_difference(original, tampered))


def test_a_chained_in_insertion_is_reported_as_not_part_of_the_chain() -> None:
    records, state = build(6)
    intruder = make_record(3, ts(3), "approval", {"approved_by": "mallory"}, records[2].hash)
    lines = lines_of(records)
    lines.insert(3, intruder.to_line())
    result = verify_chain(lines, state.manifest())
    assert result.first_bad_line == 4
    assert str(result.problems[0]).startswith("line 4 (seq 3): not part of the chain")


@given(n=sizes, data=st.data())
def test_swapped_records_are_found_at_the_first_one_out_of_place(
    n: int, data: st.DataObject
) -> None:
    records, state = build(n)
    i = data.draw(st.integers(0, n - 2), label="first")
    j = data.draw(st.integers(i + 1, n - 1), label="second")
    tampered = lines_of(records)
    tampered[i], tampered[j] = tampered[j], tampered[i]
    result = verify_chain(tampered, state.manifest())
    assert_first_bad(result, i)


@given(n=sizes, data=st.data())
def test_a_moved_record_is_found_at_the_first_line_that_differs(
    n: int, data: st.DataObject
) -> None:
    records, state = build(n)
    original = lines_of(records)
    source = data.draw(st.integers(0, n - 1), label="from")
    target = data.draw(st.integers(0, n - 1).filter(lambda t: t != source), label="to")
    tampered = list(original)
    tampered.insert(target, tampered.pop(source))
    result = verify_chain(tampered, state.manifest())
    assert_first_bad(result, first_difference(original, tampered))


@given(n=sizes, data=st.data())
def test_a_cut_off_tail_of_whole_records_is_found(n: int, data: st.DataObject) -> None:
    records, state = build(n)
    kept = data.draw(st.integers(0, n - 1), label="records kept")
    result = verify_chain(lines_of(records)[:kept], state.manifest())
    assert_first_bad(result, kept)
    assert any(p.code == "cut_off" for p in result.problems)


@given(n=sizes, data=st.data())
def test_a_torn_partial_last_line_is_found(n: int, data: st.DataObject) -> None:
    records, state = build(n)
    kept = data.draw(st.integers(0, n - 1), label="whole records kept")
    lines = lines_of(records)
    cut = data.draw(st.integers(1, len(lines[kept]) - 1), label="bytes of the torn line")
    tampered = [*lines[:kept], lines[kept][:cut]]
    result = verify_chain(tampered, state.manifest())
    assert_first_bad(result, kept)
    assert any(p.code == "torn" and p.line == kept + 1 for p in result.problems)


def test_a_reformatted_line_is_reported_although_its_content_still_matches() -> None:
    records, state = build(3)
    lines = lines_of(records)
    lines[1] = json.dumps(json.loads(lines[1])).encode() + b"\n"
    result = verify_chain(lines, state.manifest())
    assert [p.code for p in result.problems] == ["not_canonical"]
    assert result.first_bad_seq == 1


def test_records_after_the_closing_record_are_reported() -> None:
    records, state = build(4, close=True)
    extra = make_record(4, ts(4), "step.start", {"step": "late"}, records[-1].hash)
    state = state.advance(extra)
    result = verify_chain(lines_of([*records, extra]), state.manifest())
    assert [p.code for p in result.problems] == ["after_close"]
    assert result.first_bad_seq == 4


def test_a_recovery_note_may_follow_the_closing_record() -> None:
    records, state = build(4, close=True)
    note = make_record(4, ts(4), Kind.LEDGER_RECOVERED, {"findings": []}, records[-1].hash)
    assert verify_chain(lines_of([*records, note]), state.advance(note).manifest()).ok


# --- Tampering with the manifest --------------------------------------------------------------

MANIFEST_CHANGES = {
    "records+1": lambda m: {**m, "records": m["records"] + 1},
    "records-1": lambda m: {**m, "records": m["records"] - 1},
    "head": lambda m: {**m, "head": "9" * 64},
    "closed": lambda m: {**m, "closed": not m["closed"]},
    "run_id": lambda m: {**m, "run_id": "another-run"},
    "created": lambda m: {**m, "created": "2020-01-01T00:00:00.000000Z"},
    "updated": lambda m: {**m, "updated": "2020-01-01T00:00:00.000000Z"},
    "attachments": lambda m: {**m, "attachments": []},
    "version": lambda m: {**m, "version": 99},
    "missing key": lambda m: {k: v for k, v in m.items() if k != "head"},
}


@pytest.mark.parametrize("change", sorted(MANIFEST_CHANGES))
def test_a_changed_manifest_is_reported_without_blaming_a_record(change: str) -> None:
    ref = AttachmentRef("plan.txt", sha256_hex(b"plan"), 4)
    records, state = build(5, refs_at={2: (ref,)})
    manifest = MANIFEST_CHANGES[change](state.manifest())
    result = verify_chain(lines_of(records), manifest)
    assert not result.ok
    assert result.first_bad_seq is None
    assert all(p.where == "manifest.json" for p in result.problems), result.problems


@pytest.mark.parametrize("manifest", [None, b"{not json", b"[]"])
def test_a_missing_or_unreadable_manifest_fails_verification(manifest: bytes | None) -> None:
    records, _ = build(3)
    result = verify_chain(lines_of(records), manifest)
    assert not result.ok
    assert result.problems[0].code in {"manifest_missing", "manifest_invalid"}


# --- Attachments ------------------------------------------------------------------------------


@given(n=st.integers(min_value=3, max_value=9), data=st.data())
def test_a_changed_or_missing_attachment_is_found_at_the_first_record_citing_it(
    n: int, data: st.DataObject
) -> None:
    contents = [b"ansible events", b"query output"]
    refs = [AttachmentRef(f"file{i}", sha256_hex(c), len(c)) for i, c in enumerate(contents)]
    which = data.draw(st.integers(0, 1), label="attachment")
    cited = sorted(data.draw(st.sets(st.integers(1, n - 1), min_size=1), label="cited at"))
    refs_at = {k: (refs[which],) for k in cited}
    records, state = build(n, refs_at=refs_at)
    stored = {ref.sha256: StoredAttachment(ref.sha256, ref.size) for ref in refs}
    assert verify_chain(lines_of(records), state.manifest(), attachments=stored).ok
    if data.draw(st.booleans(), label="remove instead of change"):
        del stored[refs[which].sha256]
    else:
        stored[refs[which].sha256] = StoredAttachment(sha256_hex(b"forged"), refs[which].size)
    result = verify_chain(lines_of(records), state.manifest(), attachments=stored)
    assert_first_bad(result, cited[0])


# --- What a crash leaves behind ---------------------------------------------------------------


@given(n=sizes)
def test_one_record_more_than_the_manifest_counts_is_reported_as_recoverable(n: int) -> None:
    records, _ = build(n)
    _, before = build(n - 1)
    result = verify_chain(lines_of(records), before.manifest())
    assert [p.code for p in result.problems] == ["unconfirmed"]
    assert result.recoverable
    assert result.first_bad_seq == n - 1
    assert result.state is not None and result.state.head == records[-1].hash


@given(n=sizes, data=st.data())
def test_a_torn_write_after_the_manifest_is_reported_as_recoverable(
    n: int, data: st.DataObject
) -> None:
    records, state = build(n)
    torn = make_record(n, ts(n), "step.start", {"step": "next"}, records[-1].hash).to_line()
    cut = data.draw(st.integers(1, len(torn) - 1))
    result = verify_chain([*lines_of(records), torn[:cut]], state.manifest())
    assert [p.code for p in result.problems] == ["torn"]
    assert result.recoverable and result.first_bad_seq == n


def test_two_records_beyond_the_manifest_are_not_a_crash_and_not_recoverable() -> None:
    records, _ = build(6)
    _, before = build(4)
    result = verify_chain(lines_of(records), before.manifest())
    assert [p.code for p in result.problems] == ["beyond_manifest"]
    assert not result.recoverable and result.first_bad_seq == 4


# --- Presentation -----------------------------------------------------------------------------


def test_summary_puts_telling_fields_first_and_flattens_one_level() -> None:
    text = summarize({"extra": [1], "rc": 0, "step": "promote", "summary": {"result": "ok"}})
    assert text == "summary.result=ok, step=promote, rc=0"


def test_summary_is_cut_to_width() -> None:
    assert len(summarize({"message": "x" * 200}, width=40)) == 40


def test_records_are_immutable_values() -> None:
    record = make_record(0, ts(0), "ledger.open", {"run_id": RUN_ID}, GENESIS)
    with pytest.raises(AttributeError):
        record.seq = 5  # type: ignore[misc]
    assert replace(record, seq=1) != record
