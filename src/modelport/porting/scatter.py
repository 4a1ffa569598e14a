r"""The port report's accuracy-vs-latency scatter: inline SVG, no script, its Pareto front marked.

The Pareto front is the set of verified targets that no other verified target dominates, with both axes turned into
costs to minimise (latency :math:`x`, and :math:`y` = −top-1 or the verification error): :math:`q` dominates
:math:`p` when

.. math:: x_q \le x_p,\quad y_q \le y_p,\quad (x_q, y_q) \ne (x_p, y_p).

Identical points therefore never dominate each other: both stay on the front.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelport.porting.results import PortReport, TargetResult


def format_ms(value: float) -> str:
    """Milliseconds with the digits that matter at that size."""
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


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
        tip = f"{t.label} ({t.status}): {format_ms(x)} ms, {value}"
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
