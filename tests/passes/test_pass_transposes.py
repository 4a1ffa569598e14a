"""eliminate-transposes: merge, cancel, and push through element-wise ops so pairs meet."""

from __future__ import annotations

import numpy as np

import models

PASSES = ["shape-inference", "eliminate-transposes", "eliminate-identity", "remove-unused"]
HEAD = '<ir_version: 8, opset_import: ["" : 17]>'


def test_inverse_pair_across_unary_ops_cancels() -> None:
    model = models.parse(f"""{HEAD}
        t (float[1,3,4,5] x) => (float[1,3,4,5] y) {{
            a = Transpose<perm = [0, 2, 3, 1]>(x)
            b = Relu(a)
            c = Sigmoid(b)
            y = Transpose<perm = [0, 3, 1, 2]>(c)
        }}""")
    out, report = models.run_optimizer(model, PASSES)
    assert models.op_types(out) == ["Relu", "Sigmoid"]
    assert report.nodes_before == 4 and report.nodes_after == 2  # type: ignore[attr-defined]


def test_consecutive_transposes_merge() -> None:
    model = models.parse(f"""{HEAD}
        t (float[2,3,4] x) => (float[4,2,3] y) {{
            a = Transpose<perm = [1, 0, 2]>(x)
            y = Transpose<perm = [2, 1, 0]>(a)
        }}""")
    out, _ = models.run_optimizer(model, PASSES)
    assert models.op_types(out) == ["Transpose"]


def test_binary_with_both_sides_transposed() -> None:
    model = models.parse(f"""{HEAD}
        t (float[2,3,4] x, float[2,3,4] z) => (float[2,3,4] y) {{
            a = Transpose<perm = [2, 0, 1]>(x)
            b = Transpose<perm = [2, 0, 1]>(z)
            s = Add(a, b)
            y = Transpose<perm = [1, 2, 0]>(s)
        }}""")
    out, _ = models.run_optimizer(model, PASSES)
    assert models.op_types(out) == ["Add"]


def test_binary_with_per_channel_constant() -> None:
    """NHWC bias add between a layout transpose pair (the converter pattern of the talk's slide 21)."""
    model = models.build(
        f"""{HEAD}
        t (float[1,3,4,5] x) => (float[1,3,4,5] y) {{
            a = Transpose<perm = [0, 2, 3, 1]>(x)
            b = Mul(a, k)
            c = Sub(bias, b)
            y = Transpose<perm = [0, 3, 1, 2]>(c)
        }}""",
        k=(3,),
        bias=(1, 1, 5, 3),
    )
    out, _ = models.run_optimizer(model, PASSES)
    assert models.op_types(out) == ["Mul", "Sub"]


def test_transpose_with_two_consumers_is_not_duplicated() -> None:
    model = models.parse(f"""{HEAD}
        t (float[2,3] x) => (float[3,2] y, float[3,2] z) {{
            a = Transpose<perm = [1, 0]>(x)
            y = Relu(a)
            z = Sigmoid(a)
        }}""")
    out, report = models.run_optimizer(model, PASSES)
    assert sorted(models.op_types(out)) == ["Relu", "Sigmoid", "Transpose"]
    assert report.nodes_after == report.nodes_before  # type: ignore[attr-defined]


def test_enlarging_constant_blocks_the_push() -> None:
    model = models.build(
        f"""{HEAD}
        t (float[2,3] x) => (float[4,3,2] y) {{
            a = Transpose<perm = [1, 0]>(x)
            y = Add(a, k)
        }}""",
        k=np.ones((4, 3, 2), np.float32),
    )
    out, _ = models.run_optimizer(model, PASSES)
    assert models.op_types(out) == ["Transpose", "Add"]
