"""The shipped default model (modelport.assets): the files, their card, and the model's accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from modelport.assets import ModelCard, asset_path, default_model_metadata, default_model_path
from modelport.data.datasets import MNIST_MEAN, MNIST_STD, load_mnist
from modelport.data.metrics import topk_accuracy
from modelport.errors import InvalidInputError, ModelLoadError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_model() -> onnx.ModelProto:
    return onnx.load(str(default_model_path()))


def test_shipped_files_live_in_assets() -> None:
    path = default_model_path()
    assert path.parent.name == "assets" and path.parent.parent.name == "modelport"
    assert path == asset_path("mnist_convnet.onnx")
    assert (path.parent / "mnist_convnet.json").is_file()
    with pytest.raises(ModelLoadError, match=r"assets/absent\.onnx is missing"):
        asset_path("absent.onnx")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"assets/*.onnx", "assets/*.json"' in pyproject  # shipped as package data


def test_default_model_is_small_and_valid(default_model: onnx.ModelProto) -> None:
    path = default_model_path()
    assert path.name == "mnist_convnet.onnx"
    assert path.stat().st_size < 150 * 1024
    onnx.checker.check_model(default_model, full_check=True)
    assert {o.domain: o.version for o in default_model.opset_import}[""] == 17


def test_default_model_io_matches_card(default_model: onnx.ModelProto) -> None:
    card = default_model_metadata()
    (image,) = default_model.graph.input
    (logits,) = default_model.graph.output
    assert image.name == card.input == "image" and logits.name == card.output == "logits"
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 28, 28]
    assert [d.dim_param or d.dim_value for d in logits.type.tensor_type.shape.dim] == ["batch", 10]
    assert card.layout == "NCHW" and card.mean == (0.1307,) and card.std == (0.3081,) and card.scale == 1.0
    assert (card.mean, card.std) == (MNIST_MEAN, MNIST_STD)  # dataset sources normalise like the card
    assert card.labels == tuple(str(d) for d in range(10))
    assert card.task == "classification" and card.dataset == "mnist"
    assert card.script == "scripts/train_mnist.py"
    assert (REPO / card.script).is_file()
    assert card.trained_with.torch.startswith("2.") and card.trained_with.epochs >= 1


def test_default_model_keeps_batchnorm_and_dropout_for_the_optimizer_demo(
    default_model: onnx.ModelProto,
) -> None:
    ops = [n.op_type for n in default_model.graph.node]
    assert ops.count("BatchNormalization") == 3  # one after each Conv: `optimize` folds them into the Conv
    assert ops.count("Dropout") == 1  # identity at inference (no training_mode input): `optimize` removes it
    dropout = next(n for n in default_model.graph.node if n.op_type == "Dropout")
    assert len(dropout.input) == 2
    assert ops.count("Conv") == 3 and ops.count("Gemm") == 2


def test_default_model_accuracy_in_onnxruntime() -> None:
    card = default_model_metadata()
    mnist_test = load_mnist("test")
    session = ort.InferenceSession(str(default_model_path()), providers=["CPUExecutionProvider"])
    x = card.normalize(mnist_test.images)
    logits = np.concatenate(
        [session.run([card.output], {card.input: x[i : i + 1000]})[0] for i in range(0, len(x), 1000)]
    )
    assert logits.shape == (10_000, 10) and logits.dtype == np.float32
    top1 = topk_accuracy(logits, mnist_test.labels, 1)
    assert top1 >= 0.985
    assert abs(top1 - card.test_top1) <= 0.01
    assert topk_accuracy(logits, mnist_test.labels, 5) >= top1
    # the dynamic batch really is dynamic
    assert session.run(None, {"image": x[:3]})[0].shape == (3, 10)


def test_model_card_normalize_and_round_trip(tmp_path: Path) -> None:
    card = default_model_metadata()
    pixels = np.array([0.0, 0.1307, 1.0], dtype=np.float32).reshape(1, 1, 1, 3)
    np.testing.assert_allclose(card.normalize(pixels).ravel(), [-0.1307 / 0.3081, 0.0, 0.8693 / 0.3081], rtol=1e-6)
    with pytest.raises(InvalidInputError, match="NCHW"):
        card.normalize(np.zeros((2, 28, 28), dtype=np.float32))
    path = tmp_path / "card.json"
    path.write_text(card.to_json())
    assert ModelCard.from_json_file(path) == card


def test_model_card_errors(tmp_path: Path) -> None:
    data = default_model_metadata().to_dict()
    path = tmp_path / "card.json"
    del data["labels"]
    path.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="lacks the field 'labels'"):
        ModelCard.from_json_file(path)
    path.write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read model card"):
        ModelCard.from_json_file(path)
    with pytest.raises(ModelLoadError, match="not found"):
        ModelCard.from_json_file(tmp_path / "absent.json")
