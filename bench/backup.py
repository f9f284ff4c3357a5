"""Benchmark: drp's backup and full verification beside raw pg_basebackup + pg_verifybackup.

    .venv/bin/python bench/backup.py [--size-mb 1024] [--runs 3] [--repository s3|local]

Builds one PostgreSQL server (port base 29140, on loopback) with a table of about ``--size-mb``
of data, and an S3 endpoint (moto's server mode on 127.0.0.1:29190, boto3 over HTTP). Then, in
the same process, each run times:

- drp take:    row counts and checksums of the table before and after, ``pg_basebackup -Ft -X
               stream`` with a manifest, SHA-256 of every file, multipart upload with checksums;
- drp verify:  the verification part (fetch each object once, hashing and unpacking it in one
               pass, the WAL segment check, ``pg_verifybackup``), and separately the restore test
               (start a scratch PostgreSQL on the copy, compare counts and checksums, remove);
- raw:         ``pg_basebackup -Fp -X stream`` into a directory, then ``pg_verifybackup`` on it;
- raw tar:     ``pg_basebackup -Ft -X stream``, then GNU ``tar -xf`` and ``pg_verifybackup`` (how a
               tar-format backup is verified by hand before PostgreSQL 18).

It prints the median of the runs for each part and the ratios drp/raw for the verification part
(restore excluded; against both baselines) and for backup + verification. Figures, not
thresholds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from drp.adapters import pgbackup  # noqa: E402
from drp.adapters import postgres as pg  # noqa: E402
from drp.adapters.objectstore import LocalRepository, S3Repository  # noqa: E402
from drp.domain.backup import BackupPolicy, TableRef  # noqa: E402
from drp.lab.config import LabConfig, find_pg_bin, run_as_user  # noqa: E402
from drp.lab.pgcluster import Cluster  # noqa: E402
from drp.runbooks import load_runbook  # noqa: E402
from drp.tasks import backups  # noqa: E402

PORT_BASE = 29140  # the database on 29141; restore test on 29150; S3 on 29190
RESTORE_PORT = PORT_BASE + 10
S3_PORT = 29190
ROW_BYTES = 1000
LINES = (
    ("drp take (checksums, pg_basebackup -Ft, SHA-256, upload)", "drp_take_s"),
    ("  table counts + checksums (before and after)", "take_tables_s"),
    ("  pg_basebackup -Ft -X stream", "take_basebackup_s"),
    ("  SHA-256 of the files", "take_digest_s"),
    ("  upload (multipart, checksummed)", "take_upload_s"),
    ("raw pg_basebackup -Fp -X stream", "raw_basebackup_s"),
    ("drp verification (restore excluded)", "drp_verification_s"),
    ("  fetch + SHA-256 + unpack (one pass)", "drp_fetch_unpack_s"),
    ("  pg_verifybackup", "drp_pg_verifybackup_s"),
    ("raw pg_verifybackup (plain directory)", "raw_verifybackup_s"),
    ("raw tar -xf + pg_verifybackup (tar format)", "raw_tar_verify_s"),
    ("drp restore test (start, compare, stop, remove)", "drp_restore_s"),
)


def build_database(root: Path, size_mb: int) -> Cluster:
    cfg = LabConfig(root=root / "lab", port_base=PORT_BASE)
    cfg.root.mkdir(parents=True)
    os.chmod(cfg.root, 0o755)
    cluster = Cluster(cfg, "dc-db", find_pg_bin(), run_as_user(), "bench-" + os.urandom(6).hex())
    cluster.initdb()
    cluster.start()
    cluster.ensure_database("skp")
    rows = max(1, size_mb * 1024 * 1024 // (ROW_BYTES + 40))
    print(f"filling skp.public.bench_rows with {rows} rows (~{size_mb} MB)...", flush=True)
    started = time.monotonic()
    with pg.connect(cluster.dsn("skp"), statement_timeout_ms=3_600_000) as conn:
        conn.execute("CREATE TABLE bench_rows (id bigint PRIMARY KEY, payload text NOT NULL)")
        # Incompressible-looking payload: 31 md5s (992 hex chars) per row.
        conn.execute(
            "INSERT INTO bench_rows SELECT g, (SELECT string_agg(md5(g::text || '-' || i), '')"
            " FROM generate_series(1, 31) i) FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CHECKPOINT")
        size = conn.execute("SELECT pg_database_size('skp')").fetchone()[0]  # type: ignore[index]
    print(f"  {size / 1e6:.0f} MB in {time.monotonic() - started:.1f} s", flush=True)
    return cluster


def context(cluster: Cluster, repo: object, root: Path) -> backups.BackupContext:
    policy = BackupPolicy(
        repository="s3" if isinstance(repo, S3Repository) else "local",
        prefix="bench",
        tables=(TableRef(database="skp", table="public.bench_rows"),),
    )
    return backups.BackupContext(
        runbook=load_runbook(REPO / "runbooks" / "lab.yaml"),
        policy=policy,
        database="bench-db",
        primary_dsn=cluster.dsn("skp"),
        repository=repo,  # type: ignore[arg-type]
        pg_bin=find_pg_bin(),
        run_as=run_as_user(),
        scratch_root=root,
        restore_port=RESTORE_PORT,
        evidence_dir=root / "evidence",
        known_secrets=(cluster.password,),
    )


def one_run(ctx: backups.BackupContext, cluster: Cluster, root: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    ledger = backups.open_ledger(ctx, "take")
    started = time.monotonic()
    manifest = backups.take_backup(ctx, ledger)
    figures["drp_take_s"] = time.monotonic() - started
    ledger.close()
    last = (ledger.directory / "ledger.jsonl").read_text().splitlines()[-2]
    for phase, seconds in json.loads(last)["data"]["timings"].items():
        figures[f"take_{phase}"] = seconds
    ledger = backups.open_ledger(ctx, "verify")
    started = time.monotonic()
    result = backups.verify_backup(ctx, ledger, backup_id=manifest.backup_id)
    figures["drp_verify_total_s"] = time.monotonic() - started
    ledger.close()
    if not result.ok:
        raise SystemExit(f"verification failed: {result.reasons}")
    figures["drp_verification_s"] = result.timings["verification_s"]
    figures["drp_fetch_unpack_s"] = result.timings["fetch_and_unpack_s"]
    figures["drp_pg_verifybackup_s"] = result.timings["pg_verifybackup_s"]
    figures["drp_restore_s"] = result.timings["restore_s"]
    figures["size_mb"] = manifest.size / 1e6
    for obj in manifest.objects:  # keep the repository from growing across runs
        ctx.repository.delete(f"bench/{manifest.backup_id}/{obj.name}")
    ctx.repository.delete(f"bench/{manifest.backup_id}/drp-manifest.json")

    raw = Path(tempfile.mkdtemp(prefix="drp-bench-raw-", dir=root))
    conn = pgbackup.Conn.parse(cluster.dsn())
    argv = [
        str(ctx.pg_bin / "pg_basebackup"),
        "-D",
        str(raw / "data"),
        "-Fp",
        "-X",
        "stream",
        "-c",
        "fast",
        "--no-password",
        "-d",
        conn.conninfo,
    ]
    started = time.monotonic()
    pgbackup.run_tool(argv, password=conn.password)
    figures["raw_basebackup_s"] = time.monotonic() - started
    started = time.monotonic()
    pgbackup.run_tool(pgbackup.verifybackup_argv(ctx.pg_bin, raw / "data"))
    figures["raw_verifybackup_s"] = time.monotonic() - started
    shutil.rmtree(raw)
    figures.update(raw_tar(ctx, conn, root))
    return figures


def raw_tar(ctx: backups.BackupContext, conn: pgbackup.Conn, root: Path) -> dict[str, float]:
    """The by-hand way with a tar-format backup on PostgreSQL < 18: GNU tar, then verify."""
    raw = Path(tempfile.mkdtemp(prefix="drp-bench-rawtar-", dir=root))
    argv = pgbackup.basebackup_argv(ctx.pg_bin, raw / "tar", conn, "raw")
    started = time.monotonic()
    pgbackup.run_tool(argv, password=conn.password)
    figures = {"raw_tar_basebackup_s": time.monotonic() - started}
    started = time.monotonic()
    data = raw / "data"
    (data / "pg_wal").mkdir(parents=True)
    pgbackup.run_tool(["tar", "-xf", str(raw / "tar" / "base.tar"), "-C", str(data)])
    pgbackup.run_tool(["tar", "-xf", str(raw / "tar" / "pg_wal.tar"), "-C", str(data / "pg_wal")])
    shutil.copyfile(raw / "tar" / "backup_manifest", data / "backup_manifest")
    pgbackup.run_tool(pgbackup.verifybackup_argv(ctx.pg_bin, data))
    figures["raw_tar_verify_s"] = time.monotonic() - started
    shutil.rmtree(raw)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repository", choices=("s3", "local"), default="s3")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="drp-bench-backup-", dir="/tmp"))
    os.chmod(root, 0o755)
    server = None
    cluster = None
    try:
        cluster = build_database(root, args.size_mb)
        if args.repository == "s3":
            from moto.server import ThreadedMotoServer

            os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
            server.start()
            repo: object = S3Repository.connect(
                f"http://127.0.0.1:{S3_PORT}", "us-east-1", "drp-bench"
            )
            repo.ensure_bucket()  # type: ignore[attr-defined]
        else:
            repo = LocalRepository(root / "repo")
        ctx = context(cluster, repo, root)
        runs = []
        for number in range(1, args.runs + 1):
            figures = one_run(ctx, cluster, root)
            runs.append(figures)
            print(f"run {number}: " + json.dumps({k: round(v, 2) for k, v in figures.items()}))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        verify_ratio = med["drp_verification_s"] / med["raw_verifybackup_s"]
        total_ratio = (med["drp_take_s"] + med["drp_verification_s"]) / (
            med["raw_basebackup_s"] + med["raw_verifybackup_s"]
        )
        print()
        print(f"median of {args.runs} runs, {med['size_mb']:.0f} MB backup, {args.repository}:")
        for label, key in LINES:
            print(f"  {label:<52} {med[key]:8.2f} s")
        print(f"  {'ratio verification drp/raw (restore excluded)':<52} {verify_ratio:8.2f}x")
        print(f"  {'ratio backup+verification drp/raw':<52} {total_ratio:8.2f}x")
        tar_ratio = med["drp_verification_s"] / med["raw_tar_verify_s"]
        print(f"  {'ratio verification drp/raw tar -xf + verify':<52} {tar_ratio:8.2f}x")
    finally:
        if cluster is not None:
            cluster.stop(mode="immediate")
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
