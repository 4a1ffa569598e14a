"""Per-tensor comparison across a converter that renames every tensor: ONNX → TFLite (onnx2tf, NHWC). The correct
port flags nothing; the port of a copy with one conv's weights perturbed is flagged from that conv on (onnx2tf fuses
each conv into its Relu, so the first divergence is that Relu)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from test_per_tensor import FAULT, conv_net, perturbed

from modelport.conversion import convert
from modelport.divergence.api import bisect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tflite")
    out = {}
    for name, model in (("ref", conv_net()), ("fault", perturbed(conv_net()))):
        src = d / f"{name}.onnx"
        onnx.save(model, str(src))
        out[name] = src
        out[f"{name}.tflite"] = Path(convert(src, "tflite", d / name).artifact)
    return out


def test_a_correct_tflite_port_flags_nothing(tflite: dict[str, Path]) -> None:
    report = bisect([tflite["ref"], tflite["ref.tflite"]], "onnxruntime,litert")
    div = report.divergence
    assert div is not None and div.first is None and div.outputs_passed
    counts = div.matched_counts()
    assert counts["alias"] >= 4  # onnx2tf's recorded name map names the TFLite tensors
    assert not any(not t.passed for t in div.tensors)


def test_the_fault_is_found_through_a_renaming_converter(tflite: dict[str, Path]) -> None:
    report = bisect([tflite["ref"], tflite["fault.tflite"]], "onnxruntime,litert")
    div = report.divergence
    assert div is not None and div.first is not None and not div.outputs_passed
    assert div.first.reference in (f"conv{FAULT}", f"relu{FAULT}"), div.first
