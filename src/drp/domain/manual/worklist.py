"""The manual-mode work queue: which registered declaration an officer serves next.

In July 2021 export documents near their closing time were served first (seed
``000_7a04705abdae194b.txt``): an export that misses its vessel's closing time misses the
vessel. So exports come first, the nearest closing time first (those already past it at the
very top, flagged, because someone must act now); imports follow in order of registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from drp.domain.manual.fields import DocType

URGENT_WITHIN = timedelta(hours=6)


@dataclass(frozen=True)
class QueueEntry:
    registration_number: str
    doc_type: DocType
    office: str
    nomor_aju: str
    registered_at: datetime
    closing_time: datetime | None = None


@dataclass(frozen=True)
class Ranked:
    position: int
    entry: QueueEntry
    urgency: str  # "closing-passed", "urgent", "export", "import"
    reason: str


def order_queue(
    entries: list[QueueEntry], now: datetime, urgent_within: timedelta = URGENT_WITHIN
) -> list[Ranked]:
    """Rank the pending declarations; each carries the sentence that explains its place."""

    def key(e: QueueEntry) -> tuple[int, datetime, datetime, str]:
        if e.doc_type.is_export and e.closing_time is not None:
            return (0, e.closing_time, e.registered_at, e.registration_number)
        if e.doc_type.is_export:
            return (1, e.registered_at, e.registered_at, e.registration_number)
        return (2, e.registered_at, e.registered_at, e.registration_number)

    ranked: list[Ranked] = []
    for position, entry in enumerate(sorted(entries, key=key), start=1):
        urgency, reason = _urgency(entry, now, urgent_within)
        ranked.append(Ranked(position, entry, urgency, reason))
    return ranked


def _urgency(e: QueueEntry, now: datetime, within: timedelta) -> tuple[str, str]:
    if e.doc_type is DocType.PEB and e.closing_time is not None:
        left = e.closing_time - now
        if left <= timedelta(0):
            return "closing-passed", f"export: closing time passed {_span(-left)} ago"
        if left <= within:
            return "urgent", f"export: closing in {_span(left)}"
        return "export", f"export: closing in {_span(left)}"
    if e.doc_type is DocType.PEB:
        return "export", "export without a closing time: after those with one"
    return "import", "import: in order of registration, after exports"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} days {hours % 24} h"
