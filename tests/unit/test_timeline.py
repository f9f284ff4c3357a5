"""The incident timeline built from ledger records: time order, UTC and WIB, offsets from the
declaration (the RTO clock, Pasal 3), who acted, how long the gates waited, the verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drp.domain.evidence import Record, format_ts
from drp.domain.timeline import build_timeline, offset_text

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 23, 14, 40, 0, tzinfo=UTC)


def rec(seconds: float, kind: str, **data: Any) -> Record:
    return Record(0, format_ts(T0 + timedelta(seconds=seconds)), kind, data, "-", "-")


FAILOVER = [
    rec(0, "attempt.start", attempt=1, mode="drill"),
    rec(
        1,
        "incident.declared",
        declared_by="Budi",
        declarer_role="direktur",
        category="katastropik",
        declared_at=format_ts(T0 + timedelta(seconds=1)),
        triggers=[{"article": "Pasal 7(1)(b)", "reason": "hot"}],
    ),
    rec(1.1, "notification", text="declared"),
    rec(1.2, "approval.requested", what="failover", interactive=True, timeout_s=600),
    rec(
        4.7,
        "approval.granted",
        what="failover",
        approver="Sari",
        role="direktur",
        channel="prefect-ui",
        waited_s=3.5,
        reason="drill: approved by a second person",
    ),
    rec(5, "step.start", step_id="fence-dc-db", name="Fence the DC primary", budget_s=15),
    rec(6, "ansible.task", step_id="fence-dc-db", task="stop"),
    rec(
        12,
        "step.end",
        step_id="fence-dc-db",
        status="done",
        duration_s=7.0,
        budget_s=15,
        over_budget=False,
        reason="fenced",
    ),
    rec(
        13,
        "isolation.confirmed",
        by="Andi",
        how="called the DC",
        channel="prefect-ui",
        waited_s=0.8,
    ),
    rec(20, "failover.completed", rto_verdict="achieved RTO 19.0 s within the budget of 10 min"),
]
DRILL = [
    rec(-5, "attempt.start", attempt=1, mode="drill", operator="Budi"),
    rec(-4, "step.start", step_id="inject", name="Inject the scenario's fault", budget_s=10),
    rec(
        -3,
        "step.end",
        step_id="inject",
        status="done",
        duration_s=1.0,
        budget_s=10,
        over_budget=False,
        reason="DC hot",
    ),
    rec(70, "drill.completed", verdict="passed", status="passed", duration_s=75.0),
]


def test_the_rows_are_in_time_order_across_ledgers_with_offsets_from_the_declaration() -> None:
    timeline = build_timeline("drill-x", {"drill": DRILL, "failover": FAILOVER})
    rows = timeline.rows()
    assert timeline.declared_at == T0 + timedelta(seconds=1)
    assert [r["flow"] for r in rows][:4] == ["drill", "drill", "drill", "failover"]
    assert [r["RTO clock"] for r in rows][:3] == ["-00:06.0", "-00:05.0", "-00:04.0"]
    declared = next(r for r in rows if "declared" in r["what"])
    assert declared["RTO clock"] == "+00:00.0"
    assert declared["who"] == "Budi (direktur)"
    assert declared["what"] == "katastropik declared on Pasal 7(1)(b); RTO clock started"
    assert declared["time (UTC)"] == "14:40:01"
    assert declared["time (WIB)"] == "21:40:01"  # UTC+7
    assert rows[-1]["what"] == "drill passed (passed, 75.0 s)"


def test_the_approval_says_who_through_which_channel_and_how_long_the_gate_waited() -> None:
    timeline = build_timeline("inc-1", {"failover": FAILOVER})
    approved = next(r for r in timeline.rows() if "approved" in r["what"])
    assert approved["who"] == "Sari (direktur, prefect-ui)"
    assert approved["gate wait"] == "3.5 s"
    assert approved["RTO clock"] == "+00:03.7"
    assert (
        "failover: approved by Sari (direktur, prefect-ui) at 21:40:04 WIB, after a wait of 3.5 s"
        in timeline.people
    )
    assert any(
        p.startswith("failover: DC isolation confirmed by Andi (prefect-ui)")
        for p in timeline.people
    )
    assert timeline.people[0] == "failover: declared by Budi (direktur) at 21:40:01 WIB"


def test_step_ends_carry_the_step_name_duration_budget_and_reason() -> None:
    rows = build_timeline("inc-1", {"failover": FAILOVER}).rows()
    fence = [r["what"] for r in rows if r["what"].startswith("Fence the DC primary — ")]
    assert fence == [
        "Fence the DC primary — started (budget 15.0 s)",
        "Fence the DC primary — done in 7.0 s (budget 15.0 s): fenced",
    ]


def test_the_verdicts_hold_the_rto_and_the_summary_starts_at_the_declaration() -> None:
    timeline = build_timeline("inc-1", {"failover": FAILOVER})
    assert timeline.verdicts == (
        "failover: service verified at the DRC; achieved RTO 19.0 s within the budget of 10 min",
    )
    summary = timeline.summary()
    assert summary[0] == (
        "- RTO clock from the declaration at 2026-11-23 14:40:01 UTC / 23-11-2026 21:40:01 WIB"
    )
    assert summary[-1] == "- " + timeline.verdicts[0]


def test_records_that_tell_no_moment_of_the_story_are_left_to_the_evidence() -> None:
    rows = build_timeline("inc-1", {"failover": FAILOVER}).rows()
    assert len(rows) == len(FAILOVER) - 2  # the notification and the Ansible task result
    assert not any(r["what"] in ("stop", "declared") for r in rows)


def test_a_flow_without_the_declaration_measures_from_the_one_given() -> None:
    failback = [rec(3600, "step.start", step_id="switch", name="Switch", budget_s=15)]
    timeline = build_timeline("inc-1", {"failback": failback}, declared_at=T0)
    assert timeline.rows()[0]["RTO clock"] == "+1:00:00"
    assert build_timeline("inc-1", {"failback": failback}).rows()[0]["RTO clock"] == ""


def test_the_markdown_holds_the_summary_and_one_table_line_per_entry() -> None:
    timeline = build_timeline("inc-1", {"failover": FAILOVER})
    text = timeline.markdown()
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 1 + len(timeline.entries)  # header, then one per entry
    assert lines[0].startswith("- RTO clock from the declaration")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0, "+00:00.0"), (65.34, "+01:05.3"), (-4, "-00:04.0"), (3723, "+1:02:03")],
)
def test_offsets_read_as_a_clock(seconds: float | None, text: str) -> None:
    assert offset_text(seconds) == text


def test_the_short_columns_come_first_and_empty_cells_stay_empty() -> None:
    rows = build_timeline("inc-1", {"failover": FAILOVER}).rows()
    assert list(rows[0]) == [
        "RTO clock",
        "time (WIB)",
        "time (UTC)",
        "flow",
        "who",
        "gate wait",
        "what",
    ]
    started = rows[0]  # attempt.start: no step, nobody named, no gate
    assert (started["what"], started["who"], started["gate wait"]) == (
        "attempt 1 started (drill)",
        "",
        "",
    )


def test_who_acted_and_the_verdicts_are_summarised_in_time_order() -> None:
    timeline = build_timeline("drill-x", {"drill": DRILL, "failover": FAILOVER})
    assert timeline.verdicts == (
        "failover: service verified at the DRC; achieved RTO 19.0 s within the budget of 10 min",
        "drill: drill passed (passed, 75.0 s)",
    )
    assert [p.split(" by ")[0] for p in timeline.people] == [
        "failover: declared",
        "failover: approved",
        "failover: DC isolation confirmed",
    ]
