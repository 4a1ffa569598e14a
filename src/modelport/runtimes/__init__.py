"""Runners: one per runtime, looked up by name, imported lazily."""

from __future__ import annotations

import importlib
from pathlib import Path

from modelport.errors import InvalidInputError
from modelport.runtimes.base import Precision, Runner, RunnerInfo, RunnerOptions

#: registry name → (module, class); modules are imported only when a runner is asked for.
RUNNERS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("modelport.runtimes.onnxruntime", "OnnxRuntimeRunner"),
    "openvino": ("modelport.runtimes.openvino", "OpenVINORunner"),
    "litert": ("modelport.runtimes.litert", "LiteRTRunner"),
    "litert-noxnnpack": ("modelport.runtimes.litert", "LiteRTNoXnnpackRunner"),
    "tensorflow": ("modelport.runtimes.tf", "TensorFlowRunner"),
    "torch": ("modelport.runtimes.torch", "TorchRunner"),
    "tensorrt": ("modelport.runtimes.tensorrt", "TensorRTRunner"),
}

ALIASES: dict[str, str] = {
    "ort": "onnxruntime",
    "onnx": "onnxruntime",
    "ov": "openvino",
    "tflite": "litert",
    "tf": "tensorflow",
    "pytorch": "torch",
    "trt": "tensorrt",
}

__all__ = [
    "ALIASES",
    "RUNNERS",
    "Precision",
    "Runner",
    "RunnerInfo",
    "RunnerOptions",
    "get_runner",
    "parse_runtimes",
    "runner_class",
]


def canonical_runtime(name: str) -> str:
    """The registry name for ``name`` (aliases resolved); InvalidInputError lists the valid names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in RUNNERS:
        valid = ", ".join(sorted(RUNNERS))
        raise InvalidInputError(f"unknown runtime {name!r}", hint=f"valid runtimes: {valid}")
    return key


def parse_runtimes(text: str | list[str]) -> list[str]:
    """Parse ``"onnxruntime,openvino"`` (or a list) into canonical names, order kept, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    names: list[str] = []
    for item in items:
        if item.strip():
            name = canonical_runtime(item)
            if name not in names:
                names.append(name)
    if not names:
        raise InvalidInputError("no runtime given", hint=f"choose from {', '.join(sorted(RUNNERS))}")
    return names


def runner_class(name: str) -> type[Runner]:
    """The Runner class registered under ``name``."""
    module_name, cls_name = RUNNERS[canonical_runtime(name)]
    cls: type[Runner] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def get_runner(name: str, model: str | Path, options: RunnerOptions | None = None) -> Runner:
    """Create (not yet load) a runner for ``model`` on runtime ``name``; use it as a context manager."""
    return runner_class(name)(model, options)
