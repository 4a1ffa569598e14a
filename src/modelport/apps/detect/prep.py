"""From an RGB image to a detector's input tensor, and the geometry that maps boxes back.

SSD-style models get a plain resize to the input size (boxes come back normalised, so each axis scales on its
own); YOLO-style models get a *letterbox*: scale :math:`r = \\min(H/h, W/w)` keeps the aspect ratio, the image
is centred on a gray (114) canvas, and a box maps back by :math:`x_{orig} = (x - pad_x) / r`. An input whose
height and width are not fixed takes the image at its own size (SSD; the model resizes inside, as TF Object
Detection API graphs do) or at :data:`DEFAULT_YOLO_SIZE` (YOLO), unless ``--image-size`` says otherwise.

A ``uint8`` input gets the pixels as they are (the SSDLite frozen graph's ``image_tensor``); a float input
gets :math:`(p \\cdot scale - mean) / std`, by default :math:`p / 255` (YOLO and torchvision detectors).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from modelport.apps.detect.adapters import Geometry
from modelport.errors import AppError
from modelport.inputs import ImagePreprocess, Layout, TensorSpec

#: the side a letterboxed input with free height and width gets
DEFAULT_YOLO_SIZE = 640
#: the letterbox padding's gray
PAD_VALUE = 114


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """The model's image input: name, layout, whether it has a batch axis, fixed size (None: free), dtype."""

    name: str
    layout: Layout
    batched: bool
    size: tuple[int, int] | None
    dtype: str

    def describe(self) -> str:
        """One line, e.g. ``image_tensor:0 NHWC uint8 (any size)``."""
        size = f"{self.size[0]}×{self.size[1]}" if self.size else "any size"
        return f"{self.name} {self.layout.value}{'' if self.batched else ' (no batch axis)'} {self.dtype} ({size})"


def input_plan(specs: list[TensorSpec] | tuple[TensorSpec, ...], layout: Layout | None = None) -> InputPlan:
    """The single image input of a detector: ``[N, C, H, W]``, ``[N, H, W, C]`` or ``[C, H, W]`` with 3 channels.

    Raises:
        AppError: the model has several inputs, or its input is not a 3-channel image.
    """
    if len(specs) != 1:
        names = ", ".join(f"{s.name} {s.shape_text()}" for s in specs)
        raise AppError(
            f"detect needs a model with one image input, this one has {len(specs)}: {names}",
            hint="cut the model to its image input with `modelport edit`",
        )
    spec = specs[0]
    shape = spec.shape
    if shape is None or len(shape) not in (3, 4):
        raise AppError(
            f"input {spec.name} {spec.shape_text()} is not an image (N×C×H×W, N×H×W×C or C×H×W)",
            hint="fix its shape with `modelport convert --input-shape`, or give a model with an image input",
        )
    batched = len(shape) == 4
    dims = list(shape[1:] if batched else shape)
    if layout is None:
        layout = Layout.NCHW if dims[0] == 3 else Layout.NHWC if dims[2] == 3 else Layout.NCHW
    h, w = dims[1:3] if layout is Layout.NCHW else dims[0:2]
    channels = dims[0] if layout is Layout.NCHW else dims[2]
    if isinstance(channels, int) and channels not in (-1, 3):
        raise AppError(f"input {spec.name} {spec.shape_text()} has {channels} channels, detect feeds RGB (3)")
    fixed = isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0
    return InputPlan(spec.name, layout, batched, (int(h), int(w)) if fixed else None, spec.dtype)  # type: ignore[arg-type]


def prepare(
    rgb: np.ndarray,
    plan: InputPlan,
    *,
    letterbox: bool,
    preprocess: ImagePreprocess | None = None,
) -> tuple[np.ndarray, Geometry]:
    """The input tensor for ``rgb`` (``H×W×3`` uint8) and the geometry from input pixels back to ``rgb``'s."""
    import cv2

    height, width = rgb.shape[:2]
    size = (preprocess.size if preprocess is not None else None) or plan.size
    if size is None:
        size = (DEFAULT_YOLO_SIZE, DEFAULT_YOLO_SIZE) if letterbox else (height, width)
    th, tw = size
    if letterbox:
        r = min(th / height, tw / width)
        nh, nw = max(1, round(height * r)), max(1, round(width * r))
        top, left = (th - nh) // 2, (tw - nw) // 2
        canvas: np.ndarray = np.full((th, tw, 3), PAD_VALUE, dtype=np.uint8)
        resized = rgb if (nh, nw) == (height, width) else cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        canvas[top : top + nh, left : left + nw] = resized
        geometry = Geometry(width, height, nw / width, nh / height, float(left), float(top))
        pixels = canvas
    else:
        same = (th, tw) == (height, width)
        pixels = rgb if same else cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_LINEAR)
        geometry = Geometry(width, height, tw / width, th / height)
    return _to_tensor(pixels, plan, preprocess), geometry


def _to_tensor(pixels: np.ndarray, plan: InputPlan, pre: ImagePreprocess | None) -> np.ndarray:
    if pre is not None and pre.bgr:
        pixels = pixels[:, :, ::-1]
    if np.dtype(plan.dtype) == np.uint8:
        x = pixels
    else:
        scale = pre.scale if pre is not None else 1.0 / 255.0
        mean = np.asarray(pre.mean if pre is not None else (0.0,), dtype=np.float32)
        std = np.asarray(pre.std if pre is not None else (1.0,), dtype=np.float32)
        x = ((pixels.astype(np.float32) * np.float32(scale) - mean) / std).astype(plan.dtype)
    if plan.layout is Layout.NCHW:
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None] if plan.batched else x)
