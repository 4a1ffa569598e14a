"""TFLite preparations: densify (against a reference encoder of the sparsity format), Convolution2DTransposeBias
(a tiny hand-built model run by LiteRT before and after), and explicit state on the corpus' okay_nabu wake-word
model (the prepared file fed its initial state matches a fresh interpreter, call after call)."""

from __future__ import annotations

import importlib.util
import itertools
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from modelport.conversion.tflite_prep import (
    STATE_INPUT_PREFIX,
    STATE_OUTPUT_PREFIX,
    densify_values,
    flatbuffer_tools,
    prepare_tflite,
    tflite_schema,
    transpose_conv_bias_options,
)
from modelport.errors import ConversionError

TESTS = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------ densify


def _encode(dense: np.ndarray, order: list[int], block_map: list[int], blocks: list[int], sparse_levels: set[int]):
    """Reference encoder of the TFLite sparsity format: (stored values, sparsity parameters).

    Walks the expanded tensor level by level in traversal order; a SPARSE_CSR level keeps only the coordinates
    under which some value is non-zero, listing them per parent position (segments + indices).
    """
    n = dense.ndim
    block_of = dict(zip(block_map, blocks, strict=True))
    sizes = [dense.shape[d] // block_of.get(d, 1) for d in range(n)] + blocks

    def value(exp: list[int]) -> float:
        coord = [exp[d] * block_of.get(d, 1) for d in range(n)]
        for j, d in enumerate(block_map):
            coord[d] += exp[n + j]
        return dense[tuple(coord)]

    def subtree_nonzero(prefix: list[int]) -> bool:
        rest = [range(sizes[order[lv]]) for lv in range(len(prefix), len(order))]
        for tail in itertools.product(*rest):
            exp = [0] * len(order)
            for lv, c in enumerate([*prefix, *tail]):
                exp[order[lv]] = c
            if value(exp) != 0:
                return True
        return False

    metas, paths = [], [[]]
    for level, dim in enumerate(order):
        if level in sparse_levels:
            segments, indices, nxt = [0], [], []
            for path in paths:
                kept = [c for c in range(sizes[dim]) if subtree_nonzero([*path, c])]
                indices += kept
                segments.append(len(indices))
                nxt += [[*path, c] for c in kept]
            metas.append(SimpleNamespace(format=1, denseSize=0, arraySegments=SimpleNamespace(values=segments),
                                         arrayIndices=SimpleNamespace(values=indices)))  # fmt: skip
        else:
            nxt = [[*path, c] for path in paths for c in range(sizes[dim])]
            metas.append(SimpleNamespace(format=0, denseSize=sizes[dim], arraySegments=None, arrayIndices=None))
        paths = nxt
    stored = []
    for path in paths:
        exp = [0] * len(order)
        for lv, c in enumerate(path):
            exp[order[lv]] = c
        stored.append(value(exp))
    sparsity = SimpleNamespace(traversalOrder=order, blockMap=block_map or None, dimMetadata=metas)
    return np.array(stored, dtype=dense.dtype), sparsity


@pytest.mark.parametrize(
    ("shape", "order", "block_map", "blocks", "sparse_levels"),
    [
        ((6, 7), [0, 1], [], [], {1}),  # CSR matrix
        ((5, 8), [0, 1, 2], [1], [4], {1}),  # 1x4 blocks, the block dim dense
        ((4, 6), [1, 0], [], [], {0, 1}),  # column-major, both levels sparse
        ((8, 1, 1, 12), [0, 1, 2, 3], [], [], {3}),  # MediaPipe's sparse 1x1 conv weights
        ((4, 6), [0, 1, 2, 3], [0, 1], [2, 3], {1}),  # 2x3 blocks
    ],
)
def test_densify_matches_reference_encoding(shape, order, block_map, blocks, sparse_levels) -> None:
    rng = np.random.default_rng(sum(shape))
    dense = rng.standard_normal(shape).astype(np.float16)
    dense[rng.random(shape) < 0.6] = 0
    if blocks:  # zero whole blocks too, so the CSR level skips some
        dense[: blocks[0] if block_map[0] == 0 else None, : blocks[-1]] = 0
    values, sparsity = _encode(dense, order, block_map, blocks, sparse_levels)
    assert values.size < dense.size
    np.testing.assert_array_equal(densify_values(values, shape, sparsity), dense)


def test_densify_rejects_inconsistent_sparsity() -> None:
    dense = np.eye(3, dtype=np.float32)
    values, sparsity = _encode(dense, [0, 1], [], [], {1})
    with pytest.raises(ValueError, match="3 values"):
        densify_values(values[:2], (3, 3), sparsity)


# ------------------------------------------------------------------------------- Convolution2DTransposeBias


def test_transpose_conv_bias_options() -> None:
    assert transpose_conv_bias_options(struct.pack("<iii", 1, 2, 3)) == (0, 2, 3)  # SAME
    assert transpose_conv_bias_options(struct.pack("<iii", 2, 1, 1)) == (1, 1, 1)  # VALID
    with pytest.raises(ValueError, match="padding"):
        transpose_conv_bias_options(struct.pack("<iii", 0, 1, 1))
    with pytest.raises(ValueError, match="12 option bytes"):
        transpose_conv_bias_options(b"\x01\x00")


def _custom_deconv_model(path: Path, x_shape, w: np.ndarray, b: np.ndarray, out_shape, padding: int, stride) -> None:
    """A one-op TFLite file: MediaPipe's Convolution2DTransposeBias(input, weights OHWI, bias)."""
    schema, flatbuffer_utils = tflite_schema(), flatbuffer_tools()

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = []
    for name, shape, data in (("x", x_shape, None), ("w", w.shape, w), ("b", b.shape, b), ("y", out_shape, None)):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name.encode(), np.array(shape, dtype=np.int32), 0
        tensor.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(data.astype(np.float32).tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            tensor.buffer = len(model.buffers) - 1
        sg.tensors.append(tensor)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = b"Convolution2DTransposeBias"
    model.operatorCodes = [code]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1, 2], dtype=np.int32), np.array([3], dtype=np.int32)
    op.customOptions = np.frombuffer(struct.pack("<iii", padding, stride[1], stride[0]), dtype=np.uint8)
    sg.operators = [op]
    sg.inputs, sg.outputs = np.array([0], dtype=np.int32), np.array([3], dtype=np.int32)
    model.subgraphs = [sg]
    path.write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _run_litert(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from modelport.backends.litert import import_litert_interpreter

    interp = import_litert_interpreter().Interpreter(model_path=str(path))
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], feeds[d["name"]])
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def _deconv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """Transposed convolution with kernel == stride (no overlap, no padding): each input pixel paints a block."""
    n, h, wd, _ = x.shape
    o, k, _, _ = w.shape
    y = np.einsum("nhwi,oyxi->nhywxo", x, w).reshape(n, h * k, wd * k, o)
    return y + b


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 1), (3, 2, 1), (3, 1, 2)])
def test_convolution2d_transpose_bias_becomes_transpose_conv(tmp_path: Path, kernel, stride, padding) -> None:
    from modelport.conversion.tflite_prep import _opcode_name

    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.standard_normal((1, 5, 4, 3)).astype(np.float32)
    w = rng.standard_normal((2, kernel, kernel, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    size = [d * stride if padding == 1 else (d - 1) * stride + kernel for d in x.shape[1:3]]
    src = tmp_path / "deconv.tflite"
    _custom_deconv_model(src, x.shape, w, b, (1, *size, 2), padding, (stride, stride))
    before = src.read_bytes()
    prepared = prepare_tflite(src, tmp_path / "work")
    assert src.read_bytes() == before
    assert prepared.path != src and "TRANSPOSE_CONV" in prepared.notes[0]
    model = flatbuffer_tools().read_model(str(prepared.path))
    assert [_opcode_name(model, op) for op in model.subgraphs[0].operators] == ["TRANSPOSE_CONV"]
    got = _run_litert(prepared.path, {"x": x})["y"]
    np.testing.assert_allclose(got, _run_litert(src, {"x": x})["y"], rtol=1e-5, atol=1e-5)  # XNNPACK's custom op
    if kernel == stride:
        np.testing.assert_allclose(got, _deconv_reference(x, w, b, stride), rtol=1e-5, atol=1e-5)


def test_plain_model_is_left_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / "deconv.tflite"
    w, b = rng.standard_normal((2, 2, 2, 3)), np.zeros(2)
    _custom_deconv_model(src, (1, 4, 4, 3), w, b, (1, 8, 8, 2), 1, (2, 2))
    once = prepare_tflite(src, tmp_path / "a")
    again = prepare_tflite(once.path, tmp_path / "b")
    assert again.path == once.path and not again.changed and again.state == ()


# ----------------------------------------------------------------------------------------------- explicit state


def _corpus_path(model_id: str) -> Path:
    spec = importlib.util.spec_from_file_location("_tflite_prep_corpus", TESTS / "corpus" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.corpus_path(model_id))


@pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")
def test_state_made_explicit_on_okay_nabu(tmp_path: Path) -> None:
    from modelport.backends.litert import import_litert_interpreter

    src = _corpus_path("micro_ww_okay_nabu")
    prepared = prepare_tflite(src, tmp_path)
    assert len(prepared.state) == 6 and any("initial state" in n for n in prepared.notes)
    assert all(v.input_name.startswith(STATE_INPUT_PREFIX) and v.output_name.startswith(STATE_OUTPUT_PREFIX)
               for v in prepared.state)  # fmt: skip
    interp = import_litert_interpreter().Interpreter
    fresh = interp(model_path=str(src), experimental_preserve_all_tensors=True)
    explicit = interp(model_path=str(prepared.path), experimental_preserve_all_tensors=True)
    fresh.allocate_tensors()
    explicit.allocate_tensors()
    names_a = {d["name"]: d["index"] for d in fresh.get_tensor_details()}
    names_b = {d["name"]: d["index"] for d in explicit.get_tensor_details()}
    logits = next(n for n in names_a if "dense_1/MatMul" in n)  # the classifier before its sigmoid
    audio = fresh.get_input_details()[0]
    inputs = {d["name"]: d["index"] for d in explicit.get_input_details()}
    outputs = {d["name"]: d["index"] for d in explicit.get_output_details()}
    assert set(inputs) == {audio["name"], *prepared.initial_state()}
    state, rng = prepared.initial_state(), np.random.default_rng(0)
    for _ in range(4):  # the first call from the initial state, then the state fed back
        x = rng.integers(-128, 128, audio["shape"]).astype(np.int8)
        fresh.set_tensor(audio["index"], x)
        fresh.invoke()
        explicit.set_tensor(inputs[audio["name"]], x)
        for name, value in state.items():
            explicit.set_tensor(inputs[name], value)
        explicit.invoke()
        np.testing.assert_array_equal(explicit.get_tensor(names_b[logits]), fresh.get_tensor(names_a[logits]))
        state = {v.input_name: explicit.get_tensor(outputs[v.output_name]) for v in prepared.state}


def test_state_with_computed_initial_value_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # this synthetic file reads a tensor no operator writes, which check_tflite (prepare_tflite's first step)
    # already refuses as corrupt; switched off here to reach the state rule behind it
    monkeypatch.setattr("modelport.backends.litert_check.check_tflite", lambda path: None)
    model = flatbuffer_tools().read_model(str(_corpus_path("micro_ww_okay_nabu")))
    init = model.subgraphs[1]
    init.tensors[init.operators[1].inputs[1]].buffer = 0  # the first initial value is no longer a constant
    src = tmp_path / "computed_init.tflite"
    flatbuffer_tools().write_model(model, str(src))
    with pytest.raises(ConversionError, match=r"CALL_ONCE init subgraph.*ASSIGN_VARIABLE") as err:
        prepare_tflite(src, tmp_path / "work")
    assert err.value.hint


def test_openvino_stateful_streams_like_litert(tmp_path: Path) -> None:
    """OpenVINO reads the prepared file; its state becomes OpenVINO variables initialised like CALL_ONCE does."""
    import openvino as ov

    from modelport.backends.litert import import_litert_interpreter
    from modelport.conversion.tflite_prep import openvino_stateful

    prepared = prepare_tflite(_corpus_path("micro_ww_okay_nabu"), tmp_path)
    model = openvino_stateful(ov.convert_model(str(prepared.path)), prepared.state)
    assert [i.get_any_name() for i in model.inputs] == ["serving_default_input_audio:0"]
    assert len(model.outputs) == 1 and len(model.get_sinks()) == len(prepared.state)
    # the state's Assigns are the only sinks; expose their values as outputs too, to compare them
    for sink in model.get_sinks():
        model.add_outputs(sink.input_value(0))
    request = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    explicit = import_litert_interpreter().Interpreter(model_path=str(prepared.path))
    explicit.allocate_tensors()
    inputs = {d["name"]: d["index"] for d in explicit.get_input_details()}
    outputs = {d["name"]: d["index"] for d in explicit.get_output_details()}
    state, rng = prepared.initial_state(), np.random.default_rng(1)
    for _ in range(4):
        x = rng.integers(-128, 128, (1, 3, 40)).astype(np.int8)
        explicit.set_tensor(inputs["serving_default_input_audio:0"], x)
        for name, value in state.items():
            explicit.set_tensor(inputs[name], value)
        explicit.invoke()
        got = list(request.infer({0: x}).values())
        np.testing.assert_array_equal(got[0], explicit.get_tensor(outputs["StatefulPartitionedCall:0"]))
        new = [explicit.get_tensor(outputs[v.output_name]) for v in prepared.state]
        for expected, value in zip(new, got[1:], strict=True):
            np.testing.assert_array_equal(value, expected)
        state = {v.input_name: value for v, value in zip(prepared.state, new, strict=True)}


def test_onnx_state_inputs_default_to_the_initial_state() -> None:
    """tf_onnx gives each state input its initial value as a default: omitted, it is used; fed, it is overridden."""
    import onnx.parser
    import onnxruntime as ort

    from modelport.conversion.tf_onnx import with_initial_state
    from modelport.conversion.tflite_prep import StateVariable

    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        step (int8[1,3] x, int8[1,3] "state:s") => (int8[1,3] y, int8[1,3] "new_state:s") {
            y = Add(x, "state:s")
            "new_state:s" = Identity(x)
        }""")
    initial = np.array([[-128, 5, 7]], dtype=np.int8)
    proto = with_initial_state(proto, [StateVariable("s", "state:s", "new_state:s", initial)])
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString())
    assert [i.name for i in session.get_inputs()] == ["x"]
    x = np.ones((1, 3), dtype=np.int8)
    np.testing.assert_array_equal(session.run(["y"], {"x": x})[0], x + initial)
    np.testing.assert_array_equal(session.run(["y"], {"x": x, "state:s": x})[0], x + x)
    with pytest.raises(ConversionError, match="dropped the state input"):
        with_initial_state(proto, [StateVariable("t", "state:t", "", initial)])
