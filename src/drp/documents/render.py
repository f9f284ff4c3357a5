"""Render a :class:`~drp.domain.report.Document` as Markdown, printable HTML, xlsx or PDF.

Markdown and HTML come from Jinja2 templates: the package's own (``templates/``) or, first, the
user's (``DRP_TEMPLATE_DIR``), since the regulation's annex formats are not published and each
directorate lays out its letters its own way. A template is looked up as ``<kind>.<fmt>.j2``
(one document) and then ``document.<fmt>.j2`` (every document), so a user may replace one
letter or all of them. The xlsx workbook holds the document's tables with typed cells (numbers,
times, booleans) and column widths; PDF is the HTML printed by WeasyPrint.

A file is written whole or not at all (temporary file, then rename): a failed render never
leaves half a report beside good ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from drp.documents.chart import rto_timeline_svg
from drp.domain.report import FORMATS, MISSING, Document, Table, duration_text, wib
from drp.errors import DrpError

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"


class RenderError(DrpError):
    """A document could not be rendered (template error, unknown format, PDF library missing)."""


def environment(template_dir: Path | None = None, *, html: bool) -> jinja2.Environment:
    """Templates from the user's directory first, then the package's."""
    paths = [str(template_dir)] if template_dir else []
    if template_dir and not template_dir.is_dir():
        raise RenderError(
            f"template directory {template_dir} does not exist (hint: create it, or unset "
            "DRP_TEMPLATE_DIR to use the built-in templates)"
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*paths, str(PACKAGE_TEMPLATES)]),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wib"] = wib
    env.filters["duration"] = duration_text
    env.filters["cell"] = cell_text
    env.filters["md"] = md_escape
    return env


def cell_text(value: Any) -> str:
    """A table cell as text: times in WIB, floats with one decimal, booleans as ya/tidak."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "ya" if value else "tidak"
    if isinstance(value, datetime):
        return wib(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def md_escape(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return cell_text(value).replace("|", "/").replace("\n", " ")


def _template(env: jinja2.Environment, kind: str, fmt: str) -> jinja2.Template:
    try:
        return env.select_template([f"{kind}.{fmt}.j2", f"document.{fmt}.j2"])
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(
            f"template {exc.filename or exc.name}, line {exc.lineno}: {exc.message} "
            "(hint: fix the template, or remove it to fall back to the built-in one)"
        ) from exc


def render_text(doc: Document, fmt: str, template_dir: Path | None = None) -> str:
    """The document as Markdown (``md``) or HTML (``html``) text."""
    if fmt not in ("md", "html"):
        raise RenderError(f"format {fmt!r} is not text (hint: md or html)")
    env = environment(template_dir, html=fmt == "html")
    template = _template(env, doc.kind, fmt)
    charts = [Markup(rto_timeline_svg(t)) for t in doc.timelines] if fmt == "html" else []
    try:
        return template.render(doc=doc, charts=charts, MISSING=MISSING)
    except jinja2.TemplateError as exc:
        name = getattr(exc, "filename", None) or template.filename
        raise RenderError(
            f"template {name}: {exc} (hint: the template may only use the fields of "
            "drp.domain.report.Document; see docs/reports.md)"
        ) from exc


def write_atomically(path: Path, content: bytes) -> Path:
    """Write ``path`` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(content)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_name(doc: Document, fmt: str) -> str:
    return f"{doc.incident_id}-{doc.kind}.{fmt}"


def render(doc: Document, fmt: str, out_dir: Path, template_dir: Path | None = None) -> Path:
    """Write the document in ``fmt`` into ``out_dir``; returns the file."""
    if fmt not in FORMATS:
        raise RenderError(f"unknown format {fmt!r} (hint: one of {', '.join(FORMATS)})")
    target = out_dir / file_name(doc, fmt)
    if fmt in ("md", "html"):
        return write_atomically(target, render_text(doc, fmt, template_dir).encode("utf-8"))
    if fmt == "xlsx":
        return write_atomically(target, xlsx_bytes(doc))
    return write_atomically(target, pdf_bytes(render_text(doc, "html", template_dir)))


def pdf_bytes(html: str) -> bytes:
    """The HTML printed to PDF by WeasyPrint (Debian's pango is its only system need)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: pango missing
        raise RenderError(
            f"PDF needs WeasyPrint and Debian's pango libraries: {exc} (hint: make setup, or "
            "use --format html and print it)"
        ) from exc
    return weasyprint.HTML(string=html).write_pdf()


# --- xlsx -------------------------------------------------------------------------------------


def xlsx_bytes(doc: Document) -> bytes:
    """A workbook: a summary sheet, one sheet per table, the steps, and the evidence digests."""
    from io import BytesIO

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    summary = wb.active
    summary.title = "Ringkasan"
    rows: list[tuple[Any, ...]] = [
        (doc.title, doc.lampiran),
        ("Nomor", doc.nomor),
        ("Insiden", doc.incident_id),
        ("Diterbitkan", _naive(doc.issued_at)),
        ("Sifat", "SIMULASI" if doc.is_drill else "kejadian nyata"),
        *((label, value) for label, value in doc.addressing),
        ("Verifikasi bukti", doc.verification_statement),
        ("Bukti utuh", doc.evidence_verified),
    ]
    for section in doc.sections:
        rows += [(f"{section.title}: {label}", value) for label, value in section.fields]
        rows += [(section.title, text) for text in section.paragraphs]
    rows += [("Belum dicatat", m) for m in doc.all_missing]
    for row in rows:
        summary.append(list(row))
    summary["A1"].font = Font(bold=True)
    _widths(summary, {"A": 45, "B": 100})
    for cell in summary["B"]:
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    used: set[str] = {"Ringkasan"}
    for section in doc.sections:
        for table in section.tables:
            _table_sheet(wb, table, used)
    for timeline in doc.timelines:
        rto = Table(
            f"RTO {timeline.flow}",
            ("Langkah", "Mulai (s sejak awal)", "Durasi (s)", "Anggaran (s)", "Lewat", "Status"),
            tuple(
                (b.label, b.offset_s, b.duration_s, b.budget_s, b.over_budget, b.status)
                for b in timeline.bars
            ),
        )
        _table_sheet(wb, rto, used)
    evidence = Table(
        "Bukti",
        ("Ledger", "Path", "Catatan", "Head (SHA-256)", "Terverifikasi", "Masalah"),
        tuple(
            (e.name, e.path, e.records, e.head, e.verified, "; ".join(e.problems))
            for e in doc.evidence
        ),
    )
    _table_sheet(wb, evidence, used)
    attachments = Table("Lampiran bukti", ("Ledger", "Berkas", "SHA-256"), tuple(doc.attachments))
    _table_sheet(wb, attachments, used)
    buffer = BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _naive(moment: datetime) -> datetime:
    """Excel has no time zones: times are written in WIB, naive (the header says so)."""
    from drp.domain.report import WIB

    return moment.astimezone(WIB).replace(tzinfo=None)


def _sheet_title(title: str, used: set[str]) -> str:
    clean = "".join(c for c in title if c not in "[]:*?/\\")[:28] or "Tabel"
    name, n = clean, 2
    while name in used:
        name = f"{clean[:25]} {n}"
        n += 1
    used.add(name)
    return name


def _table_sheet(wb: Any, table: Table, used: set[str]) -> None:
    from openpyxl.styles import Font

    ws = wb.create_sheet(_sheet_title(table.title, used))
    headers = list(table.headers)
    has_time = any(isinstance(v, datetime) for row in table.rows for v in row)
    ws.append(
        [h + (" (WIB)" if _is_time_column(table, i) else "") for i, h in enumerate(headers)]
        if has_time
        else headers
    )
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in table.rows:
        ws.append([_naive(v) if isinstance(v, datetime) else v for v in row])
    if not table.rows and table.empty_note:
        ws.append([table.empty_note])
    widths: dict[str, float] = {}
    for column in ws.iter_cols(min_row=1, max_row=ws.max_row):
        letter = column[0].column_letter
        longest = max((len(cell_text(c.value)) for c in column), default=8)
        widths[letter] = min(max(longest + 2, 8), 80)
        for c in column[1:]:
            if isinstance(c.value, datetime):
                c.number_format = "yyyy-mm-dd hh:mm:ss"
                widths[letter] = max(widths[letter], 20)
            elif isinstance(c.value, float):
                c.number_format = "0.000"
    _widths(ws, widths)
    ws.freeze_panes = "A2"


def _is_time_column(table: Table, index: int) -> bool:
    return any(isinstance(row[index], datetime) for row in table.rows if index < len(row))


def _widths(ws: Any, widths: Mapping[str, float]) -> None:
    for letter, width in widths.items():
        ws.column_dimensions[letter].width = width
