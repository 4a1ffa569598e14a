"""``port``: the main job — source → optimize → every target → verify → benchmark → report.

:mod:`.pipeline` plans and runs the targets; :mod:`.int8` builds and judges the INT8 ones through
:mod:`modelport.quantization`; :mod:`.results` holds the options and report types; :mod:`.render` the Markdown and
HTML pages.
"""

from __future__ import annotations

from modelport.porting.pipeline import port
from modelport.porting.results import PortOptions, PortReport, TargetResult

__all__ = ["PortOptions", "PortReport", "TargetResult", "port"]
