"""The optimizer's report: node counts, op histograms, per-pass statistics, verification, sizes, time."""

from __future__ import annotations

import collections
import dataclasses

import onnx_ir as ir

from modelport.passes.base import PassStats
from modelport.reports.serialize import JsonReport
from modelport.verify.compare import Comparison


def op_histogram(model: ir.Model) -> dict[str, int]:
    """``{op type (domain-qualified outside the default domain): count}`` over the graph and subgraphs."""
    counts: collections.Counter[str] = collections.Counter()
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[key] += 1
    return dict(sorted(counts.items()))


@dataclasses.dataclass(frozen=True)
class OptimizeReport(JsonReport):
    """What ``optimize`` did to one model.

    Attributes:
        source: the input file (or "<model>" for an in-memory model).
        nodes_before / nodes_after: node counts (main graph and subgraphs).
        ops_before / ops_after: op-type histograms.
        passes: per-pass statistics, in pipeline order (summed over fixed-point iterations).
        iterations: fixed-point iterations of the loop phase.
        verification: the original-vs-optimized comparison in ONNX Runtime (None with ``verify=False``).
        seconds: wall time of the whole call (passes, checks and verification).
        size_before / size_after: serialized model sizes in bytes.
        opset_before / opset_after: default-domain opsets.
        rolled_back: ``(pass, why)`` for a pass whose result failed onnx.checker or the verification: the model was
            optimized again without it.
    """

    source: str
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    passes: tuple[PassStats, ...]
    iterations: int
    verification: Comparison | None
    seconds: float
    size_before: int
    size_after: int
    opset_before: int
    opset_after: int
    rolled_back: tuple[tuple[str, str], ...] = ()

    @property
    def removed_fraction(self) -> float:
        """Fraction of nodes removed (0 when the model had none)."""
        return 0.0 if self.nodes_before == 0 else 1.0 - self.nodes_after / self.nodes_before

    @property
    def modified(self) -> bool:
        """True when any pass changed the model."""
        return any(p.modified for p in self.passes)

    def with_sizes(self, size_before: int, size_after: int) -> OptimizeReport:
        """A copy with file sizes (as written on disk) instead of serialized sizes."""
        return dataclasses.replace(self, size_before=size_before, size_after=size_after)
