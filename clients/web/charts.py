"""Charts drawn on the server as inline SVG: readable without JavaScript, printable, and
every label escaped (campaign and tier names are typed by marketing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

ISSUED = "#2f7d4f"
REDEEMED = "#c2562c"
BAR = "#3a63a8"
TRACK = "#e6e9ef"


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten at or above value."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _number(value: int) -> str:
    return f"{value:,}"


def daily_bars(days: Sequence[str], issued: Sequence[int], redeemed: Sequence[int], title: str) -> Markup:
    """Grouped bars per day: points issued and points redeemed."""
    width, height, left, bottom, top = 720, 230, 56, 30, 30
    plot_w, plot_h = width - left - 12, height - top - bottom
    top_value = _nice_max(max([*issued, *redeemed, 0]))
    slot = plot_w / max(len(days), 1)
    bar = max(min(slot * 0.38, 24), 1.5)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i in range(5):
        value = top_value * i // 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" stroke="{TRACK}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{_number(value)}</text>')
    label_every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x = left + slot * i + slot / 2
        pair = ((-bar, issued[i], ISSUED, "issued"), (0, redeemed[i], REDEEMED, "redeemed"))
        for offset, value, colour, what in pair:
            h = plot_h * value / top_value
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(day)}: {_number(value)} points {what}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" class="axis">'
                f"{escape(day[5:])}</text>"
            )
    parts.append(
        f'<rect x="{left}" y="6" width="12" height="12" fill="{ISSUED}"/>'
        f'<text x="{left + 18}" y="16" class="legend">issued</text>'
        f'<rect x="{left + 90}" y="6" width="12" height="12" fill="{REDEEMED}"/>'
        f'<text x="{left + 108}" y="16" class="legend">redeemed</text></svg>'
    )
    return Markup("".join(parts))


@dataclass(frozen=True)
class Row:
    label: str
    value: int
    total: int  # the bar's full length (a budget); 0: scale to the largest value
    note: str = ""


def horizontal_bars(rows: Sequence[Row], title: str, colour: str = BAR) -> Markup:
    """One bar per row with its label and note: tier mix (members), budget burn (points of budget)."""
    line, label_w, width = 26, 120, 380
    height = max(len(rows), 1) * line + 8
    scale = max([r.value for r in rows if not r.total] + [1])
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    track = width - label_w - 96
    for i, row in enumerate(rows):
        y = 4 + i * line
        full = row.total or scale
        share = min(row.value / full, 1.0) if full else 0.0
        label = row.label if len(row.label) <= 16 else row.label[:15] + "…"
        parts.append(f'<text x="0" y="{y + 17}" class="label">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{track}" height="18" rx="3" fill="{TRACK}"/>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{track * share:.1f}" height="18" rx="3" fill="{colour}">'
            f"<title>{escape(row.label)}: {escape(row.note)}</title></rect>"
        )
        parts.append(f'<text x="{label_w + track + 8}" y="{y + 17}" class="axis">{escape(row.note)}</text>')
    if not rows:
        parts.append('<text x="0" y="20" class="axis">nothing to show yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
