"""How a stereo model takes its pair and gives its disparity: the I/O contracts ``depth`` detects.

A stereo network's interface is one of:

* **concat** — one 4-D input holding both views on the channel axis, left first: 6 channels (RGB, RGB) or 2
  (grey, grey), in NCHW or NHWC (HITNet's TensorFlow exports are NHWC, PyTorch exports NCHW);
* **pair** — two 4-D inputs, one view each (3 or 1 channels); the left one is the input whose name says
  ``left`` (else the first), the right one the input whose name says ``right`` (else the second).

The layout is read from where the channel count sits (dim 1 → NCHW, dim 3 → NHWC); ``layout=`` overrides it
when the shape cannot tell (dynamic or ambiguous dims). A fixed ``H×W`` in the input shape is the size the pair
is resized to; a dynamic one takes the pair's own size.

The output is the disparity map: an output whose name says ``disp`` (else the first), ``[1,1,h,w]``,
``[1,h,w,1]``, ``[1,h,w]`` or ``[h,w]``. Its values are pixels of its own width, so with the left image ``W``
wide the map is resized to ``H×W`` and scaled by ``W / w`` — a model that runs at or outputs a reduced
resolution still yields disparities in pixels of the left image.

Pixels become the model's input as ``(pixels · scale − mean) / std`` per channel (RGB order, or BGR when asked;
grey is the ITU-R BT.601 luminance ``0.299 R + 0.587 G + 0.114 B`` of the pixels); a ``uint8`` input gets the
raw pixels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from modelport.errors import AppError, InvalidInputError
from modelport.inputs import TensorSpec

log = logging.getLogger(__name__)

CONCAT = "concat"
PAIR = "pair"
LAYOUTS = ("NCHW", "NHWC")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: what :func:`detect_contract` tries, in words (for the error when nothing fits)
TRIED = (
    "one input with both views on the channel axis (6 channels RGB or 2 grey, NCHW or NHWC); "
    "two inputs with one view each (3 or 1 channels, NCHW or NHWC); both 4-D with batch 1"
)


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """``(pixels · scale − mean) / std`` per channel; ``bgr`` feeds BGR instead of RGB.

    Attributes:
        scale: factor applied to the uint8 pixels first.
        mean: subtracted per channel (one value, or one per colour channel).
        std: divided by per channel (one value, or one per colour channel).
        bgr: the model expects BGR channel order.
    """

    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    bgr: bool = False

    def apply(self, rgb: np.ndarray, channels: int) -> np.ndarray:
        """An ``H×W×3`` uint8 view as ``H×W×channels`` float32 input values."""
        pixels = rgb.astype(np.float32)
        if channels == 1:
            pixels = (pixels @ _LUMA)[:, :, None]
        elif self.bgr:
            pixels = pixels[:, :, ::-1]
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if channels == 1:
            mean, std = mean[:1], std[:1]
        return (pixels * np.float32(self.scale) - mean) / std


@dataclasses.dataclass(frozen=True)
class StereoContract:
    """A stereo model's I/O as :func:`detect_contract` found it.

    Attributes:
        packing: ``"concat"`` (one input, both views on the channel axis) or ``"pair"`` (two inputs).
        layout: ``"NCHW"`` or ``"NHWC"``.
        channels: channels per view: 3 (RGB) or 1 (grey).
        inputs: the input names, left first.
        size: the fixed ``(H, W)`` the model takes, or None when it takes any size.
        dtype: the inputs' element type (``float32``, ``float16`` or ``uint8``).
        output: the disparity output's name.
    """

    packing: str
    layout: str
    channels: int
    inputs: tuple[str, ...]
    size: tuple[int, int] | None
    dtype: str
    output: str

    def describe(self) -> str:
        """One line, e.g. ``one input 'stereo' [1,6,H,W] (NCHW, RGB left|right) → 'disparity'``."""
        colour = "RGB" if self.channels == 3 else "grey"
        h, w = self.size if self.size else ("H", "W")
        if self.packing == CONCAT:
            dims = [1, 2 * self.channels, h, w] if self.layout == "NCHW" else [1, h, w, 2 * self.channels]
            head = f"one input '{self.inputs[0]}' [{','.join(map(str, dims))}] ({self.layout}, {colour} left|right)"
        else:
            dims = [1, self.channels, h, w] if self.layout == "NCHW" else [1, h, w, self.channels]
            head = f"two inputs '{self.inputs[0]}' (left), '{self.inputs[1]}' (right) [{','.join(map(str, dims))}]"
            head += f" ({self.layout}, {colour})"
        return f"{head} → '{self.output}'"

    def to_dict(self) -> dict[str, object]:
        """The fields as a JSON-ready dict."""
        return {**dataclasses.asdict(self), "size": list(self.size) if self.size else None}


def _describe_specs(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(f"{s.name} {s.dtype}{list(s.shape) if s.shape is not None else '[?]'}" for s in specs) or "none"


def _int(dim: object) -> int | None:
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def _layout_of(shape: tuple[object, ...], counts: tuple[int, ...], layout: str | None) -> tuple[str, int] | None:
    """(layout, channels) of a 4-D input whose channel count is one of ``counts``; None when it fits neither."""
    if len(shape) != 4 or _int(shape[0]) not in (1, None):
        return None
    first, last = _int(shape[1]), _int(shape[3])
    if layout is not None:
        channels = first if layout == "NCHW" else last
        return (layout, channels if channels in counts else counts[0]) if channels in (*counts, None) else None
    if first in counts and last not in counts:
        return "NCHW", first
    if last in counts and first not in counts:
        return "NHWC", last
    if first in counts:  # both fit (e.g. 1×6×H×6): NCHW, as PyTorch exports
        return "NCHW", first
    return None


def _size(shape: tuple[object, ...], layout: str) -> tuple[int, int] | None:
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    hi, wi = _int(h), _int(w)
    return (hi, wi) if hi and wi else None


def _pick_output(outputs: Sequence[str]) -> str | None:
    named = [o for o in outputs if "disp" in o.lower()]
    return (named or list(outputs))[0] if outputs else None


def _ordered_pair(specs: Sequence[TensorSpec]) -> list[TensorSpec]:
    left = [s for s in specs if "left" in s.name.lower()]
    right = [s for s in specs if "right" in s.name.lower()]
    if len(left) == 1 and len(right) == 1 and left[0] is not right[0]:
        return [left[0], right[0]]
    return list(specs)


def detect_contract(
    specs: Sequence[TensorSpec], outputs: Sequence[str], *, layout: str | None = None
) -> StereoContract:
    """The stereo contract a model's inputs and outputs fit (see the module docstring).

    Args:
        specs: the model's inputs (``Runner.input_specs``).
        outputs: the model's output names (``Runner.output_names``).
        layout: ``"NCHW"`` or ``"NHWC"`` to override the layout read from the shapes.

    Raises:
        InvalidInputError: an unknown ``layout``.
        AppError: the I/O fits no contract; the message lists what was tried and what the model has.
    """
    if layout is not None:
        layout = layout.upper()
        if layout not in LAYOUTS:
            raise InvalidInputError(f"unknown input layout {layout!r}", hint="use NCHW or NHWC")
    output = _pick_output(outputs)
    found: StereoContract | None = None
    if len(specs) == 1 and output is not None and specs[0].shape is not None:
        fit = _layout_of(tuple(specs[0].shape), (6, 2), layout)
        if fit:
            found = StereoContract(
                CONCAT, fit[0], fit[1] // 2, (specs[0].name,), _size(tuple(specs[0].shape), fit[0]),
                specs[0].dtype, output,
            )  # fmt: skip
    elif len(specs) == 2 and output is not None and all(s.shape is not None for s in specs):
        ordered = _ordered_pair(specs)
        fits = [_layout_of(tuple(s.shape or ()), (3, 1), layout) for s in ordered]
        if fits[0] and fits[0] == fits[1] and ordered[0].dtype == ordered[1].dtype:
            shape = tuple(ordered[0].shape or ())
            found = StereoContract(
                PAIR, fits[0][0], fits[0][1], (ordered[0].name, ordered[1].name), _size(shape, fits[0][0]),
                ordered[0].dtype, output,
            )  # fmt: skip
    if found is None or found.dtype not in ("float32", "float16", "uint8"):
        given = f" with --input-layout {layout}" if layout else ""
        raise AppError(
            f"the model's inputs fit no stereo contract{given}: tried {TRIED}; the model has inputs "
            f"{_describe_specs(specs)} and outputs {', '.join(outputs) or 'none'}",
            hint="give a stereo disparity model, or --input-layout NCHW|NHWC when its shapes are dynamic",
        )
    log.debug("stereo contract: %s", found.describe())
    return found


def pack(contract: StereoContract, left: np.ndarray, right: np.ndarray, norm: Normalisation) -> dict[str, np.ndarray]:
    """The model's feeds for one pair of ``H×W×3`` uint8 views (already at the size the model runs)."""
    if contract.dtype == "uint8":
        views = [v if contract.channels == 3 else (v.astype(np.float32) @ _LUMA)[:, :, None] for v in (left, right)]
    else:
        views = [norm.apply(v, contract.channels) for v in (left, right)]
    dtype = np.dtype(contract.dtype)
    views = [np.clip(np.rint(v), 0, 255) if dtype == np.uint8 and v.dtype != np.uint8 else v for v in views]
    tensors = [np.concatenate(views, axis=2)] if contract.packing == CONCAT else views
    if contract.layout == "NCHW":
        tensors = [t.transpose(2, 0, 1) for t in tensors]
    return {name: np.ascontiguousarray(t[None].astype(dtype)) for name, t in zip(contract.inputs, tensors, strict=True)}


def unpack_disparity(contract: StereoContract, outputs: Mapping[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """The disparity output as float32 ``H×W`` (``size``) in pixels of an image ``size[1]`` wide.

    Raises:
        AppError: the output is missing or is not a one-channel map.
    """
    import cv2

    raw = outputs.get(contract.output)
    if raw is None:
        raise AppError(f"the model gave no output {contract.output!r} (it gave {', '.join(outputs) or 'none'})")
    arr = np.asarray(raw, dtype=np.float32)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr[0] if arr.shape[0] == 1 else arr[..., 0]
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise AppError(
            f"the model's output {contract.output!r} has shape {list(np.shape(raw))}, not a disparity map",
            hint="a stereo model outputs [1,1,H,W], [1,H,W,1], [1,H,W] or [H,W]",
        )
    height, width = size
    if arr.shape != (height, width):
        factor = width / arr.shape[1]
        arr = cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR) * np.float32(factor)
    return np.ascontiguousarray(arr, dtype=np.float32)
