"""Erf → builtins (A&S 7.1.26): the error bound on a dense grid of the whole real line against ``math.erf``, the
rewritten graph in ONNX Runtime, and a GELU model judged by the comparator at the fp32 tolerance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

import models
from modelport.backends import open_runner
from modelport.formats import Precision
from modelport.rules.erf import AS_BOUND, erf_approx, erf_rules
from modelport.verify.comparator import Subject, check, run
from modelport.verify.tolerance import Tolerance

#: float32 evaluation adds rounding to the handbook's 1.5e-7 (see the module docstring)
FP32_BOUND = 6e-7


def _grid() -> np.ndarray:
    """Dense on [-6, 6] (where erf is not ±1 in float32), log-spaced out to ±1e30, and the special values."""
    dense = np.linspace(-6.0, 6.0, 400_001)
    tails = np.geomspace(6.0, 1e30, 2_000)
    return np.concatenate([dense, tails, -tails, [0.0, -0.0, np.inf, -np.inf]])


def _exact(x: np.ndarray) -> np.ndarray:
    return np.array([math.erf(v) for v in x.tolist()])


def test_bound_in_float64_is_the_handbooks() -> None:
    x = _grid()
    err = np.abs(erf_approx(x) - _exact(x))
    assert err.max() <= AS_BOUND
    assert err.max() > 1e-8  # an approximation, not erf itself: the test can see the difference


def _erf_model(shape: str = "N") -> onnx.ModelProto:
    return onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        e (float[{shape}] x) => (float[{shape}] y) {{
            y = Erf(x)
        }}
    """)


def _rewritten(proto: onnx.ModelProto) -> onnx.ModelProto:
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))  # the rule needs Erf's dtype
    assert erf_rules().apply_to_model(model) == 1
    out = ir.serde.serialize_model(model)
    onnx.checker.check_model(out, full_check=True)
    assert "Erf" not in {n.op_type for n in out.graph.node}
    return out


def test_rewritten_graph_in_float32_within_bound(tmp_path: Path) -> None:
    src = models.save(_rewritten(_erf_model()), tmp_path / "erf.onnx")
    x = _grid().astype(np.float32)
    with open_runner("onnxruntime", src) as runner:
        got = runner.infer({"x": x})["y"].astype(np.float64)
    err = np.abs(got - _exact(x.astype(np.float64)))
    assert err.max() <= FP32_BOUND, err.max()
    np.testing.assert_allclose(got[-4:], [0.0, 0.0, 1.0, -1.0])  # the limits are exact
    assert np.all(np.abs(got) <= 1.0)
    np.testing.assert_allclose(got, erf_approx(x).astype(np.float64), atol=2e-7)  # numpy mirror = graph


def test_only_float_erf_is_rewritten() -> None:
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        e (int32[N] x) => (int32[N] y) {
            y = Erf(x)
        }
    """)
    assert erf_rules().apply_to_model(ir.serde.deserialize_model(proto)) == 0


def test_gelu_model_within_fp32_tolerance(tmp_path: Path) -> None:
    """BERT's GELU, x · 0.5 · (1 + erf(x/√2)), rewritten: the comparator's fp32 policy passes it."""
    proto = models.gelu_mlp("N", 64, 32)
    src = models.save(proto, tmp_path / "gelu.onnx")
    dst = models.save(_rewritten(proto), tmp_path / "gelu_builtins.onnx")
    feeds = {"x": (np.random.default_rng(0).standard_normal((16, 64)) * 3).astype(np.float32)}
    ref, cand = run(Subject(src, "onnxruntime"), feeds), run(Subject(dst, "onnxruntime"), feeds)
    comparison = check(ref, cand, Tolerance.for_precision(Precision.FP32))
    assert comparison.passed, comparison.reason()
    assert 0 < comparison.max_abs < 1e-5  # |x| ≲ 40 here: |x|/2 · 6e-7 ≲ 1.2e-5 at worst, far less in practice
