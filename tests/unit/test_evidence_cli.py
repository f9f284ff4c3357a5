"""``drp evidence verify`` and ``drp evidence show``: exit codes and what people and scripts see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drp.commands.evidence import app
from drp.ledger import ATTACHMENTS_DIR, LEDGER_FILE, MANIFEST_FILE, Ledger

pytestmark = pytest.mark.unit

runner = CliRunner()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "drill-2024-05-01"
    ledger = Ledger.create(directory, "drill-2024-05-01", {"runbook": "drill"})
    ledger.append("step.start", {"step": "fence-dc-db"})
    ref = ledger.attach("events.json", b'{"changed": true}')
    ledger.append("ansible.task", {"task": "promote", "status": "ok"}, attachments=[ref])
    ledger.close({"result": "ok"})
    return directory


def flat(text: str) -> str:
    """Output without the line breaks rich adds at the terminal width."""
    return " ".join(text.split())


def test_verify_exits_0_and_reports_count_head_and_closed_for_an_intact_ledger(
    run_dir: Path,
) -> None:
    result = runner.invoke(app, ["verify", str(run_dir)])
    assert result.exit_code == 0, result.output
    head = json.loads((run_dir / MANIFEST_FILE).read_text())["head"]
    assert "OK" in result.output and "4 records" in flat(result.output)
    assert head in result.output.replace("\n", "") and "closed" in result.output


def test_verify_accepts_the_ledger_jsonl_file_itself(run_dir: Path) -> None:
    assert runner.invoke(app, ["verify", str(run_dir / LEDGER_FILE)]).exit_code == 0


def test_verify_exits_1_and_names_the_first_bad_record_when_one_was_changed(
    run_dir: Path,
) -> None:
    path = run_dir / LEDGER_FILE
    path.write_bytes(path.read_bytes().replace(b"fence-dc-db", b"fence-drc-db"))
    result = runner.invoke(app, ["verify", str(run_dir)])
    assert result.exit_code == 1
    assert "FAILED" in result.output
    assert "line 2 (seq 1): hash mismatch: the record was changed" in flat(result.output)


@pytest.mark.parametrize(
    "damage",
    ["cut the tail", "remove the manifest", "change an attachment", "tear the last line"],
)
def test_verify_exits_1_for_an_incomplete_or_damaged_ledger(run_dir: Path, damage: str) -> None:
    path = run_dir / LEDGER_FILE
    if damage == "cut the tail":
        path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    elif damage == "remove the manifest":
        (run_dir / MANIFEST_FILE).unlink()
    elif damage == "change an attachment":
        (stored,) = (run_dir / ATTACHMENTS_DIR).iterdir()
        stored.write_bytes(b'{"changed": false}')
    else:
        path.write_bytes(path.read_bytes() + b'{"seq":4,"ts"')
    assert runner.invoke(app, ["verify", str(run_dir)]).exit_code == 1


def test_verify_json_lists_every_problem_for_scripts(run_dir: Path) -> None:
    path = run_dir / LEDGER_FILE
    kept = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([kept[0], *kept[2:]]))
    result = runner.invoke(app, ["verify", "--json", str(run_dir)])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert report["first_bad_seq"] == 1 and report["first_bad_line"] == 2
    assert report["problems"][0]["code"] == "seq_break"


def test_verify_json_of_an_intact_ledger(run_dir: Path) -> None:
    result = runner.invoke(app, ["verify", str(run_dir), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0
    assert report["ok"] is True and report["records"] == 4 and report["closed"] is True


@pytest.mark.parametrize("what", ["missing path", "empty directory", "some other file"])
def test_verify_exits_2_when_the_path_holds_no_ledger(tmp_path: Path, what: str) -> None:
    target = tmp_path / "nowhere"
    if what == "empty directory":
        target.mkdir()
    elif what == "some other file":
        target = tmp_path / "notes.txt"
        target.write_text("hello")
    result = runner.invoke(app, ["verify", str(target)])
    assert result.exit_code == 2
    assert "not a ledger" in flat(result.output)


def test_verify_json_exits_2_with_an_error_when_there_is_no_ledger(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", "--json", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a ledger" in json.loads(result.output)["error"]


def test_show_lists_each_record_with_seq_time_kind_and_summary(run_dir: Path) -> None:
    result = runner.invoke(app, ["show", str(run_dir)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("ledger.open", "step.start", "ansible.task", "ledger.close", "step=fence-dc-db"):
        assert text in result.output


def test_show_json_gives_the_records_with_their_line_numbers(run_dir: Path) -> None:
    result = runner.invoke(app, ["show", "--json", str(run_dir)])
    entries = json.loads(result.output)
    assert [e["line"] for e in entries] == [1, 2, 3, 4]
    assert entries[2]["attachments"][0]["name"] == "events.json"


def test_show_marks_unreadable_lines_instead_of_failing(run_dir: Path) -> None:
    with (run_dir / LEDGER_FILE).open("ab") as fh:
        fh.write(b"garbage\n")
    result = runner.invoke(app, ["show", "--json", str(run_dir)])
    assert result.exit_code == 0
    assert "not valid JSON" in json.loads(result.output)[-1]["error"]


def test_show_exits_2_when_the_path_holds_no_ledger(tmp_path: Path) -> None:
    assert runner.invoke(app, ["show", str(tmp_path)]).exit_code == 2
