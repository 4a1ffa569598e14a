"""The port report's renderers: target table, details section, accuracy-vs-latency scatter, rich tables."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

from rich.console import Console

from modelport.backends.runner import RunnerInfo
from modelport.benchmark.timing import LatencyStats
from modelport.data.metrics import TaskMetrics
from modelport.formats import Format, Precision
from modelport.porting.render import HEADERS, port_html, port_markdown, rich_tables, route_text, target_rows
from modelport.porting.results import PortReport, SettingTrial, TargetResult, Throughput
from modelport.porting.scatter import pareto_front, scatter_svg
from modelport.reports.environment import Environment
from modelport.verify.comparator import Comparison
from modelport.verify.metrics import OutputMetrics
from modelport.verify.tolerance import Tolerance

LONG_REASON = (
    "output 'logits' max abs error 0.731 (bound 0.0123 + 0.01·ref), 3.20% of elements outside fp16: rtol=0.01, "
    "atol_eff=0.0123, rel-L2 ≤ 0.02 (fp16 accumulation in the attention softmax overflows on <this> input)"
)
INT8_VERDICT = "INT8 verdict: top-1 drop 0.60 points ≤ 1 point, kept\nrecovery: none needed (first attempt verified)"


def _latency(p50: float) -> LatencyStats:
    return LatencyStats(n=20, mean_ms=p50, stdev_ms=0.01, min_ms=p50, p50_ms=p50, p90_ms=p50, p99_ms=p50, max_ms=p50)


def _verification(precision: str, rel_l2: float, passed: bool = True) -> Comparison:
    tol = dataclasses.replace(Tolerance.for_precision(precision), effective=(("logits", 1e-3),))
    out = OutputMetrics(
        "logits", (1, 1000), "float32", rel_l2 * 10, 1.0, rel_l2, 1 - rel_l2, 0.0, passed, rel_l2=rel_l2
    )
    return Comparison("source", "target", tol, (out,))


def _target(runtime: str, precision: Precision, p50: float, top1: float | None, **kw: object) -> TargetResult:
    fields: dict[str, object] = {
        "status": "verified",
        "artifact": f"out/targets/{runtime}-{precision.value}/model",
        "size_bytes": 25 * 2**20 if precision != Precision.INT8 else 6 * 2**20,
        "runner": RunnerInfo(runtime, "1.0", "cpu", precision.value, precision.value, None),
        "verification": _verification(precision.value, 1e-6 if precision == Precision.FP32 else 1e-2),
        "latency": _latency(p50),
        "throughput": 1000 / p50,
        "accuracy": TaskMetrics("imagenet-val", 500, top1) if top1 is not None else None,
        "speedup": 4.0 / p50,
        "command": f"modelport port model.onnx --to {runtime} --precision {precision.value} -o out",
        "seconds": 3.0,
    }
    fields.update(kw)
    return TargetResult(runtime, precision, **fields)  # type: ignore[arg-type]


def _environment() -> Environment:
    return Environment(
        "3.11.9", "Linux-x86_64", "x86_64", "Test CPU", 16, ("avx2", "avx512_vnni", "amx_int8"), 64.0, (), (), "now"
    )


def _report(**kw: object) -> PortReport:
    trials = (
        SettingTrial((("threads", "16"),), 4.4),
        SettingTrial((("threads", "8"), ("intra_op_spinning", "0")), 4.0, chosen=True),
        SettingTrial((("threads", "4"),), None, error="session creation failed"),
    )
    targets = (
        _target("onnxruntime", Precision.FP32, 4.0, 0.761, trials=trials, settings=trials[1].settings),
        _target("openvino", Precision.FP32, 3.0, 0.761, route=("onnx → openvino",)),
        _target(
            "openvino",
            Precision.INT8,
            1.0,
            0.755,
            details=INT8_VERDICT,
            throughputs=(Throughput(8, 4.0, 2000.0), Throughput(32, 20.0, 1600.0)),
        ),
        _target("onnxruntime", Precision.INT8, 2.0, 0.750, flags=("slower-than-fp32",)),
        _target(
            "openvino",
            Precision.FP16,
            0.8,
            0.80,
            status="mismatch",
            reason=LONG_REASON,
            verification=_verification("fp16", 0.5, passed=False),
            speedup=None,
        ),
        TargetResult(
            "litert",
            Precision.FP32,
            "failed",
            reason="conversion failed: onnx2tf cannot convert NonMaxSuppression",
            route=("onnx → tflite",),
        ),
        TargetResult("onnxruntime", Precision.BF16, "skipped", reason="onnxruntime does not run bf16 on CPU"),
    )
    fields: dict[str, object] = {
        "source": "model.onnx",
        "source_format": Format.ONNX,
        "source_nodes": 120,
        "optimization": None,
        "batch": 1,
        "feeds": "random, seed 0",
        "source_accuracy": TaskMetrics("imagenet-val", 500, 0.761),
        "targets": targets,
        "fastest": "openvino/int8",
        "environment": _environment(),
        "seconds": 42.0,
        "baseline_ms": 4.0,
        "fastest_throughput": "openvino/int8",
    }
    fields.update(kw)
    return PortReport(**fields)  # type: ignore[arg-type]


def _table_lines(md: str) -> list[str]:
    head = "| " + " | ".join(HEADERS) + " |"
    lines = md.splitlines()
    start = lines.index(head)
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


# --- pareto_front ----------------------------------------------------------------------------------------------


def test_pareto_front_drops_dominated_points() -> None:
    points = [(3.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 3.0), (2.5, 2.0)]
    assert pareto_front(points) == [1, 2, 0]  # by increasing x; (3,3) and (2.5,2) are dominated by (2,2)


def test_pareto_front_ties() -> None:
    assert pareto_front([(1.0, 1.0), (2.0, 0.0), (1.0, 1.0)]) == [0, 2, 1]  # identical points both stay
    assert pareto_front([(1.0, 2.0), (1.0, 1.0)]) == [1]  # same latency, worse: dominated
    assert pareto_front([(2.0, 1.0), (1.0, 1.0)]) == [1]  # same quality, slower: dominated
    assert pareto_front([]) == []
    assert pareto_front([(5.0, 5.0)]) == [0]


# --- Markdown --------------------------------------------------------------------------------------------------


def test_markdown_table_columns_and_speedups() -> None:
    md = port_markdown(_report())
    table = _table_lines(md)
    assert table[0] == "| " + " | ".join(HEADERS) + " |"
    for col in ("status", "p50 ms", "speed-up vs baseline", "best samples/s (batch)", "size", "tolerance"):
        assert col in HEADERS
    assert len(table) == 2 + 7
    assert table[2].startswith("| onnxruntime/fp32 | fp32 | verified | 4.000 | 1.00× | 250 (1) | 25.0 MiB | 76.10% |")
    # the fastest for latency and throughput; best throughput over the batch sizes measured
    assert table[4].startswith("| openvino/int8 ★◆ | int8 | verified | 1.000 | 4.00× | 2,000 (8) | 6.0 MiB | 75.50% |")
    assert "| openvino/fp16 | fp16 | mismatch | 0.800 | – |" in table[6]
    assert "| litert/fp32 | – | failed | – | – | – | – | – | – |" in table
    assert "| onnxruntime/bf16 | – | skipped |" in table[8]
    # the top names both winners, the baseline, the time and the machine's CPU flags
    assert "- fastest verified target (latency): **openvino/int8** — 1.000 ms p50, 4.00× the baseline" in md
    assert "- fastest (throughput): **openvino/int8** — 2,000 samples/s at batch 8" in md
    assert "- baseline: ONNX Runtime FP32, default settings: 4.000 ms p50 at batch 1" in md
    assert "port took 42.0 s for 6 targets" in md
    assert "avx2, avx512_vnni, amx_int8" in md
    assert "Interrupted" not in md


def test_markdown_details_hold_the_long_text() -> None:
    md = port_markdown(_report())
    table = "\n".join(_table_lines(md))
    details = md[md.index("## Details") :]
    assert LONG_REASON not in table and "conversion failed" not in table and "INT8 verdict" not in table
    assert f"- mismatch: {LONG_REASON}" in details
    assert "- failed: conversion failed: onnx2tf cannot convert NonMaxSuppression" in details
    assert "- skipped: onnxruntime does not run bf16 on CPU" in details
    assert details.count("\n### ") == 7  # one entry per target
    assert "  - INT8 verdict: top-1 drop 0.60 points ≤ 1 point, kept\n  - recovery: none needed" in details
    assert "- route: onnx → openvino" in details
    assert "- flags: slower-than-fp32" in details
    assert "- engine settings kept: threads=8, intra_op_spinning=0" in details
    assert "| threads=8, intra_op_spinning=0 | 4.000 | kept |" in details
    assert "| threads=4 | – | session creation failed |" in details
    assert "```bash\nmodelport port model.onnx --to openvino --precision int8 -o out\n```" in details


def test_interrupted_line() -> None:
    report = _report(interrupted=True)
    assert "> **Interrupted (Ctrl-C): this report holds the 6 targets finished" in port_markdown(report)
    assert '<p class="alert">Interrupted (Ctrl-C)' in port_html(report)
    text = _console_text(report)
    assert "Interrupted (Ctrl-C)" in text


def test_route_text() -> None:
    assert route_text(("tflite → onnx", "onnx → openvino")) == "tflite → onnx → openvino"
    assert route_text(("a → b", "c → d")) == "a → b; c → d"
    assert route_text(()) == ""


def test_target_rows_with_reason() -> None:
    rows = target_rows(_report(), with_reason=True)
    assert rows[4][2] == f"mismatch: {LONG_REASON}"
    assert [r[2] for r in target_rows(_report())][4:] == ["mismatch", "failed", "skipped"]


# --- HTML ------------------------------------------------------------------------------------------------------


class _Checker(HTMLParser):
    """Collects the text outside <style> and checks that every non-void element is closed in order."""

    VOID = frozenset({"meta", "br", "rect", "line", "circle", "polyline", "img", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack[-1:] != ["style"]:
            self.text.append(data)


def test_html_parses_and_has_no_stray_markdown() -> None:
    page = port_html(_report())
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    text = "".join(checker.text)
    assert "**" not in text and "`" not in text and "`" not in page
    assert not re.search(r"^\s*\|", text, flags=re.M) and "\\|" not in text  # no Markdown table
    assert "<this>" not in page and "&lt;this&gt;" in page  # escaped
    assert "speed-up vs baseline" in text and "Details" in text
    assert "<strong>openvino/int8</strong>" in page
    assert '<td class="l bad">mismatch</td>' in page and '<td class="l ok">verified</td>' in page
    assert "<pre><code>modelport port model.onnx --to openvino --precision int8 -o out</code></pre>" in page
    # the long reason is in the details, not in the target table
    table = page[page.index('<table class="targets">') : page.index("</table>")]
    assert "fp16 accumulation" not in table and "fp16 accumulation" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def _points(svg: str) -> dict[str, str]:
    """label → the point's circle attributes."""
    found = re.findall(r'<g class="point"><title>[^<]*</title><circle ([^>]*)/><text [^>]*>([^<]*)</text></g>', svg)
    return {label: attrs for attrs, label in found}


def test_scatter_points_and_pareto_front() -> None:
    svg, note = scatter_svg(_report())
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    points = _points(svg)
    # one point per measured target: the failed and skipped ones are not measured and said so
    assert svg.count('class="point"') == 5 == len(points)
    assert set(points) == {"onnxruntime/fp32", "openvino/fp32", "openvino/int8", "onnxruntime/int8", "openvino/fp16"}
    assert note == "Not drawn: litert/fp32 (failed, not measured), onnxruntime/bf16 (skipped, not measured)."
    front = {label for label, attrs in points.items() if 'fill="#e2762a"' in attrs}
    assert front == {"openvino/int8", "openvino/fp32"}  # onnxruntime/fp32 is slower at the same top-1
    # the mismatch is hollow and never on the front, though it is the fastest and most accurate point
    assert 'fill="#fff"' in points["openvino/fp16"]
    assert svg.count("<polyline") == 1
    assert "top-1 accuracy, %" in svg and "(log scale)" not in svg  # 1–4 ms: linear


def test_scatter_without_accuracy_uses_the_verification_error() -> None:
    report = _report()
    targets = tuple(dataclasses.replace(t, accuracy=None) for t in report.targets)
    targets = (*targets[:3], dataclasses.replace(targets[3], latency=_latency(40.0)), *targets[4:])
    svg, _ = scatter_svg(dataclasses.replace(report, targets=targets, source_accuracy=None))
    assert "worst output relative L2 error (log scale, lower is better)" in svg
    assert "p50 latency, ms (log scale)" in svg  # 1–40 ms spans more than 10×
    front = {label for label, attrs in _points(svg).items() if 'fill="#e2762a"' in attrs}
    assert front == {"openvino/fp32", "openvino/int8"}  # onnxruntime/fp32: the same error, slower


def test_scatter_leaves_out_a_target_without_top1() -> None:
    report = _report()
    targets = (dataclasses.replace(report.targets[0], accuracy=None), *report.targets[1:])
    svg, note = scatter_svg(dataclasses.replace(report, targets=targets))
    assert "onnxruntime/fp32" not in _points(svg) and len(_points(svg)) == 4
    assert note.startswith("Not drawn: onnxruntime/fp32 (no top-1), litert/fp32")


def test_scatter_accuracy_axis_stops_at_100() -> None:
    report = _report()
    same = TaskMetrics("mnist-test", 100, 0.9935)
    targets = tuple(dataclasses.replace(t, accuracy=same) if t.latency else t for t in report.targets)
    svg, _ = scatter_svg(dataclasses.replace(report, targets=targets))
    yticks = [float(v) for v in re.findall(r'<text class="ytick"[^>]*>([^<]+)</text>', svg)]
    assert len(yticks) >= 3 and max(yticks) == 100 and min(yticks) < 99.35
    front = {label for label, attrs in _points(svg).items() if 'fill="#e2762a"' in attrs}
    assert front == {"openvino/int8"}  # the same top-1 everywhere: only the fastest verified target


def test_scatter_empty() -> None:
    report = _report()
    svg, note = scatter_svg(dataclasses.replace(report, targets=report.targets[5:]))
    assert svg == "" and note.startswith("Not drawn: litert/fp32")
    assert "<svg" not in port_html(dataclasses.replace(report, targets=report.targets[5:]))


# --- terminal --------------------------------------------------------------------------------------------------


def _console_text(report: PortReport) -> str:
    console = Console(record=True, width=240, color_system=None)
    for table in rich_tables(report):
        console.print(table)
    return console.export_text()


def test_rich_tables() -> None:
    tables = rich_tables(_report())
    assert len(tables) == 2
    assert [str(c.header).replace("\n", " ") for c in tables[0].columns] == HEADERS
    text = _console_text(_report())
    assert "openvino/int8 ★◆" in text and "4.00×" in text and "2,000 (8)" in text
    assert LONG_REASON in text  # in the details list, not the table: the status cell stays one word
    row = next(line for line in text.splitlines() if "openvino/fp16" in line and "0.800" in line)
    assert "mismatch" in row and "fp16 accumulation" not in row
    assert "onnxruntime/bf16: skipped: onnxruntime does not run bf16 on CPU" in text
    assert "onnxruntime/int8: slower-than-fp32" in text


def test_rich_tables_show_markup_literally() -> None:
    report = _report()
    odd = dataclasses.replace(report.targets[6], reason="needs [bold]bf16[/bold] kernels")
    text = _console_text(dataclasses.replace(report, targets=(*report.targets[:6], odd)))
    assert "needs [bold]bf16[/bold] kernels" in text
