"""The ``drp`` command: one typer application assembled from ``drp.commands``.

Each command group lives in its own module under ``drp.commands`` and registers itself here, so
that the modules stay small and can be read (and tested) one at a time.
"""

from __future__ import annotations

import typer

from drp.commands import check, classify, evidence, failback, failover, lab, resync, runbook

app = typer.Typer(
    name="drp",
    help="Disaster-recovery runbook platform (PER-19/BC/2023): lab, runbooks, plans, evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(lab.app, name="lab")
app.add_typer(runbook.app, name="runbook")
app.add_typer(evidence.app, name="evidence")
app.add_typer(check.app, name="check")
runbook.register_top_level(app)
classify.register(app)
failover.register(app)
resync.register(app)
failback.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
