"""The one protocol for engines that modelport runs in child processes (onnx2tf, TensorFlow's TFLite converter).

Some engines do not belong in the caller's process: TensorFlow is slow to import and must not meet an already
imported torch, onnx2tf prints pages and keeps process-wide Keras state, and any of them can hang or take the
process down. Each such job is a module run as ``python -m <module> <request.json>``:

* **parent** (:func:`run_worker`): writes the request (a JSON object of the job's arguments plus ``"result"``,
  the path the child answers at) into a working directory, starts the child there in its own process group with
  stdout and stderr going to one log file beside the request, waits at most ``timeout_s`` (then kills the whole
  group, the engine's own children included), and reads the answer. Success is exit status 0 with
  ``{"error": null}``; anything else becomes one :class:`~modelport.errors.ConversionError` whose message is the
  engine's first useful line, or the caller's diagnosis of the log (onnx2tf: which ONNX op and node failed).
* **child** (:func:`serve`): reads the request, runs the job on it, and writes ``{"error": null}`` or
  ``{"error": message, "type": exception type, "trace": traceback tail}``; exit status 0 or 1.

No orphans: the parent kills the child's group on every way out of the wait (the timeout, Ctrl-C, any exception).
A parent that dies without that clean-up (SIGKILL; SIGTERM with no handler) cannot: the child, in its own session,
is out of reach of whatever killed the parent's group. So the child is started by
:func:`modelport.backends.isolation.command`, which watches the parent from the child's first instant (before the
engine's imports) and, once it is gone, kills the child's process group, the engine's subprocesses included,
within :data:`~modelport.backends.isolation.PARENT_POLL_S`.

TensorFlow's C++ logging is silenced (``TF_CPP_MIN_LOG_LEVEL=3``) and GPUs are hidden unless the caller chose
some (``CUDA_VISIBLE_DEVICES``): these are CPU conversions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelport.backends.isolation import command
from modelport.errors import ConversionError, first_line

log = logging.getLogger(__name__)

#: Default limit for one child-process job.
DEFAULT_TIMEOUT_S = 1800.0

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclasses.dataclass(frozen=True)
class WorkerFailure:
    """What a failed child left behind, for the message and for a caller's diagnosis.

    Attributes:
        what: the engine, as the message names it ("onnx2tf", "the TFLite converter").
        returncode: the child's exit status (negative: killed by that signal).
        error: the message of the exception the job raised; None when the child wrote no answer.
        error_type: that exception's type name (``SystemExit`` when the engine called ``sys.exit``).
        log: the child's stdout and stderr, terminal colour codes removed.
        log_path: where that log is kept (inside the working directory).
    """

    what: str
    returncode: int
    error: str | None
    error_type: str | None
    log: str
    log_path: Path

    def detail(self) -> str:
        """The engine's first useful line: the exception's message, else its last ``ERROR`` log line, else the
        last log line, else how the process ended."""
        if self.error and self.error_type != "SystemExit":  # sys.exit(1) says nothing; its log does
            return first_line(self.error)
        lines = [ln.strip() for ln in self.log.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.upper().startswith("ERROR")]
        if errors:
            return first_line(re.sub(r"^ERROR:?\s*", "", errors[-1], flags=re.IGNORECASE) or errors[-1])
        if self.returncode < 0:
            return f"killed by signal {-self.returncode}"
        if lines:
            return first_line(lines[-1])
        return f"exit status {self.returncode}"


#: A caller's reading of a failure: a more precise error, or None for the generic one.
Diagnose = Callable[[WorkerFailure], ConversionError | None]


def run_worker(
    module: str,
    request: Mapping[str, Any],
    work: Path,
    *,
    what: str,
    src: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    diagnose: Diagnose | None = None,
) -> Path:
    """Run ``python -m module request.json`` in ``work`` and wait for its answer.

    Args:
        module: the child's module (its ``main`` calls :func:`serve`).
        request: the job's arguments (JSON-serializable; ``result`` is added); paths in it must be absolute, the
            child's working directory is ``work``.
        work: working directory of the child; request, answer and log are written there.
        what: the engine's name in messages.
        src: the model the job is about, named in errors.
        timeout_s: limit for the child; past it the child's whole process group is killed.
        diagnose: turns a failure into a precise error (None: the generic "<what> failed: <line>").

    Returns:
        The path of the child's log.

    Raises:
        ConversionError: the child failed, died, wrote no answer, or ran past ``timeout_s``.
    """
    work = work.resolve()  # the child runs in it: every path it is given must be absolute
    work.mkdir(parents=True, exist_ok=True)
    stem = module.rsplit(".", 1)[-1].lstrip("_")
    req, result, log_path = work / f"{stem}.json", work / f"{stem}.result.json", work / f"{stem}.log"
    result.unlink(missing_ok=True)
    req.write_text(json.dumps({**request, "result": str(result)}), encoding="utf-8")
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
    cmd = command(os.getpid(), module, str(req))  # `python -m module req`, dying with this process
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ConversionError(
                f"{what} took longer than {timeout_s:.0f} s; it was stopped with its subprocesses", path=src
            ) from None
        except BaseException:  # interrupted: leave no engine running behind us
            _kill_group(proc)
            raise
    answer = _read_answer(result)
    if returncode == 0 and answer is not None and answer.get("error") is None:
        return log_path
    text = _ANSI.sub("", log_path.read_text(encoding="utf-8", errors="replace"))
    log.debug("%s output (%s):\n%s", what, log_path, text[-8000:])
    failure = WorkerFailure(
        what=what,
        returncode=returncode,
        error=None if answer is None else answer.get("error"),
        error_type=None if answer is None else answer.get("type"),
        log=text,
        log_path=log_path,
    )
    diagnosed = diagnose(failure) if diagnose is not None else None
    raise diagnosed or ConversionError(f"{what} failed: {failure.detail()}", path=src)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and everything it started (its process group), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own group (start_new_session)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def _read_answer(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def serve(argv: list[str], job: Callable[[dict[str, Any]], object]) -> int:
    """The child's side: read the request file ``argv[1]``, run ``job`` on it (without its ``result`` key) and
    answer at ``result``.

    Returns:
        The exit status: 0 when the job returned, 1 when it raised (or called ``sys.exit``).
    """
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = Path(request.pop("result"))
    try:
        job(request)
    except BaseException as exc:  # the parent turns every failure, SystemExit included, into its error
        answer = {"error": str(exc), "type": type(exc).__name__, "trace": traceback.format_exc()[-4000:]}
        result.write_text(json.dumps(answer), encoding="utf-8")
        return 1
    result.write_text(json.dumps({"error": None}), encoding="utf-8")
    return 0
