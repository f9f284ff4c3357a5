"""ChatOps rules, pure: Slack request signatures, who may answer from a button, the roster in
the runbook, and the messages an incident thread is made of."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.signature import SignatureVerifier

from drp.domain.chatops import (
    APPROVE,
    REJECT,
    Click,
    IncidentFacts,
    Roster,
    ThreadProgress,
    judge_click,
    parse_click,
    plan_messages,
    sign,
    verify_signature,
)
from drp.domain.failover import Mode
from drp.domain.runbook import validate
from drp.runbooks import load_runbook

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000.0
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"

ROSTER = Roster.model_validate(
    {
        "people": [
            {"name": "Budi", "role": "direktur", "slack_user_id": "U0BUDI001"},
            {"name": "Sari", "role": "pejabat_ditunjuk", "slack_user_id": "U0SARI001"},
            {"name": "Andi", "role": "operator", "slack_user_id": "U0ANDI001"},
        ]
    }
)


# -- signatures ------------------------------------------------------------------------------


def test_a_request_signed_with_our_secret_and_fresh_is_accepted() -> None:
    ts = str(int(NOW) - 10)
    decision = verify_signature(SECRET, ts, sign(SECRET, ts, BODY), BODY, NOW)
    assert decision.allowed, decision.reason


def test_our_signature_is_the_one_slack_sdk_computes() -> None:
    ts = str(int(NOW))
    expected = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=BODY)
    assert sign(SECRET, ts, BODY) == expected


def test_a_bad_signature_is_refused() -> None:
    ts = str(int(NOW))
    forged = sign("another-secret", ts, BODY)
    decision = verify_signature(SECRET, ts, forged, BODY, NOW)
    assert not decision.allowed and "bad signature" in decision.reason


def test_a_body_changed_after_signing_is_refused() -> None:
    ts = str(int(NOW))
    decision = verify_signature(SECRET, ts, sign(SECRET, ts, BODY), BODY + b"x", NOW)
    assert not decision.allowed


def test_a_replay_older_than_five_minutes_is_refused_even_when_signed() -> None:
    ts = str(int(NOW) - 301)
    decision = verify_signature(SECRET, ts, sign(SECRET, ts, BODY), BODY, NOW)
    assert not decision.allowed and "301 s old" in decision.reason and "replay" in decision.reason


def test_missing_or_garbled_headers_are_refused_with_the_reason() -> None:
    assert "missing" in verify_signature(SECRET, None, "v0=x", BODY, NOW).reason
    assert "not a number" in verify_signature(SECRET, "soon", "v0=x", BODY, NOW).reason


# -- clicks ----------------------------------------------------------------------------------


def _click(user: str, action: str = APPROVE) -> Click:
    return Click(slack_user_id=user, action=action, incident_id="inc-1", flow_run_id="f-1")


def test_an_unknown_slack_user_is_refused_and_told_how_to_be_added() -> None:
    d = judge_click(
        _click("U0STRANGER"), ROSTER, declared_by="Budi", mode=Mode.DRILL, two_person_rule=False
    )
    assert not d.allowed and "not in the runbook's roster" in d.reason and d.run_input is None


def test_an_operator_may_not_approve() -> None:
    d = judge_click(
        _click("U0ANDI001"), ROSTER, declared_by="Budi", mode=Mode.DRILL, two_person_rule=False
    )
    assert not d.allowed and "Andi (operator) may not answer" in d.reason


def test_an_operator_may_not_reject_either() -> None:
    d = judge_click(
        _click("U0ANDI001", REJECT),
        ROSTER,
        declared_by="Budi",
        mode=Mode.REAL,
        two_person_rule=True,
    )
    assert not d.allowed


def test_the_declarer_cannot_approve_their_own_real_failover() -> None:
    d = judge_click(
        _click("U0BUDI001"), ROSTER, declared_by="Budi", mode=Mode.REAL, two_person_rule=False
    )
    assert not d.allowed and "two-person rule" in d.reason


def test_a_second_person_approves_a_real_failover_with_the_forms_input() -> None:
    d = judge_click(
        _click("U0SARI001"), ROSTER, declared_by="Budi", mode=Mode.REAL, two_person_rule=True
    )
    assert d.allowed
    assert d.run_input is not None
    assert d.run_input["approver"] == "Sari" and d.run_input["decision"] == "approve"
    assert "U0SARI001" in d.run_input["comment"]
    # No role and no channel: the flow takes the role from the roster and the channel from
    # the proof the endpoint adds (drp.chatops.interact), never from what the input says.
    assert set(d.run_input) == {"approver", "decision", "comment"}


def test_a_drill_may_be_self_approved_only_when_the_runbook_allows_it() -> None:
    args: dict[str, Any] = {"declared_by": "Budi", "mode": Mode.DRILL}
    assert judge_click(_click("U0BUDI001"), ROSTER, two_person_rule=False, **args).allowed
    assert not judge_click(_click("U0BUDI001"), ROSTER, two_person_rule=True, **args).allowed


def test_a_rejection_resumes_with_the_reject_decision_so_the_flow_stops() -> None:
    d = judge_click(
        _click("U0SARI001", REJECT),
        ROSTER,
        declared_by="Budi",
        mode=Mode.REAL,
        two_person_rule=True,
    )
    assert d.allowed and d.run_input is not None and d.run_input["decision"] == "reject"


def test_an_approval_is_refused_when_the_declarer_is_unknown_and_two_people_are_needed() -> None:
    d = judge_click(
        _click("U0SARI001"), ROSTER, declared_by="", mode=Mode.REAL, two_person_rule=False
    )
    assert not d.allowed and "Prefect UI" in d.reason


def test_without_a_roster_nobody_answers_from_slack() -> None:
    d = judge_click(
        _click("U0SARI001"), None, declared_by="B", mode=Mode.DRILL, two_person_rule=False
    )
    assert not d.allowed and "no roster" in d.reason


def _payload(**over: Any) -> dict[str, Any]:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0SARI001"},
        "channel": {"id": "C00000001"},
        "message": {"ts": "1.000002", "thread_ts": "1.000001"},
        "actions": [
            {
                "action_id": APPROVE,
                "value": json.dumps({"incident_id": "inc-1", "flow_run_id": "f-1"}),
            }
        ],
    }
    payload.update(over)
    return payload


def test_a_block_actions_payload_becomes_a_click() -> None:
    click = parse_click(_payload())
    assert (click.slack_user_id, click.action, click.incident_id, click.flow_run_id) == (
        "U0SARI001",
        APPROVE,
        "inc-1",
        "f-1",
    )
    assert click.thread_ts == "1.000001"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "view_submission"}, "not block_actions"),
        ({"actions": [{"action_id": "other"}]}, "no drp_approve"),
        ({"user": {}}, "names no user"),
        ({"actions": [{"action_id": APPROVE, "value": "{"}]}, "not JSON"),
        ({"actions": [{"action_id": APPROVE, "value": "{}"}]}, "lacks incident_id"),
    ],
)
def test_a_malformed_payload_says_what_is_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_click(_payload(**change))


# -- the roster in the runbook ---------------------------------------------------------------


def _lab_data() -> dict[str, Any]:
    return yaml.safe_load((REPO / "runbooks" / "lab.yaml").read_text())


def test_the_shipped_runbooks_have_valid_rosters_and_channels() -> None:
    lab = load_runbook(REPO / "runbooks" / "lab.yaml")
    ceisa = load_runbook(REPO / "runbooks" / "ceisa.yaml")
    assert lab.roster is not None and lab.roster.by_slack_id("U0SARI001").name == "Sari"
    assert lab.chat is not None and lab.chat.incident == "#drp-lab"
    assert ceisa.roster is not None and ceisa.chat is not None and ceisa.chat.user_notices


def test_a_slack_user_listed_twice_is_a_problem_at_the_roster() -> None:
    data = _lab_data()
    data["roster"]["people"].append(
        {"name": "Other", "role": "observer", "slack_user_id": "U0BUDI001"}
    )
    problems = validate(data, playbooks=None, groups=None).problems
    assert [p.path for p in problems] == ["roster.people"]
    assert "U0BUDI001 is listed twice (people[0] and people[3])" in problems[0].message


def test_a_name_listed_twice_is_a_problem_at_the_roster() -> None:
    data = _lab_data()
    data["roster"]["people"].append({"name": " sari ", "role": "observer"})
    problems = validate(data, playbooks=None, groups=None).problems
    assert [p.path for p in problems] == ["roster.people"]
    assert "sari" in problems[0].message and "people[1] and people[3]" in problems[0].message


def test_a_person_without_slack_is_in_the_roster_but_no_click_maps_to_them() -> None:
    roster = Roster.model_validate({"people": [{"name": "Rina", "role": "direktur"}]})
    assert roster.by_name("rina").name == "Rina" and roster.by_slack_id("") is None
    assert not judge_click(
        _click("U0RINA001"), roster, declared_by="Budi", mode=Mode.DRILL, two_person_rule=False
    ).allowed


def test_a_bad_role_or_member_id_is_reported_at_its_place_with_a_hint() -> None:
    data = _lab_data()
    data["roster"]["people"][1]["role"] = "approver"
    data["roster"]["people"][2]["slack_user_id"] = "@andi"
    problems = {p.path: p for p in validate(data, playbooks=None, groups=None).problems}
    assert set(problems) == {"roster.people[1].role", "roster.people[2].slack_user_id"}
    assert "pejabat_ditunjuk" in problems["roster.people[1].role"].message
    assert "Slack member id" in problems["roster.people[2].slack_user_id"].hint


def test_an_unknown_key_under_chat_is_reported() -> None:
    data = _lab_data()
    data["chat"]["incidents"] = "#x"
    problems = validate(data, playbooks=None, groups=None).problems
    assert [p.path for p in problems] == ["chat.incidents"]
    assert "did you mean 'incident'" in problems[0].hint


# -- messages --------------------------------------------------------------------------------

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _facts(**over: Any) -> IncidentFacts:
    base: dict[str, Any] = {
        "incident_id": "inc-1",
        "flow": "failover",
        "mode": "drill",
        "incident_channel": "#drp-lab",
        "category": "katastropik",
        "declared_by": "Budi",
        "declarer_role": "direktur",
        "basis": "Pasal 7(1)(b): 60% of the server area above 30 °C",
        "declared_at": T0,
        "rto_budget_s": 600.0,
        "steps_total": 6,
        "flow_run_id": "f-1",
        "run_url": "http://127.0.0.1:4200/runs/flow-run/f-1",
        "user_channel": "#pengguna-jasa",
        "coordination": (("Direktorat Teknis Kepabeanan", "#drp-teknis"),),
    }
    base.update(over)
    return IncidentFacts(**base)


def _keys() -> Any:
    counter = iter(range(1000))
    return lambda: f"k{next(counter)}"


def test_a_declaration_opens_one_thread_then_tells_the_pasal_13_parties() -> None:
    progress = ThreadProgress()
    out = plan_messages(
        "incident.declared", "declared", {}, _facts(), progress, T0, new_key=_keys()
    )
    assert out[0].kind == "root" and out[0].key == "inc-1@#drp-lab:root"
    header = out[0].blocks[0]["text"]["text"]
    assert "LATIHAN / DRILL" in header and "katastropik" in header
    assert "Pasal 7(1)(b)" in out[0].blocks[1]["text"]["text"]
    coordination = [m for m in out if m.event == "coordination"]
    assert [(m.kind, m.channel) for m in coordination] == [("post", "#drp-teknis")]
    # A drill never reaches service users: the notice goes into the thread, marked.
    notice = [m for m in out if m.event == "notice.pemberitahuan"]
    assert notice[0].kind == "reply" and "drill: not sent" in notice[0].text


def test_a_real_declaration_posts_the_pemberitahuan_to_the_users_channel() -> None:
    out = plan_messages(
        "incident.declared",
        "declared",
        {"pemberitahuan": "Pemberitahuan No. 1"},
        _facts(mode="real"),
        ThreadProgress(),
        T0,
    )
    notice = next(m for m in out if m.event == "notice.pemberitahuan")
    assert (notice.kind, notice.channel, notice.text) == (
        "post",
        "#pengguna-jasa",
        "Pemberitahuan No. 1",
    )


def test_a_local_disaster_does_not_involve_the_pasal_13_parties() -> None:
    out = plan_messages(
        "incident.declared", "x", {}, _facts(category="parsial_lokal"), ThreadProgress(), T0
    )
    assert not [m for m in out if m.event == "coordination"]


def test_each_step_is_a_reply_and_rewrites_the_status_with_the_rto_clock() -> None:
    progress = ThreadProgress()
    now = T0 + timedelta(seconds=90)
    out = plan_messages(
        "step.done", "inc-1: ✓ Fence: 3.1 s of 15 s", {}, _facts(), progress, now, new_key=_keys()
    )
    assert [m.kind for m in out] == ["reply", "update"]
    assert out[0].text == "✅ Fence: 3.1 s of 15 s"  # no incident id or second symbol
    assert out[0].thread_key == out[1].thread_key == "inc-1@#drp-lab"
    status = out[1].blocks[1]["text"]["text"]
    assert "steps 1/6" in status and "1 min 30 s of 10 min 0 s (15%)" in status
    assert progress.steps_done == 1


def test_the_approval_gate_carries_buttons_that_name_the_run_to_resume() -> None:
    out = plan_messages("approval.requested", "waiting", {}, _facts(), ThreadProgress(), T0)
    actions = out[0].blocks[1]
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == [APPROVE, REJECT]
    value = json.loads(actions["elements"][0]["value"])
    assert value == {"incident_id": "inc-1", "flow_run_id": "f-1"}


def test_the_summary_gives_rto_rpo_the_report_and_the_prefect_run() -> None:
    data = {
        "achieved_rto_s": 61.2,
        "rpo": {"reason": "no data lost"},
        "report": "/e/failover-report.md",
        "ledger": "/e/failover",
    }
    out = plan_messages(
        "failover.completed", "verified", data, _facts(), ThreadProgress(), T0, new_key=_keys()
    )
    summary = out[0].text
    for part in (
        "1 min 1 s of 10 min 0 s",
        "no data lost",
        "/e/failover-report.md",
        "/runs/flow-run/f-1",
    ):
        assert part in summary
    assert out[1].kind == "update" and "service verified" in out[1].text
