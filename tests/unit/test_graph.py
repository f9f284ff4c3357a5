"""The runbook as a graph: which services start, which never will, and why — the same rules
for the plan's prediction and for a run."""

from __future__ import annotations

import pytest

from drp.domain.graph import Node, Policy, State, closure, dependants, done, next_moves, simulate

pytestmark = pytest.mark.unit

SITE = (
    Node("db", 1, (), 100),
    Node("portal", 2, ("db",), 50),
    Node("billing", 2, ("db",), 30),
    Node("import", 3, ("portal", "billing"), 20),
    Node("other-db", 1, (), 40),
    Node("archive", 3, ("other-db",), 10),
)


def moves(states: dict[str, State], policy: Policy | None = None) -> dict[str, tuple[State, str]]:
    return {m.service_id: (m.state, m.reason) for m in next_moves(SITE, states, policy or Policy())}


def test_at_the_start_every_service_without_dependencies_starts() -> None:
    assert {k: v[0] for k, v in moves({}).items()} == {
        "db": State.RUNNING,
        "other-db": State.RUNNING,
    }


def test_a_service_starts_once_every_service_it_depends_on_is_verified() -> None:
    now = moves({"db": State.VERIFIED, "other-db": State.RUNNING})
    assert set(now) == {"portal", "billing"}
    assert "'db' verified" in now["portal"][1]
    waiting = moves(
        {
            "db": State.VERIFIED,
            "portal": State.VERIFIED,
            "billing": State.RUNNING,
            "other-db": State.RUNNING,
        }
    )
    assert "import" not in waiting


def test_free_slots_go_to_the_earlier_group_first() -> None:
    states = {"db": State.VERIFIED, "other-db": State.VERIFIED}
    started = moves(states, Policy(max_parallel=2))
    assert list(started) == ["portal", "billing"]  # group 2 before archive (group 3)
    assert "2 of at most 2 running" in started["billing"][1]


def test_a_failed_service_blocks_what_depends_on_it_directly_or_not_and_nothing_else() -> None:
    states = {"db": State.FAILED, "other-db": State.VERIFIED}
    now = moves(states)
    assert now["portal"][0] is State.BLOCKED and "'db', which did not recover" in now["portal"][1]
    assert now["billing"][0] is State.BLOCKED
    assert now["import"][0] is State.BLOCKED and "'portal' and 'billing'" in now["import"][1]
    assert now["archive"][0] is State.RUNNING  # independent: it goes on


def test_stop_all_starts_nothing_new_once_anything_failed() -> None:
    now = moves({"db": State.FAILED, "other-db": State.RUNNING}, Policy(on_failure="stop_all"))
    assert {k for k, (state, _) in now.items() if state is State.BLOCKED} == {
        "portal",
        "billing",
        "import",
        "archive",
    }
    assert all("on_failure: stop_all" in reason for _, reason in now.values())


def test_a_group_barrier_waits_for_every_earlier_group() -> None:
    barrier = Policy(group_barrier=True)
    assert "portal" not in moves({"db": State.VERIFIED, "other-db": State.RUNNING}, barrier)
    blocked = moves({"db": State.VERIFIED, "other-db": State.FAILED}, barrier)
    assert blocked["portal"][0] is State.BLOCKED
    assert "waits for every earlier group" in blocked["portal"][1]


def test_running_services_are_never_moved_again_and_a_finished_run_is_done() -> None:
    states = {n.id: State.VERIFIED for n in SITE}
    assert next_moves(SITE, states, Policy()) == ()
    assert done(SITE, states)
    assert not done(SITE, {**states, "import": State.RUNNING})


def test_the_simulated_schedule_follows_the_same_rules() -> None:
    schedule = simulate(SITE, Policy())
    starts = {i: s.start_s for i, s in schedule.slots.items()}
    assert starts == {
        "db": 0,
        "other-db": 0,
        "archive": 40,
        "portal": 100,
        "billing": 100,
        "import": 150,
    }
    assert schedule.parallel_s == 170 and schedule.serial_s == 250
    assert schedule.critical_path == ("db", "portal", "import")


def test_closure_and_dependants_walk_the_graph_both_ways() -> None:
    assert closure(SITE, ["import"]) == ("db", "portal", "billing", "import")
    assert dependants(SITE, "db") == ("portal", "billing", "import")
    assert dependants(SITE, "import") == ()
