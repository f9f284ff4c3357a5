"""The ``drp`` command: one typer application assembled from ``drp.commands``.

Each command group lives in its own module under ``drp.commands`` and registers itself here, so
that the modules stay small and can be read (and tested) one at a time.
"""

from __future__ import annotations

import typer

from drp.commands import chatops as chatops_commands
from drp.commands import check, classify, drill, evidence, failback, failover, lab, resync, runbook

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
app.add_typer(chatops_commands.app, name="chatops")
runbook.register_top_level(app)
classify.register(app)
failover.register(app)
resync.register(app)
failback.register(app)
drill.register(app)

from drp.commands import server as _server  # noqa: E402  (issue 9: server, workers)

_server.register(app)

from drp.commands import manual as _manual  # noqa: E402  (issue 7: manual mode)

app.add_typer(_manual.app, name="manual")

from drp.commands import backup as _backup  # noqa: E402  (issue 6: backups)

app.add_typer(_backup.app, name="backup")

from drp.commands import compliance as _compliance  # noqa: E402  (issue 5: documents, KPI)
from drp.commands import incidents as _incidents  # noqa: E402
from drp.commands import kpi as _kpi  # noqa: E402
from drp.commands import record as _record  # noqa: E402
from drp.commands import report as _report  # noqa: E402

_report.register(app)
_incidents.register(app)
_kpi.register(app)
_compliance.register(app)
app.add_typer(_record.app, name="record")

from drp.commands import roster as _roster  # noqa: E402  (issue 18: approvals that prove who)

app.add_typer(_roster.app, name="roster")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
