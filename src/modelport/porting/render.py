r"""Renderers of a port report: Markdown, a self-contained HTML page (inline SVG, no script) and rich tables.

Every renderer shows the same target table (one row per target: short status word, median latency, speed-up
over the naive baseline, best throughput, size, accuracy or error, tolerance), names the fastest targets for
latency and for throughput at the top, and moves everything long — reasons, INT8 verdicts, the route, the
engine settings tried, the command that rebuilds a target — into a per-target details section.

The HTML page adds an accuracy-vs-latency scatter. Its Pareto front is the set of verified targets that no
other verified target dominates, with both axes turned into costs to minimise (latency :math:`x`, and
:math:`y` = −top-1 or the verification error): :math:`q` dominates :math:`p` when

.. math:: x_q \le x_p,\quad y_q \le y_p,\quad (x_q, y_q) \ne (x_p, y_p).

Identical points therefore never dominate each other: both stay on the front.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from modelport.reports.render import CSS

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


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


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
                _ms(t.latency.p50_ms) if t.latency else "–",
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
        text = f"{fast.label}\0" + (f"— {_ms(fast.latency.p50_ms)} ms p50" if fast.latency else "")
        text += f", {fast.speedup:.2f}× the baseline" if fast.speedup is not None else ""
    items = [("fastest verified target (latency)", text, "strong")]
    tput = _target(report, report.fastest_throughput)
    best = best_throughput(tput, report.batch) if tput is not None else None
    if tput is not None and best is not None:
        items.append(
            ("fastest (throughput)", f"{tput.label}\0— {_rate(best[0])} samples/s at batch {best[1]}", "strong")
        )
    if report.baseline_ms is not None:
        items.append(("baseline", f"{BASELINE}: {_ms(report.baseline_ms)} ms p50 at batch {report.batch}", ""))
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
            _ms(s.p50_ms) if s.p50_ms is not None else "–",
            "kept" if s.chosen else s.error,
        ]
        for s in t.trials
    ]


TRIAL_HEADERS = ["settings tried", "p50 ms", "outcome"]


# --- Markdown ------------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]


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
        lines += ["", *_md_table(TRIAL_HEADERS, trial_rows(t))]
    if t.command:
        lines += ["", "Reproduce:", "", "```bash", t.command, "```"]
    return [*lines, ""]


def port_markdown(report: PortReport) -> str:
    """The report as Markdown."""
    lines = ["# modelport port report", ""]
    if report.interrupted:
        lines += [f"> **{interrupted_text(report)}**", ""]
    lines += [_markdown_item(*item) for item in summary_items(report)]
    lines += ["", *_md_table(HEADERS, target_rows(report)), ""]
    lines += [
        f"{FASTEST_MARK} fastest verified target (latency) · {THROUGHPUT_MARK} most samples/s; details below.",
        "",
    ]
    lines += ["## Details", ""]
    for t in report.targets:
        lines += _markdown_details(t)
    return "\n".join(lines)


# --- scatter -------------------------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points that no other point dominates, both coordinates being costs (lower is better).

    ``q`` dominates ``p`` when it is no worse on both coordinates and differs from it; identical points do
    not dominate each other, so ties stay on the front together.

    Args:
        points: ``(x, y)`` costs, e.g. (latency, −accuracy) or (latency, error); finite numbers.

    Returns:
        The indices of the front, by increasing ``x`` (then ``y``, then index).
    """
    front = [
        i
        for i, p in enumerate(points)
        if not any(q[0] <= p[0] and q[1] <= p[1] and (q[0], q[1]) != (p[0], p[1]) for q in points)
    ]
    return sorted(front, key=lambda i: (points[i][0], points[i][1], i))


def _worst_rel_l2(t: TargetResult) -> float | None:
    v = t.verification
    return max((o.rel_l2 for o in v.outputs), default=0.0) if v is not None else None


def scatter_points(report: PortReport) -> tuple[list[tuple[TargetResult, float, float]], str, bool, list[str]]:
    """The scatter's data: (target, p50 ms, y) per drawn target, the y axis title, whether higher y is better,
    and a note per target left out."""
    measured = [t for t in report.targets if t.latency is not None]
    by_acc = any(t.accuracy is not None and t.accuracy.top1 is not None for t in measured)
    drawn: list[tuple[TargetResult, float, float]] = []
    left_out: list[str] = []
    for t in report.targets:
        if t.latency is None:
            left_out.append(f"{t.label} ({t.status}, not measured)")
            continue
        if by_acc:
            y = 100 * t.accuracy.top1 if t.accuracy is not None and t.accuracy.top1 is not None else None
        else:
            y = _worst_rel_l2(t)
        if y is None or not math.isfinite(y) or not math.isfinite(t.latency.p50_ms) or t.latency.p50_ms <= 0:
            left_out.append(f"{t.label} (no {'top-1' if by_acc else 'verification error'})")
            continue
        drawn.append((t, t.latency.p50_ms, y))
    title = "top-1 accuracy, % (higher is better)" if by_acc else "worst output relative L2 error (lower is better)"
    return drawn, title, by_acc, left_out


def _nice_step(span: float) -> float:
    raw = span / 5 if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return mag * next(m for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))


def _axis(
    values: Sequence[float], cap: float = math.inf, min_span: float = 0.0
) -> tuple[float, float, bool, list[float]]:
    """(low, high, log scale, ticks) of an axis showing ``values``: log when they span more than 10×; a linear
    axis spans at least ``min_span`` (noise-sized differences stay small) and never goes below 0 for
    non-negative values nor above ``cap`` (100 for a percentage)."""
    lo, hi = min(values), max(values)
    if hi - lo < min_span:
        mid = min((lo + hi) / 2, cap - min_span / 2)
        lo, hi = min(lo, mid - min_span / 2), max(hi, mid + min_span / 2)
    if lo > 0 and hi / lo > 10:  # a margin of ~15 % keeps the points off the frame
        a, b = math.floor(math.log10(lo / 1.15)), math.ceil(math.log10(hi * 1.15))
        ticks = [m * 10.0**e for e in range(a, b + 1) for m in ((1,) if b - a > 2 else (1, 2, 5))]
        return 10.0**a, 10.0**b, True, [v for v in ticks if 10.0**a <= v <= 10.0**b]
    pad = (hi - lo) * 0.06 if hi > lo else abs(hi) * 0.01 or 1.0
    step = _nice_step(hi - lo + 2 * pad)
    low, high = math.floor((lo - pad) / step) * step, math.ceil((hi + pad) / step) * step
    low = 0.0 if lo >= 0 > low else low
    high = cap if hi <= cap < high else high
    n = int((high - low) / step + 1e-9)
    return low, high, False, [low + i * step for i in range(n + 1)]


def _frac(v: float, lo: float, hi: float, log: bool) -> float:
    if log:
        return (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    return (v - lo) / (hi - lo)


def _tick(v: float) -> str:
    return f"{v:.4g}"


_W, _H, _L, _R, _T, _B = 900, 440, 80, 720, 40, 370  # size, then the plot area's left, right, top, bottom


def scatter_svg(report: PortReport) -> tuple[str, str]:
    """The accuracy-vs-latency scatter as inline SVG (no script), and a note on what is not drawn.

    One point per measured target, labelled; the Pareto front of the verified targets highlighted and joined;
    targets that did not verify drawn hollow and kept off the front. Returns ``("", note)`` with nothing to draw.
    """
    drawn, title, higher, left_out = scatter_points(report)
    note = f"Not drawn: {', '.join(left_out)}." if left_out else ""
    if not drawn:
        return "", note
    floor = min((y for _, _, y in drawn if y > 0), default=1e-9) / 10
    ys = [y if higher or y > 0 else floor for _, _, y in drawn]
    if not higher and any(y <= 0 for _, _, y in drawn):
        note = (note + " " if note else "") + "An error of exactly 0 is drawn at the bottom of the axis."
    x0, x1, xlog, xticks = _axis([x for _, x, _ in drawn])
    y0, y1, ylog, yticks = _axis(ys, cap=100.0, min_span=1.0) if higher else _axis(ys)

    def px(v: float) -> float:
        return _L + (_R - _L) * _frac(v, x0, x1, xlog)

    def py(v: float) -> float:
        return _B - (_B - _T) * _frac(v, y0, y1, ylog)

    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" role="img" font-size="12" '
        f'aria-label="{esc(title)} against p50 latency">',
        f'<rect x="{_L}" y="{_T}" width="{_R - _L}" height="{_B - _T}" fill="#fafafa" stroke="#999"/>',
    ]
    for v in xticks:
        parts.append(f'<line x1="{px(v):.1f}" y1="{_T}" x2="{px(v):.1f}" y2="{_B}" stroke="#e4e4e4"/>')
        parts.append(f'<text class="xtick" x="{px(v):.1f}" y="{_B + 16}" text-anchor="middle">{_tick(v)}</text>')
    for v in yticks:
        parts.append(f'<line x1="{_L}" y1="{py(v):.1f}" x2="{_R}" y2="{py(v):.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text class="ytick" x="{_L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{_tick(v)}</text>')
    xtitle = "p50 latency, ms" + (" (log scale)" if xlog else "") + " (lower is better)"
    ytitle = title.replace(" (", " (log scale, ", 1) if ylog else title
    parts.append(f'<text x="{(_L + _R) / 2}" y="{_B + 40}" text-anchor="middle">{esc(xtitle)}</text>')
    parts.append(
        f'<text transform="translate(18 {(_T + _B) / 2}) rotate(-90)" text-anchor="middle">{esc(ytitle)}</text>'
    )
    ok = [i for i, (t, _, _) in enumerate(drawn) if t.verified]
    costs = [(drawn[i][1], -ys[i] if higher else ys[i]) for i in ok]
    front = [ok[j] for j in pareto_front(costs)]
    if len(front) > 1:
        line = " ".join(f"{px(drawn[i][1]):.1f},{py(ys[i]):.1f}" for i in front)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#e2762a" stroke-width="2"/>')
    parts += _scatter_marks(drawn, ys, set(front), px, py)
    parts.append(_scatter_legend())
    parts.append("</svg>")
    return "\n".join(parts), note


def _place_label(
    cx: float, cy: float, width: float, boxes: list[tuple[float, float, float, float]], dots: list[tuple[float, float]]
) -> tuple[float, float, str]:
    """Where a point's label goes: right of it, else left, else further down, clear of other labels and points."""

    def box(x: float, y: float, anchor: str) -> tuple[float, float, float, float]:
        return (x, y - 10, x + width, y + 2) if anchor == "start" else (x - width, y - 10, x, y + 2)

    def free(b: tuple[float, float, float, float]) -> bool:
        inside = b[0] >= _L + 2 and b[2] <= _W - 2 and b[1] >= _T and b[3] <= _B - 2
        clear_of_labels = all(b[2] < q[0] or q[2] < b[0] or b[3] < q[1] or q[3] < b[1] for q in boxes)
        clear_of_dots = all(not (b[0] - 6 < x < b[2] + 6 and b[1] - 6 < y < b[3] + 6) for x, y in dots)
        return inside and clear_of_labels and clear_of_dots

    for dy in (4, 17, -9, 30, -22, 43):
        for x, anchor in ((cx + 9, "start"), (cx - 9, "end")):
            if free(box(x, cy + dy, anchor)):
                boxes.append(box(x, cy + dy, anchor))
                return x, cy + dy, anchor
    boxes.append(box(cx + 9, cy + 56, "start"))
    return cx + 9, cy + 56, "start"


def _scatter_marks(
    drawn: list[tuple[TargetResult, float, float]],
    ys: list[float],
    front: set[int],
    px: Callable[[float], float],
    py: Callable[[float], float],
) -> list[str]:
    """A labelled circle per drawn target; labels are placed clear of the other labels and points."""
    esc = html.escape
    parts: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    for i in sorted(range(len(drawn)), key=lambda k: (k in front, py(ys[k]), px(drawn[k][1]))):  # front on top
        t, x, y = drawn[i]
        cx, cy = px(x), py(ys[i])
        if i in front:
            style = 'r="6" fill="#e2762a" stroke="#a04a10"'
        elif t.verified:
            style = 'r="5" fill="#2a7ae2" stroke="#1a4a8a"'
        else:
            style = 'r="5" fill="#fff" stroke="#b00" stroke-width="2"'
        others = [(px(d[1]), py(ys[k])) for k, d in enumerate(drawn) if k != i]
        lx, ly, anchor = _place_label(cx, cy, 6.6 * len(t.label), boxes, others)
        value = f"{y:.2f}%" if t.accuracy is not None and t.accuracy.top1 is not None else f"{y:.3g}"
        tip = f"{t.label} ({t.status}): {_ms(x)} ms, {value}"
        parts.append(
            f'<g class="point"><title>{esc(tip)}</title><circle cx="{cx:.1f}" cy="{cy:.1f}" {style}/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}">{esc(t.label)}</text></g>'
        )
    return parts


def _scatter_legend() -> str:
    x, y = _L, 22
    return (
        f'<g class="legend"><rect x="{x}" y="{y - 9}" width="10" height="10" fill="#e2762a"/>'
        f'<text x="{x + 14}" y="{y}">Pareto front (verified, not beaten on both axes)</text>'
        f'<rect x="{x + 300}" y="{y - 9}" width="10" height="10" fill="#2a7ae2"/>'
        f'<text x="{x + 314}" y="{y}">verified</text>'
        f'<rect x="{x + 380}" y="{y - 9}" width="10" height="10" fill="#fff" stroke="#b00" stroke-width="2"/>'
        f'<text x="{x + 394}" y="{y}">not verified</text></g>'
    )


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
        table.caption += f" · speed-up vs {BASELINE} ({_ms(report.baseline_ms)} ms)"
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
