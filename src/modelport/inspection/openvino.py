"""``inspect`` for OpenVINO IR (.xml + .bin), read with OpenVINO's own reader."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from modelport.formats import Format
from modelport.inputs import TensorSpec
from modelport.inspection.summary import ModelSummary


def inspect_openvino(path: Path, fmt: Format | None = None) -> ModelSummary:
    from modelport.backends.openvino import import_openvino, ov_type_name

    ov = import_openvino()
    model = ov.Core().read_model(str(path))
    hist: collections.Counter[str] = collections.Counter(op.get_type_name() for op in model.get_ordered_ops())
    params = bytes_ = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            shape = op.get_output_shape(0)
            n = int(np.prod(list(shape), dtype=np.int64))
            params += n
            bytes_ += n * max(op.get_output_element_type(0).size, 1)

    def spec(port: object) -> TensorSpec:
        ps = port.get_partial_shape()  # type: ignore[attr-defined]
        dims = None if ps.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in ps)
        return TensorSpec(port.get_any_name(), ov_type_name(port.get_element_type()), dims)  # type: ignore[attr-defined]

    bin_path = path.with_suffix(".bin")
    return ModelSummary(
        path=str(path),
        format=Format.OPENVINO_IR,
        file_bytes=path.stat().st_size + (bin_path.stat().st_size if bin_path.exists() else 0),
        inputs=tuple(spec(p) for p in model.inputs),
        outputs=tuple(spec(p) for p in model.outputs),
        opsets=(),
        op_histogram=tuple(hist.most_common()),
        node_count=sum(hist.values()),
        parameter_count=params,
        parameter_bytes=bytes_,
        external_data=(bin_path.name,) if bin_path.exists() else (),
        producer="openvino",
    )
