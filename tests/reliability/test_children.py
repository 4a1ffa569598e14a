"""No orphans: every engine modelport runs in a child process dies with the run that started it — on Ctrl-C
(SIGINT), on SIGTERM, when its parent is SIGKILLed, and at its time limit — together with the processes it started.

Real command lines (``python -c`` around ``modelport.cli.main.main``, SIGINT restored to Python's handler since a
job started in the background inherits it ignored), processes found by scanning ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import _faulty_backend
import pytest

import models
from modelport.assets import default_model_path
from modelport.conversion.worker import run_worker
from modelport.errors import ConversionError

HERE = Path(__file__).resolve().parent
#: the CLI as a user runs it, with Python's Ctrl-C handler (and the test-only runtimes when asked)
LAUNCH = textwrap.dedent(
    """
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {here!r})
    from modelport.cli.main import main
    if sys.argv[1] == "--faulty":
        import _faulty_backend
        with _faulty_backend.registered():
            sys.exit(main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
    """
).format(here=str(HERE))


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of a live process; None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]), int(fields[2]))


def _processes() -> dict[int, tuple[str, int, int]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def _descendants(pid: int) -> set[int]:
    procs = _processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (_, ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _survivors(pids: set[int], groups: set[int], wait_s: float = 10.0) -> set[int]:
    """The processes among ``pids``, or in one of ``groups``, still alive after up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        left = {p for p, (_, _, pgid) in _processes().items() if p in pids or pgid in groups}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _cli(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=HERE
    )


def _stop_cli(cli: subprocess.Popen[bytes], sig: signal.Signals) -> tuple[int, str]:
    cli.send_signal(sig)
    try:
        _, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    return cli.returncode, err.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_convert_leaves_no_onnx2tf_worker(sig: signal.Signals, tmp_path: Path) -> None:
    """``convert`` to TFLite runs onnx2tf in a worker process; stopping the CLI while it runs stops the worker
    and everything it started."""
    cli = _cli("convert", str(default_model_path()), "--to", "tflite", "-o", str(tmp_path / "out"))
    try:

        def worker_started() -> bool:
            assert cli.poll() is None, "the CLI ended before onnx2tf started"
            return any("_onnx2tf_worker" in _cmdline(p) for p in _descendants(cli.pid))

        _wait_for(worker_started, 240, "the onnx2tf worker")
        time.sleep(1.0)  # let it get going (importing TensorFlow, starting its own threads and helpers)
        tree = _descendants(cli.pid)
        groups = {stat[2] for p in tree if (stat := _stat(p)) is not None} - {os.getpgrp()}
        code, err = _stop_cli(cli, sig)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert code != 0
    if sig == signal.SIGINT:
        assert code == 130 and "modelport: error" not in err, err[-2000:]
    assert not _survivors(tree, groups), [_cmdline(p) for p in _survivors(tree, groups, 0)]
    assert not (tmp_path / "out" / "mnist_convnet.tflite").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_compare_leaves_no_runtime_process(
    sig: signal.Signals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``compare`` runs each runtime in a child process; one that hangs (with a helper process of its own) is
    stopped with the CLI."""
    pid_file = tmp_path / "pids.txt"
    monkeypatch.setenv(_faulty_backend.PID_FILE_ENV, str(pid_file))
    mlp = models.save(models.mlp(), tmp_path / "mlp.onnx")
    cli = _cli("--faulty", "compare", str(mlp), "-r", "onnxruntime,hang-load", "--timeout", "300")
    try:
        _wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 120, "the hanging runtime")
        child, helper = (int(p) for p in pid_file.read_text().split())
        tree = _descendants(cli.pid)
        assert {child, helper} <= tree
        code, _ = _stop_cli(cli, sig)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert code == (130 if sig == signal.SIGINT else -signal.SIGTERM) or code == 128 + signal.SIGTERM
    assert not _survivors(tree, {child}), [_cmdline(p) for p in _survivors(tree, {child}, 0)]


_HANG_WORKER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from pathlib import Path

    def job(request):
        time.sleep(300)

    if __name__ == "__main__":
        # first thing, before modelport's imports (seconds on a busy machine): a helper, and both pids noted
        request = json.loads(Path(sys.argv[1]).read_text())
        helper = subprocess.Popen(["sleep", "300"])
        Path(request["pids"]).write_text(f"{os.getpid()} {helper.pid}")
        from modelport.conversion.worker import serve
        sys.exit(serve(sys.argv, job))
    """
)


def _hang_worker(tmp_path: Path) -> Path:
    (tmp_path / "m_hang_worker.py").write_text(_HANG_WORKER, encoding="utf-8")  # `python -m` finds it in its cwd
    return tmp_path / "pids.txt"


def test_a_worker_past_its_time_limit_is_killed_with_its_children(tmp_path: Path) -> None:
    pids = _hang_worker(tmp_path)
    with pytest.raises(ConversionError, match=r"hang took longer than 4 s; it was stopped with its subprocesses"):
        run_worker("m_hang_worker", {"pids": str(pids)}, tmp_path, what="hang", timeout_s=4)
    worker, helper = (int(p) for p in pids.read_text().split())
    assert not _survivors({worker, helper}, {worker})


def test_a_worker_whose_parent_is_killed_kills_itself_and_its_children(tmp_path: Path) -> None:
    """SIGKILL leaves the parent no chance to clean up: the worker notices it was orphaned and ends its group."""
    pids = _hang_worker(tmp_path)
    script = (
        "import sys; from pathlib import Path; from modelport.conversion.worker import run_worker; "
        f"run_worker('m_hang_worker', {{'pids': {str(pids)!r}}}, Path({str(tmp_path)!r}), what='hang', timeout_s=300)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        _wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 120, "the worker")
        worker, helper = (int(p) for p in pids.read_text().split())
        assert _stat(worker) is not None and _stat(helper) is not None
    finally:
        parent.kill()
        parent.wait(30)
    assert not _survivors({worker, helper}, {worker})
