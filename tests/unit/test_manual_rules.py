"""Manual-mode rules (drp.domain.manual): codes, numbers, requirements, queue, deadline, and the
validation of a workbook built in memory (no file, no database)."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import drp.domain.manual as manual_pkg
from drp.data.manual_samples import declarations, npwp_for
from drp.domain.manual import codes
from drp.domain.manual.deadline import alerts_due, resync_deadline
from drp.domain.manual.fields import FORMS, HEADER_SHEET, ITEMS_SHEET, DocType
from drp.domain.manual.numbering import NumberFormatError, number_format
from drp.domain.manual.requirements import (
    RequirementsError,
    Status,
    parse_requirements,
)
from drp.domain.manual.validation import validate_workbook
from drp.domain.manual.workbook import Cell, CellKind, Limits, MergedRange, Sheet, Workbook
from drp.domain.manual.worklist import QueueEntry, order_queue

pytestmark = pytest.mark.unit

SAMPLE_TABLE = Path(__file__).resolve().parents[2] / "src/drp/data/manual_requirements.csv"
TODAY = date(2026, 11, 23)


def _table():
    return parse_requirements(SAMPLE_TABLE.read_text(), "sample.csv")


# -- codes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "npwp", ["01.312.166.0-091.000", "016090524017000", "02.183.241.5-000.000", "3171234567890001"]
)
def test_npwp_with_a_correct_check_digit_or_sixteen_digits_passes(npwp: str) -> None:
    assert codes.check_npwp(npwp) is None


@pytest.mark.parametrize(
    ("npwp", "says"),
    [
        ("01.312.166.1-091.000", "check digit"),
        ("01.312.166", "has 8 digits"),
        ("01.312.16A.0-091.000", "characters other than digits"),
    ],
)
def test_npwp_with_a_wrong_digit_length_or_letter_is_refused(npwp: str, says: str) -> None:
    message = codes.check_npwp(npwp)
    assert message is not None and says in message


def test_sample_npwps_carry_a_valid_check_digit() -> None:
    assert all(codes.check_npwp(npwp_for(n)) is None for n in range(1, 200))


@pytest.mark.parametrize(
    ("hs", "ok"),
    [
        ("0101.21.00", True),
        ("84713010", True),
        ("8471301", False),
        ("9901.00.00", False),
        ("7701.00.00", False),
        ("8471.30.1X", False),
    ],
)
def test_hs_codes_are_eight_digits_of_a_real_chapter(hs: str, ok: bool) -> None:
    assert (codes.check_hs(hs) is None) is ok


def test_ports_are_unlocodes_of_a_real_country() -> None:
    assert codes.check_port("IDTPP") is None
    assert codes.check_port("XXTPP") is not None
    assert codes.check_port("JAKARTA") is not None


# -- registration numbers ---------------------------------------------------------------------
def test_default_number_renders_and_reads_back_and_is_not_an_skp_number() -> None:
    fmt = number_format()
    number = fmt.render("040300", DocType.PEB, 2026, 42)
    assert number == "040300/M-PEB/2026/000042"
    assert fmt.parse(number) == ("040300", DocType.PEB, 2026, 42)
    assert not fmt.looks_like_skp(number)
    assert fmt.looks_like_skp("000042") and not fmt.is_manual("000042")


def test_a_configured_format_is_used_as_given() -> None:
    fmt = number_format({"pattern": "MNL.{type}.{office}.{year}.{seq:05d}"})
    assert fmt.render("050100", DocType.PIB, 2027, 7) == "MNL.PIB.050100.2027.00007"
    assert fmt.parse("MNL.PIB.050100.2027.00007") == ("050100", DocType.PIB, 2027, 7)


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"pattern": "{office}/{year}/{seq:06d}"}, "exactly once"),
        ({"pattern": "{office}/{type}/{year}/{seq}/{seq}"}, "exactly once"),
        ({"pattern": "{office}/{type}/{year}/{seq}/{clerk}"}, "unknown placeholder"),
        (
            {"pattern": "{office}-{type}-{year}-{seq}", "skp_pattern": r"^\d{6}-[A-Z]{3}-.*$"},
            "SKP's own numbers",
        ),
        ({"pattern": "{office:_>8}/{type}/{year}/{seq}"}, "cannot be read back"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_a_number_format_that_could_repeat_or_pass_for_skp_is_refused(config, says) -> None:
    with pytest.raises(NumberFormatError, match=says):
        number_format(config)


# -- requirements -----------------------------------------------------------------------------
def test_the_longest_prefix_for_the_direction_decides() -> None:
    table = _table()
    nickel = table.judge("2604.00.00", DocType.PEB)
    assert nickel is not None and nickel.status is Status.PROHIBITED
    assert table.judge("2604.00.00", DocType.PIB) is None  # the ban is on export
    rice = table.judge("1006.30.00", DocType.PIB)
    assert rice is not None and rice.status is Status.RESTRICTED
    medicine = table.judge("3004.90.00", DocType.PEB)
    assert medicine is not None and medicine.authority == "BPOM"
    assert table.judge("8471.30.10", DocType.PIB) is None


def test_a_malformed_requirements_table_names_each_bad_row_and_column() -> None:
    text = (
        "hs_prefix,direction,status,authority,description\n"
        "2604,export,prohibited,ESDM,ok\n"
        "26X,export,banned,,bad\n"
    )
    with pytest.raises(RequirementsError) as caught:
        parse_requirements(text, "mine.csv")
    places = {(p.row, p.column) for p in caught.value.problems}
    assert places == {(3, "hs_prefix"), (3, "status"), (3, "authority")}


def test_a_requirements_table_without_its_columns_is_refused() -> None:
    with pytest.raises(RequirementsError, match="missing column"):
        parse_requirements("code,rule\n2604,ban\n", "mine.csv")


# -- the queue --------------------------------------------------------------------------------
def test_exports_come_first_by_closing_time_then_imports_by_registration() -> None:
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    reg = now - timedelta(hours=5)

    def entry(n: str, doc: DocType, minutes: int, closing_h: float | None = None) -> QueueEntry:
        closing = now + timedelta(hours=closing_h) if closing_h is not None else None
        return QueueEntry(n, doc, "040300", n, reg + timedelta(minutes=minutes), closing)

    ranked = order_queue(
        [
            entry("imp-early", DocType.PIB, 0),
            entry("exp-late", DocType.PEB, 1, closing_h=30),
            entry("imp-late", DocType.PIB, 9),
            entry("exp-soon", DocType.PEB, 5, closing_h=2),
            entry("exp-missed", DocType.PEB, 8, closing_h=-1),
        ],
        now,
    )
    assert [r.entry.registration_number for r in ranked] == [
        "exp-missed",
        "exp-soon",
        "exp-late",
        "imp-early",
        "imp-late",
    ]
    assert [r.urgency for r in ranked] == ["closing-passed", "urgent", "export", "import", "import"]
    assert "closing in 2 h" in ranked[1].reason


# -- the 30-day deadline ----------------------------------------------------------------------
def test_deadline_alerts_fire_once_at_the_tightest_threshold_crossed() -> None:
    restored = datetime(2026, 11, 1, tzinfo=UTC)
    assert alerts_due(resync_deadline(restored, restored + timedelta(days=20)), set()) == []
    late = resync_deadline(restored, restored + timedelta(days=29, hours=1))
    assert late.level == "nearing"
    assert alerts_due(late, set()) == ["1d"]
    assert alerts_due(late, {"1d"}) == []
    over = resync_deadline(restored, restored + timedelta(days=31))
    assert over.overdue and alerts_due(over, {"1d", "3d"}) == ["overdue"]
    assert "passed" in over.sentence()


def test_a_deadline_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="time zone"):
        resync_deadline(datetime(2026, 11, 1), datetime(2026, 11, 2, tzinfo=UTC))


# -- validation of an in-memory workbook ------------------------------------------------------
def _cell(value: object) -> Cell:
    if value is None:
        return Cell(CellKind.EMPTY)
    if isinstance(value, datetime | date):
        return Cell(CellKind.DATE, value)
    if isinstance(value, Decimal | int):
        return Cell(CellKind.NUMBER, Decimal(value))
    if isinstance(value, str) and value.startswith("="):
        return Cell(CellKind.FORMULA, value)
    return Cell(CellKind.TEXT, str(value))


def _workbook(doc: DocType, headers, items, merged=()) -> Workbook:
    form = FORMS[doc]
    sheets = []
    for name, fields, rows in (
        (HEADER_SHEET, form.header, headers),
        (ITEMS_SHEET, form.items, items),
    ):
        grid = [tuple(Cell(CellKind.TEXT, f.label) for f in fields)]
        grid += [tuple(_cell(row.get(f.key)) for f in fields) for row in rows]
        sheets.append(Sheet(name, tuple(grid), merged if name == HEADER_SHEET else ()))
    return Workbook("test.xlsx", "xlsx", tuple(sheets))


def _validate(doc: DocType, headers, items, **kw):
    return validate_workbook(
        _workbook(doc, headers, items, kw.pop("merged", ())),
        office="040300",
        requirements=_table(),
        today=TODAY,
        **kw,
    )


@pytest.mark.parametrize("doc", list(DocType))
def test_sample_declarations_pass_and_keep_their_values(doc: DocType) -> None:
    headers, items = declarations(3, doc)
    verdict = _validate(doc, headers, items)
    assert verdict.ok, [str(p) for p in verdict.problems]
    assert verdict.doc_type is doc
    first = verdict.declarations[0]
    assert first.nilai == sum(i.nilai for i in first.items)
    assert first.npwp.isdigit() and len(first.npwp) == 15
    assert (first.waktu_closing is not None) is doc.is_export
    if first.waktu_closing is not None:
        assert first.waktu_closing.utcoffset() == timedelta(hours=7)  # WIB


def test_every_problem_of_a_file_is_reported_at_once_with_its_cell() -> None:
    headers, items = declarations(2, DocType.PIB)
    headers[0]["npwp"] = "01.312.166.1-091.000"
    headers[1]["kurs"] = "15.750,25"
    items[1]["kode_hs"] = "8471301"
    verdict = _validate(DocType.PIB, headers, items)
    assert not verdict.ok and verdict.declarations == ()
    places = {(p.sheet, p.row, p.column, p.code) for p in verdict.problems}
    assert places == {
        (HEADER_SHEET, 2, "C", "cell.npwp"),
        (HEADER_SHEET, 3, "K", "cell.not_a_number"),
        (ITEMS_SHEET, 3, "C", "cell.hs"),
    }


def test_a_total_that_does_not_add_up_is_placed_on_the_total_cell() -> None:
    headers, items = declarations(1, DocType.PEB)
    headers[0]["nilai_fob"] = Decimal("1.00")
    (problem,) = _validate(DocType.PEB, headers, items).problems
    assert (problem.sheet, problem.row, problem.column, problem.code) == (
        HEADER_SHEET,
        2,
        "L",
        "row.total",
    )
    assert "sum of its 2 item(s), 3751.50" in problem.message


def test_too_many_declarations_for_one_file_is_refused_before_reading_rows() -> None:
    headers, items = declarations(4, DocType.PIB)
    (problem,) = _validate(DocType.PIB, headers, items, limits=Limits(max_declarations=3)).problems
    assert problem.code == "file.too_many_rows" and problem.sheet == HEADER_SHEET


def test_merged_cells_are_named_by_their_range() -> None:
    headers, items = declarations(1, DocType.PIB)
    (problem,) = _validate(DocType.PIB, headers, items, merged=(MergedRange(2, 5, 2, 6),)).problems
    assert (problem.code, problem.row, problem.column) == ("cell.merged", 2, "E")
    assert "E2:F2" in problem.message


# -- layering: the manual package is pure too -------------------------------------------------
def test_the_manual_rules_import_no_io_library() -> None:
    forbidden = ("prefect", "psycopg", "openpyxl", "xlrd", "xlwt", "drp.adapters", "drp.lab")
    offenders = []
    for path in Path(manual_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if any(n == f or n.startswith(f + ".") for f in forbidden)
            ]
    assert offenders == []
