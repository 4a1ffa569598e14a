"""Pictures of a disparity map: colourised (near = warm), and side by side with the left view.

A disparity ``d`` maps to the colour map's index ``round(255 · clip(d / d_max, 0, 1))`` (OpenCV's Turbo map):
large disparities — near surfaces — are red, far ones blue. ``d_max`` is fixed for a video (the colours of one
depth stay the same across frames) and is the map's 99th percentile for a single pair.
"""

from __future__ import annotations

import numpy as np


def colour_range(disp: np.ndarray) -> float:
    """A colour scale's top for one map: its finite 99th percentile (at least 1 px)."""
    finite = disp[np.isfinite(disp)]
    return max(1.0, float(np.percentile(finite, 99))) if finite.size else 1.0


def colourise(disp: np.ndarray, d_max: float) -> np.ndarray:
    """``H×W`` disparities → ``H×W×3`` RGB uint8 (Turbo colour map, ``0 … d_max``)."""
    import cv2

    scaled = np.clip(np.nan_to_num(disp, nan=0.0, posinf=0.0, neginf=0.0) / max(d_max, 1e-6), 0.0, 1.0)
    index = np.rint(scaled * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(index, cv2.COLORMAP_TURBO)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def side_by_side(left: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The left view and the colourised disparity next to each other (same height), RGB uint8."""
    if left.shape[:2] != colour.shape[:2]:
        raise ValueError(f"left {left.shape[:2]} and disparity {colour.shape[:2]} differ in size")
    return np.ascontiguousarray(np.concatenate([left, colour], axis=1))
