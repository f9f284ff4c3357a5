"""The ledger on disk (drp.ledger): durable appends, attachments, closing, resuming, crashes."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drp import ledger as ledger_module
from drp.domain.evidence import GENESIS, Kind, make_record, parse_record
from drp.errors import EvidenceError
from drp.ledger import (
    ATTACHMENTS_DIR,
    LEDGER_FILE,
    MANIFEST_FILE,
    Ledger,
    NotALedger,
    read_records,
    resolve_ledger_dir,
    verify_ledger,
)

pytestmark = pytest.mark.unit

RUN_ID = "failover-2024-05-01"


class Crash(BaseException):
    """The process dies here: nothing after this point runs, not even cleanup in ``except``."""


def ticking_clock() -> Iterator[datetime]:
    moment = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    while True:
        moment += timedelta(milliseconds=1)
        yield moment


def new_ledger(directory: Path, **kwargs: object) -> Ledger:
    clock = ticking_clock()
    return Ledger.create(
        directory, RUN_ID, {"runbook": "failover"}, clock=lambda: next(clock), **kwargs
    )  # type: ignore[arg-type]


def kinds(directory: Path) -> list[str]:
    return [entry.kind for _, entry in read_records(directory) if not isinstance(entry, str)]


def lines(directory: Path) -> list[bytes]:
    return (directory / LEDGER_FILE).read_bytes().splitlines(keepends=True)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / RUN_ID


# --- Writing ----------------------------------------------------------------------------------


def test_create_writes_an_opening_record_and_a_manifest_that_verify(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text())
    assert manifest["run_id"] == RUN_ID and manifest["records"] == 1
    assert manifest["head"] == ledger.head and manifest["closed"] is False
    assert (run_dir / ATTACHMENTS_DIR).is_dir()
    assert kinds(run_dir) == ["ledger.open"]
    assert verify_ledger(run_dir).ok


def test_create_refuses_a_directory_that_already_holds_a_ledger(run_dir: Path) -> None:
    new_ledger(run_dir)
    with pytest.raises(EvidenceError, match=r"Ledger\.open"):
        new_ledger(run_dir)


def test_append_returns_the_record_written_and_chains_it(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    head = ledger.head
    record = ledger.append("step.start", {"step": "fence-dc-db"})
    assert record.seq == 1 and record.prev == head and ledger.head == record.hash
    assert parse_record(lines(run_dir)[-1]) == record
    assert json.loads((run_dir / MANIFEST_FILE).read_text())["records"] == 2


def test_append_fsyncs_the_record_before_replacing_the_manifest(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = new_ledger(run_dir)
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(f"fsync {Path(os.readlink(f'/proc/self/fd/{fd}')).name}")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(f"replace {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    ledger.append("command", {"cmd": "pg_ctl promote", "rc": 0})
    assert events[0] == f"fsync {LEDGER_FILE}"
    assert events[1].startswith(f"fsync .{MANIFEST_FILE}.")
    assert events[2:] == [f"replace {MANIFEST_FILE}", f"fsync {RUN_ID}"]


def test_record_data_is_redacted_before_it_reaches_the_disk(run_dir: Path) -> None:
    ledger = new_ledger(run_dir, known_secrets=["s3cr3t-pw"])
    ledger.append(
        "command",
        {
            "dsn": "postgresql://replicator:hunter2@drc-db:5433/skp",
            "db_password": "hunter2",
            "stdout": "connected with s3cr3t-pw",
        },
    )
    text = (run_dir / LEDGER_FILE).read_text()
    assert "hunter2" not in text and "s3cr3t-pw" not in text
    assert "postgresql://replicator:***@drc-db:5433/skp" in text


def test_known_secrets_added_during_the_run_are_masked_from_then_on(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    ledger.add_known_secrets("generated-pw-77")
    ledger.append("command", {"stdout": "new password generated-pw-77"})
    assert "generated-pw-77" not in (run_dir / LEDGER_FILE).read_text()


@pytest.mark.parametrize("kind", ["ledger.close", "ledger.open", "ledger.recovered"])
def test_ledger_kinds_cannot_be_appended_by_callers(run_dir: Path, kind: str) -> None:
    with pytest.raises(EvidenceError, match="written by the ledger itself"):
        new_ledger(run_dir).append(kind, {})


def test_data_that_is_not_json_is_refused_before_anything_is_written(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    with pytest.raises(EvidenceError, match="bytes"):
        ledger.append("command", {"stdout": b"\x00raw"})
    assert ledger.records == 1 and len(lines(run_dir)) == 1


def test_appends_from_many_threads_form_one_intact_chain(run_dir: Path) -> None:
    ledger = Ledger.create(run_dir, RUN_ID)
    per_thread, threads = 40, 8

    def work(worker: int) -> None:
        for i in range(per_thread):
            ledger.append("ansible.task", {"worker": worker, "i": i})

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    result = verify_ledger(run_dir)
    assert result.ok, result.problems
    assert result.records == 1 + per_thread * threads


# --- Attachments ------------------------------------------------------------------------------


def test_attach_stores_content_under_its_digest_and_returns_a_reference(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    ref = ledger.attach("query.csv", b"\x00\x01binary stays as is")
    stored = run_dir / ATTACHMENTS_DIR / ref.sha256
    assert stored.read_bytes() == b"\x00\x01binary stays as is"
    assert ref.to_dict() == {"name": "query.csv", "sha256": ref.sha256, "size": 20}
    ledger.append("sql.check", {"check": "replication lag"}, attachments=[ref])
    assert verify_ledger(run_dir).ok
    assert json.loads((run_dir / MANIFEST_FILE).read_text())["attachments"] == [ref.to_dict()]


def test_a_reference_placed_in_the_data_is_listed_and_verified_too(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    ref = ledger.attach("events.json", b"[]")
    record = ledger.append("ansible.task", {"task": "promote", "events": ref})
    assert record.attachments == (ref,)
    assert record.data["events"] == ref.to_dict()
    (run_dir / ATTACHMENTS_DIR / ref.sha256).write_bytes(b"[1]")
    assert verify_ledger(run_dir).first_bad_seq == 1


def test_attach_accepts_a_path_and_redacts_text(run_dir: Path, tmp_path: Path) -> None:
    ledger = new_ledger(run_dir, known_secrets=["hunter2"])
    log = tmp_path / "events.log"
    log.write_text("ok: login password=hunter2\nAuthorization: Bearer abc.def\n")
    ref = ledger.attach("events.log", log)
    stored = (run_dir / ATTACHMENTS_DIR / ref.sha256).read_text()
    assert stored == "ok: login password=***\nAuthorization: Bearer ***\n"


def test_attach_fsyncs_the_stored_file(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = new_ledger(run_dir)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    ledger.attach("plan.txt", b"promote drc-db")
    assert any(ATTACHMENTS_DIR + "/." in path for path in synced)  # the temp file, then renamed
    assert any(path.endswith(ATTACHMENTS_DIR) for path in synced)  # and its directory


def test_a_reference_to_a_file_not_stored_here_is_refused(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    bogus = {"name": "x", "sha256": "a" * 64, "size": 1}
    with pytest.raises(EvidenceError, match="not stored in this ledger"):
        ledger.append("command", {}, attachments=[bogus])


@pytest.mark.parametrize("damage", ["change", "remove"])
def test_verify_names_the_record_citing_a_damaged_attachment(run_dir: Path, damage: str) -> None:
    ledger = new_ledger(run_dir)
    ledger.append("step.start", {"step": "promote"})
    ref = ledger.attach("ansible.json", b'{"ok": true}')
    ledger.append("ansible.task", {"task": "promote"}, attachments=[ref])
    stored = run_dir / ATTACHMENTS_DIR / ref.sha256
    if damage == "change":
        stored.write_bytes(b'{"ok": false}')
    else:
        stored.unlink()
    result = verify_ledger(run_dir)
    assert not result.ok
    assert result.first_bad_seq == 2
    assert result.problems[0].code == f"attachment_{damage}d".replace("removed", "missing")


# --- Closing ----------------------------------------------------------------------------------


def test_close_writes_a_closing_record_and_marks_the_manifest(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    record = ledger.close({"result": "failover complete", "rto_minutes": 42})
    assert record.kind == "ledger.close" and ledger.closed
    assert json.loads((run_dir / MANIFEST_FILE).read_text())["closed"] is True
    assert verify_ledger(run_dir).closed


def test_nothing_can_be_appended_or_attached_after_close(run_dir: Path) -> None:
    ledger = new_ledger(run_dir)
    ledger.close()
    with pytest.raises(EvidenceError, match="closed"):
        ledger.append("step.start", {})
    with pytest.raises(EvidenceError, match="closed"):
        ledger.attach("late.txt", b"late")
    with pytest.raises(EvidenceError, match="closed"):
        ledger.close()


# --- Continuing -------------------------------------------------------------------------------


def test_a_resumed_run_appends_to_the_same_chain_so_both_attempts_show(run_dir: Path) -> None:
    first = new_ledger(run_dir)
    first.append("step.start", {"step": "promote", "attempt": 1})
    first.append("error", {"message": "worker lost"})
    second = Ledger.open(run_dir, reason="retry after worker loss")
    second.append("step.start", {"step": "promote", "attempt": 2})
    second.close({"result": "ok"})
    assert kinds(run_dir) == [
        "ledger.open",
        "step.start",
        "error",
        "ledger.resumed",
        "step.start",
        "ledger.close",
    ]
    assert verify_ledger(run_dir).ok


def test_open_accepts_the_ledger_jsonl_path_too(run_dir: Path) -> None:
    new_ledger(run_dir)
    assert Ledger.open(run_dir / LEDGER_FILE).directory == run_dir


def test_open_of_a_closed_ledger_gives_a_closed_ledger(run_dir: Path) -> None:
    new_ledger(run_dir).close()
    reopened = Ledger.open(run_dir)
    assert reopened.closed and reopened.records == 2
    with pytest.raises(EvidenceError, match="closed"):
        reopened.append("step.start", {})


@pytest.mark.parametrize("tamper", ["change a record", "remove the manifest", "cut the tail"])
def test_open_refuses_a_tampered_ledger_and_leaves_it_untouched(run_dir: Path, tamper: str) -> None:
    ledger = new_ledger(run_dir)
    for step in range(3):
        ledger.append("step.end", {"step": step, "rc": 0})
    path = run_dir / LEDGER_FILE
    if tamper == "change a record":
        path.write_bytes(path.read_bytes().replace(b'"rc":0', b'"rc":1', 1))
    elif tamper == "remove the manifest":
        (run_dir / MANIFEST_FILE).unlink()
    else:
        path.write_bytes(b"".join(lines(run_dir)[:-1]))
    before = path.read_bytes()
    with pytest.raises(EvidenceError, match="refusing to continue"):
        Ledger.open(run_dir)
    assert path.read_bytes() == before


def test_open_of_a_path_without_a_ledger_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotALedger):
        Ledger.open(tmp_path)
    with pytest.raises(NotALedger):
        resolve_ledger_dir(tmp_path / "nowhere")


# --- Crash windows ----------------------------------------------------------------------------


def _crash_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def die(*args: object, **kwargs: object) -> None:
        raise Crash(name)

    monkeypatch.setattr(ledger_module, name, die)


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(min_value=0, max_value=4))
def test_a_crash_between_the_record_and_the_manifest_is_recovered_on_open(steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        run_dir = Path(tmp) / RUN_ID
        ledger = new_ledger(run_dir)
        for step in range(steps):
            ledger.append("step.end", {"step": step})
        _crash_at(monkeypatch, "_write_manifest")
        with pytest.raises(Crash):
            ledger.append("step.start", {"step": "promote"})
        monkeypatch.undo()
        seen = verify_ledger(run_dir)
        assert [p.code for p in seen.problems] == ["unconfirmed"]
        reopened = Ledger.open(run_dir)
        records = [entry for _, entry in read_records(run_dir)]
        assert [r.kind for r in records[-3:]] == [
            "step.start",
            "ledger.recovered",
            "ledger.resumed",
        ]  # type: ignore[union-attr]
        assert records[-2].data["findings"][0]["code"] == "unconfirmed"  # type: ignore[union-attr]
        assert reopened.records == steps + 4
        assert verify_ledger(run_dir).ok


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_torn_last_line_is_kept_as_an_attachment_cut_off_and_recovered(
    data: st.DataObject,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / RUN_ID
        ledger = new_ledger(run_dir)
        for step in range(data.draw(st.integers(0, 3), label="records before")):
            ledger.append("step.end", {"step": step})
        whole = make_record(
            ledger.records,
            "2024-05-01T04:00:00.000000Z",
            "step.start",
            {"step": "promote"},
            ledger.head,
        ).to_line()
        torn = whole[: data.draw(st.integers(1, len(whole) - 1), label="bytes written")]
        with (run_dir / LEDGER_FILE).open("ab") as fh:
            fh.write(torn)
        assert [p.code for p in verify_ledger(run_dir).problems] == ["torn"]
        before = ledger.records
        reopened = Ledger.open(run_dir)
        recovered = [e for _, e in read_records(run_dir) if not isinstance(e, str)][before]
        assert recovered.kind == Kind.LEDGER_RECOVERED
        (ref,) = recovered.attachments
        assert (run_dir / ATTACHMENTS_DIR / ref.sha256).read_bytes() == torn
        assert verify_ledger(run_dir).ok
        assert reopened.records == before + 2


def test_a_crash_while_replacing_the_manifest_leaves_the_old_one_and_recovers(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = new_ledger(run_dir)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(Crash("replace")))
    with pytest.raises(Crash):
        ledger.append("step.start", {"step": "promote"})
    monkeypatch.undo()
    assert json.loads((run_dir / MANIFEST_FILE).read_text())["records"] == 1
    Ledger.open(run_dir)
    assert verify_ledger(run_dir).ok


def test_a_crash_while_closing_is_recovered_and_the_ledger_stays_closed(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = new_ledger(run_dir)
    _crash_at(monkeypatch, "_write_manifest")
    with pytest.raises(Crash):
        ledger.close({"result": "ok"})
    monkeypatch.undo()
    reopened = Ledger.open(run_dir)
    assert reopened.closed
    assert kinds(run_dir) == ["ledger.open", "ledger.close", "ledger.recovered"]
    assert verify_ledger(run_dir).ok


def test_a_crash_while_creating_leaves_a_ledger_that_open_completes(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_at(monkeypatch, "_append_line")
    with pytest.raises(Crash):
        new_ledger(run_dir)
    monkeypatch.undo()
    assert verify_ledger(run_dir).ok  # an empty chain that its manifest vouches for
    Ledger.open(run_dir)
    assert kinds(run_dir) == ["ledger.open", "ledger.resumed"]
    assert verify_ledger(run_dir).run_id == RUN_ID


def test_a_failed_write_stops_the_ledger_until_it_is_reopened(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = new_ledger(run_dir)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(EvidenceError, match="No space left"):
        ledger.append("step.start", {"step": "promote"})
    monkeypatch.undo()
    with pytest.raises(EvidenceError, match=r"Ledger\.open"):
        ledger.append("step.start", {"step": "promote"})
    Ledger.open(run_dir).append("step.start", {"step": "promote"})
    assert verify_ledger(run_dir).ok


# --- Reading ----------------------------------------------------------------------------------


def test_read_records_yields_records_and_says_which_lines_cannot_be_read(run_dir: Path) -> None:
    new_ledger(run_dir).append("step.start", {"step": "promote"})
    with (run_dir / LEDGER_FILE).open("ab") as fh:
        fh.write(b'garbage\n{"torn')
    entries = list(read_records(run_dir))
    assert [n for n, _ in entries] == [1, 2, 3, 4]
    assert isinstance(entries[2][1], str) and "not valid JSON" in entries[2][1]
    assert isinstance(entries[3][1], str) and "incomplete" in entries[3][1]


def test_verify_of_an_intact_ledger_of_a_genesis_manifest_and_no_records_is_ok(
    tmp_path: Path,
) -> None:
    (tmp_path / MANIFEST_FILE).write_text(
        json.dumps(
            {
                "version": 1,
                "run_id": RUN_ID,
                "records": 0,
                "head": GENESIS,
                "closed": False,
                "created": None,
                "updated": None,
                "attachments": [],
            }
        )
    )
    assert verify_ledger(tmp_path).ok
