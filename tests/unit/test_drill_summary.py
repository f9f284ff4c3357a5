"""What `drp drill` prints: each phase, and on a site every service of the failover against its
own RTO (or why it did not recover)."""

from __future__ import annotations

import pytest

from drp.commands.drill import _print_summary


def test_the_summary_prints_every_service_with_its_own_rto_or_its_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print_summary(
        {
            "status": "failed",
            "verdict": "failed",
            "scenario": "dc-heat",
            "duration_s": 80.5,
            "phases": [
                {
                    "phase": "failover",
                    "status": "failed",
                    "duration_s": 41.5,
                    "achieved_rto_s": None,
                }
            ],
            "gates": [],
            "findings": [],
            "ledger": "evidence/d/drill",
            "services": [
                {
                    "service": "perbendaharaan",
                    "status": "verified",
                    "achieved_rto_s": 21.94,
                    "rto_budget_s": 600.0,
                    "pair": "perbendaharaan-db",
                },
                {
                    "service": "tpb",
                    "status": "blocked",
                    "achieved_rto_s": None,
                    "rto_budget_s": 1200.0,
                    "reason": "not started: it depends on 'portal'",
                    "pair": "skp-db",
                },
            ],
        }
    )
    lines = capsys.readouterr().out.splitlines()
    assert "  perbendaharaan  verified  RTO 21.9 s / 10 min (perbendaharaan-db)" in lines
    assert "  tpb             blocked   not started: it depends on 'portal' (skp-db)" in lines
