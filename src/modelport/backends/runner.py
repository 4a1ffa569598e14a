"""The Runner interface every runtime implements, and its options.

A runner is a context manager: entering it builds the runtime session (compiles the model), ``infer`` runs
it, leaving it frees the session. Precision is always explicit and reported as *executed*, which can differ
from the requested one (OpenVINO's CPU plugin runs bf16 by default on AVX512-BF16/AMX CPUs).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from modelport.formats import Precision
from modelport.inputs import TensorSpec


@dataclasses.dataclass(frozen=True)
class RunnerOptions:
    """How to run a model.

    Attributes:
        threads: intra-op threads (None: the runtime's default, usually all cores).
        device: "cpu", "cuda", "gpu", "tensorrt" … (each runner says which it accepts).
        precision: the precision to execute in.
        graph_optimization: False disables the runtime's own graph rewrites (to test *our* passes).
    """

    threads: int | None = None
    device: str = "cpu"
    precision: Precision = Precision.FP32
    graph_optimization: bool = True


@dataclasses.dataclass(frozen=True)
class RunnerInfo:
    """What a runner actually runs: the runtime, its version, device and executed precision."""

    runtime: str
    version: str
    device: str
    requested_precision: str
    executed_precision: str
    threads: int | None
    details: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["details"] = dict(self.details)
        return d


class Runner(abc.ABC):
    """A loaded model on one runtime.

    Args:
        model: path of the model file (format depends on the runner).
        options: threads, device, precision.
    """

    #: registry name, e.g. "onnxruntime"
    name: ClassVar[str]

    def __init__(self, model: str | Path, options: RunnerOptions | None = None, *, loader: Any = None) -> None:
        from modelport.backends.base import LoaderOptions

        self.model_path = Path(model)
        self.options = options or RunnerOptions()
        self.loader: LoaderOptions = loader or LoaderOptions()
        self._loaded = False
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []

    def __enter__(self) -> Runner:
        if not self._loaded:
            self.load()
            self._loaded = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        self._loaded = False

    @abc.abstractmethod
    def load(self) -> None:
        """Build the session; raise RuntimeUnavailable or ModelLoadError on failure."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the session."""

    @property
    def input_specs(self) -> list[TensorSpec]:
        """The model's inputs as this runtime sees them (``load`` fills ``self._inputs``)."""
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        """The model's output names, in order (``load`` fills ``self._outputs``)."""
        return list(self._outputs)

    @abc.abstractmethod
    def info(self) -> RunnerInfo:
        """Runtime, version, device and executed precision."""

    @abc.abstractmethod
    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once; return outputs in ``output_names`` order (no checks, used in timed loops)."""

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on checked feeds; returns ``{output name: array}``."""
        from modelport.inputs import check_feeds

        check_feeds(feeds, self.input_specs)
        return dict(zip(self.output_names, self._run(feeds), strict=True))

    def run_raw(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        """Run without checking feeds (for timing loops, after one checked ``infer``)."""
        return self._run(feeds)
