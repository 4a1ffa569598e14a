"""Small helpers shared by the rewrite rules and passes: constants as numpy, int64 initializers, static shapes,
broadcasting checks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value as a numpy array when it is a constant (initializer or Constant output) and not an input."""
    if value is None or value.is_graph_input():
        return None
    if value.const_value is not None:
        return np.asarray(value.const_value.numpy())
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and producer.domain in ("", "ai.onnx"):
        attr = producer.attributes.get("value")
        if attr is not None and attr.type == ir.AttributeType.TENSOR:
            return np.asarray(attr.as_tensor().numpy())
    return None


def int64_initializer(graph: ir.Graph, name: str, values: Sequence[int] | np.ndarray) -> ir.Value | None:
    """Register an int64 initializer ``name`` holding ``values`` (shape kept); None when the name is taken."""
    if name in graph.initializers:
        return None
    array = np.asarray(values, dtype=np.int64)
    value = ir.Value(
        name=name,
        shape=ir.Shape(list(array.shape)),
        type=ir.TensorType(ir.DataType.INT64),
        const_value=ir.tensor(array),
    )
    graph.register_initializer(value)
    return value


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    """The value's shape when every dim is a known integer, else None."""
    if value is None or value.shape is None:
        return None
    dims = value.shape.dims
    if not all(isinstance(d, int) for d in dims):
        return None
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]


def rank_of(value: ir.Value | None) -> int | None:
    """The value's rank when known."""
    if value is None or value.shape is None:
        return None
    return len(value.shape)


def align(array: np.ndarray, rank: int) -> np.ndarray | None:
    """Prepend unit dims so ``array`` has ``rank`` dims (numpy broadcasting); None if it has more."""
    if array.ndim > rank:
        return None
    return array.reshape((1,) * (rank - array.ndim) + array.shape)


def per_axis_vector(array: np.ndarray, rank: int, axis: int, size: int) -> np.ndarray | None:
    """If ``array`` broadcast to ``rank`` varies only along ``axis`` (length 1 or ``size``), that 1-D vector.

    Returns the vector of length ``size`` (a size-1 constant is repeated), or None when the constant is
    not of that form (it would then change values along other axes, or enlarge the output).
    """
    full = align(array, rank)
    if full is None:
        return None
    for i, d in enumerate(full.shape):
        if i != axis and d != 1:
            return None
    if full.shape[axis] not in (1, size):
        return None
    return np.broadcast_to(full.reshape(-1), (size,)).copy()


def is_all(array: np.ndarray | None, scalar: float) -> bool:
    """True when every element of ``array`` equals ``scalar`` (exactly)."""
    return array is not None and array.size > 0 and bool(np.all(array == scalar))


def broadcast_keeps_shape(shape: Sequence[int], other: Sequence[int]) -> bool:
    """True when broadcasting ``other`` against ``shape`` yields ``shape`` (``other`` never enlarges it)."""
    if len(other) > len(shape):
        return False
    return all(o in (1, s) for s, o in zip(shape[len(shape) - len(other) :], other, strict=True))


def opset_version(model: ir.Model, domain: str = "") -> int:
    """The model's opset for ``domain`` (0 when absent)."""
    return int(model.opset_imports.get(domain, 0))
