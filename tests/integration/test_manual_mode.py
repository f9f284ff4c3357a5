"""Manual mode against a real PostgreSQL (ops-db, schema ``manual``; and an SKP database with
the lab stand-in's schema): intake of real .xlsx/.xls files, every malformed case located and
nothing half registered, numbers without gaps under 20 concurrent submitters, notes, the
served list, and the resync into SKP with its 30-day deadline.

One PostgreSQL for the module, on ``DRP_TEST_PORT_BASE + 853`` (this module's own range), so it
never meets the session lab of the other integration tests.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlwt
from msoffcrypto.format.ooxml import OOXMLFile
from xlwt.CompoundDoc import XlsDoc

from drp.adapters import manual_store as store
from drp.adapters import postgres as pg
from drp.adapters import spreadsheets as ss
from drp.data.manual_samples import declarations
from drp.domain.manual.fields import FORMS, HEADER_SHEET, ITEMS_SHEET, DocType
from drp.domain.manual.workbook import Limits
from drp.lab.config import APP_DATABASE, OPS_DATABASE
from drp.lab.core import Lab
from drp.lab.pgcluster import SKP_SCHEMA
from drp.ledger import Ledger, read_records, verify_ledger
from drp.tasks import manual as steps
from drp.tasks import manual_resync
from drp.topology import Topology

pytestmark = pytest.mark.integration

PORT_BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 850
OFFICE = "040300"
INCIDENT = "inc-manual-it"
TODAY = date(2026, 11, 20)  # the samples' document date; "now" below is after it


@dataclass(frozen=True)
class Env:
    cfg: steps.ManualConfig
    skp_dsn: str
    root: Path


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="drp-manual-it-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    ops = lab.cluster("ops-db")
    try:
        lab.cfg.root.mkdir(parents=True, exist_ok=True)
        os.chmod(lab.cfg.root, 0o755)
        ops.initdb()
        ops.start()
        ops.ensure_database(OPS_DATABASE)
        ops.ensure_database(APP_DATABASE)
        skp_dsn = ops.dsn(APP_DATABASE)
        pg.query(skp_dsn, SKP_SCHEMA)
        cfg = steps.ManualConfig(
            ops_dsn=ops.dsn(OPS_DATABASE),
            evidence_dir=root / "evidence",
            requirements=steps.load_requirements(None),
            numbers=steps.load_number_format(None),
            limits=Limits(max_bytes=256 * 1024),
            known_secrets=(lab.password(),),
        )
        steps.activate(cfg, INCIDENT, [OFFICE, "050100"], ["pib", "peb"], "it-operator")
        yield Env(cfg, skp_dsn, root)
    finally:
        ops.stop(mode="fast")
        shutil.rmtree(root, ignore_errors=True)


def _write(root: Path, name: str, doc: DocType, fmt: str, headers, items) -> Path:
    folder = root / "files"
    folder.mkdir(exist_ok=True)
    return ss.write_workbook(folder / name, doc, fmt, headers, items)


def _totals(cfg: steps.ManualConfig) -> tuple[int, list[tuple[Any, ...]]]:
    declared = store.counts(cfg.ops_dsn)["declarations"]
    counters = pg.query(cfg.ops_dsn, "SELECT office, doc_type, year, last_seq FROM manual.counters")
    return declared, sorted(counters)


# -- the happy path, both formats ---------------------------------------------------------------
@pytest.mark.parametrize(("doc", "fmt"), [(d, f) for d in DocType for f in ("xlsx", "xls")])
def test_a_filled_template_is_registered_with_sequential_numbers(env: Env, doc, fmt) -> None:
    headers, items = declarations(3, doc, prefix=f"OK{fmt.upper()}")
    path = _write(env.root, f"ok-{doc.value}.{fmt}", doc, fmt, headers, items)
    outcome = steps.submit(env.cfg, path, OFFICE, "clerk")
    assert outcome.ok, [str(p) for p in outcome.problems]
    numbers = [r["registration_number"] for r in outcome.registered]
    parsed = [env.cfg.numbers.parse(n) for n in numbers]
    seqs = [p[3] for p in parsed if p]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    assert all(p and p[0] == OFFICE and p[1] is doc for p in parsed)
    stored = store.declaration(env.cfg.ops_dsn, numbers[0])
    assert stored is not None and stored.nomor_aju == headers[0]["nomor_aju"]
    assert stored.record["items"][0]["kode_hs"] == "84713010"
    assert store.file_content(env.cfg.ops_dsn, outcome.file_sha256) == path.read_bytes()
    assert verify_ledger(outcome.ledger).ok


# -- malformed input ----------------------------------------------------------------------------
Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Case:
    id: str
    expect: tuple[str, str | None, int | None, str | None]  # code, sheet, row, column
    doc: DocType = DocType.PIB
    fmt: str = "xlsx"
    name: str | None = None  # the file name (extension) when it differs
    mutate: Callable[[Rows], None] | None = None
    post: Callable[[Path], bytes] | None = None  # rewrite the written file, return its bytes
    office: str = OFFICE
    max_bytes: int | None = None  # a smaller limit for this case (keeps the test file small)


def _set(sheet_rows: str, index: int, key: str, value: Any) -> Callable[[Rows], None]:
    def change(rows: Rows) -> None:
        rows[0 if sheet_rows == "h" else 1][index][key] = value

    return change


def _xlsx_edit(edit: Callable[[openpyxl.Workbook], None]) -> Callable[[Path], bytes]:
    def post(path: Path) -> bytes:
        book = openpyxl.load_workbook(path)
        edit(book)
        book.save(path)
        return path.read_bytes()

    return post


def _rename_sheet(old: str, new: str) -> Callable[[Path], bytes]:
    return _xlsx_edit(lambda b: setattr(b[old], "title", new))


def _header_cell(column: str, text: str) -> Callable[[Path], bytes]:
    return _xlsx_edit(lambda b: b[HEADER_SHEET].__setitem__(f"{column}1", text))


def _merge(ref: str) -> Callable[[Path], bytes]:
    return _xlsx_edit(lambda b: b[HEADER_SHEET].merge_cells(ref))


def _cell(sheet: str, ref: str, value: Any) -> Callable[[Path], bytes]:
    return _xlsx_edit(lambda b: b[sheet].__setitem__(ref, value))


def _delete_column(sheet: str, index: int) -> Callable[[Path], bytes]:
    return _xlsx_edit(lambda b: b[sheet].delete_cols(index))


def _bytes(data: bytes) -> Callable[[Path], bytes]:
    def post(path: Path) -> bytes:
        path.write_bytes(data)
        return data

    return post


def _encrypt_xlsx(path: Path) -> bytes:
    plain = path.read_bytes()
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(plain)).encrypt("rahasia", out)
    path.write_bytes(out.getvalue())
    return out.getvalue()


def _encrypt_xls(path: Path) -> bytes:
    """An .xls whose workbook globals carry a FILEPASS record (RC4), as Excel writes one."""
    book = xlwt.Workbook()
    book.add_sheet(HEADER_SHEET).write(0, 0, "Nomor Aju *")
    biff = book.get_biff_data()
    bof_end = 4 + struct.unpack_from("<H", biff, 2)[0]
    filepass = struct.pack("<HHHHH", 0x002F, 54, 1, 1, 1) + bytes(48)
    stream = biff[:bof_end] + filepass + biff[bof_end:]
    out = io.BytesIO()
    XlsDoc().save(out, stream)
    path.write_bytes(out.getvalue())
    return out.getvalue()


def _xls_with_formula_and_merge(path: Path) -> bytes:
    """A PIB .xls whose Nilai CIF is a formula and whose name cells are merged (xlwt)."""
    headers, items = declarations(1, DocType.PIB, prefix="XLSFM")
    ss.write_workbook(path, DocType.PIB, "xls", headers, items)
    form = FORMS[DocType.PIB]
    book = xlwt.Workbook()
    for name, fields, rows in (
        (HEADER_SHEET, form.header, headers),
        (ITEMS_SHEET, form.items, items),
    ):
        ws = book.add_sheet(name)
        for c, spec in enumerate(fields):
            ws.write(0, c, spec.label)
            for r, row in enumerate(rows, start=1):
                value = row.get(spec.key)
                if value is None:
                    continue
                if name == HEADER_SHEET and spec.key == "nilai_cif":
                    ws.write(r, c, xlwt.Formula("1250.5+2501"))
                elif isinstance(value, date):
                    ws.write(r, c, value, xlwt.easyxf(num_format_str="YYYY-MM-DD"))
                elif isinstance(value, Decimal):
                    ws.write(r, c, float(value))
                else:
                    ws.write(r, c, value)
    book.save(str(path))
    return path.read_bytes()


def _xls_merged(path: Path) -> bytes:
    headers, items = declarations(1, DocType.PIB, prefix="XLSMG")
    form = FORMS[DocType.PIB]
    book = xlwt.Workbook()
    for name, fields, rows in (
        (HEADER_SHEET, form.header, headers),
        (ITEMS_SHEET, form.items, items),
    ):
        ws = book.add_sheet(name)
        for c, spec in enumerate(fields):
            ws.write(0, c, spec.label)
            for r, row in enumerate(rows, start=1):
                value = row.get(spec.key)
                if name == HEADER_SHEET and spec.key in ("nama", "tanggal_dokumen"):
                    continue
                if isinstance(value, date):
                    value = value.isoformat()
                ws.write(r, c, float(value) if isinstance(value, Decimal) else value)
        if name == HEADER_SHEET:
            ws.write_merge(1, 1, 4, 5, "PT Gabungan")
    book.save(str(path))
    return path.read_bytes()


def _docx_like() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    return out.getvalue()


def _big(path: Path) -> bytes:
    headers, items = declarations(120, DocType.PIB, prefix="BIG", items=3)
    ss.write_workbook(path, DocType.PIB, "xlsx", headers, items)
    return path.read_bytes()


def _plain_number_date(book: openpyxl.Workbook) -> None:
    cell = book[HEADER_SHEET]["F2"]
    cell.value, cell.number_format = 46346, "General"


def _orphan(rows: Rows) -> None:
    rows[1][0]["nomor_aju"] = "NOSUCHAJU1"


def _no_items(rows: Rows) -> None:
    del rows[1][0:2]


def _twin_aju(rows: Rows) -> None:
    rows[0][1]["nomor_aju"] = rows[0][0]["nomor_aju"]
    for item in rows[1][2:]:
        item["nomor_aju"] = rows[0][0]["nomor_aju"]
        item["seri"] += 2
    rows[0][0]["nilai_cif"] = sum((i["nilai"] for i in rows[1]), Decimal(0))


def _twin_seri(rows: Rows) -> None:
    rows[1][1]["seri"] = 1


def _idr_rate(rows: Rows) -> None:
    rows[0][0]["valuta"] = "IDR"
    rows[0][0]["kurs"] = Decimal(15000)


def _closing_before(rows: Rows) -> None:
    rows[0][0]["waktu_closing"] = datetime(2026, 11, 1, 10, 0)


CASES = [
    Case(
        "missing-header-sheet",
        ("sheet.missing", "HEADER", None, None),
        post=_rename_sheet("HEADER", "Sheet1"),
    ),
    Case(
        "missing-items-sheet",
        ("sheet.missing", "BARANG", None, None),
        post=_rename_sheet("BARANG", "ITEMS"),
    ),
    Case(
        "missing-required-column",
        ("header.missing", "HEADER", 1, None),
        post=_delete_column(HEADER_SHEET, 3),
    ),
    Case(
        "duplicate-column", ("header.duplicate", "HEADER", 1, "E"), post=_header_cell("E", "NPWP")
    ),
    Case(
        "neither-cif-nor-fob",
        ("header.doc_type", "HEADER", 1, None),
        post=_header_cell("L", "Nilai"),
    ),
    Case(
        "rate-as-text",
        ("cell.not_a_number", "HEADER", 2, "K"),
        mutate=_set("h", 0, "kurs", "15.750,25"),
    ),
    Case(
        "quantity-as-words",
        ("cell.not_a_number", "BARANG", 3, "E"),
        mutate=_set("i", 1, "jumlah", "sepuluh"),
    ),
    Case(
        "formula-in-total",
        ("cell.formula", "HEADER", 2, "L"),
        mutate=_set("h", 0, "nilai_cif", "=SUM(BARANG!H2:H3)"),
    ),
    Case(
        "formula-in-xls",
        ("cell.formula", "HEADER", 2, "L"),
        fmt="xls",
        post=_xls_with_formula_and_merge,
    ),
    Case("merged-cells", ("cell.merged", "HEADER", 2, "E"), post=_merge("E2:F2")),
    Case("merged-cells-xls", ("cell.merged", "HEADER", 2, "E"), fmt="xls", post=_xls_merged),
    Case(
        "date-as-text",
        ("cell.date_as_text", "HEADER", 2, "F"),
        mutate=_set("h", 0, "tanggal_dokumen", "2026-11-20"),
    ),
    Case(
        "date-as-plain-number",
        ("cell.not_a_date", "HEADER", 2, "F"),
        post=_xlsx_edit(_plain_number_date),
    ),
    Case(
        "npwp-check-digit",
        ("cell.npwp", "HEADER", 2, "C"),
        mutate=_set("h", 0, "npwp", "01.312.166.1-091.000"),
    ),
    Case("npwp-too-short", ("cell.npwp", "HEADER", 3, "C"), mutate=_set("h", 1, "npwp", "0131216")),
    Case(
        "hs-seven-digits", ("cell.hs", "BARANG", 2, "C"), mutate=_set("i", 0, "kode_hs", "8471301")
    ),
    Case(
        "hs-no-such-chapter",
        ("cell.hs", "BARANG", 3, "C"),
        mutate=_set("i", 1, "kode_hs", "9901.00.00"),
    ),
    Case(
        "office-lost-its-zero",
        ("cell.office", "HEADER", 2, "B"),
        post=_cell(HEADER_SHEET, "B2", 40300),
    ),
    Case(
        "office-differs",
        ("row.office", "HEADER", 2, "B"),
        mutate=_set("h", 0, "kode_kantor", "050100"),
    ),
    Case(
        "total-does-not-add-up",
        ("row.total", "HEADER", 2, "L"),
        mutate=_set("h", 0, "nilai_cif", Decimal("999.99")),
    ),
    Case("duplicate-nomor-aju", ("row.duplicate", "HEADER", 3, "A"), mutate=_twin_aju),
    Case("duplicate-item-number", ("item.duplicate", "BARANG", 3, "B"), mutate=_twin_seri),
    Case("item-of-no-declaration", ("item.orphan", "BARANG", 2, "A"), mutate=_orphan),
    Case("declaration-without-items", ("row.no_items", "HEADER", 2, "A"), mutate=_no_items),
    Case("required-empty", ("cell.required", "HEADER", 2, "E"), mutate=_set("h", 0, "nama", None)),
    Case(
        "unknown-currency",
        ("cell.currency", "HEADER", 2, "J"),
        mutate=_set("h", 0, "valuta", "USX"),
    ),
    Case(
        "port-not-unlocode",
        ("cell.port", "HEADER", 2, "G"),
        mutate=_set("h", 0, "pelabuhan_muat", "JAKARTA"),
    ),
    Case(
        "import-unloaded-abroad",
        ("row.port", "HEADER", 2, "H"),
        mutate=_set("h", 0, "pelabuhan_bongkar", "SGSIN"),
    ),
    Case(
        "prohibited-goods",
        ("item.prohibited", "BARANG", 2, "C"),
        mutate=_set("i", 0, "kode_hs", "9301.10.00"),
    ),
    Case(
        "restricted-without-permit",
        ("item.permit_missing", "BARANG", 3, "I"),
        mutate=_set("i", 1, "kode_hs", "1006.30.00"),
    ),
    Case(
        "document-dated-in-the-future",
        ("row.future_date", "HEADER", 2, "F"),
        mutate=_set("h", 0, "tanggal_dokumen", date(2031, 1, 1)),
    ),
    Case("idr-with-a-rate", ("row.rate", "HEADER", 2, "K"), mutate=_idr_rate),
    Case(
        "closing-before-document",
        ("row.closing", "HEADER", 2, "M"),
        doc=DocType.PEB,
        mutate=_closing_before,
    ),
    Case(
        "negative-item-value",
        ("cell.negative", "BARANG", 2, "H"),
        mutate=_set("i", 0, "nilai", Decimal("-5")),
    ),
    Case(
        "fractional-item-number",
        ("cell.not_integer", "BARANG", 2, "B"),
        mutate=_set("i", 0, "seri", Decimal("1.5")),
    ),
    Case(
        "error-value", ("cell.error", "HEADER", 2, "K"), post=_cell(HEADER_SHEET, "K2", "#DIV/0!")
    ),
    Case(
        "boolean-as-name",
        ("cell.wrong_type", "HEADER", 2, "E"),
        post=_cell(HEADER_SHEET, "E2", True),
    ),
    Case(
        "template-not-filled",
        ("sheet.no_rows", "HEADER", 2, None),
        mutate=lambda r: (r[0].clear(), r[1].clear()),
    ),
    Case("empty-file", ("file.empty", None, None, None), post=_bytes(b"")),
    Case(
        "csv-named-xls",
        ("file.not_spreadsheet", None, None, None),
        name="csv.xls",
        post=_bytes(b"nomor_aju,npwp\nA1,0131\n"),
    ),
    Case(
        "pdf-named-xlsx",
        ("file.not_spreadsheet", None, None, None),
        post=_bytes(b"%PDF-1.7\n%\xe2\xe3\n1 0 obj\n"),
    ),
    Case("docx-named-xlsx", ("file.not_spreadsheet", None, None, None), post=_bytes(_docx_like())),
    Case("xlsx-renamed-xls", ("file.renamed", None, None, None), name="renamed.xls"),
    Case("xls-renamed-xlsx", ("file.renamed", None, None, None), fmt="xls", name="renamed.xlsx"),
    Case("csv-extension", ("file.extension", None, None, None), name="data.csv"),
    Case("password-protected-xlsx", ("file.encrypted", None, None, None), post=_encrypt_xlsx),
    Case(
        "password-protected-xls", ("file.encrypted", None, None, None), fmt="xls", post=_encrypt_xls
    ),
    Case("very-large-file", ("file.too_large", None, None, None), post=_big, max_bytes=16 * 1024),
    Case("office-not-in-manual-mode", ("intake.closed", None, None, None), office="060100"),
]


def _build(env: Env, case: Case, n: int) -> Path:
    headers, items = declarations(2, case.doc, prefix=f"M{n:02d}")
    if case.mutate:
        case.mutate((headers, items))
    ext = case.fmt
    path = _write(env.root, f"{case.id}.{ext}", case.doc, case.fmt, headers, items)
    if case.post:
        case.post(path)
    if case.name:
        renamed = path.with_name(f"{case.id}-{case.name}")
        path.rename(renamed)
        path = renamed
    return path


def test_there_are_at_least_thirty_malformed_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_located_registers_nothing_and_keeps_the_original(
    env: Env, case: Case
) -> None:
    path = _build(env, case, CASES.index(case))
    data = path.read_bytes()
    before = _totals(env.cfg)
    cfg = env.cfg
    if case.max_bytes:
        assert len(data) > case.max_bytes
        cfg = replace(cfg, limits=Limits(max_bytes=case.max_bytes))
    outcome = steps.submit(cfg, path, case.office, "clerk")
    assert outcome.status == "rejected" and outcome.registered == ()
    code, sheet, row, column = case.expect
    matching = [p for p in outcome.problems if p.code == code]
    assert matching, f"expected {code}, got {[str(p) for p in outcome.problems]}"
    problem = matching[0]
    assert (problem.sheet, problem.row, problem.column) == (sheet, row, column), str(problem)
    assert problem.hint  # every problem says what to do
    text = str(problem)
    if sheet:
        assert f"sheet {sheet}" in text
    if row and column:
        assert f"cell {column}{row}" in text
    # nothing half registered: no declaration, no number consumed
    assert _totals(env.cfg) == before
    # the original is kept, byte for byte, in ops-db and in the ledger
    assert hashlib.sha256(data).hexdigest() == outcome.file_sha256
    assert store.file_content(env.cfg.ops_dsn, outcome.file_sha256) == data
    saved = store.submission(env.cfg.ops_dsn, outcome.submission_id)
    assert saved is not None and saved["status"] == "rejected" and saved["problems"]
    kinds = [r.kind for _, r in read_records(outcome.ledger) if not isinstance(r, str)]
    assert "manual.submission.rejected" in kinds
    if data:
        assert (Path(outcome.ledger) / "attachments" / outcome.file_sha256).read_bytes() == data


def test_a_file_sent_twice_and_a_nomor_aju_sent_again_are_refused(env: Env) -> None:
    headers, items = declarations(2, DocType.PEB, prefix="DUP")
    path = _write(env.root, "dup.xlsx", DocType.PEB, "xlsx", headers, items)
    first = steps.submit(env.cfg, path, OFFICE)
    assert first.ok
    before = _totals(env.cfg)
    again = steps.submit(env.cfg, path, OFFICE)
    assert [p.code for p in again.problems] == ["file.duplicate"]
    other = _write(env.root, "dup-other.xls", DocType.PEB, "xls", headers[1:], items[2:])
    resent = steps.submit(env.cfg, other, OFFICE)
    (problem,) = resent.problems
    assert (problem.code, problem.sheet, problem.row, problem.column) == (
        "row.already_registered",
        "HEADER",
        2,
        "A",
    )
    assert first.registered[1]["registration_number"] in problem.message
    assert _totals(env.cfg) == before


def test_a_rejected_declaration_consumes_no_number(env: Env) -> None:
    def send(tag: str, bad: bool = False) -> steps.SubmitOutcome:
        headers, items = declarations(1, DocType.PIB, office="050100", prefix=tag)
        if bad:
            headers[0]["npwp"] = "123"
        return steps.submit(
            env.cfg, _write(env.root, f"{tag}.xlsx", DocType.PIB, "xlsx", headers, items), "050100"
        )

    first, rejected, third = send("GAPA"), send("GAPB", bad=True), send("GAPC")
    assert first.ok and not rejected.ok and third.ok
    a = env.cfg.numbers.parse(first.registered[0]["registration_number"])
    c = env.cfg.numbers.parse(third.registered[0]["registration_number"])
    assert a and c and c[3] == a[3] + 1


def test_twenty_concurrent_submitters_get_no_duplicate_and_no_gap(env: Env) -> None:
    office = "050100"
    files = []
    for n in range(40):
        headers, items = declarations(3, DocType.PEB, office=office, prefix=f"C{n:02d}")
        if n % 10 == 3:
            items[0]["kode_hs"] = "2604.00.00"  # prohibited export: rejected, no number
        files.append(_write(env.root, f"conc-{n}.xlsx", DocType.PEB, "xlsx", headers, items))
    # the same nomor aju raced by two submitters: exactly one wins
    headers, items = declarations(2, DocType.PEB, office=office, prefix="RACE")
    files.append(_write(env.root, "race-a.xlsx", DocType.PEB, "xlsx", headers, items))
    files.append(_write(env.root, "race-b.xls", DocType.PEB, "xls", headers, items))
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda p: steps.submit(env.cfg, p, office, "clerk"), files))
    registered = [r for o in outcomes for r in o.registered]
    assert sum(1 for o in outcomes if not o.ok) == 5  # 4 prohibited + 1 loser of the race
    numbers = [r["registration_number"] for r in registered]
    assert len(numbers) == len(set(numbers)) == 36 * 3 + 2
    year = env.cfg.numbers.parse(numbers[0])[2]  # type: ignore[index]
    seqs, counter = store.sequences(env.cfg.ops_dsn, office, "PEB", year)
    assert seqs == list(range(1, len(seqs) + 1)), "gap or duplicate in the sequence"
    assert counter == len(seqs)


# -- queue, notes, served, berita acara input ------------------------------------------------
def test_queue_orders_exports_by_closing_time_and_serving_removes_them(env: Env) -> None:
    ranked = steps.work_queue(env.cfg, office=OFFICE, now=datetime(2026, 11, 20, tzinfo=UTC))
    kinds = [r.entry.doc_type for r in ranked]
    assert kinds == sorted(kinds, key=lambda d: 0 if d is DocType.PEB else 1)
    closings = [r.entry.closing_time for r in ranked if r.entry.closing_time]
    assert closings == sorted(closings) and closings
    first = ranked[0].entry.registration_number
    proof = env.root / "sppb-scan.pdf"
    proof.write_bytes(b"%PDF-1.4 signed hard copy")
    served = steps.serve(env.cfg, first, "petugas-a", [proof], note="diperiksa")
    assert served["evidence"][0]["sha256"] == hashlib.sha256(proof.read_bytes()).hexdigest()
    after = steps.work_queue(env.cfg, office=OFFICE)
    assert first not in [r.entry.registration_number for r in after]


def test_a_note_to_another_office_is_stored_and_sent_through_the_notifier(env: Env) -> None:
    number = steps.work_queue(env.cfg, office=OFFICE)[0].entry.registration_number
    saved = steps.send_note(
        env.cfg, number, to_office="050100", text="Mohon periksa fisik", author="budi"
    )
    assert store.notes(env.cfg.ops_dsn, number)[-1]["text"] == "Mohon periksa fisik"
    records = [r for _, r in read_records(saved["ledger"]) if not isinstance(r, str)]
    sent = [r for r in records if r.kind == "notification"]
    assert sent and sent[0].data["to_office"] == "050100" and number in sent[0].data["text"]
    with pytest.raises(steps.ManualModeError, match="SKP number"):
        steps.send_note(env.cfg, "000123", to_office="050100", text="x", author="budi")


def test_served_documents_feed_the_berita_acara_and_export_as_xlsx(env: Env) -> None:
    documents = store.served_documents(env.cfg.ops_dsn, INCIDENT)
    assert documents and all(d.file_sha256 for d in documents)
    served = [d for d in documents if d.status == "dilayani"]
    assert served and served[0].served_evidence[0]["name"] == "sppb-scan.pdf"
    assert any(d.notes for d in documents)
    out = env.root / "served.xlsx"
    result = steps.export_served(env.cfg, INCIDENT, out)
    sheet = openpyxl.load_workbook(out)["DOKUMEN DILAYANI"]
    assert sheet["A3"].value == "Nomor Pendaftaran Manual"
    listed = {sheet.cell(row=r, column=1).value for r in range(4, sheet.max_row + 1)}
    assert listed == {d.registration_number for d in documents}
    assert result["served"] == len(served)


# -- resync into SKP (Pasal 11) --------------------------------------------------------------------
def _topology(skp_dsn: str) -> Topology:
    return Topology(inventories=(), primary_dsn=skp_dsn, standby_dsn="", frontdoor_url="")


def test_resync_writes_into_skp_once_keeps_both_numbers_and_reports_conflicts(env: Env) -> None:
    incident = "inc-resync-it"
    steps.activate(env.cfg, incident, ["060200"], ["pib"], "it-operator")
    headers, items = declarations(3, DocType.PIB, office="060200", prefix="RS")
    outcome = steps.submit(
        env.cfg, _write(env.root, "rs.xlsx", DocType.PIB, "xlsx", headers, items), "060200"
    )
    assert outcome.ok
    # SKP already holds the third nomor aju, registered by SKP itself
    pg.query(
        env.skp_dsn,
        "INSERT INTO declarations (nomor_aju, doc_type, office, site) VALUES (%s, 'PIB', %s, 'dc')",
        (headers[2]["nomor_aju"], "060200"),
    )
    restored = datetime(2026, 11, 1, 8, tzinfo=UTC)
    failover = Ledger.create(env.cfg.evidence_dir / incident / "failover", incident, {})
    failover.append("failover.completed", {"status": "verified"})
    failover.close({})
    first_ts = next(
        r.ts for _, r in read_records(failover.directory) if r.kind == "failover.completed"
    )
    now = datetime.fromisoformat(first_ts.replace("Z", "+00:00")) + timedelta(days=27, hours=1)
    report = manual_resync.resync_declarations(env.cfg, _topology(env.skp_dsn), incident, now=now)
    assert report["restored_from"].startswith("failover ledger")
    assert report["status"] == "incomplete"
    assert [s["registration_number"] for s in report["synced"]] == [
        r["registration_number"] for r in outcome.registered[:2]
    ]
    (conflict,) = report["not_synced"]
    assert "registered by SKP itself" in conflict["reason"]
    assert report["alerts"] == ["3d"] and report["deadline_level"] == "nearing"
    rows = pg.query(
        env.skp_dsn,
        "SELECT id, nomor_pendaftaran_manual FROM declarations WHERE nomor_aju = ANY(%s)"
        " ORDER BY id",
        ([h["nomor_aju"] for h in headers[:2]],),
    )
    assert [r[1] for r in rows] == [r["registration_number"] for r in outcome.registered[:2]]
    stored = store.declaration(env.cfg.ops_dsn, outcome.registered[0]["registration_number"])
    assert stored is not None and stored.skp_id == rows[0][0] and stored.skp_status == "synced"
    # again: idempotent, and the 3-day alert is not repeated
    again = manual_resync.resync_declarations(env.cfg, _topology(env.skp_dsn), incident, now=now)
    assert again["synced"] == [] and len(again["already"]) == 2 and again["alerts"] == []
    count = pg.query(env.skp_dsn, "SELECT count(*) FROM declarations WHERE nomor_aju LIKE 'RS%'")
    assert count[0][0] == 3
    del restored


def test_resync_without_a_writable_skp_database_says_why_nothing_was_synchronised(
    env: Env,
) -> None:
    incident = "inc-resync-down"
    steps.activate(env.cfg, incident, ["060300"], ["peb"], "it-operator")
    headers, items = declarations(2, DocType.PEB, office="060300", prefix="DOWN")
    path = _write(env.root, "down.xls", DocType.PEB, "xls", headers, items)
    assert steps.submit(env.cfg, path, "060300").ok
    closed_port = f"host=127.0.0.1 port={PORT_BASE + 49} dbname=skp user=drp connect_timeout=1"
    report = manual_resync.resync_declarations(
        env.cfg,
        _topology(closed_port),
        incident,
        restored_at="2026-11-01T08:00:00+07:00",
        now=datetime(2026, 12, 2, tzinfo=UTC),
    )
    assert report["status"] == "incomplete" and report["synced"] == []
    assert len(report["not_synced"]) == 2 and all(
        "no SKP database takes writes" in n["reason"] for n in report["not_synced"]
    )
    assert report["deadline_level"] == "overdue" and report["alerts"] == ["overdue"]


def test_a_replaced_requirements_table_and_number_format_are_used(env: Env, tmp_path: Path) -> None:
    table = tmp_path / "lartas.csv"
    table.write_text(
        "hs_prefix,direction,status,authority,description\n8471,import,prohibited,Test,laptops\n"
    )
    fmt = tmp_path / "numbers.yaml"
    fmt.write_text('pattern: "MNL-{type}-{office}-{year}-{seq:07d}"\n')
    cfg = replace(
        env.cfg,
        requirements=steps.load_requirements(table),
        numbers=steps.load_number_format(fmt),
    )
    headers, items = declarations(1, DocType.PIB, prefix="REQ")
    refused = steps.submit(
        cfg, _write(env.root, "req.xlsx", DocType.PIB, "xlsx", headers, items), OFFICE
    )
    assert [p.code for p in refused.problems] == ["item.prohibited"]
    headers, items = declarations(1, DocType.PEB, office="050100", prefix="FMT")
    taken = steps.submit(
        cfg, _write(env.root, "fmt.xls", DocType.PEB, "xls", headers, items), "050100"
    )
    assert taken.ok and taken.registered[0]["registration_number"].startswith("MNL-PEB-050100-")
    bad = tmp_path / "bad.yaml"
    bad.write_text('pattern: "{seq}"\n')
    with pytest.raises(steps.ManualModeError, match="exactly once"):
        steps.load_number_format(bad)
