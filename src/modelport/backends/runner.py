"""The Runner interface every runtime implements, and its options.

A runner is a context manager: entering it builds the runtime session (compiles the model), ``infer`` runs
it, leaving it frees the session. Precision is always explicit and reported as *executed*, which can differ
from the requested one (OpenVINO's CPU plugin runs bf16 by default on AVX512-BF16/AMX CPUs).

Engine settings (:attr:`RunnerOptions.engine`) are the engine's own knobs by their documented names
(``PERFORMANCE_HINT`` for OpenVINO, ``execution_mode`` for ONNX Runtime …); each runner lists the ones it applies
in :attr:`Runner.ENGINE_SETTINGS` and :func:`check_engine` rejects any other key or value.
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
        engine: engine-specific settings as ``(name, value)`` text pairs, by the engine's documented names (each
            runner's :attr:`Runner.ENGINE_SETTINGS`); empty: the runner's defaults.
    """

    threads: int | None = None
    device: str = "cpu"
    precision: Precision = Precision.FP32
    graph_optimization: bool = True
    engine: tuple[tuple[str, str], ...] = ()

    def with_engine(self, **settings: str) -> RunnerOptions:
        """A copy with ``settings`` set in :attr:`engine` (replacing the same keys, order kept)."""
        merged = dict(self.engine)
        merged.update({k: str(v) for k, v in settings.items()})
        return dataclasses.replace(self, engine=tuple(merged.items()))


@dataclasses.dataclass(frozen=True)
class EngineSetting:
    """One engine setting a runner applies.

    Attributes:
        name: the engine's own name for it (``PERFORMANCE_HINT``, ``execution_mode`` …).
        choices: the valid values (matched case-insensitively; the value is normalised to the spelling here).
        integer: a positive integer is valid too (``NUM_STREAMS``, ``inter_op_num_threads``).
        doc: what it does, one line.
    """

    name: str
    choices: tuple[str, ...] = ()
    integer: bool = False
    doc: str = ""

    def valid(self) -> str:
        """The valid values in words, for error hints."""
        values = [*self.choices, *(["a positive integer"] if self.integer else [])]
        return " | ".join(values)

    def normalise(self, value: str) -> str | None:
        """``value`` in its canonical spelling, or None when it is not valid."""
        text = str(value).strip()
        for choice in self.choices:
            if text.lower() == choice.lower():
                return choice
        if self.integer and text.isdigit() and int(text) > 0:
            return str(int(text))
        return None


def check_engine(settings: Sequence[EngineSetting], pairs: Sequence[tuple[str, str]], runtime: str) -> dict[str, str]:
    """``pairs`` checked against a runner's settings: ``{name: canonical value}``.

    Raises:
        InvalidInputError: an unknown name, a value that is not valid, or a name given twice (the hint lists the
            valid names or values).
    """
    from modelport.errors import InvalidInputError

    by_name = {s.name.lower(): s for s in settings}
    out: dict[str, str] = {}
    for key, value in pairs:
        setting = by_name.get(str(key).strip().lower())
        if setting is None:
            valid = ", ".join(s.name for s in settings) or "none"
            raise InvalidInputError(f"{runtime} has no engine setting {key!r}", hint=f"valid settings: {valid}")
        canonical = setting.normalise(value)
        if canonical is None:
            raise InvalidInputError(
                f"{runtime}: {value!r} is not a valid {setting.name}", hint=f"valid values: {setting.valid()}"
            )
        if setting.name in out:
            raise InvalidInputError(f"{runtime}: engine setting {setting.name} given twice", hint="give it once")
        out[setting.name] = canonical
    return out


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
    #: the engine settings this runner applies from ``RunnerOptions.engine`` (none: any is an error)
    ENGINE_SETTINGS: ClassVar[tuple[EngineSetting, ...]] = ()

    def __init__(self, model: str | Path, options: RunnerOptions | None = None, *, loader: Any = None) -> None:
        from modelport.backends.base import LoaderOptions

        self.model_path = Path(model)
        self.options = options or RunnerOptions()
        self.loader: LoaderOptions = loader or LoaderOptions()
        #: the checked engine settings, ``{name: value}`` (InvalidInputError here for unknown ones)
        self.engine: dict[str, str] = check_engine(
            type(self).ENGINE_SETTINGS, self.options.engine, getattr(self, "name", type(self).__name__)
        )
        #: the runtime config file these options came from (set by ``open_runner``), else ""
        self.runtime_config = ""
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

    def config_details(self) -> tuple[tuple[str, str], ...]:
        """``RunnerInfo.details`` entries for the runtime config these options came from (none when none)."""
        return (("runtime_config", self.runtime_config),) if self.runtime_config else ()

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
