"""Renderers of a port report: Markdown, a self-contained HTML page (inline SVG, no script) and rich tables.

Every renderer shows the same target table (one row per target: short status word, median latency, speed-up
over the naive baseline, best throughput, size, accuracy or error, tolerance), names the fastest targets for
latency and for throughput at the top, and moves everything long — reasons, INT8 verdicts, the route, the
engine settings tried, the command that rebuilds a target — into a per-target details section.

The HTML page adds an accuracy-vs-latency scatter (:mod:`.scatter`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelport.porting.scatter import format_ms, scatter_svg
from modelport.reports.render import CSS, markdown_table

if TYPE_CHECKING:
    from rich.table import Table

    from modelport.porting.results import PortReport, TargetResult

#: Columns of the target table, in every renderer.
HEADERS = [
    "target",
    "executes",
    "status",
    "p50 ms",
    "speed-up vs baseline",
    "best samples/s (batch)",
    "size",
    "top-1 / max abs err",
    "tolerance",
]
_LEFT = {"target", "executes", "status", "tolerance"}
FASTEST_MARK = "★"  # the fastest verified target for latency
THROUGHPUT_MARK = "◆"  # the verified target with the most samples/s
BASELINE = "ONNX Runtime FP32, default settings"

# --- cells ---------------------------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _size(n: int) -> str:
    if not n:
        return "–"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def best_throughput(t: TargetResult, batch: int) -> tuple[float, int] | None:
    """The target's highest (samples/s, batch): over ``throughputs``, else its latency-batch ``throughput``."""
    if t.throughputs:
        best = max(t.throughputs, key=lambda r: r.samples_per_s)
        return best.samples_per_s, best.batch
    return (t.throughput, batch) if t.throughput else None


def _quality(t: TargetResult) -> str:
    if t.accuracy is not None and t.accuracy.top1 is not None:
        return f"{t.accuracy.top1:.2%}"
    return f"{t.verification.max_abs:.2e}" if t.verification is not None else "–"


def _reason(t: TargetResult) -> str:
    """The target's reason without trailing separators."""
    return t.reason.strip().rstrip(";,").rstrip()


def _marks(t: TargetResult, report: PortReport) -> str:
    marks = (FASTEST_MARK if t.label == report.fastest else "") + (
        THROUGHPUT_MARK if t.label == report.fastest_throughput else ""
    )
    return f" {marks}" if marks else ""


def target_rows(report: PortReport, with_reason: bool = False) -> list[list[str]]:
    """One row of :data:`HEADERS` per target (short status words; ``with_reason`` appends the reason to them)."""
    rows = []
    for t in report.targets:
        tp = best_throughput(t, report.batch)
        status = f"{t.status}: {_reason(t)}" if with_reason and _reason(t) else t.status
        rows.append(
            [
                t.label + _marks(t, report),
                t.runner.executed_precision if t.runner else "–",
                status,
                format_ms(t.latency.p50_ms) if t.latency else "–",
                f"{t.speedup:.2f}×" if t.speedup is not None else "–",
                f"{_rate(tp[0])} ({tp[1]})" if tp else "–",
                _size(t.size_bytes),
                _quality(t),
                str(t.verification.tolerance) if t.verification is not None else "–",
            ]
        )
    return rows


def route_text(route: Sequence[str]) -> str:
    """Conversion hops as one chain when they connect (``a → b``, ``b → c`` → ``a → b → c``), else listed."""
    chain: list[str] = []
    for hop in route:
        parts = [p.strip() for p in hop.split("→")]
        if chain and parts[0] == chain[-1]:
            chain += parts[1:]
        elif not chain:
            chain = parts
        else:
            return "; ".join(route)
    return " → ".join(chain)


def settings_text(settings: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings) or "defaults"


# --- summary -------------------------------------------------------------------------------------------------


def _target(report: PortReport, label: str | None) -> TargetResult | None:
    return next((t for t in report.targets if t.label == label), None)


def _headline(report: PortReport) -> list[tuple[str, str, str]]:
    fast = _target(report, report.fastest)
    text = "none verified"
    if fast is not None:
        text = f"{fast.label}\0" + (f"— {format_ms(fast.latency.p50_ms)} ms p50" if fast.latency else "")
        text += f", {fast.speedup:.2f}× the baseline" if fast.speedup is not None else ""
    items = [("fastest verified target (latency)", text, "strong")]
    tput = _target(report, report.fastest_throughput)
    best = best_throughput(tput, report.batch) if tput is not None else None
    if tput is not None and best is not None:
        items.append(
            ("fastest (throughput)", f"{tput.label}\0— {_rate(best[0])} samples/s at batch {best[1]}", "strong")
        )
    if report.baseline_ms is not None:
        items.append(("baseline", f"{BASELINE}: {format_ms(report.baseline_ms)} ms p50 at batch {report.batch}", ""))
    done = sum(t.status != "skipped" for t in report.targets)
    items.append(("time", f"port took {report.seconds:.1f} s for {done} targets", ""))
    items.append(("machine", report.environment.summary(), ""))
    return items


def summary_items(report: PortReport) -> list[tuple[str, str, str]]:
    """The report's summary as (label, text, kind) items: ``kind`` ("code", "strong" or "") says how the part of
    ``text`` before a NUL is shown; the part after it is plain."""
    env = report.environment
    rows = _headline(report)
    rows.append(("source", f"{report.source}\0({report.source_format.value}, {report.source_nodes} nodes)", "code"))
    if report.optimization:
        o = report.optimization
        passes = ", ".join(o.passes) or "no pass changed the graph"
        back = f"; rolled back: {', '.join(o.rolled_back)}" if o.rolled_back else ""
        rows.append(
            ("optimized", f"{o.nodes_before} → {o.nodes_after} nodes in {o.seconds:.2f} s ({passes}){back}", "")
        )
    if report.source_accuracy:
        a = report.source_accuracy
        top1 = f"{a.top1:.2%}" if a.top1 is not None else "–"
        rows.append(("source accuracy", f"top-1 {top1} on {a.samples} samples of {a.dataset}", ""))
    rows.append(("verification feeds", f"{report.feeds}; benchmark batch {report.batch}", ""))
    if env.packages:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in env.packages), ""))
    return rows


def interrupted_text(report: PortReport) -> str:
    n = sum(t.status != "skipped" for t in report.targets)
    return f"Interrupted (Ctrl-C): this report holds the {n} targets finished before the interruption."


# --- details -------------------------------------------------------------------------------------------------


def detail_items(t: TargetResult) -> list[tuple[str, str]]:
    """The long facts of one target as (label, text) pairs, in reading order ("" labels: the status line)."""
    items = [("", f"{t.status}: {_reason(t)}" if _reason(t) else t.status)]
    if t.flags:
        items.append(("flags", ", ".join(t.flags)))
    if t.route:
        items.append(("route", route_text(t.route)))
    if t.runner is not None:
        r = t.runner
        items.append(("runs on", f"{r.runtime} {r.version}, {r.device}, executes {r.executed_precision}"))
    v = t.verification
    if v is not None and v.worst is not None:
        w = v.worst
        items.append(
            (
                "verification",
                f"worst output {w.name!r}: max abs {w.max_abs:.3g}, rel-L2 {w.rel_l2:.3g}, cosine {w.cosine:.6f}"
                f" ({len(v.outputs)} output{'s' if len(v.outputs) > 1 else ''}; {v.tolerance})",
            )
        )
    if t.accuracy is not None:
        a = t.accuracy
        parts = [f"top-1 {a.top1:.2%}" if a.top1 is not None else ""]
        parts += [f"top-5 {a.top5:.2%}" if a.top5 is not None else ""]
        parts += [f"agreement {a.agreement:.2%}" if a.agreement is not None else ""]
        items.append(("accuracy", ", ".join(p for p in parts if p) + f" on {a.samples} samples of {a.dataset}"))
    if t.throughputs:
        items.append(("throughput", ", ".join(f"{_rate(r.samples_per_s)}/s at {r.mode}" for r in t.throughputs)))
    if t.artifact:
        items.append(("artifact", f"{t.artifact} ({_size(t.size_bytes)})"))
    if t.seconds or t.convert_seconds:
        converting = f", {t.convert_seconds:.1f} s converting" if t.convert_seconds >= 0.05 else ""
        items.append(("time", f"{t.seconds:.1f} s in all{converting}" if t.seconds else converting[2:]))
    if t.settings or t.trials:
        items.append(("engine settings kept", settings_text(t.settings)))
    return items


def trial_rows(t: TargetResult) -> list[list[str]]:
    """The engine settings tried: settings, p50 ms, outcome ("kept", "" or the error)."""
    return [
        [
            settings_text(s.settings),
            format_ms(s.p50_ms) if s.p50_ms is not None else "–",
            "kept" if s.chosen else s.error,
        ]
        for s in t.trials
    ]


TRIAL_HEADERS = ["settings tried", "p50 ms", "outcome"]


# --- Markdown ------------------------------------------------------------------------------------------------


def _markdown_item(label: str, text: str, kind: str) -> str:
    head, _, tail = text.partition("\0")
    mark = {"code": "`", "strong": "**"}.get(kind, "")
    return f"- {label}: {mark}{head}{mark}" + (f" {tail}" if tail else "")


def _markdown_details(t: TargetResult) -> list[str]:
    lines = [f"### {t.label}", ""]
    lines += [f"- {label}: {text}" if label else f"- {text}" for label, text in detail_items(t)]
    notes = [n for n in t.details.splitlines() if n.strip()]
    if notes:
        lines += ["- notes:"] + [f"  - {n.strip()}" for n in notes]
    if t.trials:
        lines += ["", *markdown_table(TRIAL_HEADERS, trial_rows(t))]
    if t.command:
        lines += ["", "Reproduce:", "", "```bash", t.command, "```"]
    return [*lines, ""]


def port_markdown(report: PortReport) -> str:
    """The report as Markdown."""
    lines = ["# modelport port report", ""]
    if report.interrupted:
        lines += [f"> **{interrupted_text(report)}**", ""]
    lines += [_markdown_item(*item) for item in summary_items(report)]
    lines += ["", *markdown_table(HEADERS, target_rows(report)), ""]
    lines += [
        f"{FASTEST_MARK} fastest verified target (latency) · {THROUGHPUT_MARK} most samples/s; details below.",
        "",
    ]
    lines += ["## Details", ""]
    for t in report.targets:
        lines += _markdown_details(t)
    return "\n".join(lines)


# --- HTML ----------------------------------------------------------------------------------------------------

_PAGE_CSS = """body{max-width:1200px}table.targets td{text-align:right;white-space:nowrap}
table.targets td.l,table.targets th{text-align:left}table.targets td:last-child{white-space:normal;font-size:.85em}
table.trials td:first-child,table.trials td:last-child,table.trials th{text-align:left}
table.trials{margin:.4em 0 .6em;font-size:.92em}
.alert{background:#fff3cd;border:1px solid #e0c060;padding:.5em .8em;font-weight:bold}
section.target{border-top:1px solid #ddd;margin-top:1em}section.target h3{margin:.6em 0 .3em}
section.target ul{margin:.2em 0;padding-left:1.2em;line-height:1.45}
pre{background:#f3f3f3;padding:.5em .8em;overflow-x:auto;white-space:pre-wrap}.legend{color:#555;font-size:.9em}
.note{color:#555;font-size:.9em;margin:.2em 0 1em}"""


def _html_item(label: str, text: str, kind: str) -> str:
    head, _, tail = text.partition("\0")
    tag = {"code": "code", "strong": "strong"}.get(kind)
    shown = f"<{tag}>{html.escape(head)}</{tag}>" if tag else html.escape(head)
    return f"<li><b>{html.escape(label)}:</b> {shown}" + (f" {html.escape(tail)}" if tail else "") + "</li>"


def _html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str, status_classes: Sequence[str] = ()
) -> str:
    """A table; ``status_classes[i]`` (if any) is added to row ``i``'s "status" cell."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for h, c in zip(headers, row, strict=True):
            extra = status_classes[i] if h == "status" and i < len(status_classes) else ""
            klass = " ".join(k for k in ("l" if h in _LEFT else "", extra) if k)
            cells.append(f'<td class="{klass}">{esc(c)}</td>' if klass else f"<td>{esc(c)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body) + "\n</tbody></table>"


def _status_class(t: TargetResult) -> str:
    return "ok" if t.verified else ("" if t.status == "skipped" else "bad")


def _html_targets(report: PortReport) -> str:
    return _html_table(HEADERS, target_rows(report), "targets", [_status_class(t) for t in report.targets])


def _html_details(t: TargetResult) -> str:
    esc = html.escape
    items = []
    for label, text in detail_items(t):
        cls = _status_class(t)
        if not label:
            items.append(f'<li class="{cls}">{esc(text)}</li>' if cls else f"<li>{esc(text)}</li>")
        else:
            items.append(f"<li><b>{esc(label)}:</b> {esc(text)}</li>")
    notes = [n.strip() for n in t.details.splitlines() if n.strip()]
    if notes:
        items.append("<li><b>notes:</b><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></li>")
    parts = [f'<section class="target"><h3>{esc(t.label)}</h3><ul>{"".join(items)}</ul>']
    if t.trials:
        parts.append(_html_table(TRIAL_HEADERS, trial_rows(t), "trials"))
    if t.command:
        parts.append(f"<p><b>Reproduce:</b></p><pre><code>{esc(t.command)}</code></pre>")
    return "\n".join(parts) + "</section>"


def port_html(report: PortReport) -> str:
    """The report as one self-contained HTML page: summary, target table, scatter, details (no script)."""
    esc = html.escape
    env = report.environment
    alert = f'<p class="alert">{esc(interrupted_text(report))}</p>' if report.interrupted else ""
    summary = "\n".join(_html_item(*item) for item in summary_items(report))
    legend = f"{FASTEST_MARK} fastest verified target (latency) · {THROUGHPUT_MARK} most samples/s; details below."
    svg, note = scatter_svg(report)
    plot = (
        f"<h2>Accuracy vs latency</h2>\n{svg}\n" + (f'<p class="note">{esc(note)}</p>' if note else "") if svg else ""
    )
    details = "\n".join(_html_details(t) for t in report.targets)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelport port report</title>
<style>{CSS}
{_PAGE_CSS}</style></head>
<body>
<h1>modelport port report</h1>
{alert}
<ul class="summary">
{summary}
</ul>
{_html_targets(report)}
<p class="legend">{esc(legend)}</p>
{plot}<h2>Details</h2>
{details}
<h2>Environment</h2>
<p>{esc(env.summary())}<br>GPUs: {esc(", ".join(env.gpus) or "none")}<br>{esc(env.platform)}</p>
</body></html>
"""


# --- terminal ------------------------------------------------------------------------------------------------


def rich_tables(report: PortReport) -> list[Table]:
    """The terminal's view: the target table (short status words) and a short details list (reasons, flags)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="targets", title_justify="left")
    for h in HEADERS:  # long headers on two lines leave the width to the tolerance
        head = h.replace(" vs ", "\nvs ").replace(" (", "\n(").replace(" / ", " /\n")
        table.add_column(head, justify="left" if h in _LEFT else "right", no_wrap=h != "tolerance")
    styles = {"verified": "green", "mismatch": "red", "failed": "red"}
    for t, row in zip(report.targets, target_rows(report), strict=True):
        cells = [Text(c, style=styles.get(t.status, "") if j == 2 else "") for j, c in enumerate(row)]
        table.add_row(*cells)
    table.caption = f"{FASTEST_MARK} fastest (latency) · {THROUGHPUT_MARK} most samples/s"
    if report.baseline_ms is not None:
        table.caption += f" · speed-up vs {BASELINE} ({format_ms(report.baseline_ms)} ms)"
    lines = [interrupted_text(report)] if report.interrupted else []
    for t in report.targets:
        flags = ", ".join(t.flags)
        if _reason(t):
            lines.append(f"{t.label}: {t.status}: {_reason(t)}" + (f" [{flags}]" if flags else ""))
        elif flags:
            lines.append(f"{t.label}: {flags}")
    if not lines:
        return [table]
    details = Table.grid(padding=(0, 1))
    details.add_column()
    for line in lines:
        details.add_row(Text(line))
    return [table, details]
