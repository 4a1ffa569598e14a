"""fold-batchnorm (Conv, MatMul, MatMul+Add, Mul/Add after BN) and the opt-in decompose-batchnorm."""

from __future__ import annotations

import models
from modelport.passes import OptimizeOptions, optimize

PASSES = ["shape-inference", "fold-batchnorm", "remove-unused"]


def test_conv_bn_folds_into_conv() -> None:
    out, report = models.run_optimizer(models.conv_bn(), PASSES, batch=2)
    assert models.op_types(out) == ["Conv", "Relu"]
    stats = {p.name: p for p in report.passes}  # type: ignore[attr-defined]
    assert stats["fold-batchnorm"].modified
    assert (stats["fold-batchnorm"].nodes_before, stats["fold-batchnorm"].nodes_after) == (3, 2)


def test_matmul_add_bn_becomes_one_gemm() -> None:
    out, report = models.run_optimizer(models.matmul_bn(with_bias=True), PASSES, batch=3)
    assert models.op_types(out) == ["Gemm"]
    assert report.nodes_before == 3 and report.nodes_after == 1  # type: ignore[attr-defined]


def test_matmul_bn_without_bias_becomes_gemm() -> None:
    out, _ = models.run_optimizer(models.matmul_bn(with_bias=False), PASSES)
    assert models.op_types(out) == ["Gemm"]


def test_mul_add_after_bn_fold_into_its_parameters() -> None:
    out, report = models.run_optimizer(models.bn_scale_shift(), PASSES)
    assert models.op_types(out) == ["BatchNormalization", "Relu"]
    assert report.nodes_before - report.nodes_after == 2  # type: ignore[attr-defined]


def test_standalone_bn_is_left_alone_by_default() -> None:
    result = optimize(models.save(models.standalone_bn(), _tmp("sbn")), options=OptimizeOptions(verify=True))
    assert result.report.ops_after.get("BatchNormalization") == 1


def test_decompose_batchnorm_is_opt_in() -> None:
    out, report = models.run_optimizer(models.standalone_bn(), ["shape-inference", "decompose-batchnorm"])
    assert models.op_types(out) == ["Relu", "Mul", "Add"]
    stats = {p.name: p for p in report.passes}  # type: ignore[attr-defined]
    assert stats["decompose-batchnorm"].modified
    assert (stats["decompose-batchnorm"].nodes_before, stats["decompose-batchnorm"].nodes_after) == (2, 3)


def _tmp(name: str):
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="mp-")) / f"{name}.onnx"
