"""Readers: where samples come from and how they become a model's feeds (:func:`load_samples`).

Sources:

* an image folder — the images directly inside it (unlabelled), or class sub-folders (labelled: integer folder
  names are the labels themselves, other names are numbered in sorted order, as torchvision's ImageFolder does);
* a ``.npy`` (single-input models) or ``.npz`` (one array per input name, and an optional ``labels`` array);
* ``mnist[:split]`` and ``fashion-mnist[:split]`` from the local dataset packages (:mod:`modelport.data.datasets`);
* ``random``: seeded uniform feeds — calibration only, with a warning (statistics of noise, not of data);
* through the API, a :class:`~modelport.data.samples.SampleSet`, a mapping of arrays (or one array), or a
  callable returning an iterable of feed dicts, arrays or ``(feeds, label)`` pairs.

Images are turned into tensors by :mod:`modelport.data.preprocess`; the size, layout and channel count come from
the model's input, so only the normalisation needs to be given. Every set is checked against the model's inputs
(names, dtype, rank and fixed dims) before any engine sees it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.data.datasets import dataset_samples, parse_dataset
from modelport.data.preprocess import describe_preprocess, fit_preprocess, image_input
from modelport.data.samples import Role, SampleSet, check_samples
from modelport.errors import InvalidInputError, ModelLoadError
from modelport.inputs import ImagePreprocess, TensorSpec, image_to_tensor, random_feeds

log = logging.getLogger(__name__)

#: what a callable source may yield per item.
SampleItem = Mapping[str, np.ndarray] | np.ndarray | tuple[Any, Any]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
SOURCE_FORMS = "an image folder, a .npy/.npz file, mnist[:split], fashion-mnist[:split] or random"
#: samples of random calibration data when no number is asked for.
RANDOM_SAMPLES = 300


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
        limit: the number of samples wanted (None: all; for ``random``, :data:`RANDOM_SAMPLES` when None).
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
    if role == "evaluation" and samples.labels is not None and len(np.unique(samples.labels)) < 2:
        raise InvalidInputError(
            f"{samples.name}: labelled evaluation data with one class only ({', '.join(samples.classes) or 'one'}): "
            "top-1 on it measures nothing about a classifier",
            hint="give class sub-folders for at least two classes, or the images directly in the folder (unlabelled)",
        )
    if limit is not None and len(samples) < limit:
        warnings.append(
            f"{role} asked for {limit} samples but {samples.name} holds only {len(samples)}: using {len(samples)}"
        )
    samples = samples.take(limit, seed=seed)
    for w in warnings:
        log.warning("%s", w)
    log.debug("%s data: %s", role, samples.describe())
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
        return random_samples(specs, limit or RANDOM_SAMPLES, seed=seed)
    dataset = parse_dataset(text, role) if not Path(text).exists() else None
    if dataset is not None:
        return dataset_samples(*dataset, specs, pre, limit=limit, seed=seed)
    path = Path(text)
    if not path.exists():
        raise ModelLoadError(f"{role} source not found", path=path, hint=f"give {SOURCE_FORMS}")
    if path.is_dir():
        return load_image_folder(path, specs, pre, limit=limit, seed=seed)
    if path.suffix in (".npy", ".npz"):
        return load_feed_file(path, specs)
    raise InvalidInputError(f"cannot read {role} data from this file", path=path, hint=f"give {SOURCE_FORMS}")


# ----------------------------------------------------------------------------------------------------
# Image folders


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
    """Read (a seeded random ``limit`` of) the images of ``folder`` into a SampleSet for the model.

    Raises:
        InvalidInputError: no images, an undecodable image, a model input that is not an image, or a dynamic
            image size with no size given.
    """
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
# Feed files, random data, callables


def load_feed_file(path: Path, specs: Sequence[TensorSpec]) -> SampleSet:
    """A .npy (single-input models) or .npz (arrays by input name, optional ``labels``); never unpickles.

    Raises:
        InvalidInputError: an unreadable file, a .npy for a multi-input model, malformed labels, or arrays
            without a sample axis.
    """
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

    Raises:
        InvalidInputError: no items, items of another type, labels on some items only, or mismatched shapes.
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
