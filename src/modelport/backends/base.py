"""The Backend descriptor: everything modelport knows about one runtime, in one place.

A backend is registered once (:func:`modelport.backends.register_backend`) by its own module under
``modelport/backends/``; every "which runtime runs which format at which precision" table in modelport is
derived from these descriptors. Heavy engines are never imported to describe a backend: the runner, the
quantizer and the inspector are named by module paths / ``"module:attribute"`` entry points resolved on use.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

from modelport.formats import Format, Precision


@dataclasses.dataclass(frozen=True)
class LoaderOptions:
    """How to open a model that needs more than its path (the same fields for every backend; each reads its own).

    Attributes:
        inputs: TF GraphDef input tensor names (``input:0``).
        outputs: TF GraphDef output tensor names (naming inner tensors cuts the graph).
        signature: SavedModel signature to run (default: ``serving_default`` or the only one).
        trust_remote_code: PyTorch: allow unpickling whole modules / importing ``package.module:factory``.
        input_shapes: concrete shapes for sources that cannot describe their inputs (PyTorch modules).
    """

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    signature: str | None = None
    trust_remote_code: bool = False
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def build(
        cls,
        *,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        signature: str | None = None,
        trust_remote_code: bool = False,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> LoaderOptions:
        """Loader options from plain Python values."""
        return cls(
            tuple(inputs),
            tuple(outputs),
            signature,
            trust_remote_code,
            tuple((k, tuple(int(d) for d in v)) for k, v in (input_shapes or {}).items()),
        )


def resolve(entry_point: str) -> Any:
    """The object named by ``"package.module:attribute"`` (the module is imported now)."""
    module, _, attr = entry_point.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class Backend:
    """One runtime.

    Attributes:
        name: registry name (``"openvino"``).
        aliases: other names users type (``"ov"``).
        formats: artifact formats it runs natively; the first is the one ``port`` builds for it.
        precisions: device → precisions it executes there (``(("cpu", (FP32, FP16, …)), ("gpu", …))``).
        runner: ``"module:Class"`` of its :class:`~modelport.backends.runner.Runner`.
        extra: the modelport extra that installs its engine (``pip install 'modelport[extra]'``).
        engine: the engine's import name (availability checks, versions).
        weights_only: precisions whose *weights* are stored at that precision but execute at fp32 on CPU
            (OpenVINO fp16 IR: compressed weights, f32 compute on CPUs without native f16).
        quantizer: the module that builds INT8 artifacts for this backend and summarises which layers of a
            compiled model run in integer (the protocol: :mod:`modelport.quantization.engine`).
        quantize_sources: the source formats its quantizer takes.
        inspector: entry point describing a model file of this backend's formats (``inspect``).
        probe: entry point returning the engine's version and the devices it sees (``doctor``).
        tracer: entry point running a model once with every intermediate tensor exposed
            (:func:`modelport.backends.trace.trace`; None: the runtime cannot, bisect instead).
    """

    name: str
    aliases: tuple[str, ...]
    formats: tuple[Format, ...]
    precisions: tuple[tuple[str, tuple[Precision, ...]], ...]
    runner: str
    extra: str
    engine: str
    weights_only: tuple[Precision, ...] = ()
    quantizer: str | None = None
    quantize_sources: tuple[Format, ...] = ()
    inspector: str | None = None
    probe: str | None = None
    tracer: str | None = None

    @property
    def artifact_format(self) -> Format:
        """The format ``port`` and ``convert`` build for this backend."""
        return self.formats[0]

    def executes(self, device: str = "cpu") -> tuple[Precision, ...]:
        """Precisions this backend executes on ``device`` (empty when it has no such device)."""
        return dict(self.precisions).get(device, ())

    def supports(self, precision: Precision, device: str = "cpu") -> bool:
        return precision in self.executes(device)

    def execution_precision(self, precision: Precision, device: str = "cpu") -> Precision:
        """The precision to ask the runtime for when its artifact was built at ``precision``.

        OpenVINO's fp16 IR stores compressed weights and computes at f32 on CPU (asking for an f16 hint would
        change the compute precision too): the weights' precision and the execution precision differ.
        """
        return Precision.FP32 if device == "cpu" and precision in self.weights_only else precision

    def installed(self) -> bool:
        """Whether the runtime's engine can be imported here (found, not imported)."""
        try:
            return importlib.util.find_spec(self.engine) is not None
        except (ImportError, ValueError):
            return False

    def runner_class(self) -> type:
        return resolve(self.runner)  # type: ignore[no-any-return]
