"""ChatOps end to end: the failover flow on a fresh lab through the Prefect test server, with
Slack configured (the real slack-sdk client, the Slack stand-in over HTTP), the outbox in the
lab's ops-db, and the interactivity endpoint answering signed clicks over HTTP.

- a failover approved by a Slack click (after an unknown user and an operator were refused),
  then Slack hanging for every step: no step waits on it, the failover completes while it still
  hangs, and afterwards every message arrives once, in order, in one thread with every step and
  the status message updated in place (one lab and one failover, to keep the suite fast);
- ``drp chatops setup``: Prefect's automation and notification block, delivering to Slack.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_standin import SlackStandIn

from drp.adapters.outbox import Outbox
from drp.chatops.interact import Interactions, make_server
from drp.chatops.sender import stop_background_senders
from drp.domain.chatops import APPROVE, sign
from drp.flows import load
from drp.lab.core import Lab
from drp.lab.procs import wait_until
from drp.ledger import Ledger, read_records
from drp.settings import Settings
from drp.tasks.chatops import ops_dsn_for

pytestmark = pytest.mark.e2e

BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400"))
STANDIN_PORT = BASE + 812
SERVE_PORT = BASE + 814
TOKEN = "xoxb-e2e-5555555555-topsecret"
SIGNING = "e2e-signing-secret-0123456789"
RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml")
CHANNELS = ("drp-lab", "drp-lab-pengguna-jasa", "drp-fallback")


@pytest.fixture(scope="module")
def standin() -> Iterator[SlackStandIn]:
    server = SlackStandIn(STANDIN_PORT, TOKEN, channels=CHANNELS).start()
    yield server
    server.stop()


@pytest.fixture
def slack(
    standin: SlackStandIn, fresh_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlackStandIn]:
    standin.reset()
    for name, value in {
        "DRP_SLACK_TOKEN": TOKEN,
        "DRP_SLACK_CHANNEL": "#drp-fallback",
        "DRP_SLACK_BASE_URL": standin.base_url,
        "DRP_SLACK_SIGNING_SECRET": SIGNING,
        "DRP_SLACK_TIMEOUT_S": "1",
        "DRP_SLACK_MAX_BACKOFF_S": "1",
    }.items():
        monkeypatch.setenv(name, value)
    yield standin
    standin.release()
    stop_background_senders()


def _outbox() -> Outbox:
    dsn = ops_dsn_for(Settings())
    assert dsn
    return Outbox(dsn)


def _delivered(box: Outbox, incident: str) -> bool:
    return all(r.state in ("sent", "superseded") for r in box.rows(incident_id=incident))


def _queued(ledger: str) -> list[Any]:
    return [r for _, r in read_records(ledger) if r.kind == "chatops.queued"]


def _click(url: str, user: str, value: str) -> dict[str, Any]:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "actions": [{"action_id": APPROVE, "value": value}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(SIGNING, stamp, body),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_failover_approved_from_slack_runs_while_slack_hangs_then_reads_as_one_thread(
    prefect_server, slack: SlackStandIn, tmp_path: Path
) -> None:
    """One lab, one failover: the gate is answered from Slack (two refused clicks first), then
    Slack hangs for every step; no step waits, and afterwards the thread has everything."""
    box = _outbox()
    ledger = Ledger.create(tmp_path / "serve", "serve-e2e", {}, known_secrets=[TOKEN, SIGNING])
    server = make_server(Interactions(box, SIGNING, ledger), "127.0.0.1", SERVE_PORT)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{SERVE_PORT}/slack/interactivity"
    incident = f"inc-slack-{uuid.uuid4().hex[:6]}"
    result: dict[str, Any] = {}
    flow = load("failover").failover
    runner = threading.Thread(
        target=lambda: result.update(
            out=flow(
                runbook=RUNBOOK,
                declared_by="Budi",
                declarer_role="direktur",
                category="katastropik",
                mode="drill",
                approved_by=None,
                incident_id=incident,
            )
        ),
        daemon=True,
    )
    runner.start()
    try:

        def buttons() -> Any:
            return next(
                (m for m in slack.messages if m.blocks and m.blocks[-1].get("type") == "actions"),
                None,
            )

        assert wait_until(lambda: buttons() is not None, 90), "no approval buttons in Slack"
        value = buttons().blocks[-1]["elements"][0]["value"]
        assert json.loads(value)["incident_id"] == incident
        refused = [_click(url, user, value) for user in ("U0STRANGER", "U0ANDI001")]
        assert [r["ok"] for r in refused] == [False, False]
        assert wait_until(lambda: _delivered(box, incident), 30)
        before_hang = len(slack.messages)
        slack.hang()  # from here to the end of the failover, Slack answers nothing
        answer = _click(url, "U0SARI001", value)
        assert answer["ok"] and answer["resumed"], answer
        runner.join(timeout=240)
    finally:
        server.shutdown()
        server.server_close()
    outcome = result["out"]

    # The failover completed while Slack still hangs: nothing more reached it.
    assert outcome.status == "verified"
    assert len(slack.messages) == before_hang and any(r.outcome == "hung" for r in slack.requests)
    granted = [r.data for _, r in read_records(outcome.ledger) if r.kind == "approval.granted"]
    assert granted[0]["approver"] == "Sari" and "U0SARI001" in granted[0]["comment"]
    assert (granted[0]["channel"], granted[0]["identity"], granted[0]["slack_user_id"]) == (
        "slack",
        "slack-signature",
        "U0SARI001",
    )
    records = [r for _, r in read_records(outcome.ledger)]
    for index, rec in enumerate(records):  # each step's message queued before the next starts
        if rec.kind != "step.end":
            continue
        following = records[index + 1 :]
        next_start = next((i for i, r in enumerate(following) if r.kind == "step.start"), None)
        queued_at = next(
            i
            for i, r in enumerate(following)
            if r.kind == "chatops.queued" and r.data.get("step_id") == rec.data["step_id"]
        )
        assert next_start is None or queued_at < next_start, rec.data["step_id"]
    assert box.status(incident_id=incident)["counts"]["queued"] > 0

    # Slack answers again: everything arrives, once each, in the order it was queued.
    slack.release()
    assert wait_until(lambda: _delivered(box, incident), 90), box.status(incident_id=incident)
    posted = [m.key for m in slack.messages]
    assert len(posted) == len(set(posted))
    rows = [r for r in box.rows(incident_id=incident) if r.kind in ("root", "reply")]
    assert posted == [r.key for r in rows]

    # One thread: one root for the incident, every step's message in plan order inside it.
    roots = [m for m in slack.roots() if m.key == f"{incident}@#drp-lab:root"]
    assert len(roots) == 1
    root = roots[0]
    assert slack.channel_name(root.channel) == "drp-lab"
    thread = slack.thread(root.ts)
    keys_in_slack = [m.key for m in thread]
    queued = _queued(outcome.ledger)
    # Each step is announced when it starts and when it ends, in plan order.
    step_keys = [(q.data["step_id"], q.data["keys"][0]) for q in queued if q.data["step_id"]]
    assert [(q.data["step_id"], q.data["event"]) for q in queued if q.data["step_id"]] == [
        pair
        for s in outcome.steps
        for pair in ((s["step_id"], "step.started"), (s["step_id"], f"step.{s['status']}"))
    ]
    positions = [keys_in_slack.index(key) for _, key in step_keys]
    assert positions == sorted(positions)
    # The status message was rewritten in place (never posted again) and ends verified.
    assert root.edits >= 1 and "service verified" in root.text
    texts = [m.text for m in thread]
    assert sum("refused" in t for t in texts) == 2
    assert any("approved in Slack by Sari" in t for t in texts)
    assert any("Achieved RTO" in t for t in texts)
    assert any("drill: not sent to service users" in t for t in texts)
    assert [c["allowed"] for c in box.clicks(incident)] == [False, False, True]
    for path in (Path(outcome.ledger) / "ledger.jsonl", ledger.directory / "ledger.jsonl"):
        assert TOKEN not in path.read_text()


def test_setup_creates_prefects_alert_which_posts_to_slack(
    prefect_server, standin: SlackStandIn
) -> None:
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from drp.chatops import alerts

    standin.reset()
    first = alerts.setup(TOKEN, standin.base_url, "#drp-lab")
    second = alerts.setup(TOKEN, standin.base_url, "#drp-lab")
    assert not first.replaced and second.replaced
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(alerts.AUTOMATION_NAME)
    assert len(found) == 1
    automation = Automation.read(id=found[0].id)
    assert set(automation.trigger.expect) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert str(automation.actions[0].block_document_id) == second.block_document_id
    block = CustomWebhookNotificationBlock.load(alerts.BLOCK_NAME)
    block.notify("DR flow run failover/x: Crashed", subject="DR flow run failed")
    request = standin.posted()[-1]
    assert request.authorization == f"Bearer {TOKEN}"
    assert request.params["channel"] == "#drp-lab" and "Crashed" in request.params["text"]
