"""Per-tensor comparison: matching two traces, the first divergence, the report, ``compare --per-tensor``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelport.backends.trace import Trace, TracedOp, TraceUnavailable
from modelport.cli.main import main
from modelport.divergence import api
from modelport.divergence.analysis import compare_traces
from modelport.divergence.api import BisectOptions, DivergenceReport, bisect
from modelport.divergence.report import condensed, first_line, matched_line, to_html
from modelport.edit import rename
from modelport.edit.base import CheckOptions
from modelport.errors import InvalidInputError

CONVS = 7
FAULT = 5  # the perturbed conv (0-based): deep in the graph


def conv_net(seed: int = 0, channels: int = 3) -> onnx.ModelProto:
    """x[1,C,12,12] → (Conv 3×3 → Relu) × CONVS → GlobalAveragePool → Flatten → y[1,8]."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev, cin = [], [], "x", channels
    for i in range(CONVS):
        w = (rng.standard_normal((8, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, f"b{i}"),
        ]
        nodes.append(
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"conv{i}"], name=f"Conv_{i}", pads=[1, 1, 1, 1])
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], name=f"Relu_{i}"))
        prev, cin = f"relu{i}", 8
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["pool"], name="Pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["y"], name="Flatten"))
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def perturbed(model: onnx.ModelProto, conv: int = FAULT, weight: str | None = None) -> onnx.ModelProto:
    """A copy with one conv's weights perturbed by ~5 %."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    name = weight or f"w{conv}"
    for init in out.graph.initializer:
        if init.name == name:
            w = numpy_helper.to_array(init)
            noise = np.random.default_rng(7).standard_normal(w.shape).astype(np.float32) * 0.05 * np.abs(w).mean()
            init.CopyFrom(numpy_helper.from_array(w + noise, name))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("per_tensor")
    net = conv_net()
    renamed = rename(net, replace=[("conv", "k_"), ("relu", "act_"), ("x", "image"), ("pool", "gap")],
                     check=CheckOptions(verify=False)).model  # fmt: skip
    paths = {
        "ref": net,
        "fault": perturbed(net),
        "renamed_fault": perturbed(renamed, weight="w5"),
        "other_input": conv_net(channels=4),
    }
    out = {k: d / f"{k}.onnx" for k in paths}
    for k, m in paths.items():
        onnx.save(m, str(out[k]))
    return out


def test_planted_fault_named_first(models: dict[str, Path]) -> None:
    report = bisect([models["ref"], models["fault"]])
    div = report.divergence
    assert div is not None and report.mode == "per-tensor" and not report
    assert div.first is not None and div.first.reference == f"conv{FAULT}" and div.first.op_type == "Conv"
    assert div.first.op == f"Conv_{FAULT}"
    assert all(t.passed for t in div.tensors[: 2 * FAULT])  # every tensor before the fault is within tolerance
    assert all(t.matched_by == "name" for t in div.tensors) and len(div.tensors) == div.reference_tensors
    assert not div.outputs_passed
    line = first_line(div)
    assert line.startswith(f"first tensor beyond tolerance: conv{FAULT} (op Conv Conv_{FAULT})")
    assert f"relu{FAULT - 1}" in line and "(pass)" in line


def test_correct_pair_onnx_openvino(models: dict[str, Path]) -> None:
    report = bisect([models["ref"], models["ref"]], ["onnxruntime", "openvino"])
    div = report.divergence
    assert div is not None and report.runtimes == ("onnxruntime", "openvino")
    assert div.first is None and not div.failed and div.outputs_passed and report
    assert len(div.tensors) >= 0.9 * div.reference_tensors
    assert "no tensor beyond tolerance" in first_line(div)


def test_renamed_tensors_matched_by_shape_and_order(models: dict[str, Path]) -> None:
    div = bisect([models["ref"], models["renamed_fault"]]).divergence
    assert div is not None
    counts = div.matched_counts()
    assert counts["shape+order"] >= 2 * CONVS and len(div.tensors) >= 0.9 * div.reference_tensors
    assert all(t.candidate == t.reference.replace("conv", "k_").replace("relu", "act_") for t in div.tensors[:-2])
    assert div.first is not None and div.first.reference == f"conv{FAULT}" and div.first.candidate == f"k_{FAULT}"
    assert "by shape+order" in matched_line(div)


def _trace(names: list[tuple[str, tuple[int, ...]]], seed: int = 0, runtime: str = "onnxruntime") -> Trace:
    rng = np.random.default_rng(seed)
    tensors = {n: rng.standard_normal(s).astype(np.float32) for n, s in names}
    ops = tuple(
        TracedOp(f"op_{n}", "Relu", (prev,), (n,))
        for prev, (n, _) in zip(["x", *list(tensors)[:-1]], names, strict=True)
    )
    return Trace(runtime, Path(f"{runtime}.onnx"), ops, tensors, {}, (names[-1][0],))


def test_layout_permutation_and_values_decide() -> None:
    """NHWC candidate tensors match NCHW ones; among equal shapes the values pick the match."""
    ref = _trace([("a", (1, 4, 5, 6)), ("b", (1, 4, 5, 6))])
    a, b = ref.tensors["a"], ref.tensors["b"]
    cand = Trace(
        "litert", Path("c.tflite"), (), {"p": b.transpose(0, 2, 3, 1), "q": a.transpose(0, 2, 3, 1)}, {}, ("p",)
    )
    div = compare_traces(ref, cand)
    assert [(t.reference, t.candidate, t.matched_by) for t in div.tensors] == [("a", "q", "shape+order")]
    assert div.tensors[0].passed and div.tensors[0].max_abs == 0.0


def test_aliases_and_first_skips_inherited_errors() -> None:
    ref = _trace([("a", (2, 3)), ("b", (2, 3)), ("c", (2, 3))])
    bad = {k: v.copy() for k, v in ref.tensors.items()}
    bad["b"] += 1.0
    bad["c"] += 2.0
    cand = Trace("openvino", Path("m.xml"), (), {"A": bad["a"], "B": bad["b"], "C": bad["c"]}, {}, ("C",),
                 aliases={"B": ("b",), "C": ("c",)})  # fmt: skip
    div = compare_traces(ref, cand)
    assert [t.matched_by for t in div.tensors] == ["shape+order", "alias", "alias"]
    assert div.first is not None and div.first.reference == "b"  # c fails too, but its input b already failed
    assert [t.reference for t in div.failed] == ["b", "c"]


def test_fused_inputs_point_upstream() -> None:
    """The candidate fused b away (a conv into its relu): c's nearest matched tensor behind b is a."""
    ref = _trace([("a", (2, 6)), ("b", (3, 4)), ("c", (2, 6)), ("d", (2, 6))])
    bad = {"A": ref.tensors["a"], "C": ref.tensors["c"] * 1.01, "D": ref.tensors["d"] + 1.0}
    div = compare_traces(ref, Trace("litert", Path("m.tflite"), (), bad, {}, ("D",)))
    assert [(t.reference, t.candidate) for t in div.tensors] == [("a", "A"), ("c", "C"), ("d", "D")]
    assert div.first is not None and div.first.reference == "c" and div.first.upstream == ("a",)
    assert "b (not matched); nearest matched upstream: a 0 (pass)" in first_line(div)


def test_condensed_table_and_html(tmp_path: Path, models: dict[str, Path]) -> None:
    div = bisect([models["ref"], models["fault"]]).divergence
    assert div is not None
    rows = condensed(div, limit=6)
    names = [r.reference for r in rows]
    assert names[0] == div.tensors[0].reference and names[-1] == div.tensors[-1].reference
    assert f"conv{FAULT}" in names and f"relu{FAULT - 1}" in names and len(rows) <= 8
    page = to_html(div, tmp_path / "p.html").read_text()
    assert page.count("<svg") == 1 and "first divergence: conv5" in page and "stroke-dasharray" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_different_inputs(models: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match="different inputs"):
        bisect([models["ref"], models["other_input"]])


def test_nothing_matchable(tmp_path: Path, models: dict[str, Path]) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])
    y = helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1, 1, 1])
    node = helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1)
    other = helper.make_model(helper.make_graph([node], "sum", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    other.ir_version = 8
    onnx.save(other, str(tmp_path / "sum.onnx"))
    with pytest.raises(InvalidInputError, match=r"no tensor of sum\.onnx"):
        bisect([models["ref"], tmp_path / "sum.onnx"])
    with pytest.raises(InvalidInputError, match="two models"):
        bisect([models["ref"]])


def test_untraceable_runtime_falls_back_to_bisection(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path]) -> None:
    def refuse(runtime: str, *_args: object, **_kw: object) -> Trace:
        raise TraceUnavailable(f"{runtime} cannot expose intermediate tensors")

    monkeypatch.setattr(api, "trace", refuse)
    report = bisect([models["ref"], models["fault"]])
    assert report.mode == "bisect" and report.divergence is None and report.bisection is not None
    assert "bisected instead" in report.note and not report
    assert DivergenceReport.from_json(report.to_json()) == report


def test_options_and_json_round_trip(tmp_path: Path, models: dict[str, Path]) -> None:
    feeds = {"x": np.full((1, 3, 12, 12), 0.5, np.float32)}
    report = bisect([models["ref"], models["ref"]], options=BisectOptions(feeds=feeds, threads=1))
    assert report and report.feeds == (("x", (1, 3, 12, 12), "float32"),)
    out = report.write(tmp_path / "r")
    assert (out / "report.json").exists() and "<svg" in (out / "report.html").read_text()
    again = DivergenceReport.from_json((out / "report.json").read_text())
    assert again.divergence == report.divergence
    with pytest.raises(InvalidInputError, match="unknown mode"):
        bisect([models["ref"], models["ref"]], options=BisectOptions(mode="sideways"))


def test_cli_per_tensor(tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    html = tmp_path / "out.html"
    code = main(["compare", str(models["ref"]), str(models["fault"]), "--per-tensor", "--html", str(html)])
    text = capsys.readouterr().out
    assert code == 1
    assert f"first tensor beyond tolerance: conv{FAULT} (op Conv Conv_{FAULT})" in text
    assert f"matched {2 * CONVS + 2} of {2 * CONVS + 2} tensors: {2 * CONVS + 2} by name" in text
    assert "error along the graph" in text and html.exists()
    code = main(["compare", str(models["ref"]), "-r", "onnxruntime,openvino", "--per-tensor"])
    text = capsys.readouterr().out
    assert code == 0 and "no tensor beyond tolerance" in text
    assert main(["compare", str(models["ref"]), "--html", str(html)]) == 2
    assert main(["compare", str(models["ref"]), str(models["fault"]), "--bisect"]) == 1
    assert f"diverges at Conv_{FAULT} (Conv)" in capsys.readouterr().out
    assert main(["compare", str(models["ref"]), str(models["fault"]), "--per-tensor", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["divergence"]["first"]["reference"] == f"conv{FAULT}" and data["mode"] == "per-tensor"


def test_a_doubtful_shape_match_that_fails_is_dropped_not_flagged() -> None:
    """A same-shaped tensor that only resembles the reference's (cosine 0.5–0.99) and fails is another tensor — a
    folded BatchNorm's scale beside its conv in OpenVINO — so it is left unmatched instead of flagging a correct port;
    a sure one (cosine ≥ 0.99) that fails is flagged."""
    ref = _trace([("a", (2, 64)), ("b", (2, 64)), ("c", (2, 64))])
    a, b, c = (ref.tensors[n] for n in "abc")
    noise = np.random.default_rng(9).standard_normal(b.shape).astype(np.float32)
    loose = Trace("openvino", Path("m.xml"), (), {"A": a, "B": b + 0.8 * noise, "C": c}, {}, ("C",))
    div = compare_traces(ref, loose)
    assert [t.reference for t in div.tensors] == ["a", "c"] and div.first is None
    close = Trace("openvino", Path("m.xml"), (), {"A": a, "B": b + 0.02 * noise, "C": c}, {}, ("C",))
    div = compare_traces(ref, close)
    assert [t.reference for t in div.tensors] == ["a", "b", "c"]
    assert div.first is not None and div.first.reference == "b"
