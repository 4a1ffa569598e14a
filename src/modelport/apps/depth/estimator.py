"""One open stereo model that turns pairs of RGB views into disparity maps the size of the left view.

:class:`DepthEstimator` opens the runner once, detects the I/O contract (:mod:`.contract`) and, per pair, picks
the size the model runs at, resizes both views to it, runs the model, and maps the disparity back:

* a model with a fixed input ``h×w`` runs at it;
* a model that takes any size runs at ``image_size`` when given, else at the pair's own ``H×W`` — downscaled by
  ``s = R / max_disp`` when the largest expected disparity ``max_disp`` exceeds the range ``R`` the model
  searches (the shipped network: ``R = 64``), because disparities shrink with the image: a match ``d`` px apart
  at ``W`` is ``s·d`` px apart at ``s·W``;
* the output, ``w'`` wide, is resized to ``H×W`` and multiplied by ``W / w'`` (:func:`.contract.unpack_disparity`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from modelport.apps.depth.contract import StereoContract, detect_contract, pack, unpack_disparity
from modelport.apps.depth.results import DEFAULT_STEREO_CARD, DEFAULT_STEREO_MODEL, MIN_SIDE, DepthOptions
from modelport.errors import AppError

if TYPE_CHECKING:
    from modelport.apps.vision.model import AppModel
    from modelport.backends.runner import Runner

log = logging.getLogger(__name__)


def default_stereo_model() -> Path:
    """The shipped stereo network, ``modelport/assets/census_stereo.onnx``.

    Raises:
        ModelLoadError: the file is missing from the installation.
    """
    from modelport.assets import asset_path

    return asset_path(DEFAULT_STEREO_MODEL)


def model_disparity_range(path: Path) -> int | None:
    """The disparity range a model searches, when it says: an ONNX ``max_disp`` metadata entry (of the file, or
    for a ``port`` target ``OUT/targets/NAME/FILE`` of the port's prepared source ``OUT/model.onnx``), or — for a
    conversion of the shipped network (same file stem) — its card's. None when unknown (learned networks)."""
    path = Path(path)
    sources = [path] if path.suffix.lower() == ".onnx" else []
    if len(path.parents) > 2 and path.parents[1].name == "targets":
        sources.append(path.parents[2] / "model.onnx")
    for source in sources:
        found = _onnx_max_disp(source)
        if found is not None:
            return found
    if path.stem == Path(DEFAULT_STEREO_MODEL).stem:
        try:
            from modelport.assets import asset_path

            card = json.loads(asset_path(DEFAULT_STEREO_CARD).read_text(encoding="utf-8"))
            return int(card["max_disp"])
        except Exception as exc:
            log.debug("no shipped card: %s", exc)
    return None


def _onnx_max_disp(path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # an unreadable file fails later, in the runtime, with its own message
        log.debug("no metadata from %s: %s", path, exc)
        return None
    value = {p.key: p.value for p in proto.metadata_props}.get("max_disp", "")
    return int(value) if value.isdigit() else None


class DepthEstimator:
    """``with DepthEstimator(app_model, options) as est: disp = est(left, right)``.

    Attributes:
        contract: the detected I/O contract (after entering).
        model_range: the disparity range the model searches, when known.
        last_ms: inference time of the last pair (the runtime only).
    """

    def __init__(self, app: AppModel, options: DepthOptions | None = None) -> None:
        self.app = app
        self.options = options or DepthOptions()
        self.model_range = model_disparity_range(app.path)
        self._runner: Runner | None = None
        self._contract: StereoContract | None = None
        self.last_ms = 0.0

    def __enter__(self) -> DepthEstimator:
        runner = self.app.open().__enter__()
        try:
            self._contract = detect_contract(runner.input_specs, runner.output_names, layout=self.options.input_layout)
        except BaseException:
            runner.__exit__(None, None, None)
            raise
        self._runner = runner
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            self._runner.__exit__(exc_type, exc, tb)
            self._runner = None

    @property
    def contract(self) -> StereoContract:
        if self._contract is None:
            raise AppError("the depth estimator is not open (use it in a with block)")
        return self._contract

    def run_size(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The ``(H, W)`` the model runs a pair of ``shape`` at (see the module docstring)."""
        if self.contract.size is not None:
            return self.contract.size
        if self.options.image_size is not None:
            return (int(self.options.image_size[0]), int(self.options.image_size[1]))
        height, width = shape
        want, have = self.options.max_disp, self.model_range
        if want is not None and have is not None and want > have:
            scale = have / want
            return (max(MIN_SIDE, math.floor(height * scale)), max(MIN_SIDE, math.floor(width * scale)))
        return (height, width)

    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The disparity of a pair of ``H×W×3`` uint8 RGB views: float32 ``H×W`` in pixels of ``left``.

        Raises:
            AppError: the views differ in size, or the model's output is not a disparity map.
        """
        import cv2

        if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
            raise AppError(
                f"left and right views differ in size: left {_size_text(left)}, right {_size_text(right)}",
                hint="give a rectified pair of the same size",
            )
        runner = self._runner
        if runner is None:
            raise AppError("the depth estimator is not open (use it in a with block)")
        shape = (int(left.shape[0]), int(left.shape[1]))
        size = self.run_size(shape)
        if size != shape:
            interp = cv2.INTER_AREA if size[1] < shape[1] else cv2.INTER_LINEAR
            left, right = (cv2.resize(v, (size[1], size[0]), interpolation=interp) for v in (left, right))
        feeds = pack(self.contract, left, right, self.options.normalisation)
        t0 = time.perf_counter()
        outputs = runner.infer(feeds)
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return unpack_disparity(self.contract, outputs, shape)


def _size_text(view: np.ndarray) -> str:
    return f"{view.shape[1]}×{view.shape[0]}" if view.ndim >= 2 else str(list(view.shape))
