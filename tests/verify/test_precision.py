"""``detect_precision``: the precision a model file computes in, read from ONNX, TFLite and OpenVINO IR files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import helper

import models
from modelport.errors import ModelLoadError
from modelport.formats import Precision
from modelport.verify.precision import detect_precision, loosest, model_precision, parse_executed

QDQ = """
    <ir_version: 8, opset_import: ["" : 17]>
    qdq (float[1,8] x) => (float[1,4] y) {
        xq = QuantizeLinear(x, xs, xz)
        xd = DequantizeLinear(xq, xs, xz)
        wd = DequantizeLinear(wq, ws, wz)
        y = MatMul(xd, wd)
    }
"""


@pytest.fixture(scope="module")
def qdq_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = models.with_initializers(
        onnx.parser.parse_model(QDQ),
        xs=np.array(0.02, np.float32),
        xz=np.array(0, np.uint8),
        wq=np.arange(32, dtype=np.int8).reshape(8, 4),
        ws=np.array(0.1, np.float32),
        wz=np.array(0, np.int8),
    )
    return models.save(model, tmp_path_factory.mktemp("precision") / "qdq.onnx")


def test_order_and_executed_text() -> None:
    assert loosest() is Precision.FP32
    assert loosest(Precision.FP16, None, "fp32") is Precision.FP16
    assert loosest("bf16", Precision.INT8, Precision.FP16) is Precision.INT8
    assert parse_executed("int8+fp32") is Precision.INT8
    assert parse_executed("fp16-weights+fp32") is Precision.FP16
    assert parse_executed("f32 on device") is None


def test_onnx_float_models(tmp_path: Path) -> None:
    fp32 = models.save(models.mlp(), tmp_path / "fp32.onnx")
    assert detect_precision(fp32) is Precision.FP32
    half = models.mlp()
    for init in half.graph.initializer:
        init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init).astype(np.float16), init.name))
    for value in (*half.graph.input, *half.graph.output):
        value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    assert detect_precision(models.save(half, tmp_path / "fp16.onnx")) is Precision.FP16
    io_only = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        cast (float16[2] x) => (float[2] y) { y = Cast<to = 1>(x) }
    """)
    assert detect_precision(models.save(io_only, tmp_path / "io16.onnx")) is Precision.FP16


def test_onnx_quantized_models(qdq_path: Path, tmp_path: Path) -> None:
    assert detect_precision(qdq_path) is Precision.INT8
    from onnxruntime.quantization import quantize_dynamic

    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(models.save(models.wide_mlp(), tmp_path / "wide.onnx")), str(dynamic))
    assert {n.op_type for n in onnx.load(str(dynamic)).graph.node} & {"DynamicQuantizeLinear", "MatMulInteger"}
    assert detect_precision(dynamic) is Precision.INT8


def test_onnx_quantization_inside_a_subgraph(tmp_path: Path) -> None:
    then = helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])],
        "then",
        [],
        [helper.make_tensor_value_info("q", onnx.TensorProto.UINT8, [2])],
    )
    other = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["c"], to=onnx.TensorProto.UINT8)],
        "else",
        [],
        [helper.make_tensor_value_info("c", onnx.TensorProto.UINT8, [2])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [
            helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert detect_precision(models.save(model, tmp_path / "if.onnx")) is Precision.INT8


def _tflite(path: Path, kind: str, quantized: bool) -> Path:
    """A minimal TFLite flatbuffer: a float input and one weight tensor of ``kind``."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    def tensor(name: bytes, tensor_type: int, buffer: int) -> object:
        t = schema.TensorT()
        t.name, t.type, t.shape, t.buffer = name, tensor_type, [4, 4], buffer
        return t

    weights = tensor(b"w", getattr(schema.TensorType, kind), 1)
    if quantized:
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [0.05], [0]
        weights.quantization = q  # type: ignore[attr-defined]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = [tensor(b"x", 0, 0), weights], [0], [0], []
    data = schema.BufferT()
    data.data = np.zeros(32, np.uint8)
    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers, model.operatorCodes = 3, [graph], [schema.BufferT(), data], []
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return path


@pytest.mark.parametrize(
    ("kind", "quantized", "expected"),
    [
        ("INT8", True, Precision.INT8),  # full-integer or dynamic-range weights
        ("UINT8", True, Precision.INT8),
        ("UINT8", False, Precision.FP32),  # a raw uint8 tensor (an image input) is not quantization
        ("FLOAT16", False, Precision.FP16),
        ("FLOAT32", False, Precision.FP32),
    ],
)
def test_tflite(tmp_path: Path, kind: str, quantized: bool, expected: Precision) -> None:
    assert detect_precision(_tflite(tmp_path / "m.tflite", kind, quantized)) is expected


def test_openvino_ir(qdq_path: Path, tmp_path: Path) -> None:
    import openvino as ov

    ov.save_model(ov.convert_model(str(qdq_path)), str(tmp_path / "qdq.xml"), compress_to_fp16=False)
    assert detect_precision(tmp_path / "qdq.xml") is Precision.INT8
    fp32 = models.save(models.mlp(), tmp_path / "mlp.onnx")
    ov.save_model(ov.convert_model(str(fp32)), str(tmp_path / "f32.xml"), compress_to_fp16=False)
    assert detect_precision(tmp_path / "f32.xml") is Precision.FP32
    ov.save_model(ov.convert_model(str(fp32)), str(tmp_path / "f16.xml"), compress_to_fp16=True)
    assert detect_precision(tmp_path / "f16.xml") is Precision.FP16


def test_unreadable_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        detect_precision(tmp_path / "missing.onnx")
    assert model_precision(tmp_path / "missing.onnx") is None
    assert model_precision("torchvision.models:resnet18") is None
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    assert detect_precision(saved) is Precision.FP32  # not readable without TensorFlow: the default
    assert detect_precision(saved, default=Precision.FP16) is Precision.FP16
