"""ChatOps, pure: the roster, the messages an incident thread is made of, Slack's request
signature, and who may answer an approval from a button.

Nothing here talks to Slack or to a database: :func:`plan_messages` turns one platform event
into the messages to queue (a thread root, a reply, an in-place status update, a notice in
another channel), each with the idempotency key that makes sending it twice impossible;
:func:`verify_signature` and :func:`judge_click` decide whether a button click is genuine and
allowed, each with a sentence that says why. The adapters (``drp.adapters.chatops``,
``drp.adapters.outbox``) and the sender (``drp.chatops``) carry those decisions out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from drp.domain.failover import Decision, Mode, check_approval

MAX_REQUEST_AGE_S = 300
"""Slack's advice: refuse a signed request older than five minutes (a replay)."""

APPROVE = "drp_approve"
REJECT = "drp_reject"
"""The ``action_id`` of the two approval buttons."""

RosterRole = Literal["direktur", "kepala_kantor", "pejabat_ditunjuk", "operator", "observer"]
"""The regulation's roles (``drp.domain.classification.Role``) plus the on-call operators who
run the steps and the observers who only follow; only ``approver_roles`` may answer a gate."""

SLACK_USER_ID = r"^[UW][A-Z0-9]{2,}$"


# --------------------------------------------------------------------------------------------
# The roster and the chat channels (fields of the runbook, see drp.domain.runbook)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Person(_Model):
    """Someone who may act on an incident: answer a gate in the Prefect UI (with a one-time
    code, see ``drp.domain.approval``) or from Slack (by their member id)."""

    name: StrictStr = Field(
        min_length=1, description="the name the ledger records (as in --declared-by)"
    )
    role: RosterRole = Field(
        description="direktur, kepala_kantor, pejabat_ditunjuk, operator or observer"
    )
    slack_user_id: StrictStr | None = Field(
        default=None,
        pattern=SLACK_USER_ID,
        description="the Slack member id, e.g. U024BE7LH (profile → ⋮); none: not in Slack",
    )


class Roster(_Model):
    """Who is who in chat: a click is trusted only through this list, never by display name."""

    people: tuple[Person, ...] = Field(default=(), description="name, role, slack_user_id")
    approver_roles: tuple[RosterRole, ...] = Field(
        default=("direktur", "pejabat_ditunjuk"),
        description="the roles that may approve or reject a failover from chat",
    )

    @field_validator("people")
    @classmethod
    def _one_entry_each(cls, people: tuple[Person, ...]) -> tuple[Person, ...]:
        seen: dict[str, int] = {}
        names: dict[str, int] = {}
        for index, person in enumerate(people):
            first_name = names.setdefault(person.name.strip().casefold(), index)
            if first_name != index:
                raise PydanticCustomError(
                    "roster_duplicate",
                    "{name} is listed twice (people[{a}] and people[{b}]): a name must map to "
                    "exactly one person and one authenticator — keep one entry",
                    {"name": person.name, "a": first_name, "b": index},
                )
            if person.slack_user_id is None:
                continue
            first = seen.setdefault(person.slack_user_id, index)
            if first != index:
                raise PydanticCustomError(
                    "roster_duplicate",
                    "Slack user {user} is listed twice (people[{a}] and people[{b}]): a click "
                    "must map to exactly one person — keep one entry",
                    {"user": person.slack_user_id, "a": first, "b": index},
                )
        return people

    def by_slack_id(self, slack_user_id: str) -> Person | None:
        if not slack_user_id:
            return None
        return next((p for p in self.people if p.slack_user_id == slack_user_id), None)

    def by_name(self, name: str) -> Person | None:
        """The person whose name this is (case and surrounding spaces aside)."""
        key = name.strip().casefold()
        return next((p for p in self.people if p.name.strip().casefold() == key), None)


class ChatChannels(_Model):
    """Where the platform talks (the Pasal 13 parties' channels are under ``coordination``)."""

    incident: StrictStr = Field(
        default="", description="the incident threads (default: coordination.incident_channel)"
    )
    user_notices: StrictStr = Field(
        default="", description="notices to service users (Pasal 5(9), 6(7), 7(7), 9)"
    )


# --------------------------------------------------------------------------------------------
# Request signatures (https://api.slack.com/authentication/verifying-requests-from-slack)


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``X-Slack-Signature`` for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify_signature(
    signing_secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    max_age_s: int = MAX_REQUEST_AGE_S,
) -> Decision:
    """Is this request from Slack, and fresh? Replays older than ``max_age_s`` are refused."""
    if not timestamp or not signature:
        return Decision(False, "missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    try:
        sent = int(timestamp)
    except ValueError:
        return Decision(False, f"X-Slack-Request-Timestamp {timestamp[:20]!r} is not a number")
    age = now - sent
    if abs(age) > max_age_s:
        return Decision(
            False,
            f"request timestamp is {int(abs(age))} s {'old' if age > 0 else 'in the future'} "
            f"(more than {max_age_s} s): refused as a possible replay",
        )
    if not hmac.compare_digest(sign(signing_secret, timestamp, body), signature):
        return Decision(False, "bad signature: the request was not signed with our signing secret")
    return Decision(True, "signature and timestamp verified")


# --------------------------------------------------------------------------------------------
# Button clicks


@dataclass(frozen=True)
class Click:
    """One press of an approval button, as Slack's interaction payload says it."""

    slack_user_id: str
    action: str  # APPROVE or REJECT
    incident_id: str
    flow_run_id: str
    channel: str = ""
    message_ts: str = ""
    thread_ts: str = ""
    response_url: str = ""


def parse_click(payload: Mapping[str, Any]) -> Click:
    """The click in a ``block_actions`` payload; ValueError says what is missing."""
    if payload.get("type") != "block_actions":
        raise ValueError(f"payload type {payload.get('type')!r} is not block_actions")
    actions = payload.get("actions") or []
    ours = [a for a in actions if a.get("action_id") in (APPROVE, REJECT)]
    if not ours:
        raise ValueError("no drp_approve or drp_reject action in the payload")
    action = ours[0]
    try:
        value = json.loads(action.get("value") or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the button's value is not JSON: {exc}") from exc
    user = (payload.get("user") or {}).get("id") or ""
    if not user:
        raise ValueError("the payload names no user (user.id)")
    if not value.get("incident_id") or not value.get("flow_run_id"):
        raise ValueError("the button's value lacks incident_id or flow_run_id")
    message = payload.get("message") or {}
    return Click(
        slack_user_id=user,
        action=action["action_id"],
        incident_id=str(value["incident_id"]),
        flow_run_id=str(value["flow_run_id"]),
        channel=str((payload.get("channel") or {}).get("id") or ""),
        message_ts=str(message.get("ts") or ""),
        thread_ts=str(message.get("thread_ts") or message.get("ts") or ""),
        response_url=str(payload.get("response_url") or ""),
    )


@dataclass(frozen=True)
class ClickDecision:
    """Whether a click may resume the flow run, why, and the form input it stands for."""

    allowed: bool
    reason: str
    person: Person | None = None
    run_input: dict[str, Any] | None = None


def judge_click(
    click: Click,
    roster: Roster | None,
    *,
    declared_by: str,
    mode: Mode,
    two_person_rule: bool,
) -> ClickDecision:
    """The Prefect form's rules, applied to a Slack user: known person, approver role, and
    :func:`drp.domain.failover.check_approval` (two-person rule for real failovers).

    A rejection needs the same standing as an approval: a stranger must not stop a failover.
    """
    if roster is None or not roster.people:
        return ClickDecision(
            False, "the runbook has no roster: nobody can answer from Slack (use the Prefect UI)"
        )
    person = roster.by_slack_id(click.slack_user_id)
    if person is None:
        return ClickDecision(
            False,
            f"Slack user {click.slack_user_id} is not in the runbook's roster: refused "
            "(add them under roster.people to let them answer)",
        )
    if person.role not in roster.approver_roles:
        allowed = ", ".join(roster.approver_roles)
        return ClickDecision(
            False,
            f"{person.name} ({person.role}) may not answer an approval: the roster lets only "
            f"{allowed} approve or reject",
            person,
        )
    approve = click.action == APPROVE
    if approve and not declared_by.strip() and (mode is Mode.REAL or two_person_rule):
        return ClickDecision(
            False,
            "who declared this gate is not known to ChatOps, so the two-person rule cannot be "
            "checked here: answer in the Prefect UI",
            person,
        )
    comment = f"{'approved' if approve else 'rejected'} in Slack by {click.slack_user_id}"
    # The form's fields; the endpoint adds ``code``: its Slack proof (drp.domain.approval),
    # without which the flow treats the answer as an unproven one and refuses it.
    run_input = {
        "approver": person.name,
        "decision": "approve" if approve else "reject",
        "comment": comment,
    }
    if not approve:
        return ClickDecision(True, f"rejected by {person.name} ({person.role})", person, run_input)
    decision = check_approval(
        mode=mode,
        declared_by=declared_by,
        approver=person.name,
        confirmed=True,
        two_person_rule=two_person_rule,
    )
    return ClickDecision(decision.allowed, decision.reason, person, run_input)


# --------------------------------------------------------------------------------------------
# Messages

MessageKind = Literal["root", "reply", "update", "post"]


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to queue. ``root`` opens the thread ``thread_key`` (its Slack ts is kept),
    ``reply`` goes into that thread, ``update`` rewrites the root in place, ``post`` stands
    alone in another channel. ``key`` is the idempotency key (unique in the outbox)."""

    key: str
    kind: MessageKind
    channel: str
    thread_key: str
    text: str
    blocks: tuple[dict[str, Any], ...] = ()
    event: str = ""


@dataclass(frozen=True)
class IncidentFacts:
    """What the thread says about the incident; gathered once when it is declared."""

    incident_id: str
    flow: str
    mode: str
    incident_channel: str
    category: str = ""
    declared_by: str = ""
    declarer_role: str = ""
    basis: str = ""
    declared_at: datetime | None = None
    rto_budget_s: float | None = None
    steps_total: int | None = None
    flow_run_id: str = ""
    run_url: str = ""
    user_channel: str = ""
    coordination: tuple[tuple[str, str], ...] = ()  # (party, channel)

    @property
    def thread_key(self) -> str:
        return f"{self.incident_id}@{self.incident_channel}"

    @property
    def drill(self) -> bool:
        return self.mode != Mode.REAL.value

    @property
    def nationwide(self) -> bool:
        """National and catastrophic disasters bring in the Pasal 13 parties."""
        return self.category in ("parsial_nasional", "katastropik")


@dataclass
class ThreadProgress:
    """What the status message shows; the notifier keeps one per incident thread."""

    steps_done: int = 0
    last: str = ""
    state: str = "declared"
    warnings: list[str] = field(default_factory=list)
    updates: int = 0


def _clock(facts: IncidentFacts, now: datetime) -> str:
    if facts.declared_at is None:
        return "RTO clock: declaration time unknown"
    elapsed = max(now - facts.declared_at, timedelta(0))
    text = f"RTO clock: {_duration(elapsed.total_seconds())}"
    if facts.rto_budget_s:
        share = 100 * elapsed.total_seconds() / facts.rto_budget_s
        text += f" of {_duration(facts.rto_budget_s)} ({share:.0f}%)"
    return text


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _label(facts: IncidentFacts) -> str:
    return "LATIHAN / DRILL" if facts.drill else "REAL"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:2900]}]}


def status_message(
    facts: IncidentFacts, progress: ThreadProgress, now: datetime
) -> tuple[str, tuple[dict[str, Any], ...]]:
    """The thread's first message: the opening facts and the live status under them.

    Short lines and one fact per line, so that it reads on a phone.
    """
    title = f"{_label(facts)} · {facts.category or 'incident'} · {facts.incident_id}"
    who = facts.declared_by + (f" ({facts.declarer_role})" if facts.declarer_role else "")
    steps = (
        f"{progress.steps_done}/{facts.steps_total}"
        if facts.steps_total
        else str(progress.steps_done)
    )
    lines = [
        f"*Declared by* {who or 'unknown'}",
        f"*Basis* {facts.basis}" if facts.basis else "",
        f"*Status* {progress.state} · steps {steps}",
        f"*{_clock(facts, now)}*",
        f"*Last* {progress.last}" if progress.last else "",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        _section("\n".join(line for line in lines if line)),
    ]
    if progress.warnings:
        blocks.append(_context(" · ".join(f"⚠ {w}" for w in progress.warnings[-2:])))
    if facts.run_url:
        blocks.append(_context(f"<{facts.run_url}|Run in the Prefect UI> · {facts.flow}"))
    fallback = f"{title}: {progress.state}, steps {steps}; {_clock(facts, now)}"
    return fallback, tuple(blocks)


def approval_blocks(facts: IncidentFacts, text: str) -> tuple[dict[str, Any], ...]:
    """The gate, with Approve and Reject buttons; the value says which run to resume."""
    value = json.dumps({"incident_id": facts.incident_id, "flow_run_id": facts.flow_run_id})
    rule = (
        "a second person must approve (two-person rule)"
        if not facts.drill
        else "drill: the runbook says whether the declarer may self-approve"
    )
    return (
        _section(f":raising_hand: *Approval needed*\n{text}\n_{rule}_"),
        {
            "type": "actions",
            "block_id": "drp-approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Approve the failover?"},
                        "text": {"type": "plain_text", "text": "The DC will be fenced."},
                        "confirm": {"type": "plain_text", "text": "Approve"},
                        "deny": {"type": "plain_text", "text": "Cancel"},
                    },
                },
                {
                    "type": "button",
                    "action_id": REJECT,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject"},
                    "value": value,
                },
            ],
        },
    )


STEP_SYMBOLS = {
    "step.started": "▶",
    "step.done": "✅",
    "step.already_done": "☑️",
    "step.failed": "❌",
    "step.skipped": "⏭",
}

_STATES = {
    "approval.requested": "waiting for approval",
    "approval.granted": "approved, running",
    "confirmation.requested": "waiting for confirmation that the DC is isolated",
    "failover.completed": "service verified at the DRC",
    "failover.stopped": "stopped",
}


def plan_messages(
    event: str,
    text: str,
    data: Mapping[str, Any],
    facts: IncidentFacts,
    progress: ThreadProgress,
    now: datetime,
    *,
    new_key: Any = None,
) -> tuple[OutgoingMessage, ...]:
    """The messages one event becomes, in the order they must be sent.

    ``progress`` is advanced here (the caller keeps it per thread). Keys: the thread root's key
    is fixed per incident and channel, so a re-run of the incident reuses its thread; every
    other message gets a fresh key (``new_key``, a function, for tests).
    """
    fresh = new_key or (lambda: uuid.uuid4().hex[:12])
    text = _in_thread(text, facts.incident_id, event in STEP_SYMBOLS)
    thread = facts.thread_key
    chan = facts.incident_channel
    out: list[OutgoingMessage] = []

    def reply(body: str, blocks: Iterable[dict[str, Any]] = ()) -> None:
        key = f"{facts.incident_id}:{event}:{fresh()}"
        out.append(OutgoingMessage(key, "reply", chan, thread, body, tuple(blocks), event))

    def update() -> None:
        progress.updates += 1
        fallback, blocks = status_message(facts, progress, now)
        key = f"{thread}:status:{fresh()}"
        out.append(OutgoingMessage(key, "update", chan, thread, fallback, blocks, event))

    if event == "incident.declared":
        fallback, blocks = status_message(facts, progress, now)
        out.append(OutgoingMessage(f"{thread}:root", "root", chan, thread, fallback, blocks, event))
        out.extend(_coordination(facts, text))
        out.extend(_user_notice(facts, "declared", data, fresh))
        return tuple(out)

    if event in STEP_SYMBOLS:
        if event != "step.started":
            progress.steps_done += 1
        progress.last = text
        progress.state = "running" if event != "step.failed" else "step failed"
        reply(f"{STEP_SYMBOLS[event]} {text}")
        update()
        return tuple(out)

    if event == "rto.warning":
        progress.warnings.append(text)
        reply(f":warning: {text}", (_section(f":warning: *RTO warning*\n{text}"),))
        update()
        return tuple(out)

    if event == "approval.requested" and facts.flow_run_id:
        progress.state = _STATES[event]
        reply(f"Approval needed: {text}", approval_blocks(facts, text))
        update()
        return tuple(out)

    if event in ("failover.completed", "failover.stopped"):
        progress.state = _STATES[event]
        body = _summary(facts, text, data)
        reply(body, (_section(body),))
        update()
        if event == "failover.completed":
            out.extend(_user_notice(facts, "restored", data, fresh))
        return tuple(out)

    if event in _STATES:
        progress.state = _STATES[event]
        reply(text)
        update()
        return tuple(out)

    reply(text)
    return tuple(out)


def _in_thread(text: str, incident_id: str, step: bool) -> str:
    """The flows' texts start with the incident id (and, for steps, a one-character symbol):
    inside the incident's thread both are noise on a phone's narrow screen."""
    text = text.removeprefix(f"{incident_id}: ")
    if step and len(text) > 2 and text[1] == " " and text[0] in "✓=✗-?":
        text = text[2:]
    return text


def _summary(facts: IncidentFacts, text: str, data: Mapping[str, Any]) -> str:
    lines = [f"*{'Selesai' if 'completed' in text or 'verified' in text else 'Summary'}*: {text}"]
    if data.get("achieved_rto_s") is not None:
        budget = f" of {_duration(facts.rto_budget_s)}" if facts.rto_budget_s else ""
        lines.append(f"*Achieved RTO* {_duration(float(data['achieved_rto_s']))}{budget}")
    rpo = data.get("rpo")
    if isinstance(rpo, Mapping) and rpo.get("reason"):
        lines.append(f"*RPO* {rpo['reason']}")
    for label, key in (("Report", "report"), ("Evidence", "ledger")):
        if data.get(key):
            lines.append(f"*{label}* `{data[key]}`")
    if facts.run_url:
        lines.append(f"<{facts.run_url}|Run in the Prefect UI>")
    return "\n".join(lines)


def _coordination(facts: IncidentFacts, text: str) -> list[OutgoingMessage]:
    """Pasal 13: national and catastrophic disasters reach every listed party's channel."""
    if not facts.nationwide:
        return []
    where = f" Koordinasi di {facts.incident_channel}." if facts.incident_channel else ""
    body = (
        f"[{_label(facts)}] Pasal 13 — koordinasi penanganan bencana TIK {facts.category}: "
        f"{text}.{where}"
    )
    return [
        OutgoingMessage(
            f"{facts.incident_id}:coordination:{channel}",
            "post",
            channel,
            f"{facts.incident_id}@{channel}",
            f"{party}: {body}",
            (_section(f"*{party}*\n{body}"),),
            "coordination",
        )
        for party, channel in facts.coordination
        if channel
    ]


def _user_notice(
    facts: IncidentFacts, what: str, data: Mapping[str, Any], fresh: Any
) -> list[OutgoingMessage]:
    """The pemberitahuan (notification to service users) and the end notice.

    A rendered document given in the event (``data['pemberitahuan']``) is posted as it is;
    otherwise a short notice says what the articles require. In a drill nothing reaches
    service users: the notice goes into the incident thread, marked as what would be sent.
    """
    if what == "declared":
        body = data.get("pemberitahuan") or (
            "PEMBERITAHUAN: layanan TIK DJBC sedang dalam kondisi tidak normal "
            f"({facts.category or 'gangguan'}, {facts.incident_id}). Layanan dipulihkan di "
            "DRC; bila perlu, gunakan layanan manual (Pasal 8)."
        )
        key = "pemberitahuan"
    else:
        body = data.get("pemberitahuan_berakhir") or (
            f"PEMBERITAHUAN BERAKHIRNYA KONDISI TIDAK NORMAL: layanan TIK DJBC "
            f"({facts.incident_id}) telah beroperasi kembali."
        )
        key = "pemberitahuan-berakhir"
    if facts.drill or not facts.user_channel:
        why = "drill: not sent to service users" if facts.drill else "no user_notices channel"
        return [
            OutgoingMessage(
                f"{facts.incident_id}:{key}:{fresh()}",
                "reply",
                facts.incident_channel,
                facts.thread_key,
                f"({why}) would post to {facts.user_channel or '—'}: {body}",
                (),
                f"notice.{key}",
            )
        ]
    return [
        OutgoingMessage(
            f"{facts.incident_id}:{key}",
            "post",
            facts.user_channel,
            f"{facts.incident_id}@{facts.user_channel}",
            body,
            (_section(body),),
            f"notice.{key}",
        )
    ]
