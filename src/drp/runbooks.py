"""Loading runbooks from disk: the I/O around :func:`drp.domain.runbook.validate`.

The domain rules need to know which playbooks exist and which inventory groups there are; this
module finds out (the playbook directory and the Ansible YAML inventory, both relative to the
runbook file), keeps the YAML line of every value so that problems point into the file, and
raises :class:`~drp.errors.RunbookError` with every problem. It decides nothing itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from drp.domain.runbook import Loc, Problem, Runbook, Validation, sort_problems, validate
from drp.errors import RunbookError

PLAYBOOK_SUFFIXES = (".yml", ".yaml")
IMPLICIT_GROUPS = frozenset({"all", "ungrouped"})
"""Groups every Ansible inventory has, whether the file names them or not."""


@dataclass(frozen=True)
class RunbookSource:
    """A runbook file read and parsed: its data, the line of every value, YAML-level problems."""

    path: Path
    data: Any
    lines: Mapping[Loc, int]
    problems: tuple[Problem, ...] = ()


def read_runbook(path: str | Path) -> RunbookSource:
    """Read and parse a runbook file, keeping lines; RunbookError when it cannot be read.

    "Cannot be read" means missing, unreadable or not YAML at all; a YAML mapping with wrong
    contents is read fine and left to :func:`check_runbook`.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise RunbookError(f"{file}: cannot read the runbook: {reason}; check the path") from error
    try:
        data, lines, duplicates = _parse_with_lines(text, yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise _yaml_error(file, error) from error
    return RunbookSource(file, data, lines, tuple(duplicates))


def check_runbook(source: RunbookSource) -> Validation:
    """Validate a read runbook against the playbooks and inventory groups found beside it."""
    data = source.data if isinstance(source.data, Mapping) else {}
    base = source.path.parent
    problems: list[Problem] = list(source.problems)
    groups: frozenset[str] | None = None
    playbooks: frozenset[str] | None = None
    inventory = data.get("inventory")
    if isinstance(inventory, str):
        try:
            groups = read_inventory_groups(_beside(base, inventory))
        except RunbookError as error:
            problems.append(
                Problem.at(("inventory",), str(error), "inventory is relative to the runbook file")
            )
    playbook_dir = data.get("playbook_dir", "../playbooks")
    if isinstance(playbook_dir, str):
        folder = _beside(base, playbook_dir)
        if folder.is_dir():
            playbooks = playbook_names(folder)
        else:
            problems.append(
                Problem.at(
                    ("playbook_dir",),
                    f"playbook directory {folder} does not exist",
                    "playbook_dir is relative to the runbook file (default ../playbooks)",
                )
            )
    result = validate(source.data, playbooks=playbooks, groups=groups, lines=source.lines)
    if not problems:
        return result
    merged = sort_problems([*problems, *result.problems], source.data, source.lines)
    return Validation(result.runbook, merged)


def _beside(base: Path, relative: str) -> Path:
    """``relative`` read from the runbook's folder, without ``..`` noise in messages."""
    return Path(os.path.normpath(base / relative))


def load_runbook(path: str | Path) -> Runbook:
    """Read, validate and return a runbook; RunbookError with every problem otherwise.

    The returned runbook holds absolute ``inventory`` and ``playbook_dir`` paths, so that its
    users need not know where the file was.
    """
    source = read_runbook(path)
    result = check_runbook(source)
    if not result.ok or result.runbook is None:
        raise RunbookError(_summary(source.path, result.problems), problems=list(result.problems))
    runbook = result.runbook
    base = source.path.parent.resolve()
    return runbook.model_copy(
        update={
            "inventory": str((base / runbook.inventory).resolve()),
            "playbook_dir": str((base / runbook.playbook_dir).resolve()),
        }
    )


def playbook_names(folder: Path) -> frozenset[str]:
    """The playbook file names (``*.yml``, ``*.yaml``) directly in ``folder``."""
    return frozenset(
        p.name for p in folder.iterdir() if p.is_file() and p.suffix in PLAYBOOK_SUFFIXES
    )


def read_inventory_groups(path: Path) -> frozenset[str]:
    """The groups of an Ansible YAML inventory file; RunbookError when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise RunbookError(f"cannot read the inventory {path}: {reason}") from error
    try:
        data = yaml.load(text, Loader=_InventoryLoader)
    except yaml.YAMLError as error:
        raise _yaml_error(path, error, what="inventory") from error
    if not isinstance(data, Mapping):
        raise RunbookError(f"{path} is not an Ansible YAML inventory (a mapping of groups)")
    return inventory_groups(data)


def inventory_groups(data: Mapping[Any, Any]) -> frozenset[str]:
    """Every group of a parsed Ansible YAML inventory, recursively through ``children``.

    Top-level keys are groups (usually just ``all``); ``all`` and ``ungrouped`` always exist.
    """
    groups: set[str] = set(IMPLICIT_GROUPS)

    def visit(name: str, body: Any, path: tuple[str, ...]) -> None:
        # A group may appear under several parents, each time with part of its definition, so
        # every occurrence is walked; only a group nested in itself (YAML anchors) is cut.
        if name in path:
            return
        groups.add(name)
        children = body.get("children") if isinstance(body, Mapping) else None
        if isinstance(children, Mapping):
            for child, sub in children.items():
                visit(str(child), sub, (*path, name))

    for name, body in data.items():
        visit(str(name), body, ())
    return frozenset(groups)


class _InventoryLoader(yaml.SafeLoader):
    """SafeLoader that tolerates Ansible tags (``!vault``, ``!unsafe``): groups need no values."""


_InventoryLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _parse_with_lines(
    text: str, loader_class: type[yaml.SafeLoader]
) -> tuple[Any, dict[Loc, int], list[Problem]]:
    """Parse one YAML document; return its data, the line of every value, duplicate keys."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    duplicates: list[Problem] = []
    if node is not None:
        _walk(node, (), lines, duplicates)
    return data, lines, duplicates


def _walk(node: Node, loc: Loc, lines: dict[Loc, int], duplicates: list[Problem]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(
                    Problem.at(
                        (*loc, key),
                        f"duplicate key '{key}' (first on line {seen[key]}); YAML keeps only "
                        "the last one",
                        "remove one of the two",
                        line=line,
                    )
                )
            else:
                seen[key] = line
                lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, duplicates)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), lines, duplicates)


def _yaml_error(path: Path, error: yaml.YAMLError, what: str = "runbook") -> RunbookError:
    """A YAML syntax error as ``file:line:column: what is wrong``."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    detail = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    reason = f"{context}, {detail}" if context else detail
    problem = Problem.at((), f"not valid YAML: {reason}", line=mark.line + 1 if mark else None)
    return RunbookError(f"{where}: the {what} is not valid YAML: {reason}", problems=[problem])


def _summary(path: Path, problems: tuple[Problem, ...]) -> str:
    """The error message: the count, then one line per problem (``file:line: path: ...``)."""
    count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
    listed = "\n".join(f"  {format_problem(path, p)}" for p in problems)
    return f"{path}: {count}; nothing was run:\n{listed}"


def format_problem(path: Path | str, problem: Problem) -> str:
    """``runbooks/lab.yaml:12: services[2].rto_minutes: ...``: what editors and people read."""
    where = f"{path}:{problem.line}" if problem.line else str(path)
    return f"{where}: {problem}"
