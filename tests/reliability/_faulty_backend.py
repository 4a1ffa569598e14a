"""Test-only runtimes that fail the ways engines do: ONNX Runtime, except that loading or running the model
segfaults, aborts, raises or hangs. Registered for one test by :func:`registered` (and removed after it), so the
rest of the suite never sees them; a child process imports the runners from this module by name."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from modelport.backends import backends, register_backend
from modelport.backends.base import Backend
from modelport.backends.onnxruntime import OnnxRuntimeRunner
from modelport.formats import Format, Precision

#: the file a hanging runner writes its helper process's pid into (its own pid on the first line)
PID_FILE_ENV = "MODELPORT_TEST_FAULT_PIDS"


def _segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(30)  # never reached: the default action of SIGSEGV ends the process


def _abort() -> None:
    os.abort()


def _raise() -> None:
    raise RuntimeError("engine exploded in kernel 7\nsecond line of the engine's message")


def _hang() -> None:
    """Start a helper process (an engine's compiler, say), note both pids, then never finish."""
    helper = subprocess.Popen(["sleep", "300"])
    Path(os.environ[PID_FILE_ENV]).write_text(f"{os.getpid()}\n{helper.pid}\n")
    time.sleep(300)


class _Faulty(OnnxRuntimeRunner):
    """ONNX Runtime, with a fault at ``load`` or at each run."""

    fault = staticmethod(_raise)
    at = "load"

    def load(self) -> None:
        if self.at == "load":
            self.fault()
        super().load()

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if self.at == "run":
            self.fault()
        return super()._run(feeds)


class SegfaultOnLoad(_Faulty):
    fault = staticmethod(_segfault)


class SegfaultOnRun(_Faulty):
    fault = staticmethod(_segfault)
    at = "run"


class AbortOnRun(_Faulty):
    fault = staticmethod(_abort)
    at = "run"


class RaiseOnLoad(_Faulty):
    fault = staticmethod(_raise)


class HangOnLoad(_Faulty):
    fault = staticmethod(_hang)


#: backend name → runner class in this module
FAULTS = {
    "segv-load": "SegfaultOnLoad",
    "segv-run": "SegfaultOnRun",
    "abort-run": "AbortOnRun",
    "raise-load": "RaiseOnLoad",
    "hang-load": "HangOnLoad",
}


@contextmanager
def registered() -> Iterator[list[str]]:
    """Register every faulty runtime for the duration of the block; yields their names."""
    from modelport import backends as registry

    backends()  # the built-in backends first, as always
    names = []
    for name, cls in FAULTS.items():
        register_backend(
            Backend(
                name=name,
                aliases=(),
                formats=(Format.ONNX,),
                precisions=(("cpu", (Precision.FP32,)),),
                runner=f"{__name__}:{cls}",
                extra="onnxruntime",
                engine="onnxruntime",
            )
        )
        names.append(name)
    try:
        yield names
    finally:
        for name in names:
            registry._REGISTRY._by_name.pop(name, None)
