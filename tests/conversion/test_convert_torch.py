"""PyTorch → ONNX (dynamo, legacy fallback, dynamic axes, TorchScript, pickles) → OpenVINO / TFLite, verified."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import torch_nets
from modelport.backends import open_runner
from modelport.conversion import ChainOptions, ConvertOptions, convert, convert_chain
from modelport.errors import InvalidInputError, ModelLoadError, RuntimeUnavailable
from modelport.formats import Format

SHAPE = ChainOptions(ConvertOptions(input_shapes=(("image", (2, 3, 16, 16)),)))


def test_dynamo_export_verified(tmp_path: Path) -> None:
    report = convert("torch_nets:convnet", "onnx", tmp_path, options=SHAPE)
    assert report.source_format is Format.TORCH and report.target_format is Format.ONNX
    assert report.artifact == str(tmp_path / "convnet.onnx")
    assert "dynamo exporter" in report.engine
    v = report.verification
    assert v is not None and v.passed and v.max_abs < 1e-5
    assert v.reference == "torch_nets:convnet@torch"
    proto = onnx.load(report.artifact)
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["output"]


def test_dynamic_axes_and_two_outputs(tmp_path: Path) -> None:
    artifact = ConvertOptions(input_shapes=(("a", (2, 6)), ("b", (2, 3))), dynamic_axes=(("a", (0,)), ("b", (0,))))
    report = convert("torch_nets:two_outputs", "onnx", tmp_path, options=ChainOptions(artifact))
    assert report.verification is not None and report.verification.passed
    a = np.random.default_rng(3).random((5, 6), dtype=np.float32)
    b = np.random.default_rng(4).random((5, 3), dtype=np.float32)
    with open_runner("onnxruntime", report.artifact) as ort:
        assert not ort.input_specs[0].is_static  # batch exported as dynamic
        got = ort.infer({"a": a, "b": b})
    with torch.no_grad():
        want = torch_nets.two_outputs()(torch.from_numpy(a), torch.from_numpy(b))
    assert list(got) == ["output_0", "output_1"]
    np.testing.assert_allclose(got["output_0"], want[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["output_1"], want[1].numpy(), rtol=1e-5, atol=1e-6)


def test_legacy_fallback_with_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = ChainOptions(ConvertOptions(input_shapes=(("x", (3, 4)),)))
    report = convert("torch_nets:data_dependent", "onnx", tmp_path, options=options)
    assert "legacy exporter" in report.engine
    assert any(n.startswith("dynamo exporter failed: ") for n in report.notes)
    assert "falling back to the legacy exporter" in caplog.text
    assert report.verification is not None and report.verification.passed


def test_torchscript_and_pickles(tmp_path: Path) -> None:
    ts, pickled = tmp_path / "net.pt", tmp_path / "pickled.pt"
    torch.jit.script(torch_nets.convnet()).save(str(ts))
    torch.save(torch_nets.convnet(), pickled)
    report = convert(ts, "onnx", tmp_path / "ts", options=SHAPE)
    assert "legacy exporter" in report.engine and "source: torchscript" in report.notes
    assert report.verification is not None and report.verification.max_abs < 1e-5
    with pytest.raises(ModelLoadError, match="unpickling it would run code") as info:
        convert(pickled, "onnx", tmp_path / "pk", options=SHAPE)
    assert "--trust-remote-code" in str(info.value)
    assert not (tmp_path / "pk").exists()
    trust = ChainOptions(dataclasses.replace(SHAPE.convert, trust_remote_code=True))
    trusted = convert(pickled, "onnx", tmp_path / "pk", options=trust)
    assert trusted.verification is not None and trusted.verification.passed


def test_shape_needed(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="PyTorch export needs a shape for input 'image'") as info:
        convert("torch_nets:convnet", "onnx", tmp_path / "out")
    assert "--input-shape image:" in str(info.value)
    with pytest.raises(InvalidInputError, match="unknown input"):
        wrong = ChainOptions(ConvertOptions(input_shapes=(("img", (1, 3, 16, 16)),)))
        convert("torch_nets:convnet", "onnx", tmp_path / "out", options=wrong)
    assert not (tmp_path / "out").exists()


def test_chain_to_openvino_and_litert_torch_route(tmp_path: Path) -> None:
    # example inputs from the module itself (its example_inputs attribute): no --input-shape needed
    chain = convert_chain("torch_nets:convnet_with_examples", "onnx,openvino", tmp_path)
    assert [h.label for h in chain.hops] == ["torch → onnx", "onnx → openvino"]
    assert chain.passed and all(h.target for h in chain.hops)
    ov = chain.hops[1]
    assert ov.against_previous is not None and ov.against_previous.max_abs < 1e-5
    assert ov.against_source is not None and ov.against_source.max_abs < 1e-5
    assert dict(chain.targets)[Format.OPENVINO_IR].endswith("convnet_with_examples.xml")
    # the direct PyTorch → TFLite route needs litert-torch, which lives in its own environment
    with pytest.raises(RuntimeUnavailable, match="needs litert-torch") as info:
        convert("torch_nets:convnet", "tflite", tmp_path / "lt", options=SHAPE)
    assert "--via onnx" in str(info.value)


@pytest.mark.slow
def test_via_onnx_to_tflite(tmp_path: Path) -> None:
    options = dataclasses.replace(SHAPE, via=("onnx",))
    chain = convert_chain("torch_nets:convnet", "tflite", tmp_path, options=options)
    assert [h.label for h in chain.hops] == ["torch → onnx", "onnx → tflite"]
    hop = chain.hops[-1]
    assert hop.runtime == "litert" and hop.conversion.engine.startswith("onnx2tf ")
    # onnx2tf made the input NHWC; verification transposed the NCHW feeds and still matches at fp32
    with open_runner("litert", hop.conversion.artifact) as lite:
        assert lite.input_specs[0].shape is not None and lite.input_specs[0].shape[-1] == 3
    assert hop.against_source is not None and hop.against_source.passed and hop.against_source.max_abs < 1e-4
