"""The lab's PostgreSQL servers: build, start, stop, crash (no policy, just the mechanics).

Servers run as the unprivileged lab user when we are root. Each listens on 127.0.0.1 only, on
its own port, with scram-sha-256 authentication and no Unix socket (socket paths under a deep
checkout can exceed the 107-byte limit). Data checksums are on, so that ``pg_rewind`` can later
rebuild an old primary as a standby. Everything that user opens (data directory, log, initdb's
password file) is under the lab's server directory (:attr:`LabConfig.servers`), which it can
reach wherever the checkout is.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from pathlib import Path

from drp.adapters import postgres as pg
from drp.errors import LabError
from drp.lab.config import APP_DATABASE, SLOT_NAME, SUPERUSER, LabConfig
from drp.lab.placement import link
from drp.lab.procs import pid_alive, read_pidfile, run, wait_until

SKP_SCHEMA = """
CREATE TABLE IF NOT EXISTS declarations (
    id          bigserial PRIMARY KEY,
    nomor_aju   text NOT NULL UNIQUE,
    doc_type    text NOT NULL,
    office      text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    site        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""


STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
"""The postmaster's shutdown modes, as the signals ``pg_ctl stop -m`` sends."""


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


class Cluster:
    """One lab PostgreSQL server (data directory + port)."""

    def __init__(self, cfg: LabConfig, name: str, pg_bin: Path, user: str | None, password: str):
        self.cfg = cfg
        self.name = name
        self.pg_bin = pg_bin
        self.user = user
        self.password = password
        self.data = cfg.pgdata(name)
        self.port = cfg.port(name)
        self.log = cfg.pg_log(name)

    # -- addressing ------------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return (
            f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} "
            f"password={self.password} application_name=drp"
        )

    def _bin(self, tool: str) -> str:
        return str(self.pg_bin / tool)

    # -- state -----------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    @property
    def is_standby_configured(self) -> bool:
        return (self.data / "standby.signal").exists()

    def postmaster_pid(self) -> int | None:
        return read_pidfile(self.data / "postmaster.pid")

    def running(self) -> bool:
        """True when the postmaster of ``postmaster.pid`` is alive: what ``pg_ctl status`` checks,
        read as root without switching user (and with the process's name checked, so that a
        recycled pid does not count)."""
        if not self.exists:
            return False
        pid = self.postmaster_pid()
        return bool(pid) and pid_alive(pid) and _is_postgres(pid)  # type: ignore[arg-type]

    def accepting(self) -> bool:
        return pg.is_reachable(self.dsn(), timeout=1)

    # -- building --------------------------------------------------------------------------
    def _own(self, path: Path, mode: int | None = None) -> None:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        if mode is not None:
            os.chmod(path, mode)

    def _prepare_dirs(self) -> None:
        """The directories the server's user must enter, with the modes it needs whatever the
        umask: ``pg/`` is its own (the resync moves a data directory aside in it)."""
        for directory in (self.data.parent, self.log.parent, self.cfg.pg_run_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o755)
        self._own(self.data.parent)
        if not self.log.exists():
            self.log.touch()
        self._own(self.log, 0o640)
        if self.cfg.server_root is not None:  # the root still shows every server's log
            link(self.cfg.logs / self.log.name, self.log)

    def initdb(self) -> None:
        """Create a new primary's data directory (idempotent: does nothing if it exists)."""
        if self.exists:
            return
        self._prepare_dirs()
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-built directory from an interrupted run
        self.data.mkdir(mode=0o700)
        self._own(self.data, 0o700)
        pwfile = self.cfg.pg_run_dir / f"{self.name}.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password + "\n")
        self._own(pwfile, 0o600)
        try:
            run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--data-checksums",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                user=self.user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_config()

    def _write_config(self) -> None:
        conf = self.data / "postgresql.conf"
        extra = f"""
# --- drp lab ---
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
wal_retrieve_retry_interval = '1s'
hot_standby = on
hot_standby_feedback = on
wal_log_hints = on
shared_buffers = '32MB'
max_connections = 60
logging_collector = off
log_line_prefix = '%m [%p] {self.name} '
"""
        with open(conf, "a") as fh:
            fh.write(extra)
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "# drp lab: loopback only, passwords (scram-sha-256)\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n"
        )
        self._own(hba, 0o600)

    def basebackup_from(self, primary_port: int, slot: str = SLOT_NAME) -> None:
        """Build this server as a streaming standby of the primary reached at ``primary_port``."""
        if self.exists:
            return
        self._prepare_dirs()
        if self.data.exists():
            shutil.rmtree(self.data)
        conninfo = (
            f"host=127.0.0.1 port={primary_port} user={SUPERUSER} password={self.password} "
            f"application_name={slot}"
        )
        run(
            [
                self._bin("pg_basebackup"),
                "-D",
                str(self.data),
                "-d",
                conninfo,
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-password",
            ],
            user=self.user,
            timeout=300,
        )
        conf = self.data / "postgresql.conf"
        text = conf.read_text()
        text = text.replace(f"port = {self._port_in(text)}", f"port = {self.port}")
        text = "".join(  # its log lines carry its own name, not its primary's
            f"log_line_prefix = '%m [%p] {self.name} '\n"
            if line.startswith("log_line_prefix = ")
            else line
            for line in text.splitlines(keepends=True)
        )
        conf.write_text(text)
        with open(self.data / "postgresql.auto.conf", "a") as fh:
            fh.write(f"primary_conninfo = '{conninfo}'\nprimary_slot_name = '{slot}'\n")
        signal_file = self.data / "standby.signal"
        signal_file.touch()
        self._own(signal_file, 0o600)

    @staticmethod
    def _port_in(conf_text: str) -> int:
        port = None
        for line in conf_text.splitlines():
            if line.startswith("port = "):
                port = int(line.split("=")[1].split("#")[0])
        if port is None:
            raise LabError("copied postgresql.conf has no port line")
        return port

    # -- running ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        if not self.exists:
            raise LabError(f"{self.name}: no data directory at {self.data} (hint: drp lab up)")
        if not self.running():
            run(
                [
                    self._bin("pg_ctl"),
                    "start",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-s",
                ],
                user=self.user,
                timeout=timeout + 10,
            )
        if not wait_until(self.accepting, timeout):
            raise LabError(f"{self.name} started but does not accept connections; see {self.log}")

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> bool:
        """Stop the server; ``mode='immediate'`` is a crash. True when it was running."""
        if not self.running():
            return False
        res = run(
            [
                self._bin("pg_ctl"),
                "stop",
                "-D",
                str(self.data),
                "-m",
                mode,
                "-w",
                "-t",
                str(int(timeout)),
                "-s",
            ],
            user=self.user,
            timeout=timeout + 10,
            check=False,
        )
        pid = self.postmaster_pid()
        if res.returncode != 0 and pid and self.running():
            # pg_ctl, as the server's user, could not (say it can no longer enter the data
            # directory): send the postmaster the same signal pg_ctl sends, as root.
            os.kill(pid, STOP_SIGNALS[mode])
            if not wait_until(lambda: not self.running(), timeout):
                said = (res.stderr or res.stdout).strip().splitlines()[-1:]
                raise LabError(
                    f"{self.name} did not stop ({mode}): {' '.join(said)}; see {self.log}"
                )
        return True

    def remove(self) -> None:
        """Delete the data directory and what the resync left beside it (``<name>.before-resync-*``
        copies, its passfile): a server rebuilt fresh. Refused while it runs."""
        if self.running():
            raise LabError(f"{self.name} still runs: stop it before removing {self.data}")
        parent = self.data.parent
        if not parent.is_dir():
            return
        for path in [self.data, *parent.glob(f"{self.name}.*")]:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()

    def ensure_app_schema(self) -> None:
        """Create the SKP stand-in's database and table on a primary (idempotent)."""
        rows = pg.query(self.dsn(), "SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,))
        if not rows:
            pg.query(self.dsn(), f"CREATE DATABASE {APP_DATABASE}")
        pg.query(self.dsn(APP_DATABASE), SKP_SCHEMA)

    def ensure_slot(self, slot: str = SLOT_NAME) -> None:
        rows = pg.query(
            self.dsn(), "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        )
        if not rows:
            pg.query(self.dsn(), "SELECT pg_create_physical_replication_slot(%s)", (slot,))

    def ensure_database(self, name: str) -> None:
        rows = pg.query(self.dsn(), "SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not rows:
            pg.query(self.dsn(), f"CREATE DATABASE {name}")

    def set_synchronous(self, standby_name: str | None) -> None:
        """Make commits wait for ``standby_name`` (or for no one when None)."""
        value = standby_name or ""
        pg.query(self.dsn(), f"ALTER SYSTEM SET synchronous_standby_names = '{value}'")
        pg.query(self.dsn(), "SELECT pg_reload_conf()")
