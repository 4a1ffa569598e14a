"""A pickle is code: PyTorch files load with ``weights_only=True`` and anything more needs ``--trust-remote-code``.

The payloads here only create a marker file (``builtins.open(marker, "w")``); the tests prove the marker never
appears without the flag — through the CLI (``inspect``, ``convert``, ``compare``) and the API — and that the flag
lifts the refusal (the payload then runs and modelport reports that the file held no model). An ExportedProgram
archive (``.pt2``) is a pickle container too: ``torch.export.load`` falls back to the full unpickler for its sample
inputs, so a crafted one is refused the same way.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import models
from modelport.backends import open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.torch import load_torch_model
from modelport.cli.main import main
from modelport.conversion import convert
from modelport.errors import ModelLoadError


class _Payload:
    """Unpickles into ``open(marker, "w")``: harmless, but proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.fixture
def evil_pt(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    path = tmp_path / "model.pt"
    torch.save(_Payload(marker), path)
    assert zipfile.is_zipfile(path) and not marker.exists()
    return path, marker


@pytest.fixture(scope="module")
def good_pt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "net.pt2"
    torch.export.save(torch.export.export(_Net().eval(), (torch.zeros(1, 3),)), str(path))
    return path


def _with_evil_sample_inputs(good: Path, dest: Path, marker: Path) -> Path:
    """A copy of an ExportedProgram archive whose sample inputs are the payload."""
    blob = io.BytesIO()
    torch.save(_Payload(marker), blob)
    replaced = 0
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dest, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("sample_inputs/model.pt"):
                data, replaced = blob.getvalue(), replaced + 1
            dst.writestr(item, data)
    assert replaced == 1
    return dest


def _cli(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, *args: str | Path) -> tuple[int, str]:
    with caplog.at_level(logging.ERROR):
        code = main([str(a) for a in args])
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    return code, (err.strip().splitlines() or [""])[-1]


def test_api_refuses_a_malicious_pickle(evil_pt: tuple[Path, Path], tmp_path: Path) -> None:
    path, marker = evil_pt
    with pytest.raises(ModelLoadError, match="unpickling it would run code") as info:
        load_torch_model(path)
    assert "--trust-remote-code" in str(info.value)
    with pytest.raises(ModelLoadError, match="unpickling it would run code"), open_runner("torch", path):
        pass
    with pytest.raises(ModelLoadError, match="unpickling it would run code"):
        convert(path, "onnx", tmp_path / "out")
    assert not marker.exists()


@pytest.mark.parametrize("verb", ["inspect", "convert", "compare"])
def test_cli_refuses_a_malicious_pickle(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    evil_pt: tuple[Path, Path],
    tmp_path: Path,
    verb: str,
) -> None:
    path, marker = evil_pt
    onnx_model = models.save(models.mlp(), tmp_path / "mlp.onnx")
    every: dict[str, list[str | Path]] = {
        "inspect": [path],
        "convert": [path, "--to", "onnx", "-o", tmp_path / "out", "--input-shape", "x:1,3"],
        "compare": [path, onnx_model, "--runtimes", "torch", "--input-shape", "x:1,3"],
    }
    code, line = _cli(capfd, caplog, verb, *every[verb])
    assert code == 2 and line.startswith("modelport: error: ") and str(path) in line, line
    assert not marker.exists()


def test_trust_remote_code_lifts_the_refusal(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, evil_pt: tuple[Path, Path], tmp_path: Path
) -> None:
    path, marker = evil_pt
    args = ("convert", path, "--to", "onnx", "-o", tmp_path / "out", "--input-shape", "x:1,3")
    code, line = _cli(capfd, caplog, *args)
    assert code == 2 and "unpickling it would run code" in line and not marker.exists()
    code, line = _cli(capfd, caplog, *args, "--trust-remote-code")
    assert marker.exists(), "the payload did not run with --trust-remote-code"
    assert code == 2 and "holds a TextIOWrapper, not a model" in line, line
    marker.unlink()
    with pytest.raises(ModelLoadError, match="not a model"):
        load_torch_model(path, trust_remote_code=True)
    assert marker.exists()


def test_a_pickled_module_loads_only_when_trusted(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    net = _Net().eval()
    torch.save(net, path)
    with pytest.raises(ModelLoadError, match="unpickling it would run code"):
        load_torch_model(path)
    x = np.ones((1, 3), np.float32)
    with open_runner("torch", path, loader=LoaderOptions(trust_remote_code=True)) as runner:
        out = next(iter(runner.infer({"x": x}).values()))
    np.testing.assert_allclose(out, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)


@pytest.mark.slow  # torch.export takes several seconds
def test_exported_program_with_a_pickled_payload_is_refused(good_pt2: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = _with_evil_sample_inputs(good_pt2, tmp_path / "evil.pt2", marker)
    with pytest.raises(ModelLoadError, match=r"holds pickled Python objects \(.*sample_inputs/model\.pt\)") as info:
        load_torch_model(evil)
    assert "--trust-remote-code" in str(info.value) and not marker.exists()
    with pytest.raises(ModelLoadError, match="holds pickled Python objects"), open_runner("torch", evil):
        pass
    assert not marker.exists()
    _module, kind, specs = load_torch_model(good_pt2)  # an ordinary archive loads without the flag
    assert kind == "exported_program" and specs[0].shape == (1, 3)
    with pytest.raises(ModelLoadError):  # trusted: torch's full unpickler runs the payload
        load_torch_model(evil, trust_remote_code=True)
    assert marker.exists()
