"""Benchmark: manual-mode intake of declaration spreadsheets (Pasal 8), validated and numbered.

    .venv/bin/python bench/manual_intake.py [--declarations 10000] [--per-file 100]
                                            [--runs 3] [--workers 20] [--format xlsx]

A real PostgreSQL (one lab ``ops-db`` under /tmp, port base ``DRP_BENCH_PORT_BASE``, default
28150, so it meets no lab or test) holds the store. The files are written first, outside the
timings: ``--declarations`` sample declarations (2 items each) spread over files of
``--per-file``. Then, per run, with fresh nomor aju so that nothing is a duplicate:

- drp, one submitter: every file through ``drp.tasks.manual.submit`` — read (openpyxl/xlrd),
  validate every cell and rule, keep the original (ops-db and a ledger per submission), number
  and register in one transaction;
- drp, ``--workers`` concurrent submitters: the same over a thread pool, each with its own
  connection; afterwards the sequence is checked: no duplicate, no gap, counter = count;
- validate + number: the same declarations from workbooks already read into cells (no file
  reading, no ledger): every rule, then the numbering transaction — the part Pasal 8(4)(a, b, c)
  asks of the application, without the spreadsheet library and the evidence fsyncs;
- floor: only reading the same files into cells (the spreadsheet library's own cost), measured
  in the same process, so drp's overhead is the ratio drp / floor.

It prints declarations per second (median of the runs) and the checks. Figures, not
thresholds: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from drp.adapters import manual_store as store  # noqa: E402
from drp.adapters import spreadsheets as ss  # noqa: E402
from drp.data.manual_samples import declarations  # noqa: E402
from drp.domain.manual.fields import DocType  # noqa: E402
from drp.domain.manual.workbook import Limits  # noqa: E402
from drp.lab.config import OPS_DATABASE  # noqa: E402
from drp.lab.core import Lab  # noqa: E402
from drp.tasks import manual as steps  # noqa: E402

PORT_BASE = int(os.environ.get("DRP_BENCH_PORT_BASE", "28150"))
INCIDENT = "inc-bench"


def write_files(
    folder: Path, tag: str, total: int, per_file: int, fmt: str, office: str
) -> list[Path]:
    """``total`` declarations (PEB and PIB alternating per file) in files of ``per_file``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, start in enumerate(range(1, total + 1, per_file)):
        doc = DocType.PEB if index % 2 else DocType.PIB
        count = min(per_file, total - start + 1)
        headers, items = declarations(
            count, doc, office=office, start=start, prefix=tag, today=date.today()
        )
        paths.append(
            ss.write_workbook(folder / f"{tag}-{index:04d}.{fmt}", doc, fmt, headers, items)
        )
    return paths


def floor(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        ss.read_workbook(path.read_bytes(), path.name, max_bytes=1 << 30)
    return time.perf_counter() - started


def intake(
    cfg: steps.ManualConfig, paths: list[Path], office: str, workers: int
) -> tuple[float, int, int]:
    started = time.perf_counter()
    if workers <= 1:
        outcomes = [steps.submit(cfg, p, office, "bench") for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda p: steps.submit(cfg, p, office, "bench"), paths))
    elapsed = time.perf_counter() - started
    registered = sum(len(o.registered) for o in outcomes)
    rejected = sum(1 for o in outcomes if not o.ok)
    if rejected:
        first = next(o for o in outcomes if not o.ok)
        print(f"  rejected files: {rejected}; first: {[str(p) for p in first.problems[:3]]}")
    return elapsed, registered, rejected


def validate_and_number(
    cfg: steps.ManualConfig, paths: list[Path], office: str
) -> tuple[float, int]:
    """Validate and number already-read workbooks (reading is outside the timing)."""
    import hashlib
    import uuid
    from datetime import UTC, datetime

    from drp.domain.manual.validation import validate_workbook

    books = []
    for path in paths:
        data = path.read_bytes()
        books.append(
            (
                hashlib.sha256(data).hexdigest(),
                data,
                ss.read_workbook(data, path.name, max_bytes=1 << 30),
            )
        )
    registered = 0
    started = time.perf_counter()
    with store.session(cfg.ops_dsn) as db:
        for sha, data, book in books:
            now = datetime.now(UTC)
            verdict = validate_workbook(
                book,
                office=office,
                requirements=cfg.requirements,
                today=date.today(),
                limits=cfg.limits,
            )
            assert verdict.ok and verdict.doc_type is not None, verdict.problems[:3]
            doc = verdict.doc_type
            submission = uuid.uuid4()
            store.keep_file(db, sha, data)
            store.open_submission(
                db,
                submission=submission,
                incident_id=INCIDENT,
                office=office,
                file_name="bench",
                sha256=sha,
                submitted_by="bench",
                ledger=None,
            )
            numbered = store.register_submission(
                db,
                submission_id=submission,
                incident_id=INCIDENT,
                office=office,
                doc_type=doc.value,
                year=now.year,
                render=lambda seq, d=doc, y=now.year: cfg.numbers.render(office, d, y, seq),
                declarations=[
                    store.NewDeclaration(
                        d.nomor_aju,
                        d.npwp,
                        d.nama,
                        d.tanggal_dokumen,
                        d.waktu_closing,
                        d.valuta,
                        d.nilai,
                        d.as_record(),
                    )
                    for d in verdict.declarations
                ],
                parsed=None,
                registered_at=now,
            )
            registered += len(numbered)
    return time.perf_counter() - started, registered


def check_sequences(cfg: steps.ManualConfig, office: str) -> str:
    year = date.today().year
    verdicts = []
    for doc in ("PIB", "PEB"):
        seqs, counter = store.sequences(cfg.ops_dsn, office, doc, year)
        dupes = len(seqs) - len(set(seqs))
        gaps = len(set(range(1, (max(seqs) if seqs else 0) + 1)) - set(seqs))
        ok = dupes == 0 and gaps == 0 and counter == len(seqs)
        verdicts.append(
            f"{doc}: {len(seqs)} numbers, {dupes} duplicate(s), {gaps} gap(s), counter "
            f"{counter} — {'OK' if ok else 'BROKEN'}"
        )
    return "; ".join(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declarations", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--format", choices=ss.FORMATS, default="xlsx")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="drp-bench-manual-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=PORT_BASE)
    ops = lab.cluster("ops-db")
    try:
        lab.cfg.root.mkdir(parents=True, exist_ok=True)
        os.chmod(lab.cfg.root, 0o755)
        ops.initdb()
        ops.start()
        ops.ensure_database(OPS_DATABASE)
        cfg = steps.ManualConfig(
            ops_dsn=ops.dsn(OPS_DATABASE),
            evidence_dir=root / "evidence",
            requirements=steps.load_requirements(None),
            numbers=steps.load_number_format(None),
            limits=Limits(
                max_bytes=64 * 1024 * 1024, max_declarations=100_000, max_items=1_000_000
            ),
            known_secrets=(lab.password(),),
        )
        print(
            f"{args.declarations} declarations per run in files of {args.per_file} "
            f"({args.format}), {args.runs} runs; writing the files…"
        )
        plan = []
        for run in range(args.runs):
            for mode in ("seq", "par", "vn"):
                office = f"{run + 1:02d}{('seq', 'par', 'vn').index(mode)}100"
                tag = f"B{run}{mode[0].upper()}"
                plan.append(
                    (
                        run,
                        mode,
                        office,
                        write_files(
                            root / "files" / tag,
                            tag,
                            args.declarations,
                            args.per_file,
                            args.format,
                            office,
                        ),
                    )
                )
        offices = sorted({o for _, _, o, _ in plan})
        steps.activate(cfg, INCIDENT, offices, ["pib", "peb"], "bench")
        seq_rates, par_rates, floor_rates, vn_rates, checks = [], [], [], [], []
        who = {"seq": "1 submitter", "par": f"{args.workers} submitters"}
        for run, mode, office, paths in plan:
            if mode == "vn":
                elapsed, registered = validate_and_number(cfg, paths, office)
                vn_rates.append(registered / elapsed)
                verdict = check_sequences(cfg, office)
                checks.append(verdict)
                print(
                    f"run {run + 1} validate+number only: {registered} in {elapsed:.2f} s = "
                    f"{vn_rates[-1]:.0f} declarations/s; {verdict}"
                )
                continue
            if mode == "seq":
                floor_s = floor(paths)
                floor_rates.append(args.declarations / floor_s)
            elapsed, registered, _rejected = intake(
                cfg, paths, office, 1 if mode == "seq" else args.workers
            )
            rate = registered / elapsed
            (seq_rates if mode == "seq" else par_rates).append(rate)
            verdict = check_sequences(cfg, office)
            checks.append(verdict)
            print(
                f"run {run + 1} {who[mode]}: "
                f"{registered} registered in {elapsed:.2f} s = {rate:.0f} declarations/s"
                + (f" (floor, reading only: {floor_rates[-1]:.0f}/s)" if mode == "seq" else "")
                + f"; {verdict}"
            )
        seq, par, flo = (statistics.median(x) for x in (seq_rates, par_rates, floor_rates))
        print()
        print(f"median, validate + number only:  {statistics.median(vn_rates):7.0f} declarations/s")
        print(f"median, 1 submitter:            {seq:7.0f} declarations/s")
        print(f"median, {args.workers} concurrent submitters: {par:7.0f} declarations/s")
        print(
            f"median, floor (read files only): {flo:7.0f} declarations/s; drp/floor time ratio "
            f"{flo / seq:.2f}x (1 submitter)"
        )
        print("sequences:", "all OK" if all("BROKEN" not in c for c in checks) else "BROKEN")
    finally:
        ops.stop(mode="fast")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
