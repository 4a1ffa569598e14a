"""Renderers: a port report as Markdown and as a self-contained HTML page with inline SVG plots."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from modelport.reports.render import CSS, bar_chart_svg

if TYPE_CHECKING:
    from modelport.porting.results import PortReport, TargetResult


def _fmt_ms(t: TargetResult) -> str:
    return f"{t.latency.p50_ms:.3f}" if t.latency else "–"


def _fmt_acc(t: TargetResult) -> str:
    return f"{t.accuracy.top1:.2%}" if t.accuracy else "–"


def _fmt_err(t: TargetResult) -> str:
    return f"{t.verification.max_abs:.2e}" if t.verification is not None else "–"


def _fmt_tol(t: TargetResult) -> str:
    return str(t.verification.tolerance) if t.verification is not None else "–"


def _status(t: TargetResult, with_reason: bool = True) -> str:
    return f"{t.status}: {t.reason}" if t.reason and with_reason else t.status


def target_rows(report: PortReport, with_reason: bool = True) -> list[list[str]]:
    """One row per target: target, executed precision, status, max abs error, tolerance, p50, p90, fps, acc, size."""
    rows = []
    for t in report.targets:
        rows.append(
            [
                t.label + (" ★" if t.label == report.fastest else ""),
                t.runner.executed_precision if t.runner else "–",
                _status(t, with_reason),
                _fmt_err(t),
                _fmt_tol(t),
                _fmt_ms(t),
                f"{t.latency.p90_ms:.3f}" if t.latency else "–",
                f"{t.throughput:.1f}" if t.throughput else "–",
                _fmt_acc(t),
                f"{t.size_bytes / 1024:.1f}" if t.size_bytes else "–",
            ]
        )
    return rows


HEADERS = [
    "target",
    "executes",
    "status",
    "max abs err",
    "tolerance",
    "p50 ms",
    "p90 ms",
    "samples/s",
    "top-1",
    "size KiB",
]


def summary_items(report: PortReport) -> list[tuple[str, str, str]]:
    """The report's summary as (label, text, kind) items: ``kind`` ("code", "strong" or "") says how the part of
    ``text`` before a NUL is shown; the part after it is plain."""
    env = report.environment
    extra = f"({report.source_format.value}, {report.source_nodes} nodes)"
    rows = [("source", f"{report.source}\0{extra}", "code")]
    if report.optimization:
        o = report.optimization
        rows.append(
            (
                "optimized",
                f"{o.nodes_before} → {o.nodes_after} nodes in {o.seconds:.2f} s "
                f"({', '.join(o.passes) or 'no pass changed the graph'})"
                + (f"; rolled back: {', '.join(o.rolled_back)}" if o.rolled_back else ""),
                "",
            )
        )
    if report.source_accuracy:
        a = report.source_accuracy
        top1 = f"{a.top1:.2%}" if a.top1 is not None else "–"
        rows.append(("source accuracy", f"top-1 {top1} on {a.samples} samples of {a.dataset}", ""))
    rows += [
        ("verification feeds", f"{report.feeds}; benchmark batch {report.batch}", ""),
        ("fastest verified target", report.fastest or "none", "strong"),
        ("machine", env.summary(), ""),
        ("versions", ", ".join(f"{k} {v}" for k, v in env.packages), ""),
    ]
    return rows


def _markdown_item(label: str, text: str, kind: str) -> str:
    head, _, tail = text.partition("\0")
    mark = {"code": "`", "strong": "**"}.get(kind, "")
    return f"- {label}: {mark}{head}{mark}" + (f" {tail}" if tail else "")


def port_markdown(report: PortReport) -> str:
    """The report as Markdown."""
    lines = ["# modelport port report", ""]
    lines += [_markdown_item(*item) for item in summary_items(report)]
    lines += [
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in target_rows(report)]
    lines.append("")
    return "\n".join(lines)


def _html_item(label: str, text: str, kind: str) -> str:
    head, _, tail = text.partition("\0")
    tag = {"code": "code", "strong": "strong"}.get(kind)
    shown = f"<{tag}>{html.escape(head)}</{tag}>" if tag else html.escape(head)
    return f"<li><b>{html.escape(label)}:</b> {shown}" + (f" {html.escape(tail)}" if tail else "") + "</li>"


def port_html(report: PortReport) -> str:
    """The report as one self-contained HTML page (tables + SVG plots)."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADERS)
    body_rows = []
    for t, row in zip(report.targets, target_rows(report), strict=True):
        cls = "ok" if t.verified else ("" if t.status == "skipped" else "bad")
        cells = "".join(
            f'<td class="{cls}">{esc(c)}</td>' if i == 2 else f"<td>{esc(c)}</td>" for i, c in enumerate(row)
        )
        body_rows.append(f"<tr>{cells}</tr>")
    timed = [t for t in report.targets if t.latency]
    latency_svg = bar_chart_svg(
        "Median latency (p50, lower is better)",
        [t.label for t in timed],
        [t.latency.p50_ms if t.latency else None for t in timed],
        "ms",
        report.fastest,
    )
    acc = [t for t in report.targets if t.accuracy]
    acc_svg = (
        bar_chart_svg(
            "Top-1 accuracy",
            [t.label for t in acc],
            [100 * t.accuracy.top1 if t.accuracy and t.accuracy.top1 is not None else None for t in acc],
            "%",
        )
        if acc
        else ""
    )
    env = report.environment
    summary = "\n".join(_html_item(*item) for item in summary_items(report))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelport report</title><style>{CSS}</style></head>
<body>
<h1>modelport port report</h1>
<ul class="summary">
{summary}
</ul>
<table><thead><tr>{head}</tr></thead><tbody>
{"".join(body_rows)}
</tbody></table>
<h2>Latency</h2>
{latency_svg}
{"<h2>Accuracy</h2>" + acc_svg if acc_svg else ""}
<h2>Environment</h2>
<p>{esc(env.summary())}<br>GPUs: {esc(", ".join(env.gpus) or "none")}<br>{esc(env.platform)}</p>
</body></html>
"""
