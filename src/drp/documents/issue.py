"""Issue an incident's documents: build, render in each format, and record the issuing.

Shared by ``drp report`` and the ``reports`` flow. The documents are made from the ledgers as
they are now (each verified); the files written are then recorded, with their SHA-256, in a
``report.issued`` operator record, so that an auditor can tell a document the platform issued
from one edited afterwards, and ``drp compliance`` knows which reports exist.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drp.documents.collect import REPORTS_DIR, load_incident
from drp.documents.records import write_record
from drp.documents.render import RenderError, render
from drp.domain.evidence import sha256_hex
from drp.domain.incident import REPORT_ISSUED, IncidentFacts
from drp.domain.report import FORMATS, KINDS, Document, build_document

ServedProvider = Callable[[str], tuple[list[Mapping[str, Any]] | None, str]]
"""``incident_id -> (served documents or None when unknown, where they came from)``."""


@dataclass(frozen=True)
class IssuedFile:
    """One file written: which document, which format, where, and its digest."""

    kind: str
    format: str
    path: Path
    sha256: str
    evidence_verified: bool
    missing: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "format": self.format,
            "path": str(self.path),
            "sha256": self.sha256,
            "evidence_verified": self.evidence_verified,
            "missing": list(self.missing),
        }


def applicable_kinds(facts: IncidentFacts) -> tuple[str, ...]:
    """Every kind for a drill; every kind but the drill report for a real incident."""
    return KINDS if facts.is_drill else tuple(k for k in KINDS if k != "simulasi")


def default_out_dir(evidence_dir: Path, incident_id: str) -> Path:
    return evidence_dir / incident_id / REPORTS_DIR


def issue_reports(
    evidence_dir: Path,
    incident_id: str,
    *,
    kinds: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    out_dir: Path | None = None,
    template_dir: Path | None = None,
    served: ServedProvider | None = None,
    now: datetime | None = None,
    record: bool = True,
) -> tuple[IncidentFacts, list[Document], list[IssuedFile]]:
    """Render the documents; nothing is recorded unless every file was written."""
    facts = load_incident(evidence_dir, incident_id)
    chosen = tuple(kinds) if kinds else applicable_kinds(facts)
    fmts = tuple(formats) if formats else FORMATS
    for fmt in fmts:
        if fmt not in FORMATS:
            raise RenderError(f"unknown format {fmt!r} (hint: one of {', '.join(FORMATS)})")
    for kind in chosen:
        if kind not in KINDS:
            raise RenderError(f"unknown document kind {kind!r} (hint: one of {', '.join(KINDS)})")
    moment = now or datetime.now(UTC)
    served_docs, source = (None, "penyimpanan mode manual tidak dihubungkan")
    if served is not None and {"berita-acara", "pasca"} & set(chosen):
        served_docs, source = served(incident_id)
    docs = [
        build_document(k, facts, issued_at=moment, served=served_docs, served_source=source)
        for k in chosen
    ]
    target = out_dir or default_out_dir(evidence_dir, incident_id)
    target.mkdir(parents=True, exist_ok=True)
    issued: list[IssuedFile] = []
    # Everything is rendered aside first: a failure (a broken template, PDF) leaves the
    # directory as it was, never half of a new set beside half of the old one.
    with tempfile.TemporaryDirectory(prefix=".drp-render-", dir=target) as staging:
        staged = [
            (doc, fmt, render(doc, fmt, Path(staging), template_dir))
            for doc in docs
            for fmt in fmts
        ]
        for doc, fmt, path in staged:
            final = target / path.name
            os.replace(path, final)
            issued.append(
                IssuedFile(
                    doc.kind,
                    fmt,
                    final,
                    sha256_hex(final.read_bytes()),
                    doc.evidence_verified,
                    doc.all_missing,
                )
            )
    if record and issued:
        write_record(
            evidence_dir,
            incident_id,
            REPORT_ISSUED,
            "report",
            {
                "kinds": list(chosen),
                "formats": list(fmts),
                "evidence_verified": facts.evidence_verified,
                "files": [
                    {"kind": f.kind, "format": f.format, "name": f.path.name, "sha256": f.sha256}
                    for f in issued
                ],
            },
            now=moment,
        )
    return facts, docs, issued
