"""Model I/O: loading, atomic saving, external data, format sniffing and load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper
import onnx_ir as ir
import pytest
from onnx import numpy_helper

import models
from modelport.errors import ModelLoadError, ModelportError
from modelport.formats import Format, sniff_format
from modelport.model_io import (
    atomic_files,
    atomic_path,
    external_data_files,
    load_model,
    load_proto,
    save_model,
    write_text,
)


def _weights(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def _leftovers(directory: Path) -> list[str]:
    """Hidden temporary/staging entries that atomic writes must never leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


# --- load / save -------------------------------------------------------------------------------------


def test_load_save_round_trip_ir(tmp_path: Path) -> None:
    src = models.save(models.mlp(), tmp_path / "mlp.onnx")
    model = load_model(src)
    assert isinstance(model, ir.Model)
    assert [v.name for v in model.graph.inputs] == ["x"]
    assert [n.op_type for n in model.graph] == ["MatMul", "Add", "Relu", "MatMul"]

    out = save_model(model, tmp_path / "out" / "copy.onnx", source=src)
    assert out == tmp_path / "out" / "copy.onnx"
    again = load_proto(out)
    original = onnx.load(str(src))
    assert [n.op_type for n in again.graph.node] == [n.op_type for n in original.graph.node]
    w0, w1 = _weights(original), _weights(again)
    assert w0.keys() == w1.keys()
    for name in w0:
        np.testing.assert_array_equal(w0[name], w1[name])
    assert _leftovers(tmp_path / "out") == []


def test_save_proto_round_trip(tmp_path: Path) -> None:
    proto = models.two_inputs()
    path = save_model(proto, tmp_path / "two.onnx")
    assert load_proto(path).SerializeToString() == proto.SerializeToString()


def test_save_with_external_data(tmp_path: Path) -> None:
    proto = models.wide_mlp()
    before = proto.SerializeToString()
    path = save_model(proto, tmp_path / "wide.onnx", external_data=True)

    assert external_data_files(path) == ["wide.onnx.data"]
    data = tmp_path / "wide.onnx.data"
    assert data.is_file()
    # the weights (≥ 1 KiB each) live in the data file, not in the protobuf
    assert data.stat().st_size >= 64 * 256 * 4
    assert path.stat().st_size < 4096
    assert _leftovers(tmp_path) == []

    loaded = load_proto(path)
    for name, arr in _weights(proto).items():
        np.testing.assert_array_equal(_weights(loaded)[name], arr)
    # the caller's model is not modified by saving it (it still holds its weights in memory)
    assert proto.SerializeToString() == before


def test_inspect_external_data(tmp_path: Path) -> None:
    from modelport.inspection import inspect

    path = save_model(models.wide_mlp(), tmp_path / "wide.onnx", external_data=True)
    summary = inspect(path)
    assert summary.external_data == ("wide.onnx.data",)
    assert summary.parameter_count == 64 * 256 + 256 + 256 * 10
    assert summary.parameter_bytes == 4 * summary.parameter_count
    assert [s.name for s in summary.inputs] == ["x"] and summary.inputs[0].shape == ("batch", 64)
    assert summary.opsets == (("ai.onnx", 17),)
    assert dict(summary.op_histogram) == {"MatMul": 2, "Add": 1, "Relu": 1}


def test_save_without_external_data_has_no_data_file(tmp_path: Path) -> None:
    path = save_model(models.wide_mlp(), tmp_path / "wide.onnx", external_data=False)
    assert external_data_files(path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.onnx"]


def test_save_refuses_to_overwrite_source(tmp_path: Path) -> None:
    src = models.save(models.mlp(), tmp_path / "m.onnx")
    original = src.read_bytes()
    with pytest.raises(ModelportError, match="refusing to overwrite the input model"):
        save_model(models.mlp(seed=3), tmp_path / "." / "m.onnx", source=src)
    assert src.read_bytes() == original


# --- atomic writes -----------------------------------------------------------------------------------


def test_atomic_path_failure_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(dest) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_keeps_previous_file(tmp_path: Path) -> None:
    dest = write_text(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("new")
        raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_nothing_written_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelportError, match="nothing was written"), atomic_path(tmp_path / "x.bin"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_directory(tmp_path: Path) -> None:
    dest = tmp_path / "dir"
    dest.mkdir()
    (dest / "stale").write_text("x")
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "fresh").write_text("y")
    assert sorted(p.name for p in dest.iterdir()) == ["fresh"]
    assert _leftovers(tmp_path) == []


def test_atomic_files_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    with pytest.raises(RuntimeError), atomic_files(out) as staging:
        (staging / "model.xml").write_text("<net/>")
        raise RuntimeError("engine crashed")
    assert list(out.iterdir()) == []


def test_atomic_files_moves_every_file(tmp_path: Path) -> None:
    with atomic_files(tmp_path) as staging:
        (staging / "model.xml").write_text("<net/>")
        (staging / "model.bin").write_bytes(b"\0" * 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]


# --- format sniffing ---------------------------------------------------------------------------------


def test_sniff_onnx(tmp_path: Path) -> None:
    assert sniff_format(models.save(models.mlp(), tmp_path / "m.onnx")) is Format.ONNX
    # by content, not by name
    assert sniff_format(models.save(models.mlp(), tmp_path / "m.bin")) is Format.ONNX


def test_sniff_openvino_xml(tmp_path: Path) -> None:
    p = tmp_path / "model.xml"
    p.write_text('<?xml version="1.0"?>\n<net name="m" version="11">\n<layers/>\n</net>\n')
    assert sniff_format(p) is Format.OPENVINO_IR


def test_sniff_other_xml_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "config.xml"
    p.write_text('<?xml version="1.0"?>\n<config><a/></config>\n')
    with pytest.raises(ModelLoadError, match="not an OpenVINO IR"):
        sniff_format(p)


def test_sniff_tflite(tmp_path: Path) -> None:
    p = tmp_path / "model.tflite"
    p.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(56))
    assert sniff_format(p) is Format.TFLITE


def test_sniff_saved_model_dir(tmp_path: Path) -> None:
    d = tmp_path / "saved"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(b"\x08\x01")
    assert sniff_format(d) is Format.SAVED_MODEL


def test_sniff_plain_dir_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a SavedModel"):
        sniff_format(tmp_path)


def test_sniff_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="file is empty"):
        sniff_format(p)


def test_sniff_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "noise.dat"
    p.write_bytes(b"\xff\xfe" + np.random.default_rng(0).bytes(200))
    with pytest.raises(ModelLoadError, match="not a model file modelport recognises"):
        sniff_format(p)


def test_sniff_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="file not found") as info:
        sniff_format(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(info.value)


# --- load errors -------------------------------------------------------------------------------------


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="file not found"):
        load_model(tmp_path / "missing.onnx")


def test_load_text_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.onnx"
    p.write_text("hello, this is not a model\n")
    with pytest.raises(ModelLoadError) as info:
        load_model(p)
    assert "notes.onnx" in str(info.value)


def test_load_wrong_format(tmp_path: Path) -> None:
    p = tmp_path / "model.xml"
    p.write_text('<?xml version="1.0"?>\n<net name="m" version="11"></net>\n')
    with pytest.raises(ModelLoadError, match="expected an ONNX model, found openvino"):
        load_proto(p)


def test_load_truncated_onnx(tmp_path: Path) -> None:
    data = models.wide_mlp().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"not a valid ONNX protobuf \(truncated or corrupt\)") as info:
        load_model(p)
    assert "cut.onnx" in str(info.value)


def test_load_checker_failure(tmp_path: Path) -> None:
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["undefined_tensor"], ["y"])],
        "bad",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    proto.ir_version = 8
    p = tmp_path / "bad.onnx"
    p.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"fails onnx\.checker") as info:
        load_model(p)
    message = str(info.value)
    assert "undefined_tensor" in message
    assert "\n" not in message
    # check=False loads it anyway (inspect uses that)
    assert len(load_proto(p, check=False).graph.node) == 1
