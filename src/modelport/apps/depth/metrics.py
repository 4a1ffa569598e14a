"""Disparity ground truth (``.npy``, ``.pfm``, ``.png``) and the two standard errors, computed densely.

With ``d`` our disparity and ``g`` the ground truth over the set ``V`` of pixels that have one (finite and
``> 0``; Middlebury marks the others with ``inf`` or 0):

    EPE = (1/|V|) Σ_V |d − g|          bad-τ = (1/|V|) #{p ∈ V : |d(p) − g(p)| > τ}   (τ = 3 and 1 px)

Every pixel of ``V`` counts: a method that leaves holes must be scored with its holes filled by something, and
:func:`disparity_errors` takes ``valid=`` for that (a pixel outside ``valid`` counts as disparity 0, i.e.
``|g|`` of error, and always as bad) — how the benchmark scores StereoSGBM "holes as errors".

A ground truth of another size than the image (Middlebury's full-size maps for a downsized pair) is resized
(nearest) and scaled by the width ratio, so its values are pixels of the image it is compared with.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from modelport.errors import AppError


@dataclasses.dataclass(frozen=True)
class DisparityErrors:
    """Errors of a disparity map against ground truth (fractions in [0, 1]).

    Attributes:
        epe: mean end-point error in pixels over the ground-truth pixels.
        bad3: fraction of ground-truth pixels with an error above 3 px.
        bad1: fraction with an error above 1 px.
        coverage: fraction of the image's pixels that have ground truth.
        filled: fraction of the ground-truth pixels the method gave a disparity (1.0 for a dense method).
    """

    epe: float
    bad3: float
    bad1: float
    coverage: float
    filled: float = 1.0

    def to_dict(self) -> dict[str, float]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def disparity_errors(disp: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> DisparityErrors:
    """EPE, bad-3px and bad-1px of ``disp`` over the pixels where ``gt`` is finite and positive.

    Args:
        disp: the estimated disparity, ``H×W``.
        gt: the ground truth, same size.
        valid: where ``disp`` holds a value (None: everywhere); elsewhere the pixel counts as disparity 0.

    Raises:
        AppError: different sizes, or a ground truth with no valid pixel.
    """
    if disp.shape != gt.shape:
        raise AppError(f"disparity {list(disp.shape)} and ground truth {list(gt.shape)} differ in size")
    known = np.isfinite(gt) & (gt > 0)
    if not known.any():
        raise AppError("the ground truth has no valid pixel (all NaN, inf or 0)")
    est = np.asarray(disp, dtype=np.float64)
    given = np.ones_like(known) if valid is None else np.asarray(valid, dtype=bool)
    est = np.where(given, est, 0.0)
    err = np.abs(est - np.where(known, gt, 0.0))[known]
    holes = ~given[known]
    return DisparityErrors(
        epe=float(err.mean()),
        bad3=float(((err > 3) | holes).mean()),
        bad1=float(((err > 1) | holes).mean()),
        coverage=float(known.mean()),
        filled=float(1.0 - holes.mean()),
    )


def read_pfm(path: Path) -> np.ndarray:
    """A Portable Float Map's single channel as float32 ``H×W`` (top row first).

    Raises:
        AppError: not a one-channel PFM (``Pf``) or a truncated file.
    """
    data = Path(path).read_bytes()
    match = re.match(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+(-?[\d.eE+-]+)\s", data)
    if match is None:
        raise AppError(f"{path} is not a PFM file", hint="give a .pfm, .npy or .png disparity map", path=path)
    kind, width, height, scale = match.group(1), int(match.group(2)), int(match.group(3)), float(match.group(4))
    channels = 3 if kind == b"PF" else 1
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    count = width * height * channels
    body = data[match.end() :]
    if len(body) < count * 4:
        raise AppError(f"{path} is truncated ({len(body)} of {count * 4} bytes of pixels)", path=path)
    pixels = np.frombuffer(body[: count * 4], dtype=dtype).reshape(height, width, channels)[:, :, 0]
    return np.ascontiguousarray(pixels[::-1], dtype=np.float32)  # PFM rows run bottom to top


def load_ground_truth(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a disparity ground truth: ``.npy`` (float, NaN/inf/≤ 0 invalid), ``.pfm`` or ``.png`` (0 invalid).

    Args:
        path: the file.
        size: the ``(H, W)`` of the image it is compared with; another size is resized (nearest) and its values
            scaled by the width ratio.

    Raises:
        AppError: a missing or unreadable file, or not a 2-D map.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise AppError(f"ground truth {path} does not exist", hint="give a .npy, .pfm or .png disparity map", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            gt = np.load(path, allow_pickle=False)
        elif suffix == ".pfm":
            gt = read_pfm(path)
        else:
            gt = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if gt is None:
                raise AppError(f"cannot decode ground truth {path}", hint="give a .npy, .pfm or .png map", path=path)
    except (OSError, ValueError) as exc:
        raise AppError(f"cannot read ground truth {path}: {exc}", path=path) from exc
    gt = np.asarray(gt, dtype=np.float32)
    if gt.ndim == 3:
        gt = gt[:, :, 0]
    if gt.ndim != 2:
        raise AppError(f"ground truth {path} has shape {list(gt.shape)}, not a 2-D map", path=path)
    gt = np.where(np.isfinite(gt) & (gt > 0), gt, np.float32(np.inf))
    if size is not None and gt.shape != tuple(size):
        factor = size[1] / gt.shape[1]
        gt = cv2.resize(gt, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) * np.float32(factor)
    return gt
