"""Read an incident's ledgers from the evidence directory and build its facts.

Every ledger under ``<evidence>/<incident>/`` is read and verified: the flows' own
(``failover/``, ``resync/``, ``failback/``, ``drill/``, ...) and the operator's records
(``records/<kind>-<time>/``). A ledger that fails verification is still read, so that the
document can say what it holds *and* that it cannot be trusted; the verdict travels with it.
"""

from __future__ import annotations

from pathlib import Path

from drp.domain.evidence import Record
from drp.domain.incident import IncidentFacts, LedgerInput, build_incident
from drp.errors import DrpError
from drp.ledger import LEDGER_FILE, MANIFEST_FILE, read_records, verify_ledger

RECORDS_DIR = "records"
"""Operator records of an incident (``drp record ...``), one ledger each."""

REPORTS_DIR = "reports"
"""Where ``drp report`` and the reports flow write an incident's documents by default."""


class IncidentNotFound(DrpError):
    """No evidence for the incident id under the evidence directory."""


def _is_ledger(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in (LEDGER_FILE, MANIFEST_FILE))


def incident_ledger_dirs(evidence_dir: Path, incident_id: str) -> list[tuple[str, Path]]:
    """``(name, directory)`` of every ledger of the incident: flows first, then records."""
    root = evidence_dir / incident_id
    if not root.is_dir():
        known = (
            sorted(p.name for p in evidence_dir.iterdir() if _is_incident_dir(p))
            if (evidence_dir.is_dir())
            else []
        )
        hint = f"known incidents: {', '.join(known[-5:])}" if known else "no incident recorded"
        raise IncidentNotFound(
            f"no evidence for incident {incident_id!r} under {evidence_dir} (hint: {hint}; "
            "set DRP_EVIDENCE_DIR to the evidence directory the flows wrote to)"
        )
    found = [(p.name, p) for p in sorted(root.iterdir()) if _is_ledger(p)]
    records = root / RECORDS_DIR
    if records.is_dir():
        found += [
            (f"{RECORDS_DIR}/{p.name}", p) for p in sorted(records.iterdir()) if _is_ledger(p)
        ]
    return found


def _is_incident_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(("_", ".")) and path.name != "checks"


def list_incident_ids(evidence_dir: Path) -> list[str]:
    """Incident ids that have at least one ledger under ``evidence_dir``."""
    if not evidence_dir.is_dir():
        return []
    ids = []
    for path in sorted(evidence_dir.iterdir()):
        if _is_incident_dir(path) and any(_is_ledger(p) for p in path.iterdir()):
            ids.append(path.name)
    return ids


def read_ledger(name: str, directory: Path) -> LedgerInput:
    """One ledger's records (unreadable lines skipped: verification names them) and verdict."""
    records: list[Record] = [r for _, r in read_records(directory) if not isinstance(r, str)]
    return LedgerInput(
        name=name,
        path=str(directory),
        records=tuple(records),
        verification=verify_ledger(directory),
    )


def load_incident(evidence_dir: Path, incident_id: str) -> IncidentFacts:
    """The incident's facts from all its ledgers, each verified."""
    ledgers = [read_ledger(name, d) for name, d in incident_ledger_dirs(evidence_dir, incident_id)]
    return build_incident(incident_id, ledgers)
