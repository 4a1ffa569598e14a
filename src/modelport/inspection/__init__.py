"""``inspect``: what a model file holds — inputs, outputs, opsets, ops, parameters, external data.

ONNX and OpenVINO IR here; TFLite (tensors, ops, quantization parameters) and SavedModel (signatures with
dtypes and ``-1`` dims, like ``saved_model_cli show``) in :mod:`modelport.inspection.tf`.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import numpy as np
import onnx

from modelport.formats import Format, sniff_format
from modelport.inputs import Dim, TensorSpec
from modelport.model_io import external_data_files, load_proto
from modelport.reports.serialize import JsonReport


@dataclasses.dataclass(frozen=True)
class QuantizedTensor(JsonReport):
    """A TFLite tensor's quantization: per-tensor (one scale) or per-axis (``axis`` ≥ 0)."""

    name: str
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = -1


@dataclasses.dataclass(frozen=True)
class SignatureSummary(JsonReport):
    """A SavedModel or TFLite signature: its key, method and typed inputs/outputs (``None`` = ``-1`` dims)."""

    key: str
    method: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclasses.dataclass(frozen=True)
class ModelSummary(JsonReport):
    """The structure of a model file."""

    path: str
    format: Format
    file_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opsets: tuple[tuple[str, int], ...]
    op_histogram: tuple[tuple[str, int], ...]
    node_count: int
    parameter_count: int
    parameter_bytes: int
    external_data: tuple[str, ...] = ()
    producer: str = ""
    ir_version: int | None = None
    tensor_count: int = 0
    quantized: tuple[QuantizedTensor, ...] = ()
    signatures: tuple[SignatureSummary, ...] = ()


def _onnx_dtype(elem_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _onnx_spec(vi: onnx.ValueInfoProto) -> TensorSpec:
    t = vi.type.tensor_type
    shape: tuple[Dim, ...] | None = None
    if t.HasField("shape"):
        dims: list[Dim] = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return TensorSpec(vi.name, _onnx_dtype(t.elem_type), shape)


def _tensor_bytes(t: onnx.TensorProto) -> int:
    n = int(np.prod(t.dims, dtype=np.int64))
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    except (KeyError, ValueError, TypeError):
        itemsize = 1
    return n * itemsize


def _count_ops(graph: onnx.GraphProto, hist: collections.Counter[str]) -> None:
    for node in graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        hist[key] += 1
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _count_ops(sub, hist)


def inspect_onnx(path: Path) -> ModelSummary:
    proto = load_proto(path, check=False, load_external_data=False)
    init_names = {t.name for t in proto.graph.initializer}
    hist: collections.Counter[str] = collections.Counter()
    _count_ops(proto.graph, hist)
    constants = [a.t for n in proto.graph.node if n.op_type == "Constant" for a in n.attribute if a.HasField("t")]
    tensors = list(proto.graph.initializer) + constants
    return ModelSummary(
        path=str(path),
        format=Format.ONNX,
        file_bytes=path.stat().st_size,
        inputs=tuple(_onnx_spec(i) for i in proto.graph.input if i.name not in init_names),
        outputs=tuple(_onnx_spec(o) for o in proto.graph.output),
        opsets=tuple((o.domain or "ai.onnx", int(o.version)) for o in proto.opset_import),
        op_histogram=tuple(hist.most_common()),
        node_count=sum(hist.values()),
        parameter_count=sum(int(np.prod(t.dims, dtype=np.int64)) for t in tensors),
        parameter_bytes=sum(_tensor_bytes(t) for t in tensors),
        external_data=tuple(external_data_files(path)),
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        ir_version=int(proto.ir_version),
    )


def inspect_openvino(path: Path) -> ModelSummary:
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


def inspect(path: str | Path) -> ModelSummary:
    """Summarise a model file (ONNX, OpenVINO IR, TFLite or a SavedModel directory).

    Raises:
        ModelLoadError: missing, unreadable or unsupported file.
    """
    p = Path(path)
    fmt = sniff_format(p)
    if fmt is Format.ONNX:
        return inspect_onnx(p)
    if fmt is Format.OPENVINO_IR:
        return inspect_openvino(p)
    if fmt in (Format.TFLITE, Format.SAVED_MODEL):
        from modelport.inspection.tf import inspect_saved_model, inspect_tflite

        return inspect_tflite(p) if fmt is Format.TFLITE else inspect_saved_model(p)
    from modelport.errors import ModelLoadError

    raise ModelLoadError(f"inspect does not read {fmt.value} models yet", path=p)
