"""The small default models shipped with modelport, and their cards.

``mnist_convnet.onnx`` is a three-block MNIST ConvNet (about 100 KB, opset 17, dynamic batch) made by
``scripts/train_mnist.py``; ``mnist_convnet.json`` is its :class:`ModelCard`: input/output names, layout, the
normalisation ``(x · scale − mean) / std`` it was trained with, class names, measured test top-1 and how it was
trained. ``census_stereo.onnx`` is the ``depth`` app's default stereo network (72 KB, no trained weights: soft
census cost volume, guided-filter aggregation, sub-pixel argmin, left-right check and fill), built by
``scripts/build_stereo_net.py``; ``census_stereo.json`` holds its I/O contract and measured accuracy. All are
package data of ``modelport.assets``.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError, ModelLoadError

#: The shipped default model and its card, inside this package.
DEFAULT_MODEL_NAME = "mnist_convnet.onnx"
DEFAULT_MODEL_CARD_NAME = "mnist_convnet.json"


@dataclass(frozen=True)
class TrainingInfo:
    """How the shipped model was trained.

    Attributes:
        torch: the torch version used.
        epochs: number of passes over the training split.
        seed: the RNG seed.
        optimizer: optimizer and schedule, in words (e.g. ``"AdamW(lr=3e-3, wd=1e-4) + OneCycleLR"``).
        batch_size: training batch size.
    """

    torch: str
    epochs: int
    seed: int
    optimizer: str
    batch_size: int


@dataclass(frozen=True)
class ModelCard:
    """What the shipped model is and how to feed it (parsed from ``mnist_convnet.json``).

    Attributes:
        name: the model's name.
        task: ``"classification"``.
        dataset: the dataset it was trained on (``"mnist"``).
        input: the input tensor's name.
        output: the output tensor's name (logits).
        layout: ``"NCHW"``.
        mean: per-channel mean subtracted after scaling.
        std: per-channel standard deviation divided by.
        scale: factor applied to raw pixels first (1.0: pixels are already in [0, 1]).
        labels: class names by index.
        test_top1: measured top-1 accuracy on the test split, in [0, 1].
        trained_with: how it was trained.
        script: the script that made it, relative to the repository root.
    """

    name: str
    task: str
    dataset: str
    input: str
    output: str
    layout: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float
    labels: tuple[str, ...]
    test_top1: float
    trained_with: TrainingInfo
    script: str

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Turn ``N×C×H×W`` pixels into the model's input: ``(x * scale - mean) / std``, float32."""
        if images.ndim != 4 or images.shape[1] != len(self.mean):
            raise InvalidInputError(
                f"expected N×{len(self.mean)}×H×W images, got shape {images.shape}", hint="layout is NCHW"
            )
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return ((images.astype(np.float32) * np.float32(self.scale) - mean) / std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists for tuples)."""
        return {
            "name": self.name,
            "task": self.task,
            "dataset": self.dataset,
            "input": self.input,
            "output": self.output,
            "layout": self.layout,
            "mean": list(self.mean),
            "std": list(self.std),
            "scale": self.scale,
            "labels": list(self.labels),
            "test_top1": self.test_top1,
            "trained_with": {
                "torch": self.trained_with.torch,
                "epochs": self.trained_with.epochs,
                "seed": self.trained_with.seed,
                "optimizer": self.trained_with.optimizer,
                "batch_size": self.trained_with.batch_size,
            },
            "script": self.script,
        }

    def to_json(self) -> str:
        """Pretty-printed JSON, newline-terminated."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path | None = None) -> ModelCard:
        """Build a card from parsed JSON, checking every field.

        Raises:
            ModelLoadError: a field is missing or has the wrong type.
        """
        try:
            trained = data["trained_with"]
            card = cls(
                name=str(data["name"]),
                task=str(data["task"]),
                dataset=str(data["dataset"]),
                input=str(data["input"]),
                output=str(data["output"]),
                layout=str(data["layout"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                scale=float(data["scale"]),
                labels=tuple(str(v) for v in data["labels"]),
                test_top1=float(data["test_top1"]),
                trained_with=TrainingInfo(
                    torch=str(trained["torch"]),
                    epochs=int(trained["epochs"]),
                    seed=int(trained["seed"]),
                    optimizer=str(trained["optimizer"]),
                    batch_size=int(trained["batch_size"]),
                ),
                script=str(data["script"]),
            )
        except KeyError as exc:
            raise ModelLoadError(f"model card lacks the field {exc.args[0]!r}", path=path) from exc
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"model card has a malformed field: {exc}", path=path) from exc
        if len(card.mean) != len(card.std) or not all(s > 0 for s in card.std):
            raise ModelLoadError("model card needs one positive std per mean", path=path)
        return card

    @classmethod
    def from_json_file(cls, path: str | Path) -> ModelCard:
        """Read a card from a JSON file.

        Raises:
            ModelLoadError: missing file, invalid JSON, or a missing/malformed field.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelLoadError("model card not found", path=p) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"cannot read model card: {exc}", path=p) from exc
        if not isinstance(data, dict):
            raise ModelLoadError("model card must be a JSON object", path=p)
        return cls.from_dict(data, path=p)


def asset_path(name: str) -> Path:
    """Path of a file shipped in ``modelport/assets/``.

    Raises:
        ModelLoadError: the file is missing from the installation.
    """
    resource = importlib.resources.files(__name__) / name
    if not isinstance(resource, Path) or not resource.is_file():
        raise ModelLoadError(
            f"the shipped file assets/{name} is missing from the modelport package",
            hint="reinstall modelport, or rebuild it with scripts/train_mnist.py",
            path=str(resource),
        )
    return resource


def default_model_path() -> Path:
    """Path of the shipped default model, ``modelport/assets/mnist_convnet.onnx`` (a small MNIST ConvNet).

    Raises:
        ModelLoadError: the file is missing from the installation.
    """
    return asset_path(DEFAULT_MODEL_NAME)


def default_model_metadata() -> ModelCard:
    """The shipped default model's card (``modelport/assets/mnist_convnet.json``).

    Raises:
        ModelLoadError: the file is missing or malformed.
    """
    return ModelCard.from_json_file(asset_path(DEFAULT_MODEL_CARD_NAME))


__all__ = [
    "DEFAULT_MODEL_CARD_NAME",
    "DEFAULT_MODEL_NAME",
    "ModelCard",
    "TrainingInfo",
    "asset_path",
    "default_model_metadata",
    "default_model_path",
]
