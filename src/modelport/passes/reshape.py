"""Collapsing chains of Reshape / Flatten / Squeeze / Unsqueeze.

All four ops only reinterpret the same row-major buffer, so any chain of them equals one
``Reshape(x, final_shape)``. With static shapes (after ``fix-dims`` / shape inference) modelport replaces the
last node of each chain by that one Reshape; for symbolic shapes onnxscript's rules merge Reshape→Reshape and
Unsqueeze→Unsqueeze pairs and materialize a Reshape's shape from its inferred output shape (which lets the
``Shape → … → Concat`` sub-graph computing it die).

Dynamic dims (a free batch): a Reshape whose target is a constant ``s`` without zeros depends only on the element
count of its input (a ``-1`` is resolved from it), and every reshape-like op keeps the element count and the
row-major order, so ``Reshape(R₁(…Rₖ(x)), s) = Reshape(x, s)``. Conversely a reshape-like op after
``Reshape(x, s)`` is a Reshape to a constant computed from ``s``:

* ``Unsqueeze(axes)``: insert 1 at each (normalized, sorted) axis of the output rank ``len(s) + len(axes)``;
* ``Squeeze(axes)``: drop the axes, valid when ``s`` holds 1 there (a ``-1`` there could be any size: kept);
* ``Flatten(axis)``: ``[∏ s[:axis], ∏ s[axis:]]``, where a product containing the ``-1`` becomes ``-1``.

A 0 in ``s`` ("copy the input's dim" when ``allowzero=0``) depends on the input's dims, so such shapes are left
alone. Applied to the main graph.

A target computed at run time as ``Concat(c₁, …, v, …, cₖ)`` whose parts are constants except one single
element ``v`` (typically ``x.size(0)`` through ``Shape → Gather → Unsqueeze``) is the constant target with ``-1``
at ``v``'s slot, provided the constants hold no 0 and no -1: the element count of the input fixes ``v`` to
``numel / ∏ cⱼ``, which is what ``-1`` means. The sub-graph computing ``v`` then dies.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleSet
from onnxscript.rewriter.rules import common as osr
from onnxscript.rewriter.rules.common._materialize_reshape_shape import MaterializeReshapeShape

from modelport.passes.base import ModelportPass, PassOptions, register_pass
from modelport.rules._util import const_array, int64_initializer, static_shape

log = logging.getLogger(__name__)

RESHAPE_LIKE = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


def _is_reshape_like(node: ir.Node | None) -> bool:
    return node is not None and node.op_type in RESHAPE_LIKE and node.domain in ("", "ai.onnx")


def _collapse(graph: ir.Graph) -> int:
    """Replace each reshape-like node fed by a single-use reshape-like node by one Reshape; returns the count."""
    count = 0
    for node in list(graph):
        if not _is_reshape_like(node) or node.graph is not graph:
            continue
        src = node.inputs[0]
        first = src.producer() if src is not None else None
        out = node.outputs[0]
        shape = static_shape(out)
        if first is None or not _is_reshape_like(first) or shape is None:
            continue
        if len(src.uses()) != 1 or src.is_graph_output():  # type: ignore[union-attr]
            continue
        data = first.inputs[0]
        if data is None:
            continue
        const = int64_initializer(graph, f"{out.name}_shape", shape)
        if const is None:
            continue
        reshape = ir.node("Reshape", inputs=[data, const])
        reshape.outputs[0].shape = ir.Shape(shape)
        reshape.outputs[0].type = out.type
        ir.convenience.replace_nodes_and_values(graph, node, [node], [reshape], [out], [reshape.outputs[0]])
        count += 1
    return count


@register_pass(
    "collapse-reshapes",
    summary="Collapse chains of Reshape/Flatten/Squeeze/Unsqueeze into one Reshape; materialize Reshape shapes",
    engine="modelport + onnxscript",
)
class CollapseReshapes(ModelportPass[PassOptions]):
    """modelport's static chain collapsing, plus onnxscript's reshape/unsqueeze merging rules."""

    def apply(self, model: ir.Model) -> bool:
        rules = RewriteRuleSet(
            [
                osr.reshape_reshape_rule,
                osr.unsqueeze_unsqueeze_rule,
                osr.squeeze_reshape_1d_rule,
                DeclaredShapeSafeMaterialize.rule(),
            ]
        )
        count = rules.apply_to_model(model)
        _drop_default_allowzero(model)
        count += _collapse(model.graph)
        count += _collapse_dynamic(model.graph)
        count += _one_free_target(model.graph)
        return bool(count)


def _concat_target(value: ir.Value) -> list[int] | None:
    """The target ``Concat(c₁, …, v, …)`` with ``-1`` at its one non-constant single element; None otherwise."""
    concat = value.producer()
    axis = concat.attributes.get("axis") if concat is not None else None
    if concat is None or concat.op_type != "Concat" or axis is None or axis.as_int() not in (0, -1):
        return None
    target: list[int] = []
    free = 0
    for part in concat.inputs:
        arr = const_array(part)
        if arr is not None:
            target.extend(int(d) for d in arr.reshape(-1).tolist())
        elif static_shape(part) in ((1,), ()):
            target.append(-1)
            free += 1
        else:
            return None
    constants = [d for d in target if d != -1]
    if free != 1 or len(constants) != len(target) - 1 or any(d <= 0 for d in constants):
        return None
    return target


def _one_free_target(graph: ir.Graph) -> int:
    """Give each Reshape whose target is a Concat with one run-time element a constant target with ``-1``."""
    count = 0
    for node in list(graph):
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        shape = node.inputs[1]
        if shape is None or shape.const_value is not None:
            continue
        target = _concat_target(shape)
        const = None if target is None else int64_initializer(graph, f"{node.outputs[0].name}_target", target)
        if const is None:
            continue
        node.replace_input_with(1, const)
        count += 1
    return count


class DeclaredShapeSafeMaterialize(MaterializeReshapeShape):
    """onnxscript's "materialize the Reshape shape from its inferred output shape", kept off graph outputs.

    A graph output's shape is what the file *declares*, and exporters get it wrong (a ``[1, seqlen]`` output whose
    Reshape target has three entries): ONNX Runtime ignores the declaration, the rule would trust it. So a graph
    output's shape is used only when it and the input's are static with the same element count, and the run-time
    target's length (when known) must equal the output rank.
    """

    def check(self, context: Any, data: ir.Value, shape: ir.Value) -> MatchResult:
        output = context.output_values[0]
        if output.is_graph_output() and not _static_and_same_size(data, output):
            return MatchResult().fail("a graph output's declared shape is trusted only when static and consistent")
        length = static_shape(shape)
        if output.shape is not None and length is not None and length != (len(output.shape),):
            return MatchResult().fail("the target's length differs from the inferred output rank")
        return super().check(context, data, shape)


def _static_and_same_size(data: ir.Value, output: ir.Value) -> bool:
    a, b = static_shape(data), static_shape(output)
    return a is not None and b is not None and int(np.prod(a)) == int(np.prod(b))


def _const_target(node: ir.Node) -> list[int] | None:
    """The constant target shape of a Reshape without 0 entries and with at most one -1, else None."""
    if node.op_type != "Reshape" or len(node.inputs) < 2 or node.inputs[1] is None:
        return None
    tensor = node.inputs[1].const_value
    if tensor is None:
        return None
    shape = [int(d) for d in tensor.numpy().reshape(-1).tolist()]
    if 0 in shape or shape.count(-1) > 1 or any(d < -1 for d in shape):
        return None
    return shape


def _axes(node: ir.Node) -> list[int] | None:
    """The constant axes of a Squeeze/Unsqueeze (input from opset 13, attribute before); None if unknown."""
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        tensor = node.inputs[1].const_value
        return None if tensor is None else [int(a) for a in tensor.numpy().reshape(-1).tolist()]
    attr = node.attributes.get("axes")
    return None if attr is None else [int(a) for a in attr.as_ints()]


def _product(dims: list[int]) -> int:
    return -1 if -1 in dims else int(np.prod(dims, dtype=np.int64))


def _after(node: ir.Node, shape: list[int]) -> list[int] | None:
    """The constant target equal to ``node`` (a reshape-like op) applied to the output of ``Reshape(·, shape)``."""
    if node.op_type == "Reshape":
        return _const_target(node)
    if node.op_type == "Flatten":
        attr = node.attributes.get("axis")
        axis = attr.as_int() if attr is not None else 1
        axis = axis + len(shape) if axis < 0 else axis
        return [_product(shape[:axis]), _product(shape[axis:])]
    axes = _axes(node)
    if axes is None:
        return None
    if node.op_type == "Unsqueeze":
        rank = len(shape) + len(axes)
        out = list(shape)
        for a in sorted(a + rank if a < 0 else a for a in axes):
            out.insert(a, 1)
        return out
    squeezed = {a + len(shape) if a < 0 else a for a in axes}  # Squeeze: every squeezed dim must be a known 1
    if not axes or any(not 0 <= a < len(shape) or shape[a] != 1 for a in squeezed):
        return None
    return [d for i, d in enumerate(shape) if i not in squeezed]


def _merge_unsqueezes(graph: ir.Graph, first: ir.Node, second: ir.Node) -> int:
    """``Unsqueeze(Unsqueeze(x, A₁), A₂)`` → ``Unsqueeze(x, A)``, ``A`` = the final positions of every inserted 1.

    Needs constant axes and the rank ``r`` of ``x``: mark ``A₁`` in the ``r + |A₁|`` intermediate dims, insert the
    (normalized, ascending) ``A₂`` as marked dims, and read off the marked positions.
    """
    a1, a2 = _axes(first), _axes(second)
    x = first.inputs[0]
    if a1 is None or a2 is None or x is None or x.shape is None or len(first.inputs) < 2:
        return 0  # (axes as an attribute: opset < 13, where the merged node would need one too)
    mid = len(x.shape) + len(a1)
    marks = [False] * mid
    for a in a1:
        marks[a + mid if a < 0 else a] = True
    final = mid + len(a2)
    for a in sorted(a + final if a < 0 else a for a in a2):
        marks.insert(a, True)
    axes = [i for i, m in enumerate(marks) if m]
    out = second.outputs[0]
    if len(axes) != len(a1) + len(a2):
        return 0
    const = int64_initializer(graph, f"{out.name}_axes", axes)
    if const is None:
        return 0
    merged = ir.node("Unsqueeze", inputs=[x, const])
    merged.outputs[0].shape, merged.outputs[0].type = out.shape, out.type
    ir.convenience.replace_nodes_and_values(graph, second, [second], [merged], [out], [merged.outputs[0]])
    return 1


def _collapse_dynamic(graph: ir.Graph) -> int:
    """Rewrite ``reshape-like(Reshape(x, s))`` and ``Reshape(reshape-like(x), s)`` (constant ``s`` without 0) as
    one ``Reshape(x, s')``, whatever the dims of ``x``; returns the count."""
    count = 0
    for node in list(graph):
        if not _is_reshape_like(node) or node.graph is not graph or node.inputs[0] is None:
            continue
        first = node.inputs[0].producer()
        if not _is_reshape_like(first) or first is None or first.inputs[0] is None:
            continue
        if first.op_type == node.op_type == "Unsqueeze":
            count += _merge_unsqueezes(graph, first, node)
            continue
        shape = _const_target(first) if first.op_type == "Reshape" else None
        target = _after(node, shape) if shape is not None else _const_target(node)
        if target is None or target.count(-1) > 1:
            continue
        out = node.outputs[0]
        const = int64_initializer(graph, f"{out.name}_target", target)
        if const is None:
            continue
        reshape = ir.node("Reshape", inputs=[first.inputs[0], const])
        reshape.outputs[0].shape = out.shape
        reshape.outputs[0].type = out.type
        ir.convenience.replace_nodes_and_values(graph, node, [node], [reshape], [out], [reshape.outputs[0]])
        count += 1
    return count


def _drop_default_allowzero(model: ir.Model) -> None:
    """Keep Reshape valid at opsets before 14, which have no ``allowzero`` attribute.

    onnxscript's rules write ``Reshape(…, allowzero=…)`` whatever the opset. ``allowzero`` only changes what a 0 in
    the target shape means (copy the input's dim, or a real 0), so the attribute is dropped when it is 0 (the only
    behaviour before opset 14) or when the shape is a constant without zeros (both readings agree). A shape with a
    0 and ``allowzero=1`` cannot be written before opset 14; it is left for the checker to reject.
    """
    if model.opset_imports.get("", 14) >= 14:
        return
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            continue
        attr = node.attributes.get("allowzero")
        if attr is None:
            continue
        shape = node.inputs[1].const_value if len(node.inputs) > 1 and node.inputs[1] is not None else None
        no_zeros = shape is not None and 0 not in shape.numpy().tolist()
        if attr.as_int() == 0 or no_zeros:
            del node.attributes["allowzero"]
