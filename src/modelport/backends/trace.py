"""Every intermediate tensor of one inference: what per-tensor comparison and bisection read.

A :class:`Trace` is one run of a model on one runtime with its intermediate tensors exposed (ONNX Runtime: every node
output made a graph output; OpenVINO: ``Model.add_outputs`` on every op output; LiteRT: the interpreter's
``experimental_preserve_all_tensors``), in the runtime's topological order, each tensor with the op that made it and
the tensors that op read. :func:`trace` opens the model on the named runtime and runs it once.

The tracers live next to their runners (``trace_onnxruntime`` …) and are looked up by runtime name; a runtime without
one raises :class:`TraceUnavailable` (the caller falls back to bisection and says so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from modelport.errors import ModelportError


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
    """

    runtime: str
    model: Path
    ops: tuple[TracedOp, ...]
    tensors: Mapping[str, np.ndarray]
    inputs: Mapping[str, np.ndarray]
    outputs: tuple[str, ...]
    aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def producer(self, tensor: str) -> TracedOp | None:
        """The op that wrote ``tensor`` (None for a graph input or constant)."""
        for op in self.ops:
            if tensor in op.outputs:
                return op
        return None


class TraceUnavailable(ModelportError):
    """The runtime cannot expose intermediate tensors of this model (bisect instead)."""
