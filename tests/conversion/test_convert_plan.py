"""Route planning over the registered converters, and matching names/layouts across formats."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends import open_runner
from modelport.conversion import ChainOptions, ConvertOptions, convert_chain
from modelport.conversion.chain import parse_formats
from modelport.conversion.routes import plan, plan_segments
from modelport.errors import ConversionError, InvalidInputError, RuntimeUnavailable
from modelport.formats import Format as F
from modelport.formats import Precision
from modelport.inputs import TensorSpec
from modelport.verify.compare import Tolerance
from modelport.verify.matching import adapt_feed, adapt_feeds, align_outputs, canonical, match_name, pair_names


def test_plans() -> None:
    # the seeds' chain: via formats in order, then each target from the latest artifact
    assert plan(F.TF_GRAPHDEF, [F.ONNX, F.OPENVINO_IR, F.TFLITE], [F.SAVED_MODEL, F.TFLITE]) == [
        (F.TF_GRAPHDEF, F.SAVED_MODEL),
        (F.SAVED_MODEL, F.TFLITE),
        (F.TFLITE, F.ONNX),
        (F.ONNX, F.OPENVINO_IR),
    ]
    assert plan(F.TF_GRAPHDEF, [F.ONNX]) == [(F.TF_GRAPHDEF, F.SAVED_MODEL), (F.SAVED_MODEL, F.ONNX)]
    assert plan(F.ONNX, [F.ONNX]) == [(F.ONNX, F.ONNX)]  # same format: the precision converter
    assert plan(F.ONNX, [F.OPENVINO_IR, F.TFLITE]) == [(F.ONNX, F.OPENVINO_IR), (F.ONNX, F.TFLITE)]
    assert plan(F.TORCH, [F.TFLITE], [F.ONNX]) == [(F.TORCH, F.ONNX), (F.ONNX, F.TFLITE)]
    assert plan(F.TORCH, [F.TFLITE]) == [(F.TORCH, F.TFLITE)]  # litert-torch, the direct route
    assert plan(F.KERAS, [F.TFLITE]) == [(F.KERAS, F.SAVED_MODEL), (F.SAVED_MODEL, F.TFLITE)]
    assert plan(F.TFLITE, [F.OPENVINO_IR]) == [(F.TFLITE, F.OPENVINO_IR)]  # OpenVINO's TFLite frontend, one hop
    assert plan(F.TFLITE, [F.OPENVINO_IR], [F.ONNX]) == [(F.TFLITE, F.ONNX), (F.ONNX, F.OPENVINO_IR)]
    assert plan_segments(F.TFLITE, [F.ONNX, F.OPENVINO_IR]) == [[(F.TFLITE, F.ONNX)], [(F.ONNX, F.OPENVINO_IR)]]
    with pytest.raises(ConversionError, match="no converter from openvino to onnx") as info:
        plan(F.OPENVINO_IR, [F.ONNX])
    assert "onnx→tflite" in str(info.value)
    assert parse_formats("tflite, ov,onnx,litert") == [F.TFLITE, F.OPENVINO_IR, F.ONNX]
    with pytest.raises(InvalidInputError, match="unknown format 'caffe'"):
        parse_formats("onnx,caffe")


def test_names() -> None:
    assert canonical("serving_default_Preprocessor/sub:0") == "preprocessor_sub"
    assert canonical("image_tensor:0") == canonical("image_tensor") == "image_tensor"
    assert pair_names(["image_tensor:0"], ["image_tensor"]) == [("image_tensor:0", "image_tensor")]
    assert pair_names(["a", "b"], ["b", "a"]) == [("a", "a"), ("b", "b")]
    assert pair_names(["x"], ["serving_default_input:0"]) == [("x", "serving_default_input:0")]  # by position
    with pytest.raises(InvalidInputError, match="cannot pair tensors"):
        pair_names(["a", "b"], ["a"])
    assert match_name("Preprocessor/sub:0", ["Preprocessor_sub"]) == "Preprocessor_sub"
    with pytest.raises(InvalidInputError, match="the model has no input 'z'"):
        match_name("z", ["x", "y"])


def test_layouts() -> None:
    nhwc = np.arange(1 * 4 * 5 * 6, dtype=np.float64).reshape(1, 4, 5, 6)
    nchw = adapt_feed(nhwc, TensorSpec("x", "float32", (1, 6, None, None)))
    assert nchw.shape == (1, 6, 4, 5) and nchw.dtype == np.float32
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    assert adapt_feed(nhwc, TensorSpec("x", "float64", (1, 4, 5, 6))) is nhwc  # fits as it is
    back = adapt_feed(nchw, TensorSpec("x", "float32", (None, 4, 5, 6)))
    np.testing.assert_array_equal(back, nhwc)
    with pytest.raises(InvalidInputError, match="does not fit input 'x'"):
        adapt_feed(nhwc, TensorSpec("x", "float32", (1, 7, 7, 7)))
    feeds = adapt_feeds({"input:0": nhwc}, [TensorSpec("input", "float32", (1, 6, 4, 5))])
    assert list(feeds) == ["input"] and feeds["input"].shape == (1, 6, 4, 5)
    out = align_outputs({"y": nchw, "n": np.zeros(3)}, {"Identity": nhwc, "Identity_1": np.zeros(3)})
    assert list(out) == ["y", "n"] and out["y"].shape == (1, 6, 4, 5)
    np.testing.assert_array_equal(out["y"], nchw)


def test_nothing_to_convert(tmp_path: Path) -> None:
    pb = tmp_path / "graph.pb"
    pb.write_bytes(b"\x0a\x00")
    with pytest.raises(ConversionError, match="nothing to convert: the source is already tf_graphdef"):
        convert_chain(pb, "pb", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fp16_targets_chain(tmp_path: Path) -> None:
    # ONNX → ONNX fp16 (a target) → OpenVINO from that fp16 model: each hop judged with the fp16 tolerance
    src = models.save(models.wide_mlp(), tmp_path / "wide.onnx")
    options = ChainOptions(ConvertOptions(precision=Precision.FP16, name="wide16"))
    chain = convert_chain(src, "onnx,openvino", tmp_path / "out", options=options)
    assert [h.label for h in chain.hops] == ["onnx → onnx", "onnx → openvino"]
    assert Path(chain.hops[1].conversion.source) == tmp_path / "out" / "wide16.onnx"
    for hop in chain.hops:
        assert hop.against_source is not None and hop.against_source.tolerance == Tolerance.for_precision("fp16")
        assert 0 < hop.against_source.max_abs < 1e-2
    assert chain.hops[1].against_previous is not None and chain.passed


def test_missing_engines_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now raises ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # also when an earlier test imported it
    with pytest.raises(RuntimeUnavailable, match=r"TensorFlow is not installed \(pip install 'modelport\[tf\]'\)"):
        convert_chain(saved, "onnx", tmp_path / "out")
    with pytest.raises(RuntimeUnavailable, match=r"LiteRT \(ai-edge-litert\) is not installed .*modelport\[tflite\]"):
        open_runner("litert", tflite).load()
    assert not (tmp_path / "out").exists()
