"""Who answered a human gate, and whether the answer proves it — pure.

A gate (the approval before a failover or failback, the confirmation that an unreachable DC is
down or isolated) is answered through one of four **channels**, which drp determines from how
the answer arrived, never from what the person typed:

- ``prefect-ui``: the pause form in Prefect's UI (or Prefect's API, which is the same door).
  Proof: a one-time code (TOTP, RFC 6238) of the roster person chosen in the form;
- ``slack``: the ChatOps endpoint verified Slack's request signature, mapped the Slack member
  to a roster person and resumed the form with a **Slack proof**: a token MAC'd with a key
  derived from the Slack signing secret, bound to the flow run, the person and the decision,
  fresh and used once (see :func:`make_slack_proof`);
- ``cli``: ``--approved-by`` on the command line (the flow called directly);
- ``deployment-parameter``: ``approved_by`` given when a deployment run was created.

What each channel must prove (:func:`proof_required`): the form and Slack always; the command
line and deployment parameters in real mode, and in drills whose runbook asks for two people —
a drill that the runbook lets one person approve may be answered up front without a code, and
the record then says ``identity: "none (drill, command line)"``.

The functions here take what the adapters observed (is the person enrolled, which time step the
code matched, the last step already used, whether a Slack proof's MAC holds) and return a
verdict with the sentence the ledger records. The code itself and every secret stay out of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from drp.domain.chatops import Person, Roster
from drp.domain.classification import DisasterCategory
from drp.domain.failover import Mode, check_approval

Channel = Literal["prefect-ui", "slack", "cli", "deployment-parameter"]
UPFRONT_CHANNELS: tuple[Channel, ...] = ("cli", "deployment-parameter")
"""Answers given when the run starts: nobody can be asked again, so a refusal stops the run."""

TOTP = "totp"
SLACK_SIGNATURE = "slack-signature"
UNPROVEN: dict[Channel, str] = {
    "cli": "none (drill, command line)",
    "deployment-parameter": "none (drill, deployment parameter)",
}
"""The ``identity`` recorded for an up-front drill approval given without a code."""

CODE_DIGITS = 6
CLOCK_SKEW_STEPS = 1
"""A code is accepted for the current 30-second step and one step either side (RFC 6238 §5.2
recommends at most one step of network delay); an authenticator a minute off is refused."""

MAX_ANSWERS = 3
"""How many answers one gate reads before it stops: a typo costs a second try, a guesser gets
three codes per run (one in ~110 000 odds), each recorded as ``approval.refused``."""

SLACK_PROOF_PREFIX = "slack-proof-v1."
SLACK_PROOF_MAX_AGE_S = 300
"""A Slack proof older than five minutes is refused (the same window as Slack's own signature)."""

ISOLATION_ROLES = ("direktur", "kepala_kantor", "pejabat_ditunjuk", "operator")
"""Who may confirm that the DC is down or isolated: anyone in the roster but an observer (the
on-call operator at the site is often the one who can check)."""

Decision = Literal["approve", "reject"]
DcState = Literal["down", "isolated", "not confirmed"]


@dataclass(frozen=True)
class Verdict:
    """A judgement with the sentence that explains it."""

    ok: bool
    reason: str


# --------------------------------------------------------------------------------------------
# Standing: is this a roster person whose role may answer this gate?


@dataclass(frozen=True)
class Standing:
    ok: bool
    reason: str
    person: Person | None = None


def judge_standing(name: str, roster: Roster | None, roles: Sequence[str], gate: str) -> Standing:
    """The person named must be in the runbook's roster, with a role that may answer ``gate``."""
    if not name.strip():
        return Standing(False, f"no one named: the {gate} must say who answers")
    if roster is None or not roster.people:
        return Standing(
            False,
            "the runbook has no roster: nobody can prove who answers (add people under "
            "roster.people and enrol them with `drp roster enroll NAME`)",
        )
    person = roster.by_name(name)
    if person is None:
        return Standing(
            False,
            f"{name!r} is not in the runbook's roster: refused (only roster.people can answer)",
        )
    if person.role not in roles:
        return Standing(
            False,
            f"{person.name} ({person.role}) may not answer the {gate}: the roster lets only "
            f"{', '.join(roles)} answer it",
            person,
        )
    return Standing(True, f"{person.name} ({person.role}) may answer the {gate}", person)


def who_may_answer(roster: Roster | None, roles: Sequence[str]) -> tuple[str, ...]:
    """The names offered as choices in the form: roster people whose role may answer."""
    if roster is None:
        return ()
    return tuple(p.name for p in roster.people if p.role in roles)


# --------------------------------------------------------------------------------------------
# Proof


@dataclass(frozen=True)
class Proof:
    """Whether an answer proves who gave it. ``step`` (a TOTP time step) or ``nonce`` (of a
    Slack proof) is what must be marked as used once the proof has been seen."""

    ok: bool
    identity: str
    reason: str
    step: int | None = None
    nonce: str | None = None
    slack_user_id: str | None = None


def proof_required(channel: Channel, mode: Mode, two_person_rule: bool) -> bool:
    """The form and Slack always prove; an up-front answer must prove in real mode, and in a
    drill whose runbook asks for two people (there is then a second person to prove)."""
    if channel in ("prefect-ui", "slack"):
        return True
    return mode is Mode.REAL or two_person_rule


def well_formed_code(code: str) -> bool:
    return len(code) == CODE_DIGITS and code.isascii() and code.isdigit()


def code_hint(channel: Channel) -> str:
    """Where the code goes, per channel (for refusal messages)."""
    if channel == "cli":
        return "give --approval-code with the code your authenticator shows"
    if channel == "deployment-parameter":
        return "also pass approval_code, or leave approved_by out and approve in the Prefect UI"
    return "type the 6-digit code your authenticator app shows for drp now"


def judge_code(
    code: str,
    *,
    person: str,
    channel: Channel,
    enrolled: bool,
    matched_step: int | None,
    last_used_step: int | None,
) -> Proof:
    """A one-time code: given, six digits, the person enrolled, valid now (±1 step), and newer
    than any code this person already used (RFC 6238 §5.2: a verifier must not accept a second
    use — and a code older than one already used is a replay too)."""
    code = code.strip()
    hint = code_hint(channel)
    if not code:
        return Proof(False, TOTP, f"no one-time code given for {person} ({hint})")
    if not well_formed_code(code):
        return Proof(False, TOTP, f"the one-time code is not {CODE_DIGITS} digits ({hint})")
    if not enrolled:
        return Proof(
            False,
            TOTP,
            f"{person} is not enrolled for one-time codes: refused (enrol them with "
            f"`drp roster enroll {person}`)",
        )
    if matched_step is None:
        return Proof(
            False,
            TOTP,
            f"wrong one-time code for {person}: not valid now (±{30 * CLOCK_SKEW_STEPS} s); "
            "check the authenticator's clock",
        )
    if last_used_step is not None and matched_step <= last_used_step:
        return Proof(
            False,
            TOTP,
            f"replayed one-time code: {person}'s code of this time step (or a later one) was "
            "already used; wait for the next code",
            matched_step,
        )
    return Proof(True, TOTP, f"one-time code of {person} verified", matched_step)


@dataclass(frozen=True)
class SlackProof:
    """What the ChatOps endpoint vouches for, once it verified Slack's signature."""

    flow_run_id: str
    person: str
    slack_user_id: str
    decision: Decision
    issued_at: int
    nonce: str


def slack_proof_key(signing_secret: str) -> bytes:
    """The MAC key of Slack proofs, derived from the Slack signing secret: whoever holds that
    secret can already forge a Slack click, so this adds no new secret to keep — and the
    derivation keeps the two uses apart (a proof is never a valid Slack signature)."""
    return hmac.new(signing_secret.encode(), b"drp approval proof v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def make_slack_proof(key: bytes, proof: SlackProof) -> str:
    """``slack-proof-v1.<payload>.<mac>``: the ChatOps endpoint's word, which the gate checks."""
    payload = _b64(json.dumps(proof.__dict__, sort_keys=True, separators=(",", ":")).encode())
    mac = hmac.new(key, (SLACK_PROOF_PREFIX + payload).encode(), hashlib.sha256).hexdigest()
    return f"{SLACK_PROOF_PREFIX}{payload}.{mac}"


def is_slack_proof(code: str) -> bool:
    return code.strip().startswith(SLACK_PROOF_PREFIX)


def read_slack_proof(key: bytes | None, token: str) -> SlackProof | str:
    """The proof in ``token`` if its MAC holds, else the reason it does not."""
    if key is None:
        return (
            "a Slack proof cannot be checked here: DRP_SLACK_SIGNING_SECRET is not set for this "
            "worker (the gate derives the proof key from it)"
        )
    body, _, mac = token.strip().rpartition(".")
    if not body.startswith(SLACK_PROOF_PREFIX) or not mac:
        return "malformed Slack proof"
    expected = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        return "forged Slack proof: its MAC does not match (not from our ChatOps endpoint)"
    payload = body[len(SLACK_PROOF_PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return SlackProof(
            flow_run_id=str(data["flow_run_id"]),
            person=str(data["person"]),
            slack_user_id=str(data["slack_user_id"]),
            decision="approve" if data["decision"] == "approve" else "reject",
            issued_at=int(data["issued_at"]),
            nonce=str(data["nonce"]),
        )
    except (ValueError, KeyError, TypeError):
        return "malformed Slack proof"


def judge_slack_proof(
    proof: SlackProof | str,
    *,
    flow_run_id: str,
    person: str,
    decision: Decision,
    now: float,
    nonce_used: bool,
) -> Proof:
    """A Slack proof counts for this run, this person and this decision, once, within five
    minutes of the click."""
    if isinstance(proof, str):
        return Proof(False, SLACK_SIGNATURE, proof)
    if proof.flow_run_id != flow_run_id:
        return Proof(False, SLACK_SIGNATURE, "the Slack proof was issued for another flow run")
    if proof.person != person:
        return Proof(
            False,
            SLACK_SIGNATURE,
            f"the Slack proof names {proof.person}, not {person}: the answer was altered",
        )
    if proof.decision != decision:
        return Proof(
            False, SLACK_SIGNATURE, "the Slack proof is for the other decision: answer altered"
        )
    age = now - proof.issued_at
    if abs(age) > SLACK_PROOF_MAX_AGE_S:
        return Proof(
            False,
            SLACK_SIGNATURE,
            f"the Slack proof is {int(abs(age))} s {'old' if age > 0 else 'in the future'} "
            f"(more than {SLACK_PROOF_MAX_AGE_S} s): refused as a possible replay",
        )
    if nonce_used:
        return Proof(
            False, SLACK_SIGNATURE, "replayed Slack proof: this click was already used once"
        )
    return Proof(
        True,
        SLACK_SIGNATURE,
        f"Slack click by {proof.slack_user_id} verified by the ChatOps endpoint",
        nonce=proof.nonce,
        slack_user_id=proof.slack_user_id,
    )


# --------------------------------------------------------------------------------------------
# The approval verdict


@dataclass(frozen=True)
class ApprovalVerdict:
    """``allowed``: the gate opens. ``final``: the gate stops asking (granted; a proven
    rejection; an up-front answer, which cannot be asked again). Otherwise the form is shown
    again, so that the right person can still answer."""

    allowed: bool
    final: bool
    reason: str
    identity: str
    role: str | None


def judge_approval(
    *,
    approver: str,
    decision: Decision,
    channel: Channel,
    mode: Mode,
    declared_by: str,
    two_person_rule: bool,
    standing: Standing,
    proof: Proof | None,
) -> ApprovalVerdict:
    """Standing, then proof, then the decision, then the two-person rule
    (:func:`drp.domain.failover.check_approval`).

    ``proof`` is None when none was given and none is required (an up-front drill approval the
    runbook lets one person give): the name is then an unproven claim, accepted only as such —
    if it is a roster person, their role must still allow approving.
    """
    upfront = channel in UPFRONT_CHANNELS
    role = standing.person.role if standing.person else None
    if proof is None:
        if proof_required(channel, mode, two_person_rule):
            raise ValueError("a proof is required on this channel: judge it first")
        identity = UNPROVEN[channel]
        if standing.person is not None and not standing.ok:
            return ApprovalVerdict(False, True, standing.reason, identity, role)
        if not approver.strip():
            return ApprovalVerdict(False, True, standing.reason, identity, role)
    else:
        identity = proof.identity
        if not standing.ok:
            return ApprovalVerdict(False, upfront, standing.reason, identity, role)
        if not proof.ok:
            return ApprovalVerdict(False, upfront, proof.reason, identity, role)
    who = f"{approver} ({role})" if role else approver
    if decision != "approve":
        return ApprovalVerdict(False, True, f"rejected by {who}", identity, role)
    rule = check_approval(
        mode=mode,
        declared_by=declared_by,
        approver=approver,
        confirmed=True,
        two_person_rule=two_person_rule,
    )
    if not rule.allowed:
        return ApprovalVerdict(False, upfront, rule.reason, identity, role)
    how = (
        "unproven: no code, which the runbook allows for a drill approved up front"
        if proof is None
        else proof.reason
    )
    return ApprovalVerdict(True, True, f"{rule.reason}; {how}", identity, role)


@dataclass(frozen=True)
class IsolationVerdict:
    allowed: bool
    final: bool
    reason: str


def judge_isolation(
    *, standing: Standing, proof: Proof, dc_is: str, how_checked: str
) -> IsolationVerdict:
    """Someone from the roster, proven, says the DC is down or isolated and how they know."""
    if not standing.ok:
        return IsolationVerdict(False, False, standing.reason)
    if not proof.ok:
        return IsolationVerdict(False, False, proof.reason)
    name = standing.person.name if standing.person else "?"
    if dc_is not in ("down", "isolated"):
        return IsolationVerdict(
            False, True, f"{name} did not confirm that the DC is down or isolated: nothing promoted"
        )
    if len(how_checked.strip()) < 3:
        return IsolationVerdict(
            False,
            False,
            f"{name} did not say how the DC was checked (the confirmation must say how: "
            "phone call to the site, power panel, network team, ...)",
        )
    return IsolationVerdict(
        True, True, f"{name} confirmed the DC is {dc_is}: {how_checked.strip()}"
    )


# --------------------------------------------------------------------------------------------
# What the form says


WIB = timezone(timedelta(hours=7), "WIB")


@dataclass(frozen=True)
class GateFacts:
    """What is being approved, for the form's description (and the ``approval.requested``
    record): plain values from the declaration and the RTO clock."""

    incident_id: str
    what: str  # failover | failback
    mode: Mode
    declared_by: str
    declarer_role: str | None = None
    category: str | None = None
    triggers: tuple[tuple[str, str], ...] = ()  # (article, reason)
    basis: str | None = None
    clock_started_at: datetime | None = None  # the RTO clock's start (declaration)
    rto_budget_s: float | None = None
    clock_starts_on_approval: bool = False  # failback: its clock starts when approved


def _clock(at: datetime) -> str:
    return f"{at:%H:%M:%S} UTC ({at.astimezone(WIB):%H:%M} WIB)"


def _minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s"


def category_line(category: str | None) -> str:
    if not category:
        return "not declared"
    try:
        cat = DisasterCategory(category)
    except ValueError:
        return category
    return f"{cat.value} — {cat.label_id} ({cat.label_en}), {cat.article}"


def describe_gate(
    facts: GateFacts,
    *,
    asked_at: datetime,
    timeout_s: int,
    approvers: Iterable[str],
    answers_left: int,
    last_refusal: str | None = None,
) -> str:
    """The Markdown shown above the form: what is approved, on what basis, the clock."""
    mode = "**REAL** — this changes production" if facts.mode is Mode.REAL else "drill"
    declarer = facts.declared_by + (f" ({facts.declarer_role})" if facts.declarer_role else "")
    direction = "DC → DRC" if facts.what == "failover" else "DRC → DC"
    lines = [
        f"### {facts.what.capitalize()} of `{facts.incident_id}`: approve?",
        "",
        f"- **What**: {facts.what} {direction}; **mode**: {mode}",
        f"- **Category**: {category_line(facts.category)}",
        f"- **{'Declared' if facts.what == 'failover' else 'Asked for'} by**: {declarer}",
    ]
    if len(facts.triggers) == 1:
        lines.append(f"- **Basis**: {facts.triggers[0][0]}: {facts.triggers[0][1]}")
    elif facts.triggers:
        lines.append("- **Basis** (triggers):")
        lines += [f"  - {article}: {reason}" for article, reason in facts.triggers]
    if facts.basis:
        lines.append(f"- **Basis** (as declared): {facts.basis}")
    if facts.category and not facts.triggers and not facts.basis:
        lines.append("- **Basis**: the declared category; the signals showed no trigger")
    if facts.clock_starts_on_approval:
        budget = f" (budget {_minutes(facts.rto_budget_s or 0)})" if facts.rto_budget_s else ""
        lines.append(f"- **RTO clock**: the {facts.what}'s clock starts when you approve{budget}")
    elif facts.clock_started_at is not None and facts.rto_budget_s:
        used = (asked_at - facts.clock_started_at).total_seconds()
        deadline = facts.clock_started_at + timedelta(seconds=facts.rto_budget_s)
        lines.append(
            f"- **RTO clock**: {_minutes(used)} of {_minutes(facts.rto_budget_s)} used when "
            f"asked (declared {_clock(facts.clock_started_at)}; the budget ends "
            f"{_clock(deadline)})"
        )
    until = asked_at + timedelta(seconds=timeout_s)
    lines += [
        f"- **Answer by**: {_clock(until)} (then the {facts.what} stops)",
        "",
        f"Choose yourself among the roster's approvers ({', '.join(approvers) or 'none'}), "
        "type the one-time code your authenticator app shows for drp now, and choose approve "
        "or reject. drp records your name and role from the roster, the channel (this form: "
        "prefect-ui) and whether the code was valid — never the code.",
    ]
    if facts.mode is Mode.REAL:
        lines.append(
            f"A real {facts.what} needs a second person: {facts.declared_by} cannot approve it."
        )
    if last_refusal:
        lines += [
            "",
            f"**The previous answer was refused**: {last_refusal}. "
            f"{answers_left} answer(s) left before the {facts.what} stops.",
        ]
    return "\n".join(lines)


def describe_isolation(
    incident_id: str,
    *,
    asked_at: datetime,
    timeout_s: int,
    people: Iterable[str],
    answers_left: int,
    last_refusal: str | None = None,
) -> str:
    """The Markdown above the isolation form."""
    until = asked_at + timedelta(seconds=timeout_s)
    lines = [
        f"### `{incident_id}`: is the DC down or isolated?",
        "",
        "The DC cannot be reached, so drp cannot prove it is fenced. Promoting the DRC while the "
        "DC still accepts writes would make two writable primaries. Check the DC **by other "
        "means** (a call to the site, the power panel, the network team) before you confirm.",
        "",
        f"- **Who may confirm**: {', '.join(people) or 'nobody in the roster'}",
        f"- **Answer by**: {_clock(until)}",
        "",
        "Choose yourself, type your one-time code, say what the DC is and how you checked.",
    ]
    if last_refusal:
        lines += [
            "",
            f"**The previous answer was refused**: {last_refusal}. {answers_left} answer(s) left.",
        ]
    return "\n".join(lines)
