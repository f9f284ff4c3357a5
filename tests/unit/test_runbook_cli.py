"""``drp runbook check`` and ``drp plan``: exit codes 0 (valid), 1 (problems), 2 (unreadable)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from drp.commands import runbook as runbook_commands

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = (
    "preflight.yml",
    "fence_primary.yml",
    "promote_standby.yml",
    "switch_traffic.yml",
    "start_app.yml",
    "verify_service.yml",
    "check_replication.yml",
)
INVENTORY = """\
all:
  children:
    dc:
      children: {dc_db: {hosts: {dc-db1: {}}}, dc_app: {hosts: {dc-app1: {}}}}
    drc:
      children: {drc_db: {hosts: {drc-db1: {}}}, drc_app: {hosts: {drc-app1: {}}}}
    ops_db: {hosts: {ops-db1: {}}}
    frontdoor: {hosts: {lb1: {}}}
    lab_ssh: {hosts: {lab-ssh1: {}}}
"""


def cli() -> typer.Typer:
    """The commands mounted as ``drp.cli`` mounts them."""
    root = typer.Typer()
    root.add_typer(runbook_commands.app, name="runbook")
    runbook_commands.register_top_level(root)
    return root


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli(), list(args))
    return result.exit_code, result.output


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A copy of the shipped lab runbook beside an inventory and the shared playbook names."""
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "inventory").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inventory" / "lab.yml").write_text(INVENTORY, encoding="utf-8")
    for name in PLAYBOOKS:
        (tmp_path / "playbooks" / name).write_text("- hosts: all\n", encoding="utf-8")
    path = tmp_path / "runbooks" / "lab.yaml"
    path.write_text((REPO / "runbooks" / "lab.yaml").read_text(encoding="utf-8"))
    return path


def break_rto(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["services"][0]["rto_minutes"] = 90
    data["services"][0]["steps"][2]["playbook"] = "promote.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_check_exits_0_with_a_one_line_summary_for_a_valid_runbook(lab: Path) -> None:
    code, output = run("runbook", "check", str(lab))
    assert code == 0, output
    assert "valid: 1 service, 6 steps, predicted RTO 1m 50s" in output


def test_check_exits_1_listing_every_problem_with_its_line(lab: Path) -> None:
    break_rto(lab)
    code, output = run("runbook", "check", str(lab))
    assert code == 1
    assert "services[0].rto_minutes: 90 exceeds the 60-minute limit" in output
    assert "services[0].steps[2].playbook: unknown playbook 'promote.yml'" in output
    assert re.search(rf"{re.escape(str(lab))}:\d+: services\[0\]\.rto_minutes", output)
    assert "2 problems" in output


def test_check_exits_2_when_the_file_cannot_be_read(tmp_path: Path) -> None:
    code, output = run("runbook", "check", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml" in output.replace("\n", "")  # a long path may be wrapped


def test_check_exits_2_when_the_file_is_not_yaml(lab: Path) -> None:
    lab.write_text("services: [unclosed\n", encoding="utf-8")
    code, output = run("runbook", "check", str(lab))
    assert code == 2
    assert "not valid YAML" in output


def test_check_json_gives_the_summary_as_data(lab: Path) -> None:
    code, output = run("runbook", "check", str(lab), "--json")
    assert code == 0
    data = json.loads(output)
    assert data["valid"] is True
    assert (data["services"], data["steps"], data["predicted_rto_seconds"]) == (1, 6, 110)


def test_check_json_gives_the_problems_as_data(lab: Path) -> None:
    break_rto(lab)
    code, output = run("runbook", "check", str(lab), "--json")
    assert code == 1
    problems = json.loads(output)["problems"]
    assert [p["path"] for p in problems] == [
        "services[0].rto_minutes",
        "services[0].steps[2].playbook",
    ]
    assert all(p["line"] and p["hint"] for p in problems)


def test_plan_prints_the_ordered_steps_and_the_predicted_rto(lab: Path) -> None:
    code, output = run("plan", str(lab))
    assert code == 0, output
    order = ["preflight", "fence-dc-db", "promote-drc-db", "start-drc-app", "switch-traffic"]
    positions = [output.index(step_id) for step_id in order]
    assert positions == sorted(positions)
    assert "sangat_kritis" in output
    assert "Predicted RTO 1m 50s" in output and "within" in output


def test_plan_json_gives_the_plan_as_data(lab: Path) -> None:
    code, output = run("plan", str(lab), "--json")
    assert code == 0
    data = json.loads(output)
    assert data["predicted_rto_seconds"] == 110
    assert [s["cumulative_seconds"] for s in data["steps"]] == [20, 35, 55, 75, 90, 110]
    assert data["services"][0]["within_rto"] is True


def test_plan_exits_1_for_an_invalid_runbook(lab: Path) -> None:
    break_rto(lab)
    code, output = run("plan", str(lab))
    assert code == 1
    assert "rto_minutes" in output
