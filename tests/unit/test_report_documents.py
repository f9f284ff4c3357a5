"""The documents' contents and rendering, from small hand-written ledgers (no services).

The ledgers are written with the real :class:`drp.ledger.Ledger` and a fixed clock, so every
time in the documents can be checked against a value computed by hand.
"""

from __future__ import annotations

import json
import xml.dom.minidom
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from drp.documents.chart import kpi_bars_svg, rto_timeline_svg
from drp.documents.collect import IncidentNotFound, load_incident
from drp.documents.issue import issue_reports
from drp.documents.records import write_record
from drp.documents.render import RenderError, render, render_text
from drp.documents.served import normalise
from drp.domain.incident import (
    ASSESSMENT,
    END_OF_CONDITION,
    days_left,
    resync_deadline,
)
from drp.domain.report import (
    NO_MANUAL_DOCUMENTS,
    ReportError,
    build_document,
    wib,
)
from drp.ledger import Ledger

pytestmark = pytest.mark.unit
T0 = datetime(2026, 3, 2, 3, 0, 0, tzinfo=UTC)  # 10:00 WIB
ISSUED = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)


def _clock(start: datetime, step_s: float = 1.0) -> Iterator[datetime]:
    moment = start
    while True:
        yield moment
        moment += timedelta(seconds=step_s)


def write_failover(
    evidence: Path,
    incident: str,
    *,
    mode: str = "real",
    category: str = "parsial_nasional",
    role: str = "direktur",
    slow_step: bool = False,
    complete: bool = True,
) -> None:
    """A failover ledger: declaration, approval, three steps, completion (one second apart)."""
    ticks = _clock(T0)
    ledger = Ledger.create(
        evidence / incident / "failover",
        incident,
        {"flow": "failover"},
        clock=lambda: next(ticks),
    )
    ledger.append("attempt.start", {"attempt": 1, "mode": mode, "flow_run_id": "run-1"})
    ledger.append(
        "incident.declared",
        {
            "declared_by": "Rina",
            "declarer_role": role,
            "category": category,
            "declared_at": (T0 + timedelta(seconds=2)).isoformat(),
            "detected_at": (T0 - timedelta(minutes=5)).isoformat(),
            "mode": mode,
            "triggers": [{"article": "Pasal 6(1)(a)", "reason": "CEISA down nationally"}],
            "basis": {"tickets": ["CC-101", "CC-102"]},
            "notes": [],
            "stages": [],
            "coordination": [],
        },
    )
    ledger.append(
        "approval.granted", {"approver": "Tono", "answered_at": T0.isoformat(), "waited_s": 42.0}
    )
    for step_id, name, budget, duration in (
        ("fence", "Pagari DC", 15, 30.0 if slow_step else 3.0),
        ("promote", "Promosikan DRC", 20, 4.0),
        ("verify", "Verifikasi layanan", 20, 2.0),
    ):
        ledger.append(
            "step.start", {"step_id": step_id, "name": name, "budget_s": budget, "attempt": 1}
        )
        ledger.append(
            "step.end",
            {
                "step_id": step_id,
                "status": "done",
                "duration_s": duration,
                "budget_s": budget,
                "attempt": 1,
                "reason": f"{name} ok",
            },
        )
    if complete:
        ledger.append(
            "failover.completed",
            {
                "achieved_rto_s": 754.5,
                "rto_budget_s": 3600.0,
                "rpo": {"reason": "no data lost", "lost_bytes": 0},
            },
        )
        ledger.close({"status": "verified"})


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    write_failover(tmp_path, "inc-1")
    return tmp_path


def doc(evidence: Path, kind: str, incident: str = "inc-1", **kw: Any):
    return build_document(kind, load_incident(evidence, incident), issued_at=ISSUED, **kw)


def md(evidence: Path, kind: str, incident: str = "inc-1", **kw: Any) -> str:
    return render_text(doc(evidence, kind, incident, **kw), "md")


# --- Pasal 11 ---------------------------------------------------------------------------------


def test_resync_deadline_is_thirty_days_after_service_works_again() -> None:
    restored = datetime(2026, 2, 10, 14, 30, tzinfo=UTC)
    assert resync_deadline(restored) == datetime(2026, 3, 12, 14, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        resync_deadline(datetime(2026, 2, 10))


def test_days_left_counts_whole_days_and_goes_negative_after_the_deadline() -> None:
    deadline = datetime(2026, 3, 12, 14, 30, tzinfo=UTC)
    assert days_left(deadline, deadline - timedelta(days=3, hours=1)) == 3
    assert days_left(deadline, deadline - timedelta(hours=5)) == 0
    assert days_left(deadline, deadline + timedelta(hours=1)) == -1


# --- Facts ------------------------------------------------------------------------------------


def test_facts_come_from_the_records(evidence: Path) -> None:
    facts = load_incident(evidence, "inc-1")
    assert facts.mode == "real" and facts.category == "parsial_nasional"
    assert facts.declared_by == "Rina" and facts.approver == "Tono"
    assert facts.detected_at == T0 - timedelta(minutes=5)
    failover = facts.phase("failover")
    assert failover is not None and failover.status == "completed"
    assert [s.step_id for s in failover.steps] == ["fence", "promote", "verify"]
    assert failover.achieved_rto_s == 754.5 and failover.lost_bytes == 0
    assert facts.service_restored_at is not None
    assert facts.resync_deadline == facts.service_restored_at + timedelta(days=30)
    assert facts.evidence_verified
    assert len(facts.missing) == 3  # damage, root cause, end of condition


def test_an_unknown_incident_names_the_evidence_directory(evidence: Path) -> None:
    with pytest.raises(IncidentNotFound, match="known incidents: inc-1"):
        load_incident(evidence, "inc-2")


def test_a_later_record_corrects_an_earlier_one(evidence: Path) -> None:
    write_record(
        evidence,
        "inc-1",
        ASSESSMENT,
        "assessment",
        {"damage": "old", "by": "A"},
        now=T0 + timedelta(hours=1),
    )
    write_record(
        evidence,
        "inc-1",
        ASSESSMENT,
        "assessment",
        {"damage": "new", "by": "B"},
        now=T0 + timedelta(hours=2),
    )
    facts = load_incident(evidence, "inc-1")
    assert facts.assessment is not None and facts.assessment.damage == "new"
    assert facts.assessment.by == "B"


# --- The documents ----------------------------------------------------------------------------


def test_kaji_cepat_marks_what_people_have_not_written(evidence: Path) -> None:
    text = md(evidence, "kaji-cepat")
    assert "Lampiran B" in text
    assert "BELUM DICATAT: penilaian terhadap kerusakan" in text
    assert "BELUM DICATAT: hasil analisis penyebab" in text
    assert "drp record assessment --incident inc-1 --damage" in text
    assert "Pagari DC" in text and "Promosikan DRC" in text
    assert "12 menit 34 detik" in text  # 754.5 s, rounded to the second
    assert wib(T0 + timedelta(seconds=2)) == "02-03-2026 10:00:02 WIB"
    assert "**Waktu deklarasi**: 02-03-2026 10:00:02 WIB" in text


def test_kaji_cepat_shows_the_recorded_assessment(evidence: Path) -> None:
    write_record(
        evidence,
        "inc-1",
        ASSESSMENT,
        "assessment",
        {"damage": "Disk array rusak", "root_cause": "Firmware controller", "by": "Sari"},
    )
    text = md(evidence, "kaji-cepat")
    assert "Disk array rusak (dicatat oleh Sari" in text
    assert "Firmware controller" in text
    assert "BELUM DICATAT" not in text.split("## Bukti")[0]


def test_national_notice_goes_from_the_director_to_office_heads_with_coordination(
    evidence: Path,
) -> None:
    d = doc(evidence, "pemberitahuan")
    assert dict(d.addressing)["Dari"].startswith("Direktur")
    assert dict(d.addressing)["Kepada"] == "Kepala Kantor Bea dan Cukai"
    text = render_text(d, "md")
    assert "Pasal 13 huruf g" in text
    assert "tickets: CC-101, CC-102" in text


def test_local_notice_goes_from_the_office_head_to_service_users(tmp_path: Path) -> None:
    write_failover(tmp_path, "inc-l", category="parsial_lokal", role="kepala_kantor")
    d = doc(tmp_path, "pemberitahuan", "inc-l")
    assert dict(d.addressing)["Dari"] == "Kepala Kantor Bea dan Cukai"
    assert dict(d.addressing)["Kepada"] == "pengguna jasa"
    assert "Pasal 13" not in render_text(d, "md")  # no coordination for a local disaster


def test_end_notice_states_the_pasal_11_deadline(evidence: Path) -> None:
    restored = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    write_record(
        evidence,
        "inc-1",
        END_OF_CONDITION,
        "end",
        {"declared_by": "Rina", "role": "direktur", "restored_at": restored.isoformat()},
    )
    text = md(evidence, "berakhir")
    assert "Lampiran E" in text and "instansi teknis terkait" in text
    assert wib(restored + timedelta(days=30)) == "01-04-2026 12:00:00 WIB"
    assert "**Batas sinkronisasi (Pasal 11)**: 01-04-2026 12:00:00 WIB" in text
    assert "pernyataan berakhirnya kondisi belum dicatat" not in text


def test_berita_acara_says_so_when_nothing_was_served(evidence: Path) -> None:
    text = md(evidence, "berita-acara", served=None, served_source="modul belum tersedia")
    assert NO_MANUAL_DOCUMENTS in text and "modul belum tersedia" in text
    assert md(evidence, "berita-acara", served=[]).count(NO_MANUAL_DOCUMENTS) >= 1


def test_berita_acara_lists_the_served_documents(evidence: Path) -> None:
    served = [
        normalise(
            {
                "nomor_pendaftaran": "MAN-000123",
                "doc_type": "PEB",
                "office": "040300",
                "received_at": T0,
                "original_sha256": "ab" * 32,
            }
        ),
    ]
    d = doc(evidence, "berita-acara", served=served)
    (table,) = d.sections[0].tables
    assert table.rows == ((1, "MAN-000123", "PEB", "040300", None, T0, None, "ab" * 32),)
    assert NO_MANUAL_DOCUMENTS not in render_text(d, "md").split("## 2.")[0]


def test_the_drill_report_is_refused_for_a_real_incident(evidence: Path) -> None:
    with pytest.raises(ReportError, match=r"not a drill .* --kind pasca"):
        doc(evidence, "simulasi")


def test_the_drill_report_evaluates_steps_over_budget(tmp_path: Path) -> None:
    write_failover(tmp_path, "drill-1", mode="drill", category="katastropik", slow_step=True)
    text = md(tmp_path, "simulasi", "drill-1")
    assert "failover/fence: 30.0 s melebihi anggaran 15 s" in text
    assert "| failover | persetujuan | Tono | 42.0 |" in text


def test_an_unknown_kind_names_the_kinds() -> None:
    with pytest.raises(ReportError, match="kaji-cepat, pemberitahuan"):
        build_document("laporan", None, issued_at=ISSUED)  # type: ignore[arg-type]


def test_a_stopped_failover_has_no_restored_time(tmp_path: Path) -> None:
    write_failover(tmp_path, "inc-s", complete=False)
    facts = load_incident(tmp_path, "inc-s")
    assert facts.service_restored_at is None and facts.resync_deadline is None
    assert "belum terverifikasi" in render_text(doc(tmp_path, "pasca", "inc-s"), "md")


# --- Tampering --------------------------------------------------------------------------------


def test_a_changed_record_is_stated_in_every_format(evidence: Path, tmp_path: Path) -> None:
    ledger = evidence / "inc-1" / "failover" / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    record = json.loads(lines[3])
    record["data"]["approver"] = "Someone Else"
    lines[3] = json.dumps(record, separators=(",", ":"), sort_keys=True)
    ledger.write_text("\n".join(lines) + "\n")
    d = doc(evidence, "kaji-cepat")
    assert not d.evidence_verified
    assert "TIDAK LOLOS VERIFIKASI" in render_text(d, "md")
    assert "seq 3" in render_text(d, "html")
    wb = openpyxl.load_workbook(render(d, "xlsx", tmp_path / "out"))
    assert any(
        r[0].value == "Bukti utuh" and r[1].value is False for r in wb["Ringkasan"].iter_rows()
    )


# --- Rendering --------------------------------------------------------------------------------


def test_html_is_well_formed_and_draws_every_step(evidence: Path) -> None:
    html = render_text(doc(evidence, "pasca"), "html")
    dom = xml.dom.minidom.parseString(html.removeprefix("<!DOCTYPE html>").encode())
    bars = [r for r in dom.getElementsByTagName("rect") if r.getAttribute("class") == "step"]
    assert [float(b.getAttribute("data-duration-s")) for b in bars] == [3.0, 4.0, 2.0]


def test_a_step_over_budget_is_drawn_red() -> None:
    from drp.domain.report import ChartBar, RtoTimeline

    svg = rto_timeline_svg(
        RtoTimeline(
            "failover",
            (ChartBar("a<b", 0, 30, 15, "done"), ChartBar("c", 30, 1, 5, "done")),
            31.0,
            600.0,
            3600.0,
            None,
            None,
        )
    )
    assert svg.count('fill="#c0392b"') == 1 and "a&lt;b" in svg
    xml.dom.minidom.parseString(svg)


def test_kpi_chart_marks_services_above_target() -> None:
    svg = kpi_bars_svg([("skp", 0.05), ("ceisa", 0.2)], 0.1)
    dom = xml.dom.minidom.parseString(svg)
    fills = [r.getAttribute("fill") for r in dom.getElementsByTagName("rect")]
    assert fills == ["#27ae60", "#c0392b"]


def test_xlsx_cells_are_typed_and_columns_sized(evidence: Path, tmp_path: Path) -> None:
    wb = openpyxl.load_workbook(render(doc(evidence, "kaji-cepat"), "xlsx", tmp_path))
    steps = wb["Langkah yang dijalankan"]
    assert [c.value for c in steps[1]][:5] == ["Tahap", "Langkah", "Uraian", "Status", "Durasi (s)"]
    row = [c.value for c in steps[2]]
    assert row[4] == 3.0 and isinstance(row[6], bool)
    assert isinstance(wb["Kronologi"]["A2"].value, datetime)
    assert steps.column_dimensions["C"].width >= len("Verifikasi layanan")


def test_a_user_template_replaces_the_built_in_one(evidence: Path, tmp_path: Path) -> None:
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "kaji-cepat.md.j2").write_text("KOP SURAT\n{{ doc.title }} {{ doc.incident_id }}\n")
    d = doc(evidence, "kaji-cepat")
    assert render_text(d, "md", mine) == "KOP SURAT\nLAPORAN KAJI CEPAT inc-1\n"
    assert render_text(doc(evidence, "pasca"), "md", mine).startswith("# LAPORAN PASCA")


def test_a_broken_user_template_names_its_line(evidence: Path, tmp_path: Path) -> None:
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "document.md.j2").write_text("ok\n{% for x in %}\n")
    with pytest.raises(RenderError, match=r"document\.md\.j2, line 2"):
        render_text(doc(evidence, "pasca"), "md", mine)
    (mine / "document.md.j2").write_text("{{ doc.no_such_field }}\n")
    with pytest.raises(RenderError, match="no_such_field"):
        render_text(doc(evidence, "pasca"), "md", mine)
    with pytest.raises(RenderError, match="does not exist"):
        render_text(doc(evidence, "pasca"), "md", tmp_path / "nowhere")


def test_issuing_records_the_files_and_their_digests(evidence: Path, tmp_path: Path) -> None:
    _facts, _docs, files = issue_reports(
        evidence, "inc-1", formats=["md", "xlsx"], out_dir=tmp_path / "out", now=ISSUED
    )
    assert {f.kind for f in files} == {
        "kaji-cepat",
        "pemberitahuan",
        "berakhir",
        "berita-acara",
        "pasca",
    }  # no drill report: real
    again = load_incident(evidence, "inc-1")
    assert set(again.reports_issued) == {f.kind for f in files}
    assert again.evidence_verified  # the record of issuing is itself a sound ledger
    with pytest.raises(RenderError, match="unknown format 'docx'"):
        issue_reports(evidence, "inc-1", formats=["docx"], out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half written


def test_a_failing_render_leaves_the_output_directory_as_it_was(
    evidence: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier report")
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "pasca.md.j2").write_text("{{ doc.no_such_field }}\n")  # fails after 4 kinds
    with pytest.raises(RenderError, match="no_such_field"):
        issue_reports(evidence, "inc-1", formats=["md"], out_dir=out, template_dir=mine)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert load_incident(evidence, "inc-1").reports_issued == ()
