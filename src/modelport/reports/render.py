"""Renderers every report shares: inline SVG plots and the page style (no external assets)."""

from __future__ import annotations

import html
from collections.abc import Sequence


def bar_chart_svg(
    title: str, labels: Sequence[str], values: Sequence[float | None], unit: str, highlight: str | None = None
) -> str:
    """A horizontal bar chart as inline SVG (no external assets)."""
    width, bar_h, gap, left = 640, 22, 8, 170
    items = [(lab, v) for lab, v in zip(labels, values, strict=True) if v is not None]
    height = 40 + len(items) * (bar_h + gap)
    vmax = max((v for _, v in items), default=1.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="0" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(items):
        y = 30 + i * (bar_h + gap)
        w = (width - left - 90) * value / vmax
        color = "#2a7ae2" if label != highlight else "#e2762a"
        parts += [
            f'<text x="{left - 6}" y="{y + 15}" font-size="12" text-anchor="end">{html.escape(label)}</text>',
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>',
            f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="12">{value:.4g} {html.escape(unit)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines; a cell's ``|`` escaped and its line breaks turned into spaces."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child,td:nth-child(3),td:nth-child(5){text-align:left}.bad{color:#b00}.ok{color:#070}
ul.summary{padding-left:1.2em;line-height:1.5}code{background:#f3f3f3;padding:0 3px}"""
