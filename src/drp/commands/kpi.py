"""``drp kpi``: the yearly downtime percentage against the 0.1% target (seed 002's rules).

Outages come from two places: the incident registry (every real, non-drill incident counts from
its detection, or its declaration, to the moment service worked again, against every service of
the runbook; drills are planned and never count) and, optionally, a monitoring export
(``--input FILE``, YAML: services with their hours and high availability, and outages with their
cause and source). The rules live in :mod:`drp.domain.kpi`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from markupsafe import Markup
from rich.markup import escape
from rich.table import Table

from drp.adapters import registry
from drp.commands._output import console, emit_json, fail
from drp.commands.incidents import ops_dsn
from drp.documents.chart import kpi_bars_svg
from drp.documents.render import environment, write_atomically
from drp.domain.kpi import (
    TARGET_PERCENT,
    Cause,
    KpiReport,
    KpiService,
    Outage,
    kpi_input_from_mapping,
    yearly_kpi,
)
from drp.errors import DrpError, RunbookError
from drp.runbooks import load_runbook
from drp.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("kpi")(kpi)


def incident_outages(
    rows: list[registry.IncidentRow], service_ids: list[str], now: datetime
) -> list[Outage]:
    """Real incidents as whole-service outages of every service (drills are planned)."""
    out = []
    for row in rows:
        if row.is_drill:
            continue
        start = row.detected_at or row.declared_at
        if start is None:
            continue
        end = row.service_restored_at or now
        for service_id in service_ids:
            out.append(Outage(service_id, start, end, Cause.UNPLANNED, None, row.incident_id))
    return out


def kpi(
    year: Annotated[int, typer.Option(help="The calendar year (Asia/Jakarta).")],
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="YAML: services (hours, HA, sources) and monitored outages."),
    ] = None,
    runbook: Annotated[
        Path, typer.Option(help="The runbook whose services incidents count against.")
    ] = Path("runbooks/lab.yaml"),
    no_registry: Annotated[
        bool, typer.Option("--no-registry", help="Do not read incidents from the registry.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write kpi-YEAR.html (with a chart) and .md here.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Yearly downtime per service and overall, against the 0.1% target."""
    if not 1970 <= year <= 2200:
        fail(f"--year {year}: expected a calendar year such as 2026", code=2)
    settings = Settings()
    services: list[KpiService] = []
    outages: list[Outage] = []
    target = TARGET_PERCENT
    try:
        if runbook.exists():
            rb = load_runbook(str(runbook))
            services = [KpiService(s.id, s.name, high_availability=True) for s in rb.services]
        if input_file is not None:
            if not input_file.exists():
                fail(f"--input {escape(str(input_file))}: no such file", code=2)
            try:
                data = yaml.safe_load(input_file.read_text())
            except yaml.YAMLError as exc:
                fail(f"{escape(str(input_file))}: not YAML: {escape(str(exc))}", code=2)
            more, outages, target = kpi_input_from_mapping(data, str(input_file))
            given = {s.id for s in more}
            services = [s for s in services if s.id not in given] + more
        if not services:
            fail("no services to measure (hint: --runbook FILE or --input FILE)", code=2)
        if not no_registry:
            rows = registry.list_incidents(ops_dsn(settings))
            outages += incident_outages(rows, [s.id for s in services], datetime.now(UTC))
    except RunbookError as exc:
        lines = "\n".join(f"  - {p}" for p in exc.problems) if exc.problems else ""
        fail(escape(f"{exc}\n{lines}".rstrip()), code=2)
    except DrpError as exc:
        fail(escape(str(exc)))
    report = yearly_kpi(year, services, outages, target)
    written = _write(report, out, settings.template_dir) if out else []
    if json_out:
        emit_json({**report.to_dict(), "files": [str(p) for p in written]})
        return
    _print(report)
    for path in written:
        console.print(f"written: {escape(str(path))}")


def _print(report: KpiReport) -> None:
    table = Table(title=f"Downtime {report.year} (target ≤ {report.target_percent}%)")
    for column in ("service", "hours", "HA", "service time", "downtime", "%", "target"):
        table.add_column(column)
    for s in report.services:
        table.add_row(
            escape(s.service.id),
            s.service.hours.describe(),
            "yes" if s.service.high_availability else "no",
            f"{s.service_s / 3600:.1f} h",
            f"{s.downtime_s / 60:.2f} min",
            f"{s.percent:.4f}",
            "[green]met[/]" if s.met else "[red]missed[/]",
        )
    table.add_row(
        "[bold]overall[/]",
        "",
        "",
        f"{report.service_s / 3600:.1f} h",
        f"{report.downtime_s / 60:.2f} min",
        f"{report.percent:.4f}",
        "[green]met[/]" if report.met else "[red]missed[/]",
    )
    console.print(table)
    for s in report.services:
        console.print(escape(s.reason), highlight=False)
        for j in s.judgements:
            console.print(
                f"  {j.outage.start:%Y-%m-%d %H:%M}–{j.outage.end:%Y-%m-%d %H:%M} "
                f"{j.outage.cause.value} {escape(j.outage.reference)}: {escape(j.reason)}",
                highlight=False,
            )
    if report.unknown_services:
        console.print(
            f"[yellow]outages of unknown services ignored:[/] {', '.join(report.unknown_services)}"
        )


def _write(report: KpiReport, out: Path, template_dir: Path | None) -> list[Path]:
    data: dict[str, Any] = report.to_dict()
    chart = Markup(
        kpi_bars_svg(
            [(s.service.id, s.percent) for s in report.services]
            + [("keseluruhan", report.percent)],
            report.target_percent,
        )
    )
    written = []
    for fmt in ("html", "md"):
        env = environment(template_dir, html=fmt == "html")
        text = env.get_template(f"kpi.{fmt}.j2").render(kpi=data, chart=chart)
        written.append(write_atomically(out / f"kpi-{report.year}.{fmt}", text.encode("utf-8")))
    return written
