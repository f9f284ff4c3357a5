"""The lab's sshd on loopback: its own host key, an operator key, a known_hosts file.

paramiko (with host-key verification) and Ansible over SSH use it, so that the code paths for
remote hosts are exercised on one machine. The operator logs in as the user running the lab.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from drp.errors import LabError
from drp.lab.config import LabConfig
from drp.lab.procs import read_pidfile, run, wait_until

SSHD = "/usr/sbin/sshd"


def paths(cfg: LabConfig) -> dict[str, Path]:
    d = cfg.ssh_dir
    return {
        "dir": d,
        "host_key": d / "ssh_host_ed25519_key",
        "operator_key": d / "operator_ed25519",
        "authorized_keys": d / "authorized_keys",
        "known_hosts": d / "known_hosts",
        "config": d / "sshd_config",
        "pid": d / "sshd.pid",
        "log": cfg.logs / "sshd.log",
    }


def login_user() -> str:
    return getpass.getuser()


def prepare(cfg: LabConfig) -> None:
    """Generate keys and config once (idempotent)."""
    p = paths(cfg)
    p["dir"].mkdir(parents=True, exist_ok=True)
    os.chmod(p["dir"], 0o700)
    cfg.logs.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "operator_key"):
        if not p[key].exists():
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"drp-lab-{key}",
                    "-f",
                    str(p[key]),
                ]
            )
    pub_operator = Path(str(p["operator_key"]) + ".pub").read_text().strip()
    p["authorized_keys"].write_text(pub_operator + "\n")
    os.chmod(p["authorized_keys"], 0o600)
    host_pub = Path(str(p["host_key"]) + ".pub").read_text().split()
    # The same sshd is reached directly and through the DC uplink (as the DC's hosts are).
    p["known_hosts"].write_text(
        "".join(
            f"[127.0.0.1]:{cfg.port(name)} {host_pub[0]} {host_pub[1]}\n"
            for name in ("ssh", "uplink-ssh")
        )
    )
    p["config"].write_text(
        f"""# drp lab sshd (generated)
Port {cfg.port("ssh")}
ListenAddress 127.0.0.1
HostKey {p["host_key"]}
PidFile {p["pid"]}
AuthorizedKeysFile {p["authorized_keys"]}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {login_user()}
StrictModes no
UsePAM no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel INFO
"""
    )


def pid(cfg: LabConfig) -> int | None:
    return read_pidfile(paths(cfg)["pid"])


def start(cfg: LabConfig) -> None:
    p = paths(cfg)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory
    run([SSHD, "-t", "-f", str(p["config"])])
    run([SSHD, "-f", str(p["config"]), "-E", str(p["log"])])
    if not wait_until(lambda: _port_open(cfg.port("ssh")), 10):
        raise LabError(f"sshd did not start listening; see {p['log']}")


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
