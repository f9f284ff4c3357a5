"""`drp.domain` holds the rules and no I/O: it imports none of the outside-world libraries."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import drp.domain

pytestmark = pytest.mark.unit

FORBIDDEN = (
    "prefect",
    "psycopg",
    "paramiko",
    "boto3",
    "slack_sdk",
    "openpyxl",
    "ansible_runner",
    "xlrd",
    "drp.adapters",
    "drp.lab",
)
DOMAIN_DIR = Path(drp.domain.__file__).parent


def _domain_modules() -> list[str]:
    return [f"drp.domain.{m.name}" for m in pkgutil.iter_modules([str(DOMAIN_DIR)])]


def test_the_domain_package_has_modules_to_guard() -> None:
    assert {"drp.domain.adb", "drp.domain.classification", "drp.domain.runbook"} <= set(
        _domain_modules()
    )


def test_importing_the_domain_loads_no_adapter_library() -> None:
    code = (
        "import sys\n"
        f"for m in {_domain_modules()!r}: __import__(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r} "
        f"or any(n.startswith(f + '.') or n == f for f in {FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_domain_source_file_names_a_forbidden_import() -> None:
    offenders = []
    for path in DOMAIN_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)
            ]
    assert offenders == []


# Who may know the embedded lab (issue 13): the lab itself, its commands, topology resolution
# (which builds a Topology from a lab), the settings' lab defaults, and the lab's own Prefect
# server manager (`drp server`/`drp workers` run the lab's orchestrator). Flows, tasks, adapters
# and the rest reach the lab's paths, HTTP helper, facility signals and faults through Topology.
LAB_AWARE = {
    "src/drp/topology.py",
    "src/drp/settings.py",
    "src/drp/prefect_server.py",
    "src/drp/commands/lab.py",
}


def test_only_topology_resolution_and_the_lab_commands_import_the_lab() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [
        *sorted((root / "src" / "drp").rglob("*.py")),
        *sorted((root / "flows").glob("*.py")),
    ]:
        rel = path.relative_to(root).as_posix()
        if rel.startswith("src/drp/lab/") or rel in LAB_AWARE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{rel}: {n}" for n in names if n == "drp.lab" or n.startswith("drp.lab.")
            ]
    assert not offenders, "\n".join(offenders)
