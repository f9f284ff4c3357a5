"""``drp classify SIGNALS_FILE``: which disaster category the signals show (Pasal 4-7, 13).

The command only reads a file and prints the domain's answer; the decision itself lives in
:mod:`drp.domain.classification`, so that what the operator sees here is exactly what a flow
would act on. Finding no disaster is a normal answer (exit 0); bad input exits 2 with every
problem listed, so that a signals file can be fixed in one pass.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape

from drp.commands._output import console, emit_json, fail
from drp.domain.classification import (
    Assessment,
    Disaster,
    DisasterCategory,
    Role,
    Term,
    classify,
    signals_from_mapping,
)
from drp.errors import RunbookError

BAD_INPUT = 2
"""Exit status for a signals file that cannot be read or is invalid (like a usage error)."""


def register(app: typer.Typer) -> None:
    """Add ``classify`` as a top-level command of ``app`` (the lead wires it into ``drp``)."""
    app.command("classify")(classify_command)


def classify_command(
    signals_file: Annotated[
        Path, typer.Argument(help="Signals as YAML or JSON (see runbooks/signals/).")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole assessment as JSON.")
    ] = False,
) -> None:
    """Classify the IT condition described in SIGNALS_FILE (PER-19/BC/2023 Pasal 4-7, 13)."""
    try:
        assessment = classify(signals_from_mapping(_load(signals_file)))
    except RunbookError as error:
        listed = "".join(f"\n  - {escape(str(problem))}" for problem in error.problems)
        fail(f"{escape(str(signals_file))}: {escape(str(error))}{listed}", code=BAD_INPUT)
    if as_json:
        emit_json(jsonable(assessment))
    else:
        _print(assessment)


def _load(path: Path) -> Any:
    """Read YAML or JSON (by extension); a file that cannot be read is bad input too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunbookError(f"cannot read the signals file ({error})") from error
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise RunbookError("the signals file is not valid YAML or JSON", [str(error)]) from error
    if data is None:
        raise RunbookError(
            "the signals file is empty",
            ["(top level): write {} for a normal condition, or list the signals that hold"],
        )
    return data


def jsonable(value: object) -> Any:
    """Plain data for JSON: dataclasses by field, labelled enums as {id, label_id, label_en}."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Role | DisasterCategory):
        return {"id": value.value, "label_id": value.label_id, "label_en": value.label_en}
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple | list):
        return [jsonable(item) for item in value]
    return value


# --- Human output -----------------------------------------------------------------------------


def _print(assessment: Assessment) -> None:
    if assessment.disaster is None:
        console.print("[bold green]No disaster[/]: no condition of Pasal 5-7 holds.")
    else:
        _print_disaster(assessment.disaster)
    if assessment.notes:
        _heading("Notes")
        for note in assessment.notes:
            _line(f"- {escape(note)}")


def _print_disaster(disaster: Disaster) -> None:
    category = disaster.category
    console.print(
        f"[bold red]{escape(category.label_id)}[/] ({category.value}: {category.label_en})",
        highlight=False,
    )
    _heading("Triggers")
    for trigger in disaster.triggers:
        _line(f"- [bold]{trigger.article}[/] ({trigger.category.value}): {escape(trigger.reason)}")
    _heading(f"Declared by ({disaster.declaration_article})")
    _line(f"  {_role(disaster.declarer_role)}")
    _heading(f"Basis ({disaster.basis_article})")
    for item in disaster.basis:
        evidence = "; ".join(item.evidence) if item.evidence else "[dim]none supplied[/]"
        _line(f"- {_term(item)}: {escape(evidence) if item.evidence else evidence}")
    _heading(f"Stages, handled by {escape(disaster.handled_by.label_en)}")
    for number, stage in enumerate(disaster.stages, start=1):
        _line(f"  {number}. {_term(stage)} [dim]{stage.article}[/]")
    _print_duties(disaster)
    _heading("Coordination (Pasal 13)")
    if not disaster.coordination:
        _line("  none: Pasal 13 applies to national and catastrophic disasters only")
    for party in disaster.coordination:
        _line(f"- {_term(party)} [dim]{party.article}[/]")
    if disaster.affected_offices:
        _heading("Affected offices")
        _line("  " + escape(", ".join(disaster.affected_offices)))


def _print_duties(disaster: Disaster) -> None:
    report = disaster.rapid_assessment
    notice = disaster.notification
    _heading(f"Laporan kaji cepat / rapid-assessment report ({report.article}, {report.template})")
    _line("  by " + " or ".join(_role(role) for role in report.authors))
    _line("  holds: " + ", ".join(escape(item.label_en) for item in report.contents))
    _heading(f"Pemberitahuan / notification ({notice.article}, {notice.template})")
    _line(
        f"  {_role(notice.sender)} to {escape(notice.recipients.label_en)}, "
        f"by {escape(notice.channel_en)} ({escape(notice.channel_id)})"
    )


def _heading(text: str) -> None:
    console.print(f"\n[bold]{text}[/]", highlight=False)


def _line(text: str) -> None:
    console.print(text, highlight=False)


def _role(role: Role) -> str:
    return f"{escape(role.label_id)} ({escape(role.label_en)})"


def _term(term: Term) -> str:
    return f"{escape(term.label_id)} [dim]({escape(term.label_en)})[/]"
