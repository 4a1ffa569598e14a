"""``Resize`` with ``coordinate_transformation_mode="align_corners"`` → ``"half_pixel"`` (``resize-no-align-corners``).

Several targets (the Edge TPU compiler, older OpenVINO NPU plugins, TensorRT's older Resize layer) run only the
half-pixel sampling grid, the default of TensorFlow 2 and of PyTorch's ``align_corners=False``. This rule rewrites
the attribute and keeps every other one (mode, nearest_mode, cubic_coeff_a, exclude_outside, antialias, axes …).
**It changes the numbers by design** (exactness ``CHANGES``): the rewrite reports the measured difference and is
never part of a target profile.

**How much.** Along one axis let the input have ``L`` pixels, the output ``M``, and ``s = M / L`` the scale (ONNX
Runtime uses the ``scales`` input when given, which is the same for a ``sizes`` resize of a whole number of
pixels). Output pixel ``i`` samples the input at::

    align_corners:  a(i) = i · (L − 1) / (M − 1)
    half_pixel:     h(i) = (i + ½) / s − ½

Both are affine in ``i`` and agree at the centre ``i = (M − 1)/2`` (both give ``(L − 1)/2``), so their difference
``Δ(i) = h(i) − a(i)`` is linear, zero at the centre and largest at the two borders::

    Δ(0) = ½ (1/s − 1),   Δ(M − 1) = −½ (1/s − 1),   |Δ(i)| ≤ ½ |1/s − 1|

— the grid shifts by up to half an input pixel when upsampling (``¼`` pixel at 2×, approaching ``½`` as ``s``
grows), by ``½`` pixel when halving and ``(k − 1)/2`` pixels when downsampling by ``k``. (For upsampling, linear
half-pixel sampling also clamps ``h(i) < 0`` to pixel 0 and ``h(i) > L − 1`` to the last one, which only shrinks
``|Δ|``.)

For ``mode="linear"`` the interpolant along an axis is piecewise linear with slopes equal to the differences of
neighbouring input pixels, so it is Lipschitz with constant ``G_k = max |x[j + 1] − x[j]|`` along axis ``k``;
(bi)linear interpolation is separable with convex weights, hence per output element::

    |half_pixel − align_corners| ≤ Σ_k ½ |1/s_k − 1| · G_k

On a smooth image (small ``G``) the difference is tiny; at an edge of height ``E`` it approaches
``½ |1/s − 1| · E`` near the borders and vanishes at the centre. ``mode="nearest"`` can pick a pixel up to
``⌈½ |1/s − 1|⌉`` away (a full pixel at an edge: the difference is then the edge's height); ``mode="cubic"`` has no
bound as simple (its kernel overshoots) and is measured. ``tests/rules/test_resize.py`` measures it on a gradient
plus an edge and checks the linear bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import opset_version
from modelport.rules.catalog import Exactness, RuleSettings, target_rule

_MODE = "coordinate_transformation_mode"

#: The pseudo op type ``resize-no-align-corners`` removes (a Resize on the align_corners grid; see
#: :func:`is_align_corners_resize`).
ALIGN_CORNERS_RESIZE = "Resize(align_corners)"


def is_align_corners_resize(node: ir.Node) -> bool:
    """True for a default-domain Resize with ``coordinate_transformation_mode="align_corners"``."""
    return (
        node.op_type == "Resize"
        and node.domain in ("", "ai.onnx")
        and node.attributes.get_string(_MODE, "half_pixel") == "align_corners"
    )


def grid_shift_bound(scale: float) -> float:
    """The largest shift ``½ |1/s − 1|``, in input pixels, of the sampling grid along an axis of scale ``s``."""
    return 0.5 * abs(1.0 / scale - 1.0)


def linear_difference_bound(image: np.ndarray, scales: dict[int, float]) -> float:
    """The bound ``Σ_k ½ |1/s_k − 1| · G_k`` on ``|half_pixel − align_corners|`` of a linear resize of ``image``.

    Args:
        image: the input tensor.
        scales: scale per resized axis.
    """
    total = 0.0
    for axis, scale in scales.items():
        steps = np.abs(np.diff(image.astype(np.float64), axis=axis))
        total += grid_shift_bound(scale) * (float(steps.max()) if steps.size else 0.0)
    return total


class ResizeNoAlignCorners(RewriteRuleClassBase):
    """``Resize<coordinate_transformation_mode="align_corners">`` → the same Resize with ``"half_pixel"``."""

    def __init__(self) -> None:
        super().__init__(name="ResizeNoAlignCorners")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Resize(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        node = out.producer()
        assert node is not None
        if not is_align_corners_resize(node):
            return result.fail("the Resize does not use align_corners")
        if opset_version(context.model) < 11:
            return result.fail("Resize has coordinate transformation modes from opset 11")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        node = out.producer()
        assert node is not None
        attributes: dict[str, Any] = {k: v for k, v in node.attributes.items() if k != _MODE}
        attributes[_MODE] = "half_pixel"
        return op.Resize(*node.inputs, **attributes)


def resize_rules() -> RewriteRuleSet:
    """align_corners → half_pixel."""
    return RewriteRuleSet([ResizeNoAlignCorners.rule()])


@target_rule(
    "resize-no-align-corners",
    summary="Resize align_corners → half_pixel (changes the output: the grid shifts by up to ½|1/scale − 1| "
    "input pixels at the borders)",
    removes=(ALIGN_CORNERS_RESIZE,),
    adds=("Resize",),
    exactness=Exactness.CHANGES,
)
def resize_no_align_corners(settings: RuleSettings) -> RewriteRuleSet:
    """The registered form of :func:`resize_rules`."""
    return resize_rules()
