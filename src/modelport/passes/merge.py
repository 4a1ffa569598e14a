"""Merging chains of the same data-movement op into one node.

``merge-concats``: Concat is associative along one axis,

    Concat_a(x₁, …, xᵢ₋₁, Concat_a(y₁, …, yₘ), xᵢ₊₁, …, xₙ) = Concat_a(x₁, …, xᵢ₋₁, y₁, …, yₘ, xᵢ₊₁, …, xₙ)

(the inner result occupies exactly the slots of its parts along ``a``; the other dims already agree), so an inner
Concat on the same axis whose result has no other use is spliced into the outer one. Exporters emit such nested
chains for ``torch.cat`` in a loop and TensorFlow's ``stack``/``concat`` of growing lists. The axes are compared
after normalizing negative axes with the rank (when the ranks are unknown, only equal axis values match).
Applied to the main graph and every sub-graph.
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from modelport.passes.base import ModelportPass, PassOptions, register_pass

log = logging.getLogger(__name__)


def _axis(node: ir.Node) -> int | None:
    """The Concat's axis, normalized to ≥ 0 when the output rank is known."""
    attr = node.attributes.get("axis")
    if attr is None:
        return None
    axis = attr.as_int()
    shape = node.outputs[0].shape
    if axis < 0 and shape is not None:
        axis += len(shape)
    return axis


def _is_concat(node: ir.Node | None) -> bool:
    return node is not None and node.op_type == "Concat" and node.domain in ("", "ai.onnx")


def _splice(node: ir.Node) -> bool:
    """Replace ``node``'s single-use same-axis Concat inputs by their inputs; True when it changed."""
    axis = _axis(node)
    if axis is None:
        return False
    new_inputs: list[ir.Value | None] = []
    changed = False
    for value in node.inputs:
        inner = value.producer() if value is not None else None
        if (
            value is not None
            and inner is not None
            and _is_concat(inner)
            and inner.graph is node.graph
            and _axis(inner) == axis
            and len(value.uses()) == 1
            and not value.is_graph_output()
        ):
            new_inputs.extend(inner.inputs)
            changed = True
        else:
            new_inputs.append(value)
    if not changed:
        return False
    outer = ir.node(
        "Concat", inputs=new_inputs, attributes={"axis": axis}, name=node.name, num_outputs=1, domain=node.domain
    )
    out = node.outputs[0]
    outer.outputs[0].shape, outer.outputs[0].type = out.shape, out.type
    graph = node.graph
    assert graph is not None
    ir.convenience.replace_nodes_and_values(graph, node, [node], [outer], [out], [outer.outputs[0]])
    return True


def merge_concats(graph: ir.Graph) -> int:
    """Splice nested same-axis Concats in ``graph`` and its sub-graphs; returns how many outer nodes changed."""
    count = 0
    for node in list(ir.traversal.RecursiveGraphIterator(graph)):
        if _is_concat(node) and node.graph is not None and _splice(node):
            count += 1
    return count


@register_pass(
    "merge-concats",
    summary="Splice a single-use Concat into the Concat it feeds when both join along the same axis",
)
class MergeConcats(ModelportPass[PassOptions]):
    """modelport's splice; the inner Concats become dead and ``remove-unused`` drops them."""

    def apply(self, model: ir.Model) -> bool:
        count = merge_concats(model.graph)
        if count:
            log.debug("merge-concats: %d Concat nodes absorbed their inputs", count)
        return bool(count)
