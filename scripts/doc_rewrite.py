"""Reproduce every target rule on a small model and print the markdown table of docs/rewrite.md.

    .venv/bin/python scripts/doc_rewrite.py > /tmp/rules.md

Each rule runs through ``modelport.rewrite`` (verification on, the tolerance from its contract) on a model built
here from ONNX text — the same kinds of model the rule's own tests build (``tests/rules/``). The table gives the
ops that changed, the verification's worst max abs error and the tolerance it was judged at.
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelport import RewriteOptions, Tolerance, rewrite

HEAD = '<ir_version: 8, opset_import: ["" : 17]>'


def text(body: str, inputs: str = "float[N, 3, 8, 8] x", outputs: str = "float[N, 3, 8, 8] y") -> onnx.ModelProto:
    return onnx.parser.parse_model(f"{HEAD}\ng ({inputs}) => ({outputs}) {{\n{body}\n}}")


def with_inits(model: onnx.ModelProto, **arrays: np.ndarray) -> onnx.ModelProto:
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items())
    return model


def nms_model() -> onnx.ModelProto:
    """boxes [1, 20, 4] and scores [1, 2, 20] as inputs → NonMaxSuppression → the kept boxes."""
    nodes = [
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "k", "iou", "thr"], ["sel"]),
        helper.make_node("Gather", ["sel", "two"], ["idx"], axis=1),
        helper.make_node("Squeeze", ["boxes", "zero"], ["b2"]),
        helper.make_node("Gather", ["b2", "idx"], ["kept"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 20, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 20]),
        ],
        [helper.make_tensor_value_info("kept", TensorProto.FLOAT, [None, 4])],
        [
            numpy_helper.from_array(np.array([5], np.int64), "k"),
            numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
            numpy_helper.from_array(np.array([0.1], np.float32), "thr"),
            numpy_helper.from_array(np.array(2, np.int64), "two"),
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def examples() -> list[tuple[str, str, onnx.ModelProto, Tolerance | None]]:
    """(rule, what the model is, model, explicit tolerance or None)."""
    rng = np.random.default_rng(0)
    gelu = text(
        "h = Div(x, sqrt2)\ne = Erf(h)\np = Add(e, one)\nq = Mul(x, p)\ny = Mul(q, half)",
    )
    gelu = with_inits(
        gelu, sqrt2=np.float32(1.4142135), one=np.float32(1.0), half=np.float32(0.5)
    )  # exporters' exact GELU
    return [
        ("abs-to-sqrt-square", "y = Abs(x)", text("y = Abs(x)"), None),
        ("pow-to-mul", "y = Pow(x, 3)", with_inits(text("y = Pow(x, n)"), n=np.float32(3.0)), None),
        ("neg-to-mul", "y = Neg(x)", text("y = Neg(x)"), None),
        ("approx-asin-acos-atan", "y = Atan(x)", text("y = Atan(x)"), None),
        ("erf-decompose", "y = Erf(x)", text("y = Erf(x)"), None),
        ("erf-gelu-approx", "exact GELU x·0.5·(1 + erf(x/√2))", gelu, None),
        ("erf-gelu-fitted", "exact GELU x·0.5·(1 + erf(x/√2))", gelu, None),
        ("hardswish-decompose", "y = HardSwish(x)", text("y = HardSwish(x)"), None),
        ("hardswish-fuse", "y = x · HardSigmoid(x)", text("h = HardSigmoid<alpha=0.16666667>(x)\ny = Mul(x, h)"), None),
        (
            "prelu-to-relu",
            "y = PRelu(x, slope[3, 1, 1])",
            with_inits(text("y = PRelu(x, s)"), s=rng.uniform(0, 0.5, (3, 1, 1)).astype(np.float32)),
            None,
        ),
        ("leakyrelu-to-max", "y = LeakyRelu(x, 0.1)", text("y = LeakyRelu<alpha=0.1>(x)"), None),
        (
            "gathernd-to-gather",
            "y = GatherND(x, constant indices [2, 1])",
            with_inits(
                text("y = GatherND(x, i)", outputs="float[2, 3, 8, 8] y"),
                i=np.array([[1], [0]], np.int64),
            ),
            None,
        ),
        (
            "split-group-conv",
            "Conv 4 → 4 channels, group 2, 3×3",
            with_inits(
                text("y = Conv<group=2, pads=[1, 1, 1, 1]>(x, w, b)", "float[N, 4, 8, 8] x", "float[N, 4, 8, 8] y"),
                w=rng.normal(0, 0.3, (4, 2, 3, 3)).astype(np.float32),
                b=rng.normal(0, 0.1, (4,)).astype(np.float32),
            ),
            None,
        ),
        (
            "resize-no-align-corners",
            "bilinear ×2 Resize, align_corners",
            with_inits(
                text(
                    'y = Resize<mode="linear", coordinate_transformation_mode="align_corners">(x, , s)',
                    outputs="float[N, 3, 16, 16] y",
                ),
                s=np.array([1, 1, 2, 2], np.float32),
            ),
            Tolerance(rtol=0.0, atol=10.0),
        ),
        ("split-nms", "boxes, scores → NonMaxSuppression → Gather", nms_model(), None),
    ]


def main() -> int:
    print("| rule | model | ops before → after | max abs error | judged at |")
    print("|---|---|---|---:|---|")
    for rule, what, model, tolerance in examples():
        try:
            report = rewrite(model, options=RewriteOptions(rules=(rule,), tolerance=tolerance, batch=2)).report
        except Exception as exc:  # a rule not registered yet, or one failing: a row says so
            print(f"| `{rule}` | {what} | ✗ {type(exc).__name__}: {str(exc).splitlines()[0]} | | |")
            continue
        v = report.verification
        err = "—" if v is None else f"{v.max_abs:.2g}"
        basis = "—" if v is None else report.tolerance_basis
        if tolerance is not None and v is not None:
            basis = f"explicit atol {tolerance.atol:g} (the rule changes numerics: the error is the change)"
        changed = ", ".join(f"{op} {a}→{b}" for op, a, b in report.ops_changed)
        print(f"| `{rule}` | {what} | {changed} | {err} | {basis} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
