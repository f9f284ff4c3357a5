"""Operator records: what people state (assessment, end of the condition, internalisation, the
reports issued) written as evidence, one small closed ledger per statement.

A person's statement is evidence like a flow's step: it gets its own hash-chained ledger under
``<evidence>/<incident>/records/<kind>-<UTC time>/`` (organisation-wide records, such as the
yearly internalisation of Pasal 14, under ``<evidence>/_organisation/records/``). Nothing is
ever overwritten: a later statement of the same kind corrects an earlier one, and both stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drp.documents.collect import RECORDS_DIR, _is_ledger, read_ledger
from drp.domain.incident import LedgerInput
from drp.errors import DrpError
from drp.ledger import Ledger

ORGANISATION = "_organisation"
"""The pseudo-incident that holds records belonging to no incident (Pasal 14 internalisation)."""


def write_record(
    evidence_dir: Path,
    incident_id: str,
    kind: str,
    name: str,
    data: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> Path:
    """Write one statement as its own closed ledger; returns the ledger directory."""
    moment = now or datetime.now(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S%fZ")
    directory = evidence_dir / incident_id / RECORDS_DIR / f"{name}-{stamp}"
    if directory.exists():
        raise DrpError(f"{directory} already exists: wait a moment and record again")
    ledger = Ledger.create(directory, f"{incident_id}/{name}", {"flow": "record", "kind": kind})
    ledger.append(kind, dict(data))
    ledger.close({"kind": kind})
    return directory


def organisation_records(evidence_dir: Path) -> list[LedgerInput]:
    """Every organisation-wide record ledger (internalisation and the like), verified."""
    root = evidence_dir / ORGANISATION / RECORDS_DIR
    if not root.is_dir():
        return []
    return [
        read_ledger(f"{RECORDS_DIR}/{p.name}", p) for p in sorted(root.iterdir()) if _is_ledger(p)
    ]
