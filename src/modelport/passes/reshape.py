"""Collapsing chains of Reshape / Flatten / Squeeze / Unsqueeze.

All four ops only reinterpret the same row-major buffer, so any chain of them equals one
``Reshape(x, final_shape)``. With static shapes (after ``fix-dims`` / shape inference) modelport replaces the
last node of each chain by that one Reshape; for symbolic shapes onnxscript's rules merge Reshape→Reshape and
Unsqueeze→Unsqueeze pairs and materialize a Reshape's shape from its inferred output shape (which lets the
``Shape → … → Concat`` sub-graph computing it die).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import RewriteRuleSet
from onnxscript.rewriter.rules import common as osr

from modelport.passes.base import ModelportPass, PassOptions, register_pass
from modelport.rules._util import static_shape

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
        const = ir.Value(
            name=f"{out.name}_shape",
            shape=ir.Shape([len(shape)]),
            type=ir.TensorType(ir.DataType.INT64),
            const_value=ir.tensor(np.asarray(shape, dtype=np.int64)),
        )
        if const.name in graph.initializers:
            continue
        graph.register_initializer(const)
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
                osr.materialize_reshape_shape_rule,
            ]
        )
        count = rules.apply_to_model(model)
        _drop_default_allowzero(model)
        count += _collapse(model.graph)
        return bool(count)


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
