"""Benchmark: making an incident's documents, against reading and verifying its evidence.

Usage: ``.venv/bin/python bench/reports.py EVIDENCE_DIR INCIDENT [--runs 5]`` (after
``make drill``: ``evidence drill-...``). Prints the median of each stage over the runs, and the
ratio of each to the baseline measured in the same process: reading and verifying every ledger
of the incident (what any document must do first).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from drp.documents.collect import load_incident
from drp.documents.issue import applicable_kinds
from drp.documents.render import render
from drp.domain.report import build_document


def median_s(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evidence_dir", type=Path)
    parser.add_argument("incident_id")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    facts = load_incident(args.evidence_dir, args.incident_id)
    kinds = applicable_kinds(facts)
    now = datetime.now(UTC)
    docs = [build_document(k, facts, issued_at=now) for k in kinds]
    records = sum(x.records for x in facts.ledgers)
    print(
        f"incident {args.incident_id}: {len(facts.ledgers)} ledgers, {records} records, "
        f"{len(kinds)} documents, median of {args.runs} runs"
    )
    baseline = median_s(lambda: load_incident(args.evidence_dir, args.incident_id), args.runs)
    print(f"  baseline: read + verify the ledgers      {baseline * 1000:8.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("md", "html", "xlsx", "pdf"):
            took = median_s(lambda f=fmt: [render(d, f, Path(tmp)) for d in docs], args.runs)
            print(
                f"  {fmt:4} all {len(docs)} documents              {took * 1000:8.1f} ms "
                f"({took / baseline:6.1f}x baseline)"
            )


if __name__ == "__main__":
    main()
