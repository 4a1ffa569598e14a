"""Route planning over the registered converters: which hops reach each stop, and the alternatives to retry.

The registered converters form a graph of formats. A chain visits its ``via`` formats in order, then each target;
a stop already produced is reused, anything else is reached by the cheapest path (1 per hop; ONNX → TFLite
through onnx2tf counts 1.5) from the most recently produced format that reaches it. When a route to a stop fails,
:func:`alternative_routes` gives the next-cheapest ones (:mod:`modelport.conversion.chain` tries them).
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Mapping, Sequence

from modelport.conversion.base import registered_routes
from modelport.errors import ConversionError
from modelport.formats import Format


def plan(source: Format, targets: Sequence[Format], via: Sequence[Format] = ()) -> list[tuple[Format, Format]]:
    """The hops (source format, target format) that reach every ``via`` then every target, in order.

    Raises:
        ConversionError: a stop cannot be reached (lists the registered routes).
    """
    return [hop for segment in plan_segments(source, targets, via) for hop in segment]


def plan_segments(
    source: Format, targets: Sequence[Format], via: Sequence[Format] = ()
) -> list[list[tuple[Format, Format]]]:
    """:func:`plan`'s hops grouped by stop: one list of hops per ``via`` format or target not yet produced (a
    failing segment is retried along :func:`alternative_routes`).

    Raises:
        ConversionError: a stop cannot be reached (lists the registered routes).
    """
    routes = registered_routes()
    graph = _graph()
    produced: list[Format] = [source]
    segments: list[list[tuple[Format, Format]]] = []
    for stop in [*via, *targets]:
        if stop is source and (source, source) in routes and stop in targets:
            segments.append([(source, source)])  # same format: a precision conversion (ONNX → ONNX fp16)
            continue
        if stop in produced:
            continue
        path = _shortest(graph, list(reversed(produced)), stop)
        if path is None:
            available = ", ".join(f"{a.value}→{b.value}" for a, b in routes)
            raise ConversionError(
                f"no converter from {produced[-1].value} to {stop.value}", hint=f"available routes: {available}"
            )
        segments.append(list(itertools.pairwise(path)))
        produced.extend(path[1:])
    return segments


#: how many routes to one stop a chain tries (the planned one and the next-cheapest alternatives)
MAX_ROUTES = 3


def alternative_routes(start: Format, goal: Format, limit: int = MAX_ROUTES) -> list[list[tuple[Format, Format]]]:
    """The ``limit`` cheapest routes (simple paths over the registered converters) from ``start`` to ``goal``,
    cheapest first (ties: fewer hops, then the formats' names), none costing more than one hop beyond the cheapest
    (ONNX → OpenVINO is not retried through onnx2tf and OpenVINO's TFLite frontend): TFLite → OpenVINO directly
    (OpenVINO's TFLite frontend), then through ONNX (tf2onnx)."""
    graph = _graph()
    found: list[tuple[float, int, list[str], list[Format]]] = []

    def walk(path: list[Format], cost: float) -> None:
        node = path[-1]
        if node is goal:
            found.append((cost, len(path), [f.value for f in path], list(path)))
            return
        for nxt in graph.get(node, []):
            if nxt not in path:
                walk([*path, nxt], cost + _HOP_COST.get((node, nxt), 1.0))

    if start is not goal:
        walk([start], 0.0)
    found.sort(key=lambda item: (item[0], item[1], item[2]))
    cheapest = found[0][0] if found else 0.0
    return [list(itertools.pairwise(path)) for cost, *_, path in found if cost <= cheapest + 1.0][:limit]


def _graph() -> dict[Format, list[Format]]:
    graph: dict[Format, list[Format]] = collections.defaultdict(list)
    for a, b in registered_routes():
        if a is not b:
            graph[a].append(b)
    return graph


def route_text(hops: Sequence[tuple[Format, Format]]) -> str:
    """``tflite → onnx → openvino``."""
    return " → ".join([hops[0][0].value, *(b.value for _, b in hops)]) if hops else ""


#: extra cost of hops that rewrite the graph's layout through a third-party tool: with two routes of equal length,
#: a TF-native model reaches TFLite through TensorFlow's own converter rather than through ONNX and onnx2tf.
_HOP_COST: dict[tuple[Format, Format], float] = {(Format.ONNX, Format.TFLITE): 1.5}


def _shortest(graph: Mapping[Format, list[Format]], starts: list[Format], goal: Format) -> list[Format] | None:
    """Cheapest path (Dijkstra over hop costs) to ``goal`` from the first start (most recent first) that reaches it."""
    for start in starts:  # a chain goes on from its latest artifact; earlier ones only when that cannot reach goal
        frontier: list[tuple[float, int, list[Format]]] = [(0.0, 0, [start])]
        done: set[Format] = set()
        counter = 0
        while frontier:
            cost, _, path = heapq.heappop(frontier)
            node = path[-1]
            if node in done:
                continue
            done.add(node)
            if node is goal:
                return path
            for nxt in graph.get(node, []):
                if nxt not in done:
                    counter += 1
                    heapq.heappush(frontier, (cost + _HOP_COST.get((node, nxt), 1.0), counter, [*path, nxt]))
    return None
