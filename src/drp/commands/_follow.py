"""Live progress for commands that run a flow: follow the run's ledger as the flow writes it.

The ledger is the single record of what happened, so the CLI prints from it rather than from
Prefect's logs: what a person sees is exactly what the auditor will read. Shared by the incident
commands (failover, resync, failback, drill). The first record this run writes with its
``flow_run_id`` (``attempt.start``) tells the command which Prefect run it is following.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from drp.commands._output import console
from drp.ledger import Record, read_records

MARKS = {"done": "[green]✓[/]", "already_done": "[green]=[/]", "failed": "[red]✗[/]"}


def describe(rec: Record, notable: Collection[str]) -> str | None:
    """The line a person sees for one ledger record (None: not worth a line)."""
    d = rec.data
    if rec.kind == "step.start":
        return f"  [cyan]▶[/] {d['name']} [dim](budget {d['budget_s']} s)[/]"
    if rec.kind == "step.end":
        mark = MARKS.get(d["status"], "-")
        return (
            f"  {mark} {d['step_id']}: {d['duration_s']:.1f} s / {d['budget_s']} s — {d['reason']}"
        )
    if rec.kind in notable:
        detail = d.get("reason") or d.get("category") or d.get("by") or ""
        return f"  [yellow]•[/] {rec.kind}: {detail}"
    return None


def _lines(ledger_dir: Path) -> list[tuple[int, Record | str]]:
    return list(read_records(ledger_dir)) if (ledger_dir / "ledger.jsonl").exists() else []


def follow(
    ledger_dir: Path,
    stop: threading.Event,
    notable: Collection[str] = (),
    poll_s: float = 0.2,
    show: Callable[[str], None] | None = None,
    on_run: Callable[[str], None] | None = None,
    earlier: int = 0,
) -> None:
    """Print each new record until ``stop`` is set (then print what is left and return).

    ``on_run`` gets the ``flow_run_id`` of the first record past the ``earlier`` ones (what
    earlier attempts wrote) that carries one: the run being followed."""
    show = show or (lambda line: console.print(line, highlight=False))
    seen = 0
    while True:
        done = stop.is_set()
        lines = _lines(ledger_dir)
        for number, rec in lines[seen:]:
            if isinstance(rec, str):
                continue
            if on_run is not None and number > earlier and rec.data.get("flow_run_id"):
                on_run(str(rec.data["flow_run_id"]))
                on_run = None
            line = describe(rec, notable)
            if line is not None:
                show(line)
        seen = len(lines)
        if done:
            return
        stop.wait(poll_s)


@contextmanager
def following(
    ledger_dir: Path,
    notable: Collection[str] = (),
    enabled: bool = True,
    on_run: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Follow ``ledger_dir`` in a background thread for the duration of the block."""
    if not enabled:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=follow,
        args=(ledger_dir, stop, notable),
        kwargs={"on_run": on_run, "earlier": len(_lines(ledger_dir))},
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
