"""ONNX → TFLite through onnx2tf: offline, input untouched, dims fixed, NHWC/NCHW layouts, fp16, names, and errors
that name the ONNX op and node (an op onnx2tf lacks, an op it fails on)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest

import models
from modelport.backends import open_runner
from modelport.conversion import ChainOptions, ConvertOptions, convert
from modelport.conversion.onnx_tflite import tflite_from_onnx
from modelport.errors import ConversionError
from modelport.formats import Precision

slow = pytest.mark.slow  # each onnx2tf run starts TensorFlow in a child process (~8 s)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@slow
def test_offline_nhwc_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    src = models.save(models.conv_bn(), tmp_path / "src" / "convbn.onnx")
    before = _sha(src)
    # batch 1 and 3 channels: the case where onnx2tf fetches a calibration sample from GitHub. Any request
    # would go to a closed local port and fail, so success shows nothing was downloaded.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    options = ChainOptions(ConvertOptions(input_shapes=(("image", (1, 3, 8, 8)),)))
    report = convert(src, "tflite", tmp_path / "out", options=options)
    assert _sha(src) == before and sorted(p.name for p in src.parent.iterdir()) == ["convbn.onnx"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["convbn.tflite"]
    assert report.engine.startswith("onnx2tf 1.28")
    assert "fixed input shapes {'image': (1, 3, 8, 8)}" in report.notes
    v = report.verification
    assert v is not None and v.passed and v.max_abs < 1e-4 and v.candidate.endswith("@litert/fp32")
    with open_runner("litert", report.artifact) as lite:
        (spec,) = lite.input_specs
        assert spec.name == "image" and spec.shape == (1, 8, 8, 3)  # NHWC, batch fixed in onnx2tf's copy
        assert lite.output_names == ["out"]  # ONNX output name restored
        x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
        got = lite.infer({"image": x.transpose(0, 2, 3, 1)})["out"]
    with open_runner("onnxruntime", src) as ref:
        want = ref.infer({"image": x})["out"]
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, rtol=1e-4, atol=1e-5)  # NHWC output


@slow
def test_fp16_keeps_nchw(tmp_path: Path) -> None:
    src = models.save(models.conv_bn(), tmp_path / "convbn.onnx")
    artifact = ConvertOptions(
        precision=Precision.FP16, input_shapes=(("image", (2, 3, 8, 8)),), inputs_as_nchw=("image",)
    )
    report = convert(src, "tflite", tmp_path / "out", options=ChainOptions(artifact))
    assert report.precision is Precision.FP16 and "inputs kept NCHW: image" in report.notes
    v = report.verification
    assert v is not None and v.passed and v.tolerance.rtol == 1e-2  # fp16 weights: the fp16 tolerance
    with open_runner("litert", report.artifact) as lite:
        assert lite.input_specs[0].shape is not None and lite.input_specs[0].shape[1:] == (3, 8, 8)
        assert lite.info().executed_precision == "fp16-weights+fp32"


@slow
def test_unsupported_op_names_op_and_node(tmp_path: Path) -> None:
    proto = models.mlp()
    proto.graph.node[2].op_type = "FancyActivation"
    proto.graph.node[2].domain = "com.example"
    proto.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    proto.graph.node[2].name = "act0"
    src = tmp_path / "custom.onnx"
    src.write_bytes(proto.SerializeToString())
    out = tmp_path / "out.tflite"
    with pytest.raises(ConversionError, match="onnx2tf") as info:
        tflite_from_onnx(src, out)
    text = str(info.value)
    assert "cannot convert op FancyActivation (node act0)" in text and "\n" not in text
    assert not out.exists()


@slow
def test_failing_op_is_named_from_the_log(tmp_path: Path) -> None:
    """onnx2tf's log names the failing node; the error adds its op type from the ONNX graph."""
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,8] x) => (float[1,3] y) {
            y = Reshape(x, s)
        }
    """)
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 3], np.int64), "s"))
    proto.graph.node[0].name = "bad_reshape"  # 8 elements cannot become [1, 3]
    src = models.save(proto, tmp_path / "bad.onnx")
    with pytest.raises(ConversionError) as info:
        tflite_from_onnx(src, tmp_path / "bad.tflite")
    text = info.value.message  # every rung tried fails there: the message leads with it, then lists the attempts
    assert text.startswith("onnx2tf cannot convert op Reshape (node bad_reshape) with every setting tried (2): ")
    assert "1. [requested] " in text and "2. [optimized] " in text and "\n" not in text
    assert info.value.hint is not None and "--input-shape" in info.value.hint


@slow
def test_free_dims_stay_dynamic_when_onnx2tf_keeps_them(tmp_path: Path) -> None:
    """With no --input-shape onnx2tf gets the dims as declared first: a fully convolutional model stays dynamic in
    TFLite and is verified at the chain's second sizes too, as its OpenVINO IR is."""
    proto = models.build(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        fcn (float[N, 3, H, W] x) => (float[N, 4, H, W] y) {
            c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
            y = Relu (c)
        }
        """,
        w=(4, 3, 3, 3),
        b=(4,),
    )
    src = models.save(proto, tmp_path / "fcn.onnx")
    tfl = convert(src, "tflite", tmp_path / "t")
    assert any(n.startswith("dynamic artifact: also verified at x[2, 3, 96, 96]") for n in tfl.notes), tfl.notes
    assert tfl.verification is not None and tfl.verification.passed
    ov = convert(src, "openvino", tmp_path / "o")
    assert any(n.startswith("dynamic artifact: also verified at x[2, 3, 96, 96]") for n in ov.notes), ov.notes


def test_static_rungs_fix_free_dims_at_the_size_hints(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    """The chain's sizes (those the source ran at) are hints: the first rung keeps the dims as declared, a static
    rung fixes them there rather than at the default verification sizes."""
    from modelport.conversion.onnx_tflite import run_onnx2tf

    src = models.save(_fcn(), tmp_path / "fcn.onnx")
    f = fake([None, None], ["converted, but differs from the source at x[1, 3, 40, 40]: max abs error 3", None])
    result = run_onnx2tf(src, tmp_path / "work", size_hints={"x": (1, 3, 40, 40)})
    assert f.dims == [["N", 3, "H", "W"], [1, 3, 40, 40]]
    assert result.fixed_shapes == (("x", (1, 3, 40, 40)),)


# ---------------------------------------------------------------------------------------------------------------
# The settings ladder (onnx2tf replaced by a fake worker: fast), name sanitising, Erf


def _fcn() -> onnx.ModelProto:
    return models.build(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        fcn (float[N, 3, H, W] x) => (float[N, 4, H, W] y) {
            c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
            y = Relu (c)
        }
        """,
        w=(4, 3, 3, 3),
        b=(4,),
    )


class _FakeOnnx2tf:
    """Stands in for the onnx2tf child: ``script`` says, per call, to raise that error or to write a model."""

    def __init__(self, script: list[ConversionError | None], checks: list[str | None]) -> None:
        self.script, self.checks, self.requests = script, checks, []
        self.dims: list[list[int | str]] = []

    def worker(self, module: str, request: dict, work: Path, **_: object) -> Path:
        self.requests.append(request)
        copy = onnx.load(request["input_onnx_file_path"])  # the private copy onnx2tf would convert
        self.dims.append([d.dim_value or d.dim_param for d in copy.graph.input[0].type.tensor_type.shape.dim])
        outcome = self.script.pop(0)
        if outcome is not None:
            raise outcome
        (work / "out").mkdir()
        (work / "out" / "model_float32.tflite").write_bytes(b"fake")
        return work / "onnx2tf.log"

    def check(self, job: object, tflite: Path, fixed: object) -> str | None:
        assert tflite.read_bytes() == b"fake"
        return self.checks.pop(0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> _FakeOnnx2tf:
    from modelport.conversion import onnx_tflite

    def use(script: list[ConversionError | None], checks: list[str | None]) -> _FakeOnnx2tf:
        f = _FakeOnnx2tf(script, checks)
        monkeypatch.setattr(onnx_tflite, "run_worker", f.worker)
        monkeypatch.setattr(onnx_tflite, "_check", f.check)
        monkeypatch.setattr(onnx_tflite, "restore_tflite_names", lambda *a: None)
        return f

    return use  # type: ignore[return-value]


def test_ladder_rungs_depend_on_the_model() -> None:
    from modelport.conversion.onnx_tflite import settings_ladder
    from modelport.inputs import TensorSpec

    image = TensorSpec("x", "float32", ("N", 3, "H", "W"))
    labels = [s.label for s in settings_ladder([image], frozenset({"Conv"}), {}, grouped=False)]
    assert labels == ["requested", "static, optimized", "static, optimized, layouts kept"]
    ladder = settings_ladder([image], frozenset({"Conv", "LSTM"}), {"x": (1, 3, 8, 8)}, grouped=True)
    assert [s.label for s in ladder] == ["requested", "optimized", "optimized, layouts kept", "as declared"]
    assert ladder[2].flags == ("disable_group_convolution", "enable_rnn_unroll") and ladder[2].keep_shape
    flat = TensorSpec("v", "float32", (1, 8))  # static, rank 2, plain ops
    assert [s.label for s in settings_ladder([flat], frozenset({"Gemm"}), {}, grouped=False)] == [
        "requested",
        "optimized",
    ]


def test_ladder_goes_on_after_a_failure_and_records_every_attempt(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    from modelport.conversion.onnx_tflite import run_onnx2tf

    src = models.save(_fcn(), tmp_path / "fcn.onnx")
    f = fake([ConversionError("onnx2tf cannot convert op Conv (node c): boom"), None], [None])
    before = _sha(src)
    result = run_onnx2tf(src, tmp_path / "work", input_shapes={"x": (1, 3, 8, 8)})
    assert [(a.setting, a.ok) for a in result.attempts] == [("requested", False), ("optimized", True)]
    assert "boom" in result.attempts[0].outcome and result.attempts[1].outcome == "converted and verified"
    assert "keep_shape_absolutely_input_names" not in f.requests[1]
    notes = result.notes()
    assert notes[0].startswith("onnx2tf [requested]: onnx2tf cannot convert op Conv") and "verified" in notes[1]
    assert _sha(src) == before


def test_ladder_mismatch_is_a_failure_and_static_dims_are_fixed(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    from modelport.conversion.onnx_tflite import run_onnx2tf

    src = models.save(_fcn(), tmp_path / "fcn.onnx")
    f = fake([None, None], ["converted, but differs from the source at x[1, 3, 64, 64]: max abs error 3", None])
    result = run_onnx2tf(src, tmp_path / "work")
    assert [a.setting for a in result.attempts] == ["requested", "static, optimized"]
    assert result.fixed_shapes == (("x", (1, 3, 64, 64)),)  # every free dim, the batch too
    assert f.dims == [["N", 3, "H", "W"], [1, 3, 64, 64]]  # the requested rung: dims as asked; then all fixed


def test_ladder_exhausted_lists_every_attempt(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    from modelport.conversion.onnx_tflite import tflite_from_onnx

    src = models.save(_fcn(), tmp_path / "fcn.onnx")
    fake(
        [ConversionError("onnx2tf failed: first"), None, ConversionError("onnx2tf failed: third")],
        ["converted, but LiteRT cannot run it at x[1, 3, 64, 64]: second"],
    )
    out = tmp_path / "out" / "fcn.tflite"
    with pytest.raises(ConversionError) as info:
        tflite_from_onnx(src, out)
    text = info.value.message
    assert text.startswith("onnx2tf failed with every setting tried (3): 1. [requested] onnx2tf failed: first; ")
    for part in (
        "2. [static, optimized] converted, but LiteRT",
        "second",
        "3. [static, optimized, layouts kept] onnx2tf",
    ):
        assert part in text, text
    assert "\n" not in text and not out.exists() and not out.parent.exists()


def test_ladder_stops_when_onnx2tf_lacks_the_op(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    from modelport.conversion.onnx_tflite import run_onnx2tf

    src = models.save(_fcn(), tmp_path / "fcn.onnx")
    f = fake([ConversionError("onnx2tf cannot convert op Foo (node n): onnx2tf has no converter for Foo")], [])
    with pytest.raises(ConversionError, match=r"^onnx2tf cannot convert op Foo"):
        run_onnx2tf(src, tmp_path / "work")
    assert len(f.requests) == 1


def test_sanitize_names_round_trip(tmp_path: Path) -> None:
    """Names TensorFlow rejects are renamed consistently (subgraphs included) and the model computes the same."""
    from modelport.conversion.onnx2tf_prep import sanitize_names

    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2, 3] x, bool c) => (float[2, 3] y) {
            y = If (c) <
                then_branch = t () => (float[2, 3] a) { a = Add(x, x) },
                else_branch = e () => (float[2, 3] b) { b = Neg(x) }
            >
        }
    """)
    mapping = {"x": "0in@", "c": "flag{1}", "y": 'out;"1"'}
    for v in (*proto.graph.input, *proto.graph.output):
        v.name = mapping[v.name]
    node = proto.graph.node[0]
    node.name, node.input[0], node.output[0] = "If@0", mapping["c"], mapping["y"]
    for attr in node.attribute:
        for n in attr.g.node:
            n.input[:] = [mapping.get(i, i) for i in n.input]
    onnx.checker.check_model(proto)
    renamed = dict(sanitize_names(proto))
    onnx.checker.check_model(proto, full_check=True)
    assert renamed == {"0in@": "t_0in_", "flag{1}": "flag_1_", 'out;"1"': "out__1_", "If@0": "If_0"}
    src = models.save(proto, tmp_path / "renamed.onnx")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with open_runner("onnxruntime", src) as runner:
        got = runner.infer({"t_0in_": x, "flag_1_": np.array(True)})["out__1_"]
    np.testing.assert_array_equal(got, x + x)
    proto.graph.input[0].name = "a_b"  # a new name that exists already gets a suffix
    proto.graph.input[1].name = "a@b"
    proto.graph.node[0].input[0] = "a@b"
    assert dict(sanitize_names(proto)) == {"a@b": "a_b_1"}


@slow
def test_bad_names_and_erf_become_builtins_with_onnx_names(tmp_path: Path) -> None:
    """One real onnx2tf run: names onnx2tf would choke on and a GELU's Erf. The TFLite model runs on plain LiteRT
    (no Select-TF op), keeps the ONNX input and output names, and matches within the fp32 tolerance."""
    proto = models.gelu_mlp(1, 16, 8)
    names = {"x": "in@0", "y": "gelu;out", "e": "Erf@1"}
    for v in (*proto.graph.input, *proto.graph.output):
        v.name = names[v.name]
    for n in proto.graph.node:
        n.input[:] = [names.get(i, i) for i in n.input]
        n.output[:] = [names.get(o, o) for o in n.output]
    src = models.save(proto, tmp_path / "gelu.onnx")
    report = convert(src, "tflite", tmp_path / "out")
    assert report.verification is not None and report.verification.passed
    assert report.verification.max_abs < 1e-5
    assert any(n.startswith("decompose-erf rewrote the copy") for n in report.notes), report.notes
    assert any("names sanitised for onnx2tf" in n for n in report.notes), report.notes
    assert report.notes[0].startswith("onnx2tf [requested]: converted and verified")
    with open_runner("litert", report.artifact) as lite:
        assert [s.name for s in lite.input_specs] == ["in@0"] and lite.output_names == ["gelu;out"]


def test_tensorflow_errors_show_their_reason(tmp_path: Path) -> None:
    from modelport.conversion.onnx_tflite import _diagnose
    from modelport.conversion.worker import WorkerFailure

    error = (
        'in user code:\n\n    File "x.py", line 3, in f\n        y = g(x)\n\n'
        "    ValueError: Shapes (1, 2) and (3,) are incompatible\n"
    )
    failure = WorkerFailure("onnx2tf", 1, error, "ValueError", "log without op names", tmp_path / "log")
    diagnosed = _diagnose(failure, src=tmp_path / "m.onnx", nodes={}, back={})
    assert diagnosed is not None
    assert diagnosed.message == "onnx2tf failed: ValueError: Shapes (1, 2) and (3,) are incompatible"
    keras = 'Exception encountered when calling layer "tf.math.multiply" (type TFOpLambda).\n\nDimensions must be equal'
    failure = WorkerFailure("onnx2tf", 1, keras, "ValueError", "", tmp_path / "log")
    diagnosed = _diagnose(failure, src=tmp_path / "m.onnx", nodes={}, back={})
    assert diagnosed is not None and diagnosed.message.endswith("(type TFOpLambda). Dimensions must be equal")


def test_no_verify_takes_the_first_attempt_that_converts(tmp_path: Path, fake) -> None:  # type: ignore[no-untyped-def]
    """convert --no-verify reaches the ladder: no attempt is checked against the source (the check would fail)."""
    from modelport.conversion import ChainOptions, ConvertOptions, convert
    from modelport.formats import Format

    src = models.save(_fcn(), tmp_path / "fcn.onnx")
    options = ChainOptions(ConvertOptions(input_shapes=(("x", (1, 3, 8, 8)),)), verify=False)
    f = fake([None], ["converted, but differs from the source: would fail"])
    report = convert(src, Format.TFLITE, tmp_path / "out", options=options)
    assert Path(report.artifact).read_bytes() == b"fake" and len(f.requests) == 1
    assert f.checks == ["converted, but differs from the source: would fail"]  # never asked
