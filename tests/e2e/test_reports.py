"""The regulation's documents from the evidence of a real drill cycle on the lab.

The evidence is the session's drills on one lab (``drilled`` in conftest.py: the drill flow,
with failover, resync and failback as subflows); these tests read the dc-heat drill's. Each
document is rendered in every format and checked for the real values (names, times, steps,
RTO, digests); HTML must parse as XML, the xlsx must open with typed cells, a PDF must be a PDF,
and a tampered ledger must make the documents say so.
"""

from __future__ import annotations

import json
import shutil
import xml.dom.minidom
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner, Result

from drp.adapters import registry
from drp.cli import app
from drp.documents.collect import load_incident
from drp.documents.issue import issue_reports
from drp.domain.report import FORMATS, KINDS, NO_MANUAL_DOCUMENTS, wib
from drp.flows import load
from drp.lab.core import Lab
from drp.ledger import read_records, verify_ledger

pytestmark = pytest.mark.e2e
RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "lab.yaml")


@dataclass(frozen=True)
class DrillEvidence:
    """What a drill cycle left behind: where its evidence is, and who acted.

    Everything else the tests compare with is read back from the ledgers themselves (the
    failover's ``failover.completed`` record), so the fixture can be any drill of the lab.
    """

    incident_id: str
    evidence_dir: Path
    lab: Lab
    ops_dsn: str
    declared_by: str
    failback_approver: str

    @property
    def failover(self) -> dict[str, Any]:
        """The failover's outcome as its ledger recorded it."""
        ledger = self.evidence_dir / self.incident_id / "failover"
        return next(
            dict(r.data)
            for _, r in read_records(ledger)
            if not isinstance(r, str) and r.kind == "failover.completed"
        )


@pytest.fixture(scope="module")
def drill_evidence(drilled: Any) -> DrillEvidence:
    """The dc-heat drill of the session's drills (conftest.py ``drilled``): catastrophic,
    declared by Budi, both gates answered by Sari through Prefect's API as the UI does."""
    assert not drilled.errors, drilled.errors
    summary = drilled.summaries["dc-heat"]
    return DrillEvidence(
        summary.incident_id,
        drilled.evidence,
        drilled.lab,
        drilled.lab.dsn("ops-db") + " connect_timeout=2",
        declared_by="Budi",
        failback_approver="Sari",
    )


def _cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _heads(evidence: DrillEvidence) -> dict[str, str]:
    return {
        flow: str(verify_ledger(evidence.evidence_dir / evidence.incident_id / flow).head)
        for flow in ("failover", "resync", "failback")
    }


def _step_names(ledger: Path) -> list[str]:
    return [
        r.data["name"]
        for _, r in read_records(ledger)
        if not isinstance(r, str) and r.kind == "step.start"
    ]


def _parse_html(text: str) -> xml.dom.minidom.Document:
    assert text.startswith("<!DOCTYPE html>")
    return xml.dom.minidom.parseString(text.removeprefix("<!DOCTYPE html>").encode())


def test_every_document_in_every_format_holds_the_real_values(
    drill_evidence: DrillEvidence, tmp_path: Path
) -> None:
    ev = drill_evidence
    facts, docs, files = issue_reports(
        ev.evidence_dir, ev.incident_id, out_dir=tmp_path, record=False
    )
    assert facts.is_drill and facts.evidence_verified
    assert {d.kind for d in docs} == set(KINDS)
    assert {(f.kind, f.format) for f in files} == {(k, f) for k in KINDS for f in FORMATS}
    heads = _heads(ev)
    declared = datetime.fromisoformat(ev.failover["declared_at"])
    failover_steps = _step_names(ev.evidence_dir / ev.incident_id / "failover")
    rto_text = f"{ev.failover['achieved_rto_s']:.1f} detik"
    assert len(failover_steps) == 6

    for f in files:
        if f.format == "md":
            text = f.path.read_text()
        elif f.format == "html":
            text = f.path.read_text()
            dom = _parse_html(text)  # well formed
            charts = [
                s for s in dom.getElementsByTagName("svg") if s.getAttribute("class") == "rto-chart"
            ]
            assert [c.getAttribute("data-flow") for c in charts] == [
                "failover",
                "resync",
                "failback",
            ]
            bars = [
                r
                for r in charts[0].getElementsByTagName("rect")
                if r.getAttribute("class") == "step"
            ]
            assert len(bars) == len(failover_steps)
            durations = [float(b.getAttribute("data-duration-s")) for b in bars]
            assert durations == [s["duration_s"] for s in ev.failover["steps"]]
            share = next(
                r
                for r in charts[0].getElementsByTagName("rect")
                if r.getAttribute("class") == "rto-share"
            )
            assert float(share.getAttribute("data-achieved-s")) == ev.failover["achieved_rto_s"]
        elif f.format == "xlsx":
            continue  # checked below
        else:
            assert f.path.read_bytes().startswith(b"%PDF-"), f.path
            continue
        # Every document, md and html: identity, verification, digests, the RTO timeline.
        assert ev.incident_id in text
        assert "SIMULASI" in text
        assert "Bencana TIK Katastropik" in text or f.kind == "berita-acara"
        assert wib(declared) in text
        assert "lolos verifikasi" in text and "TIDAK LOLOS" not in text
        for head in heads.values():
            assert head in text, (f.kind, f.format, head)
        assert rto_text in text, (f.kind, f.format)
        assert ev.declared_by in text

    def text_of(kind: str) -> str:
        return (tmp_path / f"{ev.incident_id}-{kind}.md").read_text()

    kaji = text_of("kaji-cepat")
    for name in failover_steps:
        assert name in kaji
    assert "Lampiran B" in kaji
    assert "BELUM DICATAT: penilaian terhadap kerusakan" in kaji
    assert "analisis akar masalah belum dicatat" in kaji
    notice = text_of("pemberitahuan")
    assert "Lampiran C" in notice
    assert "**Dari**: Direktur" in notice and "**Kepada**: Kepala Kantor Bea dan Cukai" in notice
    assert "Pasal 13 huruf a" in notice  # national/catastrophic: coordination listed
    assert "Lampiran E" in text_of("berakhir")
    assert "pernyataan berakhirnya kondisi belum dicatat" in text_of("berakhir")
    acara = text_of("berita-acara")
    assert "Lampiran F" in acara and NO_MANUAL_DOCUMENTS in acara
    pasca = text_of("pasca")
    assert "Pasal 12" in pasca and "Data Dampak terhadap SKP" in pasca
    for name in _step_names(ev.evidence_dir / ev.incident_id / "failback"):
        assert name in pasca
    drill = text_of("simulasi")
    assert "Pasal 15" in drill and "Waktu respons keputusan manusia" in drill
    assert ev.failback_approver in drill  # the failback's approver, a human gate
    assert "memenuhi batas 60 menit" in drill

    wb = openpyxl.load_workbook(tmp_path / f"{ev.incident_id}-kaji-cepat.xlsx")
    chronology = wb["Kronologi"]
    assert [c.value for c in chronology[1]] == ["Waktu (WIB)", "Tahap", "Kejadian"]
    assert all(isinstance(row[0].value, datetime) for row in chronology.iter_rows(min_row=2))
    steps = wb["Langkah yang dijalankan"]
    header = [c.value for c in steps[1]]
    durations = [
        row[header.index("Durasi (s)")].value
        for row in steps.iter_rows(min_row=2)
        if row[header.index("Tahap")].value == "failover"  # the drill's own phases come first
    ]
    assert durations == [s["duration_s"] for s in ev.failover["steps"]]
    assert all(
        isinstance(row[header.index("Lewat")].value, bool) for row in steps.iter_rows(min_row=2)
    )
    assert steps.column_dimensions["C"].width > 20
    evidence_sheet = wb["Bukti"]
    assert {row[3].value for row in evidence_sheet.iter_rows(min_row=2)} >= set(heads.values())
    summary = wb["Ringkasan"]
    issued = next(r[1].value for r in summary.iter_rows() if r[0].value == "Diterbitkan")
    assert isinstance(issued, datetime)


def test_operator_records_fill_the_gaps_and_start_the_resync_deadline(
    drill_evidence: DrillEvidence, tmp_path: Path
) -> None:
    ev = drill_evidence
    env = {"DRP_EVIDENCE_DIR": str(ev.evidence_dir), "DRP_LAB_ROOT": str(ev.lab.cfg.root)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        refused = _cli(
            "record",
            "end-of-condition",
            "--incident",
            "no-such",
            "--declared-by",
            "X",
            "--role",
            "direktur",
        )
        assert refused.exit_code == 2 and "no evidence for incident 'no-such'" in refused.output
        wrong_role = _cli(
            "record",
            "end-of-condition",
            "--incident",
            ev.incident_id,
            "--declared-by",
            "X",
            "--role",
            "operator",
        )
        assert wrong_role.exit_code == 2 and "Pasal 9" in wrong_role.output
        done = _cli(
            "record",
            "assessment",
            "--incident",
            ev.incident_id,
            "--by",
            "Sari Dewi",
            "--damage",
            "Ruang server DC 60% di atas 34 derajat",
            "--root-cause",
            "Pendingin presisi gagal (skenario simulasi)",
            "--needs",
            "Sensor suhu tambahan",
            "--json",
        )
        assert done.exit_code == 0, done.output
        ended = _cli(
            "record",
            "end-of-condition",
            "--incident",
            ev.incident_id,
            "--declared-by",
            "Budi Santoso",
            "--role",
            "direktur",
            "--json",
        )
        assert ended.exit_code == 0, ended.output
        end = json.loads(ended.output)
        restored = datetime.fromisoformat(end["restored_at"])
        declared = datetime.fromisoformat(ev.failover["declared_at"])
        # By default the restored time is the failover's verification: declared + its RTO.
        assert abs((restored - declared).total_seconds() - ev.failover["achieved_rto_s"]) < 1
        assert datetime.fromisoformat(end["resync_deadline"]) == restored + timedelta(days=30)

        out = _cli(
            "report",
            ev.incident_id,
            "--kind",
            "kaji-cepat",
            "--kind",
            "berakhir",
            "--format",
            "md",
            "--out",
            str(tmp_path),
            "--json",
        )
        assert out.exit_code == 0, out.output
        result = json.loads(out.output)
        assert result["missing"] == []
        assert result["registry_warning"] is None
    kaji = (tmp_path / f"{ev.incident_id}-kaji-cepat.md").read_text()
    assert "Pendingin presisi gagal (skenario simulasi)" in kaji and "BELUM DICATAT" not in kaji
    berakhir = (tmp_path / f"{ev.incident_id}-berakhir.md").read_text()
    assert wib(restored + timedelta(days=30)) in berakhir
    # The failover's own verification is the restored time the record took by default.
    facts = load_incident(ev.evidence_dir, ev.incident_id)
    assert facts.end is not None and facts.end.restored_at == facts.service_restored_at
    assert "kaji-cepat" in facts.reports_issued
    rows = [r for r in registry.list_incidents(ev.ops_dsn) if r.incident_id == ev.incident_id]
    assert rows and rows[0].end_declared_by == "Budi Santoso"
    assert rows[0].resync_deadline == restored + timedelta(days=30)


def test_a_tampered_ledger_makes_every_document_say_so(
    drill_evidence: DrillEvidence, tmp_path: Path
) -> None:
    ev = drill_evidence
    copy = tmp_path / "evidence"
    shutil.copytree(ev.evidence_dir / ev.incident_id, copy / ev.incident_id)
    ledger = copy / ev.incident_id / "failover" / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"kind":"step.end"' in line)
    record = json.loads(lines[index])
    record["data"]["duration_s"] = 0.001  # someone makes a step look faster
    lines[index] = (
        json.dumps(record, separators=(",", ":"), sort_keys=True, ensure_ascii=False) + "\n"
    )
    ledger.write_text("".join(lines))

    facts, _docs, files = issue_reports(
        copy,
        ev.incident_id,
        formats=["md", "html", "xlsx"],
        out_dir=tmp_path / "out",
        record=False,
    )
    assert not facts.evidence_verified
    for f in files:
        if f.format == "xlsx":
            summary = openpyxl.load_workbook(f.path)["Ringkasan"]
            verdict = next(r[1].value for r in summary.iter_rows() if r[0].value == "Bukti utuh")
            assert verdict is False
            continue
        text = f.path.read_text()
        assert "TIDAK LOLOS VERIFIKASI" in text, f.path
        assert f"seq {record['seq']}" in text, f.path  # the first bad record is named
        if f.format == "html":
            dom = _parse_html(text)
            assert any(
                p.getAttribute("id") == "verification-warning"
                for p in dom.getElementsByTagName("p")
            )


def test_the_registry_is_an_idempotent_index_of_the_ledgers(
    drill_evidence: DrillEvidence,
) -> None:
    ev = drill_evidence
    first = registry.index_incident(ev.ops_dsn, ev.evidence_dir, ev.incident_id)
    second = registry.index_incident(ev.ops_dsn, ev.evidence_dir, ev.incident_id)
    assert first == second
    rows = registry.rescan(ev.ops_dsn, ev.evidence_dir)
    incidents = sorted(d.name for d in ev.evidence_dir.iterdir() if d.is_dir())
    assert sorted(r.incident_id for r in rows) == incidents and ev.incident_id in incidents
    (row,) = [r for r in registry.list_incidents(ev.ops_dsn) if r.incident_id == ev.incident_id]
    assert row.is_drill and row.category == "katastropik" and row.declared_by == ev.declared_by
    assert row.declared_at == datetime.fromisoformat(ev.failover["declared_at"])
    assert row.achieved_rto_s == ev.failover["achieved_rto_s"]
    assert row.evidence_verified
    flows = {ledger.name: ledger for ledger in row.ledgers}
    assert {"failover", "resync", "failback"} <= set(flows)
    assert flows["failover"].head == _heads(ev)["failover"]
    assert flows["failover"].flow_run_ids  # the Prefect run that wrote it
    listed = _cli_json("incidents", "--json", evidence=ev)
    assert any(r["incident_id"] == ev.incident_id and r["is_drill"] for r in listed)


def _cli_json(*args: str, evidence: DrillEvidence) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRP_EVIDENCE_DIR", str(evidence.evidence_dir))
        mp.setenv("DRP_LAB_ROOT", str(evidence.lab.cfg.root))
        result = _cli(*args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def test_the_reports_flow_publishes_each_document_as_an_artifact(
    drill_evidence: DrillEvidence, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    ev = drill_evidence
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRP_EVIDENCE_DIR", str(ev.evidence_dir))
        mp.setenv("DRP_LAB_ROOT", str(ev.lab.cfg.root))
        result = load("reports").reports(
            incident_id=ev.incident_id,
            kinds=["simulasi", "pasca"],
            formats=["md", "html"],
            out_dir=str(tmp_path),
        )
    assert result["evidence_verified"] and result["registry_warning"] is None
    assert sorted((f["kind"], f["format"]) for f in result["files"]) == [
        ("pasca", "html"),
        ("pasca", "md"),
        ("simulasi", "html"),
        ("simulasi", "md"),
    ]
    keys = [
        f"report-simulasi-{ev.incident_id}",
        f"report-pasca-{ev.incident_id}",
        f"reports-{ev.incident_id}",
    ]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    # Keyed artifacts keep their history (the drill's flows published earlier versions): the
    # latest version of each key is this run's.
    by_key = {a.key: a for a in sorted(found, key=lambda a: a.created)}
    assert set(by_key) == set(keys)
    assert "LAPORAN SIMULASI DAN UJI COBA" in str(by_key[keys[0]].data)
    assert ev.incident_id in str(by_key[keys[0]].data)
    table = by_key[keys[2]].data
    table_text = table if isinstance(table, str) else json.dumps(table)
    assert all(f["sha256"] in table_text for f in result["files"])


def test_compliance_and_kpi_read_the_registry(
    drill_evidence: DrillEvidence, tmp_path: Path
) -> None:
    ev = drill_evidence
    registry.index_incident(ev.ops_dsn, ev.evidence_dir, ev.incident_id)
    status = _cli_json("compliance", "--runbook", RUNBOOK, "--json", evidence=ev)
    obligations = {o["id"]: o for o in status["obligations"]}
    assert obligations["drill"]["met"] is True
    drills = [d.name for d in ev.evidence_dir.iterdir() if d.is_dir()]
    assert any(d in obligations["drill"]["reason"] for d in drills), obligations["drill"]
    assert obligations["internalisation"]["met"] is False  # none recorded in this evidence
    assert "drp record internalisation" in obligations["internalisation"]["reason"]
    assert set(obligations) == {
        "drill",
        "internalisation",
        "resync",
        "post_report",
        "continuity_plan",
    }

    year = datetime.fromisoformat(ev.failover["declared_at"]).year
    monitored = tmp_path / "kpi.yaml"
    monitored.write_text(
        "services:\n"
        "  - {id: skp, name: SKP, high_availability: true, sources: [dc, drc]}\n"
        "outages:\n"
        f"  - {{service: skp, start: '{year}-03-01T10:00:00+07:00',"
        f" end: '{year}-03-01T11:00:00+07:00', source: dc}}\n"
        f"  - {{service: skp, start: '{year}-03-01T10:30:00+07:00',"
        f" end: '{year}-03-01T10:45:00+07:00', source: drc}}\n"
    )
    kpi = _cli_json(
        "kpi",
        "--year",
        str(year),
        "--runbook",
        RUNBOOK,
        "--input",
        str(monitored),
        "--out",
        str(tmp_path),
        "--json",
        evidence=ev,
    )
    (skp,) = kpi["services"]
    # The drill is planned: it never counts. HA: the lowest source (drc, 15 min) counts.
    assert skp["downtime_minutes"] == 15.0
    assert skp["per_source_minutes"] == {"dc": 60.0, "drc": 15.0}
    html = (tmp_path / f"kpi-{year}.html").read_text()
    dom = _parse_html(html)
    bars = [r for r in dom.getElementsByTagName("rect") if r.getAttribute("class") == "kpi-bar"]
    assert float(bars[0].getAttribute("data-percent")) == pytest.approx(skp["percent"])
