"""The production topology on the lab: Prefect's server on PostgreSQL behind its basic auth, a
process worker per site, flows deployed from prefect.yaml, schedules that fire — and losing the DC
does not lose the orchestrator.

One lab, one server and two workers for the whole module (they cost about 20 s to bring up). The
server's database is the lab's ops-db (database ``prefect``); the workers are started with
``drp workers up``'s code and stopped by ``drp lab break dc-power-loss`` as the DC's processes
are. The server's scheduler loops every 2 s here (Prefect's default is 60 s) so that the
scheduling test takes seconds; every client of the server, this test process included, sends the
lab's credential (``Orchestrator.client_env``).
"""

from __future__ import annotations

import contextvars
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from drp.adapters import postgres as pg
from drp.flows import load
from drp.lab.config import repo_root
from drp.lab.core import Lab
from drp.lab.procs import pid_alive
from drp.ledger import read_records, verify_ledger
from drp.polling import poll
from drp.prefect_server import Orchestrator

pytestmark = pytest.mark.e2e

BASE = int(os.environ.get("DRP_TEST_PORT_BASE", "26400"))
LAB_PORT_BASE = BASE + 400  # the e2e labs' ports (one lab at a time in a session)
SERVER_PORT = BASE + 870  # this module's Prefect server (tests/conftest.py lists the ranges)
USED_DEPLOYMENTS = ("failover",)
SCHEDULER_LOOP_S = 2  # the server's scheduler loop (Prefect's default: 60 s)
SHORT_INTERVAL_S = 5  # the replication check's schedule in the scheduling test (prefect.yaml: 300)
NGINX_PORT = BASE + 871  # the documented nginx in front of the server: TLS (+872: plain HTTP)


@dataclass(frozen=True)
class Topology:
    lab: Lab
    orchestrator: Orchestrator
    api: str
    evidence: Path


def _deploy(orch: Orchestrator, names: tuple[str, ...], prefect_file: Path | None = None) -> str:
    """``prefect --no-prompt deploy`` of the named deployments of the repository's prefect.yaml
    (or of a copy with changes), as an operator runs it: with the server's address and
    credential in the environment (only those whose flow file exists: some land later)."""
    spec = yaml.safe_load((prefect_file or repo_root() / "prefect.yaml").read_text())
    present = [
        d["name"]
        for d in spec["deployments"]
        if d["name"] in names and (repo_root() / d["entrypoint"].split(":")[0]).exists()
    ]
    assert present == list(names), f"missing flow files for {set(names) - set(present)}"
    args = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    if prefect_file is not None:
        args += ["--prefect-file", str(prefect_file)]
    for name in present:
        args += ["--name", name]
    env = {**os.environ, **orch.client_env()}
    proc = subprocess.run(
        args, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _drain_prefect_clients() -> None:
    """Send what this process's Prefect clients still queue for this module's server (events,
    logs) while it is up. Left queued, they are retried against a stopped server at the end of
    the session, where the test harness waits for every queue to drain: the session never ends."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    EventsWorker.drain_all(timeout=30)
    APILogWorker.drain_all(timeout=30)


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    root = Path(tempfile.mkdtemp(prefix="drp-e2e-topology-", dir="/tmp"))
    os.chmod(root, 0o755)
    lab = Lab.from_env(root=root / "lab", port_base=LAB_PORT_BASE)
    evidence = root / "evidence"
    with pytest.MonkeyPatch.context() as mp:
        # Workers pass their environment to their flow runs: the lab and evidence are found
        # through these, as on a real worker host.
        mp.setenv("DRP_LAB_ROOT", str(lab.cfg.root))
        mp.setenv("DRP_EVIDENCE_DIR", str(evidence))
        # The real path: every lab host over SSH with host-key checking (inventory/lab-ssh.yml).
        mp.setenv("DRP_LAB_INVENTORY", "ssh")
        mp.delenv("PREFECT_API_URL", raising=False)
        mp.delenv("PREFECT_API_AUTH_STRING", raising=False)
        mp.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", raising=False)
        # The server reads these from the environment it is started in.
        mp.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", str(SCHEDULER_LOOP_S))
        mp.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS", "6")  # not 100 runs ahead
        orch = Orchestrator(lab)
        try:
            lab.up()
            server = orch.server_up(port=SERVER_PORT)
            orch.workers_up(poll_s=1.0)
            _deploy(orch, USED_DEPLOYMENTS)
            client = orch.client_env()
            updates = {
                PREFECT_API_URL: client["PREFECT_API_URL"],
                PREFECT_API_AUTH_STRING: client["PREFECT_API_AUTH_STRING"],
            }
            with temporary_settings(updates=updates):
                yield Topology(lab, orch, server["api"], evidence)
                _drain_prefect_clients()
        finally:
            orch.workers_down()
            orch.server_down()
            lab.down()
            shutil.rmtree(root, ignore_errors=True)


def test_the_server_keeps_its_state_in_postgresql_and_each_site_has_a_worker(
    topology: Topology,
) -> None:
    status = topology.orchestrator.server_status()
    assert status["healthy"] and status["version"] == "3.8.8"
    assert status["database"].startswith("postgresql+asyncpg://drp:***@127.0.0.1:")
    pools = {pool: [w["name"] for w in ws] for pool, ws in status["pools"].items()}
    assert pools == {"dc": ["dc-worker"], "drc": ["drc-worker"]}
    prefect_db = topology.lab.cluster("ops-db").dsn("prefect")
    rows = pg.query(
        prefect_db,
        "SELECT d.name, wp.name FROM deployment d JOIN work_queue wq ON wq.id = d.work_queue_id"
        " JOIN work_pool wp ON wp.id = wq.work_pool_id",
    )
    assert ("failover", "drc") in rows
    assert pg.query(prefect_db, "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    # The database password and the API credential never reach the state file, the logs or the
    # orchestrator's ledger; the credential's file is the owner's alone.
    password = topology.lab.password()
    auth = topology.orchestrator.auth_string()
    credential = auth.partition(":")[2]
    places = [topology.lab.cfg.state_file, *topology.lab.cfg.logs.glob("*.log")]
    places += list((topology.evidence / "platform").rglob("*.jsonl"))
    for place in places:
        text = place.read_text(errors="replace")
        assert password not in text and credential not in text, place
    assert stat.S_IMODE(topology.orchestrator.auth_file.stat().st_mode) == 0o600
    assert verify_ledger(topology.evidence / "platform" / "orchestrator").ok


def _get(url: str, authorization: str | None) -> int:
    request = urllib.request.Request(url, method="GET")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_server_refuses_a_request_without_the_lab_credential(topology: Topology) -> None:
    import base64

    url = f"{topology.api}/admin/version"
    wrong = "Basic " + base64.b64encode(b"drp:not-the-credential").decode()
    right = "Basic " + base64.b64encode(topology.orchestrator.auth_string().encode()).decode()
    assert _get(url, None) == 401
    assert _get(url, wrong) == 401
    assert _get(url, right) == 200
    assert _get(f"{topology.api}/health", None) == 200  # Prefect keeps the probe open
    assert topology.orchestrator.client_env() == {
        "PREFECT_API_URL": topology.api,
        "PREFECT_API_AUTH_STRING": topology.orchestrator.auth_string(),
    }


def test_the_cli_reports_the_server_and_the_workers(topology: Topology) -> None:
    from typer.testing import CliRunner

    from drp.cli import app

    root = ["--root", str(topology.lab.cfg.root), "--json"]
    server = CliRunner().invoke(app, ["server", "status", *root])
    assert server.exit_code == 0, server.output
    assert json.loads(server.output)["api"] == topology.api
    again = CliRunner().invoke(app, ["server", "up", "--port", str(SERVER_PORT), *root])
    assert (
        again.exit_code == 0 and json.loads(again.output)["pid"] == json.loads(server.output)["pid"]
    )
    workers = CliRunner().invoke(app, ["workers", "status", *root])
    assert workers.exit_code == 0, workers.output
    assert {s: (w["running"], w["pool"]) for s, w in json.loads(workers.output).items()} == {
        "dc": (True, "dc"),
        "drc": (True, "drc"),
    }


def _documented_nginx() -> str:
    """The nginx block of docs/production.md, as an operator copies it."""
    text = (repo_root() / "docs" / "production.md").read_text()
    blocks = text.split("```nginx\n")
    assert len(blocks) == 2, "docs/production.md must hold exactly one ```nginx block"
    return blocks[1].split("```", 1)[0]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for prefect.drc.example.org and 127.0.0.1 (one day)."""
    import ipaddress
    from datetime import UTC, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prefect.drc.example.org")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("prefect.drc.example.org"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "prefect.crt", directory / "prefect.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(pem, 0o600)
    return crt, pem


def test_the_documented_nginx_serves_only_the_ui_and_the_api_over_tls_in_front_of_the_server(
    topology: Topology,
) -> None:
    """docs/production.md's nginx, with only this host's specifics replaced: `nginx -t` accepts
    it, and in front of the lab's server it answers over TLS as the page says."""
    import base64
    import ssl

    from drp.lab.procs import read_pidfile, terminate

    # Beside the lab (a 0755 directory): nginx's workers run as nobody and must reach their
    # temporary files.
    site = topology.lab.cfg.root.parent / "nginx"
    (site / "tmp").mkdir(parents=True)
    os.chmod(site / "tmp", 0o777)
    crt, key = _self_signed(site)
    server_port = int(topology.api.rsplit(":", 1)[1].split("/")[0])
    block = _documented_nginx()
    specifics = {  # production's values -> this host's; each must be on the page
        "listen 443 ssl http2;": f"listen 127.0.0.1:{NGINX_PORT} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{NGINX_PORT + 1};",
        "server 127.0.0.1:4200;": f"server 127.0.0.1:{server_port};",
        "/etc/ssl/drp/prefect.crt": str(crt),
        "/etc/ssl/drp/prefect.key": str(key),
        "/var/log/nginx/": f"{site}/",
        "allow 10.20.0.0/16;": "allow 127.0.0.1;",
    }
    for production, here in specifics.items():
        assert production in block, f"docs/production.md's nginx no longer has {production!r}"
        block = block.replace(production, here)
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {site}/tmp/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = site / "nginx.conf"
    conf.write_text(
        f"{user}pid {site}/nginx.pid;\nerror_log {site}/error.log warn;\n"
        f"events {{}}\nhttp {{\n{temp}{block}}}\n"
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run(
        [nginx, "-t", "-p", str(site), "-c", str(conf)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr

    started = subprocess.run(
        [nginx, "-p", str(site), "-c", str(conf)], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    try:
        tls = ssl.create_default_context(cafile=str(crt))
        https = f"https://127.0.0.1:{NGINX_PORT}"
        credential = (
            "Basic " + base64.b64encode(topology.orchestrator.auth_string().encode()).decode()
        )

        def get(path: str, authorization: str | None = None) -> tuple[int, bytes]:
            request = urllib.request.Request(https + path)
            if authorization:
                request.add_header("Authorization", authorization)
            try:
                with urllib.request.urlopen(request, timeout=10, context=tls) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        assert get("/api/health") == (200, b"true")
        assert get("/api/admin/version")[0] == 401
        assert get("/api/admin/version", credential) == (200, b'"3.8.8"')
        for hidden in ("/docs", "/redoc", "/openapi.json", "/api/docs", "/api/openapi.json"):
            assert get(hidden, credential)[0] == 404, hidden
        status, page = get("/")
        assert status == 200 and b"<html" in page.lower()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as plain:
            opener.open(f"http://127.0.0.1:{NGINX_PORT + 1}/api/health", timeout=10)
        assert plain.value.code == 301
        assert plain.value.headers["Location"] == "https://127.0.0.1/api/health"
    finally:
        terminate(read_pidfile(site / "nginx.pid"), str(conf))  # the master, by its -c


def test_a_short_schedule_from_prefect_yaml_gets_runs_from_the_scheduler_run_by_the_drc_worker(
    topology: Topology, tmp_path: Path
) -> None:
    """prefect.yaml's replication-check with its schedule shortened to every few seconds: the
    server's scheduler (on PostgreSQL, with the lock's SQLAlchemy) creates its runs, keeps
    creating them loop after loop, and the DRC's worker runs them to completion; `drp server
    status` reports the scheduler healthy. Deleting the deployment leaves it idle."""
    from prefect.client.orchestration import get_client
    from typer.testing import CliRunner

    from drp.cli import app

    spec = yaml.safe_load((repo_root() / "prefect.yaml").read_text())
    (check,) = [d for d in spec["deployments"] if d["name"] == "replication-check"]
    assert check["schedules"] == [{"interval": 300}]
    check["schedules"] = [{"interval": SHORT_INTERVAL_S}]
    shortened = tmp_path / "prefect.yaml"
    shortened.write_text(yaml.safe_dump(spec, sort_keys=False))
    _deploy(topology.orchestrator, ("replication-check",), prefect_file=shortened)
    status_cmd = ["server", "status", "--root", str(topology.lab.cfg.root), "--json"]
    try:

        def observe() -> list[Any]:
            return [r for r in _flow_runs_of("replication-check") if r.auto_scheduled]

        def enough(runs: list[Any]) -> bool:
            """Two runs done, and runs created at least one interval apart: the scheduler
            kept topping the schedule up, loop after loop, not only once at the deploy."""
            completed = [r for r in runs if r.state_type.value == "COMPLETED"]
            created = [r.created for r in runs]
            spread = (max(created) - min(created)).total_seconds() if created else 0.0
            return len(completed) >= 2 and spread >= SHORT_INTERVAL_S

        done, runs = poll(observe, enough, timeout=240, interval=1.0)
        seen = sorted((r.state_type.value, str(r.created)) for r in runs)
        assert done, f"auto-scheduled runs after 240 s: {seen}"
        completed = [r for r in runs if r.state_type.value == "COMPLETED"]
        assert {r.work_pool_name for r in completed} == {"drc"}
        drc_log = (topology.lab.cfg.logs / "worker-drc.log").read_text(errors="replace")
        assert all(str(r.id) in drc_log for r in completed)
        assert all(r.parameters == {"runbook": "runbooks/lab.yaml"} for r in completed)

        result = CliRunner().invoke(app, status_cmd)
        assert result.exit_code == 0, result.output
        scheduler = json.loads(result.output)["scheduler"]
        assert scheduler["state"] == "healthy" and scheduler["ok"], scheduler
        assert scheduler["settings"]["loop_seconds"] == SCHEDULER_LOOP_S
        (row,) = scheduler["deployments"]
        assert row["deployment"] == "replication-check/replication-check"
        assert row["schedules"] == [f"every {SHORT_INTERVAL_S} s"] and row["upcoming"] >= 1
        assert row["last_auto_run"]["state"] in ("COMPLETED", "RUNNING", "FAILED")
        newest = scheduler["newest_auto_scheduled"]
        assert newest["deployment"] == row["deployment"]
        assert datetime.fromisoformat(newest["created"]) >= max(r.created for r in runs)
        assert scheduler["log_errors"]["count"] == 0
    finally:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("replication-check/replication-check")
            client.delete_deployment(deployment.id)
    idle = CliRunner().invoke(app, status_cmd)
    assert idle.exit_code == 0, idle.output
    assert json.loads(idle.output)["scheduler"]["state"] == "idle"


def test_ten_replication_checks_at_once_complete_without_database_is_locked(
    topology: Topology,
) -> None:
    """Ten flow runs write to the server at the same moment (the SQLite failure mode)."""
    flow = load("replication").replication_check
    start = threading.Barrier(10)

    def one(_: int) -> dict[str, Any]:
        start.wait(timeout=60)
        return flow(runbook="runbooks/lab.yaml")

    # Each thread gets the test's Prefect settings (a context variable): the server's address.
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, i) for i in range(10)]
        results = [f.result(timeout=300) for f in futures]
    assert [r["status"] for r in results] == ["ready"] * 10

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["replication-check"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
        )
    assert len(runs) >= 10
    prefect_db = topology.lab.cluster("ops-db").dsn("prefect")
    ids = [str(r.id) for r in runs]
    stored = pg.query(prefect_db, "SELECT count(*) FROM flow_run WHERE id::text = ANY(%s)", (ids,))
    assert stored[0][0] == len(ids)  # the history is in PostgreSQL
    server_log = (topology.lab.cfg.logs / "prefect-server.log").read_text(errors="replace")
    assert "database is locked" not in server_log


def _flow_runs_of(deployment: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            sort=FlowRunSort.START_TIME_ASC,
        )


def _readme_first_hour() -> list[str]:
    """The commands of the README's "Your first hour" block, one per line (continuations joined,
    comments dropped)."""
    text = (repo_root() / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your first hour", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands, pending = [], ""
    for line in block.splitlines():
        code = line.split(" #", 1)[0].rstrip()
        if code.endswith("\\"):
            pending += code[:-1]
            continue
        if (pending + code).strip():
            commands.append(" ".join((pending + code).split()))
        pending = ""
    return commands


def test_the_readme_first_hour_runs_as_written(topology: Topology) -> None:
    """The README's first hour, run as written with ``.venv/bin`` on the PATH, against this
    module's lab: ``make deploy`` is what the fixture did (lab, server on ops-db, a worker per
    site, the failover deployed) and ``make drill`` is run by the drill tests
    (tests/e2e/test_drill.py); every other line runs here, and the failover it starts waits at
    its approval gate until it is answered as the UI's form answers it (a roster choice and the
    approver's one-time code), then recovers the service. The lab's sites are reset after."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run
    from roster_codes import approval_input

    commands = _readme_first_hour()
    assert commands[0] == "make drill" and "make deploy" in commands
    assert commands[-1].startswith("drp server exec -- prefect deployment run failover/failover")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DRP_LAB_ROOT": str(topology.lab.cfg.root),
        "DRP_LAB_PORT_BASE": str(LAB_PORT_BASE),
    }
    for name in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING"):
        env.pop(name, None)  # drp server exec must give them itself
    outputs = {}
    for command in commands:
        if command.startswith("make "):
            continue
        proc = subprocess.run(
            command,
            shell=True,
            cwd=repo_root(),
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        outputs[command] = proc.stdout
    assert "Sari" in next(o for c, o in outputs.items() if c.startswith("drp roster list"))
    assert "Predicted RTO" in next(o for c, o in outputs.items() if c.startswith("drp plan"))

    (started,) = [
        r
        for r in _flow_runs_of("failover")
        if r.parameters.get("category") == "parsial_nasional" and "approved_by" not in r.parameters
    ]
    try:
        with get_client(sync_client=True) as client:
            paused, state = poll(
                lambda: client.read_flow_run(started.id).state,
                lambda st: st is not None and st.is_paused(),
                timeout=240,
                interval=0.5,
            )
            assert paused, f"the README's failover never waited at its approval gate: {state}"
            resume_flow_run(started.id, run_input=approval_input("Sari"))
            ended, final = poll(
                lambda: client.read_flow_run(started.id).state,
                lambda st: st is not None and st.is_final(),
                timeout=240,
                interval=0.5,
            )
        assert ended and final.is_completed(), final
        assert topology.lab.status()["active_site"] == "drc"
    finally:
        topology.lab.reset()


def test_with_the_dc_lost_the_drc_worker_runs_the_failover_and_a_crashed_run_is_finished(
    topology: Topology,
) -> None:
    from prefect.deployments import run_deployment

    lab, orch = topology.lab, topology.orchestrator
    before = orch.workers_status()
    assert before["dc"]["running"] and before["drc"]["running"]

    lab.break_("dc-power-loss")
    after = orch.workers_status()
    assert not after["dc"]["running"] and not pid_alive(before["dc"]["pid"])
    assert after["drc"]["running"]

    incident = f"inc-topology-{uuid.uuid4().hex[:6]}"
    parameters = {
        "mode": "drill",  # no default: whoever starts a failover chooses
        "declared_by": "Budi",
        "approved_by": "Budi",
        "confirm_dc_isolated_by": "Sari",
        "incident_id": incident,
    }
    # First attempt: the flow-run process dies right after promotion (as when the host running
    # it goes down); the DRC worker sees it exit and Prefect marks the run crashed.
    crashed = run_deployment(
        "failover/failover",
        parameters=parameters,
        job_variables={"env": {"DRP_CRASH_AFTER_STEP": "promote-drc-db"}},
        timeout=240,
    )
    assert crashed.state is not None and crashed.state.is_crashed(), crashed.state
    st = lab.status()
    assert st["components"]["drc-db"]["role"] == "primary" and st["active_site"] == "dc"

    # Re-running the incident finishes it: the steps already done are not done twice.
    finished = run_deployment("failover/failover", parameters=parameters, timeout=240)
    assert finished.state is not None and finished.state.is_completed(), finished.state
    st = lab.status()
    assert st["active_site"] == "drc" and st["components"]["drc-db"]["writable"]

    ledger = topology.evidence / incident / "failover"
    assert verify_ledger(ledger).ok
    records = [r for _, r in read_records(ledger) if not isinstance(r, str)]
    starts = [r.data for r in records if r.kind == "attempt.start"]
    assert [s["flow_run_id"] for s in starts] == [str(crashed.id), str(finished.id)]
    ends = [r.data for r in records if r.kind == "step.end"]
    assert [e["status"] for e in ends if e["step_id"] == "promote-drc-db"] == [
        "done",
        "already_done",
    ]
    assert records[-1].kind == "ledger.close"

    # The run history on the server shows both, on the DRC's pool, run by the DRC's worker.
    history = [r for r in _flow_runs_of("failover") if r.parameters.get("incident_id") == incident]
    assert [(r.state_type.value, r.work_pool_name) for r in history] == [
        ("CRASHED", "drc"),
        ("COMPLETED", "drc"),
    ]
    drc_log = (lab.cfg.logs / "worker-drc.log").read_text(errors="replace")
    dc_log = (lab.cfg.logs / "worker-dc.log").read_text(errors="replace")
    for run in history:
        assert str(run.id) in drc_log and str(run.id) not in dc_log


def test_an_approval_given_as_a_deployment_parameter_is_recorded_as_such_and_needs_a_code_for_real(
    topology: Topology,
) -> None:
    """``approved_by`` set when a deployment run is created is nobody's proven word: drp records
    the channel ``deployment-parameter`` (not ``cli``), and a real failover refuses it without a
    one-time code, before anything changes."""
    from prefect.deployments import run_deployment

    drilled = [
        r.data
        for ledger in topology.evidence.glob("inc-topology-*/failover")
        for _, r in read_records(ledger)
        if not isinstance(r, str) and r.kind == "approval.granted"
    ]
    assert drilled and {(d["channel"], d["identity"]) for d in drilled} == {
        ("deployment-parameter", "none (drill, deployment parameter)")
    }
    incident = f"inc-param-{uuid.uuid4().hex[:6]}"
    run = run_deployment(
        "failover/failover",
        parameters={
            "declared_by": "Budi",
            "approved_by": "Sari",
            "mode": "real",
            "category": "katastropik",
            "incident_id": incident,
        },
        timeout=240,
    )
    assert run.state is not None and run.state.is_failed(), run.state
    records = [
        r
        for _, r in read_records(topology.evidence / incident / "failover")
        if not isinstance(r, str)
    ]
    (refused,) = [r.data for r in records if r.kind == "approval.refused"]
    assert refused["channel"] == "deployment-parameter" and "approval_code" in refused["reason"]
    assert not [r for r in records if r.kind == "step.start"]
