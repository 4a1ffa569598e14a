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


# --- optimizer test models and helpers (modelport optimize) -------------------------------------------------


def _rand(rng: np.random.Generator, *shape: int, low: float | None = None) -> np.ndarray:
    if low is not None:
        return rng.uniform(low, low + 1.0, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def build(text: str, seed: int = 0, **shapes: tuple[int, ...] | np.ndarray) -> onnx.ModelProto:
    """Parse ``text`` and add float32 initializers: a shape tuple gets N(0, 1) values, an array is used as is."""
    model = onnx.parser.parse_model(text)
    rng = np.random.default_rng(seed)
    arrays = {k: v if isinstance(v, np.ndarray) else _rand(rng, *v) for k, v in shapes.items()}
    return with_initializers(model, **arrays)


def offset_mlp(batch: int | str = "N", offset: float = 1000.0, seed: int = 0) -> onnx.ModelProto:
    """x[N,16] → MatMul → + offset → − offset → MatMul → y[N,8]: an activation far from zero.

    Per-tensor INT8 of ``shifted`` (range ≈ [0, offset], zero included) has a step of ≈ offset/255, which erases
    the detail of ``h`` that the subtraction brings back: the quantized model disagrees with FP32 until both
    additions run in float.
    """
    b = str(batch)
    model = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        offset_mlp (float[{b},16] x) => (float[{b},8] y) {{
            h = MatMul(x, w1)
            shifted = Add(h, up)
            back = Add(shifted, down)
            y = MatMul(back, w2)
        }}
    """)
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type.lower()}_{i}"
    rng = np.random.default_rng(seed)
    return with_initializers(
        model,
        w1=rng.standard_normal((16, 16)).astype(np.float32),
        up=np.full(16, offset, np.float32),
        down=np.full(16, -offset, np.float32),
        w2=rng.standard_normal((16, 8)).astype(np.float32),
    )


def gelu_mlp(batch: int | str = "N", inputs: int = 64, outputs: int = 32) -> onnx.ModelProto:
    """x @ w then GELU written out as exported: ``h · (1 + erf(h / √2)) · 0.5`` (the pattern with ``Erf``)."""
    return build(
        f"""
        <ir_version: 8, opset_import: ["" : 17]>
        gelu (float[{batch}, {inputs}] x) => (float[{batch}, {outputs}] y) {{
            h = MatMul(x, w)
            s = Div(h, sqrt2)
            e = Erf(s)
            p = Add(e, one)
            m = Mul(h, p)
            y = Mul(m, half)
        }}
        """,
        w=(inputs, outputs),
        sqrt2=np.array(np.sqrt(2), np.float32),
        one=np.array(1, np.float32),
        half=np.array(0.5, np.float32),
    )


def bn_params(channels: int, seed: int = 1) -> dict[str, np.ndarray]:
    """scale/bias/mean/var initializers of a BatchNormalization over ``channels``."""
    rng = np.random.default_rng(seed)
    return {
        "scale": _rand(rng, channels, low=0.5),
        "bias": _rand(rng, channels),
        "mean": _rand(rng, channels),
        "var": _rand(rng, channels, low=0.5),
    }


def matmul_bn(with_bias: bool = True) -> onnx.ModelProto:
    """x[N,8] → MatMul(8×6) [+ b] → BatchNormalization → y (BatchNorm1d after Linear)."""
    add = "h = Add(m, b)" if with_bias else ""
    extra = {"b": (6,)} if with_bias else {}
    return build(
        f"""
        <ir_version: 8, opset_import: ["" : 17]>
        mbn (float[N,8] x) => (float[N,6] y) {{
            m = MatMul(x, w)
            {add}
            y = BatchNormalization({"h" if with_bias else "m"}, scale, bias, mean, var)
        }}
        """,
        w=(8, 6),
        **extra,
        **bn_params(6),
    )


def bn_scale_shift() -> onnx.ModelProto:
    """Caffe2-style BN followed by per-channel Mul and Add, then Relu."""
    return build(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        bss (float[1,4,5,5] x) => (float[1,4,5,5] y) {
            n = BatchNormalization(x, scale, bias, mean, var)
            s = Mul(n, k)
            t = Add(s, c)
            y = Relu(t)
        }
        """,
        k=(4, 1, 1),
        c=(1, 4, 1, 1),
        **bn_params(4),
    )


def standalone_bn() -> onnx.ModelProto:
    """A BatchNormalization after Relu (nothing to fold it into)."""
    return build(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        sbn (float[1,4,5,5] x) => (float[1,4,5,5] y) {
            r = Relu(x)
            y = BatchNormalization(r, scale, bias, mean, var)
        }
        """,
        **bn_params(4),
    )


def ort_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model in ONNX Runtime with all of its own graph optimizations disabled."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return list(sess.run(None, feeds))


def feeds_for(model: onnx.ModelProto, seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
    """Seeded float feeds for every non-initializer input (dynamic dims → ``batch``)."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in inp.type.tensor_type.shape.dim]
        feeds[inp.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def op_types(model: onnx.ModelProto) -> list[str]:
    """Op types of the main graph, in order."""
    return [n.op_type for n in model.graph.node]


def run_optimizer(
    model: onnx.ModelProto,
    passes: list[str] | None,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    batch: int | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    opset: int | None = None,
) -> tuple[onnx.ModelProto, object]:
    """Optimize with ``passes``, then check: onnx.checker (full), same outputs in ORT (own optimizations off),
    and idempotence (running the same passes again modifies nothing). Returns the optimized model and report."""
    import onnx_ir as ir

    from modelport.passes import OptimizeOptions, optimize

    names = None if passes is None else tuple(passes)
    shapes = tuple((input_shapes or {}).items())
    options = OptimizeOptions(passes=names, input_shapes=shapes, batch=batch, opset=opset)
    result = optimize(ir.serde.deserialize_model(model), options=options)
    out = ir.serde.serialize_model(result.model)
    onnx.checker.check_model(out, full_check=True)
    feeds = feeds_for(out, batch=batch or 1)
    for ref, got in zip(ort_outputs(model, feeds), ort_outputs(out, feeds), strict=True):
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol)
    again = optimize(ir.serde.deserialize_model(out), options=OptimizeOptions(passes=names)).report
    changed = [p.name for p in again.passes if p.modified]
    assert not changed, f"second run still modified: {changed}"
    return out, result.report
