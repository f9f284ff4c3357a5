"""One-time codes of the lab roster for tests: what each person's authenticator shows, read
from the lab's secrets file (``drp lab up`` enrols the lab runbook's roster)."""

from __future__ import annotations

import threading
import time
from typing import Any

_HANDED_OUT: dict[tuple[str, str], int] = {}
_HANDED_OUT_LOCK = threading.Lock()


def roster_code(name: str) -> str:
    """A valid one-time code of a lab roster person: what their authenticator shows now, from
    the lab's secrets file (``drp lab up`` enrols the lab roster). A code counts once, so when
    this 30-second step's code was already handed out, it waits for the next step."""
    from drp.adapters.approvers import ApproverSecrets
    from drp.settings import Settings

    store = ApproverSecrets(Settings().approver_secrets_file())
    key = (str(store.path), name)
    while True:
        now = time.time()
        step = int(now // 30)
        with _HANDED_OUT_LOCK:
            if _HANDED_OUT.get(key, -1) < step:
                _HANDED_OUT[key] = step
                return store.code_now(name, now)
        time.sleep(30 - now % 30 + 0.05)


def approval_input(name: str, decision: str = "approve", **extra: Any) -> dict[str, Any]:
    """The approval form's fields, as the UI sends them, with a valid code of ``name``."""
    return {"approver": name, "code": roster_code(name), "decision": decision, **extra}
