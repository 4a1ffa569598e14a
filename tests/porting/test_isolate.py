"""run_isolated: each way a child can end becomes its result or one typed error, and no process outlives it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import _isolate_targets as targets
import numpy as np
import pytest

from modelport.errors import ConversionError
from modelport.porting.isolate import (
    TargetCrashed,
    TargetFailed,
    TargetTimedOut,
    isolation_available,
    run_isolated,
    start_method,
)


def _gone(pid: int, wait_s: float = 5.0) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for an init that does not reap counts as exited)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            alive = stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except FileNotFoundError:
            alive = False
        except OSError:
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Start the child machinery once, so the timeout tests measure the targets and not the server's start."""
    assert isolation_available()
    assert start_method() in ("forkserver", "spawn")
    run_isolated(targets.read_env, "HOME", timeout_s=120, label="warm-up")


def test_returns_a_dataclass_computed_in_another_process() -> None:
    answer = run_isolated(targets.make_answer, "resnet", scale=2.0, timeout_s=60, label="openvino fp32")
    assert isinstance(answer, targets.Answer)
    assert answer.name == "resnet" and answer.path == Path("/tmp/resnet")
    np.testing.assert_array_equal(answer.values, np.array([0, 2, 4, 6], dtype=np.float32))
    assert answer.pid != os.getpid()
    assert _gone(answer.pid)


def test_modelport_error_comes_back_with_its_type_message_hint_and_path() -> None:
    with pytest.raises(ConversionError) as info:
        run_isolated(targets.raise_conversion_error, "/models/m.onnx", timeout_s=60, label="litert fp32")
    exc = info.value
    assert type(exc) is ConversionError
    assert exc.message == "onnx2tf cannot convert node 'conv1'"
    assert exc.hint == "try --to openvino"
    assert exc.path == Path("/models/m.onnx")
    assert exc.exit_code == ConversionError.exit_code


def test_other_exception_becomes_one_line_target_failed() -> None:
    with pytest.raises(TargetFailed) as info:
        run_isolated(targets.raise_plain, timeout_s=60, label="onnxruntime int8")
    assert type(info.value) is TargetFailed
    assert info.value.message == "onnxruntime int8: ValueError: bad value in layer 3"


def test_unpicklable_result_is_a_target_failed() -> None:
    with pytest.raises(TargetFailed, match=r"^litert int8: .*its result cannot be sent back"):
        run_isolated(targets.return_unpicklable, timeout_s=60, label="litert int8")


@pytest.mark.parametrize(
    ("func", "arg", "expected"),
    [
        (targets.exit_with, 3, "exited with code 3"),
        (targets.segfault, None, "killed by SIGSEGV"),
    ],
)
def test_child_death_is_target_crashed(func: object, arg: int | None, expected: str) -> None:
    args = () if arg is None else (arg,)
    with pytest.raises(TargetCrashed, match=expected) as info:
        run_isolated(func, *args, timeout_s=60, label="openvino int8")  # type: ignore[arg-type]
    assert info.value.message.startswith("openvino int8: ")


def test_timeout_kills_the_child_and_its_subprocesses() -> None:
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(TargetTimedOut, match=r"^tflite fp16: timed out after \d+\.\d s \(limit 2 s\)"):
        run_isolated(targets.sleep_with_grandchild, 60, timeout_s=2, label="tflite fp16", progress=lines.append)
    assert time.monotonic() - started < 20
    pids = {line.split()[0]: int(line.split()[1]) for line in lines}
    assert set(pids) == {"pid", "grandchild"}
    assert _gone(pids["pid"]) and _gone(pids["grandchild"])


def test_progress_lines_arrive_in_order() -> None:
    lines: list[str] = []
    count = run_isolated(targets.report_steps, 20, timeout_s=60, label="ort fp32", progress=lines.append)
    assert count == 20
    assert lines == [f"step {i}" for i in range(20)] + ["from a thread"]


def test_progress_without_a_receiver_is_dropped() -> None:
    assert run_isolated(targets.report_steps, 3, timeout_s=60, label="ort fp32") == 3


def test_child_logs_are_emitted_by_the_parents_loggers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="modelport.test_child"):
        assert run_isolated(targets.log_and_return, 7, timeout_s=60, label="logs") == 7
    records = [r for r in caplog.records if r.name == "modelport.test_child"]
    assert [(r.levelno, r.getMessage().splitlines()[0]) for r in records] == [(logging.WARNING, "child says 7")]
    assert "ValueError: inner" in records[0].getMessage()  # the child's traceback travels in the message


def test_child_sees_the_parents_current_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPORT_ISOLATE_TEST", "set after the server started")
    assert run_isolated(targets.read_env, "MODELPORT_ISOLATE_TEST", timeout_s=60, label="env") == (
        "set after the server started"
    )


def test_ctrl_c_while_waiting_kills_the_child_and_reraises() -> None:
    lines: list[str] = []
    timers: list[threading.Timer] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line.startswith("grandchild"):  # the child is up: interrupt the parent's wait as a Ctrl-C would
            timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
            timers.append(timer)
            timer.start()

    # Python maps SIGINT to KeyboardInterrupt only when SIGINT was not ignored at start-up (a job started in the
    # background by a non-interactive shell ignores it): install the default handler for this test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_isolated(targets.sleep_with_grandchild, 30, timeout_s=60, label="ctrl-c", progress=on_line)
    finally:
        signal.signal(signal.SIGINT, previous)
    for timer in timers:
        timer.join()
    pids = [int(line.split()[1]) for line in lines]
    assert len(pids) == 2
    assert all(_gone(pid) for pid in pids)


@pytest.mark.slow
def test_a_killed_parent_takes_its_child_and_subprocesses_along() -> None:
    """SIGKILL skips the parent's clean-up: the child notices its parent is gone and kills its own group."""
    script = Path(targets.__file__)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = {}
        for line in parent.stdout:
            word, pid = line.split()
            pids[word] = int(pid)
            if len(pids) == 2:
                break
        assert set(pids) == {"pid", "grandchild"}
    finally:
        parent.kill()
        parent.wait(30)
    assert _gone(pids["pid"], wait_s=10) and _gone(pids["grandchild"], wait_s=10)
