"""abs-to-sqrt-square, pow-to-mul, neg-to-mul: matches, refusals (with the reason), checker, and the numerics in
ONNX Runtime against the original graph (bit for bit where the maths says exact, the comparator's fp32 policy
otherwise)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnxscript.rewriter import RewriteRuleSet

from modelport.formats import Precision
from modelport.rules.math_ops import PowToMul, mul_count, pow_exponent
from modelport.verify.comparator import compare_outputs
from modelport.verify.tolerance import Tolerance
from rule_helpers import apply_rule, op_counts, run_one


def _model(body: str, x_type: str = "float[N]", y_type: str = "float[N]", inits: str = "") -> onnx.ModelProto:
    return onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g ({x_type} x) => ({y_type} y) {inits} {{
            {body}
        }}
    """)


def _apply(proto: onnx.ModelProto, name: str) -> tuple[int, onnx.ModelProto]:
    return apply_rule(name, proto)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return run_one(proto, x)


def _ops(proto: onnx.ModelProto) -> Counter[str]:
    return op_counts(proto)


# --- abs-to-sqrt-square ---------------------------------------------------------------------------------------


def test_abs_is_bit_exact_over_the_ordinary_range() -> None:
    count, out = _apply(_model("y = Abs(x)"), "abs-to-sqrt-square")
    assert count == 1 and _ops(out) == Counter({"Mul": 1, "Sqrt": 1})
    x = np.geomspace(1.1e-19, 1.8e19, 1_000_001).astype(np.float32)
    x = np.concatenate([x, -x, [0.0, -0.0, np.inf, -np.inf]]).astype(np.float32)
    got = _run(out, x)
    assert np.array_equal(got, np.abs(x))  # bit for bit: sqrt(fl(x·x)) = |x| without over/underflow
    assert np.isnan(_run(out, np.array([np.nan], np.float32))).all()


def test_abs_outside_the_ordinary_range_is_what_the_docstring_says() -> None:
    """The honest limits: x·x overflows above ≈1.8e19 (inf), underflows below ≈1.1e-19 (inexact, then 0)."""
    _, out = _apply(_model("y = Abs(x)"), "abs-to-sqrt-square")
    got = _run(out, np.array([2e19, -1e30, 3.4e38, 1e-20, 1e-24], np.float32))
    assert np.isinf(got[:3]).all()  # |x| is finite: overflow of x·x
    assert got[3] != np.float32(1e-20) and abs(got[3] - 1e-20) < 1e-19  # subnormal x·x: a few bits lost
    assert got[4] == 0.0  # x·x underflows to 0
    assert np.array_equal(_run(out, np.array([1.8e19, 1.1e-19], np.float32)), np.array([1.8e19, 1.1e-19], np.float32))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_abs_becomes_x_times_sign(dtype: str) -> None:
    proto = _model("y = Abs(x)", f"{dtype}[N]", f"{dtype}[N]")
    count, out = _apply(proto, "abs-to-sqrt-square")
    assert count == 1 and _ops(out) == Counter({"Mul": 1, "Sign": 1})
    info = np.iinfo(np.int32 if dtype == "int32" else np.int64)
    x = np.concatenate([np.arange(-1000, 1001), [info.max, info.min, info.min + 1]]).astype(info.dtype)
    assert np.array_equal(_run(out, x), _run(proto, x))  # INT_MIN wraps in both


def test_abs_refuses_other_dtypes() -> None:
    proto = _model("y = Abs(x)", "int8[N]", "int8[N]")
    count, out = _apply(proto, "abs-to-sqrt-square")
    assert count == 0 and _ops(out) == Counter({"Abs": 1})


# --- pow-to-mul -----------------------------------------------------------------------------------------------


def _pow_model(exponent: str, dtype: str = "float", etype: str = "float") -> onnx.ModelProto:
    return _model("y = Pow(x, e)", f"{dtype}[N]", f"{dtype}[N]", f"<{etype} e = {{{exponent}}}>")


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -8])
def test_pow_becomes_a_mul_chain_within_a_few_ulp(n: int) -> None:
    proto = _pow_model(f"{float(n)}")
    count, out = _apply(proto, "pow-to-mul")
    expected = Counter({"Mul": mul_count(abs(n))}) + Counter({"Reciprocal": int(n < 0)})
    assert count == 1 and _ops(out) == expected
    x = np.concatenate([np.linspace(-4, 4, 200_001), np.geomspace(1e-4, 1e4, 50_001)]).astype(np.float32)
    ref, got = _run(proto, x).astype(np.float64), _run(out, x).astype(np.float64)
    finite = np.isfinite(ref) & (ref != 0)
    assert np.array_equal(np.isfinite(ref), np.isfinite(got))
    ulps = np.abs(got[finite] - ref[finite]) / np.spacing(np.abs(ref[finite]).astype(np.float32))
    assert ulps.max() <= abs(n) - 1 + 1.5, ulps.max()  # (n − 1) ulp for the chain, + pow's and Reciprocal's
    comparison = compare_outputs({"y": ref}, {"y": got}, Tolerance.for_precision(Precision.FP32))
    assert comparison.passed, comparison.reason()


def test_mul_counts_are_the_documented_ones() -> None:
    assert [mul_count(n) for n in range(2, 9)] == [1, 2, 2, 3, 3, 4, 3]


def test_pow_one_is_identity_and_integer_exponents_and_bases_work() -> None:
    count, out = _apply(_pow_model("1.0"), "pow-to-mul")
    assert count == 1 and _ops(out) == Counter({"Identity": 1})
    proto = _pow_model("3", dtype="int64", etype="int64")
    count, out = _apply(proto, "pow-to-mul")
    assert count == 1 and _ops(out) == Counter({"Mul": 2})
    x = np.arange(-50, 51, dtype=np.int64)
    assert np.array_equal(_run(out, x), x**3)


def _pow_check(proto: onnx.ModelProto) -> tuple[int | None, str]:
    """What the rule's check decides for the model's Pow node: the exponent, or None and the reason it reports."""
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    x, n = next(iter(model.graph)).inputs
    assert x is not None and n is not None
    return pow_exponent(x, n)


@pytest.mark.parametrize(
    ("exponent", "etype", "reason"),
    [
        ("0.5", "float", "not integer-valued"),
        ("2.5", "float", "not integer-valued"),
        ("0.0", "float", "exponent is 0"),
        ("9.0", "float", "exceeds 8"),
        ("-12.0", "float", "exceeds 8"),
    ],
)
def test_pow_refusals_say_why(exponent: str, etype: str, reason: str) -> None:
    proto = _pow_model(exponent, etype=etype)
    count, out = _apply(proto, "pow-to-mul")
    assert count == 0 and _ops(out) == Counter({"Pow": 1})
    k, why = _pow_check(proto)
    assert k is None and reason in why


def test_pow_refuses_non_constant_non_scalar_and_negative_integer_powers() -> None:
    runtime_proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N] x, float e) => (float[N] y) { y = Pow(x, e) }
    """)
    vector = _model("y = Pow(x, e)", "float[N]", "float[N]", "<float[2] e = {2.0, 2.0}>")
    negative_int = _pow_model("-2", dtype="int64", etype="int64")
    for proto, why in ((runtime_proto, "not a constant"), (vector, "not a scalar"), (negative_int, "Reciprocal")):
        count, out = _apply(proto, "pow-to-mul")
        assert count == 0 and _ops(out) == Counter({"Pow": 1})
        assert why in _pow_check(proto)[1]


def test_pow_rule_class_is_a_plain_rewrite_rule() -> None:
    assert RewriteRuleSet([PowToMul.rule()]).apply_to_model(ir.serde.deserialize_model(_pow_model("2.0"))) == 1


# --- neg-to-mul -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float", "double", "int32", "int64"])
def test_neg_becomes_mul_by_minus_one_exactly(dtype: str) -> None:
    proto = _model("y = Neg(x)", f"{dtype}[N]", f"{dtype}[N]")
    count, out = _apply(proto, "neg-to-mul")
    assert count == 1 and _ops(out) == Counter({"Mul": 1})
    if dtype in ("float", "double"):
        x = np.array([0.0, -0.0, 1.5, -3e38, np.inf, -np.inf, 1e-45], np.float32 if dtype == "float" else np.float64)
    else:
        info = np.iinfo(np.int32 if dtype == "int32" else np.int64)
        x = np.array([0, 1, -7, info.max, info.min], info.dtype)
    ref, got = _run(proto, x), _run(out, x)
    assert np.array_equal(ref.view(f"u{ref.itemsize}"), got.view(f"u{got.itemsize}"))  # bits, so −0 counts


def test_neg_refuses_int8() -> None:
    count, out = _apply(_model("y = Neg(x)", "int8[N]", "int8[N]"), "neg-to-mul")
    assert count == 0 and _ops(out) == Counter({"Neg": 1})
