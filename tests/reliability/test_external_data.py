"""External data is untrusted input: a location may not leave the model's folder, and its file must hold the bytes.

Every way out (``..``, an absolute path, a symlinked file or folder pointing outside), a location naming a folder, a
missing file and a short one (with or without ``length``) are refused with one ``ModelLoadError`` naming the tensor
and the location — by ``load_proto`` before any external byte is read, by the ONNX Runtime runner before ORT opens
the file, and by the CLI verbs (``inspect`` used to read a ``../`` model without complaint).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest

from modelport.backends import open_runner
from modelport.cli.main import main
from modelport.errors import ModelLoadError
from modelport.model_guard import check_model_file
from modelport.model_io import load_model, load_proto

N = 16
SECRET = np.arange(N, dtype=np.float32)


def _model(folder: Path, location: str, *, length: int | None = N * 4) -> Path:
    """``y = x + w`` with ``w`` (16 floats) stored externally at ``location``, saved as ``folder/m.onnx``."""
    folder.mkdir(parents=True, exist_ok=True)
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[N])
    w.data_location = onnx.TensorProto.EXTERNAL
    entries = [("location", location), ("offset", "0")] + ([("length", str(length))] if length is not None else [])
    for key, value in entries:
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [N])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [N])],
        [w],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    path = folder / "m.onnx"
    onnx.save(model, path)
    return path


def _dotdot(tmp: Path) -> Path:
    return _model(tmp / "model", "../secret.bin")


def _absolute(tmp: Path) -> Path:
    return _model(tmp / "model", str(tmp / "secret.bin"))


def _symlinked_file(tmp: Path) -> Path:
    (tmp / "model").mkdir()
    os.symlink(tmp / "secret.bin", tmp / "model" / "w.bin")
    return _model(tmp / "model", "w.bin")


def _symlinked_folder(tmp: Path) -> Path:
    (tmp / "model").mkdir()
    os.symlink(tmp, tmp / "model" / "up")
    return _model(tmp / "model", "up/secret.bin")


def _folder(tmp: Path) -> Path:
    (tmp / "model" / "weights").mkdir(parents=True)
    return _model(tmp / "model", "weights", length=None)


def _missing(tmp: Path) -> Path:
    return _model(tmp / "model", "nothere.bin")


def _short(tmp: Path) -> Path:
    (tmp / "model").mkdir()
    SECRET[:4].tofile(tmp / "model" / "w.bin")
    return _model(tmp / "model", "w.bin")


def _short_without_length(tmp: Path) -> Path:
    """No ``length``: the tensor's own size (16 floats = 64 bytes) must fit; ``onnx.load`` accepts this file."""
    (tmp / "model").mkdir()
    SECRET[:4].tofile(tmp / "model" / "w.bin")
    return _model(tmp / "model", "w.bin", length=None)


def _long_length(tmp: Path) -> Path:
    """A ``length`` over the tensor's size (a 1 TB read of a sparse file for 16 floats) is refused, not read."""
    (tmp / "model").mkdir()
    with open(tmp / "model" / "w.bin", "wb") as data:
        data.truncate(2**20)
    return _model(tmp / "model", "w.bin", length=2**20)


def _nul_byte(tmp: Path) -> Path:
    return _model(tmp / "model", "w\x00.bin")


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dotdot": (_dotdot, "climbs out of the model's folder"),
    "absolute": (_absolute, "is an absolute path"),
    "symlinked_file": (_symlinked_file, "outside the model's folder (a symlink)"),
    "symlinked_folder": (_symlinked_folder, "outside the model's folder (a symlink)"),
    "folder": (_folder, "is not a regular file"),
    "missing": (_missing, "is missing"),
    "short": (_short, "needs bytes 0–64, the file holds 16"),
    "short_without_length": (_short_without_length, "needs bytes 0–64, the file holds 16"),
    "long_length": (_long_length, "has length 1,048,576, its dims [16] need 64 bytes"),
    "nul_byte": (_nul_byte, "cannot be resolved"),
}


@pytest.fixture
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    SECRET.tofile(tmp_path / "secret.bin")
    build, expected = HOSTILE[request.param]
    return build(tmp_path), expected


@pytest.mark.parametrize("hostile", list(HOSTILE), indirect=True)
def test_load_refuses_hostile_external_data(hostile: tuple[Path, str]) -> None:
    path, expected = hostile
    for load in (load_proto, load_model, check_model_file):
        with pytest.raises(ModelLoadError) as info:
            load(path)
        message = str(info.value)
        assert expected in message and "tensor 'w'" in message, message
        assert info.value.path == path
    with pytest.raises(ModelLoadError, match="external data") as info:  # also when the data is not to be loaded
        load_proto(path, check=False, load_external_data=False)


@pytest.mark.parametrize("hostile", list(HOSTILE), indirect=True)
def test_onnxruntime_runner_refuses_hostile_external_data(hostile: tuple[Path, str]) -> None:
    path, expected = hostile
    with pytest.raises(ModelLoadError) as info, open_runner("onnxruntime", path):
        pass
    assert expected in str(info.value), info.value


def test_external_data_inside_the_folder_loads_and_runs(tmp_path: Path) -> None:
    (tmp_path / "model" / "sub").mkdir(parents=True)
    SECRET.tofile(tmp_path / "model" / "sub" / "w.bin")
    path = _model(tmp_path / "model", "sub/./w.bin")
    proto = load_proto(path)
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(proto.graph.initializer[0]), SECRET)
    with open_runner("onnxruntime", path) as runner:
        out = runner.infer({"x": np.ones(N, np.float32)})
    np.testing.assert_array_equal(out["y"], SECRET + 1)


@pytest.mark.parametrize("verb", ["inspect", "compare", "optimize"])
@pytest.mark.parametrize("hostile", ["dotdot", "symlinked_file", "short_without_length"], indirect=True)
def test_cli_verbs_refuse_hostile_external_data(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    hostile: tuple[Path, str],
    verb: str,
    tmp_path: Path,
) -> None:
    path, expected = hostile
    extra = {"compare": ["--runtimes", "onnxruntime,openvino"], "optimize": ["-o", str(tmp_path / "out.onnx")]}
    with caplog.at_level(logging.ERROR):
        code = main([verb, str(path), *extra.get(verb, [])])
    captured = capfd.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    assert lines[-1].startswith("modelport: error: ") and expected in lines[-1], lines
    assert not (tmp_path / "out.onnx").exists()


def test_a_linked_model_reads_beside_the_link(tmp_path: Path) -> None:
    """Engines look for external data beside the path they are given: so does the guard (a linked .onnx whose data
    lies beside its target, not beside the link, is refused as missing)."""
    (tmp_path / "real").mkdir()
    SECRET.tofile(tmp_path / "real" / "w.bin")
    target = _model(tmp_path / "real", "w.bin")
    (tmp_path / "link").mkdir()
    os.symlink(target, tmp_path / "link" / "m.onnx")
    with pytest.raises(ModelLoadError, match="is missing"):
        load_proto(tmp_path / "link" / "m.onnx")
    os.symlink(tmp_path / "real" / "w.bin", tmp_path / "link" / "w.bin")  # a link out of the link's folder
    with pytest.raises(ModelLoadError, match="a symlink"):
        load_proto(tmp_path / "link" / "m.onnx")
    assert load_proto(target).graph.initializer[0].raw_data == SECRET.tobytes()
