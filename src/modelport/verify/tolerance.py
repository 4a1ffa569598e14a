r"""The tolerance policy: when is a candidate's output "the same" as the reference's?

**The element rule.** For one output with reference :math:`r` and candidate :math:`o` (same shape, after name and
layout matching), let :math:`P = \max_i |r_i|` over the finite elements (the output's *peak*). Then

.. math::

    \text{atol}_\text{eff} = \max(\text{atol},\ s \cdot P), \qquad
    |o_i - r_i| \le \text{atol}_\text{eff} + \text{rtol} \cdot |r_i| \quad \text{for every } i.

NaNs must sit at the same places, an infinity must meet the same infinity, and integer/boolean outputs must be
equal (the tolerance does not apply to them).

*Why scale with the peak.* Two runtimes computing the same float graph differ by rounding: a dot product of
length :math:`n` computed in another summation order (blocked GEMM, Winograd convolution, fused kernels) differs
by about :math:`\sqrt{n}\,u\,\sum_k |a_k b_k|`, with :math:`u` the unit roundoff. The error of *every* element is
therefore proportional to the magnitude of the activations that produced it, not to the element itself: an
element that is nearly 0 because large terms cancel carries the same absolute error as its large neighbours.
Layer after layer the error stays a fraction of the activation scale, and the output's peak is the best single
measure of that scale we can read without running the graph. Measured on landmark regressors whose outputs reach
~1,000: correct fp32 conversions differ by ~1e-4 on elements near 0 (1e-7 of the peak); a fixed ``atol=1e-5`` rejects
them, :math:`s \cdot P` accepts them. ``atol`` stays as a floor for outputs whose peak is small, ``rtol`` covers the
rounding of each element's own value.

**The aggregate floor.** The element rule alone accepts an error spread over every element just below the bound.
On a dense output that bound is already a small share of the values; on a spiky one (a heatmap, one large logit)
the peak loosens every element's bound, and a bias on all the small elements would pass. When the output stands
above the noise (:math:`P > \text{atol}` and
:math:`\text{rms}(r) > \text{atol}_\text{eff}`) the relative L2 error must also stay small:

.. math:: \frac{\lVert o - r \rVert_2}{\lVert r \rVert_2} \le e_\text{max}.

It implies the cosine floor :math:`\cos(o, r) \ge \sqrt{1 - e_\text{max}^2}` (the angle between :math:`r` and
:math:`r + d` has :math:`\sin\theta \le \lVert d\rVert / \lVert r\rVert`), so a separate cosine floor would add
nothing; cosine is reported as a metric. An output that is all ≈ 0 (:math:`P \le \text{atol}`) is judged by
``atol`` alone: its relative errors measure noise divided by noise. Nor is the floor judged when the error itself
is within the absolute floor, :math:`\text{rms}(o - r) \le \text{atol}`: ``atol`` is the precision's noise level
for any value, and an error below it everywhere on average is rounding, whatever the reference's size. Without
this the floor would be discontinuous: an output whose rms sits just above :math:`\text{atol}_\text{eff}` would be
held to an error :math:`e_\text{max}` times its own size, 1,000× below what the element rule allows an output just
under it (measured: a wake-word model's probability output near 1e-5, rms error 4e-8, relative L2 0.004, failed
while every element was within 0.5 % of its bound). The spiky case the floor exists for keeps failing: there the
bias sits between ``atol`` and :math:`\text{atol}_\text{eff} = s\cdot P`, far above ``atol``.

**Defaults per precision** (:meth:`Tolerance.for_precision`), with :math:`u` the unit roundoff:

====== ====== ====== ====== ========= ==========================================================================
prec   rtol   atol   s      e_max     reasoning
====== ====== ====== ====== ========= ==========================================================================
fp32   1e-4   1e-5   1e-4   1e-3      :math:`u = 6\cdot10^{-8}`; :math:`L\sqrt{n}\,u` for 50 layers of fan-in
                                      4,096 is ~2e-4 of the activation scale; transcendental approximations
                                      (exp, erf) add ~1e-6 relative.
fp16   1e-2   1e-3   5e-3   2e-2      :math:`u = 4.9\cdot10^{-4}` (10-bit mantissa), 8× coarser per op and
                                      every intermediate rounded; a few ‰ of the scale after a deep net.
bf16   2e-2   1e-2   5e-2   1e-1      :math:`u = 3.9\cdot10^{-3}` (7-bit mantissa): one rounding is already
                                      0.4 % of a value; errors of a few % of the scale are normal.
int8   5e-2   1e-2   1e-1   1.5e-1    one quantization step is 1/255 of a tensor's *calibrated* range;
                                      runtimes requantize in their own way and differ by a step or more. On
                                      feeds unlike the calibration data the observed peak is smaller than that
                                      range: the MNIST int8 model on random feeds differs by one step, 0.147,
                                      at a peak of 3.96 (3.7 %). e_max = 0.15 ⇔ cos ≥ 0.99, the quantizer's
                                      own floor.
====== ====== ====== ====== ========= ==========================================================================

What each default still rejects: with :math:`s \le 5\cdot10^{-3}` (fp32, fp16) a channel off by 1 % of the
output's range, two swapped outputs or a transposed square map exceed the bound on elements near 0. bf16 and
int8 cannot see errors below their own noise (5 % and 10 % of the peak); swapped, transposed or otherwise wrong
outputs differ by the order of the peak and fail at every precision.

**The source's precision is the floor.** A model that is itself int8 or fp16 differs across runtimes by its own
rounding, whatever precision it is asked to run at: a comparison is judged at the loosest of the candidate's
precision and the precisions of the model files involved (:meth:`Tolerance.at_least`,
:func:`modelport.verify.precision.detect_precision`).

**Overrides** (:meth:`Tolerance.with_overrides`, the CLI's ``--rtol/--atol``): explicit values are the whole
test. ``rtol`` replaces the relative part; ``atol`` replaces the magnitude-scaled bound (``atol_eff = atol``,
numpy's ``isclose`` rule); either switches the aggregate floor off and the source-precision floor off.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from modelport.formats import Precision
from modelport.reports.serialize import JsonReport
from modelport.verify.precision import loosest

#: outputs listed one by one in the printed tolerance; more are summarised as a range.
_LISTED = 3


@dataclasses.dataclass(frozen=True)
class Tolerance(JsonReport):
    """When two outputs are the same; see the module docstring for the rule and the defaults.

    ``Tolerance(rtol, atol)`` is numpy's ``isclose`` rule; :meth:`for_precision` gives the magnitude-scaled policy.

    Attributes:
        rtol: relative part of the element bound (times ``|reference|``).
        atol: absolute part of the element bound; with ``scale`` its floor.
        scale: ``atol_eff = max(atol, scale · max|reference|)``; 0 keeps ``atol`` fixed.
        max_rel_l2: the aggregate floor ``‖o − r‖ / ‖r‖`` for outputs above the noise (None: not judged).
        precision: the precision whose default policy this is; None for explicit values (never raised to a
            source's precision).
        effective: ``(output name, atol_eff)`` per output once applied to a comparison (what was really used;
            for display only, not part of equality).
    """

    rtol: float = 1e-4
    atol: float = 1e-5
    scale: float = 0.0
    max_rel_l2: float | None = None
    precision: Precision | None = None
    effective: tuple[tuple[str, float], ...] = dataclasses.field(default=(), compare=False)

    @classmethod
    def for_precision(cls, precision: Precision | str) -> Tolerance:
        """The default policy for a precision (see the table in the module docstring)."""
        p = Precision(precision)
        rtol, atol, scale, max_rel_l2 = _DEFAULTS[p]
        return cls(rtol=rtol, atol=atol, scale=scale, max_rel_l2=max_rel_l2, precision=p)

    def with_overrides(self, rtol: float | None = None, atol: float | None = None) -> Tolerance:
        """This tolerance with the user's explicit values (None: keep this one's).

        ``rtol`` replaces the relative part; ``atol`` also replaces the magnitude-scaled bound (the element rule
        becomes numpy's ``isclose``). Any override switches the aggregate floor off and makes the tolerance
        explicit: it is used as given whatever the precision of the models compared. The CLI calls
        ``Tolerance.for_precision(p).with_overrides(rtol=args.rtol, atol=args.atol)``.

        Raises:
            ValueError: a negative or non-finite value.
        """
        if rtol is None and atol is None:
            return self
        for name, value in (("rtol", rtol), ("atol", atol)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
        return Tolerance(
            rtol=self.rtol if rtol is None else float(rtol),
            atol=self.atol if atol is None else float(atol),
            scale=self.scale if atol is None else 0.0,
            max_rel_l2=None,
            precision=None,
        )

    @property
    def explicit(self) -> bool:
        """True for user-given values (never raised to a model's precision)."""
        return self.precision is None

    def at_least(self, *precisions: Precision | None) -> Tolerance:
        """The policy of the loosest of this one's precision and ``precisions``; explicit tolerances unchanged."""
        if self.precision is None:
            return self
        p = loosest(self.precision, *precisions)
        return self if p is self.precision else Tolerance.for_precision(p)

    def looser(self, other: Tolerance) -> Tolerance:
        """A tolerance accepting whatever either accepts (a chain's drift: the loosest hop so far)."""
        if self.precision is not None and other.precision is not None:
            return self.at_least(other.precision)
        floors = [t.max_rel_l2 for t in (self, other)]
        return Tolerance(
            rtol=max(self.rtol, other.rtol),
            atol=max(self.atol, other.atol),
            scale=max(self.scale, other.scale),
            max_rel_l2=None if None in floors else max(f for f in floors if f is not None),
            precision=None,
        )

    def atol_for(self, peak: float) -> float:
        """The absolute bound used for an output whose reference peaks at ``peak`` (``max |r|``)."""
        if not math.isfinite(peak):
            return self.atol
        return max(self.atol, self.scale * peak)

    def resolved(self, effective: Sequence[tuple[str, float]]) -> Tolerance:
        """This tolerance annotated with the ``atol_eff`` each output used."""
        return dataclasses.replace(self, effective=tuple((n, float(a)) for n, a in effective))

    def __str__(self) -> str:
        if self.scale == 0.0 and self.max_rel_l2 is None and self.precision is None:
            return f"rtol={self.rtol:g}, atol={self.atol:g}"
        parts = [f"{self.precision.value}:" if self.precision is not None else "custom:", f"rtol={self.rtol:g},"]
        parts.append(self._atol_text())
        if self.max_rel_l2 is not None:
            parts[-1] += ","
            parts.append(f"rel-L2 ≤ {self.max_rel_l2:g}")
        return " ".join(parts)

    def _atol_text(self) -> str:
        """The absolute bound: the rule, or once applied the ``atol_eff`` each output used (the rule is then
        ``max(atol, scale·max|ref|)`` with this policy's numbers, shown by ``str`` of the unapplied policy)."""
        if not self.effective:
            return f"atol=max({self.atol:g}, {self.scale:g}·max|ref|)" if self.scale > 0 else f"atol={self.atol:g}"
        if len(self.effective) == 1:
            return f"atol_eff={self.effective[0][1]:.3g}"
        if len(self.effective) <= _LISTED:
            return "atol_eff=" + ", ".join(f"{a:.3g} ({n})" for n, a in self.effective)
        values = [a for _, a in self.effective]
        return f"atol_eff={min(values):.3g}…{max(values):.3g} over {len(values)} outputs"


#: rtol, atol, scale, max_rel_l2 per precision; the reasoning is in the module docstring.
_DEFAULTS: dict[Precision, tuple[float, float, float, float]] = {
    Precision.FP32: (1e-4, 1e-5, 1e-4, 1e-3),
    Precision.FP16: (1e-2, 1e-3, 5e-3, 2e-2),
    Precision.BF16: (2e-2, 1e-2, 5e-2, 1e-1),
    Precision.INT8: (5e-2, 1e-2, 1e-1, 1.5e-1),
}
