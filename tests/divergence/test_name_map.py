"""The tensor-name map recorded at conversion (onnx2tf → TFLite metadata → LiteRT trace aliases) and the *fused
into* accounting of source tensors a converter or runtime merged away (recorded for TFLite, bounded by the graph for
OpenVINO, which records nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_per_tensor import perturbed

from modelport.backends.litert import TensorMap, mapped_names, read_tensor_map
from modelport.backends.trace import Trace, TracedOp, trace
from modelport.conversion import convert
from modelport.divergence.analysis import compare_traces
from modelport.divergence.api import bisect
from modelport.divergence.report import matched_line, to_html

BLOCKS = 4
FAULT = 2  # the block whose conv weights the faulty copy perturbs


def _inits(rng: np.random.Generator, i: int, cin: int) -> list[onnx.TensorProto]:
    w = (rng.standard_normal((8, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
    return [
        numpy_helper.from_array(w, f"w{i}"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), f"b{i}"),
    ]


def swish_net(seed: int = 0) -> onnx.ModelProto:
    """x[1,3,16,16] → Conv → Relu (fused by the TFLite converter) → BLOCKS × (Conv → Sigmoid → Mul, + residual) →
    GlobalAveragePool → Flatten → y. Names with ``:`` and a leading ``/`` (onnx2tf renames those)."""
    rng = np.random.default_rng(seed)
    inits = _inits(rng, 0, 3)
    nodes = [
        helper.make_node("Conv", ["/in:0", "w0", "b0"], ["/stem/conv:0"], name="/stem/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["/stem/conv:0"], ["/stem/relu"], name="/stem/Relu"),
    ]
    prev = "/stem/relu"
    for i in range(1, BLOCKS + 1):
        inits += _inits(rng, i, 8)
        b = f"/blk{i}"
        nodes += [
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"{b}/conv"], name=f"{b}/Conv", pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", [f"{b}/conv"], [f"{b}/sig"], name=f"{b}/Sigmoid"),
            helper.make_node("Mul", [f"{b}/conv", f"{b}/sig"], [f"{b}/act"], name=f"{b}/Mul"),
            helper.make_node("Add", [f"{b}/act", prev], [f"{b}/res"], name=f"{b}/Add"),
        ]
        prev = f"{b}/res"
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["pool"], name="Pool"),
        helper.make_node("Flatten", ["pool"], ["y"], name="Flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "swish",
        [helper.make_tensor_value_info("/in:0", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def ported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The source, a copy with block FAULT's conv perturbed, and the one onnx2tf conversion of the source."""
    d = tmp_path_factory.mktemp("namemap")
    src, fault = d / "swish.onnx", d / "fault.onnx"
    onnx.save(swish_net(), str(src))
    onnx.save(perturbed(swish_net(), weight=f"w{FAULT}"), str(fault))
    return {"src": src, "fault": fault, "tflite": Path(convert(src, "tflite", d / "tflite").artifact)}


@pytest.mark.slow
def test_the_tflite_file_carries_the_onnx_names(ported: dict[str, Path]) -> None:
    tensor_map = read_tensor_map(ported["tflite"])
    assert tensor_map is not None and tensor_map.layers
    names = set(tensor_map.tensors)
    assert {"/stem/conv:0", "/stem/relu", f"/blk{FAULT}/conv", f"/blk{BLOCKS}/res", "y"} <= names  # source names
    assert not any(n.startswith("wa/") or "__" in n for n in names)  # onnx2tf's renaming undone


@pytest.mark.slow
def test_the_trace_aliases_onnx_names_and_records_fusion(ported: dict[str, Path]) -> None:
    x = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)  # NHWC, as onnx2tf lays it out
    feeds = {"/in:0": x, "wa/in__0": x}  # the TFLite input may keep onnx2tf's name for a leading "/"
    got = trace("litert", ported["tflite"], feeds)
    named = {a for names in got.aliases.values() for a in names}
    assert {"/stem/relu", f"/blk{FAULT}/conv", f"/blk{FAULT}/sig", f"/blk{FAULT}/act"} <= named
    assert "/stem/conv:0" not in named  # fused into the Relu: no TFLite tensor holds it
    into = [t for t, sources in got.fused.items() if "/stem/conv:0" in sources]
    assert len(into) == 1 and got.aliases[into[0]] == ("/stem/relu",)


@pytest.mark.slow
def test_alias_matching_covers_the_source(ported: dict[str, Path]) -> None:
    div = bisect([ported["src"], ported["tflite"]], "onnxruntime,litert").divergence
    assert div is not None and div.first is None and div.outputs_passed
    counts = div.matched_counts()
    assert counts["shape+order"] == 0
    assert counts["name"] + counts["alias"] >= 0.9 * div.reference_tensors, counts
    assert div.matched_percent >= 90.0 and div.accounted_percent == 100.0
    assert [(f.reference, f.compared_as, f.how) for f in div.fused] == [("/stem/conv:0", ("/stem/relu",), "recorded")]


@pytest.mark.slow
def test_a_fault_is_named_by_its_onnx_name(ported: dict[str, Path]) -> None:
    # the reference is the perturbed copy: the conv that differs is found in the TFLite port by its ONNX name
    div = bisect([ported["fault"], ported["tflite"]], "onnxruntime,litert").divergence
    assert div is not None and div.first is not None
    assert div.first.reference == f"/blk{FAULT}/conv" and div.first.matched_by == "alias"
    assert all(t.passed for t in div.tensors if t.reference.startswith(tuple(f"/blk{i}/" for i in range(FAULT))))


def conv_bn(tmp: Path) -> Path:
    """x → Conv → BatchNormalization → Relu → y (OpenVINO folds the BatchNorm scale into the Conv)."""
    rng = np.random.default_rng(1)
    inits = _inits(rng, 0, 3) + [
        numpy_helper.from_array(v.astype(np.float32), n)
        for n, v in (
            ("s", 1 + 0.1 * rng.standard_normal(8)),
            ("o", 0.1 * rng.standard_normal(8)),
            ("m", 0.1 * rng.standard_normal(8)),
            ("v", 1 + 0.1 * rng.random(8)),
        )
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["conv"], name="Conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "s", "o", "m", "v"], ["bn"], name="BN"),
        helper.make_node("Relu", ["bn"], ["y"], name="Relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "convbn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp / "convbn.onnx"
    onnx.save(model, str(path))
    return path


def test_openvino_conv_is_fused_into_the_batchnorm(tmp_path: Path) -> None:
    src = conv_bn(tmp_path)
    ir = Path(convert(src, "openvino", tmp_path / "ov").artifact)
    report = bisect([src, ir], "onnxruntime,openvino")
    div = report.divergence
    assert div is not None and div.passed
    assert div.error("conv") is None  # the IR keeps no tensor with the conv's value: nothing compares it
    assert [(f.reference, f.compared_as, f.how) for f in div.fused] == [("conv", ("bn",), "graph")]
    assert div.matched_percent < 100.0 and div.accounted_percent == 100.0
    assert "accounted 100.0 %" in matched_line(div)
    data = report.to_dict()["divergence"]
    assert data["accounted_percent"] == 100.0 and data["fused"][0]["reference"] == "conv"
    assert "fused into matched tensors" in to_html(div, tmp_path / "r.html").read_text()


def _op(name: str, op_type: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> TracedOp:
    return TracedOp(name, op_type, inputs, outputs)


def _trace(ops: list[TracedOp], values: dict[str, np.ndarray], outputs: tuple[str, ...]) -> Trace:
    return Trace("test", Path("m.onnx"), tuple(ops), values, {"x": np.ones(4, np.float32)}, outputs)


def test_a_region_the_candidate_computes_in_more_steps_is_not_fused() -> None:
    v = np.linspace(-1, 1, 64, dtype=np.float32)
    ref = _trace(
        [_op("A", "Relu", ("x",), ("a",)), _op("B", "Sigmoid", ("a",), ("b",)), _op("C", "Mul", ("b",), ("y",))],
        {"a": v, "b": v * 2, "y": v * 3},
        ("y",),
    )
    # the candidate has two unmatched tensors where the reference has one (b): not a fusion, a mismatch
    cand = _trace(
        [
            _op("A", "Relu", ("x",), ("a",)),
            _op("P", "Neg", ("a",), ("p",)),
            _op("Q", "Neg", ("p",), ("q",)),
            _op("C", "Mul", ("q",), ("y",)),
        ],
        {"a": v, "p": -v * 7, "q": v * 9, "y": v * 3},
        ("y",),
    )
    div = compare_traces(ref, cand)
    assert div.error("b") is None and not div.fused and div.accounted_percent == div.matched_percent


def test_the_value_of_a_fused_tflite_tensor_is_its_last_layer() -> None:
    tensor_map = TensorMap(
        {"mm": "tf.linalg.matmul", "fc": "tf.math.add", "pre": "tf.math.add_1", "hs": "tf.clip"},
        ("in", "tf.linalg.matmul", "tf.math.add", "tf.math.add_1", "tf.math.multiply", "tf.math.add_2", "tf.clip"),
    )
    tensors = [
        "m/tf.linalg.matmul/MatMul;m/tf.math.add/Add",  # FULLY_CONNECTED with its bias: the MatMul listed first
        "m/tf.math.add_2/AddV2;m/tf.math.multiply/Mul;m/tf.math.add_1/Add/y;m/tf.math.add_1/Add",  # inside HardSigmoid
        "m/tf.clip/Clip",
    ]
    aliases, fused = mapped_names(tensors, tensor_map)
    assert aliases == {tensors[0]: ("fc",), tensors[2]: ("hs",)}
    assert fused == {tensors[0]: ("mm",)}  # "pre" lives in an intermediate no source name holds: not recorded
