"""The ``depth`` app's options and report (frozen dataclasses)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from modelport.apps.depth.contract import Normalisation
from modelport.apps.depth.metrics import DisparityErrors
from modelport.apps.vision.video import PipelineStats
from modelport.errors import InvalidInputError

#: the shipped stereo network and its card, in ``modelport/assets/``
DEFAULT_STEREO_MODEL = "census_stereo.onnx"
DEFAULT_STEREO_CARD = "census_stereo.json"
#: the smallest side a pair is downscaled to for ``max_disp``
MIN_SIDE = 32


@dataclasses.dataclass(frozen=True)
class DepthOptions:
    """Options of :func:`~modelport.apps.depth.depth`.

    Attributes:
        max_disp: the largest disparity expected, in pixels of the left image. When it exceeds the range the model
            searches (the shipped network's ``max_disp``, read from the ONNX metadata or its card), a model that
            takes any size runs on the pair downscaled by ``model range / max_disp`` and its disparities are scaled
            back. None: the pair runs at its own size.
        input_layout: ``"NCHW"`` or ``"NHWC"`` when the model's input shape cannot tell (None: read from it).
        image_size: ``(H, W)`` to run a model that takes any size at (a fixed-size model always runs at its own).
        normalisation: pixels → input values (default ``pixels / 255``, RGB).
        save_disparity: a ``.npy`` to save the float32 disparity (the size of the left image; a video: a
            ``frames×H×W`` stack).
        ground_truth: a disparity ground truth (``.npy``, ``.pfm``, ``.png``) to score the pair against.
        side_by_side: also write ``<out stem>_side<suffix>``, the left view next to the colourised disparity.
        warmup: runs before the timed ones (the first run of an engine allocates and compiles).
        repeat: timed runs of the pair (the report's ``ms_per_pair`` is their mean).
        pipelined: a video runs decode, inference and encode in separate threads (False: one sequential loop).
        max_frames: stop a video after this many frames (None: all).
        colour_max: the colour scale's top in pixels (None: ``max_disp``, the model's range, or the 99th percentile).
    """

    max_disp: float | None = None
    input_layout: str | None = None
    image_size: tuple[int, int] | None = None
    normalisation: Normalisation = dataclasses.field(default_factory=Normalisation)
    save_disparity: Path | None = None
    ground_truth: Path | None = None
    side_by_side: bool = True
    warmup: int = 1
    repeat: int = 1
    pipelined: bool = True
    max_frames: int | None = None
    colour_max: float | None = None

    def __post_init__(self) -> None:
        if self.max_disp is not None and not self.max_disp > 0:
            raise InvalidInputError(f"--max-disp must be > 0, got {self.max_disp}")
        if self.image_size is not None and min(self.image_size) < MIN_SIDE:
            raise InvalidInputError(f"--image-size must be at least {MIN_SIDE}×{MIN_SIDE}, got {self.image_size}")
        if self.warmup < 0 or self.repeat < 1:
            raise InvalidInputError(f"warmup must be ≥ 0 and repeat ≥ 1, got {self.warmup} and {self.repeat}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidInputError(f"max_frames must be ≥ 1, got {self.max_frames}")
        if self.save_disparity is not None and Path(self.save_disparity).suffix.lower() != ".npy":
            raise InvalidInputError(f"--save-disparity must name a .npy file, got {self.save_disparity}")


@dataclasses.dataclass(frozen=True)
class DepthReport:
    """What ``depth`` did: the model and contract, sizes, time per pair, accuracy, the files written.

    Attributes:
        model: the model, in words (file and runtime).
        runtime: the runtime's name.
        contract: the detected I/O contract, in words.
        shape: the left image's ``(H, W)`` (the disparity's size).
        run_size: the ``(H, W)`` the model ran at.
        ms_per_pair: mean inference time of one pair (a video: per frame), without pre/post-processing.
        disparity_range: the disparity's min and max in pixels (a video: over all frames).
        errors: EPE / bad-3px / bad-1px against the ground truth when one was given.
        outputs: the files written.
        frames: pairs processed (1 for a pair).
        video: the video loop's FPS and stage times (None for a pair).
    """

    model: str
    runtime: str
    contract: str
    shape: tuple[int, int]
    run_size: tuple[int, int]
    ms_per_pair: float
    disparity_range: tuple[float, float]
    errors: DisparityErrors | None = None
    outputs: tuple[Path, ...] = ()
    frames: int = 1
    video: PipelineStats | None = None

    @property
    def epe(self) -> float | None:
        """End-point error in pixels (None without ground truth)."""
        return self.errors.epe if self.errors else None

    @property
    def bad3(self) -> float | None:
        """Fraction of ground-truth pixels off by more than 3 px (None without ground truth)."""
        return self.errors.bad3 if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "runtime": self.runtime,
            "contract": self.contract,
            "shape": list(self.shape),
            "run_size": list(self.run_size),
            "ms_per_pair": round(self.ms_per_pair, 3),
            "disparity_range": [round(v, 3) for v in self.disparity_range],
            "errors": self.errors.to_dict() if self.errors else None,
            "outputs": [str(p) for p in self.outputs],
            "frames": self.frames,
            "video": self.video.to_dict() if self.video else None,
        }

    def to_json(self) -> str:
        """Pretty-printed JSON, newline-terminated."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def lines(self) -> list[str]:
        """A few lines for a terminal."""
        h, w = self.shape
        out = [
            f"model: {self.model}",
            f"contract: {self.contract}",
            f"{self.frames} pair(s) of {w}×{h}, run at {self.run_size[1]}×{self.run_size[0]}: "
            f"{self.ms_per_pair:.1f} ms per pair on {self.runtime}",
            f"disparity: {self.disparity_range[0]:.2f} … {self.disparity_range[1]:.2f} px",
        ]
        if self.errors:
            e = self.errors
            out.append(
                f"vs ground truth ({e.coverage:.1%} of pixels): EPE {e.epe:.2f} px, bad-3px {e.bad3:.1%}, "
                f"bad-1px {e.bad1:.1%}"
            )
        if self.video:
            out.extend(self.video.lines())
        out.extend(f"wrote {p}" for p in self.outputs)
        return out
