"""Registration numbers for manual declarations (Pasal 8(4)(a), Lampiran D).

Lampiran D's format is not published, so the format is configuration: a pattern with the
placeholders ``{office}``, ``{type}``, ``{year}`` and ``{seq}`` (``{seq:06d}`` pads). All four
must be there, because a number is unique per office, document type and year; and a rendered
number must never look like one of SKP's own numbers (``skp_pattern``), so that after resync
nobody can mistake a manual registration for an SKP one. The sequence itself (no gaps, never
reused) is kept by the store in a database transaction; this module only formats and parses.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drp.domain.manual.fields import DocType

DEFAULT_PATTERN = "{office}/M-{type}/{year}/{seq:06d}"
DEFAULT_SKP_PATTERN = r"^\d{6}$"
PLACEHOLDERS = ("office", "type", "year", "seq")


class NumberFormatError(ValueError):
    """The configured number format cannot work; the message says which rule it breaks."""


@dataclass(frozen=True)
class NumberFormat:
    pattern: str = DEFAULT_PATTERN
    skp_pattern: str = DEFAULT_SKP_PATTERN
    timezone: str = "Asia/Jakarta"  # the registration year is the year where the office is

    def render(self, office: str, doc_type: DocType, year: int, seq: int) -> str:
        if seq < 1:
            raise ValueError(f"sequence {seq}: numbers start at 1")
        return self.pattern.format(office=office, type=doc_type.value, year=year, seq=seq)

    def regex(self) -> re.Pattern[str]:
        """A regex that recognises this format's numbers (named groups per placeholder)."""
        parts: list[str] = []
        groups = {
            "office": r"(?P<office>\d{6})",
            "type": r"(?P<type>PIB|PEB)",
            "year": r"(?P<year>\d{4})",
            "seq": r"(?P<seq>\d+)",
        }
        for literal, name, _spec, _conv in string.Formatter().parse(self.pattern):
            parts.append(re.escape(literal))
            if name is not None:
                parts.append(groups[name])
        return re.compile("^" + "".join(parts) + "$")

    def parse(self, number: str) -> tuple[str, DocType, int, int] | None:
        """(office, type, year, seq) of a number in this format, or None."""
        found = self.regex().match(number.strip())
        if not found:
            return None
        return (
            found["office"],
            DocType(found["type"]),
            int(found["year"]),
            int(found["seq"]),
        )

    def is_manual(self, number: str) -> bool:
        return self.parse(number) is not None

    def looks_like_skp(self, number: str) -> bool:
        return re.match(self.skp_pattern, number.strip()) is not None


def number_format(config: Mapping[str, Any] | None = None) -> NumberFormat:
    """Build and check a format from configuration (keys ``pattern``, ``skp_pattern``,
    ``timezone``); refuse one that could repeat a number or pass for an SKP number."""
    config = dict(config or {})
    unknown = sorted(set(config) - {"pattern", "skp_pattern", "timezone"})
    if unknown:
        raise NumberFormatError(
            f"unknown key(s) {', '.join(unknown)} in the number format (pattern, skp_pattern, "
            "timezone)"
        )
    fmt = NumberFormat(
        pattern=str(config.get("pattern", DEFAULT_PATTERN)),
        skp_pattern=str(config.get("skp_pattern", DEFAULT_SKP_PATTERN)),
        timezone=str(config.get("timezone", "Asia/Jakarta")),
    )
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(fmt.pattern) if f is not None]
    except ValueError as exc:
        raise NumberFormatError(f"pattern {fmt.pattern!r}: {exc}") from exc
    extra = [f for f in fields if f not in PLACEHOLDERS]
    if extra:
        raise NumberFormatError(
            f"pattern {fmt.pattern!r}: unknown placeholder(s) {extra}; use {PLACEHOLDERS}"
        )
    missing = [p for p in PLACEHOLDERS if fields.count(p) != 1]
    if missing:
        raise NumberFormatError(
            f"pattern {fmt.pattern!r} must hold each of {{office}}, {{type}}, {{year}} and "
            f"{{seq}} exactly once (missing or repeated: {missing}): numbers are unique per "
            "office, document type and year"
        )
    try:
        re.compile(fmt.skp_pattern)
        samples = [fmt.render("040300", doc, 2026, seq) for doc in DocType for seq in (1, 999999)]
    except (re.error, ValueError, KeyError) as exc:
        raise NumberFormatError(f"number format: {exc}") from exc
    for sample in samples:
        if fmt.looks_like_skp(sample):
            raise NumberFormatError(
                f"pattern {fmt.pattern!r} renders {sample!r}, which SKP's own numbers "
                f"({fmt.skp_pattern}) could also be: add a marker such as 'M-'"
            )
        if fmt.parse(sample) is None:
            raise NumberFormatError(
                f"pattern {fmt.pattern!r}: {sample!r} cannot be read back; separate the "
                "placeholders with literal characters"
            )
    return fmt
