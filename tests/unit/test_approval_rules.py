"""Approvals that prove who gives them, pure: standing in the roster, one-time codes (valid,
skewed, replayed), Slack proofs (forged, altered, stale, replayed), what each channel must
prove, the two-person rule on top, and what the form says."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drp.domain import approval as rules
from drp.domain.approval import (
    GateFacts,
    Proof,
    SlackProof,
    judge_approval,
    judge_code,
    judge_slack_proof,
    judge_standing,
    make_slack_proof,
    proof_required,
    read_slack_proof,
    slack_proof_key,
)
from drp.domain.chatops import Roster
from drp.domain.failover import Mode

pytestmark = pytest.mark.unit

ROSTER = Roster.model_validate(
    {
        "approver_roles": ["direktur", "pejabat_ditunjuk"],
        "people": [
            {"name": "Budi", "role": "direktur", "slack_user_id": "U0BUDI001"},
            {"name": "Sari", "role": "pejabat_ditunjuk", "slack_user_id": "U0SARI001"},
            {"name": "Andi", "role": "operator"},
            {"name": "Oki", "role": "observer"},
        ],
    }
)
APPROVERS = ROSTER.approver_roles
KEY = slack_proof_key("signing-secret-for-tests")
NOW = 1_800_000_000.0


def _code(code: str = "123456", **overrides: Any) -> Proof:
    args: dict[str, Any] = {
        "person": "Sari",
        "channel": "prefect-ui",
        "enrolled": True,
        "matched_step": 60_000_000,
        "last_used_step": None,
    }
    args.update(overrides)
    return judge_code(code, **args)


# -- standing ----------------------------------------------------------------------------------


def test_the_approver_must_be_a_roster_person_whose_role_may_approve() -> None:
    assert judge_standing("Sari", ROSTER, APPROVERS, "approval").ok
    assert judge_standing(" sari ", ROSTER, APPROVERS, "approval").person.name == "Sari"
    stranger = judge_standing("Mallory", ROSTER, APPROVERS, "approval")
    assert not stranger.ok and "not in the runbook's roster" in stranger.reason
    operator = judge_standing("Andi", ROSTER, APPROVERS, "approval")
    assert not operator.ok and "Andi (operator) may not answer the approval" in operator.reason
    assert not judge_standing("", ROSTER, APPROVERS, "approval").ok
    assert "no roster" in judge_standing("Sari", None, APPROVERS, "approval").reason


def test_the_isolation_may_be_confirmed_by_an_operator_but_not_an_observer() -> None:
    assert judge_standing("Andi", ROSTER, rules.ISOLATION_ROLES, "confirmation").ok
    assert not judge_standing("Oki", ROSTER, rules.ISOLATION_ROLES, "confirmation").ok
    assert rules.who_may_answer(ROSTER, rules.ISOLATION_ROLES) == ("Budi", "Sari", "Andi")
    assert rules.who_may_answer(ROSTER, APPROVERS) == ("Budi", "Sari")


# -- one-time codes ----------------------------------------------------------------------------


def test_a_valid_code_of_an_enrolled_person_proves_who_they_are() -> None:
    proof = _code()
    assert proof.ok and proof.identity == "totp" and proof.step == 60_000_000
    assert "123456" not in proof.reason


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"code": ""}, "no one-time code given for Sari"),
        ({"code": "   "}, "no one-time code given"),
        ({"code": "12345"}, "not 6 digits"),
        ({"code": "12345a"}, "not 6 digits"),
        ({"code": "١٢٣٤٥٦"}, "not 6 digits"),  # Arabic-Indic digits are digits, not ASCII
        ({"enrolled": False}, "Sari is not enrolled"),
        ({"matched_step": None}, "wrong one-time code for Sari"),
        ({"last_used_step": 60_000_000}, "replayed one-time code"),
        ({"last_used_step": 60_000_001}, "replayed one-time code"),
    ],
)
def test_a_missing_malformed_unenrolled_wrong_or_replayed_code_is_refused(
    overrides: dict[str, Any], words: str
) -> None:
    proof = _code(**overrides)
    assert not proof.ok and words in proof.reason


def test_a_code_newer_than_the_last_one_used_is_accepted() -> None:
    assert _code(last_used_step=59_999_999).ok


def test_the_refusal_says_where_the_code_goes_on_each_channel() -> None:
    assert "--approval-code" in _code(code="", channel="cli").reason
    assert "approval_code" in _code(code="", channel="deployment-parameter").reason
    assert "authenticator app" in _code(code="", channel="prefect-ui").reason


# -- Slack proofs ------------------------------------------------------------------------------


def _slack(**overrides: Any) -> SlackProof:
    base = SlackProof("run-1", "Sari", "U0SARI001", "approve", int(NOW), "n-1")
    return replace(base, **overrides)


def _judge_slack(token: str, **overrides: Any) -> Proof:
    args: dict[str, Any] = {
        "flow_run_id": "run-1",
        "person": "Sari",
        "decision": "approve",
        "now": NOW + 2,
        "nonce_used": False,
    }
    args.update(overrides)
    return judge_slack_proof(read_slack_proof(KEY, token), **args)


def test_a_slack_proof_from_our_endpoint_proves_the_click() -> None:
    token = make_slack_proof(KEY, _slack())
    assert rules.is_slack_proof(token)
    proof = _judge_slack(token)
    assert proof.ok and proof.identity == "slack-signature"
    assert proof.nonce == "n-1" and proof.slack_user_id == "U0SARI001"


def test_a_forged_or_tampered_slack_proof_is_refused() -> None:
    forged = make_slack_proof(slack_proof_key("someone-elses-secret"), _slack())
    assert "forged Slack proof" in _judge_slack(forged).reason
    token = make_slack_proof(KEY, _slack())
    body, _, mac = token.rpartition(".")
    other = make_slack_proof(KEY, _slack(person="Budi")).rpartition(".")[0]
    assert "forged" in _judge_slack(f"{other}.{mac}").reason  # Budi's body, Sari's MAC
    assert "malformed" in _judge_slack("slack-proof-v1.garbage").reason
    assert (
        "DRP_SLACK_SIGNING_SECRET"
        in judge_slack_proof(
            read_slack_proof(None, token),
            flow_run_id="run-1",
            person="Sari",
            decision="approve",
            now=NOW,
            nonce_used=False,
        ).reason
    )
    assert body.startswith("slack-proof-v1.")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"flow_run_id": "run-2"}, "another flow run"),
        ({"person": "Budi"}, "names Sari, not Budi"),
        ({"decision": "reject"}, "other decision"),
        ({"now": NOW + 301}, "301 s old"),
        ({"now": NOW - 400}, "in the future"),
        ({"nonce_used": True}, "replayed Slack proof"),
    ],
)
def test_a_slack_proof_counts_for_its_run_person_and_decision_once_within_five_minutes(
    overrides: dict[str, Any], words: str
) -> None:
    proof = _judge_slack(make_slack_proof(KEY, _slack()), **overrides)
    assert not proof.ok and words in proof.reason


# -- what each channel must prove ----------------------------------------------------------


def test_the_form_and_slack_always_prove_and_up_front_answers_prove_in_real_mode() -> None:
    for channel in ("prefect-ui", "slack"):
        assert proof_required(channel, Mode.DRILL, two_person_rule=False)
    for channel in ("cli", "deployment-parameter"):
        assert proof_required(channel, Mode.REAL, two_person_rule=False)
        assert proof_required(channel, Mode.DRILL, two_person_rule=True)
        assert not proof_required(channel, Mode.DRILL, two_person_rule=False)


GOOD = Proof(True, "totp", "one-time code of Sari verified", 1)


def _verdict(
    approver: str = "Sari",
    *,
    channel: str = "prefect-ui",
    mode: Mode = Mode.REAL,
    decision: str = "approve",
    declared_by: str = "Budi",
    two_person_rule: bool = False,
    proof: Proof | None = GOOD,
) -> rules.ApprovalVerdict:
    return judge_approval(
        approver=approver,
        decision=decision,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        mode=mode,
        declared_by=declared_by,
        two_person_rule=two_person_rule,
        standing=judge_standing(approver, ROSTER, APPROVERS, "approval"),
        proof=proof,
    )


def test_a_proven_second_person_approves_a_real_failover() -> None:
    v = _verdict()
    assert v.allowed and v.final and v.identity == "totp" and v.role == "pejabat_ditunjuk"
    assert "second person" in v.reason and "verified" in v.reason


def test_a_refused_form_answer_lets_someone_answer_again_but_an_up_front_one_stops() -> None:
    bad = Proof(False, "totp", "wrong one-time code for Sari")
    form = _verdict(proof=bad)
    assert not form.allowed and not form.final and form.reason == bad.reason
    cli = _verdict(channel="cli", proof=bad)
    assert not cli.allowed and cli.final


def test_a_proven_rejection_stops_the_gate() -> None:
    v = _verdict(decision="reject")
    assert not v.allowed and v.final and v.reason == "rejected by Sari (pejabat_ditunjuk)"


def test_an_unproven_rejection_does_not_stop_the_gate() -> None:
    v = _verdict(decision="reject", proof=Proof(False, "totp", "no one-time code given"))
    assert not v.allowed and not v.final


def test_the_declarer_cannot_approve_their_own_real_failover_even_with_a_valid_code() -> None:
    v = _verdict("Budi", proof=Proof(True, "totp", "one-time code of Budi verified", 5))
    assert not v.allowed and "two-person rule" in v.reason and not v.final


def test_a_stranger_or_an_operator_is_refused_whatever_the_code() -> None:
    ok = Proof(True, "totp", "verified", 1)
    assert "not in the runbook's roster" in _verdict("Mallory", proof=ok).reason
    assert "may not answer" in _verdict("Andi", proof=ok).reason


def test_a_drill_approved_on_the_command_line_without_a_code_is_recorded_as_unproven() -> None:
    v = _verdict(
        "drill-operator", channel="cli", mode=Mode.DRILL, declared_by="drill-operator", proof=None
    )
    assert v.allowed and v.identity == "none (drill, command line)" and v.role is None
    assert "unproven" in v.reason
    d = _verdict(
        "Budi", channel="deployment-parameter", mode=Mode.DRILL, declared_by="Budi", proof=None
    )
    assert d.allowed and d.identity == "none (drill, deployment parameter)" and d.role == "direktur"


def test_an_unproven_drill_approval_still_respects_the_roster_role_it_names() -> None:
    v = _verdict("Andi", channel="cli", mode=Mode.DRILL, declared_by="Budi", proof=None)
    assert not v.allowed and "Andi (operator) may not answer" in v.reason


def test_an_unproven_answer_where_proof_is_required_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="proof is required"):
        _verdict(channel="cli", mode=Mode.REAL, proof=None)


# -- isolation ---------------------------------------------------------------------------------


def _isolation(
    name: str = "Andi", *, proof_ok: bool = True, dc_is: str = "down", how: str = "called the site"
) -> rules.IsolationVerdict:
    return rules.judge_isolation(
        standing=judge_standing(name, ROSTER, rules.ISOLATION_ROLES, "confirmation"),
        proof=Proof(proof_ok, "totp", "verified" if proof_ok else "wrong one-time code"),
        dc_is=dc_is,
        how_checked=how,
    )


def test_a_proven_roster_person_confirms_the_dc_is_down_and_says_how() -> None:
    v = _isolation()
    assert v.allowed and v.reason == "Andi confirmed the DC is down: called the site"


def test_an_isolation_answer_without_proof_or_how_is_refused_and_asked_again() -> None:
    assert not _isolation(proof_ok=False).allowed and not _isolation(proof_ok=False).final
    assert not _isolation(how=" ").allowed and "how the DC was checked" in _isolation(how="").reason
    assert not _isolation("Oki").allowed


def test_not_confirmed_stops_the_promotion() -> None:
    v = _isolation(dc_is="not confirmed")
    assert not v.allowed and v.final and "nothing promoted" in v.reason


# -- what the form says ------------------------------------------------------------------------


def test_the_form_says_what_is_approved_on_what_basis_and_the_rto_clock() -> None:
    declared = datetime(2026, 3, 2, 3, 0, 0, tzinfo=UTC)
    facts = GateFacts(
        incident_id="inc-20260302-1",
        what="failover",
        mode=Mode.REAL,
        declared_by="Budi",
        declarer_role="direktur",
        category="katastropik",
        triggers=(("Pasal 7(1)(b)", "3 of 4 server zones above 30 °C"),),
        basis="suhu ruang server",
        clock_started_at=declared,
        rto_budget_s=3600,
    )
    text = rules.describe_gate(
        facts,
        asked_at=declared + timedelta(seconds=125),
        timeout_s=600,
        approvers=("Budi", "Sari"),
        answers_left=3,
    )
    assert "Failover of `inc-20260302-1`: approve?" in text and "**REAL**" in text
    assert "katastropik — Bencana TIK Katastropik (catastrophic IT disaster), Pasal 7" in text
    assert "Budi (direktur)" in text and "Basis**: Pasal 7(1)(b): 3 of 4 server zones" in text
    assert (
        "2 min 05 s of 60 min 00 s used" in text and "budget ends 04:00:00 UTC (11:00 WIB)" in text
    )
    assert "Answer by**: 03:12:05 UTC" in text and "Budi cannot approve it" in text
    again = rules.describe_gate(
        facts,
        asked_at=declared,
        timeout_s=600,
        approvers=("Sari",),
        answers_left=2,
        last_refusal="wrong one-time code for Sari",
    )
    assert "previous answer was refused**: wrong one-time code for Sari" in again
    assert "2 answer(s) left" in again
    bare = rules.describe_gate(
        replace(facts, triggers=(), basis=None),
        asked_at=declared,
        timeout_s=600,
        approvers=("Sari",),
        answers_left=3,
    )
    assert "Basis**: the declared category; the signals showed no trigger" in bare


def test_the_failback_form_says_its_clock_starts_on_approval() -> None:
    facts = GateFacts(
        incident_id="inc-1",
        what="failback",
        mode=Mode.DRILL,
        declared_by="Budi",
        rto_budget_s=3600,
        clock_starts_on_approval=True,
    )
    text = rules.describe_gate(
        facts, asked_at=datetime.now(UTC), timeout_s=60, approvers=("Sari",), answers_left=3
    )
    assert "DRC → DC" in text and "clock starts when you approve" in text
    assert "Category**: not declared" in text and "Asked for by**: Budi" in text
    assert "Basis" not in text
