"""The replication-check flow through Prefect: verdicts, artifact, ledger, alerts once."""

from __future__ import annotations

from typing import Any

import pytest

from drp.adapters import postgres as pg
from drp.flows import load
from drp.lab.core import Lab
from drp.ledger import read_records, verify_ledger

pytestmark = pytest.mark.e2e


def _notifications(result: dict[str, Any]) -> list[str]:
    return [
        r.data["event"]
        for _, r in read_records(result["ledger"])
        if not isinstance(r, str) and r.kind == "notification"
    ]


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
        )
    assert found, f"no artifact {key}"
    return str(found[0].data)  # the newest version


def test_the_flow_judges_publishes_and_alerts_only_when_a_breach_starts(
    prefect_server: None, fresh_lab: Lab
) -> None:
    flow = load("replication").replication_check
    first = flow(runbook="runbooks/lab.yaml")
    assert first["status"] == "ready", first
    assert first["alerts"] == [] and _notifications(first) == []
    assert verify_ledger(first["ledger"]).ok
    assert "pair:skp-db | ready" in _artifact("readiness-lab-drp")

    pg.query(fresh_lab.dsn("drc-db"), "SELECT pg_wal_replay_pause()")
    breached = flow(runbook="runbooks/lab.yaml")
    again = flow(runbook="runbooks/lab.yaml")
    assert breached["status"] == "degraded"
    assert _notifications(breached) == ["readiness.breach", "readiness.breach"]
    assert again["status"] == "degraded" and _notifications(again) == []
    assert "replay is paused" in _artifact("readiness-lab-drp")
    assert verify_ledger(again["ledger"]).ok
