"""Readiness checks against the real lab: healthy, lagging, stopped, drifted; alerts once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drp.adapters import postgres as pg
from drp.commands import check
from drp.domain.readiness import AlertKind, Readiness, assess_pair
from drp.lab.core import Lab
from drp.runbooks import load_runbook
from drp.settings import Settings
from drp.tasks import replication as checks
from drp.topology import Topology, resolve

pytestmark = pytest.mark.integration

RUNBOOK = "runbooks/lab.yaml"


def topology(lab: Lab) -> Topology:
    rb = load_runbook(RUNBOOK)
    return resolve(rb, Path(rb.inventory), Settings(lab_root=lab.cfg.root))


def wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def ready(lab: Lab) -> bool:
    return checks.check_readiness(load_runbook(RUNBOOK), topology(lab)).status is Readiness.READY


def write_wal(lab: Lab, rows: int) -> None:
    pg.query(lab.dsn("dc-db"), "CREATE TABLE IF NOT EXISTS readiness_probe (x text)")
    pg.query(
        lab.dsn("dc-db"),
        "INSERT INTO readiness_probe SELECT repeat('x', 1000) FROM generate_series(1, %s)",
        (rows,),
    )


def restart(lab: Lab, name: str) -> None:
    lab.cluster(name).stop()
    lab.cluster(name).start()


def cli(lab: Lab, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setenv("DRP_LAB_ROOT", str(lab.cfg.root))
    return CliRunner().invoke(check.app, [*args, "--runbook", RUNBOOK])


def test_a_healthy_lab_is_ready_with_no_drift(
    healthy_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    wait(lambda: ready(healthy_lab))
    result = cli(healthy_lab, monkeypatch, "replication", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "ready"
    assert [v["subject"] for v in data["services"]] == ["service:skp"]
    drift = cli(healthy_lab, monkeypatch, "drift")
    assert drift.exit_code == 0, drift.output
    assert "drift:skp-db" in drift.output


def test_a_missing_runbook_or_lab_is_bad_input(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DRP_LAB_ROOT", str(lab.cfg.root))
    result = CliRunner().invoke(check.app, ["replication", "--runbook", "no/such.yaml"])
    assert result.exit_code == 2
    monkeypatch.setenv("DRP_LAB_ROOT", str(tmp_path / "no-lab"))
    result = CliRunner().invoke(check.app, ["drift", "--runbook", RUNBOOK])
    assert result.exit_code == 2 and "no lab at" in result.output


def test_paused_replay_is_judged_against_the_rpo_and_alerts_fire_once(healthy_lab: Lab) -> None:
    rb, topo = load_runbook(RUNBOOK), topology(healthy_lab)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    assert topo.ops_dsn

    def alerts() -> list[AlertKind]:
        report = checks.check_readiness(rb, topo)
        keyed = checks.verdicts_by_key(report, ())
        return [
            a.kind
            for a in checks.update_alerts(topo.ops_dsn or "", prefix, keyed, datetime.now(UTC))
        ]

    write_wal(healthy_lab, 1)  # a replayed commit, so the standby knows its replay time
    wait(lambda: ready(healthy_lab))
    assert alerts() == []
    pg.query(healthy_lab.dsn("drc-db"), "SELECT pg_wal_replay_pause()")
    try:
        write_wal(healthy_lab, 3000)  # about 3 MiB of WAL the standby receives, does not replay
        obs = checks.observe_pairs(rb, topo)["skp-db"]
        assert obs.standby.replay_paused
        strict = assess_pair(obs, rpo_seconds=0)
        relaxed = assess_pair(obs, rpo_seconds=3600)
        assert strict.status is Readiness.DEGRADED
        assert any("RPO 0 allows none" in r for r in strict.reasons), strict.reasons
        assert relaxed.status is Readiness.DEGRADED  # paused, but the lag is within an hour
        assert not any("RPO" in r for r in relaxed.reasons), relaxed.reasons
        assert any("replay is paused" in r for r in relaxed.reasons)
        assert alerts().count(AlertKind.BREACH) == 2  # the pair and the service, once each
        assert alerts() == []
        assert alerts() == []
    finally:
        pg.query(healthy_lab.dsn("drc-db"), "SELECT pg_wal_replay_resume()")
    wait(lambda: ready(healthy_lab))
    assert alerts() == [AlertKind.CLEARED, AlertKind.CLEARED]
    assert alerts() == []


def test_a_stopped_standby_is_not_ready(healthy_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    healthy_lab.cluster("drc-db").stop()
    try:
        report = checks.check_readiness(load_runbook(RUNBOOK), topology(healthy_lab))
        assert report.status is Readiness.NOT_READY
        assert any("drc-db does not answer" in r for r in report.pairs[0].reasons)
        result = cli(healthy_lab, monkeypatch, "replication")
        assert result.exit_code == 1 and "not_ready" in result.output
    finally:
        healthy_lab.cluster("drc-db").start()
    wait(lambda: ready(healthy_lab))


def test_a_changed_setting_at_one_site_is_drift_with_both_values(
    healthy_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary = pg.query(healthy_lab.dsn("dc-db"), "SHOW max_connections")[0][0]
    higher = str(int(primary) + 20)
    pg.query(healthy_lab.dsn("drc-db"), f"ALTER SYSTEM SET max_connections = {higher}")
    try:
        restart(healthy_lab, "drc-db")
        result = cli(healthy_lab, monkeypatch, "drift", "--json")
        assert result.exit_code == 1, result.output
        (pair,) = json.loads(result.output)["pairs"]
        assert pair["status"] == "degraded"
        assert pair["data"]["drifts"] == [
            {
                "setting": "max_connections",
                "primary": primary,
                "standby": higher,
                "severity": "degraded",
                "reason": pair["reasons"][0],
            }
        ]
    finally:
        pg.query(healthy_lab.dsn("drc-db"), "ALTER SYSTEM RESET max_connections")
        restart(healthy_lab, "drc-db")
    wait(lambda: ready(healthy_lab))


def test_every_database_pair_is_observed_through_its_own_servers(healthy_lab: Lab) -> None:
    """A runbook with three pairs (the lab's main pair and two extra ones): each is judged on
    its own servers, so a paused standby in one pair degrades that pair only."""
    from drp.domain.runbook import DatabasePair

    healthy_lab.up(extra_pairs=2)
    rb = load_runbook(RUNBOOK)
    extra = tuple(
        DatabasePair(id=f"extra-{i}", primary_group="dc_db", standby_group="drc_db") for i in (1, 2)
    )
    rb = rb.model_copy(update={"databases": (*rb.databases, *extra)})
    topo = resolve(rb, Path(rb.inventory), Settings(lab_root=healthy_lab.cfg.root))
    assert topo.pair("extra-2").standby_dsn != topo.pair("extra-1").standby_dsn

    def pair_status() -> dict[str, Readiness]:
        report = checks.check_readiness(rb, topo)
        return {v.subject: v.status for v in report.pairs}

    wait(lambda: set(pair_status().values()) == {Readiness.READY})
    dc2, drc2 = healthy_lab.pair_dsns(2)
    pg.query(drc2, "SELECT pg_wal_replay_pause()")
    try:
        pg.query(dc2, "CREATE TABLE IF NOT EXISTS probe AS SELECT repeat('x', 1000) AS x")
        pg.query(dc2, "INSERT INTO probe SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
        wait(lambda: pair_status()["pair:extra-2"] is Readiness.DEGRADED)
        status = pair_status()
        assert status["pair:skp-db"] is Readiness.READY
        assert status["pair:extra-1"] is Readiness.READY
        drift = {v.subject: v.status for v in checks.check_drift(rb, topo)}
        assert set(drift) == {"drift:skp-db", "drift:extra-1", "drift:extra-2"}
    finally:
        pg.query(drc2, "SELECT pg_wal_replay_resume()")
    wait(lambda: pair_status()["pair:extra-2"] is Readiness.READY)
