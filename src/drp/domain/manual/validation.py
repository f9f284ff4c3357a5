"""Validating the filling of a manual declaration workbook (Pasal 8(4)(b) and (c)).

:func:`validate_workbook` takes the neutral :class:`~.workbook.Workbook` and returns either the
declarations it holds or every problem found, each at its sheet, row and column with a hint.
A file is accepted whole or not at all: one bad row rejects the submission, so that nothing is
ever half registered and the submitter fixes one file and sends it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

from drp.domain.manual import codes
from drp.domain.manual.fields import (
    FORMS,
    HEADER_SHEET,
    ITEMS_SHEET,
    DocType,
    Field,
    Form,
    Kind,
    normal_header,
)
from drp.domain.manual.requirements import RequirementsTable, Status
from drp.domain.manual.workbook import (
    Cell,
    CellKind,
    Limits,
    Problem,
    Sheet,
    Workbook,
    cell_ref,
    column_letter,
)

WIB = timezone(timedelta(hours=7), "WIB")
TOTAL_TOLERANCE = Decimal("0.01")

_CHECKS: dict[Kind, Callable[[str], str | None]] = {
    Kind.NOMOR_AJU: codes.check_nomor_aju,
    Kind.OFFICE: codes.check_office,
    Kind.NPWP: codes.check_npwp,
    Kind.NIB: codes.check_nib,
    Kind.HS: codes.check_hs,
    Kind.COUNTRY: codes.check_country,
    Kind.CURRENCY: codes.check_currency,
    Kind.PORT: codes.check_port,
    Kind.UNIT: codes.check_unit,
    Kind.PERMIT: codes.check_permit,
}
_UPPER = frozenset({Kind.COUNTRY, Kind.CURRENCY, Kind.PORT, Kind.UNIT, Kind.NOMOR_AJU})
_LEADING_ZEROS = frozenset({Kind.OFFICE, Kind.NPWP, Kind.NIB, Kind.HS})


@dataclass(frozen=True)
class Item:
    seri: int
    kode_hs: str
    uraian: str
    jumlah: Decimal
    satuan: str
    negara: str
    nilai: Decimal
    nomor_izin: str | None
    row: int
    requirement: dict[str, Any] | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "seri": self.seri,
            "kode_hs": self.kode_hs,
            "uraian": self.uraian,
            "jumlah": str(self.jumlah),
            "satuan": self.satuan,
            "negara": self.negara,
            "nilai": str(self.nilai),
            "nomor_izin": self.nomor_izin,
            "row": self.row,
            "requirement": self.requirement,
        }


@dataclass(frozen=True)
class Declaration:
    """One accepted declaration, as registered and later synchronised into SKP."""

    doc_type: DocType
    nomor_aju: str
    kode_kantor: str
    npwp: str
    nib: str | None
    nama: str
    tanggal_dokumen: date
    pelabuhan_muat: str
    pelabuhan_bongkar: str
    nomor_dokumen_angkut: str
    valuta: str
    kurs: Decimal
    nilai: Decimal  # CIF for PIB, FOB for PEB
    waktu_closing: datetime | None
    items: tuple[Item, ...]
    row: int
    aju_column: str = "A"  # where its nomor aju stands, for later messages

    def as_record(self) -> dict[str, Any]:
        value_key = FORMS[self.doc_type].value_key
        return {
            "doc_type": self.doc_type.value,
            "nomor_aju": self.nomor_aju,
            "kode_kantor": self.kode_kantor,
            "npwp": self.npwp,
            "nib": self.nib,
            "nama": self.nama,
            "tanggal_dokumen": self.tanggal_dokumen.isoformat(),
            "pelabuhan_muat": self.pelabuhan_muat,
            "pelabuhan_bongkar": self.pelabuhan_bongkar,
            "nomor_dokumen_angkut": self.nomor_dokumen_angkut,
            "valuta": self.valuta,
            "kurs": str(self.kurs),
            value_key: str(self.nilai),
            "waktu_closing": self.waktu_closing.isoformat() if self.waktu_closing else None,
            "row": self.row,
            "items": [i.as_record() for i in self.items],
        }


@dataclass(frozen=True)
class Validation:
    """The verdict on one workbook: declarations when ``ok``, otherwise the problems."""

    doc_type: DocType | None
    declarations: tuple[Declaration, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.declarations)


@dataclass
class _Row:
    """One data row being read: its values by field key, and whether every cell was good."""

    number: int
    values: dict[str, Any]
    good: bool = True


def validate_workbook(
    workbook: Workbook,
    *,
    office: str | None,
    requirements: RequirementsTable,
    today: date,
    limits: Limits | None = None,
    tz: tzinfo = WIB,
) -> Validation:
    """Check a whole workbook; ``office`` is the office receiving it (its code must match)."""
    limits = limits or Limits()
    problems: list[Problem] = []
    header_sheet = workbook.sheet(HEADER_SHEET)
    items_sheet = workbook.sheet(ITEMS_SHEET)
    for name, found in ((HEADER_SHEET, header_sheet), (ITEMS_SHEET, items_sheet)):
        if found is None:
            present = ", ".join(s.name for s in workbook.sheets) or "none"
            problems.append(
                Problem(
                    "sheet.missing",
                    f"the workbook has no sheet {name} (sheets found: {present})",
                    "start from `drp manual template pib|peb`: keep its sheet names",
                    sheet=name,
                )
            )
    if header_sheet is None or items_sheet is None:
        return Validation(None, (), tuple(problems))
    doc_type = _doc_type(header_sheet, problems)
    if doc_type is None:
        return Validation(None, (), tuple(problems))
    form = FORMS[doc_type]
    header_cols = _columns(header_sheet, form.header, problems)
    item_cols = _columns(items_sheet, form.items, problems)
    for sheet in (header_sheet, items_sheet):
        for block in sheet.merged:
            problems.append(
                Problem(
                    "cell.merged",
                    f"merged cells {block.ref}: every cell must hold its own value",
                    "unmerge them (Home → Merge & Center off) and fill each cell",
                    sheet=sheet.name,
                    row=block.first_row,
                    column=column_letter(block.first_col),
                )
            )
    if problems:
        return Validation(doc_type, (), tuple(problems))
    header_rows = _data_rows(header_sheet)
    item_rows = _data_rows(items_sheet)
    if len(header_rows) > limits.max_declarations or len(item_rows) > limits.max_items:
        problems.append(
            Problem(
                "file.too_many_rows",
                f"{len(header_rows)} declarations and {len(item_rows)} item rows; one file may "
                f"hold at most {limits.max_declarations} and {limits.max_items}",
                "split the declarations over several files",
                sheet=header_sheet.name
                if len(header_rows) > limits.max_declarations
                else items_sheet.name,
                row=(
                    limits.max_declarations
                    if len(header_rows) > limits.max_declarations
                    else limits.max_items
                )
                + 2,
            )
        )
        return Validation(doc_type, (), tuple(problems))
    if not header_rows:
        problems.append(
            Problem(
                "sheet.no_rows",
                "no declaration: the rows under the header row are empty",
                "fill one row per declaration from row 2 on",
                sheet=header_sheet.name,
                row=2,
            )
        )
        return Validation(doc_type, (), tuple(problems))
    headers = [
        _read_row(header_sheet, n, form.header, header_cols, problems, tz) for n in header_rows
    ]
    items = [_read_row(items_sheet, n, form.items, item_cols, problems, tz) for n in item_rows]
    declarations = _assemble(
        form,
        header_sheet,
        items_sheet,
        headers,
        items,
        header_cols,
        item_cols,
        office=office,
        requirements=requirements,
        today=today,
        problems=problems,
    )
    if problems:
        return Validation(doc_type, (), tuple(problems))
    return Validation(doc_type, tuple(declarations), ())


def raw_records(workbook: Workbook) -> dict[str, list[dict[str, Any]]]:
    """Every sheet's non-empty cells as plain data, kept with a rejected submission (an
    accepted one keeps its declarations' records instead)."""
    return {sheet.name: sheet_records(sheet) for sheet in workbook.sheets}


def sheet_records(sheet: Sheet) -> list[dict[str, Any]]:
    """A sheet's non-empty rows as plain data."""
    records = []
    width = max((len(r) for r in sheet.rows), default=0)
    letters = [column_letter(c) for c in range(1, width + 1)]
    for number, cells in enumerate(sheet.rows, start=1):
        values = {letters[c]: _plain(cell) for c, cell in enumerate(cells) if not cell.empty}
        if values:
            records.append({"row": number, "cells": values})
    return records


def _plain(cell: Cell) -> Any:
    value = cell.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _doc_type(sheet: Sheet, problems: list[Problem]) -> DocType | None:
    labels = (
        {normal_header(str(c.value)) for c in sheet.rows[0] if not c.empty} if sheet.rows else set()
    )
    is_pib = "nilai cif" in labels
    is_peb = "nilai fob" in labels or "waktu closing" in labels
    if is_pib != is_peb:
        return DocType.PEB if is_peb else DocType.PIB
    problems.append(
        Problem(
            "header.doc_type",
            "cannot tell an import (PIB: column Nilai CIF) from an export (PEB: Nilai FOB and "
            "Waktu Closing) declaration: the header row has " + ("both" if is_pib else "neither"),
            "start from `drp manual template pib|peb`: keep its header row (row 1) as it is",
            sheet=sheet.name,
            row=1,
        )
    )
    return None


def _columns(sheet: Sheet, fields: tuple[Field, ...], problems: list[Problem]) -> dict[str, int]:
    """Map each field to its column by the header row; report missing and repeated headers."""
    found: dict[str, int] = {}
    by_label = {normal_header(f.header): f for f in fields}
    first = sheet.rows[0] if sheet.rows else ()
    for col, cell in enumerate(first, start=1):
        if cell.empty or cell.kind is not CellKind.TEXT:
            continue
        spec = by_label.get(normal_header(str(cell.value)))
        if spec is None:
            continue
        if spec.key in found:
            problems.append(
                Problem(
                    "header.duplicate",
                    f"column {spec.header} appears twice (first in column "
                    f"{column_letter(found[spec.key])})",
                    "delete one of the two columns",
                    sheet=sheet.name,
                    row=1,
                    column=column_letter(col),
                    field=spec.header,
                )
            )
            continue
        found[spec.key] = col
    for spec in fields:
        if spec.key not in found and spec.required:
            problems.append(
                Problem(
                    "header.missing",
                    f"required column {spec.header} is missing from the header row",
                    f"add a column headed '{spec.label}' (see the template)",
                    sheet=sheet.name,
                    row=1,
                    field=spec.header,
                )
            )
    return found


def _data_rows(sheet: Sheet) -> list[int]:
    """Row numbers (from 2) that hold anything; empty rows in between are allowed."""
    return [n for n in range(2, len(sheet.rows) + 1) if any(not c.empty for c in sheet.rows[n - 1])]


def _read_row(
    sheet: Sheet,
    number: int,
    fields: tuple[Field, ...],
    cols: dict[str, int],
    problems: list[Problem],
    tz: tzinfo,
) -> _Row:
    row = _Row(number, {})
    for spec in fields:
        col = cols.get(spec.key)
        if col is None:
            row.values[spec.key] = None
            continue
        value, problem = read_cell(sheet.cell(number, col), spec, tz)
        if problem is not None:
            message, hint, code = problem
            problems.append(
                Problem(
                    code,
                    message,
                    hint,
                    sheet=sheet.name,
                    row=number,
                    column=column_letter(col),
                    field=spec.header,
                )
            )
            row.good = False
        row.values[spec.key] = value
    return row


def read_cell(cell: Cell, spec: Field, tz: tzinfo = WIB) -> tuple[Any, tuple[str, str, str] | None]:
    """The value of one cell for ``spec``, or (message, hint, code) saying why it is unusable."""
    if cell.kind is CellKind.FORMULA:
        return None, (
            f"formula {cell.value} where a value belongs",
            "replace the formula by its value (copy, then Paste Special → Values)",
            "cell.formula",
        )
    if cell.kind is CellKind.ERROR:
        return None, (f"error value {cell.value}", "enter the value itself", "cell.error")
    if cell.empty:
        if spec.required:
            return None, (f"{spec.header} is required and empty", spec.help, "cell.required")
        return None, None
    if spec.kind in (Kind.DATE, Kind.DATETIME):
        return _read_date(cell, spec, tz)
    if spec.kind in (Kind.DECIMAL, Kind.INTEGER):
        return _read_number(cell, spec)
    return _read_text(cell, spec)


def _read_date(cell: Cell, spec: Field, tz: tzinfo) -> tuple[Any, tuple[str, str, str] | None]:
    if cell.kind is CellKind.DATE and isinstance(cell.value, date):
        value = cell.value
        if spec.kind is Kind.DATE:
            return (value.date() if isinstance(value, datetime) else value), None
        moment = (
            value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
        )
        return (moment if moment.tzinfo else moment.replace(tzinfo=tz)), None
    if cell.kind is CellKind.TEXT:
        return None, (
            f"{cell.value!r} is text, not a date",
            "enter it as a date cell (Format Cells → Date; in the template the column is "
            "already formatted), not as typed text",
            "cell.date_as_text",
        )
    return None, (
        f"{_shown(cell)} is a {cell.kind.value}, not a date",
        "format the cell as a date (Format Cells → Date)",
        "cell.not_a_date",
    )


def _read_number(cell: Cell, spec: Field) -> tuple[Any, tuple[str, str, str] | None]:
    if cell.kind is not CellKind.NUMBER or not isinstance(cell.value, Decimal):
        return None, (
            f"{_shown(cell)} is {'text' if cell.kind is CellKind.TEXT else cell.kind.value}, "
            "not a number",
            "enter a number (no thousands separators, a dot or the locale's decimal mark as "
            "Excel shows it) in a cell formatted as Number",
            "cell.not_a_number",
        )
    value = cell.value
    if not value.is_finite():
        return None, (f"{value} is not a finite number", "enter a real amount", "cell.not_a_number")
    if spec.kind is Kind.INTEGER and value != value.to_integral_value():
        return None, (f"{value} is not a whole number", spec.help, "cell.not_integer")
    if spec.positive and value <= 0:
        return None, (f"{value} must be more than zero", spec.help, "cell.not_positive")
    if value < 0:
        return None, (f"{value} is negative", spec.help, "cell.negative")
    return (int(value) if spec.kind is Kind.INTEGER else value), None


def _read_text(cell: Cell, spec: Field) -> tuple[Any, tuple[str, str, str] | None]:
    if cell.kind is CellKind.NUMBER and isinstance(cell.value, Decimal) and spec.kind in _CHECKS:
        value = cell.value
        text = str(int(value)) if value == value.to_integral_value() else str(value)
    elif cell.kind is CellKind.TEXT:
        text = str(cell.value).strip()
    elif cell.kind is CellKind.NUMBER and spec.kind is Kind.TEXT:
        value = cell.value
        assert isinstance(value, Decimal)
        text = str(int(value)) if value == value.to_integral_value() else str(value)
    else:
        return None, (
            f"{_shown(cell)} is a {cell.kind.value} where text belongs",
            spec.help,
            "cell.wrong_type",
        )
    if len(text) > spec.max_len:
        return None, (
            f"{len(text)} characters; at most {spec.max_len}",
            "shorten it",
            "cell.too_long",
        )
    if spec.kind in _UPPER:
        text = text.upper()
    check = _CHECKS.get(spec.kind)
    if check is not None:
        message = check(text)
        if message is not None:
            hint = spec.help
            if cell.kind is CellKind.NUMBER and spec.kind in _LEADING_ZEROS:
                hint = (
                    "the cell holds a number, so leading zeros were lost: format the column as "
                    "Text and type the code again"
                )
            return None, (message, hint, f"cell.{spec.kind.value}")
    if spec.kind is Kind.NPWP:
        text = codes.normal_npwp(text)
    elif spec.kind in (Kind.HS, Kind.NIB):
        text = codes.digits_only(text)
    return text, None


def _shown(cell: Cell) -> str:
    value = cell.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    return repr(str(value)) if cell.kind is CellKind.TEXT else str(value)


def _assemble(
    form: Form,
    header_sheet: Sheet,
    items_sheet: Sheet,
    headers: list[_Row],
    items: list[_Row],
    header_cols: dict[str, int],
    item_cols: dict[str, int],
    *,
    office: str | None,
    requirements: RequirementsTable,
    today: date,
    problems: list[Problem],
) -> list[Declaration]:
    """Cross-row rules: links, duplicates, totals, office, dates, ports, HS requirements."""
    doc = form.doc_type

    def at(
        sheet: Sheet,
        row: int,
        cols: dict[str, int],
        key: str,
        spec_header: str,
        code: str,
        message: str,
        hint: str,
    ) -> None:
        col = cols.get(key)
        problems.append(
            Problem(
                code,
                message,
                hint,
                sheet=sheet.name,
                row=row,
                column=column_letter(col) if col else None,
                field=spec_header,
            )
        )

    by_aju: dict[str, _Row] = {}
    for h in headers:
        v = h.values
        aju = v.get("nomor_aju")
        if aju:
            if aju in by_aju:
                at(
                    header_sheet,
                    h.number,
                    header_cols,
                    "nomor_aju",
                    "Nomor Aju",
                    "row.duplicate",
                    f"nomor aju {aju} is also on row {by_aju[aju].number}",
                    "each declaration needs its own nomor aju",
                )
                h.good = False
            else:
                by_aju[aju] = h
        if office and v.get("kode_kantor") and v["kode_kantor"] != office:
            at(
                header_sheet,
                h.number,
                header_cols,
                "kode_kantor",
                "Kode Kantor",
                "row.office",
                f"office {v['kode_kantor']} differs from the office receiving this file ({office})",
                "submit it to the office it names, or correct the office code",
            )
            h.good = False
        if v.get("valuta") == "IDR" and v.get("kurs") is not None and v["kurs"] != 1:
            at(
                header_sheet,
                h.number,
                header_cols,
                "kurs",
                "Kurs",
                "row.rate",
                f"the rate of IDR to rupiah is 1, not {v['kurs']}",
                "enter 1 for IDR",
            )
            h.good = False
        if v.get("tanggal_dokumen") and v["tanggal_dokumen"] > today:
            at(
                header_sheet,
                h.number,
                header_cols,
                "tanggal_dokumen",
                "Tanggal Dokumen",
                "row.future_date",
                f"{v['tanggal_dokumen'].isoformat()} is in the future "
                f"(today is {today.isoformat()})",
                "enter the date the declaration was made",
            )
            h.good = False
        home = "pelabuhan_muat" if doc.is_export else "pelabuhan_bongkar"
        port = v.get(home)
        if port and codes.port_country(port) != "ID":
            label = "Pelabuhan Muat" if doc.is_export else "Pelabuhan Bongkar"
            at(
                header_sheet,
                h.number,
                header_cols,
                home,
                label,
                "row.port",
                f"{port} is not an Indonesian port; an "
                f"{'export loads' if doc.is_export else 'import unloads'} in Indonesia",
                "use an ID… UN/LOCODE (IDTPP Tanjung Priok, IDSUB Tanjung Perak)",
            )
            h.good = False
        closing, dated = v.get("waktu_closing"), v.get("tanggal_dokumen")
        if doc.is_export and closing and dated and closing.date() < dated:
            at(
                header_sheet,
                h.number,
                header_cols,
                "waktu_closing",
                "Waktu Closing",
                "row.closing",
                f"closing time {closing.isoformat()} is before the document date "
                f"{dated.isoformat()}",
                "enter the vessel's closing time",
            )
            h.good = False

    lines: dict[str, list[_Row]] = {}
    for it in items:
        aju = it.values.get("nomor_aju")
        if aju is None:
            continue
        if aju not in by_aju:
            at(
                items_sheet,
                it.number,
                item_cols,
                "nomor_aju",
                "Nomor Aju",
                "item.orphan",
                f"nomor aju {aju} is not on the {header_sheet.name} sheet",
                "every item must belong to a declaration on the header sheet",
            )
            continue
        seen = lines.setdefault(aju, [])
        seri = it.values.get("seri")
        twin = next((o for o in seen if seri is not None and o.values.get("seri") == seri), None)
        if twin is not None:
            at(
                items_sheet,
                it.number,
                item_cols,
                "seri",
                "Seri",
                "item.duplicate",
                f"item {seri} of {aju} is also on row {twin.number}",
                "number the items 1, 2, ...",
            )
            it.good = False
        seen.append(it)
        hs = it.values.get("kode_hs")
        if hs:
            rule = requirements.judge(hs, doc)
            if rule is not None and rule.status is Status.PROHIBITED:
                at(
                    items_sheet,
                    it.number,
                    item_cols,
                    "kode_hs",
                    "Kode HS",
                    "item.prohibited",
                    f"HS {hs}: {'export' if doc.is_export else 'import'} prohibited — "
                    f"{rule.description} ({rule.authority})",
                    f"these goods cannot be declared (requirements table {requirements.source}, "
                    f"line {rule.line})",
                )
                it.good = False
            elif rule is not None and not it.values.get("nomor_izin"):
                at(
                    items_sheet,
                    it.number,
                    item_cols,
                    "nomor_izin",
                    "Nomor Izin",
                    "item.permit_missing",
                    f"HS {hs} is restricted ({rule.description}): a permit from "
                    f"{rule.authority} is required",
                    "enter the permit number (nomor izin)",
                )
                it.good = False
            if rule is not None:
                it.values["_requirement"] = rule.as_dict()

    declarations: list[Declaration] = []
    for aju, h in by_aju.items():
        rows = lines.get(aju, [])
        if not rows:
            at(
                header_sheet,
                h.number,
                header_cols,
                "nomor_aju",
                "Nomor Aju",
                "row.no_items",
                f"declaration {aju} has no items on the {items_sheet.name} sheet",
                "add its goods, one row per item, with this nomor aju",
            )
            continue
        v = h.values
        values = [r.values.get("nilai") for r in rows]
        total = v.get(form.value_key)
        if total is not None and all(x is not None for x in values):
            summed = sum(values, Decimal(0))
            if abs(summed - total) > TOTAL_TOLERANCE:
                label = "Nilai FOB" if doc.is_export else "Nilai CIF"
                at(
                    header_sheet,
                    h.number,
                    header_cols,
                    form.value_key,
                    label,
                    "row.total",
                    f"{label} {total} differs from the sum of its {len(rows)} item(s), {summed}",
                    f"make {label} equal to the sum of the item values (rows "
                    f"{', '.join(str(r.number) for r in rows[:10])} of {items_sheet.name})",
                )
                continue
        if not h.good or not all(r.good for r in rows) or problems:
            continue
        aju_col = header_cols.get("nomor_aju", 1)
        declarations.append(_declaration(doc, h, rows, column_letter(aju_col)))
    return declarations


def _declaration(doc: DocType, h: _Row, rows: list[_Row], aju_column: str) -> Declaration:
    v = h.values
    value_key = FORMS[doc].value_key
    return Declaration(
        doc_type=doc,
        nomor_aju=v["nomor_aju"],
        kode_kantor=v["kode_kantor"],
        npwp=v["npwp"],
        nib=v.get("nib"),
        nama=v["nama"],
        tanggal_dokumen=v["tanggal_dokumen"],
        pelabuhan_muat=v["pelabuhan_muat"],
        pelabuhan_bongkar=v["pelabuhan_bongkar"],
        nomor_dokumen_angkut=v["nomor_dokumen_angkut"],
        valuta=v["valuta"],
        kurs=v["kurs"],
        nilai=v[value_key],
        waktu_closing=v.get("waktu_closing"),
        items=tuple(
            Item(
                seri=r.values["seri"],
                kode_hs=r.values["kode_hs"],
                uraian=r.values["uraian"],
                jumlah=r.values["jumlah"],
                satuan=r.values["satuan"],
                negara=r.values["negara"],
                nilai=r.values["nilai"],
                nomor_izin=r.values.get("nomor_izin"),
                row=r.number,
                requirement=r.values.get("_requirement"),
            )
            for r in sorted(rows, key=lambda r: r.values["seri"])
        ),
        row=h.number,
        aju_column=aju_column,
    )


def cell_place(sheet: str, row: int, col: int) -> str:
    """``HEADER!C4`` for messages that name a cell outside a :class:`Problem`."""
    return f"{sheet}!{cell_ref(row, col)}"
