"""Module-level functions for tests/porting/test_isolate.py: the child process imports them by module name."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ConversionError


@dataclass(frozen=True)
class Answer:
    """A frozen dataclass with the kinds of fields a target returns."""

    name: str
    path: Path
    values: np.ndarray
    pid: int


def make_answer(name: str, *, scale: float) -> Answer:
    return Answer(name=name, path=Path("/tmp") / name, values=np.arange(4, dtype=np.float32) * scale, pid=os.getpid())


def raise_conversion_error(path: str) -> None:
    raise ConversionError("onnx2tf cannot convert node 'conv1'", hint="try --to openvino", path=path)


def raise_plain() -> None:
    raise ValueError("bad value in layer 3\nsecond line of the engine's log")


def exit_with(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)  # never reached: the default SIGSEGV action kills the process


def sleep_with_grandchild(seconds: float, *, progress: Callable[[str], None]) -> None:
    """Report this pid and a `sleep` subprocess's pid, then hang."""
    child = subprocess.Popen(["sleep", str(int(seconds) + 30)])
    progress(f"pid {os.getpid()}")
    progress(f"grandchild {child.pid}")
    time.sleep(seconds)


def report_steps(count: int, *, progress: Callable[[str], None]) -> int:
    for i in range(count):
        progress(f"step {i}")
    worker = threading.Thread(target=progress, args=("from a thread",))
    worker.start()
    worker.join()
    return count


def read_env(name: str) -> str | None:
    return os.environ.get(name)


def return_unpicklable() -> object:
    return threading.Lock()


if __name__ == "__main__":  # a parent to kill: `python _isolate_targets.py` prints its child's pids, then waits
    import _isolate_targets as targets  # by its name (the script's folder is on sys.path): the child imports it so

    from modelport.porting.isolate import run_isolated

    run_isolated(
        targets.sleep_with_grandchild, 60, timeout_s=120, label="orphan", progress=lambda line: print(line, flush=True)
    )


def crash_on_openvino(job: Any, progress: Callable[[str], None] | None = None) -> Any:
    """``port``'s target function, except that an OpenVINO target dies of SIGSEGV (an engine crash)."""
    from modelport.porting.target import build_target

    if job.runtime == "openvino":
        os.kill(os.getpid(), signal.SIGSEGV)
    return build_target(job, progress)


def log_and_return(value: int) -> int:
    """Logs a warning (with a traceback) in the child, then returns ``value``."""
    try:
        raise ValueError("inner")
    except ValueError:
        logging.getLogger("modelport.test_child").warning("child says %d", value, exc_info=True)
    return value
