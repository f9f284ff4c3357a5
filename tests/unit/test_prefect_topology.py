"""The production topology as data: prefect.yaml's routing and schedules, and the Prefect server
and worker commands (built by pure functions, checked here without starting anything)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from drp.adapters import prefect_server as ps
from drp.cli import app

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in SPEC["deployments"]}


# -- prefect.yaml ---------------------------------------------------------------------------------
def test_each_deployment_runs_at_the_site_that_must_run_it() -> None:
    pools = {name: d["work_pool"]["name"] for name, d in DEPLOYMENTS.items()}
    assert pools == {
        "failover": "drc",
        "replication-check": "drc",
        "resync": "drc",
        "failback": "drc",
        "drill": "drc",
        "backup-take": "dc",
        "backup-verify": "dc",
        "manual-mode": "drc",
        "manual-submit": "drc",
        "resync-manual-declarations": "drc",
        "reports": "drc",
    }


def test_the_entrypoints_are_the_flows_of_the_repository() -> None:
    assert {name: d["entrypoint"] for name, d in DEPLOYMENTS.items()} == {
        "failover": "flows/failover.py:failover",
        "replication-check": "flows/replication.py:replication_check",
        "resync": "flows/resync.py:resync",
        "failback": "flows/failback.py:failback",
        "drill": "flows/drill.py:drill",
        "backup-take": "flows/backups.py:backup_take",
        "backup-verify": "flows/backups.py:backup_verify",
        "manual-mode": "flows/manual_mode.py:manual_mode",
        "manual-submit": "flows/manual_mode.py:manual_submit",
        "resync-manual-declarations": "flows/resync.py:resync_manual_declarations",
        "reports": "flows/reports.py:reports",
    }


def test_every_entrypoint_that_exists_names_a_flow_function_with_the_given_parameters() -> None:
    """Read, not imported: a deployment must point at a @flow function that accepts its
    parameters (flow files still being written are checked once they land)."""
    for name, d in DEPLOYMENTS.items():
        path, func = d["entrypoint"].split(":")
        source = REPO / path
        if not source.exists():
            continue
        tree = ast.parse(source.read_text())
        found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func]
        assert found, f"{name}: {path} has no function {func}"
        decorators = [ast.unparse(dec) for dec in found[0].decorator_list]
        assert any(dec.startswith("flow") for dec in decorators), f"{name}: {func} is no flow"
        args = found[0].args
        accepted = {a.arg for a in [*args.args, *args.kwonlyargs]}
        missing = set(d.get("parameters") or {}) - accepted
        assert not missing, f"{name}: {func} does not take {sorted(missing)}"


def test_the_drill_is_quarterly_and_the_backups_daily_in_jakarta_time() -> None:
    (drill,) = DEPLOYMENTS["drill"]["schedules"]
    assert drill == {"cron": "0 2 1 1,4,7,10 *", "timezone": "Asia/Jakarta"}
    assert DEPLOYMENTS["drill"]["parameters"].keys() == {"runbook", "scenario"}
    for name in ("backup-take", "backup-verify"):
        (schedule,) = DEPLOYMENTS[name]["schedules"]
        minute, hour, *rest = schedule["cron"].split()
        assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"], name
        assert schedule["timezone"] == "Asia/Jakarta", name
    unscheduled = ("failover", "resync", "failback", "manual-mode", "reports")
    assert all(not DEPLOYMENTS[n].get("schedules") for n in unscheduled)
    assert not DEPLOYMENTS["resync-manual-declarations"].get("schedules")
    assert DEPLOYMENTS["replication-check"]["schedules"] == [{"interval": 300}]


def test_a_person_starting_an_incident_flow_must_choose_drill_or_real() -> None:
    """A default in prefect.yaml would win over the flow's signature and prefill the UI's form
    (a failover started from the UI used to run, and document itself, as a drill)."""
    from prefect.utilities.callables import parameter_schema

    from drp.flows import load

    for name in ("failover", "resync", "failback"):
        assert DEPLOYMENTS[name]["parameters"] == {"runbook": "runbooks/lab.yaml"}, name
        schema = parameter_schema(getattr(load(name), name))
        assert "mode" in schema.required, name
        assert schema.properties["mode"]["enum"] == ["drill", "real"], name
    assert DEPLOYMENTS["replication-check"]["parameters"] == {"runbook": "runbooks/lab.yaml"}


def test_categories_roles_and_scenarios_are_choices_in_the_deployments_forms() -> None:
    from prefect.utilities.callables import parameter_schema

    from drp.flows import load

    failover = parameter_schema(load("failover").failover).properties
    (category, _none) = failover["category"]["anyOf"]
    assert category["enum"][:3] == ["parsial_lokal", "parsial_nasional", "katastropik"]
    assert category["enum"][3:] == ["local", "national", "catastrophic"]  # accepted, too
    assert failover["declarer_role"]["enum"] == [
        "direktur",
        "kepala_kantor",
        "director",
        "office_head",
    ]
    # The approver's role is not a parameter: it comes from the roster (docs/approvals.md).
    assert "approver_role" not in failover
    failback = parameter_schema(load("failback").failback).properties
    assert "approver_role" not in failback and "approval_code" in failback
    drill = parameter_schema(load("drill").drill).properties
    assert drill["scenario"]["enum"] == [
        "dc-db-crash",
        "dc-power-loss",
        "dc-heat",
        "national-network-loss",
    ]


def test_a_run_starts_in_the_checkout_on_the_workers_host() -> None:
    assert SPEC["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $DRP_REPO_ROOT }}"}}
    ]
    assert all("pull" not in d for d in SPEC["deployments"])


# -- server and worker commands -------------------------------------------------------------------
def test_the_database_url_is_asyncpg_and_its_password_is_quoted_and_redacted() -> None:
    url = ps.database_url("127.0.0.1", 25403, "drp", "p@ss/w:rd", "prefect")
    assert url == "postgresql+asyncpg://drp:p%40ss%2Fw%3Ard@127.0.0.1:25403/prefect"
    assert ps.redact_url(url) == "postgresql+asyncpg://drp:***@127.0.0.1:25403/prefect"
    assert ps.redact_url("postgresql+asyncpg://h/prefect") == "postgresql+asyncpg://h/prefect"


def test_sqlite_is_refused_with_a_hint() -> None:
    with pytest.raises(ps.PrefectServerError, match=r"'sqlite\+aiosqlite'.*postgresql\+asyncpg"):
        ps.check_database_url("sqlite+aiosqlite:////tmp/prefect.db")
    ps.check_database_url("postgresql+asyncpg://u:p@127.0.0.1:5432/prefect")


def test_the_server_listens_on_loopback_only() -> None:
    with pytest.raises(ps.PrefectServerError, match=r"0\.0\.0\.0 is not a loopback"):
        ps.check_loopback("0.0.0.0")
    ps.check_loopback("127.0.0.1")


def test_the_server_command_carries_the_owner_and_never_the_password(tmp_path: Path) -> None:
    url = ps.database_url("127.0.0.1", 25403, "drp", "s3cret", "prefect")
    argv = ps.server_command("/tmp/lab", "127.0.0.1", 4200)
    assert argv[1:5] == ["-m", "drp.adapters.prefect_server", "--owner", "/tmp/lab"]
    assert argv[5:] == ["server", "start", "--host", "127.0.0.1", "--port", "4200"]
    assert not any("s3cret" in a for a in argv)
    env = ps.server_env(url, "127.0.0.1", 4200, tmp_path, base={"PATH": "/usr/bin"})
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == url
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_HOME"] == str(tmp_path) and env["PATH"] == "/usr/bin"


def test_a_worker_polls_its_sites_pool_and_gets_the_checkout_but_not_the_database(
    tmp_path: Path,
) -> None:
    argv = ps.worker_command("/tmp/lab", "drc")
    assert argv[5:] == ["worker", "start", "--pool", "drc", "--type", "process", "--name",
                        "drc-worker"]  # fmt: skip
    base = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://x", "A": "1"}
    env = ps.worker_env("http://127.0.0.1:4200/api", tmp_path, Path("/srv/drp"), 2.0, base)
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in env
    assert env["DRP_REPO_ROOT"] == "/srv/drp" and env["A"] == "1"
    assert env["PREFECT_WORKER_QUERY_SECONDS"] == "2"
    with pytest.raises(ps.PrefectServerError, match="unknown site 'hq'"):
        ps.worker_command("/tmp/lab", "hq")


def test_workers_up_names_an_unknown_site(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["workers", "up", "--site", "hq", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "--site hq: unknown site (choose from dc, drc)" in result.output


def test_server_status_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["server", "status", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "drp server up" in result.output


# -- authentication -------------------------------------------------------------------------------
def test_the_server_requires_the_credential_and_passes_it_only_in_its_environment(
    tmp_path: Path,
) -> None:
    url = ps.database_url("127.0.0.1", 25403, "drp", "s3cret", "prefect")
    env = ps.server_env(url, "127.0.0.1", 4200, tmp_path, auth="drp:t0ken-Abc_1")
    assert env["PREFECT_SERVER_API_AUTH_STRING"] == "drp:t0ken-Abc_1"
    assert env["PREFECT_API_AUTH_STRING"] == "drp:t0ken-Abc_1"  # its own services are clients
    assert not any("t0ken" in a for a in ps.server_command("/tmp/lab", "127.0.0.1", 4200))
    assert "PREFECT_SERVER_API_AUTH_STRING" not in ps.server_env(url, "127.0.0.1", 4200, tmp_path)


@pytest.mark.parametrize("bad", ["no-colon", ":password", "user:", "user:with space"])
def test_a_credential_that_is_not_user_colon_password_is_refused(bad: str, tmp_path: Path) -> None:
    url = ps.database_url("127.0.0.1", 25403, "drp", "s3cret", "prefect")
    with pytest.raises(ps.PrefectServerError, match="must be 'user:password' without spaces"):
        ps.server_env(url, "127.0.0.1", 4200, tmp_path, auth=bad)


def test_a_worker_and_its_flow_runs_get_the_client_credential_not_the_servers(
    tmp_path: Path,
) -> None:
    base = {"PREFECT_SERVER_API_AUTH_STRING": "x:y", "PREFECT_API_AUTH_STRING": "old:one"}
    env = ps.worker_env("http://127.0.0.1:4200/api", tmp_path, Path("/srv/drp"), 2.0, base,
                        auth="drp:t0ken")  # fmt: skip
    assert env["PREFECT_API_AUTH_STRING"] == "drp:t0ken"
    assert "PREFECT_SERVER_API_AUTH_STRING" not in env
    assert ps.client_env("http://h/api", "drp:t0ken") == {
        "PREFECT_API_URL": "http://h/api",
        "PREFECT_API_AUTH_STRING": "drp:t0ken",
    }
    assert ps.client_env("http://h/api", None) == {"PREFECT_API_URL": "http://h/api"}


def test_every_request_carries_basic_auth_as_prefect_checks_it() -> None:
    import base64

    header = ps.basic_auth_header("drp:t0ken")
    assert header == "Basic " + base64.b64encode(b"drp:t0ken").decode()


def test_the_lab_credential_is_generated_once_into_a_private_file(tmp_path: Path) -> None:
    import stat

    from drp.lab.core import Lab
    from drp.prefect_server import Orchestrator

    orch = Orchestrator(Lab.from_env(root=tmp_path / "lab", port_base=11400))
    first = orch.auth_string()
    assert first.startswith("drp:") and len(first) > 30
    assert orch.auth_string() == first
    assert orch.auth_file == tmp_path / "lab" / "secrets" / "prefect-api-auth"
    assert stat.S_IMODE(orch.auth_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(orch.auth_file.parent.stat().st_mode) == 0o700


def test_server_exec_without_a_command_says_how(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["server", "exec", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "drp server exec --" in result.output


def test_server_exec_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["server", "exec", "--root", str(tmp_path), "--", "true"])
    assert result.exit_code == 1 and "drp server up" in result.output
