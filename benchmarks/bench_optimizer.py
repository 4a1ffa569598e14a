"""modelport optimize against onnxsim and onnxslim, side by side, on one corpus in one run.

Runs in the benchmark environment (torch 2.14.1 + torchvision 0.29.1 + onnxsim + onnxslim, see the README
"Benchmarks" and ``.venv-bench``)::

    .venv-bench/bin/python benchmarks/bench_optimizer.py            # the whole corpus
    .venv-bench/bin/python benchmarks/bench_optimizer.py --models resnet50 --exporters legacy --no-light
    .venv/bin/python benchmarks/bench_optimizer.py --corpus [--ids a,b]  # the real-model corpus, + onnxoptimizer

``--corpus`` runs ``bench_optimizer_corpus.py`` (every ONNX model of ``benchmarks/corpus/manifest.json``, each
tool in a child process, every output checked and compared; see that module).

For every input model (torchvision architectures with random weights, exported with the legacy and the
dynamo exporter at batch 1 and a fixed size, plus onnx's nine ``light`` models) it writes the onnxsim,
onnxslim and modelport outputs, then measures for each of the four: node count, file size, optimize time,
ONNX Runtime (all graph optimizations) and OpenVINO (CPU, f32) median latency over ``--runs`` runs, and the
max abs output difference from the input model (both in ONNX Runtime with its graph optimizations off, on
the same seeded random feeds). Results: ``benchmarks/results/optimizer.md`` (+ ``.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import os
import platform
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TORCHVISION = {
    # name: (input size, builder kwargs)
    "resnet50": (224, {}),
    "mobilenet_v2": (224, {}),
    "mobilenet_v3_large": (224, {}),
    "efficientnet_b0": (224, {}),
    "ssdlite320_mobilenet_v3_large": (320, {"weights_backbone": None}),
    "deeplabv3_mobilenet_v3_large": (256, {"weights_backbone": None, "aux_loss": False}),
    "vit_b_16": (224, {}),
}
PRIORITY = ["resnet50", "mobilenet_v2", "ssdlite320_mobilenet_v3_large", "vit_b_16"]
TOOLS = ("input", "onnxsim", "onnxslim", "modelport")
THREADS = 2

log = logging.getLogger("bench_optimizer")


@dataclasses.dataclass
class Row:
    """One (model, tool) measurement."""

    model: str
    tool: str
    nodes: int | None = None
    size_mb: float | None = None
    optimize_s: float | None = None
    ort_ms: float | None = None
    ov_ms: float | None = None
    max_abs: float | None = None
    error: str = ""


# ----------------------------------------------------------------------------------------------- corpus


def export_torchvision(name: str, exporter: str, out_dir: Path) -> Path:
    """Export a torchvision model (random weights, eval mode, batch 1) with the legacy or dynamo exporter."""
    import torch
    import torchvision

    dst = out_dir / f"{name}.{exporter}.onnx"
    if dst.exists():
        return dst
    size, kwargs = TORCHVISION[name]
    torch.manual_seed(0)
    builder = getattr(torchvision.models, name, None) or getattr(torchvision.models.detection, name, None)
    if builder is None:
        builder = getattr(torchvision.models.segmentation, name)
    model = builder(weights=None, **kwargs).eval()
    x = torch.rand(1, 3, size, size)
    tmp = dst.with_name(dst.name + ".tmp.onnx")
    # The legacy exporter cannot export nn.MultiheadAttention's fused inference fast path (vit_b_16).
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad():
        if exporter == "legacy":
            torch.onnx.export(model, (x,), str(tmp), input_names=["input"], opset_version=17, dynamo=False)
        else:
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, input_names=["input"])
            program.save(str(tmp))
    tmp.replace(dst)
    return dst


def light_models() -> list[Path]:
    """onnx's nine light models (opset 9, placeholder weights)."""
    import onnx

    root = Path(onnx.__file__).parent / "backend/test/data/light"
    return [Path(p) for p in sorted(glob.glob(str(root / "*.onnx")))]


# ------------------------------------------------------------------------------------------------- tools


def run_onnxsim(src: Path, dst: Path) -> None:
    import onnx
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(str(src)))
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    _save(model, dst)


def run_onnxslim(src: Path, dst: Path) -> None:
    import onnx
    import onnxslim

    _save(onnxslim.slim(onnx.load(str(src))), dst)


def run_modelport(src: Path, dst: Path) -> None:
    from modelport.passes import OptimizeOptions, optimize

    optimize(src, options=OptimizeOptions(verify=False)).write(dst)


def _save(model: Any, dst: Path) -> None:
    import onnx

    big = model.ByteSize() > 2**31 - 2**26
    onnx.save(model, str(dst), save_as_external_data=big, location=dst.name + ".data" if big else None)


RUNNERS: dict[str, Callable[[Path, Path], None]] = {
    "onnxsim": run_onnxsim,
    "onnxslim": run_onnxslim,
    "modelport": run_modelport,
}

# ----------------------------------------------------------------------------------------------- measure


def feeds_for(path: Path) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        dtype = types.get(i.type, np.float32)
        feeds[i.name] = rng.random(shape).astype(dtype) if dtype == np.float32 else np.zeros(shape, dtype)
    return feeds


def ort_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return list(sess.run(None, feeds))


def interleaved_medians(fns: dict[str, Callable[[], Any]], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median ms of each function, timed in round-robin rounds so that load from other jobs on the machine
    hits every variant alike (the machine's cores are shared)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def ort_runner(path: Path, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = THREADS
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, feeds)


def ov_runner(path: Path, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": str(THREADS)}
    )
    request = compiled.create_infer_request()
    data = list(feeds.values())
    return lambda: request.infer(data)


def node_count(path: Path) -> int:
    import onnx

    def count(graph: Any) -> int:
        n = 0
        for node in graph.node:
            n += 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    n += count(attr.g)
                for g in attr.graphs:
                    n += count(g)
        return n

    return count(onnx.load(str(path), load_external_data=False).graph)


def file_mb(path: Path) -> float:
    data = path.with_name(path.name + ".data")
    return (path.stat().st_size + (data.stat().st_size if data.exists() else 0)) / 2**20


def max_abs(ref: list[np.ndarray], out: list[np.ndarray]) -> float:
    if len(ref) != len(out):
        return float("inf")
    worst = 0.0
    for r, o in zip(ref, out, strict=True):
        if r.shape != o.shape:
            return float("inf")
        if r.size:
            worst = max(worst, float(np.max(np.abs(r.astype(np.float64) - o.astype(np.float64)))))
    return worst


def bench_model(label: str, src: Path, out_dir: Path, runs: int) -> list[Row]:
    """Optimize ``src`` with every tool, then measure the four models (latencies interleaved)."""
    rows: dict[str, Row] = {}
    paths: dict[str, Path] = {}
    feeds = feeds_for(src)
    reference = ort_outputs(src, feeds)
    stem = label.replace(" (", ".").replace(")", "")
    for tool in TOOLS:
        row = rows[tool] = Row(label, tool)
        path = src if tool == "input" else out_dir / f"{stem}.{tool}.onnx"
        try:
            if tool != "input":
                t = time.perf_counter()
                RUNNERS[tool](src, path)
                row.optimize_s = time.perf_counter() - t
            row.nodes, row.size_mb = node_count(path), file_mb(path)
            row.max_abs = max_abs(reference, ort_outputs(path, feeds))
            paths[tool] = path
        except Exception as exc:  # a tool failing on a model is a result, not a crash of the benchmark
            row.error = _error(exc)
            log.debug("%s/%s failed\n%s", label, tool, traceback.format_exc())
    for attr, make in (("ort_ms", ort_runner), ("ov_ms", ov_runner)):
        fns = {}
        for tool, path in paths.items():
            try:
                fns[tool] = make(path, feeds)
            except Exception as exc:
                rows[tool].error = (rows[tool].error + f" {attr}: " + _error(exc)).strip()
        for tool, ms in interleaved_medians(fns, runs).items():
            setattr(rows[tool], attr, ms)
        fns.clear()
    for row in rows.values():
        log.info("%s", row)
    return list(rows.values())


def _error(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:120] if text else ''}"


def _fmt(v: float | int | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def render(rows: list[Row], meta: dict[str, Any]) -> str:
    """The Markdown results page."""
    lines = [
        "# Optimizer benchmark: modelport optimize vs onnxsim vs onnxslim",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cpus']} CPUs shared with other jobs, "
        f"{THREADS} threads per runtime), by `{meta['command']}`.",
        f"Versions: {meta['versions']}.",
        "",
        "Latency = median of "
        f"{meta['runs']} runs after 3 warm-ups, the four variants timed in round-robin rounds (the cores are "
        "shared with other jobs, so absolute numbers are noisy; compare within a model); ORT with all graph "
        "optimizations, OpenVINO CPU with `INFERENCE_PRECISION_HINT=f32`. Max abs diff: against the input "
        "model, both in ORT with graph "
        "optimizations off, same seeded random feed. modelport's time is "
        "`optimize(…, options=OptimizeOptions(verify=False)).write(…)` "
        "(verification, on by default, adds two ORT runs).",
        "",
        "## Node counts",
        "",
        "| model | input | onnxsim | onnxslim | modelport | modelport ≤ best peer |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    by_model: dict[str, dict[str, Row]] = {}
    for r in rows:
        by_model.setdefault(r.model, {})[r.tool] = r
    for model, tools in by_model.items():
        cells = [_fmt(tools[t].nodes, "d") if t in tools and not tools[t].error else "fail" for t in TOOLS]
        peers = [
            tools[t].nodes for t in ("onnxsim", "onnxslim") if t in tools and tools[t].nodes and not tools[t].error
        ]
        mine = tools.get("modelport")
        ok = "—"
        if mine and mine.nodes is not None and not mine.error and peers:
            best = min(p for p in peers if p is not None)
            ok = (
                "yes (fewer)"
                if mine.nodes < best
                else "yes (equal)"
                if mine.nodes == best
                else f"**no** (+{mine.nodes - best})"
            )
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {ok} |")
    lines += [
        "",
        "## Everything measured",
        "",
        "| model | tool | nodes | size MB | optimize s | ORT ms | OpenVINO ms | max abs diff | error |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.tool} | {_fmt(r.nodes, 'd')} | {_fmt(r.size_mb, '.1f')} | {_fmt(r.optimize_s, '.2f')} "
            f"| {_fmt(r.ort_ms, '.1f')} | {_fmt(r.ov_ms, '.1f')} | {_fmt(r.max_abs, '.2g')} | {r.error} |"
        )
    return "\n".join(lines) + "\n"


def ort_optimized_nodes(path: Path, work: Path) -> int:
    """Nodes of the graph ONNX Runtime actually runs (all its graph optimizations applied): noise-free."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(work / "ort_optimized.onnx")
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "ort_optimized.bin")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return len(onnx.load(str(work / "ort_optimized.onnx"), load_external_data=False).graph.node)


def recheck(stems: list[str], work: Path, runs: int) -> str:
    """Re-measure existing outputs: ORT-optimized node counts and interleaved ORT/OpenVINO latency."""
    lines = [
        f"## Re-check: ORT-optimized graphs and latency over {runs} interleaved runs",
        "",
        "| model | tool | ORT-optimized nodes | ORT ms | OpenVINO ms |",
        "|---|---|---:|---:|---:|",
    ]
    for stem in stems:
        src = work / f"{stem}.onnx"
        paths = {"input": src, **{t: work / f"{stem}.{t}.onnx" for t in TOOLS[1:]}}
        feeds = feeds_for(src)
        ort_ms = interleaved_medians({t: ort_runner(p, feeds) for t, p in paths.items()}, runs)
        ov_ms = interleaved_medians({t: ov_runner(p, feeds) for t, p in paths.items()}, runs)
        for tool, path in paths.items():
            nodes = ort_optimized_nodes(path, work)
            lines.append(f"| {stem} | {tool} | {nodes} | {ort_ms[tool]:.1f} | {ov_ms[tool]:.1f} |")
            log.info("%s", lines[-1])
    return "\n".join(lines) + "\n"


def versions() -> str:
    from importlib.metadata import version

    names = ["torch", "torchvision", "onnx", "onnx-ir", "onnxscript", "onnxruntime", "openvino", "onnxsim", "onnxslim"]
    out = []
    for n in names:
        try:
            out.append(f"{n} {version(n)}")
        except Exception:
            out.append(f"{n} ?")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--corpus" in argv:  # the real-model corpus: benchmarks/bench_optimizer_corpus.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_optimizer_corpus

        return bench_optimizer_corpus.main([a for a in argv if a != "--corpus"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PRIORITY + [m for m in TORCHVISION if m not in PRIORITY]))
    parser.add_argument("--exporters", default="legacy,dynamo")
    parser.add_argument("--no-light", action="store_true", help="leave out onnx's light models")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--export-only", action="store_true", help="only export the torchvision models")
    parser.add_argument(
        "--recheck",
        default="",
        help="comma-separated file stems in --work (e.g. vit_b_16.dynamo,light_densenet121) to re-measure from "
        "existing outputs; writes <results>_recheck.md",
    )
    parser.add_argument("--work", type=Path, default=Path("out/bench_optimizer"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/optimizer.md"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.recheck:
        light = {p.stem: p for p in light_models()}
        for stem in args.recheck.split(","):
            if stem in light and not (args.work / f"{stem}.onnx").exists():
                (args.work / f"{stem}.onnx").symlink_to(light[stem])
        out = args.results.with_name(args.results.stem + "_recheck.md")
        out.write_text(recheck(args.recheck.split(","), args.work, args.runs), encoding="utf-8")
        print(out)
        return 0
    inputs: list[tuple[str, Path]] = []
    rows: list[Row] = []
    if not args.no_light:
        inputs += [(p.stem, p) for p in light_models()]
    for name in [m for m in args.models.split(",") if m]:
        for exporter in [e for e in args.exporters.split(",") if e]:
            label = f"{name} ({exporter})"
            try:
                inputs.append((label, export_torchvision(name, exporter, args.work)))
            except Exception as exc:
                rows.append(Row(label, "input", error=f"export failed: {_error(exc)}"))
                log.info("%s: export failed: %s", label, exc)
    if args.export_only:
        return 0
    for label, path in inputs:
        rows.extend(bench_model(label, path, args.work, args.runs))
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()} / {platform.system()}",
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "versions": versions(),
        "command": "python benchmarks/bench_optimizer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(render(rows, meta), encoding="utf-8")
    args.results.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": [dataclasses.asdict(r) for r in rows]}, indent=1), encoding="utf-8"
    )
    print(args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
