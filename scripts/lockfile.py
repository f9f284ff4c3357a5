"""The locked dependency set: make it, check it against pyproject.toml, check .venv against it.

Why a lock: pyproject.toml pins drp's direct dependencies, but not what they pull in, and an
unpinned transitive release broke the platform once (SQLAlchemy 2.1.x under Prefect 3.8.8: no
scheduled run was ever created). ``requirements.lock`` pins every package, direct or transitive,
with the SHA-256 of every file the registry serves for it, so that every checkout installs the
same tree (docs/dependencies.md).

Commands (stdlib only, so that set-up can run them before anything is installed):

``compile [--upgrade | --upgrade-package NAME ...]``
    Regenerate the lock with uv (``make lock``). Existing pins are kept where they still satisfy
    pyproject.toml; only what must move moves, unless an upgrade is asked for.
``check``
    The lock matches pyproject.toml: its recorded digest of pyproject's dependency lists is
    current, every requirement is pinned, and every pin satisfies its specifier.
``inputs-current``
    Only the digest (cheap: what set-up checks before it installs).
``pin NAME``
    The requirement line of one pin with its hashes (set-up bootstraps uv with it).
``verify-env``
    The running interpreter's installed distributions equal the lock's pins (set-up runs it
    with ``.venv/bin/python``).

The pure functions below take plain values (text, dicts) so that tests/unit/test_lockfile.py
checks each judgement directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"
PROJECT = "drp"
LOCKED_EXTRAS = ("dev",)
DIGEST_KEY = "inputs-sha256"
PYTHON_KEY = "python"
BUILD_INPUT = "build-system.requires"
"""How the lock's annotations name pyproject's build requirements (installed from the lock so
that the editable install of drp needs nothing unpinned)."""

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


class LockError(Exception):
    """The lock cannot be read or made."""


# -- names and requirements (plain text) ------------------------------------------------------
def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``Typing_Extensions`` and ``typing-extensions`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement.strip())
    if not match:
        raise LockError(f"cannot read a project name in requirement {requirement!r}")
    return canonical_name(match.group(1))


# -- pyproject.toml ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """What the lock is made from: pyproject's dependency lists, by where they stand."""

    requires_python: str
    dependencies: tuple[str, ...]
    extras: tuple[tuple[str, tuple[str, ...]], ...]
    build_requires: tuple[str, ...]

    def requirements(self) -> list[tuple[str, str]]:
        """Every requirement with the place in pyproject.toml it comes from."""
        found = [(f"project.dependencies[{i}]", r) for i, r in enumerate(self.dependencies)]
        for extra, reqs in self.extras:
            found += [
                (f"project.optional-dependencies.{extra}[{i}]", r) for i, r in enumerate(reqs)
            ]
        found += [(f"build-system.requires[{i}]", r) for i, r in enumerate(self.build_requires)]
        return found


def read_inputs(pyproject: Mapping[str, object], extras: Sequence[str] = LOCKED_EXTRAS) -> Inputs:
    project = pyproject.get("project")
    if not isinstance(project, dict):
        raise LockError("pyproject.toml has no [project] table")
    optional = project.get("optional-dependencies") or {}
    build = pyproject.get("build-system") or {}
    if not isinstance(optional, dict) or not isinstance(build, dict):
        raise LockError("pyproject.toml: optional-dependencies and build-system must be tables")
    missing = [e for e in extras if e not in optional]
    if missing:
        raise LockError(f"pyproject.toml has no optional-dependencies {missing} to lock")
    return Inputs(
        requires_python=str(project.get("requires-python", "")),
        dependencies=tuple(project.get("dependencies") or ()),
        extras=tuple((e, tuple(optional[e])) for e in extras),
        build_requires=tuple(build.get("requires") or ()),
    )


def inputs_digest(inputs: Inputs) -> str:
    """SHA-256 of the dependency lists, insensitive to order, spacing and letter case (what a
    reformat changes) but to nothing else."""

    def norm(reqs: Iterable[str]) -> list[str]:
        return sorted(re.sub(r"\s+", "", r).lower() for r in reqs)

    canonical = {
        "requires-python": re.sub(r"\s+", "", inputs.requires_python),
        "dependencies": norm(inputs.dependencies),
        "extras": {e: norm(r) for e, r in inputs.extras},
        "build-system.requires": norm(inputs.build_requires),
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


# -- requirements.lock ------------------------------------------------------------------------
@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]
    line: int  # 1-based, where the pin starts
    text: str  # the whole requirement, continuation lines joined, annotations dropped


@dataclass(frozen=True)
class Lock:
    header: dict[str, str]
    pins: dict[str, Pin]
    problems: tuple[str, ...]  # lines that are no exact, hashed pin


def parse_lock(text: str) -> Lock:
    """Read a hashed requirements file: a header of ``# key: value`` lines, then pins
    ``name==version \\`` followed by ``--hash=sha256:...`` continuation lines."""
    header: dict[str, str] = {}
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    logical: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not current:
            if not stripped:
                continue
            if stripped.startswith("#"):
                key, sep, value = stripped[1:].strip().partition(":")
                if sep and not logical and key.strip() in (DIGEST_KEY, PYTHON_KEY):
                    header[key.strip()] = value.strip()
                continue
            start = number
        current.append(stripped.removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            logical.append((start, " ".join(p for p in current if p)))
            current = []
    if current:
        problems.append(f"line {start}: the requirement ends with a continuation backslash")
    for number, req in logical:
        match = _PIN.match(req)
        if not match:
            problems.append(f"line {number}: {req.split()[0]!r} is not an exact pin (name==ver)")
            continue
        hashes = tuple(re.findall(r"--hash=(sha256:[0-9a-f]{64})", req))
        name = canonical_name(match.group(1))
        if not hashes:
            problems.append(f"line {number}: {name}=={match.group(2)} has no --hash")
        if name in pins:
            problems.append(f"line {number}: {name} is pinned twice (also line {pins[name].line})")
        pins[name] = Pin(name, match.group(2), hashes, number, req)
    return Lock(header, pins, tuple(problems))


def render_header(digest: str, python: str) -> str:
    return (
        "# The locked dependency set of drp: every Python package, direct or transitive, with the\n"
        "# SHA-256 of each file the registry serves for it. Made by `make lock` from\n"
        "# pyproject.toml (dependencies, the dev extra, build-system.requires); never edit it by\n"
        "# hand. Set-up installs exactly this (docs/dependencies.md).\n"
        f"# {DIGEST_KEY}: {digest}\n"
        f"# {PYTHON_KEY}: {python}\n"
    )


# -- judgements -------------------------------------------------------------------------------
def inputs_problems(lock: Lock, inputs: Inputs) -> list[str]:
    """The recorded digest against pyproject's lists as they are now."""
    recorded = lock.header.get(DIGEST_KEY)
    if recorded is None:
        return [f"requirements.lock has no '# {DIGEST_KEY}:' header line (hint: make lock)"]
    if recorded != inputs_digest(inputs):
        return [
            "pyproject.toml's dependency lists changed since requirements.lock was made "
            "(hint: make lock, then commit both files)"
        ]
    return []


def lock_problems(lock: Lock, inputs: Inputs, environment: Mapping[str, str]) -> list[str]:
    """Everything that makes the lock disagree with pyproject.toml, each with its place.

    ``environment`` holds the marker values of the target interpreter (``python_version``, ...):
    a requirement whose marker does not apply there needs no pin."""
    from packaging.requirements import InvalidRequirement, Requirement

    problems = [f"requirements.lock {p}" for p in lock.problems]
    problems += inputs_problems(lock, inputs)
    for place, text in inputs.requirements():
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            problems.append(f"pyproject.toml {place}: {text!r} is no requirement ({exc})")
            continue
        if req.marker is not None and not req.marker.evaluate(dict(environment)):
            continue
        name = canonical_name(req.name)
        if name == PROJECT:
            continue  # drp[dev] style self-references
        pin = lock.pins.get(name)
        if pin is None:
            problems.append(
                f"pyproject.toml {place}: {text!r} is not pinned in requirements.lock "
                "(hint: make lock)"
            )
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"pyproject.toml {place}: {text!r} is not satisfied by the lock's "
                f"{name}=={pin.version} (line {pin.line}; hint: make lock)"
            )
    return problems


def environment_problems(
    lock: Lock, installed: Mapping[str, str], python: str | None = None, project: str = PROJECT
) -> list[str]:
    """The installed distributions (canonical name -> version) against the lock's pins, and
    the interpreter against the one the lock was made for (markers such as
    ``python_full_version < "3.11.3"`` decide what the tree holds)."""
    problems: list[str] = []
    made_for = lock.header.get(PYTHON_KEY)
    if python is not None and made_for and python != made_for:
        problems.append(
            f"the lock was made for Python {made_for}, this interpreter is {python} (hint: "
            "create .venv with that Python, `PYTHON=/path/to/python3 make setup`, or make the "
            "lock with this one: make lock)"
        )
    for name, pin in sorted(lock.pins.items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}=={pin.version} is locked but not installed")
        elif have != pin.version:
            problems.append(f"{name} {have} is installed, the lock says {pin.version}")
    for name in sorted(set(installed) - set(lock.pins) - {canonical_name(project)}):
        problems.append(f"{name} {installed[name]} is installed but not in the lock")
    if canonical_name(project) not in installed:
        problems.append(f"{project} itself is not installed (editable)")
    return problems


# -- I/O --------------------------------------------------------------------------------------
def load_inputs(path: Path = PYPROJECT) -> Inputs:
    with path.open("rb") as fh:
        return read_inputs(tomllib.load(fh))


def load_lock(path: Path = LOCK) -> Lock:
    try:
        return parse_lock(path.read_text())
    except FileNotFoundError as exc:
        raise LockError(f"{path} is missing (hint: make lock)") from exc


def installed_distributions() -> dict[str, str]:
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical_name(name), dist.version)
    return found


def marker_environment() -> dict[str, str]:
    from packaging.markers import default_environment

    return dict(default_environment())


def find_uv() -> str:
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return str(here)
    venv = REPO / ".venv" / "bin" / "uv"
    if venv.exists():
        return str(venv)
    found = shutil.which("uv")
    if found:
        return found
    raise LockError("uv is not installed (hint: bash scripts/setup.sh --tools installs it)")


def compile_lock(upgrade: bool = False, upgrade_packages: Sequence[str] = ()) -> Path:
    """Regenerate requirements.lock with ``uv pip compile --generate-hashes``; the current pins
    are the preferences (uv keeps what still fits), the header records pyproject's digest."""
    inputs = load_inputs()
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():
        raise LockError("no .venv (hint: bash scripts/setup.sh --tools)")
    version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="drp-lock-") as tmp:
        build_in = Path(tmp) / "build.in"
        build_in.write_text("".join(f"{r}\n" for r in inputs.build_requires))
        out = Path(tmp) / "requirements.lock"
        if LOCK.exists():
            out.write_text(LOCK.read_text())  # preferences: keep what still satisfies
        cmd = [find_uv(), "pip", "compile", "--native-tls", "--quiet", "--no-header"]
        cmd += ["--generate-hashes", "--python", str(python), "-o", str(out)]
        cmd += [arg for e, _ in inputs.extras for arg in ("--extra", e)]
        if upgrade:
            cmd.append("--upgrade")
        for name in upgrade_packages:
            cmd += ["--upgrade-package", name]
        cmd += [str(PYPROJECT), str(build_in)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LockError(f"uv pip compile failed:\n{proc.stderr.strip()}")
        body = out.read_text()
    body = body.replace(f"-r {build_in}", BUILD_INPUT).replace(str(PYPROJECT), "pyproject.toml")
    body = body.replace(str(build_in), BUILD_INPUT)
    fresh = render_header(inputs_digest(inputs), version) + body
    lock = parse_lock(fresh)
    if lock.problems:
        raise LockError("uv wrote a lock this checker cannot read: " + "; ".join(lock.problems))
    tmp_lock = LOCK.with_suffix(".tmp")
    tmp_lock.write_text(fresh)
    os.replace(tmp_lock, LOCK)
    return LOCK


def _fail(problems: Sequence[str], hint: str) -> int:
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    print(hint, file=sys.stderr)
    return 1


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], list(argv[1:])
    try:
        if command == "compile":
            upgrade = "--upgrade" in args
            packages = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--upgrade-package"]
            path = compile_lock(upgrade, packages)
            print(f"lock: wrote {path.relative_to(REPO)} ({len(load_lock().pins)} packages)")
            return 0
        lock = load_lock()
        if command == "inputs-current":
            problems = inputs_problems(lock, load_inputs())
            return _fail(problems, "setup: the lock is stale") if problems else 0
        if command == "check":
            problems = lock_problems(lock, load_inputs(), marker_environment())
            if problems:
                return _fail(problems, "lock: requirements.lock does not match pyproject.toml")
            print(f"lock: requirements.lock matches pyproject.toml ({len(lock.pins)} pins)")
            return 0
        if command == "pin":
            (name,) = args
            pin = lock.pins.get(canonical_name(name))
            if pin is None:
                raise LockError(f"{name} is not pinned in requirements.lock (hint: make lock)")
            print(pin.text.replace(" --hash", " \\\n    --hash"))
            return 0
        if command == "verify-env":
            import platform

            problems = environment_problems(
                lock, installed_distributions(), platform.python_version()
            )
            if problems:
                return _fail(
                    problems,
                    f"setup: {sys.prefix} differs from requirements.lock (hint: `rm -f "
                    ".venv/.installed && make setup` makes it equal to the lock again; a "
                    "package you need belongs in pyproject.toml, then `make lock`)",
                )
            return 0
    except LockError as exc:
        print(f"lock: {exc}", file=sys.stderr)
        return 1
    print(f"lock: unknown command {command!r} (see scripts/lockfile.py)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
