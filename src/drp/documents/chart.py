"""Charts drawn as inline SVG: the RTO timeline of a phase, and the yearly downtime per service.

SVG written by hand (no plotting library): it prints in any browser and in WeasyPrint, stays in
the one HTML file, and its numbers can be read back by a test. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from drp.domain.report import RtoTimeline, duration_text

WIDTH = 760
LABEL_W = 250
ROW_H = 22


def _num(value: float) -> str:
    return f"{value:.1f}"


def rto_timeline_svg(timeline: RtoTimeline) -> str:
    """Each step as a bar from its start (offset from the clock start) for its duration, its
    budget as an outline behind it; a red bar is over budget. Below: the achieved RTO as a
    share of the 60-minute limit."""
    bars = timeline.bars
    span = max(
        [b.offset_s + max(b.duration_s, b.budget_s) for b in bars]
        + [timeline.achieved_s or 0.0, 1.0]
    )
    plot_w = WIDTH - LABEL_W - 20
    scale = plot_w / span
    height = ROW_H * (len(bars) + 3) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" class="rto-chart" '
        f'data-flow="{escape(timeline.flow)}">',
        f"<title>Linimasa RTO {escape(timeline.flow)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = 10 + i * ROW_H
        x = LABEL_W + bar.offset_s * scale
        label = bar.label if len(bar.label) <= 38 else bar.label[:37] + "…"
        colour = "#c0392b" if bar.over_budget else "#2e86c1"
        parts += [
            f'<text x="{LABEL_W - 6}" y="{y + 14}" text-anchor="end" font-size="11">'
            f"{escape(label)}</text>",
            f'<rect x="{_num(x)}" y="{y + 3}" width="{_num(max(bar.budget_s * scale, 1))}" '
            f'height="14" fill="none" stroke="#999" stroke-dasharray="3,2" class="budget" '
            f'data-budget-s="{bar.budget_s}"/>',
            f'<rect x="{_num(x)}" y="{y + 5}" width="{_num(max(bar.duration_s * scale, 1))}" '
            f'height="10" fill="{colour}" class="step" data-duration-s="{bar.duration_s}" '
            f'data-status="{escape(bar.status)}"/>',
        ]
    y = 10 + len(bars) * ROW_H + 10
    if timeline.achieved_s is not None:
        x = LABEL_W + timeline.achieved_s * scale
        parts.append(
            f'<line x1="{_num(x)}" y1="5" x2="{_num(x)}" y2="{y}" stroke="#27ae60" '
            'stroke-width="2" class="achieved"/>'
        )
    share = min((timeline.achieved_s or 0.0) / timeline.limit_s, 1.0)
    parts += [
        f'<text x="{LABEL_W - 6}" y="{y + 24}" text-anchor="end" font-size="11">'
        "RTO vs batas 60 menit</text>",
        f'<rect x="{LABEL_W}" y="{y + 12}" width="{plot_w}" height="14" fill="#eee" '
        'stroke="#999"/>',
        f'<rect x="{LABEL_W}" y="{y + 12}" width="{_num(max(share * plot_w, 1))}" height="14" '
        f'fill="{"#27ae60" if share < 1 else "#c0392b"}" class="rto-share" '
        f'data-achieved-s="{timeline.achieved_s}" data-limit-s="{timeline.limit_s}"/>',
        f'<text x="{LABEL_W + 4}" y="{y + 44}" font-size="11">'
        f"{escape(duration_text(timeline.achieved_s))} dari 60 menit "
        f"(skala langkah: 0–{escape(duration_text(span))})</text>",
        "</svg>",
    ]
    return "".join(parts)


def kpi_bars_svg(rows: Sequence[tuple[str, float]], target: float) -> str:
    """Downtime % per service as horizontal bars, with the target as a vertical line."""
    top = max([v for _, v in rows] + [target * 1.25, 1e-9])
    plot_w = WIDTH - LABEL_W - 80
    scale = plot_w / top
    height = ROW_H * len(rows) + 40
    tx = LABEL_W + target * scale
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" class="kpi-chart">',
        "<title>Tingkat downtime per layanan</title>",
    ]
    for i, (label, value) in enumerate(rows):
        y = 10 + i * ROW_H
        colour = "#c0392b" if value > target else "#27ae60"
        parts += [
            f'<text x="{LABEL_W - 6}" y="{y + 14}" text-anchor="end" font-size="11">'
            f"{escape(label)}</text>",
            f'<rect x="{LABEL_W}" y="{y + 4}" width="{_num(max(value * scale, 1))}" height="12" '
            f'fill="{colour}" class="kpi-bar" data-percent="{value}"/>',
            f'<text x="{_num(LABEL_W + value * scale + 4)}" y="{y + 14}" font-size="10">'
            f"{value:.4f}%</text>",
        ]
    bottom = 10 + len(rows) * ROW_H
    parts += [
        f'<line x1="{_num(tx)}" y1="5" x2="{_num(tx)}" y2="{bottom}" stroke="#333" '
        f'stroke-dasharray="4,2" class="target" data-target="{target}"/>',
        f'<text x="{_num(tx)}" y="{bottom + 16}" font-size="10" text-anchor="middle">'
        f"target {target}%</text>",
        "</svg>",
    ]
    return "".join(parts)
