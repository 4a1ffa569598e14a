"""``port``: the main job — source → optimize → every target → verify → benchmark → report.

:mod:`.pipeline` plans and runs the targets; :mod:`.int8` builds and judges the INT8 ones through
:mod:`modelport.quantization`.
"""

from __future__ import annotations

from modelport.porting.pipeline import PortOptions, PortReport, TargetResult, port

__all__ = ["PortOptions", "PortReport", "TargetResult", "port"]
