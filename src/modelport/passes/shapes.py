"""Shape inference and dimension fixing.

``fix-dims`` writes concrete sizes into the graph inputs (``--batch N`` for every input's leading dim,
``--input-shape name:1,3,480,640`` for whole shapes), forgets every intermediate shape, and lets
``shape-inference`` propagate the new sizes; ``fold-constants`` can then evaluate ``Shape`` sub-graphs
(``Shape → Gather → Unsqueeze → Concat → Reshape``) that exporters emit for dynamic sizes.
"""

from __future__ import annotations

import dataclasses
import logging

import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.errors import InvalidInputError
from modelport.passes.base import ModelportPass, PassOptions, Phase, register_pass

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
    overrides = dict(options.input_shapes)
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
