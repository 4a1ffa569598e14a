"""Run engine work in a child process with a time limit: a crash or a hang fails that piece of work, not the run.

Engines fail in ways Python cannot catch: a segfault in native code, an abort, the kernel's OOM killer, a converter
that loops forever. :func:`run_isolated` calls a module-level function in a child process and turns every way it
can end into either its return value or one typed error:

==========================================  ======================================================================
the child …                                  the parent raises
==========================================  ======================================================================
returns                                      nothing: the value is returned (sent back pickled)
raises a :class:`ModelportError`             the same type, message, hint and path
raises anything else                         :class:`ChildFailed` ``"<label>: <ExcType>: <first line>"``
dies (signal, ``os._exit``, OOM kill)        :class:`ChildCrashed` naming the signal or the exit code
is still running after ``timeout_s``         :class:`ChildTimedOut`; the child's process group is killed
(the parent gets Ctrl-C while waiting)       the child's process group is killed, ``KeyboardInterrupt`` re-raised
==========================================  ======================================================================

Who uses it: ``port`` runs each target in a child (``porting/pipeline.py``), ``compare`` and ``bench`` each
runtime (:func:`call_isolated`, ``--timeout``; a failure becomes that runtime's :class:`RuntimeFailure` in their
report and the other runtimes go on). It lives with the backends so that every layer that runs an engine (the
checks, the converters, the jobs) can use it.

Design. The call travels over one one-way :func:`multiprocessing.Pipe`: the child sends ``("progress", line)``
messages while it works and then exactly one ``("ok", value)`` or ``("error", _ChildError)``; the parent waits on
the pipe and the process sentinel together (:func:`multiprocessing.connection.wait`) until a deadline of
``start + timeout_s``. A pipe needs no semaphore, so no resource-tracker process is started. The first thing the
child does is :func:`os.setsid`: it leads its own process group (and session), so the parent can kill it with
everything it started (engine helper processes, onnx2tf's subprocesses) in one :func:`os.killpg`, and a Ctrl-C
typed in the terminal reaches only the parent, which decides. The group is killed on every way out, a successful
one included, so no orphan outlives the call. After sending its answer the child leaves with :func:`os._exit`,
skipping interpreter teardown (engine destructors that hang or crash at exit cannot turn a result into a failure).
A parent that dies without cleaning up (SIGKILL, or SIGTERM with no handler) is noticed by a watch thread in the
child, which then kills its own group.

Why not ``fork``: by the time a target runs, the parent holds ONNX Runtime and OpenVINO thread pools (and their
locks); a forked child inherits the memory of those threads but not the threads, and can deadlock on the first
lock another thread held. ``spawn`` starts a fresh interpreter (always safe, but it re-imports modelport: most of
its cost is ``onnx``/``ml_dtypes``). ``forkserver`` (used when the platform has it) spawns one clean server
process once, which imports this module, ``onnx`` and what the caller's children run (``preload``: the compare and
bench modules, ``port``'s package; no engine thread pool; numpy's OpenBLAS pool handles fork itself) and forks
each child from it. The server is shared by the whole process (this
module sets its preload list, the one process-wide setting it touches) and keeps the environment of the moment it
started, so each call sends the parent's current ``os.environ`` and ``sys.path`` (a runner module found through a
path added later, a test's or a plug-in's, must import in the child too) and the root logger's level (so
``--debug`` reaches the child's logs), and the child adopts them before running the function. A backend registered
at run time is not in the child's registry: callers send the :class:`~modelport.backends.base.Backend` descriptor
itself (``open_runner`` takes one), whose runner is named by ``"module:Class"`` and imported in the child.

Start-up cost of a trivial call (measured on this project's 2-core machine under a load of 3–9):
``forkserver`` ≈ 30 ms per call once the server runs, ≈ 2–4 s for the first call; ``spawn`` ≈ 1.5–6 s per call.
A child then imports its engine (ONNX Runtime ≈ 0.2 s, OpenVINO ≈ 0.4 s) and loads the model again: what running
several runtimes in this process shares is only the engine import.

Progress: when ``func`` has a parameter named ``progress``, the child passes it a callable that sends each line to
the parent (thread-safe; lines keep their order), where it is handed to the ``progress`` given to
:func:`run_isolated` (or dropped when none was). The child's log records cross the same pipe and are emitted by the
parent's loggers of the same names (so a progress display the parent draws is not broken by them); what engines
write to stdout and stderr directly goes to the parent's.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import multiprocessing
import os
import pickle
import runpy
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelport.errors import ModelportError, first_line

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext
    from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)

T = TypeVar("T")

#: modules the forkserver imports once, so that each child starts warm: ``onnx`` and ``onnx_ir`` (which reads model
#: files for every check) are the largest imports, seconds each on a loaded machine; a caller adds the modules its
#: children run (``preload=``). None starts an engine thread (engines are imported by each child).
_PRELOAD = ("__main__", "modelport.backends.isolation", "onnx", "onnx_ir")
#: how long a child that has answered may take to exit before its group is killed anyway
_EXIT_GRACE_S = 5.0
#: how long to wait for a killed child to be reaped
_REAP_S = 10.0


class ChildFailed(ModelportError):
    """Work run in a child process (a port target, a runtime of compare or bench) raised an unexpected
    (non-modelport) exception there."""


class ChildCrashed(ChildFailed):
    """A child process died without answering (a signal such as SIGSEGV or SIGABRT, an exit code, OOM)."""


class ChildTimedOut(ChildFailed):
    """A child process ran past its time limit; its process group was killed."""


@dataclass(frozen=True)
class _Job:
    """What crosses to the child: the call, and the parent's environment and logging set-up of this moment."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    wants_progress: bool
    env: dict[str, str]
    log_level: int
    sys_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class _ChildError:
    """An exception raised in the child, in a form that always crosses the pipe."""

    type_module: str
    type_qualname: str
    message: str
    hint: str | None
    path: str | None
    is_modelport: bool
    traceback: str
    pickled: bytes | None  # the exception itself, when it survives a pickle round trip unchanged


def isolation_available() -> bool:
    """Whether this platform can run work in child processes (a ``forkserver`` or ``spawn`` start method)."""
    methods = multiprocessing.get_all_start_methods()
    return bool(sys.executable) and ("forkserver" in methods or "spawn" in methods)


def start_method() -> str:
    """The start method :func:`run_isolated` uses: ``forkserver`` where available, else ``spawn`` (never ``fork``)."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _forget_inherited_forkserver() -> None:
    """In a child made by ``os.fork()``: forget the forkserver the parent started.

    multiprocessing keeps one forkserver per process in a module-level object; a forked child inherits the record of
    the parent's server, which is not the child's own child, so the next call would fail in ``os.waitpid``
    (``ChildProcessError``: a runtime's "failure" that is nobody's). Forgetting it makes the child start its own
    server on its next isolated call; the parent's server keeps running (the parent holds its own end of the pipe).
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is None or getattr(server, "_forkserver_pid", None) is None:
        return
    with contextlib.suppress(OSError, TypeError):
        os.close(server._forkserver_alive_fd)  # this process's copy of the parent's end
    server._forkserver_pid = None
    server._forkserver_address = None
    server._forkserver_alive_fd = None
    server._lock = threading.Lock()  # the parent's may have been held at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_forkserver)


def _context(preload: Sequence[str] = ()) -> ForkServerContext | SpawnContext:
    if start_method() != "forkserver":
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(dict.fromkeys((*_PRELOAD, *preload))))  # only takes effect before it starts
    return ctx


def _takes_progress(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    param = params.get("progress")
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def run_isolated(
    func: Callable[..., T],
    *args: Any,
    timeout_s: float,
    label: str,
    progress: Callable[[str], None] | None = None,
    preload: Sequence[str] = (),
    **kwargs: Any,
) -> T:
    """Call ``func(*args, **kwargs)`` in a child process and return its result.

    Args:
        func: a module-level function (the child imports it by module and name).
        *args: its positional arguments (picklable: frozen dataclasses, paths, numpy arrays …).
        timeout_s: wall-clock limit in seconds, counted from the child's start (its imports included; the
            forkserver's own start on a first call is not).
        label: what runs, first word of every error message (``"openvino int8"``).
        progress: receives, in the parent and in order, each line the child reports through ``func``'s own
            ``progress`` parameter (when ``func`` has one).
        preload: modules (by name: any layer) the forkserver imports when this call is the one that starts it,
            so that every child starts with them imported (``func``'s module, its heavy imports).
        **kwargs: its keyword arguments (picklable).

    Returns:
        What ``func`` returned.

    Raises:
        ModelportError: the one ``func`` raised, same type, message and hint.
        ChildFailed: ``func`` raised any other exception, or its result could not be sent back.
        ChildCrashed: the child died before answering.
        ChildTimedOut: the child did not answer within ``timeout_s``; it was killed with its process group.
        KeyboardInterrupt: the parent was interrupted while waiting; the child was killed first.
    """
    ctx = _context(preload)
    reader, writer = ctx.Pipe(duplex=False)
    level = logging.getLogger().getEffectiveLevel()
    job = _Job(func, args, kwargs, _takes_progress(func), dict(os.environ), level, tuple(sys.path))
    proc = ctx.Process(target=_child_main, args=(writer, job), name=f"modelport-child-{label}")
    answered = False
    try:
        proc.start()  # with forkserver, returns once the server forked the child (after its preload, on a first call)
        started = time.monotonic()
        writer.close()  # the child holds the only writer now: its death reads as EOF here
        value = _wait_for_answer(proc, reader, started=started, timeout_s=timeout_s, label=label, progress=progress)
        answered = True
        return value
    finally:
        with contextlib.suppress(OSError):
            writer.close()
        reader.close()
        _stop(proc, grace_s=_EXIT_GRACE_S if answered else 0.0)


def call_isolated(
    func: Callable[..., T],
    *args: Any,
    timeout_s: float | None,
    label: str,
    progress: Callable[[str], None] | None = None,
    preload: Sequence[str] = (),
    **kwargs: Any,
) -> T:
    """:func:`run_isolated` with a ``timeout_s``; ``timeout_s=None`` (or no way to start a child here) calls ``func``
    in this process, handing it ``progress`` when it takes one. What ``--timeout`` means on every verb that runs
    engines in children: seconds per child, ``0`` (None here) for everything in this process."""
    if timeout_s is not None and isolation_available():
        return run_isolated(func, *args, timeout_s=timeout_s, label=label, progress=progress, preload=preload, **kwargs)
    if _takes_progress(func):
        kwargs = {**kwargs, "progress": progress or (lambda _line: None)}
    return func(*args, **kwargs)


@dataclass(frozen=True)
class RuntimeFailure:
    """A runtime that failed while a verb ran several (``compare``, ``bench``); the others went on.

    Attributes:
        runtime: the backend's name.
        label: what the verb calls that run (``mlp.onnx@openvino/fp32``).
        kind: ``"crashed"`` (its process died: a signal or an exit), ``"timed out"`` (killed at ``--timeout``),
            or ``"failed"`` (it raised an error).
        reason: one line: the signal, the limit, or the error's message.
    """

    runtime: str
    label: str
    kind: str
    reason: str

    @classmethod
    def from_error(cls, exc: BaseException, *, runtime: str, label: str) -> RuntimeFailure:
        """The failure an exception stands for (its message without a leading ``"<label>: "``)."""
        kind = (
            "crashed" if isinstance(exc, ChildCrashed) else "timed out" if isinstance(exc, ChildTimedOut) else "failed"
        )
        if isinstance(exc, ModelportError):
            text = exc.message.removeprefix(f"{label}: ")
            if isinstance(exc, ChildFailed):
                text = text.split("; its process", 1)[0]  # "timed out …; its process … were killed": one clause
        else:
            text = f"{type(exc).__name__}: {first_line(exc)}"
        return cls(runtime=runtime, label=label, kind=kind, reason=first_line(text) or type(exc).__name__)

    def line(self) -> str:
        """``"<label>: <kind>: <reason>"`` (the kind once when the reason starts with it) — how reports print it."""
        if self.reason.startswith(self.kind):
            return f"{self.label}: {self.reason}"
        return f"{self.label}: {self.kind}: {self.reason}"


def _wait_for_answer(
    proc: BaseProcess,
    reader: Connection,
    *,
    started: float,
    timeout_s: float,
    label: str,
    progress: Callable[[str], None] | None,
) -> Any:
    """Forward progress lines until the child answers; raise the matching error on a crash or the deadline."""
    deadline = started + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChildTimedOut(
                f"{label}: timed out after {time.monotonic() - started:.1f} s (limit {timeout_s:g} s); "
                "its process and subprocesses were killed",
                hint="give it a longer time limit, or leave it out",
            )
        ready = wait([reader, proc.sentinel], timeout=remaining)
        if not ready:
            continue
        if not reader.poll():  # only the sentinel: the child is gone with nothing left to read
            proc.join(_REAP_S)
            raise _crashed(proc, label)
        try:
            kind, payload = reader.recv()
        except EOFError:  # the child closed the pipe without answering (it died)
            proc.join(_REAP_S)
            raise _crashed(proc, label) from None
        except Exception as exc:  # an answer the parent cannot unpickle (a class it cannot import)
            raise ChildFailed(
                f"{label}: its result could not be read back: {type(exc).__name__}: {first_line(exc)}",
                hint="return only picklable values (frozen dataclasses, paths, numpy arrays)",
            ) from None
        if kind == "progress":
            if progress is not None:
                progress(payload)
        elif kind == "log":
            name, level, message = payload
            logging.getLogger(name).log(level, "%s", message)
        elif kind == "ok":
            return payload
        else:
            raise _rebuild(payload, label) from None


def _crashed(proc: BaseProcess, label: str) -> ChildCrashed:
    code = proc.exitcode
    hint = "an engine failed in native code; run it alone to see its output, or leave it out"
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = " (out of memory?)" if -code == signal.SIGKILL else ""
        return ChildCrashed(f"{label}: its process was killed by {name}{why}", hint=hint)
    if code is None:
        return ChildCrashed(f"{label}: its process closed its pipe without answering", hint=hint)
    return ChildCrashed(f"{label}: its process exited with code {code} without answering", hint=hint)


def _stop(proc: BaseProcess, *, grace_s: float) -> None:
    """Let an answered child exit, then kill its whole process group (and the child, had it not led one yet)."""
    if proc.pid is None:  # never started
        return
    if grace_s > 0:
        proc.join(grace_s)
    kill_process_group(proc.pid)
    with contextlib.suppress(OSError, ValueError):
        proc.kill()
    proc.join(_REAP_S)
    if proc.exitcode is None:
        log.warning("child process %d did not exit after SIGKILL", proc.pid)
    with contextlib.suppress(ValueError):
        proc.close()


def kill_process_group(pid: int) -> bool:
    """SIGKILL the process group led by ``pid`` (what a child started by :func:`run_isolated` leads).

    Never the caller's own group: when ``pid`` leads no group (the child died before :func:`os.setsid`), nothing
    is signalled. Returns whether a group was signalled.
    """
    if not hasattr(os, "killpg") or pid == os.getpgrp():
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# --- the child side ---------------------------------------------------------------------------------------------


class _Sender:
    """The child's end of the pipe; ``progress`` may be called from any thread."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._conn.send((kind, payload))

    def progress(self, line: str) -> None:
        self.send("progress", str(line))


class _ForwardLogs(logging.Handler):
    """The child's logging handler: each record crosses to the parent as (logger name, level, message)."""

    def __init__(self, sender: _Sender) -> None:
        super().__init__()
        self._sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self._sender.send("log", (record.name, record.levelno, message))
        except Exception:  # a closed pipe or an odd record: logging must never break the work
            self.handleError(record)


def _adopt_environment(env: Mapping[str, str]) -> None:
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _child_main(conn: Connection, job: _Job) -> None:
    """Run the job in the child and send exactly one answer; leave without interpreter teardown."""
    with contextlib.suppress(OSError, AttributeError):
        os.setsid()  # lead a new process group: the parent kills it whole; terminal Ctrl-C reaches the parent only
    _die_with_parent()
    _adopt_environment(job.env)
    if job.sys_path:
        sys.path[:] = list(job.sys_path)
    sender = _Sender(conn)
    # the child's log records go to the parent, which emits them with its own handlers (a progress display on the
    # terminal stays intact); the parent's --verbose/--debug level applies here
    logging.basicConfig(level=job.log_level, handlers=[_ForwardLogs(sender)], force=True)
    kwargs = {**job.kwargs, "progress": sender.progress} if job.wants_progress else job.kwargs
    code = 0
    try:
        try:
            result = job.func(*job.args, **kwargs)
        except BaseException as exc:  # every exception becomes an answer; the parent decides
            sender.send("error", _describe(exc))
        else:
            try:
                sender.send("ok", result)
            except Exception as exc:  # an unpicklable result
                sender.send("error", _describe(exc, prefix="its result cannot be sent back: "))
    except BaseException:  # the pipe is gone (the parent died or gave up): nobody to tell
        code = 1
    finally:
        with contextlib.suppress(Exception):
            conn.close()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(code)


def _die_with_parent() -> None:
    """Kill this process group when the parent dies (SIGKILL, ``timeout``'s SIGTERM): its ``finally`` never runs,
    and a group in its own session is out of reach of whatever killed the parent's group."""
    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    if sentinel is None:
        return

    def watch() -> None:
        wait([sentinel])  # readable (EOF) once the parent's end closes: the parent is gone
        if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="modelport-parent-watch", daemon=True).start()


def _describe(exc: BaseException, prefix: str = "") -> _ChildError:
    is_mp = isinstance(exc, ModelportError) and not prefix
    pickled: bytes | None = None
    if is_mp:
        try:  # keep the exception itself when it comes back equal (subclasses may carry extra fields)
            blob = pickle.dumps(exc)
            if str(pickle.loads(blob)) == str(exc):
                pickled = blob
        except Exception:  # fall back to type + message + hint
            pickled = None
    path = getattr(exc, "path", None) if is_mp else None
    message = exc.message if isinstance(exc, ModelportError) and is_mp else str(exc)
    return _ChildError(
        type_module=type(exc).__module__,
        type_qualname=type(exc).__qualname__,
        message=prefix + message if prefix else message,
        hint=exc.hint if isinstance(exc, ModelportError) and is_mp else None,
        path=str(path) if path is not None else None,
        is_modelport=is_mp,
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        pickled=pickled,
    )


def _rebuild(info: _ChildError, label: str) -> ModelportError:
    """The parent's exception for a child's error: the same ModelportError, or a ChildFailed naming the type."""
    log.debug("%s: traceback in the child process:\n%s", label, info.traceback)
    if info.is_modelport:
        if info.pickled is not None:
            with contextlib.suppress(Exception):
                exc = pickle.loads(info.pickled)
                if isinstance(exc, ModelportError):
                    return exc
        cls = _import_class(info.type_module, info.type_qualname)
        if cls is not None and issubclass(cls, ModelportError):
            rebuilt = cls.__new__(cls)
            ModelportError.__init__(rebuilt, info.message, hint=info.hint, path=info.path)
            return rebuilt
        return ModelportError(info.message, hint=info.hint, path=Path(info.path) if info.path else None)
    name = info.type_qualname
    line = first_line(info.message) if info.message.strip() else ""
    return ChildFailed(
        f"{label}: {name}: {line}" if line else f"{label}: {name}",
        hint="an unexpected error; --debug logs its traceback",
    )


def _import_class(module: str, qualname: str) -> type | None:
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:  # a class the parent cannot import: fall back to the base type
        return None
    return obj if isinstance(obj, type) else None


# --- children started as commands (conversion/worker.py) ----------------------------------------------------------

#: how often a command child checks that its parent is still alive
PARENT_POLL_S = 0.25


def watch_parent(parent: int, poll_s: float = PARENT_POLL_S) -> bool:
    """Kill this process's group once ``parent`` is no longer this process's parent (it died: this process was
    handed to init or a subreaper). Only a process that leads its own group does this (a command started with
    ``start_new_session``); returns whether the watch started."""
    if not hasattr(os, "killpg") or os.getpgrp() != os.getpid():
        return False

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="modelport-parent-watch", daemon=True).start()
    return True


def command(parent: int, module: str, *args: str) -> list[str]:
    """The command line that runs ``python -m module args…`` watched by :func:`watch_parent` from its first
    instant (before the module's own imports, which take seconds for an engine)."""
    return [sys.executable, "-m", __name__, str(parent), module, *args]


def _launch(argv: list[str]) -> None:
    """``python -m modelport.backends.isolation PARENT MODULE ARGS…``: watch PARENT, then run MODULE as
    ``python -m MODULE ARGS…`` does (its exit status included)."""
    parent, module = int(argv[1]), argv[2]
    watch_parent(parent)
    sys.argv = [module, *argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _launch(sys.argv)
