"""The ChatOps outbox and sender against a real PostgreSQL (ops-db) and the real slack-sdk
client talking HTTP to the Slack stand-in; the interactivity endpoint over real HTTP.

Never lose (429, 5xx, ok:false), never repeat (a crash between send and acknowledge), keep the
order, never block on enqueue, never leak the token; refuse forged, stale, unknown and
not-allowed clicks, record them and say why in the thread.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_standin import SlackStandIn
from typer.testing import CliRunner

from drp.adapters.chatops import SlackChat
from drp.adapters.outbox import IncidentRecord, Outbox
from drp.chatops.interact import Interactions, make_server
from drp.chatops.sender import OutboxSender
from drp.domain.approval import SlackProof, read_slack_proof, slack_proof_key
from drp.domain.chatops import APPROVE, OutgoingMessage, sign
from drp.errors import PostgresError
from drp.lab.config import OPS_DATABASE
from drp.lab.core import Lab
from drp.ledger import Ledger, read_records
from drp.notify import notify_safely
from drp.tasks.chatops import SlackNotifier

pytestmark = pytest.mark.integration

BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400"))
OPS_LAB_BASE = BASE + 820  # this module's own ops-db listens on base+823
STANDIN_PORT = BASE + 811
SERVE_PORT = BASE + 813
TOKEN = "xoxb-integration-0123456789-secret"
SIGNING = "integration-signing-secret-abcdef"
CHANNELS = ("drp-lab", "drp-lab-pengguna-jasa")
RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml"


@pytest.fixture(scope="module")
def ops_dsn() -> Iterator[str]:
    """Only the lab's ops-db (the outbox needs nothing else), on this module's ports."""
    root = Path(tempfile.mkdtemp(prefix="drp-chatops-it-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=OPS_LAB_BASE)
    for sub in (lab.cfg.root, lab.cfg.logs, lab.cfg.run_dir):
        sub.mkdir(parents=True, exist_ok=True)
    os.chmod(lab.cfg.root, 0o755)
    cluster = lab.cluster("ops-db")
    try:
        cluster.initdb()
        cluster.start()
        cluster.ensure_database(OPS_DATABASE)
        yield lab.dsn("ops-db") + " connect_timeout=2"
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def standin() -> Iterator[SlackStandIn]:
    server = SlackStandIn(STANDIN_PORT, TOKEN, channels=CHANNELS).start()
    yield server
    server.stop()


@pytest.fixture
def outbox(ops_dsn: str, standin: SlackStandIn) -> Outbox:
    standin.reset()
    box = Outbox(ops_dsn)
    box.ensure_schema()
    import psycopg

    with psycopg.connect(ops_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE chatops.outbox, chatops.incidents, chatops.clicks")
    return box


def _sender(box: Outbox, standin: SlackStandIn) -> OutboxSender:
    chat = SlackChat(TOKEN, base_url=standin.base_url, timeout_s=2)
    return OutboxSender(box, chat, backoff_base_s=0.05, max_backoff_s=0.2)


def _thread(n: int, incident: str = "inc-it") -> list[OutgoingMessage]:
    thread = f"{incident}@#drp-lab"
    root = OutgoingMessage(f"{thread}:root", "root", "#drp-lab", thread, "status 0", event="open")
    replies = [
        OutgoingMessage(f"{incident}:r{i}", "reply", "#drp-lab", thread, f"step {i}", event="s")
        for i in range(1, n + 1)
    ]
    return [root, *replies]


def _posted_keys(standin: SlackStandIn) -> list[str]:
    return [m.key for m in standin.messages if m.key]


def test_messages_arrive_in_order_once_each_and_updates_rewrite_the_root(
    outbox: Outbox, standin: SlackStandIn
) -> None:
    thread = "inc-it@#drp-lab"
    root, r1, r2 = _thread(2)
    update = lambda n: OutgoingMessage(  # noqa: E731
        f"{thread}:status:{n}", "update", "#drp-lab", thread, f"status {n}", event="u"
    )
    outbox.enqueue([root, r1, update(1), r2, update(2)], incident_id="inc-it")
    outbox.enqueue([r1], incident_id="inc-it")  # queued twice: the key makes it a no-op
    report = _sender(outbox, standin).drain()
    assert (report.sent, report.superseded, report.failed) == (4, 1, 0)
    assert _posted_keys(standin) == [root.key, r1.key, r2.key]
    first = standin.roots()[0]
    assert [m.text for m in standin.thread(first.ts)] == ["step 1", "step 2"]
    assert first.text == "status 2" and first.edits == 1  # one update, the latest, in place
    states = {r.key: r.state for r in outbox.rows(incident_id="inc-it")}
    assert states[f"{thread}:status:1"] == "superseded"


def test_429_and_500_delay_but_never_lose_or_reorder(
    outbox: Outbox, standin: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # slack-sdk logs every request at DEBUG
    messages = _thread(3)
    outbox.enqueue(messages, incident_id="inc-it")
    standin.fail("429", 3, method="chat.postMessage", arg=1)  # slack-sdk retries twice, then us
    standin.fail("500", 2, method="chat.postMessage")
    report = _sender(outbox, standin).drain()
    assert report.retries >= 2 and report.failed == 0
    assert _posted_keys(standin) == [m.key for m in messages]
    outcomes = [r.outcome for r in standin.requests if r.method == "chat.postMessage"]
    assert outcomes.count("429") == 3 and outcomes.count("500") == 2
    # A 429 is retried by slack-sdk after Retry-After; the waits show in the request times.
    times = [r.at for r in standin.requests if r.method == "chat.postMessage"]
    assert times[1] - times[0] >= 1.0
    assert "chat.postMessage" in caplog.text and TOKEN not in caplog.text


def test_a_message_slack_refuses_is_failed_with_why_and_the_queue_moves_on(
    outbox: Outbox, standin: SlackStandIn, ops_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _thread(0)[0]
    elsewhere = OutgoingMessage("inc-it:notice", "post", "#nowhere", "inc-it@#nowhere", "x")
    reply = _thread(1)[1]
    outbox.enqueue([root, elsewhere, reply], incident_id="inc-it")
    # The root posts, the notice to an unknown channel is refused, the reply still goes.
    original = standin._answer

    def refuse_nowhere(method: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if p.get("channel") == "#nowhere":
            return 200, {"ok": False, "error": "channel_not_found"}
        return original(method, p)

    monkeypatch.setattr(standin, "_answer", refuse_nowhere)
    report = _sender(outbox, standin).drain()
    assert (report.sent, report.failed) == (2, 1)
    monkeypatch.setenv("DRP_OPS_DSN", ops_dsn)
    from drp.cli import app

    result = CliRunner().invoke(app, ["chatops", "status", "--json"])
    status = json.loads(result.stdout)
    assert result.exit_code == 1  # something failed
    assert status["counts"]["sent"] == 2 and status["counts"]["failed"] == 1
    failed = [p for p in status["pending"] if p["state"] == "failed"]
    assert failed[0]["key"] == "inc-it:notice" and "channel_not_found" in failed[0]["why"]
    readable = CliRunner().invoke(app, ["chatops", "status"])
    assert "channel_not_found" in readable.stdout and "1 failed" in readable.stdout


def test_a_crash_between_send_and_acknowledge_does_not_post_twice(
    outbox: Outbox, standin: SlackStandIn, ops_dsn: str, tmp_path: Path
) -> None:
    messages = _thread(3)
    outbox.enqueue(messages, incident_id="inc-it")
    env = {
        **os.environ,
        "DRP_OPS_DSN": ops_dsn,
        "DRP_SLACK_TOKEN": TOKEN,
        "DRP_SLACK_BASE_URL": standin.base_url,
        "DRP_CHATOPS_CRASH_AFTER_SEND": messages[2].key,
        "DRP_EVIDENCE_DIR": str(tmp_path / "evidence"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "drp.cli", "chatops", "drain", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 70, proc.stderr[-2000:]
    # Slack has the message, the outbox does not know: it is still "sending".
    assert _posted_keys(standin) == [m.key for m in messages[:3]]
    assert {r.key: r.state for r in outbox.rows()}[messages[2].key] == "sending"
    report = _sender(outbox, standin).drain()
    assert report.found_already_posted == 1 and report.sent == 1
    assert _posted_keys(standin) == [m.key for m in messages]  # once each, in order
    row = {r.key: r for r in outbox.rows()}[messages[2].key]
    assert row.state == "sent" and "not posted again" in row.why and row.ts


def test_a_timeout_then_a_retry_looks_before_it_posts(
    outbox: Outbox, standin: SlackStandIn
) -> None:
    messages = _thread(1)
    outbox.enqueue(messages, incident_id="inc-it")
    standin.fail("hang", 1, method="chat.postMessage")
    sender = _sender(outbox, standin)
    import threading

    releaser = threading.Timer(3.0, standin.release)
    releaser.start()
    report = sender.drain()
    releaser.join()
    assert report.retries >= 1 and report.failed == 0
    assert _posted_keys(standin) == [m.key for m in messages]
    methods = [r.method for r in standin.requests]
    assert "conversations.history" in methods  # the root was looked for before re-posting


def test_enqueue_fails_fast_and_is_recorded_when_ops_db_is_unreachable(tmp_path: Path) -> None:
    dead = Outbox(f"host=127.0.0.1 port={BASE + 899} dbname=drp user=drp connect_timeout=1")
    ledger = Ledger.create(tmp_path / "run", "run-1", {})
    notifier = SlackNotifier(
        dead,
        ledger,
        flow="failover",
        incident_id="inc-x",
        mode="drill",
        default_channel="#drp-lab",
    )
    with pytest.raises(PostgresError, match="cannot connect"):
        dead.enqueue(_thread(1))
    notify_safely([notifier], ledger, "step.done", "✓ step", step_id="s1")
    failed = [r for _, r in read_records(ledger.directory) if r.kind == "notification.failed"]
    assert failed and failed[0].data["notifier"] == "SlackNotifier"


def test_the_notifier_queues_a_thread_and_never_records_the_token(
    outbox: Outbox, standin: SlackStandIn, tmp_path: Path
) -> None:
    ledger = Ledger.create(
        tmp_path / "inc-n" / "failover", "inc-n", {"flow": "failover", "runbook": str(RUNBOOK)}
    )
    ledger.add_known_secrets(TOKEN)
    ledger.append("attempt.start", {"flow_run_id": "f-123", "runbook": str(RUNBOOK)})
    ledger.append(
        "incident.declared",
        {
            "declared_by": "Budi",
            "declarer_role": "direktur",
            "category": "katastropik",
            "declared_at": "2026-11-23T08:00:00+00:00",
            "mode": "drill",
            "basis": f"token {TOKEN} pasted by mistake",
        },
    )
    notifier = SlackNotifier(
        outbox, ledger, flow="failover", incident_id="inc-n", mode="drill", default_channel="#x"
    )
    notify_safely([notifier], ledger, "incident.declared", "declared")
    notify_safely([notifier], ledger, "approval.requested", "waiting")
    notify_safely([notifier], ledger, "step.done", "✓ Fence: 1 s of 15 s", step_id="fence")
    queued = [r for _, r in read_records(ledger.directory) if r.kind == "chatops.queued"]
    assert [q.data["event"] for q in queued] == [
        "incident.declared",
        "approval.requested",
        "step.done",
    ]
    assert queued[0].data["channel"] == "#drp-lab"  # the runbook's chat.incident
    assert outbox.incident("inc-n") == IncidentRecord(
        "inc-n", "failover", "f-123", "Budi", "drill", str(RUNBOOK), "#drp-lab"
    )
    _sender(outbox, standin).drain()
    root = standin.roots()[0]
    assert "katastropik" in root.blocks[0]["text"]["text"]
    buttons = [m for m in standin.thread(root.ts) if m.blocks and m.blocks[-1]["type"] == "actions"]
    assert json.loads(buttons[0].blocks[-1]["elements"][0]["value"])["flow_run_id"] == "f-123"
    assert TOKEN not in (ledger.directory / "ledger.jsonl").read_text()
    assert all(TOKEN not in r.text for r in outbox.rows())


def test_the_status_clock_moves_between_events_and_stops_at_the_end(
    outbox: Outbox, tmp_path: Path
) -> None:
    ledger = Ledger.create(tmp_path / "inc-c" / "failover", "inc-c", {"runbook": str(RUNBOOK)})
    notifier = SlackNotifier(
        outbox, ledger, flow="failover", incident_id="inc-c", mode="drill", default_channel="#x"
    )
    notifier.clock_s = 0.2
    notify_safely([notifier], ledger, "incident.declared", "declared")

    def clock_updates() -> int:
        return sum(r.event == "clock" for r in outbox.rows(incident_id="inc-c"))

    deadline = time.monotonic() + 30
    while clock_updates() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert clock_updates() >= 2
    notify_safely([notifier], ledger, "failover.completed", "verified")
    assert notifier._ticker is not None
    notifier._ticker.join(timeout=5)
    assert not notifier._ticker.is_alive()
    settled = clock_updates()
    time.sleep(0.5)
    assert clock_updates() == settled


# -- the interactivity endpoint ------------------------------------------------------------


@pytest.fixture
def endpoint(outbox: Outbox, tmp_path: Path) -> Iterator[tuple[str, list[Any], Ledger]]:
    resumed: list[Any] = []
    ledger = Ledger.create(tmp_path / "serve", "serve-test", {})
    interactions = Interactions(
        outbox, SIGNING, ledger, resume=lambda run, data: resumed.append((run, data))
    )
    server = make_server(interactions, "127.0.0.1", SERVE_PORT)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    outbox.remember_incident(
        IncidentRecord("inc-real", "failover", "f-9", "Budi", "real", str(RUNBOOK), "#drp-lab")
    )
    outbox.enqueue(_thread(0, "inc-real"), incident_id="inc-real")
    yield f"http://127.0.0.1:{SERVE_PORT}/slack/interactivity", resumed, ledger
    server.shutdown()
    server.server_close()


def _click_body(user: str, incident: str = "inc-real", action: str = APPROVE) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "actions": [
            {
                "action_id": action,
                "value": json.dumps({"incident_id": incident, "flow_run_id": "f-9"}),
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def _post(
    url: str, body: bytes, *, ts: int | None = None, secret: str = SIGNING
) -> tuple[int, dict]:
    stamp = str(ts if ts is not None else int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(secret, stamp, body),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_forged_or_stale_request_is_refused_and_nothing_resumes(endpoint, outbox) -> None:
    url, resumed, ledger = endpoint
    status, body = _post(url, _click_body("U0SARI001"), secret="not-our-secret")
    assert status == 401 and "bad signature" in body["reason"]
    status, body = _post(url, _click_body("U0SARI001"), ts=int(time.time()) - 360)
    assert status == 401 and "replay" in body["reason"]
    assert resumed == []
    refused = [r for _, r in read_records(ledger.directory) if r.kind == "chatops.request.refused"]
    assert len(refused) == 2


def test_unknown_users_wrong_roles_and_self_approval_are_refused_recorded_and_told(
    endpoint, outbox: Outbox, standin: SlackStandIn
) -> None:
    url, resumed, _ = endpoint
    answers = [
        _post(url, _click_body(user))[1] for user in ("U0STRANGER", "U0ANDI001", "U0BUDI001")
    ]
    assert [a["ok"] for a in answers] == [False, False, False]
    assert "not in the runbook's roster" in answers[0]["reason"]
    assert "Andi (operator) may not answer" in answers[1]["reason"]
    assert "two-person rule" in answers[2]["reason"]
    assert resumed == []
    clicks = outbox.clicks("inc-real")
    assert [(c["slack_user_id"], c["allowed"]) for c in clicks] == [
        ("U0STRANGER", False),
        ("U0ANDI001", False),
        ("U0BUDI001", False),
    ]
    _sender(outbox, standin).drain()
    told = [m.text for m in standin.thread(standin.roots()[0].ts)]
    assert len(told) == 3 and all("refused" in t for t in told)
    assert "Budi (direktur)" in told[2]


def test_a_second_person_in_the_roster_resumes_the_run_with_the_forms_input(endpoint) -> None:
    url, resumed, ledger = endpoint
    status, body = _post(url, _click_body("U0SARI001"))
    assert status == 200 and body["ok"] and body["resumed"]
    ((run, run_input),) = resumed
    assert run == "f-9"
    assert {k: v for k, v in run_input.items() if k != "code"} == {
        "approver": "Sari",
        "decision": "approve",
        "comment": "approved in Slack by U0SARI001",
    }
    # The endpoint's proof of the click, which the flow checks (drp.domain.approval): bound to
    # this run, this person and this decision, MAC'd with a key derived from the signing secret.
    proof = read_slack_proof(slack_proof_key(SIGNING), run_input["code"])
    assert isinstance(proof, SlackProof)
    assert (proof.flow_run_id, proof.person, proof.slack_user_id, proof.decision) == (
        "f-9",
        "Sari",
        "U0SARI001",
        "approve",
    )
    assert isinstance(read_slack_proof(slack_proof_key("other"), run_input["code"]), str)
    clicks = [r.data for _, r in read_records(ledger.directory) if r.kind == "chatops.click"]
    assert clicks[-1]["person"] == "Sari" and clicks[-1]["allowed"]
