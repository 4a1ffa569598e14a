"""The backend registry: one :class:`~modelport.backends.base.Backend` per runtime, registered by its own module.

    >>> from modelport.backends import get_backend, open_runner
    >>> get_backend("ov").artifact_format
    <Format.OPENVINO_IR: 'openvino'>
    >>> with open_runner("openvino", "model.xml") as runner:
    ...     outputs = runner.infer(feeds)

Adding a runtime: write ``modelport/backends/<name>.py`` that builds a ``Backend`` and calls
:func:`register_backend`, add the module's name to :data:`BUILTIN`, and test it. Every table of runtimes,
aliases, formats and precisions elsewhere is derived from the registry.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelport.backends.base import Backend, LoaderOptions, resolve
from modelport.backends.runner import RunnerOptions
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision

if TYPE_CHECKING:
    from modelport.backends.runner import Runner

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN",
    "Backend",
    "LoaderOptions",
    "backend_for_format",
    "backends",
    "get_backend",
    "open_runner",
    "parse_backends",
    "register_backend",
    "resolve",
]

#: the modules under modelport.backends that register the built-in backends, in preference order (the first
#: backend that builds a format runs it: ONNX → onnxruntime, although OpenVINO reads ONNX too).
BUILTIN: tuple[str, ...] = ("onnxruntime", "openvino", "litert", "torch", "tensorflow", "tensorrt")


class _Registry:
    """Backends by name; the built-in modules are imported (no engine is) before anything else is registered, so
    they come first, in :data:`BUILTIN` order, then other backends in registration order."""

    def __init__(self) -> None:
        self._by_name: dict[str, Backend] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: the modules imported here call add()
            for module in BUILTIN:
                importlib.import_module(f"modelport.backends.{module}")

    def add(self, backend: Backend) -> None:
        self._load()
        taken = {n for b in self._by_name.values() if b.name != backend.name for n in (b.name, *b.aliases)}
        clash = {backend.name, *backend.aliases} & taken
        if clash:
            raise ValueError(f"backend {backend.name!r}: names already registered: {sorted(clash)}")
        self._by_name[backend.name] = backend

    def all(self) -> list[Backend]:
        self._load()
        builtin = {f"modelport.backends.{m}": i for i, m in enumerate(BUILTIN)}
        order = {name: i for i, name in enumerate(self._by_name)}

        def rank(b: Backend) -> tuple[int, int]:
            return builtin.get(b.runner.partition(":")[0], len(BUILTIN)), order[b.name]

        return sorted(self._by_name.values(), key=rank)


_REGISTRY = _Registry()


def register_backend(backend: Backend) -> Backend:
    """Register ``backend`` (a backend module calls this once, at import)."""
    _REGISTRY.add(backend)
    return backend


def backends() -> list[Backend]:
    """Every registered backend: the built-in ones in :data:`BUILTIN` order, then others in registration order."""
    return _REGISTRY.all()


def get_backend(name: str) -> Backend:
    """The backend called ``name`` or one of its aliases (case-insensitive).

    Raises:
        InvalidInputError: no such backend (the hint lists the valid names).
    """
    key = name.strip().lower()
    for backend in backends():
        if key == backend.name or key in backend.aliases:
            return backend
    valid = ", ".join(sorted(b.name for b in backends()))
    raise InvalidInputError(f"unknown runtime {name!r}", hint=f"valid runtimes: {valid}")


def parse_backends(text: str | Sequence[str]) -> list[str]:
    """``"onnxruntime,ov"`` (or a list) → canonical names, order kept, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    names: list[str] = []
    for item in items:
        if item.strip():
            name = get_backend(item).name
            if name not in names:
                names.append(name)
    if not names:
        raise InvalidInputError("no runtime given", hint=f"choose from {', '.join(b.name for b in backends())}")
    return names


def backend_for_format(fmt: Format) -> Backend:
    """The backend that runs ``fmt`` natively: the first whose artifact format it is, else the first that reads it.

    Raises:
        InvalidInputError: no registered backend runs this format.
    """
    found = [b for b in backends() if b.artifact_format is fmt] or [b for b in backends() if fmt in b.formats]
    if not found:
        raise InvalidInputError(f"no runtime runs {fmt.value} models")
    return found[0]


def open_runner(
    backend: str | Format | Backend,
    model: str | Path,
    options: RunnerOptions | None = None,
    loader: LoaderOptions | None = None,
    *,
    runtime_config: bool = True,
) -> Runner:
    """A runner (not yet loaded: use it as a context manager) for ``model`` on a backend.

    A runtime config saved beside the model (``runtime.json``, see :mod:`modelport.backends.runtime_config`) for
    this backend is applied when the caller chooses no engine settings: with ``options`` None, its options as
    they are; with ``options`` whose ``engine`` is empty (same device), its engine settings, and its threads when
    ``options.threads`` is None. The runner's info then names the file.

    Args:
        backend: a backend, its name or alias, or a format (then the backend that runs it natively).
        model: the model file (or a ``package.module:factory`` PyTorch spec).
        options: threads, device, precision, engine settings.
        loader: what the backend needs beyond the path (GraphDef tensor names, torch trust flag …).
        runtime_config: False ignores a runtime config beside the model.

    Raises:
        InvalidInputError: unknown backend or engine setting, or a malformed runtime config beside the model.
    """
    if isinstance(backend, Format):
        b = backend_for_format(backend)
    elif isinstance(backend, Backend):
        b = backend
    else:
        b = get_backend(backend)
    source = ""
    if runtime_config and (options is None or not options.engine):
        options, source = _with_runtime_config(b, Path(model), options)
    cls = b.runner_class()
    runner: Runner = cls(model, options, loader=loader or LoaderOptions())
    runner.runtime_config = source
    return runner


def _with_runtime_config(
    backend: Backend, model: Path, options: RunnerOptions | None
) -> tuple[RunnerOptions | None, str]:
    """``options`` with the runtime config beside ``model`` applied (see :func:`open_runner`), and the config's file
    name ("" when none applies)."""
    from modelport.backends.runtime_config import CONFIG_NAME, load_runtime_config

    if not (model.parent / CONFIG_NAME).is_file() or not model.is_file():  # not a file: a PyTorch factory spec
        return options, ""
    found = load_runtime_config(model)
    if found is None:
        return options, ""
    runtime, saved = found
    try:
        same = get_backend(runtime).name == backend.name
    except InvalidInputError:
        same = False
    if not same or (options is not None and options.device != saved.device):
        return options, ""
    if options is not None:
        saved = dataclasses.replace(
            options, engine=saved.engine, threads=options.threads if options.threads is not None else saved.threads
        )
    log.info("%s: running with the settings of %s", model.name, CONFIG_NAME)
    return saved, CONFIG_NAME


def execution_precision(backend: str, precision: Precision, device: str = "cpu") -> Precision:
    """Shortcut for ``get_backend(backend).execution_precision(precision, device)``."""
    return get_backend(backend).execution_precision(precision, device)
