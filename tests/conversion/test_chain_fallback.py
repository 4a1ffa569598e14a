"""The chain's size ladder (sizes the source accepts), its route fallback, and the direct TFLite → OpenVINO route."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.conversion import ChainOptions, ConversionReport, ConvertOptions, convert_chain
from modelport.conversion import base as converters
from modelport.conversion import chain as chain_mod
from modelport.conversion.routes import alternative_routes, plan, route_text
from modelport.errors import ConversionError, InferenceError, VerificationError
from modelport.formats import Format as F
from modelport.formats import Precision


def _reshape_model(tmp_path: Path, cols: int) -> Path:
    """x[N, T] → Reshape to [-1, cols] → Relu: runs only when N·T is a multiple of ``cols`` (a real export's
    Reshape to a fixed inner size refuses the other sizes the same way)."""
    model = models.parse(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        fixed (float[N, T] x) => (float[M, {cols}] y) {{
            shape = Constant <value = int64[2] {{-1, {cols}}}> ()
            r = Reshape(x, shape)
            y = Relu(r)
        }}
    """)
    return models.save(model, tmp_path / f"reshape{cols}.onnx")


def _empty(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


def _count_source_runs(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[int, ...]]:
    """Record the input shape of every run of the source ``name`` (through the comparator's ``infer``)."""
    shapes: list[tuple[int, ...]] = []
    real = chain_mod.infer

    def counting(runner, feeds, label="", precision=None):  # type: ignore[no-untyped-def]
        if runner.model_path.name == name:
            shapes.append(tuple(next(iter(feeds.values())).shape))
        return real(runner, feeds, label, precision)

    monkeypatch.setattr(chain_mod, "infer", counting)
    return shapes


def test_ladder_finds_sizes_the_source_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _reshape_model(tmp_path, 128)
    runs = _count_source_runs(monkeypatch, src.name)
    chain = convert_chain(src, "openvino", tmp_path / "out")
    assert chain.passed
    # 1×16 and 2×24 (the first two rungs) are refused; 1×128 runs, and 2×512 is the second, different set
    assert runs == [(1, 16), (2, 24), (1, 128), (2, 512)]  # each accepted set ran once
    assert dict((k, s) for k, s, _ in chain.feeds) == {"x": (1, 128)}
    note = chain.hops[0].conversion.notes[0]
    assert note.startswith("source refused x 1×16: ") and "x 2×24: " in note
    assert note.endswith("verified at x 1×128 and x 2×512")
    assert chain.notes == (note,)
    assert chain.hops[0].against_source_other_sizes is not None  # the dynamic artifact ran at 2×512 too


def test_ladder_keeps_the_users_input_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _reshape_model(tmp_path, 128)
    runs = _count_source_runs(monkeypatch, src.name)
    options = ChainOptions(ConvertOptions(input_shapes=(("x", (2, 64)),)))
    chain = convert_chain(src, "openvino", tmp_path / "out", options=options)
    assert chain.passed and runs == [(2, 64)] and chain.notes == ()
    # a given shape the source refuses is not searched around: the source's own error
    options = ChainOptions(ConvertOptions(input_shapes=(("x", (1, 48)),)))
    with pytest.raises(InferenceError, match="Reshape") as info:
        convert_chain(src, "openvino", tmp_path / "out2", options=options)
    assert "refused every size" not in str(info.value)
    assert _empty(tmp_path / "out2")


def test_ladder_exhausted_lists_every_attempt(tmp_path: Path) -> None:
    src = _reshape_model(tmp_path, 7)  # no rung's N·T is a multiple of 7
    with pytest.raises(InferenceError, match=r"refused every size tried for its free dimensions \(6\)") as info:
        convert_chain(src, "openvino", tmp_path / "out")
    text = str(info.value)
    for shape in ("x 1×16", "x 2×24", "x 1×128", "x 2×512", "x 1×1024", "x 2×4096"):
        assert f"{shape}: " in text
    assert "--input-shape x:N,N" in text
    assert _empty(tmp_path / "out")  # the converted IR is removed


def _fake_converter(fmt: F, *, fail: str = "", partial: bool = False):  # type: ignore[no-untyped-def]
    """A converter writing ``<name>.<fmt>`` (or a partial file, then raising ``fail``)."""

    def convert(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
        out_dir.mkdir(parents=True, exist_ok=True)
        artifact = out_dir / f"{options.name}.{fmt.value}"
        if fail:
            if partial:
                artifact.write_bytes(b"half")
            raise ConversionError(fail, path=src)
        artifact.write_bytes(b"model")
        return ConversionReport.for_file(
            src, F.TFLITE if fmt is not F.OPENVINO_IR else F.ONNX, fmt, options.precision, artifact, 0.0, "fake"
        )

    return convert


@pytest.fixture
def tflite_source(tmp_path: Path) -> Path:
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32)
    return path


def test_route_order_and_alternatives() -> None:
    assert plan(F.TFLITE, [F.OPENVINO_IR]) == [(F.TFLITE, F.OPENVINO_IR)]  # direct first: one hop
    assert [route_text(r) for r in alternative_routes(F.TFLITE, F.OPENVINO_IR)] == [
        "tflite → openvino",
        "tflite → onnx → openvino",
    ]
    # at most one hop's cost beyond the cheapest: ONNX → OpenVINO is not retried through onnx2tf
    assert [route_text(r) for r in alternative_routes(F.ONNX, F.OPENVINO_IR)] == ["onnx → openvino"]


def test_fallback_to_the_next_route(tmp_path: Path, tflite_source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boom = "OpenVINO cannot convert op DENSIFY"
    monkeypatch.setitem(
        converters._CONVERTERS, (F.TFLITE, F.OPENVINO_IR), _fake_converter(F.OPENVINO_IR, fail=boom, partial=True)
    )
    monkeypatch.setitem(converters._CONVERTERS, (F.TFLITE, F.ONNX), _fake_converter(F.ONNX))
    monkeypatch.setitem(converters._CONVERTERS, (F.ONNX, F.OPENVINO_IR), _fake_converter(F.OPENVINO_IR))
    out = tmp_path / "out"
    chain = convert_chain(tflite_source, "openvino", out, options=ChainOptions(verify=False))
    assert [h.label for h in chain.hops] == ["tflite → onnx", "onnx → openvino"]
    assert [h.target for h in chain.hops] == [False, True]
    note = chain.hops[-1].conversion.notes[-1]
    assert note.startswith("route tflite → onnx → openvino (after tflite → openvino: ") and boom in note
    assert chain.notes == (note,)
    assert sorted(p.name for p in out.iterdir()) == ["m.onnx", "m.openvino"]  # the failed route's file is gone
    assert (out / "m.openvino").read_bytes() == b"model"


def test_every_route_failing_is_one_error(tmp_path: Path, tflite_source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        converters._CONVERTERS, (F.TFLITE, F.OPENVINO_IR), _fake_converter(F.OPENVINO_IR, fail="frontend: op X")
    )
    monkeypatch.setitem(converters._CONVERTERS, (F.TFLITE, F.ONNX), _fake_converter(F.ONNX))
    monkeypatch.setitem(
        converters._CONVERTERS, (F.ONNX, F.OPENVINO_IR), _fake_converter(F.OPENVINO_IR, fail="ir: op Y", partial=True)
    )
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as info:
        convert_chain(tflite_source, "openvino", out, options=ChainOptions(verify=False))
    text = str(info.value)
    assert text.startswith("every route from tflite to openvino failed (2): ")
    assert "tflite → openvino: " in text and "frontend: op X" in text
    assert "tflite → onnx → openvino: " in text and "ir: op Y" in text
    assert _empty(out)  # nothing half-written: not the partial IR, not the intermediate ONNX


def test_a_verification_failure_falls_back_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hop whose verification fails is retried along the next route (here every route mismatches: one
    VerificationError listing both)."""
    src = models.save(models.mlp(), tmp_path / "mlp.onnx")
    real = chain_mod._verify_hop

    def mismatch(state, hop, a, precision):  # type: ignore[no-untyped-def]
        real(state, hop, a, precision)
        raise VerificationError(f"hop {hop.label}: output 'y' max abs error 1 (forced)")

    monkeypatch.setattr(chain_mod, "_verify_hop", mismatch)
    routes = [[(F.ONNX, F.OPENVINO_IR)], [(F.ONNX, F.ONNX), (F.ONNX, F.OPENVINO_IR)]]
    monkeypatch.setattr(chain_mod, "alternative_routes", lambda a, b, limit=3: routes)
    with pytest.raises(VerificationError, match=r"every route from onnx to openvino failed \(2\)") as info:
        convert_chain(src, "openvino", tmp_path / "out")
    assert "onnx → openvino: hop onnx → openvino: " in str(info.value)
    assert "onnx → onnx → openvino: hop onnx → onnx: " in str(info.value)
    assert _empty(tmp_path / "out")


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x[1,8,8,3] → CONV_2D 3×3 (16 filters, bias, SAME, fused ReLU) → y: written with TFLite's flatbuffer schema
    (the object API LiteRT ships), which takes milliseconds where TensorFlow's converter takes half a minute here."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    rng = np.random.default_rng(0)
    weights, bias = rng.standard_normal((16, 3, 3, 3)).astype(np.float32), rng.standard_normal(16).astype(np.float32)

    def buffer(arr: np.ndarray | None = None) -> fb.BufferT:
        b = fb.BufferT()
        if arr is not None:
            b.data = np.frombuffer(arr.tobytes(), np.uint8)
        return b

    def tensor(name: str, shape: tuple[int, ...], index: int) -> fb.TensorT:
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), fb.TensorType.FLOAT32, index
        return t

    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CONV_2D
    code.version = 1
    options = fb.Conv2DOptionsT()
    options.padding, options.strideH, options.strideW = fb.Padding.SAME, 1, 1
    options.dilationHFactor = options.dilationWFactor = 1
    options.fusedActivationFunction = fb.ActivationFunctionType.RELU
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.Conv2DOptions, options
    graph = fb.SubGraphT()
    graph.tensors = [
        tensor("x", (1, 8, 8, 3), 1),
        tensor("w", weights.shape, 2),
        tensor("b", bias.shape, 3),
        tensor("y", (1, 8, 8, 16), 4),
    ]
    graph.inputs, graph.outputs, graph.operators, graph.name = [0], [3], [op], "main"
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [buffer(), buffer(), buffer(weights), buffer(bias), buffer()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path_factory.mktemp("tflite") / "conv.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.FP16])
def test_direct_tflite_to_openvino(tiny_tflite: Path, tmp_path: Path, precision: Precision) -> None:
    options = ChainOptions(ConvertOptions(precision=precision))
    chain = convert_chain(tiny_tflite, "openvino", tmp_path, options=options)
    assert chain.passed and [h.label for h in chain.hops] == ["tflite → openvino"]
    hop = chain.hops[0]
    assert hop.conversion.precision is precision and "TFLite frontend" in hop.conversion.engine
    assert hop.against_source is not None and hop.against_source.max_abs < 1e-2
    # the weights stay fp32 unless fp16 is asked for (save_model would compress them by default)
    weights = 3 * 3 * 3 * 16 + 16
    size = (tmp_path / "conv.bin").stat().st_size
    assert size >= weights * 4 if precision is Precision.FP32 else size < weights * 4
    xml = (tmp_path / "conv.xml").read_text()
    assert ('element_type="f16"' in xml) is (precision is Precision.FP16)


def test_direct_route_refuses_a_non_tflite(tmp_path: Path) -> None:
    from modelport.conversion.tflite_openvino import openvino_from_tflite
    from modelport.errors import ModelLoadError

    bad = models.save(models.mlp(), tmp_path / "x.onnx")
    with pytest.raises(ModelLoadError, match="not a TFLite file"):
        openvino_from_tflite(bad, tmp_path / "out", ConvertOptions(name="x"))
    with pytest.raises(ConversionError, match="fp32 or fp16"):
        openvino_from_tflite(bad, tmp_path / "out", ConvertOptions(name="x", precision=Precision.INT8))
    assert not (tmp_path / "out").exists()


def _batch_mixing_model(tmp_path: Path) -> Path:
    """y = x + mean of x over the batch: a batch of 2 gives other rows than each sample alone (a stand-in for a
    runtime whose batched kernels differ from its per-sample ones)."""
    import onnx

    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y) {
            m = ReduceMean <keepdims = 1, axes = [0]> (x)
            y = Add (x, m)
        }"""
    )
    path = tmp_path / "mix.onnx"
    onnx.save(model, path)
    return path


def test_a_reference_that_disagrees_with_itself_across_the_batch_is_judged_per_sample(tmp_path: Path) -> None:
    from modelport.conversion.chain import ChainOptions, SourceSpec, _against_samples_one_by_one, _State
    from modelport.verify.comparator import Subject, check, run
    from modelport.verify.tolerance import Tolerance

    src = _batch_mixing_model(tmp_path)
    x = np.random.default_rng(0).random((2, 4), dtype=np.float32)
    state = _State(SourceSpec(src, F.ONNX), ChainOptions(), [], drift=Tolerance.for_precision("fp32"))
    state.alt_feeds = {"x": x}
    state.src_alt_run = run(Subject(src, "onnxruntime"), state.alt_feeds)
    rows = [run(Subject(src, "onnxruntime"), {"x": x[i : i + 1]}) for i in range(2)]
    per_sample = dataclasses.replace(rows[0], tensors={"y": np.concatenate([r.tensors["y"] for r in rows])})
    failed = check(state.src_alt_run, per_sample, state.drift)
    assert not failed.passed  # the artifact computes each sample alone; the source's batch mixes them
    judged, note = _against_samples_one_by_one(state, per_sample, failed)
    assert judged.passed and "one sample at a time" in note
    # an artifact that is simply wrong stays wrong
    wrong = dataclasses.replace(per_sample, tensors={"y": per_sample.tensors["y"] + 1.0})
    judged, note = _against_samples_one_by_one(state, wrong, check(state.src_alt_run, wrong, state.drift))
    assert not judged.passed and note == ""
