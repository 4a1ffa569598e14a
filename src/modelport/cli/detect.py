"""``modelport detect MODEL IMAGE|VIDEO|DIR [--score 0.5] [--classes FILE] [-o OUT] [--json]``.

Draws boxes and labels into ``OUT`` (an image, a folder of images, or an mp4); ``--json`` prints one JSON
object per detection per line (``{"frame", "label", "class_id", "score", "box"}``) as frames finish, and
nothing else; otherwise a summary of the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from modelport.cli import app_options as ao
from modelport.cli import options as opt

_ADAPTER_HELP = (
    "The model's output contract: ssd-postprocessed, ssd-raw or yolo (default: recognised from its outputs)."
)


def register(app: typer.Typer) -> None:
    """Add ``detect`` to the app."""

    @app.command("detect")
    def detect_cmd(
        model: str = ao.model_argument(),
        source: Path = typer.Argument(..., metavar="IMAGE|VIDEO|DIR", help="An image, a video, or a folder of images."),
        out: Path | None = typer.Option(
            None,
            "--output",
            "-o",
            help="Annotated result: out.png for an image, OUTDIR/ for a folder, out.mp4 for a video.",
        ),
        score: float = typer.Option(0.5, "--score", min=0.0, max=1.0, help="Lowest score reported."),
        iou: float = typer.Option(0.45, "--iou", min=0.0, max=1.0, help="IoU above which host NMS suppresses a box."),
        max_detections: int = typer.Option(100, "--max-detections", min=1, help="Detections kept per image."),
        classes: Path | None = typer.Option(
            None,
            "--classes",
            help="Class names: one per line (line i names class id i) or a JSON list, as classify's --labels "
            "(default: COCO's ids).",
        ),
        adapter: str | None = typer.Option(None, "--adapter", help=_ADAPTER_HELP),
        anchors: Path | None = typer.Option(
            None, "--anchors", help="ssd-raw: N×4 anchors (y0,x0,y1,x1 normalised), .npy."
        ),
        in_graph_nms: bool = typer.Option(
            False, "--in-graph-nms", help="Run an ONNX model's own NonMaxSuppression instead of cutting it out."
        ),
        sequential: bool = typer.Option(
            False, "--sequential", help="Video: one loop instead of the pipelined threads."
        ),
        max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Video: stop after this many frames."),
        runtime: str = ao.RUNTIME,
        threads: int | None = opt.THREADS,
        precision: str = ao.PRECISION,
        image_size: str | None = opt.IMAGE_SIZE,
        mean: str | None = opt.MEAN,
        std: str | None = opt.STD,
        scale: float | None = opt.SCALE,
        bgr: bool = opt.BGR,
        layout: str | None = opt.LAYOUT,
        as_json: bool = opt.JSON,
    ) -> None:
        """Detect objects in images or a video on any runtime (SSD- and YOLO-style models, host NMS)."""
        from modelport.apps.detect import AdapterKind, DetectOptions, detect
        from modelport.apps.detect.cut import preferred_runtime
        from modelport.cli.common import console, print_json
        from modelport.errors import InvalidInputError

        kind = None
        if adapter is not None:
            try:
                kind = AdapterKind(adapter.strip().lower())
            except ValueError:
                valid = ", ".join(k.value for k in AdapterKind)
                raise InvalidInputError(f"--adapter must be one of {valid}, got {adapter!r}") from None
        images = ao.app_image_options(
            size=image_size, mean=mean, std=std, scale=scale, bgr=bgr, layout=layout, grayscale=False
        )
        if ao.is_auto(runtime):  # an ONNX detector with in-graph NMS runs best on OpenVINO (apps/detect/cut.py)
            runtime = preferred_runtime(Path(model)) or runtime
        app_model = ao.app_model_from_cli(model, runtime, threads, precision)
        options = DetectOptions(
            adapter=kind,
            score=score,
            iou=iou,
            max_detections=max_detections,
            classes=classes,
            anchors=anchors,
            preprocess=images.preprocess,
            layout=images.layout,
            in_graph_nms=in_graph_nms,
            pipelined=not sequential,
            max_frames=max_frames,
        )

        def emit(_index: int, records: list) -> None:  # type: ignore[type-arg]
            for record in records:
                print_json(json.dumps(record.to_dict()))

        report = detect(app_model, source, out, options=options, on_frame=emit if as_json else None)
        if as_json:
            return
        c = console()
        c.print(f"model: {report.model}", markup=False)
        c.print(f"outputs: {report.adapter}; input {report.input}; NMS {report.nms}", markup=False)
        counts: dict[str, int] = {}
        for d in report.detections:
            counts[d.label] = counts.get(d.label, 0) + 1
        found = ", ".join(f"{n} × {label}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "nothing"
        c.print(f"{report.frames} frame(s): {found} (score ≥ {score})", markup=False)
        if report.video is not None:
            for line in report.video.lines():
                c.print(line, markup=False)
        else:
            c.print(f"{report.mean_infer_ms:.1f} ms per image on {report.runtime} (pre/post-processing included)")
        for path in report.outputs[:20]:
            c.print(f"wrote {path}", markup=False)
        if len(report.outputs) > 20:
            c.print(f"… and {len(report.outputs) - 20} more files")
