"""The proof checks of the human gates against the lab's real ops-db: a code counts once (also
when two workers judge it at the same moment), an older code after a newer one is a replay, a
Slack proof counts once, and without ops-db nothing is accepted. Nothing stored is a code."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pyotp
import pytest

from drp.adapters.approval_store import UsedProofs
from drp.adapters.approvers import ApproverSecrets
from drp.domain.approval import SlackProof, make_slack_proof, slack_proof_key
from drp.lab.core import Lab
from drp.tasks.gates import ProofChecker

pytestmark = pytest.mark.integration
T = 1_800_000_015.0
KEY = slack_proof_key("integration-signing-secret")


def _checker(lab: Lab, tmp_path: Path, now: float = T) -> tuple[ProofChecker, str, pyotp.TOTP]:
    person = f"p-{uuid.uuid4().hex[:8]}"  # ops-db outlives the test: a name of its own
    secrets = ApproverSecrets(tmp_path / "approvers.json")
    uri = secrets.enrol(person, lab=True)
    totp = pyotp.parse_uri(uri)
    checker = ProofChecker(secrets, lab.dsn("ops-db"), KEY, now=lambda: now)
    return checker, person, totp  # type: ignore[return-value]


def _check(checker: ProofChecker, person: str, code: str, incident: str = "inc-it") -> object:
    return checker.check(
        person=person,
        code=code,
        channel="prefect-ui",
        decision="approve",
        flow_run_id="run-it",
        incident_id=incident,
        gate="failover-approval",
    )


def test_a_code_counts_once_and_an_older_one_after_it_is_a_replay(lab: Lab, tmp_path) -> None:
    checker, person, totp = _checker(lab, tmp_path)
    first = _check(checker, person, totp.at(T))
    assert first.ok and first.step == totp.timecode(T)
    again = _check(checker, person, totp.at(T), incident="inc-other")
    assert not again.ok and "replayed one-time code" in again.reason
    older = _check(checker, person, totp.at(T - 30))  # still inside the skew window
    assert not older.ok and "replayed" in older.reason
    newer = ProofChecker(checker.secrets, checker.used_dsn, KEY, now=lambda: T + 30)
    assert _check(newer, person, totp.at(T + 30)).ok
    used = UsedProofs(lab.dsn("ops-db")).used("inc-it")
    mine = [u for u in used if u["person"] == person]
    assert [u["totp_step"] for u in mine] == [totp.timecode(T), totp.timecode(T) + 1]
    assert all(totp.at(T) not in str(u.values()) for u in mine)


def test_two_workers_judging_the_same_code_at_once_accept_it_once(lab: Lab, tmp_path) -> None:
    checker, person, totp = _checker(lab, tmp_path)
    code = totp.at(T)
    results: list[object] = []
    start = threading.Barrier(4)

    def judge() -> None:
        mine = ProofChecker(checker.secrets, checker.used_dsn, KEY, now=lambda: T)
        start.wait()
        results.append(_check(mine, person, code))

    threads = [threading.Thread(target=judge) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.ok for r in results) == [False, False, False, True]


def test_a_slack_proof_counts_once(lab: Lab, tmp_path) -> None:
    checker, person, _ = _checker(lab, tmp_path)
    token = make_slack_proof(
        KEY, SlackProof("run-it", person, "U0SARI001", "approve", int(T), uuid.uuid4().hex)
    )
    assert _check(checker, person, token).ok
    replay = _check(checker, person, token)
    assert not replay.ok and "replayed Slack proof" in replay.reason


def test_without_ops_db_no_code_is_accepted(lab: Lab, tmp_path) -> None:
    checker, person, totp = _checker(lab, tmp_path)
    unreachable = ProofChecker(
        checker.secrets, "host=127.0.0.1 port=1 dbname=x connect_timeout=1", KEY, now=lambda: T
    )
    refused = _check(unreachable, person, totp.at(T))
    assert not refused.ok and "replay protection of approvals is unavailable" in refused.reason
    none = ProofChecker(checker.secrets, None, KEY, now=lambda: T)
    assert "no ops-db" in _check(none, person, totp.at(T)).reason
    # ...and the code was not burnt: it still counts once ops-db answers.
    assert _check(checker, person, totp.at(T)).ok
