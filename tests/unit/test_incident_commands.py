"""The incident commands' arguments and their link to the Prefect UI: one set of names for
categories and roles (exit 2 with the choices), and the run page's URL when there is one."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drp.cli import app
from drp.commands._flowrun import run_page_url
from drp.commands._follow import follow
from drp.ledger import Ledger

pytestmark = pytest.mark.unit


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_wrong_category_is_refused_with_exit_2_and_the_choices() -> None:
    result = CliRunner().invoke(
        app, ["failover", "--category", "partial", "--declared-by", "Budi", "--dry-run"]
    )
    assert result.exit_code == 2
    assert flat(result.stderr) == (
        "error: --category: category 'partial' is not one of parsial_lokal, parsial_nasional, "
        "katastropik (or in English: local, national, catastrophic)"
    )


def test_a_wrong_role_is_refused_with_exit_2_and_the_choices() -> None:
    result = CliRunner().invoke(
        app, ["failover", "--declarer-role", "boss", "--declared-by", "Budi", "--dry-run"]
    )
    assert result.exit_code == 2
    assert "role 'boss' is not one of direktur, kepala_kantor" in flat(result.stderr)
    result = CliRunner().invoke(
        app,
        ["record", "end-of-condition", "--incident", "x", "--declared-by", "B", "--role", "boss"],
    )
    assert result.exit_code == 2
    assert "--role (Pasal 9 names who ends the condition): role 'boss' is not one of" in flat(
        result.stderr
    )


def test_the_run_page_is_named_only_when_the_api_is_a_real_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    run = uuid.uuid4()
    with temporary_settings(restore_defaults={PREFECT_API_URL, PREFECT_UI_URL}):
        assert run_page_url(run) is None  # the temporary server: its pages die with it
    with temporary_settings(
        updates={PREFECT_API_URL: "http://127.0.0.1:16150/api"},
        restore_defaults={PREFECT_UI_URL},
    ):
        assert run_page_url(run) == f"http://127.0.0.1:16150/runs/flow-run/{run}"
        assert run_page_url(None) is None
    with temporary_settings(
        updates={
            PREFECT_API_URL: "http://127.0.0.2:4200/api",
            PREFECT_UI_URL: "https://drp.example.go.id",
        }
    ):
        assert run_page_url(run) == f"https://drp.example.go.id/runs/flow-run/{run}"


def test_the_follower_names_this_runs_id_not_an_earlier_attempts(tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "failover", "inc-1", {})
    ledger.append("attempt.start", {"attempt": 1, "flow_run_id": "earlier-run"})
    earlier = len((tmp_path / "failover" / "ledger.jsonl").read_text().splitlines())
    ledger.append("incident.declared", {"category": "katastropik"})
    ledger.append("attempt.start", {"attempt": 2, "flow_run_id": "this-run"})
    ledger.append("approval.requested", {"flow_run_id": "this-run"})
    seen: list[str] = []
    lines: list[str] = []  # the lines a person sees
    stop = threading.Event()
    stop.set()  # read what is there once, then return
    follow(tmp_path / "failover", stop, show=lines.append, on_run=seen.append, earlier=earlier)
    assert seen == ["this-run"]


def test_a_run_name_is_the_flow_the_incident_and_what_tells_its_runs_apart() -> None:
    from drp.tasks.incident import run_name

    assert run_name("failover", "inc-1", "katastropik", "real") == "failover/inc-1/katastropik/real"
    assert run_name("drill", None, "dc-heat") == "drill/new/dc-heat"  # renamed once it has one
    assert run_name("reports", "inc-1") == "reports/inc-1"
    assert run_name("failback", "inc-1", None, "", "drill") == "failback/inc-1/drill"
