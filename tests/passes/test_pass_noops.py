"""eliminate-noops (+ eliminate-identity): every kind of no-op disappears, numerics unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import models

PASSES = ["shape-inference", "fold-constants", "eliminate-noops", "eliminate-identity", "remove-unused"]
HEAD = '<ir_version: 8, opset_import: ["" : 17]>'


def _model(body: str, out_shape: str = "[2,3,4]", **inits: np.ndarray) -> object:
    text = f"{HEAD}\nnoop (float[2,3,4] x) => (float{out_shape} y) {{\n r = Relu(x)\n {body}\n}}"
    return models.build(text, **inits)


CASES = {
    "identity": ("y = Identity(r)", {}),
    "dropout": ("y = Dropout(r)", {}),
    "mul-by-ones-tensor": ("y = Mul(r, one)", {"one": np.ones((3, 1), np.float32)}),
    "mul-ones-first": ("y = Mul(one, r)", {"one": np.ones((4,), np.float32)}),
    "add-zeros": ("y = Add(r, zero)", {"zero": np.zeros((1, 3, 4), np.float32)}),
    "sub-zero": ("y = Sub(r, zero)", {"zero": np.zeros((), np.float32)}),
    "div-one": ("y = Div(r, one)", {"one": np.ones((1,), np.float32)}),
    "cast-same-type": ("y = Cast<to = 1>(r)", {}),
    "reshape-same-shape": ("y = Reshape(r, shape)", {"shape": np.array([2, 3, 4], np.int64)}),
    "transpose-identity-perm": ("y = Transpose<perm = [0, 1, 2]>(r)", {}),
    "expand-same-shape": ("y = Expand(r, shape)", {"shape": np.array([2, 3, 4], np.int64)}),
    "pad-zero": ("y = Pad(r, pads)", {"pads": np.zeros(6, np.int64)}),
    "slice-everything": (
        "y = Slice(r, starts, ends, axes)",
        {
            "starts": np.array([0, 0], np.int64),
            "ends": np.array([100, 4], np.int64),
            "axes": np.array([1, 2], np.int64),
        },
    ),
    "concat-one-input": ("y = Concat<axis = 1>(r)", {}),
    "squeeze-nothing": ("y = Flatten<axis = 1>(r)", {}),
}


@pytest.mark.parametrize("case", sorted(set(CASES) - {"squeeze-nothing"}))
def test_noop_is_removed(case: str) -> None:
    body, inits = CASES[case]
    out, report = models.run_optimizer(_model(body, **inits), PASSES)  # type: ignore[arg-type]
    assert models.op_types(out) == ["Relu"], case
    assert report.nodes_before == 2 and report.nodes_after == 1  # type: ignore[attr-defined]
    assert any(p.modified for p in report.passes)  # type: ignore[attr-defined]


def test_legacy_dropout_with_unused_mask_is_removed() -> None:
    text = """
        <ir_version: 4, opset_import: ["" : 9]>
        d (float[2,3] x) => (float[2,3] y) {
            r = Relu(x)
            y, mask = Dropout<ratio = 0.5>(r)
        }
    """
    out, _ = models.run_optimizer(models.parse(text), PASSES)
    assert models.op_types(out) == ["Relu"]


def test_broadcasting_neutral_is_kept() -> None:
    """x[2,3,4] * ones[5,2,3,4] changes the shape: not a no-op."""
    model = _model("y = Mul(r, one)", "[5,2,3,4]", one=np.ones((5, 2, 3, 4), np.float32))
    out, report = models.run_optimizer(model, PASSES)  # type: ignore[arg-type]
    assert models.op_types(out) == ["Relu", "Mul"]
    assert not any(p.modified for p in report.passes if p.name == "eliminate-noops")  # type: ignore[attr-defined]


def test_non_neutral_constant_is_kept() -> None:
    model = _model("y = Mul(r, k)", k=np.full((4,), 1.5, np.float32))
    out, _ = models.run_optimizer(model, PASSES)  # type: ignore[arg-type]
    assert models.op_types(out) == ["Relu", "Mul"]
