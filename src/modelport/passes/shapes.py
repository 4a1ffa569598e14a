"""Shape inference and dimension fixing.

``fix-dims`` writes concrete sizes into the graph inputs (``--batch N`` for every input's leading dim,
``--input-shape name:1,3,480,640`` for whole shapes), forgets every intermediate shape, and lets
``shape-inference`` propagate the new sizes; ``fold-constants`` can then evaluate ``Shape`` sub-graphs
(``Shape → Gather → Unsqueeze → Concat → Reshape``) that exporters emit for dynamic sizes.

``fold-shape-gathers`` folds ``Gather(Shape(x)[start:end], i)`` (and ``Slice(Shape(x), b, e)`` with a positive
step) to a constant when the dims it picks are known integers, even when other dims of ``x`` are dynamic:
``Shape`` returns ``x``'s dims, so entry ``i`` *is* dim ``start + i`` (a negative ``i`` counts from the end).
onnxscript's folder only takes 1-D indices; exporters write
a scalar index (``x.size(1)``), which this pass covers (scalar or 1-D, axis 0). It also rebuilds
``Concat(x.size(0), x.size(1), …, x.size(r-1))`` (each part an ``Unsqueeze(Gather(Shape(x), i))``, a 1-D Gather or a
Shape of ``x``) as ``Shape(x)`` when the parts list every dim of ``x`` in order: that is what Shape returns.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.errors import InvalidInputError
from modelport.inputs import match_input_names
from modelport.passes.base import ModelportPass, PassOptions, Phase, register_pass
from modelport.rules._util import int64_initializer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ShapeInferenceOptions(PassOptions):
    """Options of ``shape-inference``.

    Attributes:
        data_prop: let ONNX propagate values through Shape/Gather/Concat…, which gives symbolic dims names.
    """

    data_prop: bool = True


@register_pass(
    "shape-inference",
    summary="Infer shapes and types (ONNX shape inference with data propagation: symbolic dims keep names)",
    options=ShapeInferenceOptions,
    engine="onnx-ir",
)
class ShapeInference(ModelportPass[ShapeInferenceOptions]):
    """onnx-ir's ShapeInferencePass (ONNX's ``infer_shapes``, non-strict so a failing node does not stop it)."""

    def apply(self, model: ir.Model) -> bool:
        inner = common.ShapeInferencePass(strict_mode=False, data_prop=self.options.data_prop)
        return inner(model).modified


@dataclasses.dataclass(frozen=True)
class FixDimsOptions(PassOptions):
    """Options of ``fix-dims``.

    Attributes:
        input_shapes: ``(input name, shape)`` pairs: the whole shape of those inputs.
        batch: leading dim of every input whose leading dim is dynamic.
    """

    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    batch: int | None = None


def _dims_text(shape: ir.Shape | None) -> str:
    if shape is None:
        return "unknown rank"
    return "[" + ", ".join(str(d) if isinstance(d, int) else (str(d.value or "?")) for d in shape.dims) + "]"


def check_fix_dims(graph: ir.Graph, options: FixDimsOptions) -> dict[str, tuple[int, ...]]:
    """The new shape of every input that changes; InvalidInputError for unknown names, wrong ranks, bad sizes."""
    inputs = {v.name: v for v in graph.inputs if v.name is not None}
    overrides = match_input_names(dict(options.input_shapes), set(inputs))
    unknown = sorted(set(overrides) - set(inputs))
    if unknown:
        raise InvalidInputError(
            f"--input-shape names unknown input(s) {', '.join(unknown)}",
            hint=f"the model's inputs are: {', '.join(inputs)}",
        )
    if options.batch is not None and options.batch <= 0:
        raise InvalidInputError(f"--batch must be positive, got {options.batch}")
    new: dict[str, tuple[int, ...]] = {}
    for name, value in inputs.items():
        old = value.shape
        if name in overrides:
            shape = tuple(int(d) for d in overrides[name])
            if old is not None and len(shape) != len(old):
                raise InvalidInputError(
                    f"--input-shape for {name!r} has rank {len(shape)}, the model's input has rank {len(old)} "
                    f"{_dims_text(old)}"
                )
            if any(d <= 0 for d in shape):
                raise InvalidInputError(f"--input-shape for {name!r} has a non-positive dim {list(shape)}")
            if old is not None:
                for i, (want, got) in enumerate(zip(old.dims, shape, strict=True)):
                    if isinstance(want, int) and want >= 0 and want != got:  # -1: exporters' "dynamic"
                        raise InvalidInputError(
                            f"--input-shape for {name!r} sets dim {i} to {got}, but the model fixes it to "
                            f"{want} {_dims_text(old)}"
                        )
            new[name] = shape
        elif options.batch is not None and old is not None and len(old) > 0:
            lead = old.dims[0]
            if isinstance(lead, int) and lead >= 0:
                if lead != options.batch:
                    raise InvalidInputError(
                        f"input {name!r} has a fixed leading dim {lead}; --batch {options.batch} cannot change it",
                        hint="re-export the model with a dynamic batch dimension",
                    )
                continue
            new[name] = (options.batch, *old.dims[1:])  # type: ignore[arg-type]
    return new


@register_pass(
    "fix-dims",
    summary="Fix dynamic dims: --batch N for every input's leading dim, --input-shape name:d1,d2,… per input",
    options=FixDimsOptions,
    phase=Phase.PREPARE,
)
class FixDims(ModelportPass[FixDimsOptions]):
    """Writes the given sizes into the inputs and clears intermediate shapes so inference recomputes them."""

    def apply(self, model: ir.Model) -> bool:
        new = check_fix_dims(model.graph, self.options)
        changed = False
        for value in model.graph.inputs:
            if value.name in new:
                shape = ir.Shape(new[value.name])
                if value.shape != shape:
                    value.shape = shape
                    changed = True
        if changed:
            outputs = set(model.graph.outputs)
            for node in ir.traversal.RecursiveGraphIterator(model.graph):
                for out in node.outputs:
                    if out not in outputs and out.const_value is None:
                        out.shape = None
            # Re-infer at once so that the graph outputs get the new sizes whatever passes follow.
            common.ShapeInferencePass(strict_mode=False)(model)
            log.info("fixed input dims: %s", new)
        return changed


def _shape_dims(node: ir.Node) -> list[int | ir.SymbolicDim] | None:
    """The dims a Shape node returns (its ``start``/``end`` applied); None if the input's rank is unknown."""
    data = node.inputs[0] if node.inputs else None
    if data is None or data.shape is None:
        return None
    start = node.attributes.get("start")
    end = node.attributes.get("end")
    return list(data.shape.dims[slice(start.as_int() if start else None, end.as_int() if end else None)])


def fold_shape_gathers(graph: ir.Graph) -> int:
    """Replace each ``Gather(Shape(x), const i)`` that picks known dims by an int64 initializer; returns the count."""
    count = 0
    for node in list(graph):
        if node.op_type != "Gather" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            continue
        axis = node.attributes.get("axis")
        source, index = node.inputs
        shape_node = source.producer() if source is not None else None
        if (axis is not None and axis.as_int() != 0) or shape_node is None or shape_node.op_type != "Shape":
            continue
        indices = index.const_value.numpy() if index is not None and index.const_value is not None else None
        dims = _shape_dims(shape_node)
        if indices is None or dims is None or indices.ndim > 1 or not dims:
            continue
        picked = [dims[int(i)] if -len(dims) <= int(i) < len(dims) else None for i in indices.reshape(-1)]
        if not all(isinstance(d, int) for d in picked):
            continue
        count += _replace_by_dims(graph, node.outputs[0], picked, indices.shape)
    for node in list(graph):
        if node.op_type == "Slice" and node.domain in ("", "ai.onnx"):
            count += _fold_shape_slice(graph, node)
        elif node.op_type == "Concat" and node.domain in ("", "ai.onnx"):
            count += _concat_of_all_dims(graph, node)
    return count


def _picked_dims(value: ir.Value | None) -> tuple[ir.Value, list[int]] | None:
    """``(x, [i…])`` when ``value`` holds dims ``i…`` of ``x``: Shape(x), Gather(Shape(x), 1-D const) or
    Unsqueeze(Gather(Shape(x), scalar const), [0]); indices normalized with the rank of ``x``."""
    node = value.producer() if value is not None else None
    if node is None or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Unsqueeze":
        axes = node.inputs[1].const_value if len(node.inputs) > 1 and node.inputs[1] is not None else None
        attr = node.attributes.get("axes")
        listed = axes.numpy().reshape(-1).tolist() if axes is not None else (attr.as_ints() if attr else None)
        gather = node.inputs[0].producer() if node.inputs[0] is not None else None
        index = (
            gather.inputs[1] if gather is not None and gather.op_type == "Gather" and len(gather.inputs) > 1 else None
        )
        scalar = index is not None and index.const_value is not None and index.const_value.numpy().ndim == 0
        return _picked_dims(node.inputs[0]) if scalar and listed is not None and list(listed) == [0] else None
    if node.op_type == "Shape":
        x, dims = node.inputs[0], _shape_dims(node)
        if x is None or x.shape is None or dims is None:
            return None
        start = node.attributes.get("start")
        first = start.as_int() if start is not None else 0
        first = max(first + len(x.shape) if first < 0 else first, 0)
        return x, list(range(first, first + len(dims)))
    if node.op_type == "Gather" and len(node.inputs) == 2 and node.inputs[1] is not None:
        axis = node.attributes.get("axis")
        const = node.inputs[1].const_value
        source = _picked_dims(node.inputs[0]) if (axis is None or axis.as_int() == 0) and const is not None else None
        if source is None or const is None:
            return None
        x, available = source
        picked = []
        for i in const.numpy().reshape(-1).tolist():
            if not -len(available) <= i < len(available):
                return None
            picked.append(available[i])
        return x, picked
    return None


def _concat_of_all_dims(graph: ir.Graph, node: ir.Node) -> int:
    """``Concat(dims of x, in order, all of them)`` → ``Shape(x)``; 1 when replaced."""
    axis = node.attributes.get("axis")
    if axis is None or axis.as_int() not in (0, -1) or not node.inputs:
        return 0
    parts: list[tuple[ir.Value, list[int]]] = []
    for value in node.inputs:
        part = _picked_dims(value)
        if part is None:
            return 0
        parts.append(part)
    x = parts[0][0]
    dims = [d for _, picked in parts for d in picked]
    if any(p[0] is not x for p in parts) or x.shape is None or dims != list(range(len(x.shape))):
        return 0
    shape = ir.node("Shape", inputs=[x])
    out = node.outputs[0]
    shape.outputs[0].shape, shape.outputs[0].type = out.shape, out.type
    ir.convenience.replace_nodes_and_values(graph, node, [node], [shape], [out], [shape.outputs[0]])
    return 1


def _fold_shape_slice(graph: ir.Graph, node: ir.Node) -> int:
    """``Slice(Shape(x), start, end[, 0[, step > 0]])`` → the picked dims, when they are known integers."""
    source = node.inputs[0] if node.inputs else None
    shape_node = source.producer() if source is not None else None
    if shape_node is None or shape_node.op_type != "Shape" or len(node.inputs) < 3:
        return 0
    consts = [
        (v.const_value.numpy().reshape(-1).tolist() if v is not None and v.const_value is not None else None)
        for v in node.inputs[1:5]
    ]
    consts += [[0], [1]][len(consts) - 2 :]  # default axes [0] and steps [1]
    starts, ends, axes, steps = consts[:4]
    dims = _shape_dims(shape_node)
    if dims is None or any(c is None or len(c) != 1 for c in (starts, ends, axes, steps)):
        return 0
    assert starts is not None and ends is not None and axes is not None and steps is not None
    if axes[0] not in (0, -1) or steps[0] <= 0:
        return 0
    picked = dims[slice(int(starts[0]), int(ends[0]), int(steps[0]))]  # ONNX clamps like Python for step > 0
    if not all(isinstance(d, int) for d in picked):
        return 0
    return _replace_by_dims(graph, node.outputs[0], picked, (len(picked),))


def _replace_by_dims(graph: ir.Graph, out: ir.Value, picked: list[Any], shape: tuple[int, ...]) -> int:
    """Replace every use of ``out`` by an int64 initializer holding ``picked``; 1 if done, else 0."""
    if out.is_graph_output():
        return 0
    value = int64_initializer(graph, f"{out.name}_dims", np.asarray(picked, dtype=np.int64).reshape(shape))
    if value is None:
        return 0
    out.replace_all_uses_with(value)
    return 1


@register_pass(
    "fold-shape-gathers",
    summary="Fold Gather(Shape(x), i) and Slice(Shape(x), …) to constants when the dims they pick are known, "
    "even if other dims are dynamic",
)
class FoldShapeGathers(ModelportPass[PassOptions]):
    """modelport's fold (main graph); the Gather and Shape nodes left without users are removed by remove-unused."""

    def apply(self, model: ir.Model) -> bool:
        return bool(fold_shape_gathers(model.graph))
