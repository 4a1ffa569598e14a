"""``doctor``: what this machine can run — Python and package versions, every registered backend's engine (does it
import, which version, which devices), the engines apps use, CPU flags and GPUs."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from modelport.backends import backends, resolve
from modelport.errors import first_line, optional_import
from modelport.reports.environment import Environment, capture_environment
from modelport.reports.serialize import JsonReport

#: receives one line per step (for a progress display)
Progress: TypeAlias = Callable[[str], None]
#: the file :meth:`DoctorReport.write` writes
REPORT_NAME = "doctor.json"


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

    def write(self, out_dir: str | Path) -> Path:
        """Write ``doctor.json`` into ``out_dir`` (created if needed) atomically; returns its path."""
        from modelport.model_io import write_text

        return write_text(Path(out_dir) / REPORT_NAME, self.to_json() + "\n")


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


def doctor(*, progress: Progress | None = None) -> DoctorReport:
    """Python and package versions, which runtimes import, their devices, CPU flags and GPUs.

    Args:
        progress: called with a line per engine as it is probed.

    Returns:
        The report; nothing is written (``report.write(out_dir)`` does).
    """
    say = progress or (lambda _msg: None)
    probes: list[tuple[str, Callable[[], tuple[str, tuple[str, ...]]]]] = [
        (b.name, resolve(b.probe)) for b in backends() if b.probe is not None
    ]
    probes.append(("ctranslate2", _ctranslate2))
    environment = capture_environment()
    statuses = []
    for name, probe in probes:
        say(f"probing {name}")
        statuses.append(_status(name, probe))
    return DoctorReport(environment=environment, runtimes=tuple(statuses), executable=sys.executable)
