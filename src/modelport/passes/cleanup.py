"""Constant folding and graph cleanup, run by the engines that already do them well.

* ``fold-constants``: onnxscript's FoldConstantsPass (evaluates constant sub-graphs with ONNX's reference
  implementation, folds ``Shape``/``Size`` from known shapes, tracks symbolic shape values through
  ``Gather``/``Concat``/``Reshape``), then onnx-ir lifts the Constant nodes it leaves into initializers;
* ``eliminate-identity``, ``cse``, ``remove-unused``, ``dedup-initializers``, ``topological-sort``: onnx-ir's
  common passes of the same names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import onnx_ir as ir
import onnx_ir.passes.common as common
from onnxscript.optimizer import _constant_folding as folding

from modelport.passes.base import ModelportPass, PassOptions, Phase, register_pass


@dataclasses.dataclass(frozen=True)
class FoldConstantsOptions(PassOptions):
    """Options of ``fold-constants``.

    Attributes:
        input_size_limit: fold a node only if every constant input has at most this many elements
            (Shape/Size are always folded). onnxscript's own default is 8,192; simplifiers fold everything.
        output_size_limit: keep a node whose folded result would exceed this many elements (2²⁸ float32 =
            1 GiB, under protobuf's 2 GiB; larger models are saved with external data anyway).
        fold_constant_of_shape: also materialize ``ConstantOfShape`` (placeholder weights become initializers,
            which lets BatchNorm/affine folding see them, at the price of a larger file).
    """

    input_size_limit: int = 1 << 26
    output_size_limit: int = 1 << 28
    fold_constant_of_shape: bool = True


def _should_fold(options: FoldConstantsOptions) -> Callable[[ir.Node], bool | None]:
    def decide(node: ir.Node) -> bool | None:
        if node.op_type == "ConstantOfShape" and node.domain in ("", "ai.onnx"):
            return True if options.fold_constant_of_shape else None
        return None

    return decide


@register_pass(
    "fold-constants",
    summary="Evaluate constant sub-graphs (incl. Shape→Gather→Concat→Reshape arithmetic once shapes are known)",
    options=FoldConstantsOptions,
    engine="onnxscript + onnx-ir",
)
class FoldConstants(ModelportPass[FoldConstantsOptions]):
    """onnxscript's FoldConstantsPass, then onnx-ir's LiftConstantsToInitializersPass."""

    def apply(self, model: ir.Model) -> bool:
        fold = folding.FoldConstantsPass(
            shape_inference=True,
            input_size_limit=self.options.input_size_limit,
            output_size_limit=self.options.output_size_limit,
            should_fold=_should_fold(self.options),
        )
        modified = fold(model).modified
        lift = common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)
        return bool(lift(model).modified or modified)


@register_pass("eliminate-identity", summary="Remove Identity nodes (subgraph-safe)")
class EliminateIdentity(ModelportPass[PassOptions]):
    """Remove ``y = Identity(x)`` by letting the consumers of ``y`` read ``x``, in every graph and subgraph.

    When ``y`` is an output of its graph (a model output, or an ``If``/``Loop``/``Scan`` body's output), the node
    goes only if ``x`` is made by a node of that same graph and is not already an input or output of any graph;
    ``x`` then takes ``y``'s name and declared shape, so the graph's interface is unchanged. Otherwise the node is
    kept: ``x`` may be an outer-scope value, a graph input or another output, which cannot become (a second)
    output of this graph. onnx-ir 1.1.0's IdentityEliminationPass makes an outer-scope value a branch output
    there and raises "already an output of a different graph" (silero VAD's ``If`` bodies).
    """

    def apply(self, model: ir.Model) -> bool:
        modified = False
        graphs: list[ir.Graph | ir.Function] = [model.graph, *model.functions.values()]
        for graph in graphs:
            for node in list(ir.traversal.RecursiveGraphIterator(graph)):
                if _removable_identity(node):
                    _remove_identity(node)
                    modified = True
        return modified


def _removable_identity(node: ir.Node) -> bool:
    """Whether ``node`` is an Identity whose output can be replaced by its input without changing any graph's
    inputs or outputs."""
    if node.op_type != "Identity" or node.domain not in ("", "ai.onnx") or len(node.outputs) != 1:
        return False
    if len(node.inputs) != 1 or node.inputs[0] is None or node.graph is None:
        return False
    source, output = node.inputs[0], node.outputs[0]
    if not output.is_graph_output():
        return True
    producer = source.producer()
    return (
        producer is not None
        and producer.graph is node.graph
        and not source.is_graph_output()
        and not source.is_graph_input()
        and not source.is_initializer()
    )


def _remove_identity(node: ir.Node) -> None:
    """Rewire the consumers (and the graph output) of an Identity to its input, then drop the node."""
    source, output = node.inputs[0], node.outputs[0]
    assert source is not None and node.graph is not None
    if source.type is None:
        source.type = output.type
    is_output = output.is_graph_output()
    if source.shape is None or (is_output and output.shape is not None):
        source.shape = output.shape  # a graph output keeps its declared shape
    ir.convenience.replace_all_uses_with(output, source, replace_graph_outputs=is_output)
    if is_output:
        source.name = output.name
    node.graph.remove(node, safe=True)


@register_pass("cse", summary="Common-subexpression elimination", engine="onnx-ir")
class CommonSubexpressionElimination(ModelportPass[PassOptions]):
    """onnx-ir's CommonSubexpressionEliminationPass."""

    def apply(self, model: ir.Model) -> bool:
        return common.CommonSubexpressionEliminationPass()(model).modified


@register_pass("remove-unused", summary="Remove dead nodes, unused initializers and opsets", engine="onnx-ir")
class RemoveUnused(ModelportPass[PassOptions]):
    """onnx-ir's RemoveUnusedNodesPass, RemoveUnusedFunctionsPass and RemoveUnusedOpsetsPass."""

    def apply(self, model: ir.Model) -> bool:
        modified = common.RemoveUnusedNodesPass()(model).modified
        modified = common.RemoveUnusedFunctionsPass()(model).modified or modified
        return bool(common.RemoveUnusedOpsetsPass()(model).modified or modified)


@register_pass(
    "dedup-initializers",
    summary="Merge initializers with identical dtype, shape and content (then cse can merge the nodes using them)",
    engine="onnx-ir",
)
class DeduplicateInitializers(ModelportPass[PassOptions]):
    """onnx-ir's DeduplicateHashedInitializersPass (content hashes, any size), then removal of what it orphaned."""

    def apply(self, model: ir.Model) -> bool:
        kinds = [(v.dtype, tuple(v.shape or ())) for v in model.graph.initializers.values()]
        if len(set(kinds)) == len(kinds):  # no two alike: skip hashing every tensor (45 s on 2 GiB of weights)
            return False
        modified = common.DeduplicateHashedInitializersPass()(model).modified
        if modified:
            common.CommonSubexpressionEliminationPass()(model)
            common.RemoveUnusedNodesPass()(model)
        return bool(modified)


@register_pass(
    "topological-sort",
    summary="Sort nodes topologically (rewrites may insert nodes out of order)",
    phase=Phase.FINISH,
    engine="onnx-ir",
)
class TopologicalSort(ModelportPass[PassOptions]):
    """onnx-ir's TopologicalSortPass."""

    def apply(self, model: ir.Model) -> bool:
        return common.TopologicalSortPass()(model).modified


@register_pass(
    "initializers-not-inputs",
    summary="Stop listing initializers as graph inputs (old IR < 4 style) so they count as constants",
    phase=Phase.PREPARE,
    engine="onnx-ir",
)
class InitializersNotInputs(ModelportPass[PassOptions]):
    """onnx-ir's RemoveInitializersFromInputsPass: an initializer that is also an input could be overridden
    at run time, so nothing can be folded through it; ONNX Runtime already treats them as constants.
    The IR version is raised to 4 where needed (IR 3 requires initializers to be inputs)."""

    def apply(self, model: ir.Model) -> bool:
        modified = common.RemoveInitializersFromInputsPass()(model).modified
        if modified and model.ir_version < 4:
            model.ir_version = 4  # IR < 4 requires every initializer to be an input
        return bool(modified)
