"""Import and export requirements by HS code (Pasal 8(4)(c)): prohibited or restricted goods.

The table is data the user replaces (``DRP_MANUAL_REQUIREMENTS``, a CSV): each row names an HS
prefix (2 to 8 digits), the direction it applies to, the status and who grants the permit. The
most specific row (longest prefix) for the declaration's direction decides; a restricted good
passes only with a permit number on its item row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from enum import StrEnum

from drp.domain.manual.codes import digits_only
from drp.domain.manual.fields import DocType
from drp.domain.manual.workbook import Problem

COLUMNS = ("hs_prefix", "direction", "status", "authority", "description")


class Direction(StrEnum):
    IMPORT = "import"
    EXPORT = "export"
    BOTH = "both"

    def covers(self, doc: DocType) -> bool:
        return self is Direction.BOTH or (self is Direction.EXPORT) == doc.is_export


class Status(StrEnum):
    PROHIBITED = "prohibited"  # larangan
    RESTRICTED = "restricted"  # pembatasan: allowed with a permit (izin)


@dataclass(frozen=True)
class Requirement:
    hs_prefix: str
    direction: Direction
    status: Status
    authority: str
    description: str
    line: int  # where it stands in the table, for messages

    def as_dict(self) -> dict[str, str | int]:
        return {
            "hs_prefix": self.hs_prefix,
            "direction": self.direction.value,
            "status": self.status.value,
            "authority": self.authority,
            "description": self.description,
        }


@dataclass(frozen=True)
class RequirementsTable:
    source: str
    rows: tuple[Requirement, ...]

    def judge(self, hs_code: str, doc: DocType) -> Requirement | None:
        """The requirement that applies to ``hs_code`` for this direction, or None (free)."""
        code = digits_only(hs_code)
        found = [r for r in self.rows if code.startswith(r.hs_prefix) and r.direction.covers(doc)]
        if not found:
            return None
        # Longest prefix decides; between equals, prohibited outranks restricted.
        return max(found, key=lambda r: (len(r.hs_prefix), r.status is Status.PROHIBITED))


class RequirementsError(ValueError):
    """The requirements table is malformed; ``problems`` name each bad row and column."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        lines = "; ".join(str(p) for p in problems[:10])
        super().__init__(f"requirements table {source}: {len(problems)} problem(s): {lines}")
        self.problems = problems


def parse_requirements(text: str, source: str) -> RequirementsTable:
    """Parse the CSV text of a requirements table; every bad cell is reported at once."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise RequirementsError(
            source,
            [
                Problem(
                    "requirements.header",
                    f"missing column(s) {', '.join(missing)}",
                    f"the first line must name the columns {','.join(COLUMNS)}",
                    sheet=source,
                    row=1,
                )
            ],
        )
    rows: list[Requirement] = []
    problems: list[Problem] = []
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
        if not any(row.values()) or row.get("hs_prefix", "").startswith("#"):
            continue
        prefix = digits_only(row["hs_prefix"])
        bad: list[tuple[str, str, str]] = []
        if not prefix.isdigit() or not 2 <= len(prefix) <= 8:
            bad.append(("hs_prefix", f"{row['hs_prefix']!r} is not 2–8 digits", "e.g. 2604"))
        try:
            direction = Direction(row["direction"].lower())
        except ValueError:
            bad.append(("direction", f"{row['direction']!r}", "import, export or both"))
        try:
            status = Status(row["status"].lower())
        except ValueError:
            bad.append(("status", f"{row['status']!r}", "prohibited or restricted"))
        if not row["authority"]:
            bad.append(("authority", "empty", "who issues the permit, or who bans the goods"))
        for column, what, hint in bad:
            problems.append(
                Problem(
                    "requirements.cell",
                    f"bad {column}: {what}",
                    hint,
                    sheet=source,
                    row=line,
                    column=column,
                    field=column,
                )
            )
        if not bad:
            rows.append(
                Requirement(prefix, direction, status, row["authority"], row["description"], line)
            )
    if problems:
        raise RequirementsError(source, problems)
    return RequirementsTable(source, tuple(rows))
