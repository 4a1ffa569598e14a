"""``modelport depth [MODEL] LEFT RIGHT | [MODEL] --video SIDE_BY_SIDE.mp4 [-o OUT] [--save-disparity D.npy] …``.

MODEL is optional: without it the shipped stereo network (``census_stereo.onnx``) runs. The output is the
colourised disparity (``OUT``, and the left view beside it in ``OUT_side.png``), or an mp4 for a video; the
report (contract, time per pair, EPE / bad-3px with ``--ground-truth``) is printed, or its JSON with ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelport.cli import app_options as ao
from modelport.cli import options as opt

if TYPE_CHECKING:
    from modelport.apps.depth import DepthOptions

_PATHS_HELP = (
    "[MODEL] LEFT RIGHT: the left and right images of a rectified pair, after an optional model (any format a "
    "runtime runs, or a `modelport port` output; default: the shipped census stereo network). With --video: "
    "only the optional MODEL."
)


def register(app: typer.Typer) -> None:
    @app.command("depth")
    def depth_cmd(
        paths: list[str] | None = typer.Argument(None, metavar="[MODEL] LEFT RIGHT", help=_PATHS_HELP),
        video: Path | None = typer.Option(
            None, "--video", help="A side-by-side video (left view in the left half) instead of LEFT RIGHT."
        ),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Colourised disparity .png (a video: .mp4); also writes OUT_side.png."
        ),
        save_disparity: Path | None = typer.Option(
            None, "--save-disparity", help="Save the float32 disparity (the size of LEFT) as .npy."
        ),
        max_disp: float | None = typer.Option(
            None,
            "--max-disp",
            help="Largest disparity expected, in LEFT's pixels; beyond the model's range the pair runs downscaled.",
        ),
        ground_truth: Path | None = typer.Option(
            None, "--ground-truth", help="Disparity ground truth (.npy, .pfm, .png; 0/inf/NaN = unknown): EPE, bad-3px."
        ),
        input_layout: str | None = typer.Option(
            None, "--input-layout", help="NCHW or NHWC when the model's input shape cannot tell (default: detected)."
        ),
        no_pipeline: bool = typer.Option(False, "--sequential", help="Video: one loop instead of pipelined threads."),
        max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Video: stop after N frames."),
        repeat: int = typer.Option(1, "--repeat", min=1, help="Timed runs of the pair (mean reported)."),
        runtime: str = ao.RUNTIME,
        threads: int | None = opt.THREADS,
        precision: str = ao.PRECISION,
        image_size: str | None = opt.IMAGE_SIZE,
        mean: str | None = opt.MEAN,
        std: str | None = opt.STD,
        scale: float | None = opt.SCALE,
        bgr: bool = opt.BGR,
        as_json: bool = opt.JSON,
    ) -> None:
        """Stereo disparity on any runtime: a colourised map (png/mp4), the float32 disparity, EPE vs ground truth."""
        from modelport.apps.depth import DepthOptions, default_stereo_model, depth
        from modelport.cli.common import console, print_json

        model, left, right = _split_paths(paths or [], video)
        images = ao.app_image_options(
            size=image_size, mean=mean, std=std, scale=scale, bgr=bgr, layout=None, grayscale=False
        )
        options = _options(
            DepthOptions,
            images.preprocess,
            max_disp=max_disp,
            input_layout=input_layout,
            save_disparity=save_disparity,
            ground_truth=ground_truth,
            pipelined=not no_pipeline,
            max_frames=max_frames,
            repeat=repeat,
        )
        app_model = ao.app_model_from_cli(model or str(default_stereo_model()), runtime, threads, precision)
        report = depth(app_model, left, right, output, options=options)
        if as_json:
            print_json(report.to_json())
            return
        out = console()
        for line in report.lines():
            out.print(line, markup=False, highlight=False)


def _split_paths(paths: list[str], video: Path | None) -> tuple[str | None, str | Path, str | None]:
    """``[MODEL] LEFT RIGHT`` or, with ``--video``, ``[MODEL]``, as (model, left, right)."""
    from modelport.errors import InvalidInputError

    if video is not None:
        if len(paths) > 1:
            raise InvalidInputError(
                f"with --video give at most a MODEL, got {len(paths)} paths", hint="modelport depth [MODEL] --video V"
            )
        return (paths[0] if paths else None), video, None
    if len(paths) == 2:
        return None, paths[0], paths[1]
    if len(paths) == 3:
        return paths[0], paths[1], paths[2]
    raise InvalidInputError(
        f"give LEFT RIGHT (after an optional MODEL), or --video; got {len(paths)} path(s)",
        hint="modelport depth [MODEL] LEFT RIGHT -o disparity.png",
    )


def _options(cls: type[DepthOptions], preprocess: object, **fields: object) -> DepthOptions:
    """The options, with the image flags' size and normalisation when given."""
    from modelport.apps.depth import Normalisation
    from modelport.inputs import ImagePreprocess

    if isinstance(preprocess, ImagePreprocess):
        fields["image_size"] = preprocess.size
        fields["normalisation"] = Normalisation(
            scale=preprocess.scale, mean=tuple(preprocess.mean), std=tuple(preprocess.std), bgr=preprocess.bgr
        )
    return cls(**fields)  # type: ignore[arg-type]
