"""A spreadsheet as the rules see it: sheets of typed cells, and problems that name their place.

The adapter (``drp.adapters.spreadsheets``) turns ``.xlsx`` (openpyxl) and ``.xls`` (xlrd) into
this one model, so that every rule is written once and unit-tested without a file. A cell keeps
what the file really held (a formula stays a formula, a date typed as text stays text): the
rules must be able to say "this is text, not a date", which a converted value could not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class CellKind(StrEnum):
    EMPTY = "empty"
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"  # a date or date-time cell (Excel stores both as a formatted number)
    BOOL = "bool"
    FORMULA = "formula"
    ERROR = "error"  # #N/A, #DIV/0! ...


CellValue = str | Decimal | date | datetime | bool | None


@dataclass(frozen=True)
class Cell:
    """One cell: its kind and value as stored (a formula's value is its text, ``=SUM(..)``)."""

    kind: CellKind
    value: CellValue = None

    @property
    def empty(self) -> bool:
        return self.kind is CellKind.EMPTY or (
            self.kind is CellKind.TEXT and not str(self.value).strip()
        )


EMPTY = Cell(CellKind.EMPTY)


@dataclass(frozen=True)
class MergedRange:
    """A merged block, 1-based and inclusive (``A2:C2`` is row 2, columns 1..3)."""

    first_row: int
    first_col: int
    last_row: int
    last_col: int

    @property
    def ref(self) -> str:
        return (
            f"{cell_ref(self.first_row, self.first_col)}:{cell_ref(self.last_row, self.last_col)}"
        )


@dataclass(frozen=True)
class Sheet:
    """A sheet's cells by row (row 1 first); rows may differ in length."""

    name: str
    rows: tuple[tuple[Cell, ...], ...]
    merged: tuple[MergedRange, ...] = ()

    def cell(self, row: int, col: int) -> Cell:
        """The cell at 1-based ``row``/``col`` (empty beyond the data)."""
        if row < 1 or row > len(self.rows):
            return EMPTY
        cells = self.rows[row - 1]
        return cells[col - 1] if 1 <= col <= len(cells) else EMPTY


@dataclass(frozen=True)
class Workbook:
    """A whole file: its name (for messages), its format and its sheets in order."""

    file_name: str
    format: str  # "xlsx" or "xls"
    sheets: tuple[Sheet, ...]

    def sheet(self, name: str) -> Sheet | None:
        """The sheet called ``name``, ignoring case and surrounding spaces."""
        wanted = name.strip().casefold()
        return next((s for s in self.sheets if s.name.strip().casefold() == wanted), None)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a submission, at its exact place, with what to do about it.

    ``sheet``, ``row`` (1-based) and ``column`` (a letter, ``"C"``) are ``None`` only when the
    problem concerns the whole file (not a spreadsheet) or the whole sheet (missing).
    """

    code: str
    message: str
    hint: str = ""
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    field: str | None = None

    @property
    def place(self) -> str:
        if self.sheet is None:
            return "file"
        where = f"sheet {self.sheet}"
        if self.row is not None and self.column:
            where += f", cell {self.column}{self.row}"
        elif self.row is not None:
            where += f", row {self.row}"
        elif self.column:
            where += f", column {self.column}"
        if self.field:
            where += f" ({self.field})"
        return where

    def __str__(self) -> str:
        text = f"{self.place}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
            "text": str(self),
        }


@dataclass(frozen=True)
class Limits:
    """How big a submission may be: a spreadsheet is a form, not a bulk channel."""

    max_bytes: int = 5 * 1024 * 1024
    max_declarations: int = 1000
    max_items: int = 20000


def column_letter(col: int) -> str:
    """1 → A, 27 → AA (Excel's naming)."""
    if col < 1:
        raise ValueError(f"column {col}: columns start at 1")
    letters = ""
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def cell_ref(row: int, col: int) -> str:
    return f"{column_letter(col)}{row}"
