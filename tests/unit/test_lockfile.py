"""The locked dependency set (requirements.lock) against pyproject.toml, and .venv against it.

The first tests read the repository's real files: they fail in CI when a dependency was added,
removed or changed in pyproject.toml without ``make lock``. The others give the checker plain
text, so that each way a lock can be wrong is shown to be caught.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("drp_lockfile", REPO / "scripts" / "lockfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


lf = _load()
ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}
HASH = "--hash=sha256:" + "a" * 64


def _inputs(deps: list[str], dev: list[str] | None = None) -> object:
    return lf.read_inputs(
        {
            "project": {
                "requires-python": ">=3.11,<3.12",
                "dependencies": deps,
                "optional-dependencies": {"dev": dev or []},
            },
            "build-system": {"requires": ["setuptools>=68"]},
        }
    )


def _lock(inputs: object, pins: dict[str, str], digest: str | None = None) -> object:
    body = "".join(f"{name}=={version} \\\n    {HASH}\n" for name, version in pins.items())
    header = lf.render_header(digest or lf.inputs_digest(inputs), "3.11.7")
    return lf.parse_lock(header + body)


# -- the repository's own files ---------------------------------------------------------------
def test_the_lock_pins_every_requirement_of_pyproject_with_hashes() -> None:
    lock = lf.load_lock()
    assert lf.lock_problems(lock, lf.load_inputs(), lf.marker_environment()) == []
    assert len(lock.pins) > 100  # the transitive tree, not only the direct dependencies
    assert all(pin.hashes for pin in lock.pins.values())


def test_sqlalchemy_is_held_on_the_2_0_line_that_prefects_scheduler_works_with() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    held = [r for r in pyproject["project"]["dependencies"] if r.startswith("sqlalchemy")]
    assert held == ["sqlalchemy[asyncio]>=2.0,<2.1"]
    lock = lf.load_lock()
    assert lock.pins["sqlalchemy"].version.startswith("2.0.")
    assert lock.pins["prefect"].version == "3.8.8"
    assert {lock.pins["pyotp"].version, lock.pins["babel"].version} == {"2.12.1", "2.19.0"}


# -- the checker on plain values --------------------------------------------------------------
def test_a_consistent_lock_has_no_problem() -> None:
    inputs = _inputs(["prefect==3.8.8", "psycopg[binary]==3.3.9"], dev=["pytest==9.2.0"])
    pins = {"prefect": "3.8.8", "psycopg": "3.3.9", "pytest": "9.2.0", "setuptools": "84.2.1"}
    assert lf.lock_problems(_lock(inputs, pins), inputs, ENV) == []


def test_a_requirement_the_lock_does_not_pin_is_named_with_its_place_in_pyproject() -> None:
    inputs = _inputs(["prefect==3.8.8"], dev=["pytest==9.2.0", "ruff==0.17.5"])
    lock = _lock(inputs, {"prefect": "3.8.8", "pytest": "9.2.0", "setuptools": "84.2.1"})
    assert lf.lock_problems(lock, inputs, ENV) == [
        "pyproject.toml project.optional-dependencies.dev[1]: 'ruff==0.17.5' is not pinned in "
        "requirements.lock (hint: make lock)"
    ]


def test_a_pin_outside_the_specifier_of_pyproject_is_named_with_its_line() -> None:
    inputs = _inputs(["sqlalchemy[asyncio]>=2.0,<2.1"])
    lock = _lock(inputs, {"sqlalchemy": "2.1.9", "setuptools": "84.2.1"})
    assert lf.lock_problems(lock, inputs, ENV) == [
        "pyproject.toml project.dependencies[0]: 'sqlalchemy[asyncio]>=2.0,<2.1' is not "
        "satisfied by the lock's sqlalchemy==2.1.9 (line 7; hint: make lock)"
    ]


def test_a_requirement_whose_marker_does_not_apply_needs_no_pin() -> None:
    inputs = _inputs(["tomli>=2; python_version < '3.11'"])
    assert lf.lock_problems(_lock(inputs, {"setuptools": "84.2.1"}), inputs, ENV) == []


def test_build_requirements_are_locked_too() -> None:
    inputs = _inputs([])
    (problem,) = lf.lock_problems(_lock(inputs, {}), inputs, ENV)
    assert problem.startswith("pyproject.toml build-system.requires[0]: 'setuptools>=68'")


def test_a_changed_dependency_list_makes_the_lock_stale_but_a_reformat_does_not() -> None:
    made = _inputs(["prefect==3.8.8", "jinja2==3.1.6"])
    lock = _lock(made, {"prefect": "3.8.8", "jinja2": "3.1.6", "setuptools": "84.2.1"})
    reformatted = _inputs(["Jinja2 == 3.1.6", "prefect==3.8.8"])
    assert lf.inputs_problems(lock, reformatted) == []
    # Still satisfied by the pins, but not what the lock was made from: uv never saw it.
    loosened = _inputs(["prefect==3.8.8", "jinja2>=3.1"])
    assert lf.inputs_problems(lock, loosened) == [
        "pyproject.toml's dependency lists changed since requirements.lock was made "
        "(hint: make lock, then commit both files)"
    ]
    assert lf.inputs_problems(lock, _inputs(["prefect==3.8.8", "jinja2==3.1.6"], ["x==1"]))


def test_a_lock_without_its_digest_is_stale() -> None:
    inputs = _inputs([])
    lock = lf.parse_lock(f"setuptools==84.2.1 \\\n    {HASH}\n")
    assert lf.inputs_problems(lock, inputs) == [
        "requirements.lock has no '# inputs-sha256:' header line (hint: make lock)"
    ]


def test_unhashed_inexact_and_duplicate_pins_are_refused_by_line() -> None:
    text = (
        "# inputs-sha256: x\n"
        "prefect==3.8.8\n"  # no hash
        "jinja2>=3 \\\n"
        f"    {HASH}\n"
        f"Prefect==3.8.8 {HASH}\n"
    )
    assert lf.parse_lock(text).problems == (
        "line 2: prefect==3.8.8 has no --hash",
        "line 3: 'jinja2>=3' is not an exact pin (name==ver)",
        "line 5: prefect is pinned twice (also line 2)",
    )


def test_the_lock_parser_reads_names_canonically_and_skips_annotations() -> None:
    text = f"Typing_Extensions==4.16.0 \\\n    {HASH} \\\n    {HASH}\n    # via prefect\n"
    lock = lf.parse_lock(text)
    assert lock.problems == ()
    pin = lock.pins["typing-extensions"]
    assert (pin.version, len(pin.hashes), pin.line) == ("4.16.0", 2, 1)


# -- the environment against the lock ---------------------------------------------------------
def test_an_environment_equal_to_the_lock_plus_drp_passes() -> None:
    inputs = _inputs([])
    lock = _lock(inputs, {"prefect": "3.8.8", "setuptools": "84.2.1"})
    installed = {"prefect": "3.8.8", "setuptools": "84.2.1", "drp": "0.1.0"}
    assert lf.environment_problems(lock, installed) == []


def test_every_difference_of_the_environment_is_named() -> None:
    inputs = _inputs([])
    lock = _lock(inputs, {"prefect": "3.8.8", "sqlalchemy": "2.0.58", "babel": "2.19.0"})
    installed = {"prefect": "3.8.8", "sqlalchemy": "2.1.9", "six": "1.16.0"}
    assert lf.environment_problems(lock, installed) == [
        "babel==2.19.0 is locked but not installed",
        "sqlalchemy 2.1.9 is installed, the lock says 2.0.58",
        "six 1.16.0 is installed but not in the lock",
        "drp itself is not installed (editable)",
    ]


def test_an_interpreter_other_than_the_locks_is_named() -> None:
    inputs = _inputs([])
    lock = _lock(inputs, {"setuptools": "84.2.1"})  # made for 3.11.7
    installed = {"setuptools": "84.2.1", "drp": "0.1.0"}
    assert lf.environment_problems(lock, installed, "3.11.7") == []
    (problem,) = lf.environment_problems(lock, installed, "3.11.2")
    assert problem.startswith("the lock was made for Python 3.11.7, this interpreter is 3.11.2")
