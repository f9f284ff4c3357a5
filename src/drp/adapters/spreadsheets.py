"""Spreadsheets in and out: ``.xlsx`` (openpyxl) and legacy ``.xls`` (xlrd to read, xlwt to write).

Reading turns a file into the neutral :class:`drp.domain.manual.workbook.Workbook` that the rules
judge, keeping what the file really holds: formulas stay formulas (xlrd hides them, so the
``.xls`` BIFF stream is scanned for FORMULA records), dates typed as text stay text, merged
ranges are listed. What is wrong with the *file itself* (empty, not a spreadsheet, an ``.xlsx``
renamed ``.xls``, a password-protected workbook, too large) is raised as
:class:`SpreadsheetRejected` with a located :class:`~drp.domain.manual.workbook.Problem`.

Writing makes the PIB/PEB templates (``.xlsx`` with data validation and input help, ``.xls``
with the same columns and formats), filled workbooks (tests, benchmark, examples) and the
served-documents export for the berita acara (Pasal 10).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import openpyxl
import xlrd
import xlwt
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.formula import ArrayFormula
from xlrd.compdoc import CompDoc

from drp.domain.manual import codes
from drp.domain.manual.fields import (
    FORMS,
    HEADER_SHEET,
    HELP_SHEET,
    ITEMS_SHEET,
    DocType,
    Field,
    Kind,
)
from drp.domain.manual.workbook import (
    EMPTY,
    Cell,
    CellKind,
    MergedRange,
    Problem,
    Sheet,
    Workbook,
)
from drp.errors import AdapterError

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
FORMATS = ("xlsx", "xls")
TEMPLATE_ROWS = 500  # rows the template's validation and formats cover
UNZIPPED_FACTOR = 40  # an .xlsx may inflate this much over the byte limit before it is refused

_BIFF_BOF, _BIFF_BOUNDSHEET, _BIFF_FORMULA = 0x0809, 0x0085, 0x0006


class SpreadsheetError(AdapterError):
    """A spreadsheet could not be written (disk, format)."""


class SpreadsheetRejected(AdapterError):
    """The file cannot be read as a declaration workbook; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _reject(code: str, message: str, hint: str) -> SpreadsheetRejected:
    return SpreadsheetRejected(Problem(code, message, hint))


# -- recognising the file ------------------------------------------------------------------------
def sniff(data: bytes, file_name: str, max_bytes: int) -> str:
    """``"xlsx"`` or ``"xls"`` by content, checked against the name's extension."""
    suffix = Path(file_name).suffix.lower().lstrip(".")
    if not data:
        raise _reject("file.empty", "the file is empty (0 bytes)", "send the filled workbook")
    if len(data) > max_bytes:
        raise _reject(
            "file.too_large",
            f"the file is {len(data):,} bytes; at most {max_bytes:,} are accepted",
            "split the declarations over several files (each at most "
            f"{max_bytes // (1024 * 1024) or 1} MiB)",
        )
    if data.startswith(ZIP_MAGIC):
        found = _zip_kind(data, max_bytes)
    elif data.startswith(OLE_MAGIC):
        found = _ole_kind(data)
    else:
        raise _reject(
            "file.not_spreadsheet",
            f"the file is not a spreadsheet ({_describe(data)})",
            "send the declaration as .xls (Excel 97–2003) or .xlsx, made from "
            "`drp manual template`",
        )
    if suffix not in FORMATS:
        raise _reject(
            "file.extension",
            f"the file is named .{suffix or '(none)'}; declarations are .xls or .xlsx files",
            f"rename it .{found} (its content is an .{found} workbook)",
        )
    if suffix != found:
        raise _reject(
            "file.renamed",
            f"the file is named .{suffix} but is an .{found} workbook "
            f"({'Office Open XML' if found == 'xlsx' else 'Excel 97–2003 BIFF'})",
            f"save it as .{suffix} from the spreadsheet program (Save As), or name it .{found}; "
            "renaming does not convert a workbook",
        )
    return found


def _describe(data: bytes) -> str:
    head = data[:8]
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head[:2] in (b"\xff\xd8", b"\x89P"):
        return "an image"
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary content"
    return "plain text, perhaps CSV"


def _zip_kind(data: bytes, max_bytes: int) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            inflated = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise _reject(
            "file.corrupt", f"the file is a damaged zip archive ({exc})", "save it again and resend"
        ) from exc
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        raise _reject(
            "file.not_spreadsheet",
            "the file is a zip archive but not an Excel workbook (perhaps .docx or .ods)",
            "save the declaration as .xls or .xlsx",
        )
    if inflated > max_bytes * UNZIPPED_FACTOR:
        raise _reject(
            "file.too_large",
            f"the workbook unpacks to {inflated:,} bytes (more than {UNZIPPED_FACTOR}× the "
            f"{max_bytes:,}-byte limit)",
            "split the declarations over several files",
        )
    return "xlsx"


def _ole_streams(data: bytes) -> set[str]:
    try:
        doc = CompDoc(data, logfile=io.StringIO())
    except Exception as exc:  # xlrd raises its own CompDocError and struct errors
        raise _reject(
            "file.corrupt",
            f"the file looks like an Office document but cannot be read ({exc})",
            "save it again and resend",
        ) from exc
    return {d.name for d in doc.dirlist}


def _ole_kind(data: bytes) -> str:
    streams = _ole_streams(data)
    if "EncryptedPackage" in streams or "EncryptionInfo" in streams:
        raise _reject(
            "file.encrypted",
            "the workbook is password-protected (encrypted)",
            "remove the password (File → Info → Protect Workbook → Encrypt with Password, "
            "clear it) and resend; the office cannot open encrypted declarations",
        )
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    raise _reject(
        "file.not_spreadsheet",
        "the file is an Office document but not an Excel workbook (perhaps .doc)",
        "save the declaration as .xls or .xlsx",
    )


# -- reading ------------------------------------------------------------------------------------
def read_workbook(data: bytes, file_name: str, *, max_bytes: int) -> Workbook:
    """Read a declaration file into the neutral workbook model (see the module docstring)."""
    kind = sniff(data, file_name, max_bytes)
    if kind == "xlsx":
        return _read_xlsx(data, file_name)
    return _read_xls(data, file_name)


def _number(value: float | int) -> Decimal:
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return Decimal("NaN")


def _read_xlsx(data: bytes, file_name: str) -> Workbook:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=False, read_only=False)
    except Exception as exc:  # openpyxl raises KeyError, ValueError, lxml errors ...
        raise _reject(
            "file.corrupt",
            f"the .xlsx workbook cannot be read ({type(exc).__name__}: {exc})",
            "open it in a spreadsheet program, save it again and resend",
        ) from exc
    sheets = []
    for ws in book.worksheets:
        rows = []
        for row in ws.iter_rows():
            rows.append(tuple(_xlsx_cell(c) for c in row))
        while rows and all(c.empty for c in rows[-1]):
            rows.pop()
        merged = tuple(
            MergedRange(r.min_row, r.min_col, r.max_row, r.max_col) for r in ws.merged_cells.ranges
        )
        sheets.append(Sheet(ws.title, tuple(rows), merged))
    book.close()
    return Workbook(file_name, "xlsx", tuple(sheets))


def _xlsx_cell(cell: Any) -> Cell:
    value = cell.value
    if value is None:
        return EMPTY
    kind = cell.data_type
    if kind == "f" or isinstance(value, ArrayFormula):
        text = value.text if isinstance(value, ArrayFormula) else str(value)
        return Cell(CellKind.FORMULA, text if text.startswith("=") else f"={text}")
    if kind == "e":
        return Cell(CellKind.ERROR, str(value))
    if isinstance(value, bool):
        return Cell(CellKind.BOOL, value)
    if isinstance(value, datetime | date):
        return Cell(CellKind.DATE, value)
    if isinstance(value, int | float):
        return Cell(CellKind.NUMBER, _number(value))
    if isinstance(value, str):
        return Cell(CellKind.TEXT, value) if value.strip() else EMPTY
    return Cell(CellKind.TEXT, str(value))


def _read_xls(data: bytes, file_name: str) -> Workbook:
    try:
        book = xlrd.open_workbook(
            file_contents=data, formatting_info=True, logfile=io.StringIO(), on_demand=False
        )
    except xlrd.XLRDError as exc:
        if "encrypted" in str(exc).lower():
            raise _reject(
                "file.encrypted",
                "the .xls workbook is password-protected (encrypted)",
                "remove the password (Save As with no password) and resend",
            ) from exc
        raise _reject(
            "file.corrupt", f"the .xls workbook cannot be read ({exc})", "save it again and resend"
        ) from exc
    except Exception as exc:  # struct errors, assertion errors from damaged BIFF
        raise _reject(
            "file.corrupt",
            f"the .xls workbook cannot be read ({type(exc).__name__}: {exc})",
            "save it again and resend",
        ) from exc
    formulas = xls_formula_cells(data)
    sheets = []
    for index in range(book.nsheets):
        ws = book.sheet_by_index(index)
        in_sheet = formulas.get(index, set())
        rows = []
        for r in range(ws.nrows):
            rows.append(
                tuple(_xls_cell(book, ws, r, c, (r, c) in in_sheet) for c in range(ws.ncols))
            )
        while rows and all(c.empty for c in rows[-1]):
            rows.pop()
        merged = tuple(
            MergedRange(rlo + 1, clo + 1, rhi, chi) for rlo, rhi, clo, chi in ws.merged_cells
        )
        sheets.append(Sheet(ws.name, tuple(rows), merged))
    return Workbook(file_name, "xls", tuple(sheets))


def _xls_cell(book: Any, ws: Any, r: int, c: int, is_formula: bool) -> Cell:
    kind = ws.cell_type(r, c)
    value = ws.cell_value(r, c)
    if is_formula:
        return Cell(CellKind.FORMULA, f"=(formula; cached value {value!r})")
    if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return EMPTY
    if kind == xlrd.XL_CELL_TEXT:
        return Cell(CellKind.TEXT, value) if value.strip() else EMPTY
    if kind == xlrd.XL_CELL_NUMBER:
        return Cell(CellKind.NUMBER, _number(value))
    if kind == xlrd.XL_CELL_DATE:
        try:
            moment = xlrd.xldate.xldate_as_datetime(value, book.datemode)
        except (xlrd.xldate.XLDateError, ValueError, OverflowError):
            return Cell(CellKind.NUMBER, _number(value))
        return Cell(CellKind.DATE, moment)
    if kind == xlrd.XL_CELL_BOOLEAN:
        return Cell(CellKind.BOOL, bool(value))
    if kind == xlrd.XL_CELL_ERROR:
        return Cell(CellKind.ERROR, xlrd.error_text_from_code.get(value, f"#ERR{value}"))
    return Cell(CellKind.TEXT, str(value))


def xls_formula_cells(data: bytes) -> dict[int, set[tuple[int, int]]]:
    """Which cells of each sheet hold a formula (0-based), read from the BIFF8 record stream.

    xlrd gives only a formula's cached value, which would let ``=B2*2`` pass as a typed number;
    the FORMULA record (0x0006) says which cells are formulas. BOUNDSHEET records give each
    sheet's BOF offset, so formulas are attributed to the right sheet.
    """
    try:
        doc = CompDoc(data, logfile=io.StringIO())
        stream = doc.get_named_stream("Workbook") or doc.get_named_stream("Book")
    except Exception:
        return {}
    if not stream:
        return {}
    offsets: list[int] = []
    found: dict[int, set[tuple[int, int]]] = {}
    current = -1
    pos, size = 0, len(stream)
    while pos + 4 <= size:
        rtype, length = struct.unpack_from("<HH", stream, pos)
        body = pos + 4
        if rtype == _BIFF_BOUNDSHEET and length >= 4:
            offsets.append(struct.unpack_from("<I", stream, body)[0])
        elif rtype == _BIFF_BOF:
            current = pos
        elif rtype == _BIFF_FORMULA and length >= 4:
            row, col = struct.unpack_from("<HH", stream, body)
            found.setdefault(current, set()).add((row, col))
        pos = body + length
    return {index: found.get(offset, set()) for index, offset in enumerate(offsets)}


# -- writing ------------------------------------------------------------------------------------
def _number_format(spec: Field) -> str | None:
    return {
        Kind.DATE: "yyyy-mm-dd",
        Kind.DATETIME: "yyyy-mm-dd hh:mm",
        Kind.DECIMAL: "#,##0.00",
        Kind.INTEGER: "0",
    }.get(spec.kind, "@")


def _validation(spec: Field) -> DataValidation:
    """The Excel data validation (with its input help) for one column of the template."""
    common: dict[str, Any] = {
        "allow_blank": not spec.required,
        "showInputMessage": True,
        "showErrorMessage": True,
        "promptTitle": spec.header[:32],
        "prompt": spec.help[:255],
        "errorTitle": spec.header[:32],
        "error": spec.help[:255],
    }
    if spec.kind in (Kind.DATE, Kind.DATETIME):
        return DataValidation(type="date", operator="greaterThan", formula1="1", **common)
    if spec.kind is Kind.DECIMAL:
        op = "greaterThan" if spec.positive else "greaterThanOrEqual"
        return DataValidation(type="decimal", operator=op, formula1="0", **common)
    if spec.kind is Kind.INTEGER:
        return DataValidation(type="whole", operator="greaterThanOrEqual", formula1="1", **common)
    if spec.kind is Kind.CURRENCY:
        return DataValidation(
            type="list", formula1='"' + ",".join(sorted(codes.CURRENCIES)) + '"', **common
        )
    if spec.kind is Kind.UNIT:
        return DataValidation(
            type="list", formula1='"' + ",".join(sorted(codes.UNITS)) + '"', **common
        )
    length = {Kind.OFFICE: 6, Kind.HS: 10, Kind.NPWP: 20, Kind.NIB: 13, Kind.PORT: 5}.get(spec.kind)
    if length:
        return DataValidation(
            type="textLength", operator="lessThanOrEqual", formula1=str(length), **common
        )
    return DataValidation(
        type="textLength", operator="lessThanOrEqual", formula1=str(spec.max_len), **common
    )


def _help_rows(doc: DocType) -> list[tuple[str, str, str]]:
    form = FORMS[doc]
    rows = [(HEADER_SHEET, f.label, f.help) for f in form.header]
    rows += [(ITEMS_SHEET, f.label, f.help) for f in form.items]
    return rows


HELP_INTRO = (
    "Manual-mode declaration (PER-19/BC/2023 Pasal 8). One row per declaration on HEADER, one row "
    "per item on BARANG, linked by Nomor Aju. Columns marked * are required. Enter values, not "
    "formulas; dates as dates; codes (office, NPWP, HS) as text so leading zeros stay. Do not "
    "merge cells or rename sheets. The total value must equal the sum of the item values."
)


def _cell_value(spec: Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value) if spec.kind in (Kind.DECIMAL, Kind.INTEGER) else str(value)
    return value


def write_workbook(
    path: Path,
    doc_type: DocType,
    fmt: str,
    headers: Sequence[Mapping[str, Any]] = (),
    items: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write the ``doc_type`` form as ``fmt`` ("xlsx" or "xls"): the empty template, or filled
    with ``headers``/``items`` (mappings by field key; a value of a ``str`` starting with ``=``
    is written as a formula, for tests of formula rejection)."""
    if fmt not in FORMATS:
        raise SpreadsheetError(f"format {fmt!r}: choose xlsx or xls")
    try:
        if fmt == "xlsx":
            _write_xlsx(path, doc_type, headers, items)
        else:
            _write_xls(path, doc_type, headers, items)
    except OSError as exc:
        raise SpreadsheetError(f"cannot write {path}: {exc}") from exc
    return path


def _write_xlsx(
    path: Path,
    doc: DocType,
    headers: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> None:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    form = FORMS[doc]
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for name, fields, rows in (
        (HEADER_SHEET, form.header, headers),
        (ITEMS_SHEET, form.items, items),
    ):
        ws = book.create_sheet(name)
        last = max(TEMPLATE_ROWS, len(rows) + 1)
        for col, spec in enumerate(fields, start=1):
            head = ws.cell(row=1, column=col, value=spec.label)
            head.font, head.fill = bold, fill
            letter = head.column_letter
            ws.column_dimensions[letter].width = max(14, len(spec.label) + 4)
            check = _validation(spec)
            check.add(f"{letter}2:{letter}{last}")
            ws.add_data_validation(check)
            fmt = _number_format(spec)
            for r, values in enumerate(rows, start=2):
                value = _cell_value(spec, values.get(spec.key))
                cell = ws.cell(row=r, column=col, value=value)
                if fmt and not (isinstance(value, str) and value.startswith("=")):
                    cell.number_format = fmt
            if not rows:
                for r in range(2, 52):  # formats for the first rows a person fills by hand
                    ws.cell(row=r, column=col).number_format = fmt or "General"
        ws.freeze_panes = "A2"
    help_ws = book.create_sheet(HELP_SHEET)
    help_ws["A1"] = f"{doc.value}: {HELP_INTRO}"
    help_ws["A1"].alignment = Alignment(wrap_text=True)
    help_ws.column_dimensions["A"].width = 16
    help_ws.column_dimensions["B"].width = 28
    help_ws.column_dimensions["C"].width = 90
    for r, (sheet, label, text) in enumerate(_help_rows(doc), start=3):
        help_ws.cell(row=r, column=1, value=sheet)
        help_ws.cell(row=r, column=2, value=label)
        help_ws.cell(row=r, column=3, value=text)
    book.save(path)


def _xls_styles() -> dict[Kind | str, xlwt.XFStyle]:
    def style(num: str) -> xlwt.XFStyle:
        s = xlwt.XFStyle()
        s.num_format_str = num
        return s

    head = xlwt.easyxf("font: bold on; pattern: pattern solid, fore_colour pale_blue")
    return {
        "head": head,
        Kind.DATE: style("YYYY-MM-DD"),
        Kind.DATETIME: style("YYYY-MM-DD HH:MM"),
        Kind.DECIMAL: style("#,##0.00"),
        Kind.INTEGER: style("0"),
        "text": style("@"),
    }


def _write_xls(
    path: Path,
    doc: DocType,
    headers: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> None:
    book = xlwt.Workbook(encoding="utf-8")
    styles = _xls_styles()
    form = FORMS[doc]
    for name, fields, rows in (
        (HEADER_SHEET, form.header, headers),
        (ITEMS_SHEET, form.items, items),
    ):
        ws = book.add_sheet(name)
        for col, spec in enumerate(fields):
            ws.write(0, col, spec.label, styles["head"])
            ws.col(col).width = 256 * max(14, len(spec.label) + 4)
            style = styles.get(spec.kind, styles["text"])
            ws.col(col).set_style(style)
            for r, values in enumerate(rows, start=1):
                value = _cell_value(spec, values.get(spec.key))
                if value is None:
                    continue
                if isinstance(value, str) and value.startswith("="):
                    ws.write(r, col, xlwt.Formula(value[1:]))
                else:
                    ws.write(r, col, value, style)
        ws.set_panes_frozen(True)
        ws.set_horz_split_pos(1)
    help_ws = book.add_sheet(HELP_SHEET)
    help_ws.write(0, 0, f"{doc.value}: {HELP_INTRO}")
    for r, (sheet, label, text) in enumerate(_help_rows(doc), start=2):
        help_ws.write(r, 0, sheet)
        help_ws.write(r, 1, label)
        help_ws.write(r, 2, text)
    help_ws.col(2).width = 256 * 90
    book.save(str(path))


def write_table_xlsx(
    path: Path,
    sheet: str,
    title: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Mapping[str, Any]],
) -> Path:
    """A plain table: a title line, a header row (``(key, label)`` per column), one row each."""
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet[:31]
    ws["A1"] = title
    ws["A1"].font = Font(bold=True, size=12)
    for col, (_, label) in enumerate(columns, start=1):
        cell = ws.cell(row=3, column=col, value=label)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        ws.column_dimensions[cell.column_letter].width = max(12, min(60, len(label) + 6))
    for r, row in enumerate(rows, start=4):
        for col, (key, _) in enumerate(columns, start=1):
            value = row.get(key)
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.replace(tzinfo=None)  # Excel has no time zones: keep wall time
            elif isinstance(value, list | tuple | dict):
                value = ", ".join(map(str, value)) if not isinstance(value, dict) else str(value)
            elif isinstance(value, Decimal):
                value = float(value)
            ws.cell(row=r, column=col, value=value)
    ws.freeze_panes = "A4"
    try:
        book.save(path)
    except OSError as exc:
        raise SpreadsheetError(f"cannot write {path}: {exc}") from exc
    return path
