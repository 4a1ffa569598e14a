"""INT8 targets of ``port`` are never chosen when slower than FP32.

They are built by :func:`modelport.porting.target.int8_target` (``quantize``: calibrated on ``--calib``, else the
evaluation data, else random data with a warning; judged by quantize's verdict — top-1 drop within
:data:`~modelport.quantization.api.DEFAULT_MAX_DROP` points, or output agreement within the int8 tolerance without
labels). An INT8 target whose median latency is above its FP32 sibling's on the same runtime (or that quantize
measured as not faster) is flagged and excluded from the fastest pick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from modelport.formats import Precision
from modelport.porting.results import TargetResult

FLAG = "slower-than-fp32"


def slower_than_fp32(target: TargetResult, targets: Sequence[TargetResult]) -> bool:
    """An INT8 target flagged by quantize, or with a higher median latency than its FP32 sibling."""
    if target.precision is not Precision.INT8:
        return False
    if FLAG in target.flags:
        return True
    sibling = next(
        (t for t in targets if t.runtime == target.runtime and t.precision is Precision.FP32 and t.latency), None
    )
    return bool(sibling and sibling.latency and target.latency and target.latency.p50_ms >= sibling.latency.p50_ms)


def flag_slower_int8(targets: Sequence[TargetResult]) -> list[TargetResult]:
    """Mark INT8 targets slower than their FP32 sibling (flag + reason); they are never chosen as fastest."""
    flagged = []
    for t in targets:
        if slower_than_fp32(t, targets):
            sibling = next((s for s in targets if s.runtime == t.runtime and s.precision is Precision.FP32), None)
            times = (
                f" (p50 {t.latency.p50_ms:.3f} ms vs {sibling.latency.p50_ms:.3f} ms)"
                if t.latency and sibling is not None and sibling.latency
                else ""
            )
            note = f"flagged: INT8 not faster than {t.runtime}/fp32{times}, never chosen"
            t = dataclasses.replace(t, flags=tuple(dict.fromkeys((*t.flags, FLAG))), reason=f"{note}; {t.reason}")
        flagged.append(t)
    return flagged
