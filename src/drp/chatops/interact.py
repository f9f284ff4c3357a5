"""Approvals from Slack: the interactivity endpoint behind ``drp chatops serve``.

Slack posts a signed ``block_actions`` payload when someone presses Approve or Reject. The
endpoint refuses anything not signed with our signing secret or older than five minutes, maps
the Slack user to a person in the runbook's roster, applies the Prefect form's rules
(:func:`drp.domain.chatops.judge_click`: approver role, two-person rule for real failovers),
and only then resumes the paused flow run with the form's input plus this endpoint's proof of
the click (``code``: a Slack proof, MAC'd with a key derived from the signing secret, see
:mod:`drp.domain.approval`). The flow checks the proof and the rules again itself: Slack is a
second door to the same gate, not a way round it.

Every click, allowed or refused, is recorded twice: in ``chatops.clicks`` (``ops-db``) and in
the endpoint's own hash-chained ledger; and the thread is told who answered, or why not.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from drp.adapters.outbox import Outbox
from drp.domain.approval import SlackProof, make_slack_proof, slack_proof_key
from drp.domain.chatops import (
    APPROVE,
    Click,
    OutgoingMessage,
    judge_click,
    parse_click,
    verify_signature,
)
from drp.domain.failover import Mode
from drp.errors import DrpError
from drp.ledger import Ledger

log = logging.getLogger("drp.chatops")

PATH = "/slack/interactivity"
MAX_BODY = 256 * 1024

Resume = Callable[[str, dict[str, Any]], None]


class NotWaiting(DrpError):
    """The flow run is not paused for input (already answered, finished, or unknown)."""


def prefect_resume(flow_run_id: str, run_input: dict[str, Any]) -> None:
    """Resume a paused flow run with ``run_input`` through the Prefect API."""
    from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
    from prefect.flow_runs import resume_flow_run

    try:
        resume_flow_run(uuid.UUID(flow_run_id), run_input=run_input)
    except NotPausedError as exc:
        raise NotWaiting(
            "the flow run is no longer waiting for approval (already answered or finished)"
        ) from exc
    except FlowPauseTimeout as exc:
        raise NotWaiting("the approval timed out: the flow run can no longer be resumed") from exc
    except ObjectNotFound as exc:
        raise NotWaiting(f"no flow run {flow_run_id} on this Prefect server") from exc
    except ValueError as exc:
        raise NotWaiting(f"{flow_run_id!r} is not a flow run id") from exc
    except RuntimeError as exc:  # Prefect refused the input: the run waits for another form
        raise NotWaiting(
            f"the flow run is not waiting for an approval (Prefect refused the answer: {exc})"
        ) from exc


@dataclass(frozen=True)
class ClickResult:
    """What the endpoint answered, and why. A genuine request is answered 200 even when the
    click is refused (Slack shows an error for anything else; the thread says why); only a
    bad signature or a malformed request gets 401 or 400."""

    status: int
    allowed: bool
    reason: str
    resumed: bool = False

    def body(self) -> bytes:
        return json.dumps(
            {"ok": self.allowed, "resumed": self.resumed, "reason": self.reason}
        ).encode()


class Interactions:
    """Judges and applies button clicks. HTTP-free, so that it is tested directly too."""

    def __init__(
        self,
        outbox: Outbox,
        signing_secret: str,
        ledger: Ledger,
        *,
        resume: Resume = prefect_resume,
        now: Callable[[], float] = time.time,
        runbook_override: Path | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        if not signing_secret:
            raise DrpError("no signing secret: set DRP_SLACK_SIGNING_SECRET (Basic Information)")
        self.outbox = outbox
        self._secret = signing_secret
        self.ledger = ledger
        self._resume = resume
        self._now = now
        self._runbook_override = runbook_override
        self._wake = wake
        self._lock = threading.Lock()  # one click at a time: two approvers cannot race

    def handle(self, headers: Mapping[str, str], body: bytes) -> ClickResult:
        lower = {k.lower(): v for k, v in headers.items()}
        check = verify_signature(
            self._secret,
            lower.get("x-slack-request-timestamp"),
            lower.get("x-slack-signature"),
            body,
            self._now(),
        )
        if not check.allowed:
            self.ledger.append("chatops.request.refused", {"reason": check.reason})
            return ClickResult(401, False, check.reason)
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True)
            click = parse_click(json.loads(form["payload"][0]))
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            reason = f"not an approval click: {exc}"
            self.ledger.append("chatops.request.refused", {"reason": reason})
            return ClickResult(400, False, reason)
        with self._lock:
            return self._apply(click)

    def _apply(self, click: Click) -> ClickResult:
        incident = self.outbox.incident(click.incident_id)
        if incident is None:
            result = ClickResult(200, False, f"unknown incident {click.incident_id}")
            self._record(click, None, None, result)
            return result
        runbook = self._runbook(incident.runbook)
        decision = judge_click(
            click,
            runbook.roster if runbook else None,
            declared_by=incident.declared_by,
            mode=Mode(incident.mode),
            two_person_rule=runbook.approval.two_person_rule if runbook else True,
        )
        person = decision.person
        who = f"{person.name} ({person.role})" if person else f"<@{click.slack_user_id}>"
        if not decision.allowed or decision.run_input is None:
            result = ClickResult(200, False, decision.reason)
            self._record(click, person, incident.channel, result)
            self._tell(click, incident.channel, f"⛔ {who}: refused — {decision.reason}")
            return result
        try:
            self._resume(click.flow_run_id, self._with_proof(click, person, decision.run_input))
        except (NotWaiting, DrpError) as exc:
            result = ClickResult(200, False, str(exc))
            self._record(click, person, incident.channel, result)
            self._tell(click, incident.channel, f"ℹ️ {who}: {exc}")
            return result
        verb = "approved" if click.action == APPROVE else "rejected"
        result = ClickResult(200, True, f"{verb} by {who}: {decision.reason}", resumed=True)
        self._record(click, person, incident.channel, result)
        self._tell(
            click,
            incident.channel,
            f"{'✅' if verb == 'approved' else '🛑'} {verb} in "
            f"Slack by {who}; the flow run resumes ({decision.reason})",
        )
        return result

    def _with_proof(self, click: Click, person: Any, run_input: dict[str, Any]) -> dict[str, Any]:
        """The form's input plus this endpoint's proof (``code``): a token MAC'd with a key
        derived from the signing secret, bound to the run, the person and the decision, fresh
        and single-use. The flow accepts a Slack answer only with it, so that the form's own
        users cannot pass for Slack (there is no channel field to type)."""
        proof = SlackProof(
            flow_run_id=click.flow_run_id,
            person=person.name,
            slack_user_id=click.slack_user_id,
            decision=run_input["decision"],
            issued_at=int(self._now()),
            nonce=uuid.uuid4().hex,
        )
        return {**run_input, "code": make_slack_proof(slack_proof_key(self._secret), proof)}

    def _runbook(self, path: str) -> Any:
        from drp.runbooks import load_runbook

        target = self._runbook_override or (Path(path) if path else None)
        if target is None:
            return None
        try:
            return load_runbook(target)
        except DrpError as exc:
            log.warning("cannot read the runbook %s: %s", target, exc)
            return None

    def _record(self, click: Click, person: Any, channel: str | None, result: ClickResult) -> None:
        data = {
            "incident_id": click.incident_id,
            "flow_run_id": click.flow_run_id,
            "slack_user_id": click.slack_user_id,
            "person": person.name if person else None,
            "role": person.role if person else None,
            "action": click.action,
            "allowed": result.allowed,
            "resumed": result.resumed,
            "reason": result.reason,
        }
        self.ledger.append("chatops.click", data)
        try:
            self.outbox.record_click(
                incident_id=click.incident_id,
                flow_run_id=click.flow_run_id,
                slack_user_id=click.slack_user_id,
                person=data["person"],
                role=data["role"],
                action=click.action,
                allowed=result.allowed,
                reason=result.reason,
            )
        except DrpError as exc:
            self.ledger.append("chatops.click.unrecorded", {"error": str(exc)})

    def _tell(self, click: Click, channel: str | None, text: str) -> None:
        """Say it in the incident's thread (through the outbox, like every message)."""
        if not channel:
            return
        message = OutgoingMessage(
            key=f"{click.incident_id}:click:{uuid.uuid4().hex[:12]}",
            kind="reply",
            channel=channel,
            thread_key=f"{click.incident_id}@{channel}",
            text=text,
            event="approval.click",
        )
        try:
            self.outbox.enqueue([message], incident_id=click.incident_id)
        except DrpError as exc:
            self.ledger.append("chatops.reply.unqueued", {"error": str(exc)})
        if self._wake:
            self._wake()


def make_server(interactions: Interactions, host: str, port: int) -> ThreadingHTTPServer:
    """The HTTP endpoint: ``POST /slack/interactivity`` and ``GET /healthz``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "drp-chatops"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("%s " + fmt, self.address_string(), *args)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, b'{"ok": true}')
            else:
                self._send(404, b'{"ok": false}')

        def do_POST(self) -> None:
            if self.path != PATH:
                self._send(404, b'{"ok": false, "reason": "POST to /slack/interactivity"}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, b'{"ok": false, "reason": "request too large"}')
                return
            body = self.rfile.read(length)
            try:
                result = interactions.handle(dict(self.headers.items()), body)
            except DrpError as exc:
                result = ClickResult(503, False, str(exc))
            self._send(result.status, result.body())

        def _send(self, status: int, raw: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
