"""``inspect`` for TFLite flatbuffers, read with the flatbuffer schema that ships in ``ai-edge-litert`` (no
interpreter, no TensorFlow): inputs/outputs of the main subgraph with their ``shape_signature`` (−1 → dynamic), the
op histogram over all subgraphs (builtin names, custom ops by their code), parameters (tensors backed by a buffer),
quantization parameters of every quantized tensor, and the signatures.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ModelLoadError, first_line
from modelport.formats import Format
from modelport.inputs import Dim, TensorSpec
from modelport.inspection.summary import ModelSummary, QuantizedTensor, SignatureSummary


def _tflite_modules() -> tuple[Any, Any]:
    from modelport.backends.litert import import_litert_interpreter

    import_litert_interpreter()  # RuntimeUnavailable naming the extra when ai-edge-litert is missing
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    return schema, flatbuffer_utils


def _name(raw: bytes | str | None) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")


def _dtype(schema: Any, code: int) -> str:
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    text = names.get(code, str(code)).lower()
    return {"float32": "float32", "float16": "float16", "bool": "bool", "string": "object"}.get(text, text)


def _spec(schema: Any, tensor: Any) -> TensorSpec:
    shape = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
    dims: tuple[Dim, ...] = tuple(None if int(d) < 0 else int(d) for d in (shape if shape is not None else []))
    return TensorSpec(_name(tensor.name), _dtype(schema, tensor.type), dims)


def _keyed(schema: Any, graph: Any, tensor_map: Any) -> TensorSpec:
    """A signature entry: the tensor's spec under the signature's key."""
    spec = _spec(schema, graph.tensors[tensor_map.tensorIndex])
    return TensorSpec(_name(tensor_map.name), spec.dtype, spec.shape)


def read_tflite(path: Path) -> Any:
    """The object model of a .tflite file whose structure is sound (indices in range, operators in an order that
    runs: :func:`modelport.backends.litert_check.check_tflite`); :class:`ModelLoadError` otherwise."""
    from modelport.backends.litert_check import check_tflite

    _, fb = _tflite_modules()
    check_tflite(path)
    try:
        model = fb.read_model(str(path))
    except Exception as exc:  # the flatbuffer reader raises struct/index/unicode errors on corrupt files
        raise ModelLoadError(
            f"cannot read the TFLite flatbuffer (truncated or corrupt): {first_line(exc)}", path=path
        ) from exc
    return model


def inspect_tflite(path: Path, fmt: Format | None = None) -> ModelSummary:
    """Summarise a .tflite file: I/O, op histogram, parameters, quantization parameters, signatures."""
    schema, fb = _tflite_modules()
    model = read_tflite(path)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    hist: collections.Counter[str] = collections.Counter()
    for graph in model.subgraphs:
        for op in graph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = fb.get_builtin_code_from_operator_code(code)
            hist[_name(code.customCode) if code.customCode else op_names.get(builtin, str(builtin))] += 1
    main = model.subgraphs[0]
    params = bytes_ = 0
    quantized: list[QuantizedTensor] = []
    for graph in model.subgraphs:
        for t in graph.tensors:
            buf = model.buffers[t.buffer] if model.buffers and t.buffer < len(model.buffers) else None
            size = len(buf.data) if buf is not None and buf.data is not None else int(getattr(buf, "size", 0) or 0)
            if size:
                params += int(np.prod(t.shape)) if t.shape is not None else 0
                bytes_ += size
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale):
                quantized.append(
                    QuantizedTensor(
                        _name(t.name),
                        _dtype(schema, t.type),
                        tuple(float(s) for s in q.scale),
                        tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [])),
                        int(q.quantizedDimension) if len(q.scale) > 1 else -1,
                    )
                )
    signatures = tuple(
        SignatureSummary(
            _name(sig.signatureKey),
            "tflite",
            tuple(_keyed(schema, model.subgraphs[sig.subgraphIndex], m) for m in sig.inputs or []),
            tuple(_keyed(schema, model.subgraphs[sig.subgraphIndex], m) for m in sig.outputs or []),
        )
        for sig in model.signatureDefs or []
    )
    return ModelSummary(
        path=str(path),
        format=Format.TFLITE,
        file_bytes=path.stat().st_size,
        inputs=tuple(_spec(schema, main.tensors[i]) for i in main.inputs),
        outputs=tuple(_spec(schema, main.tensors[i]) for i in main.outputs),
        opsets=(("tflite schema", int(model.version)),),
        op_histogram=tuple(hist.most_common()),
        node_count=sum(hist.values()),
        parameter_count=params,
        parameter_bytes=bytes_,
        producer=_name(model.description),
        tensor_count=sum(len(g.tensors) for g in model.subgraphs),
        quantized=tuple(quantized),
        signatures=signatures,
    )
