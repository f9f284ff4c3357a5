"""Run a playbook so that the evidence ledger holds what it did.

Every flow acts on hosts through playbooks, and an auditor must be able to see each one: each
Ansible task result as it happens (``ansible.task``), the whole event log as an attachment, and
a summary (``ansible.playbook``) that names the attachment by digest. One function, used by the
failover, the resync and whatever flow comes next.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from drp.adapters import ansible
from drp.ledger import Ledger

TASK_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped")


def run_recorded_playbook(
    ledger: Ledger,
    call: ansible.PlaybookCall,
    *,
    step_id: str,
    attempt: int,
    summary: Mapping[str, Any] | None = None,
) -> ansible.PlaybookResult:
    """Run ``call``; record its task results, its event log and a summary in ``ledger``."""
    events: list[dict[str, Any]] = []
    playbook = call.playbook.name

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        kind = event.get("event", "")
        if kind not in TASK_EVENTS:
            return
        data = event.get("event_data", {})
        res = data.get("res") or {}
        ledger.append(
            "ansible.task",
            {
                "step_id": step_id,
                "playbook": playbook,
                "host": data.get("host"),
                "task": data.get("task"),
                "status": kind.removeprefix("runner_on_"),
                "changed": bool(res.get("changed")),
                "msg": str(res.get("msg", ""))[:500] if kind != "runner_on_ok" else "",
            },
        )

    result = ansible.run_playbook(call, event_handler=on_event)
    ref = ledger.attach(
        f"ansible-{step_id}-attempt{attempt}-{uuid.uuid4().hex[:6]}.jsonl",
        "\n".join(json.dumps(e, default=str, sort_keys=True) for e in events).encode(),
    )
    ledger.append(
        "ansible.playbook",
        {
            "step_id": step_id,
            "playbook": playbook,
            **dict(summary or {}),
            "status": result.status,
            "rc": result.rc,
            "duration_s": round(result.duration_s, 3),
            "changed_hosts": list(result.changed_hosts),
            "unreachable_hosts": list(result.unreachable_hosts),
            "failed_tasks": [f"{f.host}: {f.task}: {f.msg}"[:300] for f in result.failed_tasks],
            "stats_data": dict(result.stats_data),
        },
        attachments=[ref],
    )
    return result
