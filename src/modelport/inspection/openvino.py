"""``inspect`` for OpenVINO IR (.xml + .bin), read with OpenVINO's own reader.

A damaged IR (malformed XML, edges to missing layers, a .bin shorter than its constants, element types or shapes
OpenVINO rejects) is a :class:`ModelLoadError`; so is a model OpenVINO reads but whose ports it cannot describe.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ModelLoadError
from modelport.formats import Format
from modelport.inputs import TensorSpec
from modelport.inspection.summary import ModelSummary


def _spec(port: Any) -> TensorSpec:
    from modelport.backends.openvino import ov_type_name

    ps = port.get_partial_shape()
    dims = None if ps.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in ps)
    try:
        dtype = ov_type_name(port.get_element_type())
    except (RuntimeError, TypeError, ValueError):  # dynamic/undefined element types have no numpy dtype
        dtype = str(port.get_element_type().get_type_name())
    return TensorSpec(port.get_any_name() if port.get_names() else "", dtype, dims)


def _constants(model: Any) -> tuple[int, int]:
    """(elements, bytes) of the model's Const ops."""
    params = bytes_ = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_output_partial_shape(0).is_static:
            n = int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
            params += n
            bytes_ += n * max(op.get_output_element_type(0).size, 1)
    return params, bytes_


def inspect_openvino(path: Path, fmt: Format | None = None) -> ModelSummary:
    from modelport.backends.openvino import error_text, import_openvino, read_ir

    ov = import_openvino()
    model = read_ir(ov.Core(), path)
    try:
        hist: collections.Counter[str] = collections.Counter(op.get_type_name() for op in model.get_ordered_ops())
        params, bytes_ = _constants(model)
        inputs = tuple(_spec(p) for p in model.inputs)
        outputs = tuple(_spec(p) for p in model.outputs)
    except RuntimeError as exc:  # a graph OpenVINO read but cannot walk (a cycle, a port without a tensor)
        raise ModelLoadError(f"OpenVINO cannot describe the model: {error_text(exc)}", path=path) from exc
    bin_path = path.with_suffix(".bin")
    return ModelSummary(
        path=str(path),
        format=Format.OPENVINO_IR,
        file_bytes=path.stat().st_size + (bin_path.stat().st_size if bin_path.exists() else 0),
        inputs=inputs,
        outputs=outputs,
        opsets=(),
        op_histogram=tuple(hist.most_common()),
        node_count=sum(hist.values()),
        parameter_count=params,
        parameter_bytes=bytes_,
        external_data=(bin_path.name,) if bin_path.exists() else (),
        producer="openvino",
    )
