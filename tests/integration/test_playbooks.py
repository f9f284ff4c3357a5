"""The playbooks against the shared session lab (the ones that do not change the topology).

fence_primary.yml and promote_standby.yml change which server is primary; they run against a
lab of their own in test_fence_promote.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drp.adapters import ansible as a
from drp.adapters import postgres as pg
from drp.lab import frontdoor
from drp.lab.core import Lab
from drp.lab.procs import terminate

pytestmark = pytest.mark.integration

PLAYBOOKS = sorted(p.name for p in a.PLAYBOOKS_DIR.glob("*.yml"))


def _run(lab: Lab, playbook: str, **extra_vars: Any) -> a.PlaybookResult:
    call = a.PlaybookCall(
        a.playbook_path(playbook),
        a.lab_inventories(lab.cfg.root),
        extra_vars=extra_vars,
        timeout_s=90,
    )
    return a.run_playbook(call)


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_the_playbooks_are_all_here() -> None:
    assert set(PLAYBOOKS) >= {
        "check_replication.yml",
        "preflight.yml",
        "fence_primary.yml",
        "promote_standby.yml",
        "switch_traffic.yml",
        "start_app.yml",
        "verify_service.yml",
    }


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_passes_the_syntax_check(lab: Lab, playbook: str) -> None:
    call = a.PlaybookCall(a.playbook_path(playbook), a.lab_inventories(lab.cfg.root))
    assert a.syntax_check(call) == []


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_passes_the_syntax_check_with_the_production_example(
    playbook: str,
) -> None:
    inventory = a.INVENTORY_DIR / "production.example.yml"
    assert a.syntax_check(a.PlaybookCall(a.playbook_path(playbook), (inventory,))) == []


def test_a_broken_playbook_is_reported_by_the_syntax_check(tmp_path: Path, lab: Lab) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: all\n  tasks:\n    - ansible.builtin.command:\n  oops: [\n")
    problems = a.syntax_check(a.PlaybookCall(broken, a.lab_inventories(lab.cfg.root)))
    assert problems and "ERROR" in problems[0]


# -- preflight ------------------------------------------------------------------------------------
def test_preflight_passes_on_a_healthy_lab(healthy_lab: Lab) -> None:
    result = _run(healthy_lab, "preflight.yml")
    result.raise_for_failure()
    verdict = result.stats_data["preflight"]["drc-db1"]
    assert verdict["passed"] is True
    assert verdict["problems"] == []
    assert not result.changed


@pytest.fixture
def paused_replay(healthy_lab: Lab) -> Iterator[Lab]:
    """The standby receives WAL but does not replay it; resumed afterwards."""
    standby = healthy_lab.dsn("drc-db")
    pg.query(standby, "SELECT pg_wal_replay_pause()")
    try:
        yield healthy_lab
    finally:
        pg.query(standby, "SELECT pg_wal_replay_resume()")
        _wait_for(lambda: not pg.receiver(standby).lag_bytes, 10, "replay to catch up")


def test_preflight_fails_clearly_when_replay_lags_behind(paused_replay: Lab) -> None:
    lab = paused_replay
    pg.query(
        lab.dsn("dc-db"),
        "INSERT INTO declarations (nomor_aju, doc_type, office, site)"
        " VALUES (%s, 'BC 2.0', 'TEST', 'dc')",
        (f"PREFLIGHT-{time.time_ns()}",),
    )
    _wait_for(lambda: (pg.receiver(lab.dsn("drc-db")).lag_bytes or 0) > 0, 10, "WAL to be received")
    result = _run(lab, "preflight.yml", max_lag_bytes=0)
    assert result.status == "failed"
    [failure] = result.failed_tasks
    assert failure.host == "drc-db1"
    assert "bytes behind the WAL it received" in failure.msg
    assert "max_lag_bytes is 0" in failure.msg
    assert "PAUSED" in failure.msg and "pg_wal_replay_resume()" in failure.msg
    verdict = result.stats_data["preflight"]["drc-db1"]
    assert verdict["passed"] is False
    assert verdict["lag_bytes"] > 0
    with pytest.raises(a.PlaybookRunFailed, match="preflight failed on drc-db1"):
        result.raise_for_failure()


# -- switch_traffic -------------------------------------------------------------------------------
@pytest.fixture
def frontdoor_back_on_dc(healthy_lab: Lab) -> Iterator[Lab]:
    yield healthy_lab
    if frontdoor.served_site(healthy_lab.cfg) != "dc":
        frontdoor.write_active_site(healthy_lab.cfg, "dc")
        frontdoor.reload(healthy_lab.cfg, expect_site="dc")


def test_switch_traffic_moves_users_to_drc_and_back(frontdoor_back_on_dc: Lab) -> None:
    lab = frontdoor_back_on_dc
    assert frontdoor.served_site(lab.cfg) == "dc"

    to_drc = _run(lab, "switch_traffic.yml", target_site="drc")
    to_drc.raise_for_failure()
    assert to_drc.changed
    assert frontdoor.served_site(lab.cfg) == "drc"
    conf = (lab.cfg.frontdoor_dir / "active-site.conf").read_text()
    assert conf == frontdoor.active_site_conf("drc", frontdoor.site_app_port(lab.cfg, "drc"))
    status, health = _get_json(f"{lab.url('frontdoor')}/health")
    assert status == 200 and health["site"] == "drc"

    again = _run(lab, "switch_traffic.yml", target_site="drc")
    again.raise_for_failure()
    assert not again.changed
    assert again.stats_data["switch"]["lb1"]["already_on_target"] is True

    back = _run(lab, "switch_traffic.yml", target_site="dc")
    back.raise_for_failure()
    assert back.changed
    assert frontdoor.served_site(lab.cfg) == "dc"


def test_switch_traffic_in_check_mode_says_what_it_would_do_and_does_nothing(
    frontdoor_back_on_dc: Lab,
) -> None:
    lab = frontdoor_back_on_dc
    before = (lab.cfg.frontdoor_dir / "active-site.conf").read_text()
    call = a.PlaybookCall(
        a.playbook_path("switch_traffic.yml"),
        a.lab_inventories(lab.cfg.root),
        extra_vars={"target_site": "drc"},
        check=True,
        timeout_s=90,
    )
    result = a.run_playbook(call)
    result.raise_for_failure()
    switch = result.stats_data["switch"]["lb1"]
    assert switch["check_mode"] is True and switch["file_changed"] is True
    assert (lab.cfg.frontdoor_dir / "active-site.conf").read_text() == before
    assert frontdoor.served_site(lab.cfg) == "dc"


def test_switch_traffic_refuses_an_unknown_site(healthy_lab: Lab) -> None:
    result = _run(healthy_lab, "switch_traffic.yml", target_site="moon")
    assert "target_site must be one of" in result.failure_message()
    assert frontdoor.served_site(healthy_lab.cfg) == "dc"


def _get_json(url: str) -> tuple[int, Any]:
    from drp.lab.core import http_json

    return http_json(url)


# -- start_app ------------------------------------------------------------------------------------
def test_start_app_leaves_a_running_app_alone(healthy_lab: Lab) -> None:
    result = _run(healthy_lab, "start_app.yml")
    result.raise_for_failure()
    assert not result.changed
    assert result.stats_data["app"]["drc-app1"]["already_running"] is True


def test_start_app_starts_a_stopped_app_and_waits_for_health(healthy_lab: Lab) -> None:
    lab = healthy_lab
    state = json.loads(lab.cfg.state_file.read_text())
    assert terminate(state["drc_app_pid"], lab.marker)
    result = _run(lab, "start_app.yml", app_group="drc_app")
    result.raise_for_failure()
    assert result.changed
    app = result.stats_data["app"]["drc-app1"]
    assert app["started"] is True
    assert app["health"]["site"] == "drc"
    # Started through the lab, so the lab knows the new process (and `drp lab down` stops it).
    assert lab.status()["components"]["drc-app"]["up"] is True


# -- verify_service -------------------------------------------------------------------------------
def test_verify_service_writes_and_reads_through_the_front_door(healthy_lab: Lab) -> None:
    result = _run(healthy_lab, "verify_service.yml", expected_site="dc")
    result.raise_for_failure()
    verify = result.stats_data["verify"]
    front = verify["frontdoor"]["lb1"]
    assert front["write_status"] == 201 and front["read_status"] == 200
    assert front["write_site"] == front["read_site"] == "dc"
    assert front["write_ms"] > 0 and front["read_ms"] > 0
    assert verify["database"]["dc-db1"]["found"] is True
    rows = pg.query(
        healthy_lab.dsn("dc-db"),
        "SELECT site FROM declarations WHERE nomor_aju = %s",
        (verify["nomor_aju"],),
    )
    assert rows == [("dc",)]


def test_verify_service_notices_users_served_by_the_wrong_site(healthy_lab: Lab) -> None:
    result = _run(healthy_lab, "verify_service.yml", expected_site="drc")
    assert result.status == "failed"
    assert "served by site dc, not drc" in result.failure_message()
    assert "run switch_traffic.yml" in result.failure_message()
