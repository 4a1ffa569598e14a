"""Assemble docs/benchmarks.md from the latest results in benchmarks/results/*.md.

    .venv/bin/python benchmarks/collect.py

Each benchmark script writes its own table (with the machine, versions and the command that made it) to
benchmarks/results/<name>.md; this script puts them under one page in a fixed order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = (
    ("overhead", "benchmarks/bench_overhead.py", "the spine: `modelport bench` vs raw loops and benchmark_app"),
    ("optimizer", "benchmarks/bench_optimizer.py", "`modelport optimize` vs onnxsim and onnxslim"),
    ("optimizer_onnxoptimizer", "benchmarks/bench_onnxoptimizer_nodes.py", "node counts vs onnxoptimizer"),
    (
        "optimizer_corpus",
        "benchmarks/bench_optimizer_corpus.py",
        "node counts on the real-model corpus vs onnxsim, onnxslim and onnxoptimizer",
    ),
    ("convert", "benchmarks/bench_convert.py", "conversion chains: time per hop, latency on every runtime"),
    ("int8", "benchmarks/bench_int8.py", "INT8 vs FP32 on ONNX Runtime, OpenVINO and LiteRT"),
    ("transcribe", "benchmarks/bench_transcribe.py", "Whisper: modelport vs direct faster-whisper"),
    ("coverage", "benchmarks/bench_coverage.py", "real models from packages: modelport vs the raw engines, per route"),
    ("coverage_int8", "benchmarks/bench_coverage.py", "INT8 of the real ONNX models: modelport vs ORT and NNCF"),
    ("coverage_tflite", "benchmarks/bench_coverage.py", "ONNX → TFLite on the real models: modelport vs onnx2tf"),
    (
        "divergence",
        "benchmarks/bench_divergence.py",
        "`compare --per-tensor`: tensors matched per pair (ONNX↔OpenVINO / TFLite / INT8), first divergence, cost vs "
        "one compare",
    ),
    (
        "rewrite",
        "benchmarks/bench_rewrite.py",
        "`rewrite --target`: ops each target cannot run before → after, error, ORT/OpenVINO latency before → after",
    ),
    ("port", "benchmarks/bench_port.py", "`port` with its defaults vs an exhaustive sweep vs naive ONNX Runtime FP32"),
    (
        "apps_detect",
        "benchmarks/bench_apps.py (bench_detect.py)",
        "`detect`: FPS per runtime, pipelined vs sequential video, NMS cut vs in-graph NMS",
    ),
    (
        "apps_depth",
        "benchmarks/bench_apps.py (bench_depth.py)",
        "`depth`: ms per pair per runtime, EPE/bad-3px vs OpenCV StereoSGBM, pipelined video",
    ),
    ("serve", "benchmarks/bench_serve.py", "`serve` on loopback: status latency under 50 pollers, queue order"),
    (
        "cluster",
        "benchmarks/bench_cluster.py",
        "Ray on loopback: an archive over 1–3 actors vs local, fleet bench, port built once vs on each device",
    ),
)

INTRO = """# Benchmarks

Latest results of the side-by-side benchmarks in `benchmarks/`. Each section names the script and command
that produced it, the machine and the engine versions. Regenerate this page with
`.venv/bin/python benchmarks/collect.py` after running a benchmark.

Each section names the machine it ran on (its CPU flags included): the earlier ones a 2-core AMD EPYC (Zen 4;
AVX-512, VNNI and AVX512-BF16, no AMX), the real-model sections (`optimizer_corpus`, `coverage*`) a 2-core Intel
Xeon with AMX; both 24 GiB, no GPU. The two cores were shared with other jobs during several of the runs, which
each section states; ratios from interleaved rounds are steadier than the absolute milliseconds.

| section | script | what it compares |
|---|---|---|
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="assemble docs/benchmarks.md")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    parts = [INTRO]
    sections = []
    for name, script, what in ORDER:
        path = args.results / f"{name}.md"
        if not path.exists():
            parts.append(f"| {name} | `{script}` | {what} — **not run yet** |\n")
            continue
        parts.append(f"| [{name}](#{name}) | `{script}` | {what} |\n")
        body = path.read_text(encoding="utf-8").strip()
        # demote the result file's headings one level under this page's section
        body = "\n".join("#" + line if line.startswith("#") else line for line in body.splitlines())
        sections.append(f'\n<a id="{name}"></a>\n\n## {name}\n\n{body}\n')
    args.out.write_text("".join(parts) + "".join(sections), encoding="utf-8")


if __name__ == "__main__":
    main()
