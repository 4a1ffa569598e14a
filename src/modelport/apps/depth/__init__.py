"""``depth``: stereo disparity on any runtime, with the stereo network modelport ships.

The network (``modelport/assets/census_stereo.onnx``, built by ``scripts/build_stereo_net.py``; the maths is in
that script's docstring) is a classical cost-volume matcher that needs no training: soft census cost over 32
shifts at half resolution, guided-filter aggregation, argmin with a parabola's sub-pixel step, a left-right
check and a background fill, so every pixel gets a disparity. Any other stereo model runs too: its I/O contract
(one 6- or 2-channel input, NCHW or NHWC, or two inputs; a disparity at full or reduced size) is detected by
:mod:`modelport.apps.depth.contract`.
"""

from __future__ import annotations

from modelport.apps.depth.app import depth, side_path
from modelport.apps.depth.contract import Normalisation, StereoContract, detect_contract
from modelport.apps.depth.estimator import DepthEstimator, default_stereo_model, model_disparity_range
from modelport.apps.depth.metrics import DisparityErrors, disparity_errors, load_ground_truth, read_pfm
from modelport.apps.depth.results import DepthOptions, DepthReport

__all__ = [
    "DepthEstimator",
    "DepthOptions",
    "DepthReport",
    "DisparityErrors",
    "Normalisation",
    "StereoContract",
    "default_stereo_model",
    "depth",
    "detect_contract",
    "disparity_errors",
    "load_ground_truth",
    "model_disparity_range",
    "read_pfm",
    "side_path",
]
