"""The ONNX graph optimizer: registered passes, run to a fixed point, verified in ONNX Runtime.

    >>> from modelport.passes import OptimizeOptions, optimize
    >>> options = OptimizeOptions(input_shapes=(("image", (1, 3, 480, 640)),))
    >>> report = optimize("model.onnx", options=options).write("model.opt.onnx")
    >>> report.nodes_before, report.nodes_after

Importing this package registers every pass (``modelport.passes.registry()`` lists them).
"""

from __future__ import annotations

from modelport.passes import (  # noqa: F401  (register the passes)
    cleanup,
    control_flow,
    maxpool_padding,
    merge,
    opset,
    quantized,
    reshape,
    rewrite,
    rnn,
    shapes,
)
from modelport.passes.api import (
    OptimizeOptions,
    OptimizeResult,
    default_passes,
    optimize,
    resolve_passes,
    run_passes,
)
from modelport.passes.base import ModelportPass, PassOptions, PassSpec, PassStats, Phase, register_pass, registry
from modelport.passes.report import OptimizeReport

__all__ = [
    "ModelportPass",
    "OptimizeOptions",
    "OptimizeReport",
    "OptimizeResult",
    "PassOptions",
    "PassSpec",
    "PassStats",
    "Phase",
    "default_passes",
    "optimize",
    "register_pass",
    "registry",
    "resolve_passes",
    "run_passes",
]
