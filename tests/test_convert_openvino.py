"""Converters: ONNX → OpenVINO IR (fp32, fp16), ONNX → ONNX fp16, routes, and verification failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

import models
from modelport.backends import open_runner
from modelport.backends.onnxruntime import model_precision
from modelport.conversion import ChainOptions, ConversionReport, ConvertOptions, convert, get_converter
from modelport.conversion.openvino import ov_failure
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
    with pytest.raises(ConversionError, match=r"OpenVINO has no conversion for op NoSuchOp .*node") as info:
        convert(bad, "openvino", out)
    assert "\n" not in str(info.value)
    assert not out.exists()  # not even the folder the chain would have written into


# ---------------------------------------------------------------------------------------------------------------
# Preparing what OpenVINO's ONNX frontend refuses (conversion/openvino.py's attempts)


def _if_rank2_condition() -> onnx.ModelProto:
    """y = If(ReduceSum(x) > 0 as a [1, 1] bool, x·w, x − w): OpenVINO takes If conditions of rank 0 or 1 only."""

    def value(name: str) -> onnx.ValueInfoProto:
        return oh.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3])

    then = oh.make_graph([oh.make_node("Mul", ["x", "w"], ["t"])], "then", [], [value("t")])
    other = oh.make_graph([oh.make_node("Sub", ["x", "w"], ["e"])], "else", [], [value("e")])
    nodes = [
        oh.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        oh.make_node("Greater", ["s", "zero"], ["c0"]),
        oh.make_node("Reshape", ["c0", "shape11"], ["c"]),
        oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    inits = [
        numpy_helper.from_array(np.arange(3, dtype=np.float32), "w"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "shape11"),
    ]
    model = oh.make_model(
        oh.make_graph(nodes, "g", [value("x")], [value("y")], inits), opset_imports=[oh.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _rank_depends_on_size() -> onnx.ModelProto:
    """silero VAD's pattern: ``If(time < 32, ReduceMean over time, x)`` yields rank 2 or 3 depending on a size, so
    OpenVINO sees a dynamic rank and its Conv translator refuses it; ONNX Runtime runs it for time < 32."""
    then = oh.make_graph(
        [oh.make_node("ReduceMean", ["x", "ax2"], ["t"], keepdims=0)],
        "then",
        [],
        [oh.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    other = oh.make_graph(
        [oh.make_node("Identity", ["x"], ["e"])], "else", [], [oh.make_tensor_value_info("e", TensorProto.FLOAT, None)]
    )
    nodes = [
        oh.make_node("Shape", ["x"], ["shape"]),
        oh.make_node("Gather", ["shape", "two"], ["t_len"]),
        oh.make_node("Less", ["t_len", "limit"], ["short"]),
        oh.make_node("If", ["short"], ["pooled"], then_branch=then, else_branch=other),
        oh.make_node("Unsqueeze", ["pooled", "last"], ["u"]),
        oh.make_node("Conv", ["u", "w"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(2, np.int64), "two"),
        numpy_helper.from_array(np.array(32, np.int64), "limit"),
        numpy_helper.from_array(np.array([2], np.int64), "ax2"),
        numpy_helper.from_array(np.array([-1], np.int64), "last"),
        numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 1)).astype(np.float32), "w"),
    ]
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "time"])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 1])],
        inits,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def test_openvino_if_condition_of_rank_two(tmp_path: Path) -> None:
    src = models.save(_if_rank2_condition(), tmp_path / "if2.onnx")
    before = src.read_bytes()
    report = convert(src, "openvino", tmp_path / "out")
    assert report.verification is not None and report.verification.passed
    assert report.verification.max_abs == 0.0
    assert any(
        "Rank of If condition input must be equal to 0 or 1" in n and "if-scalar-condition" in n for n in report.notes
    )
    assert src.read_bytes() == before  # the user's file is never changed: a private copy was prepared
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["if2.bin", "if2.xml"]
    for sign in (1.0, -1.0):  # both branches
        x = sign * np.ones((2, 3), np.float32)
        with open_runner("openvino", report.artifact) as ov:
            got = ov.infer({"x": x})["y"]
        np.testing.assert_array_equal(got, x * np.arange(3) if sign > 0 else x - np.arange(3))


def test_openvino_fixes_sizes_when_rank_depends_on_them(tmp_path: Path) -> None:
    src = models.save(_rank_depends_on_size(), tmp_path / "dynrank.onnx")
    report = get_converter(Format.ONNX, Format.OPENVINO_IR)(src, tmp_path / "out", ConvertOptions(name="dynrank"))
    (note,) = report.notes
    assert "Conv-18" in note and "rank has to be known" in note
    assert "x ?×3×16" in note and "batch kept dynamic" in note  # the first size the source runs at; batch free
    with open_runner("onnxruntime", src) as ref, open_runner("openvino", report.artifact) as ov:
        assert ov.input_specs[0].shape == (None, 3, 16)
        for batch in (1, 3):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 16)).astype(np.float32)
            np.testing.assert_allclose(ov.infer({"x": x})["y"], ref.infer({"x": x})["y"], rtol=1e-5, atol=1e-5)


def test_openvino_failure_lists_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import openvino

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Check 'x' failed at frontend.cpp:1:\nthe frontend says no")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    src = models.save(_rank_depends_on_size(), tmp_path / "bad.onnx")
    with pytest.raises(ConversionError, match="OpenVINO cannot convert the model: as exported: ") as info:
        get_converter(Format.ONNX, Format.OPENVINO_IR)(src, tmp_path / "out", ConvertOptions(name="bad"))
    text = str(info.value)
    assert text.count("the frontend says no") == 3 and "batch kept dynamic" in text
    assert "sizes the source runs at" in text
    assert "\n" not in text
    assert not (tmp_path / "out").exists()


def test_openvino_unknown_op_is_one_error_naming_op_nodes_and_cut(tmp_path: Path) -> None:
    """No preparation or size gives an op a conversion rule: no retries, the op, its node, the cut before it."""
    proto = _rank_depends_on_size()
    proto.graph.node[-1].op_type = "NoSuchOp"
    src = models.save(proto, tmp_path / "bad.onnx")
    with pytest.raises(ConversionError, match=r"no conversion for op NoSuchOp \(node y\)") as info:
        get_converter(Format.ONNX, Format.OPENVINO_IR)(src, tmp_path / "out", ConvertOptions(name="bad"))
    assert "--outputs u" in (info.value.hint or "") and "as exported" not in str(info.value)


def test_ov_failure_summary() -> None:
    message = """Check 'false' failed at src/frontends/common_translators/src/unconverted_ops_report.cpp:151:
FrontEnd API failed with OpConversionFailure:
Model wasn't fully converted. Failed operations detailed log:
-- Conv-16 with a message:
[ONNX Frontend] Conversion failed for Conv-16
While validating ONNX node '<Node(Conv): c>': Check 'rank' failed at src/frontends/onnx/frontend/src/op/conv.cpp:38:
FrontEnd API failed with GeneralFailure:
The input data tensor's rank has to be known (static)

Summary:
-- Conversion is failed for: Conv-16, ReduceMean-16
"""
    got = ov_failure(RuntimeError(message))
    assert got == "Conv-16, ReduceMean-16: The input data tensor's rank has to be known (static)"
    assert ov_failure(RuntimeError("Exception from src/x.cpp:1:\nsomething else\n")) == "something else"
