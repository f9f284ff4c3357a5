"""The human gates of the incident flows: approval before anything changes, and confirmation
that an unreachable DC is really down or isolated before promotion.

A gate is answered either up front (the CLI's ``--approved-by``, or ``approved_by`` given to a
deployment run) or in the Prefect UI: the flow pauses with a form built for this gate (the
approvers of the runbook's roster as a choice, a one-time code, a required decision; above it,
what is being approved and the RTO clock) until someone answers or the runbook's timeout passes.

Whoever answers must prove who they are (``drp.domain.approval``): a one-time code of the roster
person chosen, checked against their secret (``drp.adapters.approvers``) and against the codes
already used (``drp.adapters.approval_store``, in ops-db); or, from Slack, the ChatOps
endpoint's MAC'd proof. drp records the channel from how the answer came, the role from the
roster, the identity proof, and how long people took (``waited_s``: what a drill measures per
gate, Pasal 15) — never the code. A refused answer is recorded (``approval.refused``, with the
reason) and the form is shown again, up to :data:`drp.domain.approval.MAX_ANSWERS` answers; a
proven rejection, or a refusal of an up-front answer, stops the gate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model

from drp.adapters.approval_store import UsedProofs
from drp.adapters.approvers import ApproverSecrets, ApproverSecretsError
from drp.domain import approval as proof_rules
from drp.domain import failover as rules
from drp.domain.approval import Channel, GateFacts, Proof
from drp.domain.chatops import Roster
from drp.errors import DrpError
from drp.ledger import Ledger, read_records


class GateRefused(DrpError):
    """A human gate refused (or nobody answered in time); nothing behind it was done."""


def poll_interval_s() -> int:
    """How often a paused run looks for its answer (``DRP_APPROVAL_POLL_S``, default 2 s)."""
    return int(os.environ.get("DRP_APPROVAL_POLL_S", "2"))


# --------------------------------------------------------------------------------------------
# The forms (built per gate: the choices come from the runbook's roster)


CODE_FIELD = Field(
    title="One-time code",
    description="The 6-digit code your authenticator app shows for drp now "
    "(enrolled with `drp roster enroll`). Used once; never recorded.",
)


def approval_form(approvers: tuple[str, ...], description: str) -> type[Any]:
    """The approval form: who (a choice among the roster's approvers), the code, the decision
    (required: no default), a comment. No channel or role field: drp records those itself."""
    from prefect.input import RunInput

    model = create_model(
        "Approval",
        __base__=RunInput,
        approver=(
            Literal[approvers],  # type: ignore[valid-type]
            Field(
                title="Approver (you)",
                description="Who you are, from the runbook's roster (only people whose role "
                "may approve are offered). Your role is taken from the roster.",
            ),
        ),
        code=(str, CODE_FIELD),
        decision=(
            Literal["approve", "reject"],
            Field(
                title="Decision",
                description="approve: the flow goes ahead now; reject: it stops, nothing changes.",
            ),
        ),
        comment=(str, Field(default="", title="Comment", description="Recorded as written.")),
    )
    model._description = description
    return model


def isolation_form(people: tuple[str, ...], description: str) -> type[Any]:
    """The isolation form: who (from the roster), the code, what the DC is, how it was checked."""
    from prefect.input import RunInput

    model = create_model(
        "IsolationConfirmation",
        __base__=RunInput,
        confirmed_by=(
            Literal[people],  # type: ignore[valid-type]
            Field(title="Confirmed by (you)", description="Who you are, from the roster."),
        ),
        code=(str, CODE_FIELD),
        dc_is=(
            Literal["down", "isolated", "not confirmed"],
            Field(
                title="The DC is",
                description="down (no power, servers off) or isolated (cut from every network); "
                "not confirmed: do not promote.",
            ),
        ),
        how_checked=(
            str,
            Field(
                title="How you checked",
                description="By what other means: a call to the site, the power panel, the "
                "network team. Recorded.",
            ),
        ),
    )
    model._description = description
    return model


# --------------------------------------------------------------------------------------------
# Checking proofs (adapters gather, the domain judges)


@dataclass
class ProofChecker:
    """Checks one-time codes and Slack proofs: the secrets file, the replay store in ops-db and
    the Slack proof key. A parameter of the gates, so that tests can point it anywhere."""

    secrets: ApproverSecrets
    used_dsn: str | None
    slack_key: bytes | None
    now: Callable[[], float] = field(default=time.time)

    @classmethod
    def from_settings(cls, settings: Any, runbook: Any = None) -> ProofChecker:
        from drp.tasks.chatops import ops_dsn_for

        secret = getattr(settings, "slack_signing_secret", None)
        return cls(
            secrets=ApproverSecrets(settings.approver_secrets_file()),
            used_dsn=ops_dsn_for(settings, runbook),
            slack_key=proof_rules.slack_proof_key(secret) if secret else None,
        )

    def _store(self) -> UsedProofs:
        if not self.used_dsn:
            raise DrpError(
                "the replay protection of approvals is unavailable: no ops-db (set DRP_OPS_DSN, "
                "or start the lab); without it a used code could be replayed"
            )
        return UsedProofs(self.used_dsn)

    def check(
        self,
        *,
        person: str,
        code: str,
        channel: Channel,
        decision: proof_rules.Decision,
        flow_run_id: str,
        incident_id: str,
        gate: str,
        slack_allowed: bool = True,
    ) -> Proof:
        """The proof ``code`` gives for ``person``; whatever proof was seen is marked used."""
        try:
            if proof_rules.is_slack_proof(code) and slack_allowed:
                return self._check_slack(person, code, decision, flow_run_id, incident_id, gate)
            return self._check_code(person, code, channel, flow_run_id, incident_id, gate)
        except DrpError as exc:  # no secrets file, no ops-db: refused, with the reason
            identity = (
                proof_rules.SLACK_SIGNATURE
                if proof_rules.is_slack_proof(code)
                else proof_rules.TOTP
            )
            return Proof(False, identity, str(exc))

    def _check_code(
        self,
        person: str,
        code: str,
        channel: Channel,
        flow_run_id: str,
        incident_id: str,
        gate: str,
    ) -> Proof:
        try:
            enrolled = self.secrets.is_enrolled(person)
            step = self.secrets.matching_step(person, code, self.now())
        except ApproverSecretsError as exc:
            return Proof(False, proof_rules.TOTP, str(exc))
        args = dict(person=person, channel=channel, enrolled=enrolled, matched_step=step)
        if step is None:
            return proof_rules.judge_code(code, last_used_step=None, **args)  # type: ignore[arg-type]
        with self._store().for_person(person) as used:
            verdict = proof_rules.judge_code(
                code,
                last_used_step=used.last_totp_step(),
                **args,  # type: ignore[arg-type]
            )
            if verdict.ok and verdict.step is not None:
                used.use_totp_step(
                    verdict.step, incident_id=incident_id, flow_run_id=flow_run_id, gate=gate
                )
        return verdict

    def _check_slack(
        self,
        person: str,
        token: str,
        decision: proof_rules.Decision,
        flow_run_id: str,
        incident_id: str,
        gate: str,
    ) -> Proof:
        read = proof_rules.read_slack_proof(self.slack_key, token)
        if isinstance(read, str):
            return Proof(False, proof_rules.SLACK_SIGNATURE, read)
        with self._store().for_person(person) as used:
            verdict = proof_rules.judge_slack_proof(
                read,
                flow_run_id=flow_run_id,
                person=person,
                decision=decision,
                now=self.now(),
                nonce_used=used.nonce_used(read.nonce),
            )
            if verdict.ok and verdict.nonce:
                used.use_nonce(
                    verdict.nonce, incident_id=incident_id, flow_run_id=flow_run_id, gate=gate
                )
        return verdict


def upfront_channel() -> Channel:
    """How an answer given with the run's parameters came: a deployment run (its parameters
    were set when the run was created, in the UI or the API) or a direct call (the CLI). A
    subflow of a deployment run counts as the deployment's."""
    try:
        from prefect.runtime import deployment

        deployment_id = deployment.id
    except Exception:  # no Prefect context: a direct call
        deployment_id = None
    return "deployment-parameter" if deployment_id else "cli"


# --------------------------------------------------------------------------------------------
# The facts shown on the form


def facts_from_declaration(
    incident_id: str, what: str, mode: rules.Mode, declaration: dict[str, Any], budget_s: float
) -> GateFacts:
    """The form's facts from an ``incident.declared`` record (the failover's declaration)."""
    declared_at = declaration.get("declared_at")
    return GateFacts(
        incident_id=incident_id,
        what=what,
        mode=mode,
        declared_by=str(declaration.get("declared_by") or ""),
        declarer_role=declaration.get("declarer_role"),
        category=declaration.get("category"),
        triggers=tuple(
            (str(t.get("article", "")), str(t.get("reason", "")))
            for t in declaration.get("triggers") or ()
        ),
        basis=declaration.get("basis"),
        clock_started_at=datetime.fromisoformat(declared_at) if declared_at else None,
        rto_budget_s=budget_s,
    )


def failback_facts(
    evidence_dir: Path, incident_id: str, mode: rules.Mode, asked_by: str, budget_s: float
) -> GateFacts:
    """The failback form's facts: the incident's category and basis (from its failover's
    declaration, when there is one), who asks for the failback, and its own RTO clock, which
    starts on approval."""
    declared = facts_from_declaration(
        incident_id, "failback", mode, failover_declaration(evidence_dir, incident_id) or {}, 0
    )
    return replace(
        declared,
        declared_by=asked_by,
        declarer_role=None,
        clock_started_at=None,
        rto_budget_s=budget_s,
        clock_starts_on_approval=True,
    )


def failover_declaration(evidence_dir: Path, incident_id: str) -> dict[str, Any] | None:
    """The incident's declaration, from its failover ledger (for the failback's form)."""
    directory = evidence_dir / incident_id / "failover"
    if not (directory / "ledger.jsonl").exists():
        return None
    found = None
    for _, rec in read_records(directory):
        if not isinstance(rec, str) and rec.kind == "incident.declared":
            found = rec.data
    return found


# --------------------------------------------------------------------------------------------
# The approval gate


@dataclass(frozen=True)
class _Answer:
    approver: str
    decision: proof_rules.Decision
    code: str
    comment: str
    channel: Channel


def ask_approval(
    *,
    ledger: Ledger,
    notify: Callable[[str, str], None],
    facts: GateFacts,
    roster: Roster | None,
    approved_by: str | None,
    approval_code: str | None,
    timeout_s: int,
    two_person_rule: bool,
    checker: ProofChecker,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Ask for approval (or take the one given up front), judge it, record it; return the
    ``approval.granted`` record or raise :class:`GateRefused` (after recording the refusal).

    A pause that times out raises Prefect's ``FlowPauseTimeout``; callers treat it as a refusal.
    """
    asked = datetime.now(UTC)
    approvers = proof_rules.who_may_answer(roster, roster.approver_roles if roster else ())
    interactive = approved_by is None
    ledger.append(
        "approval.requested",
        {
            "what": facts.what,
            "timeout_s": timeout_s,
            "interactive": interactive,
            "asked_at": asked.isoformat(),
            "flow_run_id": flow_run_id,
            "declared_by": facts.declared_by,
            "mode": facts.mode.value,
            "category": facts.category,
            "approvers": list(approvers),
        },
    )

    def judge(answer: _Answer, attempt: int) -> tuple[proof_rules.ApprovalVerdict, dict]:
        roles = roster.approver_roles if roster else ()
        standing = proof_rules.judge_standing(answer.approver, roster, roles, "approval")
        proof: Proof | None = None
        needed = proof_rules.proof_required(answer.channel, facts.mode, two_person_rule)
        if needed or answer.code.strip():
            if standing.ok and standing.person is not None:
                proof = checker.check(
                    person=standing.person.name,
                    code=answer.code,
                    channel=answer.channel,
                    decision=answer.decision,
                    flow_run_id=flow_run_id or "",
                    incident_id=facts.incident_id,
                    gate=f"{facts.what}-approval",
                    slack_allowed=answer.channel == "slack",
                )
            else:
                identity = (
                    proof_rules.SLACK_SIGNATURE if answer.channel == "slack" else proof_rules.TOTP
                )
                proof = Proof(False, identity, "not checked: " + standing.reason)
        verdict = proof_rules.judge_approval(
            approver=answer.approver,
            decision=answer.decision,
            channel=answer.channel,
            mode=facts.mode,
            declared_by=facts.declared_by,
            two_person_rule=two_person_rule,
            standing=standing,
            proof=proof,
        )
        answered = datetime.now(UTC)
        record = {
            "what": facts.what,
            "approver": standing.person.name if standing.person else answer.approver,
            "role": verdict.role,
            "channel": answer.channel,
            "identity": verdict.identity,
            "proof": proof.reason if proof else "none given (not required)",
            "proof_ok": bool(proof and proof.ok),
            "totp_step": proof.step if proof and proof.identity == proof_rules.TOTP else None,
            "slack_user_id": proof.slack_user_id if proof else None,
            "decision": answer.decision,
            "comment": answer.comment,
            "declared_by": facts.declared_by,
            "mode": facts.mode.value,
            "asked_at": asked.isoformat(),
            "answered_at": answered.isoformat(),
            "waited_s": round((answered - asked).total_seconds(), 3),
            "attempt": attempt,
            "reason": verdict.reason,
        }
        return verdict, record

    if not interactive:
        channel = upfront_channel()
        verdict, record = judge(
            _Answer(str(approved_by), "approve", approval_code or "", "", channel), 1
        )
        if not verdict.allowed:
            ledger.append("approval.refused", record)
            raise GateRefused(f"approval refused: {verdict.reason}")
        ledger.append("approval.granted", record)
        notify("approval.granted", f"{facts.incident_id}: {verdict.reason}")
        return record

    if not approvers:
        reason = (
            "nobody in the runbook's roster may approve (roster.people with a role in "
            "roster.approver_roles): the approval cannot be answered in the UI"
        )
        ledger.append(
            "approval.refused", {"what": facts.what, "reason": reason, "channel": "prefect-ui"}
        )
        raise GateRefused(f"approval refused: {reason}")
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    notify(
        "approval.requested",
        f"{facts.incident_id}: waiting for approval of the {facts.what} in the Prefect UI "
        f"(timeout {timeout_s // 60} min)",
    )
    last_refusal: str | None = None
    for attempt in range(1, proof_rules.MAX_ANSWERS + 1):
        left = timeout_s - (datetime.now(UTC) - asked).total_seconds()
        if left < 1:
            raise FlowPauseTimeout("the approval was not given within the timeout")
        description = proof_rules.describe_gate(
            facts,
            asked_at=asked,
            timeout_s=timeout_s,
            approvers=approvers,
            answers_left=proof_rules.MAX_ANSWERS - attempt + 1,
            last_refusal=last_refusal,
        )
        form = pause_flow_run(
            wait_for_input=approval_form(approvers, description),
            timeout=int(left),
            poll_interval=poll_interval_s(),
        )
        channel: Channel = "slack" if proof_rules.is_slack_proof(form.code) else "prefect-ui"
        verdict, record = judge(
            _Answer(form.approver, form.decision, form.code, form.comment, channel), attempt
        )
        if verdict.allowed:
            ledger.append("approval.granted", record)
            notify("approval.granted", f"{facts.incident_id}: {verdict.reason}")
            return record
        ledger.append("approval.refused", record)
        if verdict.final or attempt == proof_rules.MAX_ANSWERS:
            notify("approval.refused", f"{facts.incident_id}: {verdict.reason}")
            suffix = "" if verdict.final else f" ({attempt} answers refused)"
            raise GateRefused(f"approval refused: {verdict.reason}{suffix}")
        notify(
            "approval.refused",
            f"{facts.incident_id}: an answer was refused ({verdict.reason}); still waiting",
        )
        last_refusal = verdict.reason
    raise GateRefused("approval refused")  # not reached: the loop returns or raises


# --------------------------------------------------------------------------------------------
# The isolation gate


def ask_isolation(
    *,
    ledger: Ledger,
    notify: Callable[[str, str], None],
    incident_id: str,
    roster: Roster | None,
    timeout_s: int,
    checker: ProofChecker,
    flow_run_id: str | None = None,
) -> str:
    """Pause until someone from the roster, proven by a code, confirms the unreachable DC is
    down or isolated and says how they checked; return who did."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    asked = datetime.now(UTC)
    roles = proof_rules.ISOLATION_ROLES
    people = proof_rules.who_may_answer(roster, roles)
    ledger.append(
        "confirmation.requested",
        {"asked_at": asked.isoformat(), "people": list(people), "flow_run_id": flow_run_id},
    )
    if not people:
        reason = "nobody in the runbook's roster may confirm the DC's isolation"
        ledger.append("isolation.refused", {"reason": reason})
        raise GateRefused(f"{reason}: nothing was promoted")
    notify(
        "confirmation.requested",
        f"{incident_id}: the DC is unreachable; confirm in "
        "the Prefect UI that it is down or isolated before promotion",
    )
    last_refusal: str | None = None
    for attempt in range(1, proof_rules.MAX_ANSWERS + 1):
        left = timeout_s - (datetime.now(UTC) - asked).total_seconds()
        if left < 1:
            raise FlowPauseTimeout("the DC's isolation was not confirmed within the timeout")
        description = proof_rules.describe_isolation(
            incident_id,
            asked_at=asked,
            timeout_s=timeout_s,
            people=people,
            answers_left=proof_rules.MAX_ANSWERS - attempt + 1,
            last_refusal=last_refusal,
        )
        form = pause_flow_run(
            wait_for_input=isolation_form(people, description),
            timeout=int(left),
            poll_interval=poll_interval_s(),
        )
        standing = proof_rules.judge_standing(form.confirmed_by, roster, roles, "confirmation")
        if standing.ok and standing.person is not None:
            proof = checker.check(
                person=standing.person.name,
                code=form.code,
                channel="prefect-ui",
                decision="approve",
                flow_run_id=flow_run_id or "",
                incident_id=incident_id,
                gate="isolation",
                slack_allowed=False,
            )
        else:
            proof = Proof(False, proof_rules.TOTP, "not checked: " + standing.reason)
        verdict = proof_rules.judge_isolation(
            standing=standing, proof=proof, dc_is=form.dc_is, how_checked=form.how_checked
        )
        answered = datetime.now(UTC)
        record = {
            "by": standing.person.name if standing.person else form.confirmed_by,
            "role": standing.person.role if standing.person else None,
            "dc_is": form.dc_is,
            "how": form.how_checked,
            "channel": "prefect-ui",
            "identity": proof.identity,
            "proof": proof.reason,
            "proof_ok": proof.ok,
            "totp_step": proof.step,
            "asked_at": asked.isoformat(),
            "answered_at": answered.isoformat(),
            "waited_s": round((answered - asked).total_seconds(), 3),
            "attempt": attempt,
            "reason": verdict.reason,
        }
        if verdict.allowed:
            ledger.append("isolation.confirmed", record)
            return record["by"]
        ledger.append("isolation.refused", record)
        if verdict.final or attempt == proof_rules.MAX_ANSWERS:
            raise GateRefused(
                f"the DC's isolation was not confirmed ({verdict.reason}): nothing was promoted"
            )
        last_refusal = verdict.reason
    raise GateRefused("the DC's isolation was not confirmed: nothing was promoted")
