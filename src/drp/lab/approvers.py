"""The lab's approvers: every person of the lab runbook's roster gets a one-time-code secret
when the lab is built, so that the drill, the tests and a person trying the UI can compute
codes (``drp roster code NAME``, which works only for this lab-marked file).

The file is ``approvers.json`` in the lab's secrets directory (0700; the file 0600): the default
of ``DRP_APPROVER_SECRETS``. It goes with the lab (``drp lab down --purge`` removes it).
"""

from __future__ import annotations

from pathlib import Path

from drp.adapters.approvers import ApproverSecrets
from drp.lab.config import LabConfig, repo_root

LAB_RUNBOOK = "runbooks/lab.yaml"


def lab_secrets_file(cfg: LabConfig) -> Path:
    return cfg.secrets_file.parent / "approvers.json"


def enrol_lab_roster(cfg: LabConfig, runbook: Path | None = None) -> list[str]:
    """Enrol whoever of the lab runbook's roster is not enrolled yet; return their names."""
    from drp.runbooks import load_runbook

    rb = load_runbook(runbook or repo_root() / LAB_RUNBOOK)
    if rb.roster is None:
        return []
    store = ApproverSecrets(lab_secrets_file(cfg))
    enrolled = store.enrolled() if store.exists else {}
    added = []
    for person in rb.roster.people:
        if person.name not in enrolled:
            store.enrol(person.name, lab=True)  # the URI is not shown: the lab computes codes
            added.append(person.name)
    return added
