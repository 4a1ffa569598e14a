"""The child-process worker protocol: answers, the engine's first useful line, diagnosis, and timeouts that leave
no process behind."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from modelport.conversion.worker import WorkerFailure, run_worker
from modelport.errors import ConversionError

_FAKE = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time

    def job(req):
        mode = req["mode"]
        if mode == "ok":
            print("hello from the child")
            with open(req["out"], "w") as f:
                f.write("done")
        elif mode == "raise":
            raise ValueError("bad thing\\nsecond line of a long message")
        elif mode == "exit":
            print("INFO: working")
            print("\\x1b[31mERROR:\\x1b[0m the real reason", file=sys.stderr)
            print("\\x1b[31mERROR:\\x1b[0m the real reason, later", file=sys.stderr)
            sys.exit(1)
        elif mode == "signal":
            os.kill(os.getpid(), signal.SIGKILL)

    if __name__ == "__main__":
        req = json.loads(open(sys.argv[1]).read())
        if req["mode"] == "hang":  # an engine that started a helper of its own, then hangs
            helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            with open(req["out"], "w") as f:
                f.write(str(helper.pid))
            time.sleep(120)
        from modelport.conversion.worker import serve
        sys.exit(serve(sys.argv, job))
    """
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "fake_worker.py").write_text(_FAKE, encoding="utf-8")  # `python -m` finds it in its cwd
    return tmp_path


def test_success_returns_the_log(work: Path) -> None:
    log = run_worker("fake_worker", {"mode": "ok", "out": str(work / "out.txt")}, work, what="fake")
    assert (work / "out.txt").read_text() == "done"
    assert "hello from the child" in log.read_text()
    assert json.loads((work / "fake_worker.result.json").read_text()) == {"error": None}


def test_an_exception_gives_its_first_line(work: Path) -> None:
    src = work / "model.onnx"
    with pytest.raises(ConversionError) as info:
        run_worker("fake_worker", {"mode": "raise"}, work, what="fake", src=src)
    assert info.value.message == "fake failed: bad thing" and info.value.path == src


def test_sys_exit_gives_the_last_error_line_of_the_log(work: Path) -> None:
    with pytest.raises(ConversionError) as info:
        run_worker("fake_worker", {"mode": "exit"}, work, what="fake")
    assert info.value.message == "fake failed: the real reason, later"  # colour codes and "ERROR:" removed


def test_a_killed_child_says_so(work: Path) -> None:
    with pytest.raises(ConversionError, match="fake failed: killed by signal 9"):
        run_worker("fake_worker", {"mode": "signal"}, work, what="fake")


def test_diagnosis_replaces_the_generic_error(work: Path) -> None:
    seen: list[WorkerFailure] = []

    def diagnose(failure: WorkerFailure) -> ConversionError | None:
        seen.append(failure)
        return ConversionError("diagnosed: op X") if "bad thing" in (failure.error or "") else None

    with pytest.raises(ConversionError, match=r"^diagnosed: op X$"):
        run_worker("fake_worker", {"mode": "raise"}, work, what="fake", diagnose=diagnose)
    (failure,) = seen
    assert failure.error_type == "ValueError" and failure.returncode == 1 and failure.log_path.exists()
    with pytest.raises(ConversionError, match="fake failed: the real reason"):  # None: the generic error
        run_worker("fake_worker", {"mode": "exit"}, work, what="fake", diagnose=diagnose)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, merely not yet reaped


def test_timeout_kills_the_whole_process_group(work: Path) -> None:
    pid_file = work / "helper.pid"
    start = time.monotonic()
    with pytest.raises(ConversionError, match="fake took longer than 5 s"):
        run_worker("fake_worker", {"mode": "hang", "out": str(pid_file)}, work, what="fake", timeout_s=5)
    assert time.monotonic() - start < 60
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(helper)  # the engine's own child went with it
