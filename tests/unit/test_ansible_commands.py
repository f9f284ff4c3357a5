"""The Ansible adapter's pure parts: the call, its environment, the runner arguments, the result.

Nothing here runs Ansible; the integration tests do (tests/integration/test_ansible.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from drp.adapters import ansible as a
from drp.errors import PlaybookFailed, RunbookError
from drp.lab.frontdoor import active_site_conf

pytestmark = pytest.mark.unit

PDD = Path("/tmp/drp-ansible-xyz")
BIN = Path("/opt/drp/.venv/bin")


def _call(**changes: Any) -> a.PlaybookCall:
    base: dict[str, Any] = {
        "playbook": Path("/repo/playbooks/fence_primary.yml"),
        "inventories": (Path("/repo/inventory/lab.yml"), Path("/lab/inventory-vars.yml")),
    }
    base.update(changes)
    return a.PlaybookCall(**base)


def _env(call: a.PlaybookCall | None = None) -> dict[str, str]:
    return a.build_envvars(call or _call(), PDD, bin_dir=BIN, inherited_path="/usr/bin:/bin")


def _kwargs(call: a.PlaybookCall | None = None) -> dict[str, Any]:
    return a.build_runner_kwargs(call or _call(), PDD, bin_dir=BIN, inherited_path="/usr/bin")


# -- environment ----------------------------------------------------------------------------------
def test_config_file_is_the_runs_own_so_no_ansible_cfg_elsewhere_applies() -> None:
    assert _env()["ANSIBLE_CONFIG"] == str(PDD / "ansible.cfg")
    assert "[defaults]" in a.ANSIBLE_CFG


def test_host_keys_are_checked_and_ssh_never_prompts_or_lingers() -> None:
    env = _env()
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "BatchMode=yes" in env["ANSIBLE_SSH_ARGS"]
    assert "ControlMaster=auto" in env["ANSIBLE_SSH_ARGS"]
    assert int(env["ANSIBLE_TIMEOUT"]) > 0


def test_pipelining_on_and_no_retry_files_or_colour() -> None:
    env = _env()
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert env["ANSIBLE_RETRY_FILES_ENABLED"] == "False"
    assert env["ANSIBLE_NOCOLOR"] == "True"
    assert env["ANSIBLE_FORCE_COLOR"] == "False"


def test_local_temp_lives_inside_the_private_data_dir() -> None:
    assert Path(_env()["ANSIBLE_LOCAL_TEMP"]).parent == PDD


def test_an_inventory_that_does_not_parse_is_fatal_not_a_warning() -> None:
    env = _env()
    assert env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] == "True"
    assert env["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] == "True"
    assert "host_list" not in env["ANSIBLE_INVENTORY_ENABLED"]


def test_a_host_pattern_that_names_nothing_is_fatal() -> None:
    assert _env()["ANSIBLE_HOST_PATTERN_MISMATCH"] == "error"


def test_every_process_of_a_run_is_marked_with_its_private_dir() -> None:
    assert _env()[a.RUN_MARKER_VAR] == str(PDD)


def test_the_ansible_beside_this_python_comes_first_on_path() -> None:
    assert _env()["PATH"] == f"{BIN}:/usr/bin:/bin"


def test_environment_holds_only_strings() -> None:
    assert all(isinstance(v, str) for v in _env().values())


# -- runner keyword arguments -------------------------------------------------------------------
def test_runner_gets_the_playbook_and_both_inventories_in_order() -> None:
    kw = _kwargs()
    assert kw["playbook"] == "/repo/playbooks/fence_primary.yml"
    assert kw["project_dir"] == "/repo/playbooks"
    assert kw["inventory"] == ["/repo/inventory/lab.yml", "/lab/inventory-vars.yml"]
    assert kw["private_data_dir"] == str(PDD)


def test_runner_timeout_is_the_calls_and_it_is_checked_often() -> None:
    kw = _kwargs(_call(timeout_s=42))
    assert kw["timeout"] == 42
    assert kw["settings"]["pexpect_timeout"] <= 1


def test_runner_is_quiet_and_keeps_one_artifact_dir() -> None:
    kw = _kwargs()
    assert kw["quiet"] is True
    assert kw["rotate_artifacts"] == 0


def test_limit_forks_verbosity_and_check_mode_reach_the_runner() -> None:
    kw = _kwargs(_call(limit="dc-db1", forks=3, verbosity=2, check=True))
    assert kw["limit"] == "dc-db1"
    assert kw["forks"] == 3
    assert kw["verbosity"] == 2
    assert kw["cmdline"] == "--check"


def test_defaults_leave_out_limit_verbosity_and_cmdline() -> None:
    kw = _kwargs()
    assert "limit" not in kw
    assert "verbosity" not in kw
    assert "cmdline" not in kw
    assert "extravars" not in kw


def test_extra_vars_go_to_the_runner_as_data_not_onto_the_command_line() -> None:
    kw = _kwargs(_call(extra_vars={"target_site": "drc", "max_lag_bytes": 0}))
    assert kw["extravars"] == {"target_site": "drc", "max_lag_bytes": 0}
    assert "target_site" not in kw.get("cmdline", "")


def test_equivalent_command_line_for_syntax_checks_and_the_record() -> None:
    argv = a.build_command(
        _call(limit="drc_db", extra_vars={"b": 1, "a": "x"}, check=True), syntax_check=True
    )
    assert argv == [
        "ansible-playbook",
        "-i",
        "/repo/inventory/lab.yml",
        "-i",
        "/lab/inventory-vars.yml",
        "--limit",
        "drc_db",
        "-e",
        '{"a": "x", "b": 1}',
        "--check",
        "--syntax-check",
        "/repo/playbooks/fence_primary.yml",
    ]


def test_lab_inventories_are_the_repo_groups_then_the_labs_variables() -> None:
    groups, variables = a.lab_inventories(Path("/tmp/lab"))
    assert groups == a.REPO_ROOT / "inventory" / "lab.yml"
    assert variables == Path("/tmp/lab/inventory-vars.yml")
    assert a.playbook_path("preflight.yml") == a.REPO_ROOT / "playbooks" / "preflight.yml"


# -- the call itself ----------------------------------------------------------------------------
def test_relative_paths_become_absolute_because_ansible_runs_in_the_playbook_dir() -> None:
    call = _call(playbook=Path("playbooks/x.yml"), inventories=(Path("inventory/lab.yml"),))
    assert call.playbook.is_absolute()
    assert all(p.is_absolute() for p in call.inventories)


def test_a_call_cannot_be_changed_after_it_is_made() -> None:
    call = _call(extra_vars={"target_site": "dc"})
    with pytest.raises(AttributeError):
        call.timeout_s = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        call.extra_vars["target_site"] = "drc"  # type: ignore[index]


@pytest.mark.parametrize("name", ["pg_password", "db_passwd", "slack_token", "api_key", "secret"])
def test_extra_vars_that_look_secret_are_refused(name: str) -> None:
    with pytest.raises(RunbookError, match=name):
        _call(extra_vars={name: "x"})


def test_the_path_of_a_password_file_is_not_a_secret() -> None:
    assert _call(extra_vars={"pg_password_file": "/etc/drp/pg.json"}).extra_vars


def test_every_problem_of_a_call_is_listed_at_once() -> None:
    with pytest.raises(RunbookError) as err:
        _call(inventories=(), timeout_s=0, forks=0, verbosity=9)
    assert len(err.value.problems) == 4


def test_extra_vars_must_be_json() -> None:
    with pytest.raises(RunbookError, match="JSON"):
        _call(extra_vars={"when": object()})


# -- results --------------------------------------------------------------------------------------
def _result(**changes: Any) -> a.PlaybookResult:
    base: dict[str, Any] = {
        "playbook": "fence_primary.yml",
        "status": "successful",
        "rc": 0,
        "duration_s": 1.0,
        "timeout_s": 60,
        "stats": {"dc-db1": a.HostStats(ok=3)},
        "failed_tasks": (),
        "unreachable_hosts": (),
    }
    base.update(changes)
    return a.PlaybookResult(**base)


def test_a_clean_run_raises_nothing() -> None:
    result = _result()
    assert result.ok
    assert result.failure_message() == ""
    result.raise_for_failure()


def test_an_unreachable_dc_is_told_apart_from_a_failed_fence() -> None:
    lost = _result(
        status="failed",
        rc=4,
        unreachable_hosts=("dc-db1",),
        unreachable_tasks=(a.TaskFailure("dc-db1", "Look", "ssh: connect: No route to host"),),
    )
    with pytest.raises(a.PlaybookUnreachable, match="could not reach dc-db1") as err:
        lost.raise_for_failure()
    assert err.value.result is lost

    failed = _result(
        status="failed",
        rc=2,
        failed_tasks=(a.TaskFailure("dc-db1", "The old primary accepts no writes", "STILL"),),
    )
    with pytest.raises(a.PlaybookRunFailed) as err2:
        failed.raise_for_failure()
    assert not isinstance(err2.value, a.PlaybookUnreachable)
    assert isinstance(err2.value, PlaybookFailed)
    assert "dc-db1: task 'The old primary accepts no writes': STILL" in str(err2.value)


def test_a_timeout_says_the_run_was_stopped_and_what_to_check() -> None:
    with pytest.raises(a.PlaybookRunFailed, match="did not finish within 60 s"):
        _result(status="timeout", rc=254).raise_for_failure()


def test_an_error_before_any_task_carries_ansibles_own_words() -> None:
    result = _result(status="failed", rc=1, stats={}, error_output="[ERROR]: bad inventory")
    assert "[ERROR]: bad inventory" in result.failure_message()


def test_changed_hosts_come_from_the_recap() -> None:
    result = _result(stats={"a": a.HostStats(changed=1), "b": a.HostStats(ok=1)})
    assert result.changed
    assert result.changed_hosts == ("a",)


# -- events ---------------------------------------------------------------------------------------
def test_collector_keeps_failures_unreachables_and_the_recap_and_forwards_every_event() -> None:
    seen: list[dict[str, Any]] = []
    collector = a._EventCollector(seen.append)
    events = [
        {"event": "playbook_on_start", "event_data": {}},
        {
            "event": "runner_on_failed",
            "event_data": {"host": "h1", "task": "t1", "res": {"msg": "boom"}},
        },
        {
            "event": "runner_on_failed",
            "event_data": {"host": "h1", "task": "t0", "ignore_errors": True, "res": {}},
        },
        {
            "event": "runner_on_unreachable",
            "event_data": {"host": "h2", "task": "t1", "res": {"msg": "no route"}},
        },
        {
            "event": "runner_on_failed",
            "event_data": {"host": "h3", "task": "secret", "res": {"censored": "hidden"}},
        },
        {
            "event": "playbook_on_stats",
            "event_data": {
                "ok": {"h1": 2},
                "failures": {"h1": 1, "h3": 1},
                "dark": {"h2": 1},
                "changed": {},
                "artifact_data": {"x": 1},
            },
        },
    ]
    assert all(collector(e) is True for e in events)
    assert seen == events
    assert collector.failed == [
        a.TaskFailure("h1", "t1", "boom"),
        a.TaskFailure("h3", "secret", "hidden"),
    ]
    assert collector.unreachable == [a.TaskFailure("h2", "t1", "no route")]
    stats = collector.stats()
    assert stats["h1"] == a.HostStats(ok=2, failed=1)
    assert stats["h2"].unreachable == 1


def test_a_failed_command_is_described_in_its_own_words() -> None:
    res = {"msg": "non-zero return code", "stderr": "pg_ctl: no database cluster", "rc": 4}
    assert a._task_msg(res) == "non-zero return code: pg_ctl: no database cluster"
    assert a._task_msg({"msg": "preflight failed", "stderr": ""}) == "preflight failed"


def test_a_handler_that_raises_is_remembered_not_propagated_mid_run() -> None:
    def bad(_: dict[str, Any]) -> None:
        raise RuntimeError("ledger full")

    collector = a._EventCollector(bad)
    assert collector({"event": "playbook_on_start"}) is True
    assert isinstance(collector.handler_error, RuntimeError)


def test_syntax_check_output_is_split_into_its_errors() -> None:
    out = "[WARNING]: x\n[ERROR]: one\nOrigin: a.yml:3\n\n[ERROR]: two\n"
    assert a._error_blocks(out) == ["[ERROR]: one\nOrigin: a.yml:3", "[ERROR]: two"]


# -- playbook inputs kept consistent with the lab ------------------------------------------------
@pytest.mark.parametrize(("site", "port"), [("dc", 55431), ("drc", 55412)])
def test_switch_traffic_template_writes_what_the_lab_writes(site: str, port: int) -> None:
    env = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True)
    source = (a.PLAYBOOKS_DIR / "templates" / "active-site.conf.j2").read_text()
    rendered = env.from_string(source).render(
        target_site=site, frontdoor_site_ports={"dc": 55431, "drc": 55412}
    )
    assert rendered == active_site_conf(site, port)


def test_every_playbook_queries_postgresql_the_same_way() -> None:
    blocks = set()
    for path in sorted(a.PLAYBOOKS_DIR.glob("*.yml")):
        for play in yaml.safe_load(path.read_text()):
            if "drp_psql" in play.get("vars", {}):
                blocks.add(play["vars"]["drp_psql"])
    assert len(blocks) == 1


def test_production_example_has_the_labs_groups() -> None:
    def groups(node: dict[str, Any]) -> set[str]:
        found: set[str] = set()
        for name, child in (node.get("children") or {}).items():
            found.add(name)
            found |= groups(child or {})
        return found

    lab = yaml.safe_load((a.INVENTORY_DIR / "lab.yml").read_text())["all"]
    prod = yaml.safe_load((a.INVENTORY_DIR / "production.example.yml").read_text())["all"]
    assert groups(lab) - {"lab_ssh"} <= groups(prod)
    assert prod["vars"]["drp_environment"] == "production"
