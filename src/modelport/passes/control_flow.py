"""Control flow and graph order: preparations that let engines read ``If`` nodes and out-of-order graphs.

* ``if-scalar-condition``: ONNX lets an ``If`` condition be any one-element bool tensor; OpenVINO's ``If``
  accepts rank 0 or 1 only ("Rank of If condition input must be equal to 0 or 1"). The condition becomes
  ``Reshape(cond, [])``, a scalar with the same single element, so both branches and every value are unchanged.
* ``inline-constant-if``: an ``If`` whose condition is a constant (an initializer that is not a graph input, or
  a ``Constant`` node's output) always runs the same branch, so that branch's nodes move into the enclosing graph
  in place of the ``If`` (its initializers too) and the ``If``'s outputs become the branch's outputs. This is exact:
  ``If(c, then, else) = then`` for ``c = true`` and ``else`` for ``c = false``. Engines then see no control flow,
  and shape inference sees one shape per value instead of a merge of both branches' shapes.

:func:`needs_sort` / :func:`sort_proto` put the nodes of a ModelProto (every subgraph included) in topological
order: some exporters list nodes out of order, which ``onnx.checker`` and onnxsim refuse although the graph is
well-formed. A node of a subgraph may read a value of an enclosing graph; the sort (onnx-ir's stable
``Graph.sort``) treats that as a dependency of the node holding the subgraph.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx
import onnx_ir as ir

from modelport.passes.base import ModelportPass, PassOptions, register_pass

log = logging.getLogger(__name__)


def _is_if(node: ir.Node) -> bool:
    return node.op_type == "If" and node.domain in ("", "ai.onnx") and bool(node.inputs) and node.graph is not None


@dataclasses.dataclass(frozen=True)
class IfScalarConditionOptions(PassOptions):
    """Options of ``if-scalar-condition``.

    Attributes:
        unknown_shape: also reshape conditions whose shape is unknown (a no-op for a scalar, but a node more).
    """

    unknown_shape: bool = True


@register_pass(
    "if-scalar-condition",
    summary="Reshape every If condition of rank ≥ 1 (one element) to a scalar (OpenVINO takes rank 0 or 1)",
    options=IfScalarConditionOptions,
    default=False,
    engine="onnx-ir",
)
class IfScalarCondition(ModelportPass[IfScalarConditionOptions]):
    """``If(cond)`` with ``cond`` of shape [1], [1, 1] … (or unknown) → ``If(Reshape(cond, []))``."""

    def apply(self, model: ir.Model) -> bool:
        modified = False
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            cond = node.inputs[0] if _is_if(node) else None
            if cond is None or (cond.shape.rank() == 0 if cond.shape is not None else not self.options.unknown_shape):
                continue
            base = f"{cond.name or node.name or 'if'}__scalar"
            empty = ir.node(
                "Constant", [], attributes={"value": ir.tensor(np.zeros(0, np.int64), name=f"{base}_shape")}
            )
            empty.outputs[0].name = f"{base}_shape"
            reshape = ir.node("Reshape", [cond, empty.outputs[0]])
            scalar = reshape.outputs[0]
            scalar.name, scalar.dtype, scalar.shape = base, ir.DataType.BOOL, ir.Shape([])
            assert node.graph is not None
            node.graph.insert_before(node, [empty, reshape])
            node.replace_input_with(0, scalar)
            modified = True
        return modified


def constant_condition(value: ir.Value | None) -> bool | None:
    """The single bool of a constant ``If`` condition (an initializer that is not a graph input, or a ``Constant``
    node's output); None when it is not a one-element constant."""
    if value is None or value.is_graph_input():
        return None
    tensor = value.const_value
    producer = value.producer()
    if (
        tensor is None
        and producer is not None
        and producer.op_type == "Constant"
        and producer.domain in ("", "ai.onnx")
    ):
        attr = producer.attributes.get("value")
        tensor = attr.as_tensor() if attr is not None and attr.type == ir.AttributeType.TENSOR else None
    if tensor is None:
        return None
    array = tensor.numpy()
    return bool(array.reshape(-1)[0]) if array.size == 1 else None


@register_pass(
    "inline-constant-if",
    summary="Replace an If whose condition is a constant by the nodes of the branch it always takes",
    default=False,
    engine="onnx-ir",
)
class InlineConstantIf(ModelportPass[PassOptions]):
    """``If(true, then, else)`` → the nodes of ``then`` (``else`` for false), outermost ``If`` first."""

    def apply(self, model: ir.Model) -> bool:
        modified = False
        while (found := _next_constant_if(model.graph)) is not None:
            _inline(*found)
            modified = True
        return modified


def _next_constant_if(graph: ir.Graph) -> tuple[ir.Node, ir.Graph] | None:
    """The first ``If`` (outermost first) with a constant condition, and the branch it takes."""
    for node in ir.traversal.RecursiveGraphIterator(graph):
        taken = constant_condition(node.inputs[0]) if _is_if(node) else None
        if taken is None:
            continue
        attr = node.attributes.get("then_branch" if taken else "else_branch")
        if attr is not None and attr.type == ir.AttributeType.GRAPH:
            return node, attr.as_graph()
    return None


def _inline(node: ir.Node, branch: ir.Graph) -> None:
    """Move ``branch``'s nodes and initializers into ``node``'s graph before ``node``; rewire and drop ``node``."""
    graph = node.graph
    assert graph is not None
    formals = list(branch.outputs)
    branch.outputs.clear()
    moved = list(branch)
    branch.remove(moved)
    for inner in moved:
        inner.name = f"{node.name}/{inner.name}" if node.name and inner.name else inner.name
    graph.insert_before(node, moved)
    for name in list(branch.initializers):
        value = branch.initializers.pop(name)
        while value.name in graph.initializers:
            value.name = f"{value.name}_inlined"
        graph.register_initializer(value)
    for formal, actual in zip(formals, node.outputs, strict=True):
        if actual.is_graph_output():
            # keep the graph's output value (its name and declared shape) fed by an Identity of the branch's value
            ident = ir.node("Identity", [formal], name=f"{node.name}/{actual.name}")
            graph.insert_before(node, ident)
            ir.convenience.replace_all_uses_with(actual, ident.outputs[0], replace_graph_outputs=True)
            ident.outputs[0].name, ident.outputs[0].type, ident.outputs[0].shape = (
                actual.name, actual.type or formal.type, actual.shape or formal.shape
            )  # fmt: skip
        else:
            ir.convenience.replace_all_uses_with(actual, formal)
    graph.remove(node, safe=True)


def needs_sort(proto: onnx.ModelProto) -> bool:
    """Whether some node (of the main graph or any subgraph) reads a value that no earlier node, input,
    initializer or enclosing scope defines."""
    return not _graph_sorted(proto.graph, frozenset())


def _graph_sorted(graph: onnx.GraphProto, outer: frozenset[str]) -> bool:
    known = set(outer) | {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    known |= {t.values.name for t in graph.sparse_initializer}
    for node in graph.node:
        if any(name not in known for name in node.input):
            return False
        scope = frozenset(known)
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            if not all(_graph_sorted(g, scope) for g in subgraphs):
                return False
        known.update(node.output)
    return True


def sort_proto(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` itself when its graphs are in topological order, else a sorted copy (onnx-ir's stable sort of
    the main graph, every subgraph and every function; external data references are kept as they are).

    Raises:
        ValueError: the graph has a cycle (no order exists).
    """
    if not needs_sort(proto):
        return proto
    model = ir.serde.deserialize_model(proto)
    model.graph.sort()
    for function in model.functions.values():
        function.sort()
    log.info("the model's nodes were not in topological order: sorted them")
    return ir.serde.serialize_model(model)
