"""The source's own precision sets the floor: an int8 model compared across runtimes is judged as int8.

The shipped MNIST ConvNet is quantized to QDQ int8 for ONNX Runtime; ONNX Runtime and OpenVINO requantize in their
own ways, so their outputs differ by up to a quantization step, which the fp32 policy would reject. A broken int8
model (two output channels swapped) must still fail.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from modelport.assets import default_model_path
from modelport.benchmark.timing import BenchConfig
from modelport.formats import Precision
from modelport.quantization import QuantizeOptions, QuantTypes, quantize
from modelport.verify.compare import CompareOptions, compare
from modelport.verify.precision import detect_precision
from modelport.verify.tolerance import Tolerance

SHAPES = CompareOptions(input_shapes=(("image", (64, 1, 28, 28)),))


@pytest.fixture(scope="module")
def mnist_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8")
    options = QuantizeOptions(
        samples=64, eval_samples=64, types=QuantTypes.U8S8, bench=BenchConfig(warmup=1, iterations=3)
    )
    report = quantize(
        default_model_path(), out, runtime="onnxruntime", calib="mnist", eval="mnist", options=options, name="mnist"
    )
    return Path(report.artifact)


def _swap_classes(src: Path, dst: Path, a: int = 3, b: int = 8) -> Path:
    """The int8 model with two rows of its last layer swapped: a channel-order bug."""
    model = onnx.load(str(src))
    last = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    for name in last.input[1:]:
        quantized = producers[name].input[0] if name in producers else name
        arr = onnx.numpy_helper.to_array(inits[quantized]).copy()
        axis = 0 if arr.shape[0] == 10 else -1
        idx = [slice(None)] * arr.ndim
        idx[axis] = [b, a]
        src_idx = list(idx)
        src_idx[axis] = [a, b]
        arr[tuple(src_idx)] = arr[tuple(idx)].copy()
        inits[quantized].CopyFrom(onnx.numpy_helper.from_array(arr, quantized))
    onnx.save(model, str(dst))
    return dst


def test_int8_source_judged_at_int8_across_runtimes(mnist_int8: Path) -> None:
    assert detect_precision(mnist_int8) is Precision.INT8
    assert detect_precision(default_model_path()) is Precision.FP32
    report = compare([mnist_int8], "onnxruntime,openvino", options=SHAPES)  # asked for fp32
    (c,) = report.comparisons
    assert c.tolerance == Tolerance.for_precision("int8"), "the int8 file sets the floor"
    assert report and c.passed, c.reason()
    (m,) = c.outputs
    assert m.atol_eff == pytest.approx(c.tolerance.scale * m.ref_peak) and m.max_abs <= m.atol_eff
    assert "int8:" in str(c.tolerance) and "atol_eff=" in str(c.tolerance)


def test_explicit_tolerance_is_not_raised(mnist_int8: Path) -> None:
    strict = Tolerance.for_precision("fp32").with_overrides(rtol=0.0, atol=0.0)
    report = compare([mnist_int8], "onnxruntime,openvino", options=dataclasses.replace(SHAPES, tolerance=strict))
    assert report.comparisons[0].tolerance == strict


def test_broken_int8_model_still_fails(mnist_int8: Path, tmp_path: Path) -> None:
    broken = _swap_classes(mnist_int8, tmp_path / "broken.int8.onnx")
    report = compare([mnist_int8, broken], "onnxruntime,openvino", options=SHAPES)
    same, broken_ort, broken_ov = report.comparisons
    assert same.passed and not report
    for c in (broken_ort, broken_ov):
        assert c.tolerance.precision is Precision.INT8 and not c.passed
        assert c.outputs[0].max_abs > c.outputs[0].atol_eff
    assert np.isfinite(broken_ov.outputs[0].max_abs)
