"""The depth app and its shipped stereo network: speed per runtime, accuracy vs StereoSGBM, the video pipeline.

Usage (about 5 minutes on 2 cores; the TFLite conversion is a minute of it)::

    .venv/bin/python benchmarks/bench_depth.py --out benchmarks/results/apps_depth.md

What it measures, in one run:

1. **Ports.** ``census_stereo.onnx`` converted by ``modelport.convert`` to OpenVINO IR (dynamic size) and TFLite
   (fixed 480×640, NHWC), each verified against the ONNX source on the motorcycle pair.
2. **Speed.** Milliseconds per 480×640 pair (inference only, the median of ``--runs`` after one warm-up) on ONNX
   Runtime, OpenVINO and LiteRT with 1 and 2 threads.
3. **Accuracy.** EPE and bad-3px (every ground-truth pixel counts) of the network on every runtime, on
   ``skimage.data.stereo_motorcycle`` (Middlebury 2014, 741×500) at its own size and at 640×480 (the TFLite
   port's size; the disparity mapped back to 741×500), and on Middlebury 2006 *Aloe* (opencv-doc's
   ``aloeL/R.jpg`` + ``aloeGT.png``, 1282×1110, disparities up to ~210 px: ``--max-disp 224`` runs the network
   on the pair downscaled by 64/224). Beside it, OpenCV's StereoSGBM on the same pair, scored both ways: on the
   pixels it fills, and with its holes counted as errors (a hole = disparity 0). Two SGBM settings: OpenCV's
   defaults (block 5) and tuned ones in the manner of OpenCV's ``stereo_match`` sample (P1/P2 smoothness, uniqueness,
   speckle filter, left-right check).
4. **Video.** A side-by-side mp4 made from the motorcycle pair (640×480 per view, the views shifted by one
   pixel more per frame): ``depth --video`` pipelined vs sequential, FPS and per-stage ms.

The machine (CPU model, flags, cores) is recorded with :func:`modelport.reports.environment.capture_environment`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelport.apps.depth import DepthEstimator, DepthOptions, default_stereo_model, depth, disparity_errors
from modelport.apps.vision.model import resolve_app_model
from modelport.apps.vision.video import VideoWriter

REPO = Path(__file__).resolve().parents[1]
SIZE = (480, 640)
ALOE_DIRS = (
    Path("/usr/share/doc/opencv-doc/examples/data"),
    Path("/work/opencv-doc/usr/share/doc/opencv-doc/examples/data"),
)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A stereo pair with ground truth (``inf`` = unknown) and the disparity range to search."""

    name: str
    left: np.ndarray
    right: np.ndarray
    gt: np.ndarray
    max_disp: int


def motorcycle() -> Pair:
    from skimage.data import stereo_motorcycle

    left, right, gt = stereo_motorcycle()
    return Pair("motorcycle (Middlebury 2014, 741×500)", left, right, gt, 64)


def aloe(folder: Path | None) -> Pair | None:
    import cv2

    found = [d for d in ([folder] if folder else list(ALOE_DIRS)) if d and (d / "aloeGT.png").is_file()]
    if not found:
        return None
    d = found[0]
    left, right = (cv2.cvtColor(cv2.imread(str(d / n)), cv2.COLOR_BGR2RGB) for n in ("aloeL.jpg", "aloeR.jpg"))
    gt = cv2.imread(str(d / "aloeGT.png"), cv2.IMREAD_UNCHANGED).astype(np.float32)
    gt[gt == 0] = np.inf
    return Pair("Aloe (Middlebury 2006 via opencv-doc, 1282×1110)", left, right, gt, 224)


def resized(pair: Pair, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    return tuple(cv2.resize(v, (size[1], size[0]), interpolation=cv2.INTER_AREA) for v in (pair.left, pair.right))  # type: ignore[return-value]


def convert_ports(work: Path, feeds: np.ndarray, with_tflite: bool) -> dict[str, Path]:
    """The shipped ONNX and its OpenVINO / TFLite ports (built once per work folder)."""
    from modelport.conversion import ChainOptions, ConvertOptions, convert

    src = default_stereo_model()
    ports = {"onnxruntime": src}
    targets = [("openvino", "census_stereo.xml", ChainOptions())]
    if with_tflite:
        shapes = ChainOptions(convert=ConvertOptions(input_shapes=(("stereo", (1, 6, *SIZE)),)))
        targets.append(("tflite", "census_stereo.tflite", shapes))
    runtime = {"openvino": "openvino", "tflite": "litert"}
    for fmt, name, options in targets:
        out = work / fmt
        if not (out / name).exists():
            t0 = time.perf_counter()
            report = convert(src, fmt, out, options=options, feeds={"stereo": feeds})
            check = report.verification
            diff = max((o.max_abs for o in check.outputs), default=float("nan")) if check else float("nan")
            print(f"converted to {fmt} in {time.perf_counter() - t0:.0f} s; max abs difference {diff:.2g}", flush=True)
        ports[runtime[fmt]] = out / name
    return ports


def speed(ports: dict[str, Path], pair: Pair, runs: int) -> list[dict[str, Any]]:
    """Median ms per pair for every runtime × threads, the runs interleaved round-robin (a busy machine's load
    falls on every configuration alike)."""
    from contextlib import ExitStack

    left, right = resized(pair, SIZE)
    configs = [(runtime, threads) for runtime in ports for threads in (1, 2)]
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    with ExitStack() as stack:
        estimators = {}
        for runtime, threads in configs:
            app = resolve_app_model(ports[runtime], runtime=runtime, threads=threads)
            estimators[(runtime, threads)] = est = stack.enter_context(DepthEstimator(app, DepthOptions()))
            est(left, right)
        for _ in range(runs):
            for config, est in estimators.items():
                est(left, right)
                times[config].append(est.last_ms)
    rows = []
    for (runtime, threads), values in times.items():
        ms = statistics.median(values)
        rows.append({"runtime": runtime, "threads": threads, "ms": ms, "fps": 1000.0 / ms, "runs": runs})
        print(f"speed {runtime} ×{threads}: {ms:.0f} ms (min {min(values):.0f})", flush=True)
    return rows


def accuracy(ports: dict[str, Path], pair: Pair, sizes: list[tuple[int, int] | None]) -> list[dict[str, Any]]:
    rows = []
    for runtime, path in ports.items():
        for size in sizes:
            app = resolve_app_model(path, runtime=runtime, threads=2)
            opts = DepthOptions(max_disp=pair.max_disp, image_size=size, warmup=0)
            with DepthEstimator(app, opts) as est:
                if est.contract.size is not None and size is None:
                    continue  # a fixed-size port runs at its own size: counted in the row with that size
                if est.contract.size is not None and est.contract.size != size:
                    continue
                disp = est(pair.left, pair.right)
                run = est.run_size(pair.left.shape[:2])
            e = disparity_errors(disp, pair.gt)
            rows.append({"method": f"census_stereo on {runtime}", "run_size": run, **e.to_dict()})
            print(f"{pair.name} {runtime} at {run}: EPE {e.epe:.2f} bad3 {e.bad3:.1%}", flush=True)
    return rows


def sgbm(pair: Pair) -> list[dict[str, Any]]:
    import cv2

    nd = int(np.ceil(pair.max_disp / 16) * 16)
    settings = {
        "StereoSGBM, OpenCV defaults (block 5)": cv2.StereoSGBM_create(minDisparity=0, numDisparities=nd, blockSize=5),
        "StereoSGBM, tuned (P1/P2, uniqueness 10, speckle filter, LR check)": cv2.StereoSGBM_create(
            minDisparity=0, numDisparities=nd, blockSize=5, P1=8 * 3 * 25, P2=32 * 3 * 25, disp12MaxDiff=1,
            uniquenessRatio=10, speckleWindowSize=100, speckleRange=32,
        ),
    }  # fmt: skip
    rows = []
    for name, matcher in settings.items():
        t0 = time.perf_counter()
        disp = matcher.compute(pair.left, pair.right).astype(np.float32) / 16.0
        ms = (time.perf_counter() - t0) * 1000
        filled = disp > 0
        holes = disparity_errors(disp, pair.gt, valid=filled)
        known = np.isfinite(pair.gt) & filled
        on_filled = disparity_errors(np.where(known, disp, 0), np.where(known, pair.gt, np.inf))
        rows.append({"method": name, "ms": ms, "holes": holes.to_dict(), "filled_only": on_filled.to_dict()})
        print(f"{pair.name} {name}: holes-counted EPE {holes.epe:.2f} bad3 {holes.bad3:.1%}", flush=True)
    return rows


def video(pair: Pair, work: Path, frames: int) -> list[dict[str, Any]]:
    left, right = resized(pair, SIZE)
    src = work / "motorcycle_sbs.mp4"
    if not src.exists():
        with VideoWriter(src, 20.0, 2 * SIZE[1], SIZE[0]) as w:
            for i in range(frames):
                w.write(np.concatenate([np.roll(left, i, axis=1), np.roll(right, i, axis=1)], axis=1))
    rows = []
    for threads in (1, 2):
        app = resolve_app_model(default_stereo_model(), runtime="onnxruntime", threads=threads)
        for pipelined in (False, True):
            out = work / f"depth_{threads}_{pipelined}.mp4"
            report = depth(app, src, None, out, options=DepthOptions(pipelined=pipelined))
            assert report.video is not None
            rows.append({"runtime": "onnxruntime", "threads": threads, **report.video.to_dict()})
            print(f"video ×{threads} {report.video.mode}: {report.video.fps:.2f} FPS", flush=True)
    return rows


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        "# Depth app benchmark (`benchmarks/bench_depth.py`)",
        "",
        f"- Machine: {env['cpu_model']}, {env['cpu_count']} cores (shared with other jobs while measuring)",
        f"- CPU flags: {', '.join(env['cpu_flags']) or 'none detected'}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in env['packages'] if k in _SHOWN)}",
        f"- Network: `census_stereo.onnx` ({result['model_bytes'] / 1024:.0f} KiB; census cost over 32 shifts at half "
        "resolution, guided-filter aggregation, left-right check + fill: `scripts/build_stereo_net.py`)",
        f"- Command: `{result['command']}`; the whole run took {result['seconds'] / 60:.1f} min",
        "",
        "## Speed: one 640×480 pair (inference only, median)",
        "",
        "| runtime | threads | ms per pair | FPS | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['runtime']} | {r['threads']} | {r['ms']:.0f} | {r['fps']:.2f} | {r['runs']} |" for r in result["speed"]
    ]
    first = result["accuracy"][0] if result["accuracy"] else None
    if first:
        sgbm_ms = "; ".join(f"{r['method']}: {r['ms']:.0f} ms" for r in first["sgbm"])
        lines += ["", f"For scale, OpenCV on the {first['pair']} pair (one run, its own threads): {sgbm_ms}."]
    for block in result["accuracy"]:
        lines += [
            "",
            f"## Accuracy: {block['pair']} (ground truth on {block['coverage']:.1%} of pixels)",
            "",
            "| method | run at | EPE px | bad-3px | bad-1px | filled |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in block["network"]:
            size = f"{r['run_size'][1]}×{r['run_size'][0]}"
            lines.append(f"| {r['method']} | {size} | {r['epe']:.2f} | {r['bad3']:.1%} | {r['bad1']:.1%} | 100 % |")
        for r in block["sgbm"]:
            h, f = r["holes"], r["filled_only"]
            for label, e in (("holes counted as errors", h), ("filled pixels only", f)):
                lines.append(
                    f"| {r['method']}, {label} | full | {e['epe']:.2f} | {e['bad3']:.1%} | {e['bad1']:.1%} | "
                    f"{h['filled']:.1%} |"
                )
    lines += [
        "",
        "## Video: side-by-side 1280×480 mp4 (640×480 pairs), `depth --video`, ONNX Runtime",
        "",
        "| threads | mode | frames | FPS | decode ms | infer ms | render ms | encode ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["video"]:
        lines.append(
            f"| {r['threads']} | {r['mode']} | {r['frames']} | {r['fps']:.2f} | {r['decode_ms']:.1f} | "
            f"{r['infer_ms']:.0f} | {r['render_ms']:.1f} | {r['encode_ms']:.1f} |"
        )
    pairs = {r["threads"]: {} for r in result["video"]}
    for r in result["video"]:
        pairs[r["threads"]][r["mode"]] = r["fps"]
    gains = [f"{t} thread(s): {m['pipelined'] / m['sequential']:.2f}×" for t, m in pairs.items() if len(m) == 2]
    stages = ("decode_ms", "infer_ms", "render_ms", "encode_ms")
    ceilings = [
        f"{r['threads']} thread(s): {sum(r[k] for k in stages) / r['infer_ms']:.2f}×"
        for r in result["video"]
        if r["mode"] == "sequential" and r["infer_ms"] > 0
    ]
    lines += [
        "",
        f"Pipelined vs sequential: {', '.join(gains)}. With inference the slowest stage by far, the most a pipeline "
        f"can gain is (decode + infer + render + encode) / infer of the sequential run: {', '.join(ceilings)}; on "
        "2 shared cores the runtime's threads, the decoder and the encoder also compete for the same cores.",
        "",
    ]
    return "\n".join(lines)


_SHOWN = ("modelport", "onnxruntime", "openvino", "ai-edge-litert", "onnx2tf", "opencv-python-headless", "av")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of the module docstring, as one JSON-ready dict."""
    from modelport.reports.environment import capture_environment

    t0 = time.perf_counter()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-depth-"))
    work.mkdir(parents=True, exist_ok=True)
    moto = motorcycle()
    left, right = resized(moto, SIZE)
    feeds = np.concatenate([left, right], axis=2).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    ports = convert_ports(work, feeds, not args.skip_tflite)
    result: dict[str, Any] = {
        "environment": json.loads(capture_environment().to_json()),
        "command": " ".join(["benchmarks/bench_depth.py", *sys.argv[1:]]),
        "model_bytes": default_stereo_model().stat().st_size,
        "ports": {k: str(v) for k, v in ports.items()},
        "speed": speed(ports, moto, args.runs),
        "accuracy": [],
    }
    pairs = [moto] + [p for p in [aloe(args.aloe)] if p is not None]
    for pair in pairs:
        sizes: list[tuple[int, int] | None] = [None, SIZE] if pair is moto else [None]
        block = {
            "pair": pair.name,
            "coverage": float(np.isfinite(pair.gt).mean()),
            "network": accuracy(ports, pair, sizes),
            "sgbm": sgbm(pair),
        }
        result["accuracy"].append(block)
    result["video"] = video(moto, work, args.frames)
    result["seconds"] = time.perf_counter() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "apps_depth.md")
    parser.add_argument("--work", type=Path, default=None, help="folder for the ports and videos (kept)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per runtime × threads")
    parser.add_argument("--frames", type=int, default=40, help="frames of the side-by-side video")
    parser.add_argument("--aloe", type=Path, default=None, help="folder with aloeL.jpg, aloeR.jpg, aloeGT.png")
    parser.add_argument("--skip-tflite", action="store_true", help="no TFLite port (saves a minute)")
    parser.add_argument("--from-json", type=Path, default=None, help="only re-render the markdown of a saved run")
    args = parser.parse_args(argv)
    result = json.loads(args.from_json.read_text(encoding="utf-8")) if args.from_json else run(args)
    args.out.write_text(markdown(result), encoding="utf-8")
    if not args.from_json:
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
