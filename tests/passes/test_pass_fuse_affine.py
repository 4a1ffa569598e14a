"""fuse-conv-affine, matmul-add-to-gemm and fuse-pad-conv."""

from __future__ import annotations

import numpy as np

import models

HEAD = '<ir_version: 8, opset_import: ["" : 17]>'
AFFINE = ["shape-inference", "fuse-conv-affine", "remove-unused"]


def test_per_channel_mul_and_add_fold_into_conv() -> None:
    model = models.build(
        f"""{HEAD}
        ca (float[1,3,8,8] x) => (float[1,4,6,6] y) {{
            c = Conv(x, w, b)
            m = Mul(c, s)
            y = Add(t, m)
        }}""",
        w=(4, 3, 3, 3),
        b=(4,),
        s=(4, 1, 1),
        t=(1, 4, 1, 1),
    )
    out, report = models.run_optimizer(model, AFFINE)
    assert models.op_types(out) == ["Conv"]
    assert report.nodes_before == 3 and report.nodes_after == 1  # type: ignore[attr-defined]


def test_scalar_mul_folds_into_conv_without_bias() -> None:
    model = models.build(
        f"""{HEAD}
        ca (float[1,3,8,8] x) => (float[1,4,6,6] y) {{
            c = Conv(x, w)
            y = Mul(c, s)
        }}""",
        w=(4, 3, 3, 3),
        s=np.array(0.5, np.float32),
    )
    out, _ = models.run_optimizer(model, AFFINE)
    assert models.op_types(out) == ["Conv"]


def test_spatially_varying_constant_is_not_folded() -> None:
    model = models.build(
        f"""{HEAD}
        ca (float[1,3,8,8] x) => (float[1,4,6,6] y) {{
            c = Conv(x, w)
            y = Add(c, t)
        }}""",
        w=(4, 3, 3, 3),
        t=(1, 1, 6, 6),
    )
    out, _ = models.run_optimizer(model, AFFINE)
    assert models.op_types(out) == ["Conv", "Add"]


def test_gemm_mul_and_add_fold() -> None:
    model = models.build(
        f"""{HEAD}
        g (float[2,8] x) => (float[2,5] y) {{
            h = Gemm<transB = 1, beta = 0.5>(x, w, b)
            m = Mul(h, s)
            y = Add(m, t)
        }}""",
        w=(5, 8),
        b=(5,),
        s=(1, 5),
        t=(5,),
    )
    out, _ = models.run_optimizer(model, AFFINE)
    assert models.op_types(out) == ["Gemm"]


def test_matmul_mul_folds_and_matmul_add_becomes_gemm() -> None:
    model = models.build(
        f"""{HEAD}
        mm (float[3,8] x) => (float[3,5] y) {{
            h = MatMul(x, w)
            m = Mul(h, s)
            y = Add(m, b)
        }}""",
        w=(8, 5),
        s=(5,),
        b=(5,),
    )
    out, _ = models.run_optimizer(model, [*AFFINE, "matmul-add-to-gemm"])
    assert models.op_types(out) == ["Gemm"]


def test_pad_folds_into_conv() -> None:
    model = models.build(
        f"""{HEAD}
        pc (float[1,3,8,8] x) => (float[1,4,8,8] y) {{
            p = Pad(x, pads)
            y = Conv(p, w)
        }}""",
        w=(4, 3, 3, 3),
        pads=np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
    )
    out, _ = models.run_optimizer(model, ["shape-inference", "fuse-pad-conv", "remove-unused"])
    assert models.op_types(out) == ["Conv"]
    pads = next(a for a in out.graph.node[0].attribute if a.name == "pads")
    assert list(pads.ints) == [1, 1, 1, 1]
