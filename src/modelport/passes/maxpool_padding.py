"""``zero-pad-maxpool``: a MaxPool's implicit −∞ padding made an explicit zero ``Pad`` where its input is ≥ 0.

Why: onnx2tf turns MaxPool padding into a ``PadV2`` with the float minimum (−3.4e38). Calibrated for full-integer
INT8, that tensor's range spans 3.4e38, its scale becomes ~1e36 and every real value rounds to the zero point
(XNNPACK refused resnet50 outright: "failed to create XNNPACK runtime"). With zeros in the padding the range is
the data's own. The pass is opt-in (not in the default ``optimize`` pipeline): it exists for that quantizer,
which applies it to its private copy of the model, and for anyone who wants the same graph.

The maths, per spatial axis of a window ``W`` (the ``k`` positions ``o·s − p_b + j``, ``j = 0 … k − 1``), with
``R(W)`` the positions inside the input (real elements) and ``P(W)`` those in the padding:

* ONNX MaxPool pads with −∞, so it computes ``m(W) = max_{i ∈ R(W)} x_i`` — provided ``R(W)`` is not empty
  (a window entirely in the padding would give −∞).
* ``Pad(0) → MaxPool`` computes ``m₀(W) = max(m(W), 0)`` when ``P(W)`` is not empty, else ``m(W)``.
* If every ``x_i ≥ 0`` and ``R(W) ≠ ∅``, then ``m(W) ≥ 0``, so ``max(m(W), 0) = m(W)``: the two are equal
  (the maximum selects an element, nothing is rounded; at most a −0.0 maximum comes out as +0.0).

So the rewrite is exact when (a) the input is never negative and (b) every window holds a real element. The pass
checks (a) from the producer: ``Relu``, ``Sigmoid``, ``HardSigmoid``, ``Softplus``, ``Softmax``, ``Abs``,
``Exp``, and ``Clip`` whose ``min`` is a constant ≥ 0, looking through ops that only move values (``Identity``,
``Reshape``, ``Flatten``, ``Squeeze``, ``Unsqueeze``, ``Transpose``). It checks (b) from the attributes alone,
independent of the input size ``L``: with ``dilations`` 1, ``ceil_mode`` 0 and ``p_b, p_e ≤ k − 1`` on every
axis, the first window ``[−p_b, k − 1 − p_b]`` reaches position 0; the last one (floor mode: its end is at most
``L − 1 + p_e``) starts at most at ``L − k + p_e ≤ L − 1``; every window lies between those two, so each
contiguous window meets ``[0, L − 1]``. (Dilated windows can jump over a short input; in ceil mode the extra
window's rule differs once the padding is explicit, and it can change the output size: both are left alone.)
NaN inputs are out of scope (engines differ on which NaN wins a max anyway).

Also left alone: ``auto_pad`` other than NOTSET, a used ``Indices`` output (indices would count the padding),
models whose default-domain opset is below 11 (``Pad`` takes its pads as an input from 11), and sub-graphs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import onnx_ir as ir

from modelport.passes.base import ModelportPass, PassOptions, register_pass
from modelport.rules._util import const_array, int64_initializer

log = logging.getLogger(__name__)

#: ops whose output is never negative, whatever their input.
NON_NEGATIVE = frozenset({"Relu", "Sigmoid", "HardSigmoid", "Softplus", "Softmax", "Abs", "Exp"})
#: ops whose output holds only values of their first input (the sign is kept).
MOVES_VALUES = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
#: Pad takes its pads as an input from this opset on.
MIN_OPSET = 11


def _is_onnx(node: ir.Node, *op_types: str) -> bool:
    return node.domain in ("", "ai.onnx") and node.op_type in op_types


def is_non_negative(value: ir.Value | None, depth: int = 8) -> bool:
    """Whether every element of ``value`` is ≥ 0, judged from the op that produces it (conservative)."""
    for _ in range(depth):
        node = value.producer() if value is not None else None
        if node is None or node.domain not in ("", "ai.onnx"):
            return False
        if node.op_type in NON_NEGATIVE:
            return True
        if node.op_type == "Clip":
            low = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
            return low is not None and low.size == 1 and float(low.reshape(-1)[0]) >= 0.0
        if node.op_type not in MOVES_VALUES:
            return False
        value = node.inputs[0]
    return False


def _ints(node: ir.Node, name: str, default: Sequence[int]) -> list[int]:
    attr = node.attributes.get(name)
    return list(attr.as_ints()) if attr is not None else list(default)


def exact_zero_pads(node: ir.Node) -> tuple[list[int], list[int]] | None:
    """``(begins, ends)`` of a MaxPool whose −∞ padding may become zeros (see the module docstring), else None."""
    if not _is_onnx(node, "MaxPool") or not node.inputs or node.inputs[0] is None:
        return None
    auto_pad = node.attributes.get("auto_pad")
    if auto_pad is not None and auto_pad.as_string() not in ("", "NOTSET"):
        return None
    kernel = _ints(node, "kernel_shape", ())
    n = len(kernel)
    pads = _ints(node, "pads", [0] * 2 * n)
    if n == 0 or len(pads) != 2 * n or not any(pads):
        return None
    ceil = node.attributes.get("ceil_mode")
    if (ceil is not None and ceil.as_int() != 0) or any(d != 1 for d in _ints(node, "dilations", [1] * n)):
        return None
    begins, ends = pads[:n], pads[n:]
    if any(p < 0 or p > k - 1 for p, k in zip(begins + ends, kernel + kernel, strict=True)):
        return None
    indices = node.outputs[1] if len(node.outputs) > 1 else None
    if indices is not None and (indices.uses() or indices.is_graph_output()):
        return None
    if not is_non_negative(node.inputs[0]):
        return None
    return begins, ends


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _padded_shape(shape: ir.Shape | None, begins: Sequence[int], ends: Sequence[int]) -> ir.Shape | None:
    if shape is None or len(shape) != 2 + len(begins):
        return None
    dims: list[int | ir.SymbolicDim | None] = list(shape.dims[:2])
    for d, b, e in zip(shape.dims[2:], begins, ends, strict=True):
        dims.append(d + b + e if isinstance(d, int) else None)
    return ir.Shape(dims)


def _rewrite(graph: ir.Graph, pool: ir.Node, begins: list[int], ends: list[int], taken: set[str]) -> None:
    """Insert ``Pad(x, [0, 0, begins…, 0, 0, ends…])`` before ``pool`` and drop the pool's ``pads``."""
    x = pool.inputs[0]
    assert x is not None
    base = pool.name or (pool.outputs[0].name or "maxpool")
    pads = int64_initializer(graph, _unique(f"{base}_zero_pads", taken), [0, 0, *begins, 0, 0, *ends])
    assert pads is not None  # _unique picked a free name
    pad = ir.node("Pad", inputs=[x, pads], name=_unique(f"{base}_zero_pad", taken))  # mode "constant", value 0
    out = pad.outputs[0]
    out.name = _unique(f"{base}_zero_padded", taken)
    out.type = x.type
    out.shape = _padded_shape(x.shape, begins, ends)
    graph.insert_before(pool, pad)
    pool.replace_input_with(0, out)
    pool.attributes.pop("pads")


def _names(graph: ir.Graph) -> set[str]:
    names = {v.name for v in graph.inputs if v.name} | set(graph.initializers)
    for node in ir.traversal.RecursiveGraphIterator(graph):
        names.update(v.name for v in node.outputs if v.name)
        if node.name:
            names.add(node.name)
    return names


@register_pass(
    "zero-pad-maxpool",
    summary="Opt-in: pad a MaxPool whose input is never negative (after Relu, Sigmoid, Clip(min ≥ 0) …) with an "
    "explicit zero Pad instead of its −∞ padding (exact; keeps int8 calibration ranges sane for onnx2tf/TFLite)",
    default=False,
    engine="modelport",
)
class ZeroPadMaxPool(ModelportPass[PassOptions]):
    """Rewrites ``MaxPool(pads)`` as ``Pad(0) → MaxPool`` where that is exact (see the module docstring)."""

    def apply(self, model: ir.Model) -> bool:
        if model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0)) < MIN_OPSET:
            return False
        graph = model.graph
        taken: set[str] | None = None
        count = 0
        for node in list(graph):
            pads = exact_zero_pads(node)
            if pads is None:
                continue
            taken = _names(graph) if taken is None else taken
            _rewrite(graph, node, *pads, taken)
            count += 1
        if count:
            log.debug("zero-pad-maxpool: %d MaxPool(s) padded with an explicit zero Pad", count)
        return bool(count)
