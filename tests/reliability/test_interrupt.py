"""Interrupted runs: Ctrl-C (SIGINT) or ``kill`` (SIGTERM) in the middle of a write leaves no partial artifact.

Each case starts a real ``python -m modelport VERB …`` in a child process, writing into a folder that already holds
a complete *old* version of every artifact. The test watches that folder and sends the signal the moment the verb's
first temporary entry (``.NAME.*.tmp`` from ``model_io.atomic_path``, ``.staging.*.tmp`` from ``atomic_files``)
appears, i.e. while an artifact is being written. The model is an 8 MiB MatMul so that the write lasts long enough
to be caught; nothing in the library waits for the test.

Invariant checked after every run: each artifact is either byte-for-byte the old file or a complete new one (it
loads), a multi-file artifact (OpenVINO ``.xml`` + ``.bin``) is wholly old or wholly new, no temporary entry is
left, stderr holds no traceback, and the exit code is 130 for SIGINT and 128 + 15 = 143 for SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modelport.cli.main
import modelport.model_io
from modelport.assets import default_model_path

ROWS, COLS = 1024, 2048  # 8 MiB of float32 weights
#: how long a run may take before the test gives up on it
RUN_TIMEOUT_S = 120.0
#: runs tried per case until one is signalled while a temporary entry exists
TRIES = 3
#: True once ``cli/main.py`` installs the SIGTERM handler (``cli.common.exit_cleanly_on_signals``)
SIGTERM_WIRED = "exit_cleanly_on_signals" in Path(modelport.cli.main.__file__).read_text(encoding="utf-8")


def big_model() -> onnx.ModelProto:
    """x[1,ROWS] → MatMul(ROWS×COLS) → Relu: one large weight, nothing for the optimizer to fold away."""
    weight = np.random.default_rng(0).standard_normal((ROWS, COLS), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, ROWS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, COLS])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The big model (the input), and the old artifacts: MNIST as ONNX and as OpenVINO IR."""
    folder = tmp_path_factory.mktemp("sources")
    big = folder / "big.onnx"
    onnx.save(big_model(), str(big))
    import openvino as ov

    ov.save_model(ov.convert_model(str(default_model_path())), str(folder / "old.xml"), compress_to_fp16=False)
    return {"big": big, "old_onnx": default_model_path(), "old_xml": folder / "old.xml", "old_bin": folder / "old.bin"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def complete_onnx(path: Path) -> bool:
    """A whole new ONNX artifact: it loads, passes the checker and holds the big weight."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return any(numpy_helper.to_array(t).size == ROWS * COLS for t in model.graph.initializer)


def complete_ir(xml: Path) -> bool:
    """A whole new OpenVINO IR: OpenVINO reads it, with the big weight in its .bin."""
    import openvino as ov

    ov.Core().read_model(str(xml))
    return xml.with_suffix(".bin").stat().st_size >= ROWS * COLS * 4


@dataclass(frozen=True)
class Case:
    """One interrupted command: its arguments (after ``modelport``) and its artifacts.

    Attributes:
        args: the command line, given the input model and the output folder.
        artifacts: groups of artifact names in the output folder (a group is wholly old or wholly new), each with
            the old file it starts as.
        complete: whether a new artifact (the first file of a group) is whole.
    """

    args: Callable[[Path, Path], list[str]]
    artifacts: tuple[tuple[tuple[str, str], ...], ...]
    complete: Callable[[Path], bool]


CASES: dict[str, Case] = {
    "optimize": Case(
        lambda m, o: ["optimize", str(m), "-o", str(o / "big.opt.onnx"), "--no-verify"],
        ((("big.opt.onnx", "old_onnx"),),),
        complete_onnx,
    ),
    "edit": Case(
        lambda m, o: ["edit", "set-batch", str(m), "--batch", "1", "-o", str(o / "big.edit.onnx"), "--no-verify"],
        ((("big.edit.onnx", "old_onnx"),),),
        complete_onnx,
    ),
    "convert": Case(
        lambda m, o: ["convert", str(m), "--to", "openvino", "-o", str(o), "--no-verify"],
        ((("big.xml", "old_xml"), ("big.bin", "old_bin")),),
        complete_ir,
    ),
}


def prepare(case: Case, sources: dict[str, Path], out: Path) -> dict[str, str]:
    """Put the old artifacts in place; their digests by name."""
    out.mkdir()
    old: dict[str, str] = {}
    for group in case.artifacts:
        for name, source in group:
            (out / name).write_bytes(sources[source].read_bytes())
            old[name] = digest(out / name)
    return old


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def interrupt_mid_write(
    case: Case, sources: dict[str, Path], folder: Path, sig: signal.Signals, prefix: list[str]
) -> tuple[int, str, Path, dict[str, str]]:
    """:func:`interrupt` in a fresh output folder until the signal lands during a write (at most :data:`TRIES` runs:
    on a loaded machine the poll may miss a short write).

    Returns:
        The exit code, stderr, the output folder and the old artifacts' digests.
    """
    for attempt in range(TRIES):
        out = folder / f"out{attempt}"
        old = prepare(case, sources, out)
        rc, err, caught = interrupt(case.args(sources["big"], out), out, sig, prefix)
        if caught:
            return rc, err, out, old
    raise AssertionError(f"no run was caught writing in {TRIES} tries (last: rc {rc}): {err}")


def interrupt(args: list[str], out: Path, sig: signal.Signals, prefix: list[str]) -> tuple[int, str, bool]:
    """Run ``prefix + args``; send ``sig`` to the process as soon as a temporary entry appears in ``out``.

    The signal goes to the process only (``kill -INT PID``), not to its group as a terminal's Ctrl-C would: OpenVINO's
    converter starts telemetry processes that print tracebacks of their own when interrupted (reported separately),
    and what this file checks is the artifacts of the process that writes them.

    Returns:
        The exit code, stderr, and whether the signal was sent while a temporary entry existed.
    """
    child = subprocess.Popen(
        [*prefix, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a CI shell may start us ignoring it
    )
    caught = False
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if temporaries(out):
                os.kill(child.pid, sig)
                caught = True
                break
            time.sleep(0.0005)
        _, err = child.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return child.returncode, err.decode(errors="replace"), caught


def check_invariant(case: Case, out: Path, old: dict[str, str], label: str) -> None:
    """Every artifact group wholly old or wholly new and complete; nothing temporary left behind."""
    assert not temporaries(out), f"{label}: temporary entries left behind: {temporaries(out)}"
    for group in case.artifacts:
        names = [name for name, _ in group]
        is_old = [(out / n).exists() and digest(out / n) == old[n] for n in names]
        if all(is_old):
            continue
        assert not any(is_old), f"{label}: {names} mix old and new files"
        assert case.complete(out / names[0]), f"{label}: {names[0]} is neither the old file nor a complete new one"


CLI = [sys.executable, "-m", "modelport"]
SIGNALS = {
    "sigint": (signal.SIGINT, 130),
    "sigterm": (signal.SIGTERM, 128 + signal.SIGTERM),
}


NOT_WIRED = pytest.mark.xfail(
    not SIGTERM_WIRED, strict=True, reason="cli/main.py does not call cli.common.exit_cleanly_on_signals yet"
)
#: a signal landing in atomic_files' commit or clean-up can leave ``.staging.*.tmp`` (seen in 1 run of 4) until
#: model_io holds signals back there (``model_io._signals_deferred``); then this case is strict like the others
RACY_COMMIT = pytest.mark.xfail(
    not hasattr(modelport.model_io, "_signals_deferred"),
    strict=False,
    reason="model_io.atomic_files does not defer signals during its commit and clean-up yet",
)


@pytest.mark.parametrize(
    ("case", "signame"),
    [
        ("optimize", "sigint"),
        pytest.param("convert", "sigint", marks=RACY_COMMIT),
        pytest.param("edit", "sigterm", marks=NOT_WIRED),
    ],
)
def test_interrupted_write_leaves_old_or_new_file(
    case: str, signame: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    sig, code = SIGNALS[signame]
    rc, err, out, old = interrupt_mid_write(CASES[case], sources, tmp_path, sig, CLI)
    assert "Traceback" not in err, err
    assert rc == code, f"{case} on {signame}: exit code {rc}, expected {code}: {err}"
    check_invariant(CASES[case], out, old, f"{case}/{signame}")


def test_sigterm_handler_unwinds_and_cleans_up(sources: dict[str, Path], tmp_path: Path) -> None:
    """``exit_cleanly_on_signals`` itself (the one call ``main`` makes): SIGTERM mid-write, one line, exit 143."""
    wrapper = (
        "import sys; from modelport.cli.common import exit_cleanly_on_signals; from modelport.cli.main import main\n"
        "with exit_cleanly_on_signals(): sys.exit(main(sys.argv[1:]))"
    )
    case = CASES["optimize"]
    rc, err, out, old = interrupt_mid_write(case, sources, tmp_path, signal.SIGTERM, [sys.executable, "-c", wrapper])
    assert rc == 143, err
    assert err.strip().splitlines() == ["modelport: terminated (SIGTERM)"], err
    check_invariant(case, out, old, "handler/sigterm")
