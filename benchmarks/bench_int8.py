"""INT8 vs FP32 on every runtime, side by side in one run: resnet50, mobilenet_v2 and the shipped MNIST ConvNet.

For each model and runtime:
  1. ``modelport.quantization`` builds the INT8 artifact and measures its quality (resnet50/mobilenet_v2 have random
     weights and are calibrated on synthetic data, so their quality is the INT8-vs-FP32 top-1 agreement and output
     cosine on those samples; the MNIST ConvNet is calibrated on 300 MNIST training images and scored on the
     10,000 test images). For ONNX Runtime the benchmark also builds ORT's default S8S8 QDQ to show why
     modelport does not ship it on x86.
  2. Every variant of the model on that runtime — FP32, INT8 (ORT: + S8S8; OpenVINO: + the bf16 execution hint
     that its CPU plugin picks by default on this CPU) — is timed in ``--rounds`` interleaved rounds of ``--iters``
     calls; the table shows the median of the per-round medians and the ratio to FP32 on the same runtime.

    .venv-bench/bin/python benchmarks/export_torchvision.py resnet50 mobilenet_v2 --out benchmarks/.cache
    .venv/bin/python benchmarks/bench_int8.py --out benchmarks/results/int8.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

from modelport.assets import default_model_path
from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.benchmark.timing import BenchConfig, time_callable
from modelport.data import load_samples
from modelport.formats import Precision
from modelport.quantization import QuantizeOptions, QuantizeReport, QuantTypes, quantize
from modelport.quantization.measure import bench_feeds
from modelport.reports.environment import capture_environment

CACHE = Path("benchmarks/.cache")
#: every runtime gets every core (LiteRT's own default is one thread).
THREADS = os.cpu_count() or 1


@dataclasses.dataclass
class Row:
    model: str
    runtime: str
    variant: str
    batch: int
    p50_ms: float
    rounds: list[float]
    size_kib: float
    quality: str
    layers: str


def model_path(name: str) -> Path:
    if name == "mnist":
        return default_model_path()
    path = CACHE / f"{name}.onnx"
    if not path.exists():
        raise SystemExit(f"{path} missing: run benchmarks/export_torchvision.py {name} --out {CACHE}")
    return path


def quality(report: QuantizeReport, variant: str) -> str:
    v = next(v for v in report.variants if v.name == variant)
    m = v.metric
    if m is None:
        return "–"
    if m.top1 is not None:
        drop = f", drop {report.drop:.2f} pt" if variant == "int8" and report.drop is not None else ""
        return f"top-1 {m.top1:.2%}{drop}"
    if v.error is None:
        return "reference"
    cos = min(o.cosine for o in v.error.outputs)
    return f"agree {m.agreement:.1%}, cos {cos:.4f}" if m.agreement is not None else f"cos {cos:.4f}"


def layers(report: QuantizeReport) -> str:
    lay = report.int8.layers
    return "–" if lay is None else f"{lay.int8_ops} int8 ops, {len(lay.float_layers)} float layers"


def build(name: str, runtime: str, work: Path, samples: int, types: QuantTypes = QuantTypes.AUTO) -> QuantizeReport:
    mnist = name == "mnist"
    opts = QuantizeOptions(
        samples=300 if mnist else samples, types=types, bench=BenchConfig(warmup=3, seconds=1.0), threads=THREADS
    )
    return quantize(
        model_path(name),
        work / f"{name}-{runtime}-{types.value}",
        runtime=runtime,
        calib="mnist:train" if mnist else "random",
        eval="mnist:test" if mnist else None,
        options=opts,
    )


def time_variants(
    runtime: str, variants: list[tuple[str, Path, Precision]], feeds: dict, rounds: int, iters: int
) -> dict[str, list[float]]:
    options = {label: RunnerOptions(threads=THREADS, precision=prec) for label, _, prec in variants}
    runners = {label: open_runner(runtime, path, options[label]) for label, path, _ in variants}
    for r in runners.values():
        r.__enter__()
        r.infer(feeds)
    medians: dict[str, list[float]] = {label: [] for label in runners}
    cfg = BenchConfig(warmup=3, iterations=iters)
    try:
        for _ in range(rounds):
            for label, r in runners.items():
                run = r.run_raw
                medians[label].append(statistics.median(time_callable(lambda run=run: run(feeds), cfg)) * 1e3)
    finally:
        for r in runners.values():
            r.__exit__(None, None, None)
    return medians


def bench_model(name: str, runtime: str, args: argparse.Namespace, batches: list[int]) -> list[Row]:
    report = build(name, runtime, args.work, args.samples)
    variants = [("fp32", Path(report.fp32.artifact), Precision.FP32), ("int8", Path(report.artifact), Precision.INT8)]
    extra: dict[str, QuantizeReport] = {}
    if runtime == "onnxruntime" and dict(report.settings).get("activations") != "s8":
        label = "int8 S8S8 (ORT default)"
        extra[label] = build(name, runtime, args.work, args.samples, QuantTypes.S8S8)
        variants.append((label, Path(extra[label].artifact), Precision.INT8))
    if runtime == "openvino":
        variants.append(("bf16 hint (CPU default)", Path(report.source), Precision.BF16))
    with open_runner(runtime, Path(report.fp32.artifact)) as r:
        specs = r.input_specs
    rows: list[Row] = []
    for batch in batches:
        rows += time_model(name, runtime, report, extra, variants, specs, args, batch)
    return rows


def time_model(
    name: str,
    runtime: str,
    report: QuantizeReport,
    extra: dict[str, QuantizeReport],
    variants: list[tuple[str, Path, Precision]],
    specs: list,
    args: argparse.Namespace,
    batch: int,
) -> list[Row]:
    if name == "mnist":
        data, _ = load_samples("mnist:test", specs, role="evaluation", limit=batch)
    else:
        data, _ = load_samples("random", specs, limit=batch)
    feeds = bench_feeds(data, batch)
    iters = args.iters if name != "mnist" else args.iters * 20
    times = time_variants(runtime, variants, feeds, args.rounds, iters)
    rows = []
    for label, _path, _prec in variants:
        rep = extra.get(label, report)
        size = rep.int8.size_bytes if label.startswith("int8") else rep.fp32.size_bytes
        rows.append(
            Row(
                model=name,
                runtime=runtime,
                variant=label,
                batch=batch,
                p50_ms=statistics.median(times[label]),
                rounds=times[label],
                size_kib=size / 1024,
                quality=quality(rep, "int8" if label.startswith("int8") else "fp32") if "bf16" not in label else "–",
                layers=layers(rep) if label.startswith("int8") else "–",
            )
        )
    print(f"{name} {runtime} batch {batch}: " + ", ".join(f"{r.variant} {r.p50_ms:.2f} ms" for r in rows), flush=True)
    return rows


def markdown(rows: list[Row], minutes: float, args: argparse.Namespace) -> str:
    env = capture_environment()
    versions = ", ".join(
        f"{k} {v}" for k, v in env.packages if k in ("onnxruntime", "openvino", "nncf", "numpy", "torch")
    )
    lines = [
        "# INT8 benchmark (`benchmarks/bench_int8.py`)",
        "",
        f"- Machine: {env.cpu_model}, {env.cpu_count} cores (shared with other jobs while measuring)",
        f"- CPU flags that matter for INT8: {', '.join(env.cpu_flags)} "
        f"(AMX {'present' if env.has_flag('amx_int8') else 'absent'})",
        f"- Versions: {versions}, Python {env.python}",
        f"- Threads: {THREADS} on every runtime (LiteRT: XNNPACK on)",
        f"- Timing: {args.rounds} interleaved rounds × {args.iters} calls (MNIST: × {args.iters * 20}); "
        "median of the per-round medians; speed-up = FP32 median / variant median on the same runtime",
        f"- Calibration: resnet50/mobilenet_v2 (random weights) on {args.samples} random samples, quality measured "
        "against FP32 on those samples; MNIST ConvNet on 300 MNIST training images, top-1 on the 10,000 test images",
        f"- Whole benchmark: {minutes:.1f} min",
        "",
        "| model | runtime | variant | batch | p50 ms | speed-up vs FP32 | size KiB | quality | INT8 layers |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        fp32 = next(
            x
            for x in rows
            if x.model == r.model and x.runtime == r.runtime and x.batch == r.batch and x.variant == "fp32"
        )
        lines.append(
            f"| {r.model} | {r.runtime} | {r.variant} | {r.batch} | {r.p50_ms:.3f} | {fp32.p50_ms / r.p50_ms:.2f}× | "
            f"{r.size_kib:.0f} | {r.quality} | {r.layers} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2", "mnist"])
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino", "litert"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--samples", type=int, default=64, help="synthetic calibration samples (torchvision models)")
    parser.add_argument("--mnist-batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--work", type=Path, default=CACHE / "int8")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8.md"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows: list[Row] = []
    for name in args.models:
        for runtime in args.runtimes:
            rows += bench_model(name, runtime, args, args.mnist_batches if name == "mnist" else [1])
    text = markdown(rows, (time.perf_counter() - t0) / 60, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
