"""``inspect`` for ONNX files: inputs/outputs, opsets, the op histogram (subgraphs included), parameters and
external data, read from the protobuf without loading external tensors."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx

from modelport.formats import Format
from modelport.inputs import Dim, TensorSpec
from modelport.inspection.summary import ModelSummary
from modelport.model_io import external_data_files, load_proto


def _onnx_dtype(elem_type: int) -> str:
    """NumPy's name of an ONNX element type; the enum's name when NumPy has none; ``unknown(N)`` for a code ONNX
    does not define (a damaged or future file: inspect shows it rather than failing)."""
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        pass
    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"unknown({elem_type})"


def tensor_spec(vi: onnx.ValueInfoProto) -> TensorSpec:
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


def inspect_onnx(path: Path, fmt: Format | None = None) -> ModelSummary:
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
        inputs=tuple(tensor_spec(i) for i in proto.graph.input if i.name not in init_names),
        outputs=tuple(tensor_spec(o) for o in proto.graph.output),
        opsets=tuple((o.domain or "ai.onnx", int(o.version)) for o in proto.opset_import),
        op_histogram=tuple(hist.most_common()),
        node_count=sum(hist.values()),
        parameter_count=sum(int(np.prod(t.dims, dtype=np.int64)) for t in tensors),
        parameter_bytes=sum(_tensor_bytes(t) for t in tensors),
        external_data=tuple(external_data_files(path)),
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        ir_version=int(proto.ir_version),
    )
