"""Reports: JSON serialization of report dataclasses, the environment, doctor, and the renderers."""

from __future__ import annotations

import dataclasses
import enum
import json
import math

import pytest

from modelport.backends.runner import RunnerInfo
from modelport.benchmark.timing import LatencyStats
from modelport.data.metrics import TaskMetrics
from modelport.diagnostics import doctor
from modelport.formats import Format, Precision
from modelport.porting.pipeline import PortReport, TargetResult
from modelport.porting.render import HEADERS, port_html, port_markdown, target_rows
from modelport.reports.environment import Environment, capture_environment, package_versions
from modelport.reports.render import bar_chart_svg
from modelport.reports.serialize import JsonReport, from_json, to_json, to_jsonable
from modelport.verify.compare import Comparison, OutputMetrics, Tolerance


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Leaf(JsonReport):
    name: str
    value: float
    color: Color
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Tree(JsonReport):
    leaves: tuple[Leaf, ...]
    pair: tuple[int, str]
    maybe: Leaf | None
    level: Level
    scores: dict[str, float]
    by_color: dict[Color, int]
    optional: float | None
    table: tuple[tuple[str, int], ...]
    flag: bool
    count: int
    dim: int | str | None = None


def _tree(value: float = 1.5) -> Tree:
    return Tree(
        leaves=(Leaf("a", value, Color.RED, ("x", "y")), Leaf("b", -math.inf, Color.BLUE)),
        pair=(3, "three"),
        maybe=None,
        level=Level.HIGH,
        scores={"p50": 0.25, "inf": math.inf},
        by_color={Color.RED: 1, Color.BLUE: 2},
        optional=None,
        table=(("k", 1), ("l", 2)),
        flag=True,
        count=7,
        dim="batch",
    )


def test_round_trip_nested() -> None:
    tree = _tree()
    text = tree.to_json()
    data = json.loads(text)  # valid JSON (no bare Infinity/NaN)
    assert data["leaves"][0] == {"name": "a", "value": 1.5, "color": "red", "tags": ["x", "y"]}
    assert data["leaves"][1]["value"] == "-inf"
    assert data["level"] == 2
    assert data["by_color"] == {"red": 1, "blue": 2}
    assert data["maybe"] is None
    again = Tree.from_json(text)
    assert again == tree
    assert isinstance(again.leaves, tuple) and isinstance(again.leaves[0], Leaf)
    assert again.leaves[0].color is Color.RED and again.level is Level.HIGH
    assert again.pair == (3, "three")
    assert set(again.by_color) == {Color.RED, Color.BLUE}


def test_round_trip_nan_and_optional_values() -> None:
    tree = dataclasses.replace(_tree(math.nan), maybe=Leaf("m", 0.0, Color.BLUE), optional=math.nan, dim=4)
    text = to_json(tree, indent=None)
    assert "NaN" not in text
    again = from_json(Tree, text)
    assert math.isnan(again.leaves[0].value) and math.isnan(again.optional or 0.0)
    assert again.maybe == Leaf("m", 0.0, Color.BLUE)
    assert again.dim == 4
    assert again.to_json(indent=None) == text


def test_round_trip_type_errors() -> None:
    data = json.loads(_tree().to_json())
    data["count"] = "seven"
    with pytest.raises(TypeError, match="expected an integer"):
        Tree.from_json(json.dumps(data))
    data = json.loads(_tree().to_json())
    data["level"] = 9
    with pytest.raises(ValueError):
        Tree.from_json(json.dumps(data))


def test_to_jsonable_numpy_scalars() -> None:
    import numpy as np

    assert to_jsonable({"a": np.float32(0.5), "b": np.int64(3), "c": np.float64(np.nan)}) == {
        "a": 0.5,
        "b": 3,
        "c": "nan",
    }


def test_environment() -> None:
    env = capture_environment()
    assert env.cpu_count > 0
    assert env.memory_gb > 0
    versions = env.package_versions
    assert "onnx" in versions and "onnxruntime" in versions and "numpy" in versions
    import onnxruntime

    assert versions["onnxruntime"] == onnxruntime.__version__
    assert env.python.count(".") == 2
    assert all(isinstance(f, str) for f in env.cpu_flags)
    assert env.cpu_model in env.summary()
    assert Environment.from_json(env.to_json()) == env


def test_package_versions_skips_missing() -> None:
    assert package_versions(("numpy", "no-such-distribution-xyz")) == (("numpy", package_versions(("numpy",))[0][1]),)


def test_doctor() -> None:
    report = doctor()
    runtimes = {r.name: r for r in report.runtimes}
    assert runtimes["onnxruntime"].available
    assert "CPUExecutionProvider" in runtimes["onnxruntime"].devices
    assert runtimes["openvino"].available
    assert "CPU" in runtimes["openvino"].devices
    assert runtimes["openvino"].version
    for r in report.runtimes:
        assert r.available or r.detail  # a missing runtime says why
    assert report.environment.cpu_count > 0
    assert json.loads(report.to_json())["runtimes"][0]["name"] == "onnxruntime"


# --- renderers ---------------------------------------------------------------------------------------


def _runner(runtime: str, executed: str) -> RunnerInfo:
    return RunnerInfo(runtime, "1.0", "cpu", executed, executed, 1)


def _latency(p50: float) -> LatencyStats:
    return LatencyStats(
        n=10, mean_ms=p50, stdev_ms=0.1, min_ms=p50 / 2, p50_ms=p50, p90_ms=p50 * 1.5, p99_ms=p50 * 2, max_ms=p50 * 3
    )


def _verification(max_abs: float, passed: bool, precision: str) -> Comparison:
    metrics = OutputMetrics("y", (1, 4), "float32", max_abs, max_abs, max_abs, 1.0, 0.0 if passed else 0.5, passed)
    return Comparison("ref", "cand", Tolerance.for_precision(precision), (metrics,))


def _report() -> PortReport:
    targets = (
        TargetResult(
            "onnxruntime",
            Precision.FP32,
            "verified",
            artifact="a/model.onnx",
            size_bytes=2048,
            runner=_runner("onnxruntime", "fp32"),
            verification=_verification(1e-7, True, "fp32"),
            latency=_latency(0.5),
            throughput=2000.0,
            accuracy=TaskMetrics("mnist-test", 100, 0.99, 1.0),
        ),
        TargetResult(
            "openvino",
            Precision.FP16,
            "mismatch",
            reason="output 'y': max abs 0.5 <too much>",
            artifact="b/model.xml",
            size_bytes=1024,
            runner=_runner("openvino", "fp32"),
            verification=_verification(0.5, False, "fp16"),
            latency=_latency(0.25),
            throughput=4000.0,
        ),
        TargetResult("onnxruntime", Precision.BF16, "skipped", reason="onnxruntime does not run bf16 on CPU"),
    )
    return PortReport(
        source="model.onnx",
        source_format=Format.ONNX,
        source_nodes=4,
        optimization=None,
        batch=1,
        feeds="random, seed 0",
        source_accuracy=TaskMetrics("mnist-test", 100, 0.99, 1.0),
        targets=targets,
        fastest="onnxruntime/fp32",
        environment=capture_environment(),
        seconds=1.0,
    )


def test_port_markdown() -> None:
    report = _report()
    md = port_markdown(report)
    assert "| " + " | ".join(HEADERS) + " |" in md
    assert "| target | executes | status | p50 ms | speed-up vs baseline |" in md
    for t in report.targets:
        assert f"| {t.label}" in md
    fp32 = str(Tolerance.for_precision("fp32")).replace("|", "\\|")  # escaped in a Markdown cell
    assert f"| onnxruntime/fp32 ★ | fp32 | verified | 0.500 | – | 2,000 (1) | 2.0 KiB | 99.00% | {fp32} |" in md
    assert "- mismatch: output 'y': max abs 0.5 <too much>" in md  # in the details, not the table
    assert "| onnxruntime/bf16 | – | skipped | – |" in md
    assert "- skipped: onnxruntime does not run bf16 on CPU" in md
    assert "- fastest verified target (latency): **onnxruntime/fp32**" in md
    assert "source accuracy: top-1 99.00% on 100 samples of mnist-test" in md
    assert "PortReport" not in md


def test_target_rows_without_reason() -> None:
    rows = target_rows(_report(), with_reason=False)
    assert [r[2] for r in rows] == ["verified", "mismatch", "skipped"]
    assert all(len(r) == len(HEADERS) for r in rows)
    assert rows[0][7] == "99.00%" and rows[0][6] == "2.0 KiB"
    # a mismatched target still shows how far off it is and against which tolerance
    assert rows[1][7] == "5.00e-01" and rows[1][8] == str(Tolerance.for_precision("fp16"))


def test_port_html() -> None:
    html = port_html(_report())
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert html.count("<svg") == 1  # the accuracy-vs-latency scatter
    assert "&lt;too much&gt;" in html and "<too much>" not in html
    assert '<td class="l bad">' in html and '<td class="l ok">' in html
    assert "#e2762a" in html  # the Pareto front is highlighted
    # the summary is HTML, not escaped Markdown
    assert "<li><b>source:</b> <code>model.onnx</code>" in html
    assert "<li><b>fastest verified target (latency):</b> <strong>onnxruntime/fp32</strong>" in html
    assert "**" not in html and "`" not in html and "# modelport" not in html


def test_bar_chart_svg_skips_missing_values() -> None:
    svg = bar_chart_svg("t<1>", ["a", "b", "c"], [1.0, None, 4.0], "ms", highlight="c")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 2
    assert "t&lt;1&gt;" in svg
    assert 'width="380.0"' in svg  # the largest value spans the whole bar area: 640 − 170 (labels) − 90 (value)
    empty = bar_chart_svg("none", [], [], "ms")
    assert "<rect" not in empty
