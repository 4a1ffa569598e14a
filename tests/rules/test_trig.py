"""approx-asin-acos-atan (A&S 4.4.46 / 4.4.49): the bound on dense grids of the whole domain against numpy's float64
functions, in float64 (the handbook's) and in float32 in ONNX Runtime (the registered one), NaN outside
[-1, 1] for asin/acos, the limits of atan, refusals, and a model judged by the comparator."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from modelport.formats import Precision
from modelport.rules.catalog import Exactness, RuleSettings, rule_spec
from modelport.rules.trig import FP32_BOUND, acos_approx, asin_approx, atan_approx
from modelport.verify.comparator import compare_outputs
from modelport.verify.tolerance import Tolerance
from rule_helpers import run_one

RULE = "approx-asin-acos-atan"


def _unit_grid() -> np.ndarray:
    return np.concatenate([np.linspace(-1.0, 1.0, 1_000_001), [1.0, -1.0, 0.0, -0.0]])


def _line_grid() -> np.ndarray:
    """Dense on [-64, 64], log-spaced out to the largest float32, and the infinities."""
    tails = np.geomspace(64.0, 3.4e38, 5_000)
    return np.concatenate([np.linspace(-64.0, 64.0, 1_000_001), tails, -tails, [np.inf, -np.inf, 0.0]])


CASES: list[tuple[str, Callable[[], np.ndarray], Callable[..., np.ndarray], Callable[[np.ndarray], np.ndarray]]] = [
    ("Asin", _unit_grid, np.arcsin, asin_approx),
    ("Acos", _unit_grid, np.arccos, acos_approx),
    ("Atan", _line_grid, np.arctan, atan_approx),
]


def _model(op: str, dtype: str = "float") -> onnx.ModelProto:
    return onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        t ({dtype}[N] x) => ({dtype}[N] y) {{
            y = {op}(x)
        }}
    """)


def _rewritten(proto: onnx.ModelProto, expected: int = 1) -> onnx.ModelProto:
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    assert rule_spec(RULE).factory(RuleSettings()).apply_to_model(model) == expected
    out = ir.serde.serialize_model(model)
    onnx.checker.check_model(out, full_check=True)
    return out


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return run_one(proto, x)


@pytest.mark.parametrize(("op", "grid", "exact", "approx"), CASES)
def test_bound_in_float64_is_the_handbooks(op: str, grid: Callable[[], np.ndarray], exact: Callable[..., np.ndarray],
                                           approx: Callable[[np.ndarray], np.ndarray]) -> None:  # fmt: skip
    x = grid()
    err = np.abs(approx(x) - exact(x))
    assert err.max() <= 2.5e-8  # A&S state 2e-8; their rounded 10-digit coefficients give 2.2e-8 (docstring)
    assert err.max() > 1e-9  # an approximation, not the function itself


@pytest.mark.parametrize(("op", "grid", "exact", "approx"), CASES)
def test_rewritten_graph_in_float32_within_bound(op: str, grid: Callable[[], np.ndarray],
                                                 exact: Callable[..., np.ndarray],
                                                 approx: Callable[[np.ndarray], np.ndarray]) -> None:  # fmt: skip
    proto = _model(op)
    out = _rewritten(proto)
    ops = Counter(n.op_type for n in out.graph.node)
    assert op not in ops and set(ops) <= set(rule_spec(RULE).adds)
    x = grid().astype(np.float32)
    got = _run(out, x).astype(np.float64)
    err = np.abs(got - exact(x.astype(np.float64)))
    assert err.max() <= FP32_BOUND, err.max()
    assert err.max() > 5e-8  # the test sees float32 rounding: it would fail a graph returning garbage near 0 …
    np.testing.assert_array_equal(got, approx(x).astype(np.float64))  # … and the numpy mirror is the graph
    original = _run(proto, x).astype(np.float64)
    comparison = compare_outputs({"y": original}, {"y": got}, Tolerance.for_precision(Precision.FP32))
    assert comparison.passed, comparison.reason()
    assert comparison.max_abs < 2 * FP32_BOUND


def test_registered_as_one_approximate_rule() -> None:
    spec = rule_spec(RULE)
    assert spec.removes == ("Asin", "Acos", "Atan")
    assert spec.exactness is Exactness.APPROX and spec.bound == FP32_BOUND


@pytest.mark.parametrize("op", ["Asin", "Acos"])
def test_outside_the_domain_gives_nan_like_the_original(op: str) -> None:
    proto = _model(op)
    out = _rewritten(proto)
    x = np.array([1.0000001, -1.0000001, 1.5, -2.0, 1e30, np.inf, -np.inf, np.nan], np.float32)
    assert np.isnan(_run(proto, x)).all()
    assert np.isnan(_run(out, x)).all()
    ends = _run(out, np.array([1.0, -1.0], np.float32)).astype(np.float64)
    np.testing.assert_allclose(ends, np.arcsin([1.0, -1.0]) if op == "Asin" else np.arccos([1.0, -1.0]), atol=3e-7)


def test_atan_limits_and_huge_values() -> None:
    out = _rewritten(_model("Atan"))
    x = np.array([np.inf, -np.inf, 3.4e38, -3.4e38, 1e20, 0.0], np.float32)
    got = _run(out, x).astype(np.float64)
    np.testing.assert_allclose(got[:5], np.arctan(x[:5].astype(np.float64)), atol=1e-7)
    assert got[5] == 0.0
    assert np.isnan(_run(out, np.array([np.nan], np.float32))).all()


def test_double_is_rewritten_and_within_the_handbooks_bound() -> None:
    out = _rewritten(_model("Atan", "double"))
    x = _line_grid()
    assert np.abs(_run(out, x) - np.arctan(x)).max() <= 2.5e-8


def test_refuses_float16_and_unknown_dtypes() -> None:
    proto = _model("Asin", "float16")
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    assert rule_spec(RULE).factory(RuleSettings()).apply_to_model(model) == 0
    assert [n.op_type for n in model.graph] == ["Asin"]


def test_all_three_in_one_model_within_fp32_tolerance() -> None:
    """A model with asin, acos and atan on the same input: three rewrites, no inverse trig op left, comparator ok."""
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        t (float[N, 8] x) => (float[N, 8] y) {
            c = Cos(x)
            s = Asin(c)
            a = Acos(c)
            t = Atan(x)
            sa = Add(s, a)
            y = Add(sa, t)
        }
    """)
    out = _rewritten(proto, expected=3)
    before = Counter(n.op_type for n in proto.graph.node)
    after = Counter(n.op_type for n in out.graph.node)
    assert before["Asin"] == before["Acos"] == before["Atan"] == 1
    assert not {"Asin", "Acos", "Atan"} & set(after)
    x = (np.random.default_rng(0).standard_normal((64, 8)) * 10).astype(np.float32)
    comparison = compare_outputs({"y": _run(proto, x)}, {"y": _run(out, x)}, Tolerance.for_precision(Precision.FP32))
    assert comparison.passed, comparison.reason()
    assert comparison.max_abs < 3 * FP32_BOUND
