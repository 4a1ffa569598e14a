"""Small, fast seed models for the fuzz tests: built in the test process, no conversion chain, no download.

* ONNX: the MNIST convnet asset (138 KB) and the tiny ``conv_bn`` model of ``tests/models.py``;
* TFLite: a two-operator flatbuffer (RELU → ADD with a constant) written with the TFLite schema's object API;
* OpenVINO IR: the MNIST asset read by OpenVINO's ONNX frontend and saved as IR (``ov.save_model``, under a second).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mutators
import numpy as np

REPO = Path(__file__).resolve().parents[2]
MNIST = REPO / "src" / "modelport" / "assets" / "mnist_convnet.onnx"


def onnx_seed() -> mutators.Model:
    return mutators.Model("mnist", "onnx", (("model.onnx", MNIST.read_bytes()),), "model.onnx")


def tflite_bytes() -> bytes:
    """input [1, 8] → RELU → relu_out → ADD(relu_out, bias) → out, with a signature ``serving_default``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str, buffer: int) -> Any:
        t = schema.TensorT()
        t.name, t.shape, t.shapeSignature, t.type, t.buffer = name, [1, 8], [-1, 8], schema.TensorType.FLOAT32, buffer
        return t

    def code(builtin: int) -> Any:
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, builtin, 1
        return c

    def operator(opcode: int, inputs: list[int], output: int) -> Any:
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = opcode, inputs, [output]
        return op

    def tensor_map(name: str, index: int) -> Any:
        m = schema.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    bias = schema.BufferT()
    bias.data = np.arange(8, dtype=np.float32).view(np.uint8).tolist()
    graph = schema.SubGraphT()
    graph.name = "main"
    graph.tensors = [tensor("input", 0), tensor("relu_out", 0), tensor("bias", 1), tensor("out", 0)]
    graph.tensors[2].shapeSignature = None
    graph.operators = [operator(0, [0], 1), operator(1, [1, 2], 3)]
    graph.inputs, graph.outputs = [0], [3]
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    sig.inputs, sig.outputs = [tensor_map("x", 0)], [tensor_map("y", 3)]
    model = schema.ModelT()
    model.version, model.description = 3, "modelport fuzz seed"
    model.buffers = [schema.BufferT(), bias]
    model.operatorCodes = [code(schema.BuiltinOperator.RELU), code(schema.BuiltinOperator.ADD)]
    model.subgraphs, model.signatureDefs = [graph], [sig]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflite_seed() -> mutators.Model:
    return mutators.Model("tiny_tflite", "tflite", (("model.tflite", tflite_bytes()),), "model.tflite")


def openvino_seed(work: Path) -> mutators.Model:
    """The MNIST asset as an OpenVINO IR (written once into ``work``)."""
    import openvino as ov

    xml = work / "mnist_ir" / "model.xml"
    if not xml.exists():
        xml.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(ov.convert_model(str(MNIST)), str(xml), compress_to_fp16=False)
    files = (("model.bin", xml.with_suffix(".bin").read_bytes()), ("model.xml", xml.read_bytes()))
    return mutators.Model("mnist_ir", "openvino", files, "model.xml")


def write(files: dict[str, bytes], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
