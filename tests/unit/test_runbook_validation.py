"""A runbook that is wrong fails before anything runs, with the path (and line) of every problem.

Each refusal has its own test: a valid base runbook gets exactly one thing wrong, and the test
checks the exact path and that the message says what is wrong. Loading from disk (lines,
inventory groups, playbook names) is tested at the end with files in a temporary directory.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from drp.domain.runbook import Problem, Validation, validate
from drp.errors import RunbookError
from drp.runbooks import check_runbook, inventory_groups, load_runbook, read_runbook

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

PLAYBOOKS = frozenset(
    {
        "preflight.yml",
        "fence_primary.yml",
        "promote_standby.yml",
        "switch_traffic.yml",
        "start_app.yml",
        "verify_service.yml",
        "check_replication.yml",
    }
)
GROUPS = frozenset(
    {"all", "ungrouped", "dc", "drc", "dc_db", "drc_db", "ops_db", "dc_app", "drc_app"}
    | {"frontdoor", "lab_ssh"}
)


def step(
    step_id: str,
    action: str,
    playbook: str,
    targets: str,
    budget: int = 30,
    timeout: int = 60,
) -> dict[str, Any]:
    return {
        "id": step_id,
        "name": step_id.replace("-", " "),
        "action": action,
        "playbook": playbook,
        "targets": targets,
        "timeout_seconds": timeout,
        "budget_seconds": budget,
    }


def service(
    service_id: str, group: int, steps: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": service_id,
        "name": service_id.upper(),
        "impact": {"financial": 4, "legal": 4, "reputation": 4, "users": 4},
        "rto_minutes": 30,
        "rpo_seconds": 0,
        "mtdp_minutes": 240,
        "priority_group": group,
        "steps": steps,
    }
    data.update(fields)
    return data


def base() -> dict[str, Any]:
    """A valid runbook: a database service (fence, then promote) and an app that needs it."""
    return {
        "apiVersion": "drp/v1",
        "name": "Test DRP",
        "environment": "lab",
        "inventory": "../inventory/lab.yml",
        "databases": [{"id": "skp-db", "primary_group": "dc_db", "standby_group": "drc_db"}],
        "services": [
            service(
                "db",
                1,
                [
                    step("preflight", "check", "preflight.yml", "drc"),
                    step("fence", "fence", "fence_primary.yml", "dc_db"),
                    step("promote", "promote", "promote_standby.yml", "drc_db"),
                ],
                database="skp-db",
            ),
            service(
                "app",
                2,
                [
                    step("start", "start", "start_app.yml", "drc_app"),
                    step("verify", "verify", "verify_service.yml", "frontdoor"),
                ],
                depends_on=["db"],
                database="skp-db",
            ),
        ],
    }


def check(data: Any) -> Validation:
    return validate(data, playbooks=PLAYBOOKS, groups=GROUPS)


def only(result: Validation, path: str) -> Problem:
    """The single problem at ``path``; fails with every problem listed otherwise."""
    found = [p for p in result.problems if p.path == path]
    assert len(found) == 1, [str(p) for p in result.problems]
    return found[0]


def paths(result: Validation) -> list[str]:
    return [p.path for p in result.problems]


def test_the_base_runbook_is_valid_so_each_test_below_breaks_one_thing() -> None:
    result = check(base())
    assert result.ok, [str(p) for p in result.problems]
    assert result.runbook is not None
    assert [s.id for s in result.runbook.services] == ["db", "app"]


# -- limits of the regulation --------------------------------------------------------------


def test_rto_above_sixty_minutes_is_refused_citing_pasal_3_1_b() -> None:
    data = base()
    data["services"][1]["rto_minutes"] = 90
    data["services"][1]["mtdp_minutes"] = 240
    problem = only(check(data), "services[1].rto_minutes")
    assert "90 exceeds the 60-minute limit of Pasal 3(1)(b)" in problem.message
    assert problem.hint


def test_mtdp_shorter_than_rto_is_refused() -> None:
    data = base()
    data["services"][0]["mtdp_minutes"] = 20
    problem = only(check(data), "services[0].mtdp_minutes")
    assert "20" in problem.message and "RTO of 30" in problem.message


def test_negative_rpo_is_refused() -> None:
    data = base()
    data["services"][0]["rpo_seconds"] = -5
    assert "negative" in only(check(data), "services[0].rpo_seconds").message


def test_step_budgets_adding_up_past_sixty_minutes_are_refused_for_the_whole_plan() -> None:
    data = base()
    for svc in data["services"]:
        svc["rto_minutes"] = 60
    # 5 steps of 13 minutes: 65 minutes in all, each step within its timeout.
    for svc in data["services"]:
        for s in svc["steps"]:
            s["budget_seconds"], s["timeout_seconds"] = 780, 900
    problem = only(check(data), "services")
    assert "65 min" in problem.message and "Pasal 3(1)(b)" in problem.message


def test_a_service_whose_cumulative_budget_passes_its_rto_is_refused() -> None:
    data = base()
    data["services"][1]["rto_minutes"] = 2
    data["services"][1]["mtdp_minutes"] = 2
    # The app's own steps take 60 s, but the database's 90 s run before them: 150 s > 120 s.
    result = check(data)
    problem = only(result, "services[1].rto_minutes")
    assert "'app' after 2 min 30 s" in problem.message and "RTO of 2 min" in problem.message
    assert "services[0].rto_minutes" not in paths(result)


def test_a_service_within_its_rto_by_cumulative_budget_is_accepted() -> None:
    data = base()
    data["services"][1]["rto_minutes"] = 3  # 150 s of budgets before it is back: fits 180 s
    data["services"][1]["mtdp_minutes"] = 3
    assert check(data).ok


def test_a_step_budget_above_its_timeout_is_refused() -> None:
    data = base()
    data["services"][0]["steps"][1].update(budget_seconds=90, timeout_seconds=60)
    problem = only(check(data), "services[0].steps[1].budget_seconds")
    assert "90 s" in problem.message and "timeout of 60 s" in problem.message


def test_an_impact_score_outside_one_to_five_is_refused() -> None:
    data = base()
    data["services"][0]["impact"]["legal"] = 6
    assert "outside 1..5" in only(check(data), "services[0].impact.legal").message


# -- dependencies --------------------------------------------------------------------------


def test_a_dependency_cycle_is_refused_and_named() -> None:
    data = base()
    data["services"][0]["depends_on"] = ["app"]
    data["services"][1]["priority_group"] = 1
    problem = only(check(data), "services[0].depends_on")
    assert "dependency cycle: db -> app -> db" in problem.message


def test_a_service_depending_on_itself_is_a_cycle() -> None:
    data = base()
    data["services"][1]["depends_on"] = ["db", "app"]
    assert "app -> app" in only(check(data), "services[1].depends_on").message


def test_a_dependency_on_an_unknown_service_is_refused_with_the_closest_id() -> None:
    data = base()
    data["services"][1]["depends_on"] = ["dbb"]
    problem = only(check(data), "services[1].depends_on[0]")
    assert "unknown service 'dbb'" in problem.message
    assert "'db'" in problem.hint


def test_a_dependency_on_a_service_in_a_later_priority_group_is_refused() -> None:
    data = base()
    data["services"][0]["priority_group"] = 3  # the app (group 2) depends on it
    problem = only(check(data), "services[1].depends_on[0]")
    assert "priority group 3" in problem.message and "group 2" in problem.message


# -- what exists outside: playbooks and inventory groups ----------------------------------


def test_an_unknown_playbook_is_refused_with_the_closest_name() -> None:
    data = base()
    data["services"][0]["steps"][2]["playbook"] = "promote.yml"
    problem = only(check(data), "services[0].steps[2].playbook")
    assert "unknown playbook 'promote.yml'" in problem.message
    assert "promote_standby.yml" in problem.hint


def test_an_unknown_inventory_group_is_refused() -> None:
    data = base()
    data["services"][1]["steps"][0]["targets"] = "drc-app"
    problem = only(check(data), "services[1].steps[0].targets")
    assert "unknown inventory group 'drc-app'" in problem.message
    assert "drc_app" in problem.hint


def test_an_unknown_group_in_a_database_pair_is_refused() -> None:
    data = base()
    data["databases"][0]["standby_group"] = "drc_dbs"
    assert "drc_dbs" in only(check(data), "databases[0].standby_group").message


def test_playbooks_and_groups_are_not_checked_when_the_caller_could_not_list_them() -> None:
    data = base()
    data["services"][0]["steps"][0]["playbook"] = "nowhere.yml"
    data["services"][0]["steps"][0]["targets"] = "nowhere"
    assert validate(data, playbooks=None, groups=None).ok


# -- fencing -------------------------------------------------------------------------------


def test_a_promotion_with_no_fence_before_it_is_refused() -> None:
    data = base()
    del data["services"][0]["steps"][1]  # the fence
    problem = only(check(data), "services[0].steps[1].action")
    assert "no fence step" in problem.message and "two writable primaries" in problem.message


def test_a_fence_after_the_promotion_in_plan_order_does_not_count() -> None:
    data = base()
    fence = data["services"][0]["steps"].pop(1)
    data["services"][1]["steps"].insert(0, fence)  # fenced only in the app, recovered later
    assert "no fence step" in only(check(data), "services[0].steps[1].action").message


def test_a_fence_in_a_service_recovered_earlier_covers_the_promotion() -> None:
    data = base()
    promote = data["services"][0]["steps"].pop(2)
    data["services"][1]["steps"].insert(0, promote)
    assert check(data).ok


def test_a_fence_in_an_independent_service_does_not_cover_the_promotion() -> None:
    # The app no longer depends on the database service: the two may run at the same time,
    # so the database's fence is not sure to come before the app's promotion.
    data = base()
    promote = data["services"][0]["steps"].pop(2)
    data["services"][1]["steps"].insert(0, promote)
    data["services"][1]["depends_on"] = []
    problem = only(check(data), "services[1].steps[0].action")
    assert "sure to run before" in problem.message and "in one it depends on" in problem.hint


def test_with_a_group_barrier_a_fence_in_an_earlier_group_covers_the_promotion() -> None:
    data = base()
    promote = data["services"][0]["steps"].pop(2)
    data["services"][1]["steps"].insert(0, promote)
    data["services"][1]["depends_on"] = []
    data["execution"] = {"group_barrier": True}
    assert check(data).ok


def test_max_parallel_outside_its_range_is_refused() -> None:
    for value in (0, 65):
        data = base()
        data["execution"] = {"max_parallel": value}
        assert "outside 1..64" in only(check(data), "execution.max_parallel").message


def test_an_unknown_failure_policy_is_refused_with_the_choices() -> None:
    data = base()
    data["execution"] = {"on_failure": "carry_on"}
    problem = only(check(data), "execution.on_failure")
    assert "continue_independent" in problem.message + problem.hint


def test_parallel_services_are_judged_by_when_the_schedule_recovers_them() -> None:
    data = base()
    data["services"][1]["depends_on"] = []  # independent: starts at once, back after 60 s
    data["services"][1]["steps"] = [step("verify", "verify", "verify_service.yml", "frontdoor")]
    data["services"][1]["rto_minutes"] = data["services"][1]["mtdp_minutes"] = 1
    assert check(data).ok


def test_a_fence_of_another_database_pair_does_not_cover_the_promotion() -> None:
    data = base()
    data["databases"].append({"id": "ops", "primary_group": "ops_db", "standby_group": "drc_db"})
    fence = data["services"][0]["steps"].pop(1)
    data["services"].insert(
        0, service("ops", 1, [fence], database="ops", rto_minutes=30, mtdp_minutes=30)
    )
    assert "'skp-db'" in only(check(data), "services[1].steps[1].action").message


def test_a_promotion_in_a_service_without_a_database_pair_is_refused() -> None:
    data = base()
    del data["services"][0]["database"]
    result = check(data)
    assert "names none" in only(result, "services[0].steps[2].action").message
    assert "names none" in only(result, "services[0].steps[1].action").message


def test_a_reference_to_an_unknown_database_pair_is_refused() -> None:
    data = base()
    data["services"][1]["database"] = "skpdb"
    assert "'skp-db'" in only(check(data), "services[1].database").hint


# -- shape: keys, types, required fields, ids ---------------------------------------------


def test_an_unknown_key_is_named_with_the_closest_known_key() -> None:
    data = base()
    data["services"][0]["rto_minute"] = 30
    problem = only(check(data), "services[0].rto_minute")
    assert "unknown key 'rto_minute'" in problem.message
    assert "'rto_minutes'" in problem.hint


def test_an_unknown_key_does_not_hide_the_rules() -> None:
    data = base()
    data["approvals"] = {"timeout_minutes": 5}
    data["services"][0]["rto_minutes"] = 61
    result = check(data)
    assert "'approval'" in only(result, "approvals").hint
    assert "Pasal 3(1)(b)" in only(result, "services[0].rto_minutes").message
    assert result.runbook is not None and not result.ok


def test_a_value_of_the_wrong_type_says_what_was_expected_and_what_was_given() -> None:
    data = base()
    data["services"][0]["steps"][0]["budget_seconds"] = "30"
    problem = only(check(data), "services[0].steps[0].budget_seconds")
    assert "whole number" in problem.message and "'30'" in problem.message
    assert check(data).runbook is None


def test_a_missing_required_field_is_reported_with_a_hint() -> None:
    data = base()
    del data["services"][1]["rto_minutes"]
    problem = only(check(data), "services[1].rto_minutes")
    assert "required field is missing" in problem.message
    assert "60 minutes" in problem.hint


def test_an_unknown_action_suggests_the_closest_one() -> None:
    data = base()
    data["services"][0]["steps"][1]["action"] = "fencing"
    problem = only(check(data), "services[0].steps[1].action")
    assert "'fencing'" in problem.message and "'fence'" in problem.hint


def test_duplicate_service_ids_are_refused() -> None:
    data = base()
    data["services"][1]["id"] = "db"
    data["services"][1]["depends_on"] = []
    problem = only(check(data), "services[1].id")
    assert "duplicate service id 'db'" in problem.message
    assert "services[0].id" in problem.message


def test_duplicate_step_ids_are_refused_across_services() -> None:
    data = base()
    data["services"][1]["steps"][1]["id"] = "preflight"
    problem = only(check(data), "services[1].steps[1].id")
    assert "duplicate step id 'preflight'" in problem.message


def test_an_id_that_cannot_be_an_artifact_key_is_refused() -> None:
    data = base()
    data["services"][1]["steps"][0]["id"] = "Start App"
    assert "lowercase" in only(check(data), "services[1].steps[0].id").message


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    result = check(["services"])
    assert result.runbook is None
    assert paths(result) == [""]
    assert "must be a mapping" in result.problems[0].message


# -- all at once, in file order, with lines -------------------------------------------------


def test_several_problems_are_reported_at_once_in_file_order() -> None:
    data = base()
    data["services"][1]["steps"][1]["playbook"] = "verify.yml"
    data["services"][0]["rto_minutes"] = 75
    data["services"][0]["mtdp_minutes"] = 240
    data["services"][1]["depends_on"] = ["db", "ghost"]
    data = {"kind": "runbook", **data}  # first in the file, though added last
    assert paths(check(data)) == [
        "kind",
        "services[0].rto_minutes",
        "services[1].steps[1].playbook",  # the helper writes steps before depends_on
        "services[1].depends_on[1]",
    ]


def test_each_problem_carries_the_line_of_its_path() -> None:
    data = base()
    data["services"][0]["rto_minutes"] = 75
    lines = {("services", 0): 12, ("services", 0, "rto_minutes"): 14}
    result = validate(data, playbooks=PLAYBOOKS, groups=GROUPS, lines=lines)
    assert only(result, "services[0].rto_minutes").line == 14


def test_a_missing_field_carries_the_line_of_its_parent() -> None:
    data = base()
    del data["services"][1]["name"]
    lines = {("services", 1): 30}
    result = validate(data, playbooks=PLAYBOOKS, groups=GROUPS, lines=lines)
    assert only(result, "services[1].name").line == 30


def test_a_problem_reads_as_path_message_and_hint() -> None:
    problem = Problem.at(("services", 2, "rto_minutes"), "90 is too long", "shorten it")
    assert str(problem) == "services[2].rto_minutes: 90 is too long (hint: shorten it)"


# -- the shipped runbooks -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lab.yaml", "ceisa.yaml"])
def test_the_shipped_runbooks_validate_against_the_shared_playbooks_and_groups(name: str) -> None:
    data = yaml.safe_load((REPO / "runbooks" / name).read_text(encoding="utf-8"))
    result = check(data)
    assert result.ok, [str(p) for p in result.problems]


def test_the_shipped_lab_runbook_fails_over_the_skp_in_the_order_of_the_lab() -> None:
    data = yaml.safe_load((REPO / "runbooks" / "lab.yaml").read_text(encoding="utf-8"))
    runbook = check(data).runbook
    assert runbook is not None
    actions = [s.action for s in runbook.services[0].steps]
    assert actions == ["check", "fence", "promote", "start", "switch_traffic", "verify"]


# -- loading from disk ----------------------------------------------------------------------

LAB_INVENTORY = """\
all:
  children:
    dc:
      children:
        dc_db:
        dc_app:
    drc:
      children:
        drc_db:
        drc_app:
    dc_db:
      hosts: {dc-db1: {}}
    drc_db:
      hosts:
        drc-db1:
          ansible_password: !vault |
            $ANSIBLE_VAULT;1.1;AES256
            6162
    frontdoor:
      hosts: {lb1: {}}
"""


def make_tree(root: Path, runbook_text: str) -> Path:
    """A runbook, an inventory and the shared playbooks under ``root``, laid out as the repo."""
    (root / "runbooks").mkdir()
    (root / "inventory").mkdir()
    (root / "playbooks").mkdir()
    (root / "inventory" / "lab.yml").write_text(LAB_INVENTORY, encoding="utf-8")
    for name in PLAYBOOKS:
        (root / "playbooks" / name).write_text("- hosts: all\n  tasks: []\n", encoding="utf-8")
    path = root / "runbooks" / "test.yaml"
    path.write_text(runbook_text, encoding="utf-8")
    return path


def test_inventory_groups_are_found_through_children_with_the_implicit_ones() -> None:
    groups = inventory_groups(yaml.safe_load(LAB_INVENTORY.replace("!vault |", "|")))
    assert groups == {"all", "ungrouped", "dc", "drc", "dc_db", "dc_app", "drc_db", "drc_app"} | {
        "frontdoor"
    }


def test_load_runbook_returns_the_runbook_with_absolute_paths(tmp_path: Path) -> None:
    path = make_tree(tmp_path, yaml.safe_dump(base(), sort_keys=False))
    runbook = load_runbook(path)
    assert runbook.inventory == str(tmp_path / "inventory" / "lab.yml")
    assert runbook.playbook_dir == str(tmp_path / "playbooks")


def test_load_runbook_refuses_with_every_problem_and_its_line(tmp_path: Path) -> None:
    data = base()
    data["services"][0]["rto_minutes"] = 75
    data["services"][1]["steps"][0]["targets"] = "ops_db"  # not in this inventory
    path = make_tree(tmp_path, yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RunbookError) as caught:
        load_runbook(path)
    problems = {p.path: p for p in caught.value.problems}
    assert set(problems) == {"services[0].rto_minutes", "services[1].steps[0].targets"}
    text = path.read_text(encoding="utf-8").splitlines()
    line = problems["services[0].rto_minutes"].line
    assert line is not None and text[line - 1].strip() == "rto_minutes: 75"
    assert f"{path}:{line}: services[0].rto_minutes" in str(caught.value)


def test_a_missing_runbook_file_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match=r"nope\.yaml: cannot read the runbook"):
        load_runbook(tmp_path / "nope.yaml")


def test_an_unparsable_runbook_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = make_tree(tmp_path, "apiVersion: drp/v1\nname: [broken\n")
    with pytest.raises(RunbookError, match=r"test\.yaml:3:1: the runbook is not valid YAML"):
        read_runbook(path)


def test_a_missing_inventory_is_a_problem_at_the_inventory_key(tmp_path: Path) -> None:
    data = copy.deepcopy(base())
    data["inventory"] = "../inventory/missing.yml"
    path = make_tree(tmp_path, yaml.safe_dump(data, sort_keys=False))
    result = check_runbook(read_runbook(path))
    problem = only(result, "inventory")
    assert "missing.yml" in problem.message and problem.line == 4


def test_a_duplicate_yaml_key_is_a_problem(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False) + "name: Again\n"
    path = make_tree(tmp_path, text)
    problem = only(check_runbook(read_runbook(path)), "name")
    assert "duplicate key 'name'" in problem.message


def test_the_example_in_the_operator_documentation_is_a_valid_runbook() -> None:
    text = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    result = check(yaml.safe_load(example))
    assert result.ok, [str(p) for p in result.problems]
