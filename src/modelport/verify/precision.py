"""The precision a model file itself computes in, and the order of precisions from strict to loose.

A comparison is judged at the loosest of the precision a candidate runs at and the precisions of the model
files involved (:meth:`~modelport.verify.tolerance.Tolerance.at_least`): an int8 or fp16 model run on two
runtimes differs by its own rounding, because each runtime requantizes (or rounds) in its own way.

What :func:`detect_precision` reads (files are parsed, no engine runs them):

* ONNX: any quantization op (``QuantizeLinear``, ``DequantizeLinear``, ``QLinear*``, ``ConvInteger``,
  ``MatMulInteger``, ``DynamicQuantize*`` …) in the graph, its subgraphs or functions → int8; float16 (bfloat16)
  initializers, constants or graph inputs/outputs → fp16 (bf16).
* TFLite: an int8/uint8/int16/int4 tensor with quantization scales (full-integer models and dynamic-range
  weights alike) → int8; float16 (bfloat16) tensors → fp16 (bf16).
* OpenVINO IR: a ``FakeQuantize`` layer or an i8/u8/i4/u4 constant → int8; f16 (bf16) constants → fp16 (bf16).
* Anything else (SavedModel, Keras, PyTorch, TensorRT engines): ``default`` (fp32) — their precision cannot be
  read without loading them.
"""

from __future__ import annotations

import logging
import mmap
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from modelport.backends.onnxruntime import is_quantized_op
from modelport.errors import ModelLoadError, ModelportError
from modelport.formats import Format, Precision, sniff_format

log = logging.getLogger(__name__)

#: strict → loose: a comparison is judged at the last of the precisions involved.
ORDER: tuple[Precision, ...] = (Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8)

_OV_INT = frozenset({"i8", "u8", "i4", "u4", "nf4"})
_OV_FLOAT = {"f16": Precision.FP16, "bf16": Precision.BF16}


def loosest(*precisions: Precision | str | None) -> Precision:
    """The loosest of ``precisions`` (None entries ignored; fp32 when none is given)."""
    found = [Precision(p) for p in precisions if p is not None]
    return max(found, key=ORDER.index, default=Precision.FP32)


def parse_executed(text: str) -> Precision | None:
    """The loosest precision named in a runner's executed-precision text (``"int8+fp32"`` → int8), or None."""
    names = re.findall(r"fp32|fp16|bf16|int8", text.lower())
    return loosest(*names) if names else None


def detect_precision(path: str | Path, default: Precision = Precision.FP32) -> Precision:
    """The precision a model file computes in, read from the file (see the module docstring).

    Args:
        path: an ONNX, TFLite or OpenVINO IR (.xml) file; other formats give ``default``.
        default: the precision of formats whose files say nothing readable about it.

    Raises:
        ModelLoadError: the file is missing or cannot be parsed.
        RuntimeUnavailable: a TFLite file without ``ai-edge-litert`` installed (its schema reads the file).
    """
    p = Path(path)
    fmt = sniff_format(p)
    try:
        if fmt is Format.ONNX:
            return _onnx_precision(p, default)
        if fmt is Format.TFLITE:
            return _tflite_precision(p, default)
        if fmt is Format.OPENVINO_IR:
            return _openvino_precision(p, default)
    except ModelportError:
        raise
    except Exception as exc:  # parsers raise their own types on corrupt files
        raise ModelLoadError(f"cannot read the model's precision: {type(exc).__name__}: {exc}", path=p) from exc
    return default


def model_precision(path: str | Path | None) -> Precision | None:
    """:func:`detect_precision`, or None when the path is not a readable model file (a ``module:factory`` spec)."""
    if path is None or not Path(path).exists():
        return None
    try:
        return detect_precision(path)
    except ModelportError as exc:
        log.debug("precision of %s not detected: %s", path, exc)
        return None


# --- ONNX ----------------------------------------------------------------------------------------------------


def _onnx_nodes(graph: Any) -> Iterator[Any]:
    """Every node of a graph and of its subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _onnx_nodes(attr.g)
            for g in attr.graphs:
                yield from _onnx_nodes(g)


def _onnx_precision(path: Path, default: Precision) -> Precision:
    import onnx

    from modelport.model_io import load_proto

    proto = load_proto(path, check=False, load_external_data=False)
    nodes = [*_onnx_nodes(proto.graph), *(n for f in proto.functions for n in f.node)]
    if any(is_quantized_op(n.op_type) for n in nodes):
        return Precision.INT8
    floats: dict[int, Precision] = {onnx.TensorProto.FLOAT16: Precision.FP16, onnx.TensorProto.BFLOAT16: Precision.BF16}
    types: set[int] = {t.data_type for t in proto.graph.initializer}
    types |= {a.t.data_type for n in nodes if n.op_type == "Constant" for a in n.attribute if a.HasField("t")}
    types |= {v.type.tensor_type.elem_type for v in (*proto.graph.input, *proto.graph.output)}
    return loosest(default, *(floats[t] for t in types if t in floats))


# --- TFLite --------------------------------------------------------------------------------------------------


def _tflite_tensors(model: Any) -> Iterable[Any]:
    for i in range(model.SubgraphsLength()):
        graph = model.Subgraphs(i)
        for j in range(graph.TensorsLength()):
            yield graph.Tensors(j)


def _tflite_precision(path: Path, default: Precision) -> Precision:
    from modelport.backends.litert import import_litert_interpreter

    import_litert_interpreter()  # RuntimeUnavailable naming the extra when ai-edge-litert is missing
    from ai_edge_litert import schema_py_generated as schema

    types = schema.TensorType
    integer = {types.INT8, types.UINT8, types.INT16, types.INT4}
    floats = {types.FLOAT16: Precision.FP16, types.BFLOAT16: Precision.BF16}
    found: list[Precision] = [default]
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        model = schema.Model.GetRootAs(buf, 0)
        for tensor in _tflite_tensors(model):
            kind = tensor.Type()
            if kind in integer:
                q = tensor.Quantization()
                if q is not None and q.ScaleLength() > 0:
                    return Precision.INT8
            elif kind in floats:
                found.append(floats[kind])
    return loosest(*found)


# --- OpenVINO IR ---------------------------------------------------------------------------------------------


def _openvino_precision(path: Path, default: Precision) -> Precision:
    found: list[Precision] = [default]
    for _, elem in ET.iterparse(path, events=("end",)):
        if elem.tag != "layer":
            continue
        kind = elem.get("type", "")
        if kind == "FakeQuantize":
            return Precision.INT8
        if kind == "Const":
            data = elem.find("data")
            element = (data.get("element_type", "") if data is not None else "").lower()
            if element in _OV_INT:
                return Precision.INT8
            if element in _OV_FLOAT:
                found.append(_OV_FLOAT[element])
        elem.clear()
    return loosest(*found)
