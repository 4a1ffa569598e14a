"""Calibration and evaluation data: where samples come from and how they become a model's feeds.

A :class:`SampleSet` holds one array per model input with the samples along axis 0, and optionally one integer
label per sample. Sources (:func:`load_samples`):

* an image folder — the images directly inside it (unlabelled), or class sub-folders (labelled: integer folder
  names are the labels themselves, other names are numbered in sorted order, as torchvision's ImageFolder does);
* a ``.npy`` (single-input models) or ``.npz`` (one array per input name, and an optional ``labels`` array);
* ``mnist[:split]`` and ``fashion-mnist[:split]`` from the local dataset packages (see :mod:`modelport.datasets`);
* ``random``: seeded uniform feeds — calibration only, with a warning (statistics of noise, not of data);
* through the API, a callable returning an iterable of feed dicts, arrays or ``(feeds, label)`` pairs, or an
  :class:`~modelport.evaluate.EvalSet`, a mapping of arrays, or a SampleSet.

Images are turned into tensors with :class:`~modelport.inputs.ImagePreprocess` (``compare``'s options); the
size, layout and channel count come from the model's input, so only the normalisation needs to be given.
Every set is checked against the model's inputs (names, dtype, rank and fixed dims) before any engine sees it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelport.errors import InvalidInputError, ModelLoadError
from modelport.inputs import ImagePreprocess, Layout, TensorSpec, image_to_tensor, random_feeds

log = logging.getLogger(__name__)

Role = Literal["calibration", "evaluation"]
#: what a callable source may yield per sample.
SampleItem = Mapping[str, np.ndarray] | np.ndarray | tuple[Any, int]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
DATASETS = {"mnist": ("train", "valid", "test"), "fashion-mnist": ("train", "test")}
#: the split each role reads when a dataset source names none (calibrate on training data, evaluate on test).
DEFAULT_SPLIT: Mapping[Role, str] = {"calibration": "train", "evaluation": "test"}
#: the normalisation of the shipped MNIST ConvNet (and of the usual PyTorch MNIST recipe), for dataset sources.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
SOURCE_FORMS = "an image folder, a .npy/.npz file, mnist[:split], fashion-mnist[:split] or random"


@dataclasses.dataclass(frozen=True, eq=False)
class SampleSet:
    """Samples for one model: one array per input (samples along axis 0) and optional labels.

    Attributes:
        name: where the samples came from, for reports (``"mnist:train"``, ``"images:photos/"`` …).
        inputs: input name → array ``N × <one sample's shape>``.
        labels: int64 labels, one per sample, or None.
        synthetic: True for random data (never a measure of accuracy).
        preprocessing: how images were turned into tensors, in words ("" for raw arrays).
        classes: class names by label, when the source has them.
    """

    name: str
    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray | None = None
    synthetic: bool = False
    preprocessing: str = ""
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.inputs:
            raise InvalidInputError(f"sample set {self.name!r} has no inputs")
        counts = {k: len(v) for k, v in self.inputs.items()}
        if len(set(counts.values())) != 1:
            raise InvalidInputError(f"sample set {self.name!r}: inputs hold different numbers of samples {counts}")
        if next(iter(counts.values())) == 0:
            raise InvalidInputError(f"sample set {self.name!r} is empty", hint="give at least one sample")
        if self.labels is not None and len(self.labels) != len(self):
            raise InvalidInputError(f"sample set {self.name!r}: {len(self.labels)} labels for {len(self)} samples")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def subset(self, indices: np.ndarray) -> SampleSet:
        """The samples at ``indices`` (in that order)."""
        return dataclasses.replace(
            self,
            inputs={k: v[indices] for k, v in self.inputs.items()},
            labels=None if self.labels is None else self.labels[indices],
        )

    def take(self, n: int | None, *, seed: int = 0) -> SampleSet:
        """``n`` samples drawn without replacement with ``seed`` (all of them, in order, when n is None or ≥ len).

        A random draw, not the first ``n``: sources sorted by class would otherwise calibrate on one class.
        """
        if n is None or n >= len(self):
            return self
        picked = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.subset(picked)

    def batches(self, batch: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of ``batch`` samples each (the last one shorter)."""
        for start in range(0, len(self), batch):
            yield {k: v[start : start + batch] for k, v in self.inputs.items()}

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {list(v.shape[1:])} {v.dtype}" for k, v in self.inputs.items())
        label = f", {len(set(self.labels.tolist()))} classes" if self.labels is not None else ", unlabelled"
        return f"{self.name}: {len(self)} samples ({shapes}{label})"


# ----------------------------------------------------------------------------------------------------
# Checking against the model


def check_samples(samples: SampleSet, specs: Sequence[TensorSpec]) -> None:
    """Check names, dtypes, rank and fixed per-sample dims against the model's inputs.

    Raises:
        InvalidInputError: naming the input, what the data holds and what the model expects (with a layout
            hint when the data is the transpose the model wants).
    """
    names = [s.name for s in specs]
    missing = [n for n in names if n not in samples.inputs]
    extra = sorted(set(samples.inputs) - set(names))
    if missing or extra:
        parts = ([f"missing input(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown input(s) {', '.join(extra)}"] if extra else []
        )
        raise InvalidInputError(
            f"{samples.name} does not match the model: " + "; ".join(parts),
            hint=f"the model's inputs are: {', '.join(names)}",
        )
    for spec in specs:
        arr = samples.inputs[spec.name]
        if np.dtype(arr.dtype) != np.dtype(spec.dtype):
            raise InvalidInputError(
                f"{samples.name}: input {spec.name!r} holds {arr.dtype}, the model expects {spec.dtype}",
                hint="cast the data to the model's dtype",
            )
        if spec.shape is None:
            continue
        want = spec.shape[1:]
        got = arr.shape[1:]
        ok = len(want) == len(got) and all(
            not (isinstance(w, int) and w >= 0) or w == g for w, g in zip(want, got, strict=True)
        )
        if not ok:
            raise InvalidInputError(
                f"{samples.name}: input {spec.name!r} samples have shape {list(got)}, the model expects "
                f"{_sample_text(spec)} per sample" + _layout_hint(want, got),
                hint="arrays hold samples along axis 0: N × the model's input shape without its batch dim",
            )


def _sample_text(spec: TensorSpec) -> str:
    dims = spec.shape[1:] if spec.shape else ()
    return "[" + ", ".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in dims) + "]"


def _layout_hint(want: Sequence[Any], got: Sequence[int]) -> str:
    if len(want) == 3 == len(got) and all(isinstance(w, int) for w in want):
        if tuple(got) == (want[1], want[2], want[0]):
            return "; the data looks NHWC and the model takes NCHW: transpose it (0, 3, 1, 2)"
        if tuple(got) == (want[2], want[0], want[1]):
            return "; the data looks NCHW and the model takes NHWC: transpose it (0, 2, 3, 1)"
    return ""


# ----------------------------------------------------------------------------------------------------
# Images


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """What an image input wants: its name, layout, channels, size (None: any) and dtype."""

    name: str
    layout: Layout
    channels: int
    size: tuple[int, int] | None
    dtype: str


def image_input(specs: Sequence[TensorSpec], source: str) -> ImageInput:
    """The model's single image input (4-D, 1 or 3 channels at dim 1 or 3).

    Raises:
        InvalidInputError: the model has several inputs, or its input is not an image.
    """
    if len(specs) != 1:
        raise InvalidInputError(
            f"{source} gives images, but the model has {len(specs)} inputs",
            hint="use an .npz with one array per input name",
        )
    spec = specs[0]
    shape = spec.shape
    if shape is None or len(shape) != 4:
        raise InvalidInputError(
            f"{source} gives images, but input {spec.name!r} is {spec.shape_text()}, not N×C×H×W or N×H×W×C",
            hint="use a .npy/.npz with the model's own input shape",
        )
    ch_first = shape[1] in (1, 3)
    ch_last = shape[3] in (1, 3)
    if not (ch_first or ch_last):
        raise InvalidInputError(
            f"{source} gives images, but input {spec.name!r} {spec.shape_text()} has no 1- or 3-channel axis",
            hint="use a .npy/.npz with the model's own input shape",
        )
    layout = Layout.NCHW if ch_first else Layout.NHWC
    dims = (shape[2], shape[3]) if layout is Layout.NCHW else (shape[1], shape[2])
    channels = int(shape[1] if layout is Layout.NCHW else shape[3])  # type: ignore[arg-type]
    h, w = dims
    size = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    return ImageInput(spec.name, layout, channels, size, spec.dtype)


def fit_preprocess(pre: ImagePreprocess | None, target: ImageInput) -> ImagePreprocess:
    """``pre`` with size, layout, colour and dtype taken from the model (normalisation kept from ``pre``)."""
    base = pre or ImagePreprocess()
    return dataclasses.replace(
        base,
        size=base.size or target.size,
        layout=target.layout,
        grayscale=target.channels == 1,
        dtype=target.dtype,
    )


def describe_preprocess(pre: ImagePreprocess) -> str:
    size = f"{pre.size[0]}×{pre.size[1]}" if pre.size else "original size"
    colour = "grayscale" if pre.grayscale else ("BGR" if pre.bgr else "RGB")
    return (
        f"{size}, {colour}, {pre.layout.value}, (pixels × {pre.scale:.6g} − mean {list(pre.mean)}) / std "
        f"{list(pre.std)}, {pre.dtype}"
    )


def pixels_to_tensors(pixels: np.ndarray, pre: ImagePreprocess) -> np.ndarray:
    """Turn ``N×H×W×C`` pixel arrays (0‥255) into model tensors following ``pre`` (vectorised when no resize)."""
    if pre.size is not None and tuple(pixels.shape[1:3]) != tuple(pre.size):
        return np.concatenate([image_to_tensor(p, pre) for p in pixels])
    x = pixels.astype(np.float32) * np.float32(pre.scale)
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, 1, 1, -1)
    std = np.asarray(pre.std, dtype=np.float32).reshape(1, 1, 1, -1)
    x = (x - mean) / std
    if pre.layout is Layout.NCHW:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x.astype(pre.dtype))


def _folder_images(folder: Path) -> tuple[list[Path], list[int] | None, tuple[str, ...]]:
    """Image files and labels: class sub-folders when there are any, else the files in ``folder``."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [d for d in subdirs if any(_is_image(f) for f in d.iterdir())]
    if classes:
        loose = [f for f in folder.iterdir() if _is_image(f)]
        if loose:
            log.warning("%s: %d images beside the class folders are ignored", folder, len(loose))
        names = [d.name for d in classes]
        numbered = all(n.isdigit() for n in names)
        files: list[Path] = []
        labels: list[int] = []
        for index, d in enumerate(classes):
            label = int(d.name) if numbered else index
            for f in sorted(d.iterdir()):
                if _is_image(f):
                    files.append(f)
                    labels.append(label)
        class_names = tuple(sorted(names, key=int)) if numbered else tuple(names)
        return files, labels, class_names
    return sorted(f for f in folder.iterdir() if _is_image(f)), None, ()


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def load_image_folder(
    folder: Path, specs: Sequence[TensorSpec], pre: ImagePreprocess | None, *, limit: int | None, seed: int
) -> SampleSet:
    """Read (a seeded random ``limit`` of) the images of ``folder`` into a SampleSet for the model."""
    import cv2

    target = image_input(specs, f"the image folder {folder}")
    files, labels, classes = _folder_images(folder)
    if not files:
        raise InvalidInputError(
            "no images in the folder", path=folder, hint=f"expected {', '.join(sorted(IMAGE_SUFFIXES))} files"
        )
    fitted = fit_preprocess(pre, target)
    if fitted.size is None:
        raise InvalidInputError(
            f"input {target.name!r} has a dynamic height/width: images need one size",
            hint="give --image-size H,W",
        )
    picked = np.arange(len(files))
    if limit is not None and limit < len(files):
        picked = np.sort(np.random.default_rng(seed).choice(len(files), size=limit, replace=False))
    flag = cv2.IMREAD_GRAYSCALE if fitted.grayscale else cv2.IMREAD_COLOR
    tensors = []
    for i in picked:
        img = cv2.imread(str(files[i]), flag)
        if img is None:
            raise InvalidInputError("cannot decode image", path=files[i], hint="use PNG, JPEG, BMP, TIFF or WebP")
        if not fitted.grayscale and not fitted.bgr:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        tensors.append(image_to_tensor(img, fitted))
    return SampleSet(
        name=f"images:{folder}",
        inputs={target.name: np.concatenate(tensors)},
        labels=None if labels is None else np.asarray(labels, dtype=np.int64)[picked],
        preprocessing=describe_preprocess(fitted),
        classes=classes,
    )


# ----------------------------------------------------------------------------------------------------
# Datasets, feed files, random data, callables


def load_dataset(
    name: str, split: str, specs: Sequence[TensorSpec], pre: ImagePreprocess | None, *, limit: int | None, seed: int
) -> SampleSet:
    """MNIST / Fashion-MNIST as feeds for the model (default normalisation: the shipped ConvNet's)."""
    from modelport.datasets import FASHION_MNIST_LABELS, MNIST_LABELS, load_fashion_mnist, load_mnist

    source = f"{name}:{split}"
    target = image_input(specs, source)
    if target.channels != 1:
        raise InvalidInputError(
            f"{source} holds 1-channel 28×28 images, the model's input {target.name!r} has {target.channels} channels",
            hint="calibrate with images or feeds that match the model",
        )
    data = load_mnist(split) if name == "mnist" else load_fashion_mnist(split)
    normalise = pre or ImagePreprocess(mean=MNIST_MEAN, std=MNIST_STD)
    fitted = fit_preprocess(normalise, target)
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


def load_feed_file(path: Path, specs: Sequence[TensorSpec]) -> SampleSet:
    """A .npy (single-input models) or .npz (arrays by input name, optional ``labels``); never unpickles."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k]) for k in data.files}
        else:
            arrays = {"": np.load(path, allow_pickle=False)}
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"cannot read samples: {exc}", path=path) from exc
    names = {s.name for s in specs}
    labels = arrays.pop("labels") if "labels" in arrays and "labels" not in names else None
    if "" in arrays:
        if len(specs) != 1:
            raise InvalidInputError(
                f"a .npy file fits single-input models; this one has {len(specs)} inputs",
                path=path,
                hint="use an .npz with one array per input name",
            )
        arrays = {specs[0].name: arrays.pop("")}
    if labels is not None and (labels.ndim != 1 or labels.dtype.kind not in "iu"):
        raise InvalidInputError(f"'labels' must be a 1-D integer array, found {labels.dtype} {labels.shape}", path=path)
    if any(a.ndim == 0 for a in arrays.values()):
        raise InvalidInputError("sample arrays need a leading sample axis", path=path)
    return SampleSet(f"feeds:{path.name}", arrays, None if labels is None else labels.astype(np.int64))


def random_samples(specs: Sequence[TensorSpec], n: int, *, seed: int) -> SampleSet:
    """``n`` seeded random samples (floats U(0, 1)); dynamic dims other than the batch must be fixed."""
    shaped = [dataclasses.replace(s, shape=(n, *s.shape[1:])) if s.shape else s for s in specs]
    return SampleSet("random", random_feeds(shaped, seed=seed), None, synthetic=True)


def from_items(items: Iterable[Any], specs: Sequence[TensorSpec], name: str = "callable") -> SampleSet:
    """Stack what a callable yields — feed dicts, arrays (single input) or ``(feeds, label)`` — into a SampleSet.

    Each item holds a batch (its leading dim) or one sample without the batch axis; items are concatenated along
    axis 0.
    """
    ranks = {s.name: len(s.shape) for s in specs if s.shape is not None}
    chunks: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    for item in items:
        feeds, label = item if isinstance(item, tuple) else (item, None)
        if isinstance(feeds, np.ndarray):
            if len(specs) != 1:
                raise InvalidInputError(f"{name} yields arrays, but the model has {len(specs)} inputs")
            feeds = {specs[0].name: feeds}
        if not isinstance(feeds, Mapping):
            raise InvalidInputError(f"{name} must yield feed dicts, arrays or (feeds, label) pairs, not {type(feeds)}")
        for k, v in feeds.items():
            arr = np.asarray(v)
            if ranks.get(k) == arr.ndim + 1:  # one sample without its batch axis
                arr = arr[None]
            chunks.setdefault(k, []).append(arr)
        if label is not None:
            labels.append(np.atleast_1d(np.asarray(label, dtype=np.int64)))
        elif labels:
            raise InvalidInputError(f"{name}: some items carry a label and some do not")
    if not chunks:
        raise InvalidInputError(f"{name} yielded no samples", hint="return an iterable of feed dicts")
    try:
        inputs = {k: np.concatenate(v) for k, v in chunks.items()}
    except ValueError as exc:
        raise InvalidInputError(f"{name}: samples of different shapes ({exc})") from exc
    return SampleSet(name, inputs, np.concatenate(labels) if labels else None)


# ----------------------------------------------------------------------------------------------------
# The entry point


def parse_dataset(text: str, role: Role) -> tuple[str, str] | None:
    """``"mnist"`` / ``"fashion-mnist:test"`` → (name, split); None when ``text`` names no dataset."""
    name, _, split = text.strip().lower().partition(":")
    name = name.replace("_", "-")
    if name not in DATASETS:
        return None
    split = split or DEFAULT_SPLIT[role]
    if split not in DATASETS[name]:
        raise InvalidInputError(f"{name} has no split {split!r}", hint=f"choose one of {', '.join(DATASETS[name])}")
    return name, split


def load_samples(
    source: Any,
    specs: Sequence[TensorSpec],
    *,
    role: Role = "calibration",
    limit: int | None = None,
    preprocess: ImagePreprocess | None = None,
    seed: int = 0,
) -> tuple[SampleSet, list[str]]:
    """Read a calibration or evaluation source into a checked SampleSet of at most ``limit`` samples.

    Args:
        source: see the module docstring.
        specs: the model's inputs.
        role: "calibration" or "evaluation" (random data may only calibrate; datasets default to train/test).
        limit: the number of samples wanted (None: all; for ``random``, 300 when None).
        preprocess: image normalisation (size, layout and channels come from the model).
        seed: seed of random draws and random data.

    Returns:
        The samples and the warnings to show (random data, fewer samples than asked for).

    Raises:
        InvalidInputError: an empty, unreadable or mismatched source, or random data for evaluation.
        ModelLoadError: a path that does not exist.
    """
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--samples must be ≥ 1, got {limit}")
    warnings: list[str] = []
    samples = _read_source(source, specs, role, limit, preprocess, seed, warnings)
    check_samples(samples, specs)
    if limit is not None and len(samples) < limit:
        warnings.append(
            f"{role} asked for {limit} samples but {samples.name} holds only {len(samples)}: using {len(samples)}"
        )
    samples = samples.take(limit, seed=seed)
    for w in warnings:
        log.warning("%s", w)
    return samples, warnings


def _read_source(
    source: Any,
    specs: Sequence[TensorSpec],
    role: Role,
    limit: int | None,
    pre: ImagePreprocess | None,
    seed: int,
    warnings: list[str],
) -> SampleSet:
    if isinstance(source, SampleSet):
        return source
    if isinstance(source, np.ndarray | Mapping):
        return from_items([source], specs, name="arrays")
    if hasattr(source, "inputs") and hasattr(source, "labels") and hasattr(source, "input_name"):  # an EvalSet
        return SampleSet(source.name, {source.input_name: source.inputs}, np.asarray(source.labels, np.int64))
    if callable(source):
        return from_items(source(), specs, name=getattr(source, "__name__", "callable"))
    if not isinstance(source, str | Path):
        raise InvalidInputError(f"unsupported {role} source of type {type(source).__name__}", hint=SOURCE_FORMS)
    text = str(source)
    if text.strip().lower() == "random" and not Path(text).exists():
        if role == "evaluation":
            raise InvalidInputError(
                "random data cannot measure accuracy", hint="evaluate on real data: " + SOURCE_FORMS
            )
        warnings.append(
            "calibrating on random data: the INT8 ranges describe noise, not real inputs, and accuracy may drop; "
            "calibrate with a few hundred real samples"
        )
        return random_samples(specs, limit or 300, seed=seed)
    dataset = parse_dataset(text, role) if not Path(text).exists() else None
    if dataset is not None:
        return load_dataset(*dataset, specs, pre, limit=limit, seed=seed)
    path = Path(text)
    if not path.exists():
        raise ModelLoadError(f"{role} source not found", path=path, hint=f"give {SOURCE_FORMS}")
    if path.is_dir():
        return load_image_folder(path, specs, pre, limit=limit, seed=seed)
    if path.suffix in (".npy", ".npz"):
        return load_feed_file(path, specs)
    raise InvalidInputError(f"cannot read {role} data from this file", path=path, hint=f"give {SOURCE_FORMS}")


def batch_for(specs: Sequence[TensorSpec], wanted: int) -> int:
    """The batch to feed: the model's fixed leading dim, else ``wanted``."""
    for spec in specs:
        if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0:
            return spec.shape[0]
    return wanted


def padded_batches(samples: SampleSet, batch: int, fixed: bool) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """(feeds, real count) of ``batch`` samples; a fixed-batch model gets its last batch padded with repeats."""
    for feeds in samples.batches(batch):
        n = len(next(iter(feeds.values())))
        if fixed and n < batch:
            feeds = {k: np.concatenate([v, np.repeat(v[-1:], batch - n, axis=0)]) for k, v in feeds.items()}
        yield feeds, n


def n_batches(samples: SampleSet, batch: int) -> int:
    return math.ceil(len(samples) / batch)
