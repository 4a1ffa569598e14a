"""Every intermediate tensor of one inference: what per-tensor comparison and bisection read.

A :class:`Trace` is one run of a model on one runtime with its intermediate tensors exposed (ONNX Runtime: every node
output made a graph output; OpenVINO: ``Model.add_outputs`` on every op output; LiteRT: the interpreter's
``experimental_preserve_all_tensors``), in the runtime's topological order, each tensor with the op that made it and
the tensors that op read. :func:`trace` opens the model on the named runtime and runs it once.

The tracers live next to their runners (``onnxruntime.trace_onnx``, ``openvino.trace_openvino``,
``litert.trace_litert``), named in each backend's descriptor (``Backend.tracer``) by entry point so that neither an
engine nor a backend module is imported before a trace is asked for, and are looked up by runtime name or alias; a
runtime without one (TensorFlow, PyTorch, TensorRT) raises :class:`TraceUnavailable` (the caller falls back to
bisection and says so). Tracers run on CPU at fp32 compute (ONNX Runtime with its graph optimizations off; LiteRT
without delegates); an int8 TFLite model's tensors are dequantized, ``x = (q − zero_point) · scale``, so they compare
with a float model's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from modelport.backends.base import resolve
from modelport.backends.runner import RunnerOptions
from modelport.errors import ModelportError

log = logging.getLogger(__name__)

#: backend name → ``"module:function"`` of its tracer, ``(model, feeds, options) -> Trace``; named by entry point so
#: that no engine (and no backend module, which imports this one) is imported until a trace is asked for


@dataclasses.dataclass(frozen=True)
class TracedOp:
    """One op of the traced graph.

    Attributes:
        name: the op's (node's) name in the model.
        op_type: its type in the runtime's own op set (ONNX op type, OpenVINO op type, TFLite builtin name).
        inputs: the tensor names it reads (graph inputs and constants included when the runtime names them).
        outputs: the tensor names it writes (those in :attr:`Trace.tensors` were captured).
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class Trace:
    """Every captured tensor of one run.

    Attributes:
        runtime: the runtime that ran it.
        model: the model file.
        ops: the ops in topological order (the runtime's order).
        tensors: tensor name → value, for every op output the runtime could expose (graph outputs included), in
            topological order.
        inputs: the graph inputs it ran on, by name.
        outputs: the graph output names, in order.
        aliases: tensor name → other names the runtime gives the same tensor (OpenVINO keeps a tensor's framework
            names; a converter's recorded name mapping goes here too).
        fused: tensor name → names of source tensors (or source ops) that the converter or runtime merged into it,
            so they no longer exist on their own (onnx2tf's recorded map with the TFLite converter's ``;``-joined
            names; OpenVINO's ``fused_names_0`` where a model keeps it). Per-tensor comparison counts them as
            accounted for, never as matched.
    """

    runtime: str
    model: Path
    ops: tuple[TracedOp, ...]
    tensors: Mapping[str, np.ndarray]
    inputs: Mapping[str, np.ndarray]
    outputs: tuple[str, ...]
    aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    fused: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def producers(self) -> dict[str, TracedOp]:
        """Tensor name → the first op that writes it (graph inputs and constants have none)."""
        found: dict[str, TracedOp] = {}
        for op in self.ops:
            for out in op.outputs:
                found.setdefault(out, op)
        return found

    def producer(self, tensor: str) -> TracedOp | None:
        """The op that wrote ``tensor`` (None for a graph input or constant)."""
        for op in self.ops:
            if tensor in op.outputs:
                return op
        return None


class TraceUnavailable(ModelportError):
    """The runtime cannot expose intermediate tensors of this model (bisect instead)."""


def tracer(runtime: str) -> Callable[..., Trace]:
    """The tracer function of ``runtime`` (a backend name or alias).

    Raises:
        InvalidInputError: no such runtime.
        TraceUnavailable: the runtime cannot expose intermediate tensors (the hint says to bisect).
    """
    from modelport.backends import backends, get_backend

    backend = get_backend(runtime)
    entry = backend.tracer
    if entry is None:
        traceable = ", ".join(sorted(b.name for b in backends() if b.tracer))
        raise TraceUnavailable(
            f"{backend.name} cannot expose intermediate tensors",
            hint=f"use --bisect (cuts the model and compares the prefixes), or a runtime that can: {traceable}",
        )
    return resolve(entry)  # type: ignore[no-any-return]


def trace(
    runtime: str, model: str | Path, feeds: Mapping[str, np.ndarray], options: RunnerOptions | None = None
) -> Trace:
    """Run ``model`` once on ``runtime`` with every intermediate tensor it can expose captured.

    Args:
        runtime: backend name or alias (``onnxruntime``, ``ov``, ``tflite`` …).
        model: the model file in a format that runtime runs.
        feeds: input name → array (LiteRT: signature keys or tensor names; float feeds of an int8 input are
            quantized with the input's scale and zero point).
        options: threads (device and precision: tracers run on CPU at fp32 compute, so values compare with a float
            reference).

    Raises:
        TraceUnavailable: the runtime has no tracer (bisect instead).
        ModelLoadError, InferenceError: as the runtime's runner raises them.
    """
    run = tracer(runtime)
    log.info("tracing %s on %s", Path(model).name, runtime)
    return run(Path(model), feeds, options or RunnerOptions())
