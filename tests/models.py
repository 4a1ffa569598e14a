"""Tiny models built in code for tests (onnx.parser text), saved to a tmp dir by the callers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
from onnx import numpy_helper


def parse(text: str) -> onnx.ModelProto:
    """Parse ONNX text and check the result."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def with_initializers(model: onnx.ModelProto, **arrays: np.ndarray) -> onnx.ModelProto:
    """Add initializers by name (the parser's text form is awkward for float data)."""
    for name, arr in arrays.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(arr), name))
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp(batch: int | str = "batch", seed: int = 0) -> onnx.ModelProto:
    """x[batch,8] → MatMul(8×16) + b → Relu → MatMul(16×4) → y[batch,4]."""
    b = str(batch)
    model = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        mlp (float[{b},8] x) => (float[{b},4] y) {{
            h = MatMul(x, w1)
            hb = Add(h, b1)
            r = Relu(hb)
            y = MatMul(r, w2)
        }}
    """)
    rng = np.random.default_rng(seed)
    return with_initializers(
        model,
        w1=rng.standard_normal((8, 16)).astype(np.float32),
        b1=rng.standard_normal(16).astype(np.float32),
        w2=rng.standard_normal((16, 4)).astype(np.float32),
    )


def two_inputs() -> onnx.ModelProto:
    """a[2,3] + b[2,3] and a * b: two inputs, two outputs."""
    return parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        two (float[2,3] a, float[2,3] b) => (float[2,3] s, float[2,3] p) {
            s = Add(a, b)
            p = Mul(a, b)
        }
    """)


def conv_bn(seed: int = 0) -> onnx.ModelProto:
    """image[N,3,8,8] → Conv(4,3x3) → BatchNormalization → Relu → out."""
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        convbn (float[N,3,8,8] image) => (float[N,4,6,6] out) {
            c = Conv(image, w, b)
            n = BatchNormalization(c, scale, bias, mean, var)
            out = Relu(n)
        }
    """)
    rng = np.random.default_rng(seed)
    return with_initializers(
        model,
        w=rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        b=rng.standard_normal(4).astype(np.float32),
        scale=rng.uniform(0.5, 1.5, 4).astype(np.float32),
        bias=rng.standard_normal(4).astype(np.float32),
        mean=rng.standard_normal(4).astype(np.float32),
        var=rng.uniform(0.5, 1.5, 4).astype(np.float32),
    )


def wide_mlp(inputs: int = 64, hidden: int = 256, outputs: int = 10, seed: int = 0) -> onnx.ModelProto:
    """x[batch,inputs] → MatMul + b → Relu → MatMul → y[batch,outputs]; enough weights (~75 KB) to matter."""
    model = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        wide (float[batch,{inputs}] x) => (float[batch,{outputs}] y) {{
            h = MatMul(x, w1)
            hb = Add(h, b1)
            r = Relu(hb)
            y = MatMul(r, w2)
        }}
    """)
    rng = np.random.default_rng(seed)
    return with_initializers(
        model,
        w1=(rng.standard_normal((inputs, hidden)) / np.sqrt(inputs)).astype(np.float32),
        b1=rng.standard_normal(hidden).astype(np.float32),
        w2=(rng.standard_normal((hidden, outputs)) / np.sqrt(hidden)).astype(np.float32),
    )


def mlp_reference(x: np.ndarray, model: onnx.ModelProto) -> np.ndarray:
    """numpy reference of :func:`mlp` / :func:`wide_mlp`: relu(x @ w1 + b1) @ w2, in float64."""
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    return np.maximum(x.astype(np.float64) @ w["w1"] + w["b1"], 0.0) @ w["w2"]


def fixed_batch_mlp(batch: int = 2) -> onnx.ModelProto:
    """:func:`mlp` with a fixed leading dimension."""
    return mlp(batch=batch)
