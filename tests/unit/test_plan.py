"""The recovery plan: order (priority group, dependencies, file order), timing and reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from drp.domain.adb import Criticality
from drp.domain.plan import RecoveryPlan, SelectionRefused, plan, select
from drp.domain.runbook import Runbook

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def svc(
    service_id: str,
    group: int,
    depends_on: tuple[str, ...] = (),
    budgets: tuple[int, ...] = (60,),
    rto_minutes: int = 30,
    impact: int = 3,
    actions: tuple[str, ...] | None = None,
    database: str | None = None,
) -> dict[str, Any]:
    acts = actions or ("verify",) * len(budgets)
    return {
        "id": service_id,
        "name": service_id,
        "impact": {"financial": impact, "legal": impact, "reputation": impact, "users": impact},
        "rto_minutes": rto_minutes,
        "rpo_seconds": 0,
        "mtdp_minutes": 240,
        "priority_group": group,
        "depends_on": list(depends_on),
        "database": database,
        "steps": [
            {
                "id": f"{service_id}-{n}",
                "name": f"step {n} of {service_id}",
                "action": action,
                "playbook": "verify_service.yml",
                "targets": "frontdoor",
                "timeout_seconds": budget * 2,
                "budget_seconds": budget,
            }
            for n, (budget, action) in enumerate(zip(budgets, acts, strict=True), start=1)
        ],
    }


def runbook(*services: dict[str, Any]) -> Runbook:
    return Runbook.model_validate(
        {
            "apiVersion": "drp/v1",
            "name": "Plan test",
            "environment": "lab",
            "inventory": "inventory.yml",
            "databases": [{"id": "db", "primary_group": "dc_db", "standby_group": "drc_db"}],
            "services": list(services),
        }
    )


def service_order(recovery: RecoveryPlan) -> list[str]:
    return [s.service.id for s in recovery.services]


def test_services_run_by_priority_group_whatever_the_file_order() -> None:
    recovery = plan(runbook(svc("late", 3), svc("first", 1), svc("middle", 2)))
    assert service_order(recovery) == ["first", "middle", "late"]


def test_a_service_runs_after_the_services_it_depends_on_in_its_group() -> None:
    recovery = plan(runbook(svc("app", 1, depends_on=("db",)), svc("db", 1)))
    assert service_order(recovery) == ["db", "app"]


def test_ties_keep_the_file_order() -> None:
    recovery = plan(runbook(svc("b", 1), svc("c", 1), svc("a", 1)))
    assert service_order(recovery) == ["b", "c", "a"]


def test_dependencies_move_only_what_they_must() -> None:
    # x waits for z; y and z are ready at once and keep their file order.
    recovery = plan(runbook(svc("x", 2, depends_on=("z",)), svc("y", 2), svc("z", 2)))
    assert service_order(recovery) == ["y", "z", "x"]


def test_steps_follow_service_order_then_their_own_order_with_positions() -> None:
    recovery = plan(runbook(svc("app", 2, budgets=(10, 20)), svc("db", 1, budgets=(30,))))
    assert [s.step.id for s in recovery.steps] == ["db-1", "app-1", "app-2"]
    assert [s.position for s in recovery.steps] == [1, 2, 3]
    assert [s.service.id for s in recovery.steps] == ["db", "app", "app"]


def test_each_step_carries_its_budget_timeout_and_cumulative_time() -> None:
    recovery = plan(
        runbook(svc("db", 1, budgets=(30, 45)), svc("app", 2, budgets=(20,), depends_on=("db",)))
    )
    assert [(s.budget_seconds, s.timeout_seconds) for s in recovery.steps] == [
        (30, 60),
        (45, 90),
        (20, 40),
    ]
    assert [s.starts_at_seconds for s in recovery.steps] == [0, 30, 75]
    assert [s.cumulative_seconds for s in recovery.steps] == [30, 75, 95]


def test_the_predicted_rto_is_the_critical_path_against_sixty_minutes() -> None:
    fits = plan(
        runbook(
            svc("db", 1, budgets=(1200, 1200)), svc("app", 2, budgets=(1200,), depends_on=("db",))
        )
    )
    assert fits.predicted_rto_seconds == 3600 and fits.within_limit
    late = plan(
        runbook(
            svc("db", 1, budgets=(1200, 1200)), svc("app", 2, budgets=(1201,), depends_on=("db",))
        )
    )
    assert late.predicted_rto_seconds == 3601 and not late.within_limit
    assert "past the 60-minute limit" in late.reason
    assert late.critical_path == ("db", "app")


def test_each_service_is_predicted_back_at_its_last_step_against_its_rto() -> None:
    recovery = plan(
        runbook(
            svc("db", 1, budgets=(300, 300)),
            svc("app", 2, budgets=(300,), rto_minutes=10, depends_on=("db",)),
        )
    )
    db, app = recovery.services
    assert (db.predicted_seconds, db.rto_seconds, db.within_rto) == (600, 1800, True)
    assert (app.predicted_seconds, app.rto_seconds, app.within_rto) == (900, 600, False)


def test_each_service_carries_its_adb_criticality() -> None:
    recovery = plan(runbook(svc("core", 1, impact=5), svc("minor", 2, impact=1)))
    assert [s.criticality for s in recovery.services] == [
        Criticality.SANGAT_KRITIS,
        Criticality.RENDAH,
    ]


def test_reasons_say_why_a_service_and_a_step_are_where_they_are() -> None:
    recovery = plan(
        runbook(
            svc("app", 1, depends_on=("db",)),
            svc(
                "db",
                1,
                budgets=(10, 10),
                actions=("fence", "promote"),
                database="db",
            ),
        )
    )
    app = recovery.services[1]
    assert "depends on it" in app.reason and "'db'" in app.reason
    promote = recovery.steps[1]
    assert "'db-1' has fenced" in promote.reason
    assert promote.database is not None and promote.database.standby_group in promote.reason


def test_the_plan_is_plain_data_for_json() -> None:
    recovery = plan(runbook(svc("db", 1), svc("app", 2, depends_on=("db",))))
    data = json.loads(json.dumps(recovery.as_dict()))
    assert [s["service"] for s in data["steps"]] == ["db", "app"]
    assert data["predicted_rto_seconds"] == 120
    assert data["services"][1]["depends_on"] == ["db"]


def test_the_ceisa_reference_plan_recovers_the_database_first_and_export_before_import() -> None:
    data = yaml.safe_load((REPO / "runbooks" / "ceisa.yaml").read_text(encoding="utf-8"))
    recovery = plan(Runbook.model_validate(data))
    order = service_order(recovery)
    assert order[0] == "skp-database"
    assert order.index("export-peb") < order.index("import-pib")
    assert order.index("manifest") < order.index("import-pib")
    assert recovery.within_limit
    assert all(s.within_rto for s in recovery.services)


def with_execution(rb: Runbook, **execution: Any) -> Runbook:
    data = rb.model_dump(by_alias=True)
    data["execution"] = {**data["execution"], **execution}
    return Runbook.model_validate(data)


def test_independent_services_of_a_group_recover_at_the_same_time() -> None:
    recovery = plan(runbook(svc("a", 1, budgets=(100,)), svc("b", 1, budgets=(70,))))
    assert [s.starts_at_seconds for s in recovery.services] == [0, 0]
    assert recovery.predicted_rto_seconds == 100
    assert recovery.predicted_rto_serial_seconds == 170
    data = recovery.as_dict()
    assert (data["predicted_rto_parallel_s"], data["predicted_rto_serial_s"]) == (100, 170)


def test_max_parallel_bounds_how_many_services_run_at_once() -> None:
    rb = runbook(*(svc(name, 1, budgets=(100,)) for name in ("a", "b", "c")))
    assert plan(rb).predicted_rto_seconds == 100
    two = plan(with_execution(rb, max_parallel=2))
    assert {s.service.id: s.starts_at_seconds for s in two.services} == {"a": 0, "b": 0, "c": 100}
    assert two.predicted_rto_seconds == 200
    one = plan(with_execution(rb, max_parallel=1))
    assert one.predicted_rto_seconds == one.predicted_rto_serial_seconds == 300


def test_a_later_group_starts_before_an_earlier_one_ends_unless_the_runbook_sets_a_barrier() -> (
    None
):
    rb = runbook(
        svc("db", 1, budgets=(100,)),
        svc("slow", 1, budgets=(500,)),
        svc("app", 2, budgets=(50,), depends_on=("db",)),
    )
    free = plan(rb)
    assert {s.service.id: s.starts_at_seconds for s in free.services}["app"] == 100
    assert free.predicted_rto_seconds == 500
    barrier = plan(with_execution(rb, group_barrier=True))
    assert {s.service.id: s.starts_at_seconds for s in barrier.services}["app"] == 500
    assert barrier.predicted_rto_seconds == 550
    assert barrier.critical_path == ("slow", "app")


def test_the_critical_path_follows_what_each_service_waited_for() -> None:
    recovery = plan(
        runbook(
            svc("db", 1, budgets=(100,)),
            svc("portal", 2, budgets=(50,), depends_on=("db",)),
            svc("side", 2, budgets=(20,), depends_on=("db",)),
            svc("export", 2, budgets=(30,), depends_on=("portal",)),
        )
    )
    assert recovery.critical_path == ("db", "portal", "export")
    assert recovery.predicted_rto_seconds == 180
    assert "critical path db → portal → export" in recovery.reason


def test_the_ceisa_plan_in_parallel_fits_in_35_minutes_against_46_one_after_another() -> None:
    data = yaml.safe_load((REPO / "runbooks" / "ceisa.yaml").read_text(encoding="utf-8"))
    recovery = plan(Runbook.model_validate(data))
    assert recovery.predicted_rto_serial_seconds == 46 * 60
    assert recovery.predicted_rto_seconds <= 35 * 60
    assert recovery.critical_path[0] == "skp-database"


# -- partial selections -------------------------------------------------------------------------
def site() -> Runbook:
    """Three database pairs: core (moved by core-db, used by portal too), two more."""
    data = runbook(
        svc("core-db", 1, budgets=(10, 10), actions=("fence", "promote"), database="core"),
        svc("portal", 2, depends_on=("core-db",), database="core"),
        svc(
            "billing",
            2,
            budgets=(10, 10, 10),
            actions=("fence", "promote", "verify"),
            database="bill",
        ),
        svc("reports", 3, depends_on=("billing",), database="bill"),
        svc("lone", 2, budgets=(10, 10), actions=("fence", "promote"), database="lone"),
    ).model_dump(by_alias=True)
    data["databases"] = [
        {"id": pair, "primary_group": "dc_db", "standby_group": "drc_db"}
        for pair in ("core", "bill", "lone")
    ]
    return Runbook.model_validate(data)


def test_no_selection_moves_the_whole_site() -> None:
    chosen = select(site(), None)
    assert chosen.whole_site and chosen.services == (
        "core-db",
        "portal",
        "billing",
        "reports",
        "lone",
    )


def test_a_selection_takes_what_it_depends_on_and_who_moves_its_database() -> None:
    chosen = select(site(), ["reports"])
    assert chosen.services == ("billing", "reports") and not chosen.whole_site
    assert dict(chosen.added)["billing"] == "'reports' depends on it"
    alone = select(site(), ["lone"])
    assert alone.services == ("lone",) and alone.added == ()


def test_a_selection_that_would_strand_a_service_without_its_database_is_refused() -> None:
    with pytest.raises(SelectionRefused, match="'portal' also run on it"):
        select(site(), ["core-db"])
    with pytest.raises(SelectionRefused, match="'reports' also run on it"):
        select(site(), ["billing"])
    assert select(site(), ["core-db", "portal"]).services == ("core-db", "portal")


def test_an_unknown_service_is_refused_with_the_valid_ids() -> None:
    with pytest.raises(SelectionRefused, match=r"unknown service 'nope'.*core-db, portal"):
        select(site(), ["nope"])


def test_a_partial_plan_holds_only_the_selection_and_its_own_prediction() -> None:
    recovery = plan(site(), ["portal"])
    assert service_order(recovery) == ["core-db", "portal"]
    assert recovery.predicted_rto_seconds == 80
    assert recovery.as_dict()["selection"]["asked"] == ["portal"]
