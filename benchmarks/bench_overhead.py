"""modelport's timing overhead: `modelport bench` vs a hand-written loop vs OpenVINO's benchmark_app.

For each model and runtime, in interleaved rounds (so drifts in machine load hit every method alike):
  * raw     — a minimal loop over the runtime's own session (``sess.run`` / ``request.infer``);
  * modelport — ``modelport.benchmark.timing.time_runner`` over modelport's runner;
  * benchmark_app — OpenVINO's tool (OpenVINO only), ``-hint none -nstreams 1 -api sync -infer_precision f32``
    (one stream, as the latency hint picks, with the thread count set).
Each round reports a median latency; the table shows the median over rounds and modelport/raw ratios.

    .venv-bench/bin/python benchmarks/export_torchvision.py resnet50 mobilenet_v2
    .venv/bin/python benchmarks/bench_overhead.py --models resnet50 mobilenet_v2 --rounds 7 \
        --out benchmarks/results/overhead.md
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.benchmark.timing import BenchConfig, time_runner
from modelport.formats import Precision
from modelport.reports.environment import capture_environment


def raw_ort(path: Path, feeds: dict[str, np.ndarray], threads: int, iters: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, feeds)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def raw_ov(path: Path, feeds: dict[str, np.ndarray], threads: int, iters: int) -> float:
    import openvino as ov

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
    for _ in range(5):
        request.infer(feeds)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        request.infer(feeds)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def via_modelport(runtime: str, path: Path, feeds: dict[str, np.ndarray], threads: int, iters: int) -> float:
    options = RunnerOptions(threads=threads, precision=Precision.FP32)
    with open_runner(runtime, path, options) as runner:
        stats = time_runner(runner, feeds, BenchConfig(warmup=5, iterations=iters))
    return stats.p50_ms


def via_benchmark_app(path: Path, threads: int, iters: int) -> float | None:
    exe = shutil.which("benchmark_app") or str(Path(__file__).resolve().parents[1] / ".venv/bin/benchmark_app")
    if not Path(exe).exists():
        return None
    cmd = [
        exe,
        "-m",
        str(path),
        "-d",
        "CPU",
        "-hint",
        "none",
        "-nstreams",
        "1",
        "-api",
        "sync",
        "-niter",
        str(iters),
        "-infer_precision",
        "f32",
        "-nthreads",
        str(threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Median:\s+([\d.]+)\s*ms", out)
    return float(m.group(1)) if m else None


def bench_model(path: Path, rounds: int, iters: int, threads: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    feeds = {"input": rng.random((1, 3, 224, 224), dtype=np.float32)}
    results: dict[str, list[float]] = {
        k: [] for k in ("ort raw", "ort modelport", "ov raw", "ov modelport", "ov benchmark_app")
    }
    for r in range(rounds):
        results["ort raw"].append(raw_ort(path, feeds, threads, iters))
        results["ort modelport"].append(via_modelport("onnxruntime", path, feeds, threads, iters))
        results["ov raw"].append(raw_ov(path, feeds, threads, iters))
        results["ov modelport"].append(via_modelport("openvino", path, feeds, threads, iters))
        app = via_benchmark_app(path, threads, iters)
        if app is not None:
            results["ov benchmark_app"].append(app)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in results.items() if v))
    return results


def _paired(res: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of num/den measured in the same round (drifts in machine load cancel out)."""
    pairs = [n / d for n, d in zip(res[num], res[den], strict=False) if d > 0]
    return statistics.median(pairs) if pairs else float("nan")


def render(rows: list[tuple[str, dict[str, list[float]]]], rounds: int, iters: int, threads: int) -> str:
    env = capture_environment()
    versions = ", ".join(f"{k} {v}" for k, v in env.packages if k in ("onnxruntime", "openvino", "numpy"))
    lines = [
        "## Timing overhead: `modelport bench` vs a raw loop vs benchmark_app",
        "",
        f"Machine: {env.summary()}. Versions: {versions}. {threads} threads, batch 1, fp32 (OpenVINO hint f32),",
        f"{rounds} interleaved rounds × {iters} timed runs. Latency cells: the lowest per-round median (ms),",
        "the figure least disturbed by other load. Ratio cells: the median over rounds of modelport / peer",
        "measured in the same round (1.00 = no overhead). Command:",
        f"`.venv/bin/python benchmarks/bench_overhead.py --rounds {rounds} --iters {iters} --threads {threads}`.",
        "",
        "| model | ORT raw | ORT modelport | modelport / raw | OV raw | OV modelport | modelport / raw "
        "| OV benchmark_app | modelport / app |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in rows:
        best = {k: min(v) if v else float("nan") for k, v in res.items()}
        lines.append(
            f"| {name} | {best['ort raw']:.3f} | {best['ort modelport']:.3f}"
            f" | {_paired(res, 'ort modelport', 'ort raw'):.3f}"
            f" | {best['ov raw']:.3f} | {best['ov modelport']:.3f} | {_paired(res, 'ov modelport', 'ov raw'):.3f}"
            f" | {best['ov benchmark_app']:.3f} | {_paired(res, 'ov modelport', 'ov benchmark_app'):.3f} |"
        )
    lines.append("")
    lines.append("Per-round medians (ms):")
    lines.append("")
    for name, res in rows:
        for k, v in res.items():
            lines.append(f"- {name} / {k}: " + ", ".join(f"{x:.2f}" for x in v))
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="modelport timing overhead vs raw loops and benchmark_app")
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/.cache"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/overhead.md"))
    args = parser.parse_args()
    rows = []
    for name in args.models:
        path = args.cache / f"{name}.onnx"
        if not path.exists():
            raise SystemExit(f"{path} missing: run benchmarks/export_torchvision.py {name} first")
        print(name)
        rows.append((name, bench_model(path, args.rounds, args.iters, args.threads)))
    text = render(rows, args.rounds, args.iters, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
