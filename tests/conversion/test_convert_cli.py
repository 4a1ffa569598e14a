"""CLI: `convert` chains (hop table, JSON), its error paths, `edit tflite-json` round trip, `inspect` on TFLite and
SavedModel, and `port --to onnxruntime,openvino,tflite` on the shipped model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import models
from modelport.backends import open_runner
from modelport.cli.main import main
from modelport.conversion import ChainReport
from modelport.edit.tflite_json import FORMAT_TAG, json_to_tflite, tflite_to_json
from modelport.errors import InvalidInputError


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("modelport: error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelport.backends.tensorflow import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(0)
    w = tf.constant(rng.standard_normal((3, 3, 3, 64)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="image")])
    def net(image: Any) -> Any:
        return {"features": tf.nn.relu(tf.nn.conv2d(image, w, 1, "SAME"))}

    module = tf.Module()
    module.net = net
    path = tmp_path_factory.mktemp("cli-sm") / "net"
    tf.saved_model.save(module, str(path), signatures={"serving_default": net})
    return path


def test_chain_table_and_json(capsys: pytest.CaptureFixture[str], saved_model: Path, tmp_path: Path) -> None:
    args = [
        "convert",
        saved_model,
        "--to",
        "tflite,onnx",
        "--input-shape",
        "image:1,12,16,3",
        "--inputs-as-nchw",
        "image",
    ]
    code, out, err = run(capsys, *args, "-o", tmp_path / "a")
    assert code == 0, err
    assert "wrote" in out and "net.tflite" in out and "net.onnx" in out
    assert "saved_model → tflite" in out and "tflite → onnx" in out and "pass" in out
    code, out, err = run(capsys, *args, "-o", tmp_path / "b", "--json", "--optimize")
    assert code == 0, err
    report = ChainReport.from_json(out)
    assert [h.label for h in report.hops] == ["saved_model → tflite", "tflite → onnx"]
    assert report.passed and report.feeds == (("image", (1, 12, 16, 3), "float32"),)
    assert [f.value for f, _ in report.targets] == ["tflite", "onnx"]
    onnx_hop = report.hops[1]
    assert "inputs as NCHW: image" in onnx_hop.conversion.notes
    assert any(n.startswith("optimized by modelport: ") for n in onnx_hop.conversion.notes)  # then verified
    assert onnx_hop.against_previous is not None and onnx_hop.against_previous.max_abs < 1e-5


def test_convert_errors(capsys: pytest.CaptureFixture[str], saved_model: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "convert", saved_model, "--to", "tflite,caffe", "-o", out_dir)
    one_error(code, err, "unknown format 'caffe'")
    code, _, err = run(capsys, "convert", saved_model, "--to", "keras", "--via", "onnx", "-o", out_dir)
    one_error(code, err, "no converter from onnx to keras")
    # converted, then the verification fails on the --input-shape given: the ONNX file already written is removed
    code, _, err = run(capsys, "convert", saved_model, "--to", "onnx", "--input-shape", "image:1,8,8", "-o", out_dir)
    one_error(code, err, "--input-shape for 'image' has rank 3")
    # with no --input-shape the free dims get sizes chosen here, and the ONNX model is shown to stay dynamic
    code, out, err = run(capsys, "convert", saved_model, "--to", "onnx", "--json", "-o", tmp_path / "dyn")
    assert code == 0, err
    notes = json.loads(out)["notes"]
    assert any(n.startswith("dynamic artifact: also verified at image[2, 96, 96, 3]") for n in notes), notes
    code, _, err = run(capsys, "convert", saved_model, "--to", "tflite", "--input-shape", "nope:1,2,2,3", "-o", out_dir)
    one_error(code, err, "--input-shape names unknown input(s) nope", "image")
    mlp = models.save(models.mlp(), tmp_path / "mlp.onnx")
    code, _, err = run(capsys, "convert", mlp, "--to", "onnx", "--dynamic-axes", "x", "-o", out_dir)
    one_error(code, err, "cannot parse --dynamic-axes 'x'")
    code, _, err = run(capsys, "convert", "torch_nets:convnet", "--to", "onnx", "-o", out_dir)
    one_error(code, err, "PyTorch export needs a shape for input 'image'")
    code, _, err = run(capsys, "convert", mlp, "--to", "openvino", "--feeds", tmp_path / "none.npz", "-o", out_dir)
    one_error(code, err, "feed file not found")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_edit_tflite_json_round_trip(capsys: pytest.CaptureFixture[str], saved_model: Path, tmp_path: Path) -> None:
    code, _, err = run(
        capsys, "convert", saved_model, "--to", "tflite", "--input-shape", "image:1,8,8,3", "-o", tmp_path
    )
    assert code == 0, err
    tflite = tmp_path / "net.tflite"
    code, out, err = run(capsys, "edit", "tflite-json", tflite, "-o", tmp_path / "net.json")
    assert code == 0 and "wrote" in out, err
    doc = json.loads((tmp_path / "net.json").read_text())
    assert doc["format"] == FORMAT_TAG and doc["model"]["__type__"] == "ModelT"
    # edit as text: rename the output tensor, then pack it back
    graph = doc["model"]["subgraphs"][0]
    graph["tensors"][graph["outputs"][0]]["name"] = "renamed_features"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    code, out, err = run(capsys, "edit", "tflite-json", edited, "-o", tmp_path / "edited.tflite")
    assert code == 0, err
    x = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)
    with open_runner("litert", tflite) as a, open_runner("litert", tmp_path / "edited.tflite") as b:
        want, got = a.infer({"image": x}), b.infer({"image": x})
    np.testing.assert_array_equal(next(iter(got.values())), next(iter(want.values())))
    # untouched JSON → TFLite → JSON is the same document
    json_to_tflite(tmp_path / "net.json", tmp_path / "again.tflite")
    assert tflite_to_json(tmp_path / "again.tflite") == (tmp_path / "net.json").read_text()
    code, _, err = run(
        capsys, "edit", "tflite-json", models.save(models.mlp(), tmp_path / "m.onnx"), "-o", tmp_path / "x"
    )
    one_error(code, err, "not a TFLite JSON written by modelport")
    with pytest.raises(InvalidInputError, match="refusing to overwrite the input"):
        json_to_tflite(edited, edited)


def test_inspect_tflite_and_saved_model(capsys: pytest.CaptureFixture[str], saved_model: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "inspect", saved_model)
    assert code == 0, err
    assert "signature 'serving_default'" in out and "[-1, -1, -1, 3]" in out and "features" in out
    from modelport.backends.tensorflow import import_tensorflow

    tf = import_tensorflow()
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range int8 weights: quantized tensors to show
    (tmp_path / "q.tflite").write_bytes(conv.convert())
    code, out, err = run(capsys, "inspect", tmp_path / "q.tflite", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["format"] == "tflite" and data["inputs"][0]["shape"] == [None, None, None, 3]
    assert any(q["dtype"] == "int8" and len(q["scales"]) == 64 and q["axis"] >= 0 for q in data["quantized"])
    assert data["signatures"][0]["inputs"][0]["name"] == "image"
    code, out, _ = run(capsys, "inspect", tmp_path / "q.tflite")
    assert "quantization (scale, zero point)" in out and "CONV_2D" in out


@pytest.mark.slow
def test_port_to_onnxruntime_openvino_tflite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from modelport.porting.pipeline import PortReport

    args = ["--to", "onnxruntime,openvino,tflite", "--precision", "fp32", "--seconds", "0.2", "--eval-limit", "500"]
    code, out, err = run(capsys, "port", *args, "-o", tmp_path)
    assert code == 0, err
    assert "litert/fp32" in out and "verified" in out
    report = PortReport.from_json((tmp_path / "report.json").read_text())
    assert [t.label for t in report.targets] == ["onnxruntime/fp32", "openvino/fp32", "litert/fp32"]
    assert report.passed and all(t.status == "verified" for t in report.targets)
    lite = report.targets[2]
    assert lite.artifact.endswith("targets/litert-fp32/model.tflite")
    assert lite.accuracy is not None and report.source_accuracy is not None
    assert lite.accuracy.top1 == report.source_accuracy.top1  # same predictions on the 500 test digits
