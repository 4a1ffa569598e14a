r"""How a :class:`~modelport.divergence.analysis.Divergence` reads: the first divergence line, a condensed table of
the error growing along the graph, and a self-contained HTML page with the error plotted per tensor.

Condensing: of :math:`n` matched tensors, the table keeps the first and the last, the first divergence and its
matched inputs, the first failing tensor, and every tensor whose max abs error grew by more than :data:`GROWTH`
times the last kept error (errors below :data:`FLOOR` count as :data:`FLOOR`), at most ``limit`` rows (the largest
growths win); when that leaves fewer than :data:`SAMPLED` rows, evenly spaced tensors fill it up.

The plot: tensor index (reference topological order) on x, :math:`\log_{10}` max abs error on y (zero errors drawn
at the bottom as hollow marks, off the line), the absolute bound ``atol_eff`` of each tensor as a dashed line,
failing tensors in red, the first divergence marked by a vertical line.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from modelport.divergence.analysis import Divergence, TensorError
from modelport.divergence.fused import FusedTensor
from modelport.model_io import write_text

#: a tensor joins the condensed table when its error grew by more than this factor
GROWTH = 2.0
#: errors below this are drawn and compared as this
FLOOR = 1e-12
#: rows of the condensed table by default
LIMIT = 24
#: the table is filled up to this many rows with evenly spaced tensors when few grew
SAMPLED = 12


def first_line(divergence: Divergence) -> str:
    """ "first tensor beyond tolerance: NAME (op TYPE NAME), max abs X > bound Y; its inputs: …" (or that none is)."""
    t = divergence.first
    if t is None:
        verdict = "pass" if divergence.outputs_passed else "FAIL"
        return f"no tensor beyond tolerance ({divergence.tolerance}); outputs: {verdict}"
    matched = {i.reference for i in divergence.input_errors(t)}
    said = ", ".join(
        _said(divergence.error(i)) if i in matched else f"{i} (not matched)"
        for i in t.inputs
        if i in matched or t.upstream
    )
    if t.upstream:
        said += "; nearest matched upstream: " + ", ".join(_said(u) for u in divergence.upstream_errors(t))
    if not said:
        said = "graph inputs or constants" if t.inputs else "none"
    name = t.reference if t.candidate == t.reference else f"{t.reference} (candidate {t.candidate})"
    absorbed = " (the outputs still pass: later ops absorb it)" if divergence.outputs_passed else ""
    return (
        f"first tensor beyond tolerance: {name} (op {t.op_type or '?'} {t.op or '?'}), max abs {t.max_abs:.3g} > "
        f"bound {t.atol_eff:.3g}; its inputs: {said}{absorbed}"
    )


def _said(t: TensorError | None) -> str:
    return "?" if t is None else f"{t.reference} {t.max_abs:.3g} ({'pass' if t.passed else 'FAIL'})"


def matched_line(divergence: Divergence) -> str:
    """ "matched 118 of 120 tensors: 100 by name, 18 by shape+order (98.3 %); 2 more fused into matched tensors
    (2 inferred from the graph); accounted 100.0 %"."""
    counts = ", ".join(f"{n} by {m}" for m, n in divergence.matched_counts().items() if n)
    line = (
        f"matched {len(divergence.tensors)} of {divergence.reference_tensors} tensors: {counts} "
        f"({divergence.matched_percent:.1f} %)"
    )
    if divergence.fused:
        how = divergence.fused_counts()
        said = ", ".join(f"{n} {_HOW[h]}" for h, n in how.items() if n)
        line += f"; {len(divergence.fused)} more fused into matched tensors ({said})"
    return f"{line}; accounted {divergence.accounted_percent:.1f} %"


_HOW = {"recorded": "recorded by the converter", "graph": "inferred from the graph"}


def fused_table_text(fused: Sequence[FusedTensor]) -> str:
    """The fused tensors as a fixed-width text table: tensor, op, compared as (the matched tensors), how."""
    header = ("tensor", "op", "fused into (compared as)", "how")
    lines = [header] + [(f.reference, f.op_type, ", ".join(f.compared_as), f.how) for f in fused]
    widths = [max(len(row[c]) for row in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines)


def condensed(divergence: Divergence, limit: int = LIMIT) -> tuple[TensorError, ...]:
    """The rows of the compact table (module docstring), in topological order."""
    tensors = divergence.tensors
    if len(tensors) <= limit:
        return tensors
    index = {t.reference: i for i, t in enumerate(tensors)}
    must = {0, len(tensors) - 1}
    failing = next((i for i, t in enumerate(tensors) if not t.passed), None)
    if failing is not None:
        must.add(failing)
    if divergence.first is not None:
        must.add(index[divergence.first.reference])
        first = divergence.first
        must.update(index[i.reference] for i in (*divergence.input_errors(first), *divergence.upstream_errors(first)))
    growth: dict[int, float] = {}
    kept = max(tensors[0].max_abs, FLOOR)
    for i, t in enumerate(tensors[1:], start=1):
        err = max(t.max_abs, FLOOR) if math.isfinite(t.max_abs) else math.inf
        if err > GROWTH * kept:
            growth[i] = err / kept
            kept = err
    room = max(limit - len(must), 0)
    kept_rows = must | set(sorted((i for i in growth if i not in must), key=lambda i: growth[i], reverse=True)[:room])
    spare = min(limit, SAMPLED) - len(kept_rows)
    if spare > 0:  # little growth to show: evenly spaced samples so the table still walks the graph
        kept_rows.update(round(k * (len(tensors) - 1) / (spare + 1)) for k in range(1, spare + 1))
    return tuple(tensors[i] for i in sorted(kept_rows))


def table_text(rows: Sequence[TensorError], first: TensorError | None = None) -> str:
    """The rows as a fixed-width text table (the CLI draws its own with rich)."""
    header = ("#", "tensor", "op", "by", "max abs", "max rel", "cosine", "result")
    lines = [header]
    for t in rows:
        mark = "FIRST" if first is not None and t.reference == first.reference else ""
        lines.append(
            (
                mark,
                t.reference,
                t.op_type,
                t.matched_by,
                f"{t.max_abs:.3g}",
                f"{t.max_rel:.3g}",
                f"{t.cosine:.6f}",
                "pass" if t.passed else "FAIL",
            )
        )
    widths = [max(len(row[c]) for row in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines)


def to_html(divergence: Divergence, path: str | Path, title: str = "", extra: Sequence[str] = ()) -> Path:
    """Write a self-contained HTML page (inline SVG plot, tables, no script or external file); returns its path.
    ``extra``: HTML fragments placed after the plot (the INT8 ranking)."""
    heading = title or f"{divergence.candidate} against {divergence.reference}"
    rows = condensed(divergence)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(heading)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(heading)}</h1>",
        f'<p class="{"bad" if divergence.first else "good"}">{_e(first_line(divergence))}</p>',
        f"<p>{_e(matched_line(divergence))}; tolerance {_e(str(divergence.tolerance))}</p>",
        svg_plot(divergence),
        *extra,
        "<h2>Error along the graph (condensed)</h2>",
        _html_table(rows, divergence.first),
        f"<details><summary>All {len(divergence.tensors)} matched tensors</summary>",
        _html_table(divergence.tensors, divergence.first),
        "</details>",
        _fused_html(divergence.fused),
        "</body></html>",
    ]
    return write_text(Path(path), "\n".join(parts) + "\n")


def ranking_html(rows: Sequence[tuple[str, str, float, float, float]], exclude: Sequence[str]) -> str:
    """The INT8 ranking as an HTML section: ``(layer, op type, adds, inherited, max abs)`` rows, the suggestion."""
    cells = "".join(
        f"<tr><td class=l>{_e(layer)}</td><td class=l>{_e(op)}</td><td>{adds:.3g}</td><td>{inherited:.3g}</td>"
        f"<td>{max_abs:.3g}</td></tr>"
        for layer, op, adds, inherited, max_abs in rows
    )
    hint = (
        f"<p>keep in float: <code>modelport quantize … --exclude {_e(','.join(exclude))}</code></p>" if exclude else ""
    )
    return (
        "<h2>Layers by the quantization error they add</h2><p>angle of each layer's output to the reference's, minus "
        "the largest of its inputs' (radians)</p><table><tr><th class=l>layer</th><th class=l>op</th><th>adds</th>"
        f"<th>inherited</th><th>max abs</th></tr>{cells}</table>{hint}"
    )


_CSS = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "td.l,th.l{text-align:left}tr.fail td{color:#b00}tr.first td{background:#fde2e2;font-weight:bold}"
    ".bad{color:#b00;font-weight:bold}.good{color:#070;font-weight:bold}svg{border:1px solid #ddd}"
)

_W, _H, _PAD = 960, 360, 56


def svg_plot(divergence: Divergence) -> str:
    """Inline SVG: log10 max abs error per tensor, the bound, failures in red, the first divergence marked."""
    tensors = divergence.tensors
    n = max(len(tensors), 1)
    values = [_log(t.max_abs) for t in tensors] + [_log(t.atol_eff) for t in tensors if t.atol_eff > 0]
    low, high = math.floor(min(values, default=-12.0)), math.ceil(max(values, default=0.0))
    high = high if high > low else low + 1

    def x(i: int) -> float:
        return _PAD + (i + 0.5) * (_W - 2 * _PAD) / n

    def y(v: float) -> float:
        return _H - _PAD - (v - low) * (_H - 2 * _PAD) / (high - low)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}">']
    for d in range(low, high + 1):
        out.append(f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y(d):.1f}" y2="{y(d):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{_PAD - 6}" y="{y(d) + 4:.1f}" font-size="11" text-anchor="end">1e{d}</text>')
    out.append(_axes(n))
    bound = " ".join(f"{x(i):.1f},{y(_log(t.atol_eff)):.1f}" for i, t in enumerate(tensors) if t.atol_eff > 0)
    if bound:
        out.append(f'<polyline points="{bound}" fill="none" stroke="#888" stroke-dasharray="5,4"/>')
    line = " ".join(f"{x(i):.1f},{y(_log(t.max_abs)):.1f}" for i, t in enumerate(tensors) if t.max_abs > 0)
    out.append(f'<polyline points="{line}" fill="none" stroke="#36c" stroke-width="1.2" stroke-opacity="0.6"/>')
    for i, t in enumerate(tensors):
        colour = "#36c" if t.passed else "#c00"
        if t.max_abs == 0:  # equal: a hollow mark on the floor, off the line
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(low):.1f}" r="2.5" fill="none" stroke="{colour}"/>')
            continue
        tip = f"#{i} {t.reference} ({t.op_type}): max abs {t.max_abs:.3g}, bound {t.atol_eff:.3g}"
        out.append(
            f'<circle cx="{x(i):.1f}" cy="{y(_log(t.max_abs)):.1f}" r="3" fill="{colour}"><title>{_e(tip)}</title>'
            "</circle>"
        )
    if divergence.first is not None:
        i = next(k for k, t in enumerate(tensors) if t.reference == divergence.first.reference)
        out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{_PAD / 2}" y2="{_H - _PAD}" stroke="#c00"/>')
        anchor = "end" if x(i) > _W / 2 else "start"
        out.append(
            f'<text x="{x(i) + (-4 if anchor == "end" else 4):.1f}" y="{_PAD / 2 + 10}" font-size="12" fill="#c00" '
            f'text-anchor="{anchor}">first divergence: {_e(divergence.first.reference)}</text>'
        )
    out.append(
        f'<text x="{_W - _PAD}" y="{_H - 8}" font-size="11" text-anchor="end">'
        "blue: max abs error per tensor (red: beyond tolerance; hollow: equal); dashed: absolute bound atol_eff</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def _axes(n: int) -> str:
    return (
        f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{_H - _PAD}" y2="{_H - _PAD}" stroke="#444"/>'
        f'<line x1="{_PAD}" x2="{_PAD}" y1="{_PAD / 2}" y2="{_H - _PAD}" stroke="#444"/>'
        f'<text x="{_W / 2}" y="{_H - _PAD + 20}" font-size="12" text-anchor="middle">'
        f"tensor in topological order (0 … {n - 1})</text>"
        f'<text x="14" y="{_H / 2}" font-size="12" transform="rotate(-90 14 {_H / 2})" text-anchor="middle">'
        "max abs error (log)</text>"
    )


def _log(value: float) -> float:
    if not math.isfinite(value):
        return 12.0
    return math.log10(max(value, FLOOR))


def _html_table(rows: Sequence[TensorError], first: TensorError | None) -> str:
    head = "".join(
        f'<th class="{"l" if c in ("tensor", "op", "by", "result") else ""}">{c}</th>'
        for c in ("tensor", "op", "by", "max abs", "bound", "max rel", "cosine", "result")
    )
    body = []
    for t in rows:
        cls = "first" if first is not None and t.reference == first.reference else ("" if t.passed else "fail")
        name = t.reference if t.candidate == t.reference else f"{t.reference} ↔ {t.candidate}"
        body.append(
            f'<tr class="{cls}"><td class="l">{_e(name)}</td><td class="l">{_e(t.op_type)} {_e(t.op)}</td>'
            f'<td class="l">{_e(t.matched_by)}</td><td>{t.max_abs:.3g}</td><td>{t.atol_eff:.3g}</td>'
            f'<td>{t.max_rel:.3g}</td><td>{t.cosine:.6f}</td><td class="l">{"pass" if t.passed else "FAIL"}</td></tr>'
        )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fused_html(fused: Sequence[FusedTensor]) -> str:
    """The fused tensors as a collapsed HTML table ("" when none)."""
    if not fused:
        return ""
    rows = "".join(
        f'<tr><td class="l">{_e(f.reference)}</td><td class="l">{_e(f.op_type)}</td>'
        f'<td class="l">{_e(", ".join(f.compared_as))}</td><td class="l">{_e(_HOW.get(f.how, f.how))}</td></tr>'
        for f in fused
    )
    return (
        f"<details><summary>{len(fused)} tensors fused into matched tensors (accounted for, not compared)</summary>"
        '<table><tr><th class="l">tensor</th><th class="l">op</th><th class="l">fused into (compared as)</th>'
        f'<th class="l">how</th></tr>{rows}</table></details>'
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
