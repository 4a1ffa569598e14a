"""Converters: ONNX → OpenVINO IR (fp32, fp16), ONNX → ONNX fp16, routes, and verification failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import models
from modelport.backends import open_runner
from modelport.backends.onnxruntime import model_precision
from modelport.conversion import ChainOptions, ConversionReport, ConvertOptions, convert, get_converter
from modelport.errors import ConversionError, InvalidInputError, ModelportError, VerificationError
from modelport.formats import Format, Precision, sniff_format
from modelport.inspection import inspect
from modelport.verify.compare import Tolerance


@pytest.fixture(scope="module")
def src_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("convert-src")
    models.save(models.mlp(), d / "mlp.onnx")
    models.save(models.wide_mlp(), d / "wide.onnx")
    models.save(models.two_inputs(), d / "two.onnx")
    models.save(models.conv_bn(), d / "convbn.onnx")
    return d


def _opts(**artifact: Any) -> ChainOptions:
    """Chain options with these artifact options (``ConvertOptions`` fields)."""
    return ChainOptions(ConvertOptions(**artifact))


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_openvino_fp32(src_dir: Path, tmp_path: Path) -> None:
    report = convert(src_dir / "mlp.onnx", "openvino", tmp_path)
    assert isinstance(report, ConversionReport)
    assert report.source_format is Format.ONNX and report.target_format is Format.OPENVINO_IR
    assert report.precision is Precision.FP32
    assert report.artifact == str(tmp_path / "mlp.xml")
    assert report.files == (str(tmp_path / "mlp.xml"), str(tmp_path / "mlp.bin"))
    assert _files(tmp_path) == ["mlp.bin", "mlp.xml"]  # no staging directory left
    assert report.size_bytes == sum(Path(f).stat().st_size for f in report.files)
    assert report.engine.startswith("openvino ")
    assert sniff_format(report.artifact) is Format.OPENVINO_IR

    v = report.verification
    assert v is not None and v.passed
    assert v.tolerance == Tolerance.for_precision("fp32")
    assert v.max_abs <= 1e-5
    assert v.candidate == "mlp.xml@openvino/fp32"

    summary = inspect(report.artifact)
    assert summary.format is Format.OPENVINO_IR
    assert [s.name for s in summary.inputs] == ["x"]
    assert summary.inputs[0].shape == (None, 8)
    assert [s.name for s in summary.outputs] == ["y"]
    assert summary.outputs[0].shape == (None, 4)
    assert summary.parameter_count == 8 * 16 + 16 + 16 * 4
    assert summary.external_data == ("mlp.bin",)
    assert ConversionReport.from_json(report.to_json()) == report


def test_openvino_ir_runs_like_source(src_dir: Path, tmp_path: Path) -> None:
    report = convert(src_dir / "convbn.onnx", "ov", tmp_path, options=_opts(name="net"))
    assert report.artifact.endswith("net.xml")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with open_runner("onnxruntime", src_dir / "convbn.onnx") as ref:
        want = ref.infer({"image": x})["out"]
    with open_runner("openvino", report.artifact) as ir:
        got = ir.infer({"image": x})["out"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_openvino_fp16_halves_weights(src_dir: Path, tmp_path: Path) -> None:
    convert(src_dir / "wide.onnx", "openvino", tmp_path / "fp32")
    fp16 = convert(src_dir / "wide.onnx", "openvino", tmp_path / "fp16", options=_opts(precision=Precision.FP16))
    assert fp16.precision is Precision.FP16
    bin32 = (tmp_path / "fp32" / "wide.bin").stat().st_size
    bin16 = (tmp_path / "fp16" / "wide.bin").stat().st_size
    assert bin32 >= (64 * 256 + 256 + 256 * 10) * 4
    assert 0.45 < bin16 / bin32 < 0.55
    v = fp16.verification
    assert v is not None and v.passed
    # fp16 weights (11-bit mantissa) run in f32 on CPU: judged with the fp16 tolerance, but not exact
    assert v.tolerance == Tolerance.for_precision("fp16")
    assert v.candidate.endswith("@openvino/fp32")
    assert 0 < v.max_abs < 1e-2


def test_onnx_fp16(src_dir: Path, tmp_path: Path) -> None:
    report = convert(src_dir / "wide.onnx", "onnx", tmp_path, options=_opts(precision=Precision.FP16, name="wide16"))
    out = Path(report.artifact)
    assert out == tmp_path / "wide16.onnx" and report.files == (str(out),)
    assert report.engine == "onnxruntime.transformers.float16"
    assert model_precision(out) == "fp16"
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    # keep_io_types: a drop-in replacement with float32 inputs and outputs
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.stat().st_size < 0.6 * (src_dir / "wide.onnx").stat().st_size
    v = report.verification
    assert v is not None and v.passed and v.tolerance == Tolerance.for_precision("fp16")
    assert 0 < v.max_abs < 1e-2  # fp16 weights and activations: rounded, within the fp16 tolerance


def test_onnx_fp32_copy(src_dir: Path, tmp_path: Path) -> None:
    report = convert(src_dir / "mlp.onnx", Format.ONNX, tmp_path, options=_opts(name="copy"))
    assert report.engine == "copy"
    assert report.verification is not None and report.verification.max_abs == 0.0


def test_onnx_copy_onto_source_refused(src_dir: Path) -> None:
    with pytest.raises(ModelportError, match="refusing to overwrite the input model"):
        convert(src_dir / "mlp.onnx", "onnx", src_dir)


def test_fixed_batch_model(src_dir: Path, tmp_path: Path) -> None:
    report = convert(src_dir / "two.onnx", "openvino", tmp_path)
    assert report.verification is not None and report.verification.passed
    assert [o.name for o in report.verification.outputs] == ["s", "p"]
    assert report.verification.outputs[0].shape == (2, 3)


def test_input_shapes_and_no_verify(src_dir: Path, tmp_path: Path) -> None:
    report = convert(src_dir / "mlp.onnx", "openvino", tmp_path / "a", options=_opts(input_shapes=(("x", (3, 8)),)))
    assert report.verification is not None and report.verification.outputs[0].shape == (3, 4)
    unverified = convert(src_dir / "mlp.onnx", "openvino", tmp_path / "b", options=ChainOptions(verify=False))
    assert unverified.verification is None
    assert Path(unverified.artifact).exists()


def test_threads_and_progress(src_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    report = convert(src_dir / "mlp.onnx", "openvino", tmp_path, options=ChainOptions(threads=1), progress=lines.append)
    v = report.verification
    assert v is not None and v.runner is not None and v.runner.threads == 1
    assert lines == ["converting onnx → openvino", "running the source mlp.onnx", "verifying mlp.xml"]


def test_given_feeds(src_dir: Path, tmp_path: Path) -> None:
    x = np.full((5, 8), 0.5, np.float32)
    report = convert(src_dir / "mlp.onnx", "openvino", tmp_path, feeds={"x": x})
    assert report.verification is not None and report.verification.outputs[0].shape == (5, 4)


def test_no_route_lists_routes(src_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="no converter from onnx to keras") as info:
        convert(src_dir / "mlp.onnx", "keras", tmp_path / "out")
    assert "onnx→openvino" in str(info.value) and "onnx→onnx" in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConversionError, match="no converter from openvino to onnx"):
        get_converter(Format.OPENVINO_IR, Format.ONNX)


def test_unknown_format_and_precision(src_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown format 'caffe'"):
        convert(src_dir / "mlp.onnx", "caffe", tmp_path)
    with pytest.raises(InvalidInputError, match="unknown precision 'fp8'"):
        convert(src_dir / "mlp.onnx", "openvino", tmp_path, options=_opts(precision=Precision.parse("fp8")))
    with pytest.raises(ConversionError, match="fp32 or fp16, not bf16"):
        convert(src_dir / "mlp.onnx", "openvino", tmp_path, options=_opts(precision=Precision.BF16))
    with pytest.raises(ConversionError, match="supports fp32 and fp16, not int8"):
        convert(src_dir / "mlp.onnx", "onnx", tmp_path, options=_opts(precision=Precision.INT8))
    assert list(tmp_path.iterdir()) == []


def test_failed_verification_removes_artifact(src_dir: Path, tmp_path: Path) -> None:
    # fp16 weights cannot match the fp32 source exactly: a zero tolerance must fail
    exact = ChainOptions(ConvertOptions(precision=Precision.FP16), tolerance=Tolerance(0, 0))
    with pytest.raises(VerificationError, match=r"differs from wide\.onnx@onnxruntime: output 'y'"):
        convert(src_dir / "wide.onnx", "openvino", tmp_path, options=exact)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VerificationError):
        convert(src_dir / "wide.onnx", "onnx", tmp_path, options=exact)
    assert list(tmp_path.iterdir()) == []


def test_failed_conversion_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "src" / "bad.onnx"
    bad.parent.mkdir()
    proto = models.mlp()
    proto.graph.node[0].op_type = "NoSuchOp"
    bad.write_bytes(proto.SerializeToString())
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="OpenVINO cannot convert the model") as info:
        convert(bad, "openvino", out)
    assert "\n" not in str(info.value)
    assert not out.exists() or list(out.iterdir()) == []
