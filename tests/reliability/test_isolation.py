"""A runtime that segfaults, aborts, raises or hangs in ``compare`` or ``bench`` is that runtime's failure: the report
says how it ended, the other runtimes are still compared or measured, and the command exits non-zero.

The failing runtimes are ONNX Runtime with a fault injected at load or at each run (``_faulty_backend``),
registered for this module only; a child process imports them by module name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import _faulty_backend
import pytest

import models
from modelport.backends.isolation import ChildCrashed, RuntimeFailure
from modelport.benchmark.timing import BenchConfig, BenchOptions, BenchReport, bench
from modelport.cli.main import build_app, main
from modelport.errors import InvalidInputError
from modelport.verify.compare import AccuracyReport, CompareOptions, compare

#: generous: a child imports its engine on a machine that may be busy; the hang test sets its own
LIMIT = 120.0
FAST = BenchConfig(warmup=1, iterations=5)


@pytest.fixture(scope="module", autouse=True)
def faulty() -> Iterator[list[str]]:
    with _faulty_backend.registered() as names:
        yield names


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.save(models.mlp(), tmp_path_factory.mktemp("isolation") / "mlp.onnx")


def _failures(report: AccuracyReport | BenchReport) -> list[tuple[str, str]]:
    return [(f.runtime, f.kind) for f in report.failures]


def _gone(pid: int, wait_s: float = 10.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


# --- the API ----------------------------------------------------------------------------------------------------


def test_compare_reports_each_crashing_runtime_and_compares_the_others(mlp: Path) -> None:
    runtimes = ["onnxruntime", "segv-load", "openvino", "abort-run", "raise-load"]
    report = compare([mlp], runtimes, options=CompareOptions(timeout=LIMIT))
    assert [c.candidate for c in report.comparisons] == ["mlp.onnx@openvino/fp32"]
    assert report.comparisons[0].passed
    assert _failures(report) == [("segv-load", "crashed"), ("abort-run", "crashed"), ("raise-load", "failed")]
    segv, abort, raised = report.failures
    assert segv.label == "mlp.onnx@segv-load/fp32" and segv.reason == "its process was killed by SIGSEGV"
    assert abort.reason == "its process was killed by SIGABRT"
    assert raised.reason == "RuntimeError: engine exploded in kernel 7"  # the first line only
    assert segv.line() == "mlp.onnx@segv-load/fp32: crashed: its process was killed by SIGSEGV"
    assert not report and not report.passed
    assert AccuracyReport.from_json(report.to_json()) == report


def test_a_hanging_runtime_times_out_and_its_processes_are_killed(
    mlp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids.txt"
    monkeypatch.setenv(_faulty_backend.PID_FILE_ENV, str(pid_file))
    started = time.monotonic()
    report = compare([mlp], ["onnxruntime", "hang-load"], options=CompareOptions(timeout=3))
    assert time.monotonic() - started < 60
    assert _failures(report) == [("hang-load", "timed out")]
    assert report.failures[0].reason.startswith("timed out after") and "(limit 3 s)" in report.failures[0].reason
    assert not report.comparisons and not report
    child, helper = (int(p) for p in pid_file.read_text().split())
    assert _gone(child) and _gone(helper)


def test_in_this_process_a_raising_runtime_fails_alone(mlp: Path) -> None:
    report = compare([mlp], ["onnxruntime", "raise-load", "openvino"], options=CompareOptions(timeout=None))
    assert _failures(report) == [("raise-load", "failed")]
    assert report.failures[0].reason == "RuntimeError: engine exploded in kernel 7"
    assert [c.candidate for c in report.comparisons] == ["mlp.onnx@openvino/fp32"] and not report


def test_a_crashing_reference_is_one_error(mlp: Path) -> None:
    with pytest.raises(ChildCrashed, match=r"^mlp.onnx@segv-load/fp32 \(the reference\): .*SIGSEGV") as info:
        compare([mlp], ["segv-load", "onnxruntime"], options=CompareOptions(timeout=LIMIT))
    assert "nothing to compare against" in (info.value.hint or "")


def test_bench_measures_every_runtime_but_the_one_that_crashed(mlp: Path) -> None:
    lines: list[str] = []
    options = BenchOptions(timing=FAST, timeout=LIMIT)
    report = bench(mlp, "onnxruntime,segv-run,openvino", options=options, progress=lines.append)
    assert [(r.runtime, r.latency.n) for r in report.results] == [("onnxruntime", 5), ("openvino", 5)]
    assert all(r.latency.min_ms > 0 for r in report.results)
    assert report.failures == (RuntimeFailure("segv-run", "segv-run", "crashed", "its process was killed by SIGSEGV"),)
    # the child's progress crosses back: the crash came while timing
    assert lines == [f"timing {name} at batch 1" for name in ("onnxruntime", "segv-run", "openvino")]
    assert BenchReport.from_json(report.to_json()) == report


def test_bench_with_every_runtime_failing_raises_the_first_failure(mlp: Path) -> None:
    with pytest.raises(ChildCrashed, match=r"^abort-run: its process was killed by SIGABRT"):
        bench(mlp, "abort-run,segv-load", options=BenchOptions(timing=FAST, timeout=LIMIT))


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_cli_compare_reports_the_crash_and_exits_1(mlp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(mlp), "-r", "ort,segv-load,ov", "--input-shape", "x:2,8", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [(f["runtime"], f["kind"]) for f in report["failures"]] == [("segv-load", "crashed")]
    assert [c["candidate"] for c in report["comparisons"]] == ["mlp.onnx@openvino/fp32"]
    code = main(["compare", str(mlp), "-r", "ort,segv-load", "--input-shape", "x:2,8"])
    out = capsys.readouterr().out
    assert code == 1
    assert "mlp.onnx@segv-load/fp32: crashed: its process was killed by SIGSEGV" in out
    assert out.rstrip().endswith("1 runtime failed")


def test_cli_compare_with_a_crashing_reference_is_one_error_line(mlp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(mlp), "-r", "segv-load,ort"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1
    assert err[0].startswith("modelport: error: mlp.onnx@segv-load/fp32 (the reference)") and "SIGSEGV" in err[0]


def test_cli_bench_prints_the_crash_after_measuring_the_others(mlp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", str(mlp), "-r", "abort-run,ort", "-n", "3", "--warmup", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert [line.split("│")[1].strip() for line in out.splitlines() if "fp32" in line] == ["onnxruntime"]
    assert "abort-run: crashed: its process was killed by SIGABRT" in out


def test_timeout_is_one_option_on_port_compare_and_bench(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    import typer.main

    group = typer.main.get_command(build_app())
    params = {
        verb: next(p for p in group.commands[verb].params if "--timeout" in getattr(p, "opts", ()))  # type: ignore[attr-defined]
        for verb in ("port", "compare", "bench")
    }
    assert {p.default for p in params.values()} == {900.0}
    assert params["compare"].help == params["bench"].help and "0: all in this process" in params["bench"].help
    assert "0: all in this process" in params["port"].help
    code = main(["bench", str(mlp), "--timeout", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("modelport: error: --timeout must be > 0 seconds")
    for options in (CompareOptions, BenchOptions):
        with pytest.raises(InvalidInputError, match="timeout must be > 0 seconds"):
            options(timeout=0)


def test_a_forked_child_starts_its_own_forkserver(mlp: Path) -> None:
    """A process forked after the forkserver started (a fuzzing harness, a pre-forking server) isolates its runtimes
    too: it must not reuse the parent's server record (before: ChildProcessError in os.waitpid, reported as every
    runtime's failure)."""
    import os

    options = CompareOptions(timeout=120.0)
    first = compare([mlp, mlp], ["onnxruntime", "onnxruntime"], options=options)  # starts this process's server
    assert not first.failures
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            again = compare([mlp, mlp], ["onnxruntime", "onnxruntime"], options=options)
            code = 0 if not again.failures and again.comparisons else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
