"""PyTorch runner: eager module from package.module:factory, TorchScript, ExportedProgram, pickles, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "convert"))
import torch_nets
from modelport.backends import open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.runner import RunnerOptions
from modelport.backends.torch import TorchRunner, is_module_spec, torch_file_kind
from modelport.errors import InvalidInputError, ModelLoadError

X = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)


def _want() -> np.ndarray:
    with torch.no_grad():
        return torch_nets.convnet()(torch.from_numpy(X)).numpy()


def test_factory_with_examples() -> None:
    assert is_module_spec("torch_nets:convnet") and not is_module_spec("model.onnx")
    with open_runner("torch", "torch_nets:convnet_with_examples", RunnerOptions(threads=1)) as runner:
        (spec,) = runner.input_specs
        assert spec.name == "image" and spec.shape == (2, 3, 16, 16) and spec.dtype == "float32"
        out = runner.infer({"image": X})
        info = runner.info()
    assert list(out) == ["output"]
    np.testing.assert_allclose(out["output"], _want(), rtol=1e-6, atol=1e-6)
    assert info.threads == 1 and dict(info.details)["mode"] == "eager"


def test_factory_needs_shapes_and_two_outputs() -> None:
    with TorchRunner("torch_nets:two_outputs") as runner:
        assert [s.name for s in runner.input_specs] == ["a", "b"] and runner.input_specs[0].shape is None
        a = np.ones((2, 6), np.float32)
        out = runner.infer({"a": a, "b": np.zeros((2, 3), np.float32)})
    assert list(out) == ["output_0", "output_1"] and out["output_1"].shape == (2,)
    with TorchRunner(
        "torch_nets:convnet", loader=LoaderOptions.build(input_shapes={"image": (1, 3, 16, 16)})
    ) as runner:
        assert runner.input_specs[0].shape == (1, 3, 16, 16)


@pytest.mark.slow  # torch.export takes ~10 s here
def test_torchscript_and_exported_program(tmp_path: Path) -> None:
    model = torch_nets.convnet()
    ts, ep = tmp_path / "net.pt", tmp_path / "net.pt2"
    torch.jit.script(model).save(str(ts))
    torch.export.save(torch.export.export(model, (torch.from_numpy(X),)), str(ep))
    assert torch_file_kind(ts) == "torchscript" and torch_file_kind(ep) == "exported_program"
    for path, mode in ((ts, "torchscript"), (ep, "exported_program")):
        with open_runner("pytorch", path) as runner:
            assert runner.input_specs[0].name in ("image", "x", "input")
            out = runner.infer({runner.input_specs[0].name: X})
            assert dict(runner.info().details)["mode"] == mode
        np.testing.assert_allclose(next(iter(out.values())), _want(), rtol=1e-5, atol=1e-6)


def test_pickles(tmp_path: Path) -> None:
    pickled, weights = tmp_path / "model.pt", tmp_path / "weights.pt"
    torch.save(torch_nets.convnet(), pickled)
    torch.save(torch_nets.convnet().state_dict(), weights)
    with pytest.raises(ModelLoadError, match="unpickling it would run code") as info, TorchRunner(pickled):
        pass
    assert "--trust-remote-code" in str(info.value)
    with TorchRunner(pickled, loader=LoaderOptions(trust_remote_code=True)) as runner:
        out = runner.infer({"image": X})
    np.testing.assert_allclose(out["output"], _want(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ModelLoadError, match="holds a OrderedDict, not a model"), TorchRunner(weights):
        pass


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot import torch_nets:nope"), TorchRunner("torch_nets:nope"):
        pass
    with pytest.raises(ModelLoadError, match=r"returned object, not a torch\.nn\.Module"):
        TorchRunner("torch_nets:not_a_module").load()
    with TorchRunner("torch_nets:convnet") as runner, pytest.raises(InvalidInputError, match="unknown rank"):
        from modelport.inputs import random_feeds

        random_feeds(runner.input_specs)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="not a PyTorch archive"), TorchRunner(junk):
        pass
