"""Preprocessing: how pixels become a model's image tensor.

The model's image input decides the size, layout (NCHW or NHWC), channel count and dtype; the user (or the
dataset) gives only the normalisation. Per channel, ``tensor = (pixels · scale − mean) / std`` with pixels in
0‥255 (:class:`~modelport.inputs.ImagePreprocess`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from modelport.errors import InvalidInputError
from modelport.inputs import ImagePreprocess, Layout, TensorSpec, image_to_tensor


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """What an image input wants: its name, layout, channels, size (None: any) and dtype."""

    name: str
    layout: Layout
    channels: int
    size: tuple[int, int] | None
    dtype: str


def image_input(specs: Sequence[TensorSpec], source: str) -> ImageInput:
    """The model's single image input (4-D, 1 or 3 channels at dim 1 or 3).

    Args:
        specs: the model's inputs.
        source: the data's name, for the error message.

    Raises:
        InvalidInputError: the model has several inputs, or its input is not an image.
    """
    if len(specs) != 1:
        raise InvalidInputError(
            f"{source} gives images, but the model has {len(specs)} inputs",
            hint="use an .npz with one array per input name",
        )
    spec = specs[0]
    shape = spec.shape
    if shape is None or len(shape) != 4:
        raise InvalidInputError(
            f"{source} gives images, but input {spec.name!r} is {spec.shape_text()}, not N×C×H×W or N×H×W×C",
            hint="use a .npy/.npz with the model's own input shape",
        )
    ch_first = shape[1] in (1, 3)
    ch_last = shape[3] in (1, 3)
    if not (ch_first or ch_last):
        raise InvalidInputError(
            f"{source} gives images, but input {spec.name!r} {spec.shape_text()} has no 1- or 3-channel axis",
            hint="use a .npy/.npz with the model's own input shape",
        )
    layout = Layout.NCHW if ch_first else Layout.NHWC
    dims = (shape[2], shape[3]) if layout is Layout.NCHW else (shape[1], shape[2])
    channels = int(shape[1] if layout is Layout.NCHW else shape[3])  # type: ignore[arg-type]
    h, w = dims
    size = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    return ImageInput(spec.name, layout, channels, size, spec.dtype)


def fit_preprocess(pre: ImagePreprocess | None, target: ImageInput) -> ImagePreprocess:
    """``pre`` with size, layout, colour and dtype taken from the model (normalisation kept from ``pre``)."""
    base = pre or ImagePreprocess()
    return dataclasses.replace(
        base,
        size=base.size or target.size,
        layout=target.layout,
        grayscale=target.channels == 1,
        dtype=target.dtype,
    )


def describe_preprocess(pre: ImagePreprocess) -> str:
    """The preprocessing in words, for reports (size, colour, layout, normalisation, dtype)."""
    size = f"{pre.size[0]}×{pre.size[1]}" if pre.size else "original size"
    colour = "grayscale" if pre.grayscale else ("BGR" if pre.bgr else "RGB")
    return (
        f"{size}, {colour}, {pre.layout.value}, (pixels × {pre.scale:.6g} − mean {list(pre.mean)}) / std "
        f"{list(pre.std)}, {pre.dtype}"
    )


def pixels_to_tensors(pixels: np.ndarray, pre: ImagePreprocess) -> np.ndarray:
    """Turn ``N×H×W×C`` pixel arrays (0‥255) into model tensors following ``pre`` (vectorised when no resize)."""
    if pre.size is not None and tuple(pixels.shape[1:3]) != tuple(pre.size):
        return np.concatenate([image_to_tensor(p, pre) for p in pixels])
    x = pixels.astype(np.float32) * np.float32(pre.scale)
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, 1, 1, -1)
    std = np.asarray(pre.std, dtype=np.float32).reshape(1, 1, 1, -1)
    x = (x - mean) / std
    if pre.layout is Layout.NCHW:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x.astype(pre.dtype))
