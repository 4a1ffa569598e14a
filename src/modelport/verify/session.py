"""An ONNX model held in memory, open in ONNX Runtime for the length of a ``with`` block (graph optimizations off,
so what runs is the graph as written): the reference side of edits and rewrites that compare protos."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx

from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.model_io import save_model

#: ``{tensor name: array}``
Tensors = Mapping[str, np.ndarray]


class OnnxSession:
    """An ONNX model open in ONNX Runtime (graph optimizations off) for the duration of a ``with`` block."""

    def __init__(self, proto: onnx.ModelProto, threads: int | None = None) -> None:
        self._proto = proto
        self._threads = threads
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ctx: object = None
        self._runner: object = None

    def __enter__(self) -> Callable[[Tensors], dict[str, np.ndarray]]:
        self._tmp = tempfile.TemporaryDirectory(prefix="modelport-edit-")
        path = Path(self._tmp.name) / "model.onnx"
        save_model(self._proto, path)
        ctx = open_runner("onnxruntime", path, RunnerOptions(threads=self._threads, graph_optimization=False))
        runner = ctx.__enter__()
        self._ctx, self._runner = ctx, runner
        return lambda feeds: dict(runner.infer(dict(feeds)))

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)  # type: ignore[attr-defined]
        if self._tmp is not None:
            self._tmp.cleanup()
