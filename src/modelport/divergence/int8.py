r"""INT8 mode: which layers of a quantized model add the error, ranked, and what to keep in float.

**The quantized side as its consumers see it.** In a QDQ model (ONNX Runtime's quantizer, NNCF's ONNX output) a
float tensor :math:`t` is followed by ``QuantizeLinear → DequantizeLinear``; the next layer reads
:math:`\hat t = \mathrm{DQ}(\mathrm{Q}(t))`, and the quantizer may have dropped a Relu into the Q's range (the
float tensor then still holds the negative values). :func:`qdq_view` turns a trace of such a model into one where
each tensor carries the value its consumers read, under the float tensor's name (the DequantizeLinear's name when
that is a graph output), without the Q/DQ ops, their integer outputs or the dequantized weights — so the tensors
match the float model's by name and compare like with like.

**Contribution.** With :math:`e(t)` the error of tensor :math:`t` against the float reference, a layer's
contribution is the error it adds:

.. math::  c(t) = e(t) - \max_{s \in \mathrm{in}(t)} e(s)

where :math:`\mathrm{in}(t)` are the nearest *matched* tensors upstream of :math:`t` (graph inputs and constants
count 0). When the reference ops are given, the walk goes through unmatched tensors, so a Conv whose output the
quantizer fused away (Conv → Relu, only the Relu's output matched) is still credited; the layer is named by the
compute op in that stretch (:data:`COMPUTE_OPS`). The error is the angle between reference and candidate,

.. math::  e(t) = \arccos \cos(r_t, o_t),

scale-free, so layers of different magnitudes compare (the max abs error grows with the activations along a
network, which would rank the last layers first whatever happened earlier), and a metric on directions: by the
triangle inequality, the angle a layer inherits is at most its inputs' plus what it adds.

Layers are ranked by contribution, largest first; :func:`suggest_exclude` gives the node names of the top ones
for ``modelport quantize --exclude``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from modelport.backends.trace import Trace, TracedOp
from modelport.reports.serialize import JsonReport

if TYPE_CHECKING:
    from modelport.divergence.analysis import Divergence, TensorError

log = logging.getLogger(__name__)

#: ops that compute with quantized weights or activations (what ``--exclude`` keeps in float)
COMPUTE_OPS = frozenset(
    {
        "Conv", "ConvTranspose", "MatMul", "Gemm", "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul",
        "Add", "Sub", "Mul", "Div", "Concat", "AveragePool", "GlobalAveragePool", "MaxPool", "Resize", "Softmax",
        "LayerNormalization", "InstanceNormalization", "BatchNormalization", "Gather", "Einsum", "Attention",
        # OpenVINO / LiteRT names of the same layers
        "Convolution", "GroupConvolution", "ConvolutionBackpropData", "FullyConnected", "FULLY_CONNECTED",
        "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "BATCH_MATMUL", "ADD", "MUL", "SUB", "CONCATENATION",
        "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX",
    }
)  # fmt: skip
_Q, _DQ = "QuantizeLinear", "DequantizeLinear"


@dataclasses.dataclass(frozen=True)
class LayerContribution(JsonReport):
    """The error one layer adds.

    Attributes:
        op: the compute node's name (what ``quantize --exclude`` takes).
        op_type: its type.
        tensor: the matched reference tensor the layer ends at.
        error: that tensor's error (the angle, radians).
        inherited: the largest error among the layer's nearest matched inputs (0 for graph inputs and constants).
        contribution: ``error - inherited``.
        ops: every reference op in the layer's stretch (the compute op and the unmatched ops after it).
        max_abs, cosine: the comparator's metrics of ``tensor``.
        passed: the comparator's verdict on ``tensor``.
    """

    op: str
    op_type: str
    tensor: str
    error: float
    inherited: float
    contribution: float
    ops: tuple[str, ...]
    max_abs: float
    cosine: float
    passed: bool


def error_of(t: TensorError) -> float:
    """A tensor's error: the angle between reference and candidate, radians (π for a non-finite cosine)."""
    cos = float(t.cosine)
    return math.acos(min(1.0, max(-1.0, cos))) if math.isfinite(cos) else math.pi


def rank_int8(divergence: Divergence, ops: Sequence[TracedOp] = ()) -> tuple[LayerContribution, ...]:
    """The compute layers ranked by the error each adds, largest first.

    Args:
        divergence: a float reference against its quantized candidate (per-tensor comparison; build the
            candidate's trace with :func:`qdq_view` for a QDQ model).
        ops: the reference trace's ops; with them, a layer spans the unmatched tensors back to its nearest matched
            inputs (without them: the producer of each matched tensor and its matched inputs only, so a layer
            whose compute op's output was not matched is missed).
    """
    errors = {t.reference: t for t in divergence.tensors}
    producers = {o: op for op in ops for o in op.outputs}
    found: list[LayerContribution] = []
    for t in divergence.tensors:
        stretch, upstream = _stretch(t, errors, producers)
        compute = next((op for op in stretch if op.op_type in COMPUTE_OPS), None)
        if compute is None:
            continue
        e = error_of(t)
        inherited = max((error_of(errors[s]) for s in upstream), default=0.0)
        found.append(
            LayerContribution(
                op=compute.name,
                op_type=compute.op_type,
                tensor=t.reference,
                error=e,
                inherited=inherited,
                contribution=e - inherited,
                ops=tuple(op.name for op in stretch),
                max_abs=float(t.max_abs),
                cosine=float(t.cosine),
                passed=bool(t.passed),
            )
        )
    return tuple(sorted(found, key=lambda c: -c.contribution))


def _stretch(
    t: TensorError, errors: Mapping[str, TensorError], producers: Mapping[str, TracedOp]
) -> tuple[list[TracedOp], set[str]]:
    """The ops from ``t`` back to its nearest matched tensors (nearest first), and those tensors."""
    first = producers.get(t.reference) or TracedOp(t.op, t.op_type, t.inputs, (t.reference,))
    stretch, upstream, seen = [first], set(), {t.reference}
    todo = collections.deque(first.inputs)
    while todo:
        name = todo.popleft()
        if name in seen:
            continue
        seen.add(name)
        if name in errors:
            upstream.add(name)
            continue
        op = producers.get(name)
        if op is not None and all(op is not s for s in stretch):
            stretch.append(op)
            todo.extend(op.inputs)
    return stretch, upstream


#: a layer is suggested only when it adds at least this share of what the worst layer adds
SUGGEST_SHARE = 0.25


def suggest_exclude(ranking: Sequence[LayerContribution], k: int = 3, share: float = SUGGEST_SHARE) -> tuple[str, ...]:
    """The node names of at most ``k`` layers adding the most error, for ``modelport quantize --exclude``: positive
    contributions of at least ``share`` of the largest (the rest is each layer's ordinary rounding — keeping those in
    float would cost speed for nothing)."""
    top = max((c.contribution for c in ranking), default=0.0)
    names = [c.op for c in ranking if c.op and c.contribution > 0 and c.contribution >= share * top]
    return tuple(dict.fromkeys(names))[: max(k, 0)]


def qdq_view(trace: Trace) -> Trace:
    """``trace`` of a QDQ model as its consumers see it (module docstring): every ``t → Q → DQ`` becomes ``t``
    holding the DequantizeLinear's value; Q/DQ ops, their outputs and dequantized constants are dropped.

    A trace without QuantizeLinear/DequantizeLinear is returned as it is.
    """
    if not any(op.op_type in (_Q, _DQ) for op in trace.ops):
        return trace
    consumers: dict[str, list[TracedOp]] = {}
    for op in trace.ops:
        for name in op.inputs:
            consumers.setdefault(name, []).append(op)
    seen_as: dict[str, str] = {}  # float tensor → the DequantizeLinear output its consumers read
    for op in trace.ops:
        if op.op_type != _Q or not op.inputs or not op.outputs:
            continue
        dq = next((c for c in consumers.get(op.outputs[0], []) if c.op_type == _DQ and c.outputs), None)
        if dq is not None:
            seen_as[op.inputs[0]] = dq.outputs[0]
    outputs = set(trace.outputs)
    # the view's name of each pair: the float tensor's, or the DQ output's when that is a graph output
    rename = {src: dst for src, dst in seen_as.items() if dst in outputs}
    via = {dst: (rename.get(src, src)) for src, dst in seen_as.items()}  # a DQ output → the view's name
    dropped = {o for op in trace.ops if op.op_type in (_Q, _DQ) for o in op.outputs}
    tensors: dict[str, np.ndarray] = {}
    for name, value in trace.tensors.items():
        if name in seen_as and seen_as[name] in trace.tensors:
            tensors[rename.get(name, name)] = trace.tensors[seen_as[name]]
        elif name not in dropped:
            tensors[name] = value
    ops = tuple(
        TracedOp(
            op.name,
            op.op_type,
            tuple(via.get(i, i) for i in op.inputs),
            tuple(rename.get(o, o) for o in op.outputs),
        )
        for op in trace.ops
        if op.op_type not in (_Q, _DQ)
    )
    aliases = {rename.get(k, k): v for k, v in trace.aliases.items()}
    for src, dst in rename.items():
        aliases[dst] = (*aliases.get(dst, ()), src)
    log.info("qdq view: %d Q/DQ pairs folded into their float tensors", len(seen_as))
    return dataclasses.replace(trace, ops=ops, tensors=tensors, aliases=aliases)
