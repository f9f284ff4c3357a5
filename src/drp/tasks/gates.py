"""The human gates of the incident flows: approval before anything changes, and confirmation
that an unreachable DC is really down or isolated before promotion.

A gate is answered either up front (the CLI's ``--approved-by``) or in the Prefect UI: the flow
pauses with a form (:class:`Approval`, :class:`IsolationConfirmation`) until someone fills it in
or the runbook's timeout passes. Either way the rules of :func:`drp.domain.failover.check_approval`
decide, and the ledger records who answered, through which channel, and how long people took
(``waited_s``: what a drill measures per gate, Pasal 15). ChatOps resumes the same pause with
the same fields.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from drp.domain import failover as rules
from drp.errors import DrpError
from drp.ledger import Ledger


class Approval(RunInput):
    """The form an approver fills in the Prefect UI to let a failover (or failback) go ahead."""

    approver: str
    role: str
    confirm: bool = False
    comment: str = ""
    channel: str = "prefect-ui"  # ChatOps answers the same form with "slack"


class IsolationConfirmation(RunInput):
    """The DC cannot be reached: someone confirms, by other means, that it is down or isolated."""

    confirmed_by: str
    confirm_dc_down_or_isolated: bool = False
    how_checked: str = ""


class GateRefused(DrpError):
    """A human gate refused (or nobody answered in time); nothing behind it was done."""


def poll_interval_s() -> int:
    """How often a paused run looks for its answer (``DRP_APPROVAL_POLL_S``, default 2 s)."""
    return int(os.environ.get("DRP_APPROVAL_POLL_S", "2"))


def ask_approval(
    *,
    ledger: Ledger,
    notify: Callable[[str, str], None],
    incident_id: str,
    what: str,
    mode: rules.Mode,
    declared_by: str,
    approved_by: str | None,
    approver_role: str,
    timeout_s: int,
    two_person_rule: bool,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Ask for approval (or take the one given up front), judge it, record it; return the
    ``approval.granted`` record or raise :class:`GateRefused` (after recording the refusal).

    A pause that times out raises Prefect's ``FlowPauseTimeout``; callers treat it as a refusal.
    """
    asked = datetime.now(UTC)
    ledger.append(
        "approval.requested",
        {
            "what": what,
            "timeout_s": timeout_s,
            "interactive": approved_by is None,
            "asked_at": asked.isoformat(),
            "flow_run_id": flow_run_id,
            "declared_by": declared_by,
            "mode": mode.value,
        },
    )
    if approved_by is None:
        notify(
            "approval.requested",
            f"{incident_id}: waiting for approval of the {what} in the Prefect UI "
            f"(timeout {timeout_s // 60} min)",
        )
        form = pause_flow_run(
            wait_for_input=Approval, timeout=timeout_s, poll_interval=poll_interval_s()
        )
        approver, role, confirmed, comment = form.approver, form.role, form.confirm, form.comment
        channel = form.channel if form.channel in ("prefect-ui", "slack") else "prefect-ui"
    else:
        approver, role, confirmed, comment, channel = approved_by, approver_role, True, "", "cli"
    decision = rules.check_approval(
        mode=mode,
        declared_by=declared_by,
        approver=approver,
        confirmed=confirmed,
        two_person_rule=two_person_rule,
    )
    answered = datetime.now(UTC)
    record = {
        "what": what,
        "approver": approver,
        "role": role,
        "channel": channel,
        "comment": comment,
        "declared_by": declared_by,
        "mode": mode.value,
        "asked_at": asked.isoformat(),
        "answered_at": answered.isoformat(),
        "waited_s": round((answered - asked).total_seconds(), 3),
        "reason": decision.reason,
    }
    if not decision.allowed:
        ledger.append("approval.refused", record)
        raise GateRefused(f"approval refused: {decision.reason}")
    ledger.append("approval.granted", record)
    notify("approval.granted", f"{incident_id}: {decision.reason}")
    return record


def ask_isolation(
    *, ledger: Ledger, notify: Callable[[str, str], None], incident_id: str, timeout_s: int
) -> str:
    """Pause until someone confirms the unreachable DC is down or isolated; return who did."""
    asked = datetime.now(UTC)
    ledger.append("confirmation.requested", {"asked_at": asked.isoformat()})
    notify(
        "confirmation.requested",
        f"{incident_id}: the DC is unreachable; confirm in "
        "the Prefect UI that it is down or isolated before promotion",
    )
    form = pause_flow_run(
        wait_for_input=IsolationConfirmation, timeout=timeout_s, poll_interval=poll_interval_s()
    )
    answered = datetime.now(UTC)
    if not form.confirm_dc_down_or_isolated or not form.confirmed_by.strip():
        ledger.append(
            "isolation.refused",
            {"by": form.confirmed_by, "waited_s": (answered - asked).total_seconds()},
        )
        raise GateRefused("the DC's isolation was not confirmed: nothing was promoted")
    ledger.append(
        "isolation.confirmed",
        {
            "by": form.confirmed_by,
            "how": form.how_checked,
            "channel": "prefect-ui",
            "asked_at": asked.isoformat(),
            "answered_at": answered.isoformat(),
            "waited_s": round((answered - asked).total_seconds(), 3),
        },
    )
    return form.confirmed_by
