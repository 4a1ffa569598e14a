"""``doctor``: what this machine can run — Python and package versions, every registered backend's engine (does it
import, which version, which devices), the engines apps use, CPU flags and GPUs."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

from modelport.backends import backends, resolve
from modelport.errors import first_line, optional_import
from modelport.reports.environment import Environment, capture_environment
from modelport.reports.serialize import JsonReport


@dataclasses.dataclass(frozen=True)
class RuntimeStatus(JsonReport):
    """Whether a runtime imports here, its version and devices."""

    name: str
    available: bool
    version: str
    devices: tuple[str, ...]
    detail: str


@dataclasses.dataclass(frozen=True)
class DoctorReport(JsonReport):
    """What ``modelport doctor`` finds."""

    environment: Environment
    runtimes: tuple[RuntimeStatus, ...]
    executable: str


def _ctranslate2() -> tuple[str, tuple[str, ...]]:
    """The engine of ``transcribe`` (not a backend: it runs Whisper only)."""
    ct2 = optional_import("ctranslate2", extra="whisper", what="CTranslate2")
    return str(ct2.__version__), ("cpu",) + (("cuda",) if ct2.get_cuda_device_count() else ())


def _status(name: str, probe: Callable[[], tuple[str, tuple[str, ...]]]) -> RuntimeStatus:
    try:
        version, devices = probe()
    except Exception as exc:  # an engine may fail to import or to list devices for many reasons (ABI, libs, drivers)
        return RuntimeStatus(name, False, "", (), f"{type(exc).__name__}: {first_line(exc)}")
    return RuntimeStatus(name, True, version, tuple(devices), "")


def doctor() -> DoctorReport:
    """Python and package versions, which runtimes import, their devices, CPU flags and GPUs."""
    probes: list[tuple[str, Callable[[], tuple[str, tuple[str, ...]]]]] = [
        (b.name, resolve(b.probe)) for b in backends() if b.probe is not None
    ]
    probes.append(("ctranslate2", _ctranslate2))
    return DoctorReport(
        environment=capture_environment(),
        runtimes=tuple(_status(name, probe) for name, probe in probes),
        executable=sys.executable,
    )
