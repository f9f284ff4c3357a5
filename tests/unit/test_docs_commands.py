"""Every command the README and docs/ show exists, with the options they show.

A reader copies commands from the README and the reference pages. When a command or an option is
renamed, its examples go stale silently; this test reads every ``drp …`` inside code (inline
spans, table cells and fenced blocks), resolves it against the real command tree and checks each
``--option`` it names; every ``make TARGET`` against the Makefile; every ``bench/…`` and
``scripts/…`` file it names against the checkout.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from drp.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    text: str


def _code_of(page: Path) -> list[Example]:
    """Every command line in code on a page, with its line number."""
    text = page.read_text(encoding="utf-8")
    found: list[Example] = []
    fenced_spans: list[tuple[int, int]] = []
    for block in _FENCE.finditer(text):
        fenced_spans.append(block.span())
        start_line = text.count("\n", 0, block.start(1)) + 1
        pending: list[str] = []
        for n, line in enumerate(block.group(1).split("\n")):
            code = "" if line.lstrip().startswith("#") else line.split(" #", 1)[0]
            if code.rstrip().endswith("\\"):  # a shell line continuation
                pending.append(code.rstrip()[:-1])
                continue
            code = " ".join([*pending, code]).strip()
            first = start_line + n - len(pending)
            pending = []
            if code:
                found.append(Example(page.name, first, code))
    for span in _INLINE.finditer(text):
        if any(a <= span.start() < b for a, b in fenced_spans):
            continue
        found.append(Example(page.name, text.count("\n", 0, span.start()) + 1, span.group(1)))
    return found


@functools.cache
def _commands() -> Any:
    return typer.main.get_command(app)


def _options(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names | {"--help"}


def _drp_invocations(example: Example) -> list[list[str]]:
    """The words of each ``drp`` invocation in one piece of code (after pipes, ``&&``, ``;``)."""
    text = example.text.replace("\\|", "|")
    words = re.sub(r"(;|&&|\s\|\s)", r" \1 ", text).split()
    runs: list[list[str]] = []
    for i, word in enumerate(words):
        if word in {"drp", ".venv/bin/drp", "$(DRP)"} and (i == 0 or words[i - 1] in _SEPARATORS):
            run: list[str] = []
            for w in words[i + 1 :]:
                if w in _SEPARATORS:
                    break
                run.append(w)
            runs.append(run)
    return runs


_SEPARATORS = {"&&", ";", "||", "|", "then", "do", "$", "sudo", "exec", "--", "watch"}


def _check_drp(example: Example, words: list[str]) -> list[str]:
    """What is wrong with one ``drp`` invocation (nothing when it resolves)."""
    where = f"{example.page}:{example.line}: `{example.text}`"
    command = _commands()
    path = ["drp"]
    rest = list(words)
    while hasattr(command, "commands") and rest:
        word = rest[0]
        alternatives = [w for w in word.split("|") if w]
        if word in {"...", "…", "COMMAND"} or word.startswith("-"):
            return []  # a group named with a placeholder: nothing more to resolve
        unknown = [a for a in alternatives if a not in command.commands]
        if unknown:
            return [f"{where}: `{' '.join(path)}` has no command {unknown[0]!r}"]
        if len(alternatives) > 1:
            problems: list[str] = []
            for alternative in alternatives:
                sub = Example(example.page, example.line, example.text)
                problems += _check_words(sub, command.commands[alternative], rest[1:])
            return problems
        command = command.commands[word]
        path.append(word)
        rest = rest[1:]
    return _check_words(example, command, rest)


def _check_words(example: Example, command: Any, rest: list[str]) -> list[str]:
    if hasattr(command, "commands"):
        return []
    known = _options(command)
    problems = []
    for word in rest:
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", word):
            if option not in known:
                problems.append(
                    f"{example.page}:{example.line}: `{example.text}`: "
                    f"`{command.name}` has no option {option}"
                )
    return problems


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def test_the_pages_show_commands_at_all() -> None:
    """The check below reads something: the README's two commands and a flow command are found."""
    readme = _code_of(ROOT / "README.md")
    texts = " ".join(e.text for e in readme)
    assert "make drill" in texts and "make test" in texts
    assert any(_drp_invocations(e) for page in PAGES for e in _code_of(page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_drp_command_shown_exists_with_its_options(page: Path) -> None:
    problems: list[str] = []
    for example in _code_of(page):
        for words in _drp_invocations(example):
            problems += _check_drp(example, words)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_and_script_shown_exists(page: Path) -> None:
    targets = _make_targets()
    problems: list[str] = []
    for example in _code_of(page):
        for target in re.findall(r"(?:^|[;&|]\s*)make ([a-z][a-z0-9-]*)", example.text):
            if target not in targets:
                problems.append(f"{page.name}:{example.line}: no make target {target!r}")
        for script in re.findall(r"\b((?:bench|scripts)/[\w./-]+\.(?:py|sh))", example.text):
            if not (ROOT / script).is_file():
                problems.append(f"{page.name}:{example.line}: {script} does not exist")
    assert not problems, "\n".join(problems)


def test_a_stale_option_is_caught() -> None:
    """The checker itself: an option the command does not have is reported with its place."""
    example = Example("X.md", 3, "drp failover --runbook R --approver-role direktur")
    problems = [p for words in _drp_invocations(example) for p in _check_drp(example, words)]
    assert problems == [
        "X.md:3: `drp failover --runbook R --approver-role direktur`: "
        "`failover` has no option --approver-role"
    ]
    missing = Example("X.md", 4, "drp lab explode")
    assert _check_drp(missing, ["lab", "explode"]) == [
        "X.md:4: `drp lab explode`: `drp lab` has no command 'explode'"
    ]
