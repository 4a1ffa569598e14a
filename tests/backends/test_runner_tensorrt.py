"""TensorRT: the runner and the ONNX → engine converter on a GPU; the clear errors without one."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends import open_runner
from modelport.errors import RuntimeUnavailable


def test_missing_tensorrt_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 16)
    runner = open_runner("trt", engine)
    with pytest.raises(RuntimeUnavailable, match=r"TensorRT is not installed .*modelport\[tensorrt\]"):
        runner.load()
    from modelport.conversion import convert

    src = models.save(models.mlp(), tmp_path / "mlp.onnx")
    with pytest.raises(RuntimeUnavailable, match="TensorRT is not installed"):
        convert(src, "tensorrt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime(tmp_path: Path, precision: str) -> None:
    from modelport.conversion import ChainOptions, ConvertOptions, convert
    from modelport.formats import Precision

    src = models.save(models.conv_bn(), tmp_path / "convbn.onnx")
    artifact = ConvertOptions(precision=Precision.parse(precision), input_shapes=(("image", (2, 3, 8, 8)),))
    report = convert(src, "tensorrt", tmp_path / precision, options=ChainOptions(artifact))
    assert report.artifact.endswith("convbn.engine") and report.engine.startswith("tensorrt ")
    v = report.verification
    assert v is not None and v.passed
    # fp32: the builder clears TF32, so the fp32 tolerance holds; fp16 kernels round to an 11-bit mantissa
    assert v.max_abs < (1e-2 if precision == "fp16" else 1e-4)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with open_runner("onnxruntime", src) as ref:
        want = ref.infer({"image": x})["out"]
    with open_runner("tensorrt", report.artifact) as trt:
        got = trt.infer({"image": x})["out"]
        assert trt.info().executed_precision == precision
    np.testing.assert_allclose(
        got, want, rtol=1e-2 if precision == "fp16" else 1e-4, atol=1e-2 if precision == "fp16" else 1e-4
    )
