"""port's progress protocol (text messages that cross the child-process boundary) and the CLI's bars over it."""

from __future__ import annotations

import io

from rich.console import Console

from modelport.cli.port import _TargetBars
from modelport.formats import Precision
from modelport.porting.progress import (
    done_message,
    parse_message,
    start_message,
    step_message,
    target_steps,
)


def test_messages_round_trip() -> None:
    start = parse_message(start_message("openvino/int8", 4))
    assert start is not None and (start.target, start.steps, start.status) == ("openvino/int8", 4, None)
    step = parse_message(step_message("litert/fp32", "throughput at batch 8: ok"))
    assert step is not None and (step.target, step.text, step.steps, step.status) == (
        "litert/fp32",
        "throughput at batch 8: ok",
        None,
        None,
    )
    done = parse_message(done_message("onnxruntime/fp16", "mismatch"))
    assert done is not None and done.status == "mismatch" and done.steps is None
    assert parse_message(start_message("a/b", 1)) == parse_message("a/b: start, 1 step")


def test_messages_about_no_target() -> None:
    assert parse_message("preparing the source model (onnx)") is None
    assert parse_message("converted: tflite → onnx") is None


def test_target_steps() -> None:
    assert target_steps(Precision.FP32, budget=10, throughput_batches=2) == 5
    assert target_steps(Precision.INT8, budget=10, throughput_batches=0) == 2
    assert target_steps(Precision.FP16, budget=0, throughput_batches=0) == 2


def test_cli_bars_follow_the_messages() -> None:
    out = io.StringIO()
    with _TargetBars(Console(file=out, width=120, force_terminal=False)) as bars:
        bars("preparing the source model (onnx)")
        bars(start_message("onnxruntime/fp32", 3))
        bars(step_message("onnxruntime/fp32", "building the onnx artifact"))
        bars(step_message("onnxruntime/fp32", "verifying against the source"))
        running = bars._bars.tasks[0]
        assert (running.completed, running.total, running.description) == (1, 3, "verifying against the source")
        bars(done_message("onnxruntime/fp32", "verified"))
        bars(start_message("openvino/int8", 2))
        bars(done_message("openvino/int8", "failed"))
        tasks = bars._bars.tasks
        assert [t.fields["target"] for t in tasks] == ["onnxruntime/fp32", "openvino/int8"]
        assert all(t.finished for t in tasks)
        assert "verified" in tasks[0].description and "failed" in tasks[1].description
    assert "preparing the source model (onnx)" in out.getvalue()
