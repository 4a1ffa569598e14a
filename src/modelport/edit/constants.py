"""``shrink-constants``: merge equal initializers and equal ``Constant`` nodes; optionally store big initializers as
external data.

Two constants are merged when they have the same dtype, the same shape and the same bytes (onnx-ir's
``DeduplicateHashedInitializersPass`` for initializers, in every graph; for ``Constant`` nodes of the main graph, the
same key over the ``value`` tensor). Every use of a duplicate then reads the kept copy, so each node computes on the
same numbers as before and the outputs are bitwise equal: the verification runs both models in ONNX Runtime on the
same seeded feeds and reports the maximum difference (0 expected). Graph inputs and outputs are never merged away.

With ``external_threshold=B``, :meth:`ShrinkResult.write` saves every initializer of at least ``B`` bytes to one
data file beside the model (``OUT.onnx.data``), the rest inline.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.edit.base import (
    DEFAULT_CHECK,
    CheckOptions,
    EditReport,
    EditResult,
    Source,
    load_source,
    make_report,
    refuse_source,
    verify_against_original,
)
from modelport.errors import InvalidInputError
from modelport.model_io import check_proto, save_model

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConstantStats:
    """Constants of a model: counts and bytes (initializers of every graph, Constant nodes' tensors)."""

    initializers: int
    initializer_bytes: int
    constants: int
    constant_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.initializer_bytes + self.constant_bytes


@dataclasses.dataclass(frozen=True)
class ShrinkResult(EditResult):
    """:class:`EditResult` whose :meth:`write` can move initializers of ``external_threshold`` bytes or more out.

    Attributes:
        before / after: the constants before and after the merge.
        external_threshold: bytes from which an initializer is stored externally (None: all inline unless the model
            needs external data to fit in protobuf).
    """

    before: ConstantStats = ConstantStats(0, 0, 0, 0)
    after: ConstantStats = ConstantStats(0, 0, 0, 0)
    external_threshold: int | None = None

    def write(self, path: str | Path) -> EditReport:
        """Save the model to ``path`` (and ``path.data`` when initializers go external), atomically.

        Raises:
            InvalidInputError: ``path`` is the source file.
        """
        if self.external_threshold is None:
            return super().write(path)
        dst = Path(path)
        refuse_source(dst, self.report.sources)
        save_model(self.model, dst, external_data=True, size_threshold=self.external_threshold)
        return dataclasses.replace(self.report, output=str(dst))


def shrink_constants(
    model: Source,
    *,
    external_threshold: int | None = None,
    check: CheckOptions | None = None,
) -> ShrinkResult:
    """Merge equal initializers and Constant nodes (the model is not modified; nothing is written).

    Args:
        model: an .onnx path or a ModelProto.
        external_threshold: when set, :meth:`ShrinkResult.write` stores initializers of at least this many bytes in
            ``OUT.data`` beside the model.
        check: how the result is checked against the original (:class:`~modelport.edit.base.CheckOptions`).

    Raises:
        InvalidInputError: a negative ``external_threshold``.
    """
    start = time.perf_counter()
    if external_threshold is not None and external_threshold < 0:
        raise InvalidInputError(f"the external-data threshold must be ≥ 0 bytes, got {external_threshold}")
    source, label = load_source(model)
    work = ir.serde.deserialize_model(source)
    stats_before = constant_stats(work)
    merged_inits = common.DeduplicateHashedInitializersPass()(work).modified
    merged_consts = merge_constant_nodes(work.graph)
    if merged_inits or merged_consts:
        common.RemoveUnusedNodesPass()(work)
    edited = ir.serde.serialize_model(work)
    check_proto(edited)
    stats_after = constant_stats(work)
    changes = _changes(stats_before, stats_after, external_threshold)
    check = check or DEFAULT_CHECK
    comparison = verify_against_original(source, edited, check, label, edited_label="shrunk") if check.verify else None
    report = make_report("shrink-constants", [label], [source], edited, changes, comparison, start)
    log.info("shrink-constants on %s: %s", label, "; ".join(changes))
    return ShrinkResult(edited, report, stats_before, stats_after, external_threshold)


def merge_constant_nodes(graph: ir.Graph) -> int:
    """Make every use of a ``Constant`` node read the first one with equal dtype, shape and bytes; returns the count.

    Only ``Constant`` nodes with a tensor ``value`` in ``graph`` itself (not its sub-graphs) are merged; one whose
    output is a graph output stays.
    """
    kept: dict[tuple[object, tuple[int, ...], bytes], ir.Value] = {}
    merged = 0
    for node in list(graph):
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or "value" not in node.attributes:
            continue
        tensor = node.attributes["value"].as_tensor()
        array = np.asarray(tensor.numpy())  # not ascontiguousarray: it turns a scalar into shape (1,)
        key = (tensor.dtype, tuple(array.shape), array.tobytes())  # tobytes: C order whatever the layout
        out = node.outputs[0]
        if key not in kept:
            kept[key] = out
            continue
        if out.is_graph_output():
            continue
        out.replace_all_uses_with(kept[key])
        graph.remove(node, safe=True)
        merged += 1
    return merged


def constant_stats(model: ir.Model) -> ConstantStats:
    """Counts and bytes of the initializers (every graph) and of the Constant nodes' tensors."""
    inits = [v for g in model.graphs() for v in g.initializers.values() if v.const_value is not None]
    consts = [
        n.attributes["value"].as_tensor()
        for n in ir.traversal.RecursiveGraphIterator(model.graph)
        if n.op_type == "Constant" and "value" in n.attributes
    ]
    return ConstantStats(
        initializers=len(inits),
        initializer_bytes=sum(v.const_value.nbytes for v in inits if v.const_value is not None),
        constants=len(consts),
        constant_bytes=sum(t.nbytes for t in consts),
    )


def _changes(before: ConstantStats, after: ConstantStats, threshold: int | None) -> list[str]:
    lines = [
        f"initializers: {before.initializers} → {after.initializers} ({before.initializers - after.initializers} "
        f"merged), {_size(before.initializer_bytes)} → {_size(after.initializer_bytes)}",
        f"Constant nodes: {before.constants} → {after.constants} ({before.constants - after.constants} merged), "
        f"{_size(before.constant_bytes)} → {_size(after.constant_bytes)}",
        f"constant bytes: {before.total_bytes} → {after.total_bytes} ({before.total_bytes - after.total_bytes} saved)",
    ]
    if threshold is not None:
        lines.append(f"initializers of {threshold} bytes or more go to external data (OUT.data) when written")
    return lines


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB" if n >= 2**10 else f"{n} B"
