"""``classify``: an image classifier on any runtime — top-k per image, and accuracy on a labelled folder tree.

The images are read as RGB, resized and normalised for the model's image input
(:mod:`modelport.data.preprocess`: the size, layout and channel count come from the input, the normalisation from
the options, else from the model's card ``<model>.json`` when it has one, else ``pixels / 255`` — raw pixels
for an 8-bit input, ``p`` for uint8 and ``p − 128`` for int8), and run through
:func:`modelport.data.evaluate.run_samples` in batches (the model's fixed batch, padded; else ``options.batch``).

Scores. The model's one ``N×C`` floating output (size-1 dims after the batch ignored) is used as probabilities
when every row already is a distribution (``0 ≤ s_ic ≤ 1`` and ``|Σ_c s_ic − 1| < 10⁻³``); otherwise it is taken
as logits and turned into probabilities with the softmax ``p_ic = exp(s_ic − m_i) / Σ_c exp(s_ic − m_i)``,
``m_i = max_c s_ic``. The softmax is monotone, so the top-k classes are the same either way; ties go to the lower
class index (a stable descending sort, as :mod:`modelport.data.metrics` ranks).

A labelled tree is a folder whose images all sit in class sub-folders (``class/xxx.jpg``, deeper levels count for
their top folder), with at least two classes. Class folder names become class indices by the labels (a labels
file, else the model card's): the label's index; without labels, integer names are the indices themselves and
other names are numbered in sorted order. Accuracy is top-1 and, with more than five classes, top-5 (the true
class among the first five), plus per-class top-1 and the most frequent confusions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from modelport.apps.vision.classify_results import (
    AccuracySummary,
    ClassAccuracy,
    ClassifyOptions,
    ClassifyReport,
    Confusion,
    ImageResult,
    ModelCardInfo,
    Prediction,
    find_model_card,
)
from modelport.apps.vision.images import list_images, read_image
from modelport.apps.vision.labels import read_labels
from modelport.apps.vision.model import PORT_REPORT, AppModel, resolve_app_model
from modelport.backends.runner import Runner
from modelport.data.evaluate import run_samples
from modelport.data.metrics import TOP5_MIN_CLASSES, classifier_scores
from modelport.data.preprocess import ImageInput, describe_preprocess, fit_preprocess, image_input
from modelport.data.samples import SampleSet, fixed_batch
from modelport.errors import AppError, InvalidInputError
from modelport.inputs import ImagePreprocess, TensorSpec, image_to_tensor

__all__ = [
    "AccuracySummary",
    "ClassAccuracy",
    "ClassifyOptions",
    "ClassifyReport",
    "Confusion",
    "ImageResult",
    "Prediction",
    "classify",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
#: a row is a probability distribution when its sum is within this of 1 (and every entry in [0, 1]).
PROBABILITY_SUM_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """The images to classify, with their class folder index (labelled tree) or None."""

    files: list[Path]
    classes: list[str]  # class folder names, sorted (empty: unlabelled)
    folder_of: list[int] | None  # per file: its position in ``classes``


@dataclasses.dataclass
class _Scored:
    """Per-image top-K indices and probabilities, accumulated batch by batch."""

    k: int
    indices: list[np.ndarray] = dataclasses.field(default_factory=list)
    raw: list[np.ndarray] = dataclasses.field(default_factory=list)
    softmax: list[np.ndarray] = dataclasses.field(default_factory=list)
    latency_ms: list[np.ndarray] = dataclasses.field(default_factory=list)
    probabilities: bool = True
    classes: int = 0


def classify(
    model: str | Path | AppModel,
    inputs: str | Path | Sequence[str | Path],
    *,
    options: ClassifyOptions | None = None,
    progress: Progress | None = None,
) -> ClassifyReport:
    """Classify images with ``model``; with a labelled folder tree, measure its accuracy.

    Args:
        model: a model file, a ``port`` output directory, or an :class:`AppModel` from ``resolve_app_model``.
        inputs: an image, a folder (its images recursively; class sub-folders make it a labelled tree), or a list
            of images.
        options: top-k, labels, preprocessing, batch.
        progress: called with a short line as batches finish.

    Returns:
        The per-image top-k and, for a labelled tree, the accuracy summary.

    Raises:
        AppError: no images, an unreadable image, a tree with one class, labels that do not fit the model or the
            tree, a model whose input is not one image or whose output is not one ``N×C`` score tensor.
        InvalidInputError: the model argument cannot be resolved (see ``resolve_app_model``).
    """
    t0 = time.perf_counter()
    opts = options or ClassifyOptions()
    say = progress or (lambda _msg: None)
    app = model if isinstance(model, AppModel) else resolve_app_model(model)
    found = _gather(inputs)
    card = find_model_card(_card_candidates(model, app))
    labels, labels_source = _labels(opts, card)
    with app.open() as runner:
        specs = runner.input_specs
        target = _image_input(specs, app)
        pre = _preprocess(opts, card, target)
        batch = fixed_batch(specs) or opts.batch
        say(f"classifying {len(found.files)} images with {app.description}")
        scored = _run(runner, found.files, target, pre, opts, batch, say)
    labels = _check_labels(labels, labels_source, scored.classes)
    names = labels or tuple(str(i) for i in range(scored.classes))
    truth, mapping = _truth(found, labels, scored.classes)
    results = _image_results(found, scored, names, truth, opts.top_k)
    accuracy = _accuracy(found, scored, names, truth, mapping, opts.confusions) if truth is not None else None
    latencies = np.concatenate(scored.latency_ms)
    return ClassifyReport(
        model=app.description,
        runtime=app.runtime,
        precision=app.precision or app.options.precision.value,
        input=f"{specs[0].name} {specs[0].shape_text()} {specs[0].dtype}",
        preprocessing=describe_preprocess(pre) + (" (gray, replicated)" if _gray_to_rgb(opts, target) else ""),
        scores="probabilities" if scored.probabilities else "softmax of logits",
        classes=scored.classes,
        labels=labels_source,
        batch=batch,
        images=results,
        accuracy=accuracy,
        mean_latency_ms=float(latencies.mean()),
        seconds=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------------------------------
# Inputs, labels, preprocessing


def _gather(inputs: str | Path | Sequence[str | Path]) -> _Inputs:
    """The image files, and the class folders when ``inputs`` is one folder laid out as a labelled tree."""
    if isinstance(inputs, str | Path):
        root = Path(inputs)
        files = list_images(root)
        if root.is_dir():
            return _tree(root, files)
        return _Inputs(files, [], None)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise AppError("no images to classify", hint="give an image file or a folder of images")
    return _Inputs([f for p in paths for f in list_images(p)], [], None)


def _tree(root: Path, files: list[Path]) -> _Inputs:
    tops = [f.relative_to(root).parts for f in files]
    if any(len(parts) == 1 for parts in tops) or not tops:
        return _Inputs(files, [], None)  # images directly in the folder: unlabelled
    classes = sorted({parts[0] for parts in tops})
    if len(classes) < 2:
        raise AppError(
            f"{root} is a labelled tree with one class ({classes[0]}): accuracy on it measures nothing",
            hint="give class sub-folders for at least two classes, or put the images directly in the folder",
            path=root,
        )
    position = {name: i for i, name in enumerate(classes)}
    return _Inputs(files, classes, [position[parts[0]] for parts in tops])


def _card_candidates(model: str | Path | AppModel, app: AppModel) -> list[Path]:
    """Where a model card may sit: beside the artifact, beside the argument, beside a ``port`` output's source."""
    found = [app.path.with_suffix(".json")]
    folders = [app.path.parent.parent.parent] if app.path.parent.parent.name == "targets" else []
    if not isinstance(model, AppModel):
        arg = Path(model)
        found.append(arg.with_suffix(".json"))
        folders.append(arg)
    for folder in folders:
        if (folder / PORT_REPORT).is_file():
            try:
                source = json.loads((folder / PORT_REPORT).read_text(encoding="utf-8")).get("source")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                source = None
            if isinstance(source, str) and source:
                found.append(Path(source).with_suffix(".json"))
    return list(dict.fromkeys(found))


def _labels(opts: ClassifyOptions, card: ModelCardInfo | None) -> tuple[tuple[str, ...] | None, str]:
    if isinstance(opts.labels, tuple):
        return opts.labels, f"{len(opts.labels)} labels given"
    if opts.labels is not None:
        names = read_labels(Path(opts.labels))
        return names, f"{len(names)} labels from {opts.labels}"
    if card is not None and card.labels is not None:
        return card.labels, f"{len(card.labels)} labels from the model card {card.path}"
    return None, "class indices (no labels file)"


def _check_labels(labels: tuple[str, ...] | None, source: str, classes: int) -> tuple[str, ...] | None:
    if labels is not None and len(labels) != classes:
        fewer = "fewer" if len(labels) < classes else "more"
        raise AppError(
            f"{source}: {fewer} labels than the {classes} classes the model scores",
            hint="give a labels file with one label per class index, in class-index order",
        )
    return labels


def _image_input(specs: Sequence[TensorSpec], app: AppModel) -> ImageInput:
    if len(specs) != 1 or specs[0].shape is None or len(specs[0].shape) != 4:
        have = ", ".join(f"{s.name} {s.shape_text()}" for s in specs) or "no inputs"
        raise AppError(
            f"classify needs a model with one image input (N×C×H×W or N×H×W×C); {app.path.name} has {have}",
            hint="give an image classifier",
            path=app.path,
        )
    try:
        return image_input(specs, f"classify of {app.path.name}")
    except InvalidInputError as exc:  # its hint is about data files: say it for classify
        raise AppError(f"classify cannot feed images to {app.path.name}: {exc.message}", path=app.path) from exc


def _preprocess(opts: ClassifyOptions, card: ModelCardInfo | None, target: ImageInput) -> ImagePreprocess:
    base = opts.preprocess or (card.preprocess if card is not None else None) or _integer_input(target)
    fitted = fit_preprocess(base, target)
    if opts.layout is not None:
        fitted = dataclasses.replace(fitted, layout=opts.layout)
    if fitted.size is None:
        raise AppError(
            f"input {target.name!r} has a dynamic height/width: the images need one size",
            hint="give the image size H,W",
        )
    return fitted


def _integer_input(target: ImageInput) -> ImagePreprocess | None:
    """Raw pixels for an 8-bit input (a quantized TFLite model's): 0‥255 for uint8, −128‥127 for int8."""
    if target.dtype == "uint8":
        return ImagePreprocess(scale=1.0)
    if target.dtype == "int8":
        return ImagePreprocess(scale=1.0, mean=(128.0,))
    return None


def _gray_to_rgb(opts: ClassifyOptions, target: ImageInput) -> bool:
    return opts.grayscale and target.channels == 3


def _tensor(path: Path, pre: ImagePreprocess, gray_to_rgb: bool) -> np.ndarray:
    if pre.grayscale or gray_to_rgb:
        pixels = read_image(path, gray=True)
        if gray_to_rgb:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    else:
        rgb = read_image(path)
        pixels = np.ascontiguousarray(rgb[:, :, ::-1]) if pre.bgr else rgb
    return image_to_tensor(pixels, pre)


# ----------------------------------------------------------------------------------------------------
# Inference


def _run(
    runner: Runner,
    files: list[Path],
    target: ImageInput,
    pre: ImagePreprocess,
    opts: ClassifyOptions,
    batch: int,
    say: Progress,
) -> _Scored:
    """Every image through the runner in chunks of ``batch``; keeps top-K (K ≥ 5) per image."""
    scored = _Scored(k=max(opts.top_k, 5))
    gray_to_rgb = _gray_to_rgb(opts, target)
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        tensors = np.concatenate([_tensor(f, pre, gray_to_rgb) for f in chunk])
        samples = SampleSet(f"images:{chunk[0].parent}", {target.name: tensors})
        t0 = time.perf_counter()
        outputs = run_samples(runner, samples, batch=batch)
        per_image = 1000.0 * (time.perf_counter() - t0) / len(chunk)
        _score(scored, outputs, runner)
        scored.latency_ms.append(np.full(len(chunk), per_image))
        say(f"{min(start + batch, len(files))}/{len(files)} images")
    return scored


def _score(scored: _Scored, outputs: dict[str, np.ndarray], runner: Runner) -> None:
    scores = classifier_scores(outputs)
    if scores is None:
        have = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in outputs.items())
        raise AppError(
            f"classify needs one N×C floating-point score output; the model gives {have}",
            hint="give an image classifier (one output of class scores per image)",
        )
    if scored.classes and scores.shape[1] != scored.classes:
        raise AppError(f"the model's class count changed between batches ({scored.classes} → {scores.shape[1]})")
    scored.classes = scores.shape[1]
    s = scores.astype(np.float64)
    k = min(scored.k, s.shape[1])
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    raw = np.take_along_axis(s, order, axis=1)
    finite = np.asarray(np.isfinite(s).all(axis=1))
    with np.errstate(invalid="ignore", over="ignore"):  # rows with NaN/inf are dropped below
        row_max = np.where(finite, s.max(axis=1), 0.0)
        lse = row_max + np.log(np.exp(s - row_max[:, None]).sum(axis=1))
    in_range = bool(finite.all() and s.min() >= 0.0 and s.max() <= 1.0)
    scored.probabilities &= in_range and float(np.abs(s.sum(axis=1) - 1).max()) < PROBABILITY_SUM_TOLERANCE
    scored.indices.append(np.where(finite[:, None], order, -1))
    scored.raw.append(raw)
    scored.softmax.append(np.exp(raw - lse[:, None]))


# ----------------------------------------------------------------------------------------------------
# Results and accuracy


def _truth(found: _Inputs, labels: tuple[str, ...] | None, classes: int) -> tuple[np.ndarray | None, str]:
    """The true class index per image of a labelled tree, and how folder names were mapped."""
    if found.folder_of is None:
        return None, ""
    if labels is not None:
        index = {name: i for i, name in enumerate(labels)}
        missing = [c for c in found.classes if c not in index]
        if missing:
            raise AppError(
                f"class folder(s) {', '.join(missing[:5])} are not among the {len(labels)} labels",
                hint="name the class folders by the labels, one folder per label",
            )
        per_class = [index[c] for c in found.classes]
        mapping = "class folders by label name"
    elif all(c.isdigit() for c in found.classes):
        per_class = [int(c) for c in found.classes]
        mapping = "class folders named by class index"
    else:
        per_class = list(range(len(found.classes)))
        mapping = "class folders in sorted name order (no labels file): folder i is class i"
    bad = [c for c, i in zip(found.classes, per_class, strict=True) if i >= classes]
    if bad:
        raise AppError(
            f"class folder(s) {', '.join(bad[:5])} map to class indices beyond the {classes} the model scores",
            hint="give a labels file naming the model's classes, and class folders named by those labels",
        )
    return np.asarray(per_class, dtype=np.int64)[np.asarray(found.folder_of)], mapping


def _image_results(
    found: _Inputs, scored: _Scored, names: tuple[str, ...], truth: np.ndarray | None, top_k: int
) -> tuple[ImageResult, ...]:
    indices = np.concatenate(scored.indices)
    probs = np.concatenate(scored.raw if scored.probabilities else scored.softmax)
    latency = np.concatenate(scored.latency_ms)
    results = []
    for i, path in enumerate(found.files):
        preds = tuple(
            Prediction(names[c], int(c), float(p))
            for c, p in zip(indices[i, :top_k], probs[i, :top_k], strict=True)
            if c >= 0
        )
        true = int(truth[i]) if truth is not None else None
        results.append(
            ImageResult(
                path=str(path),
                predictions=preds,
                latency_ms=float(latency[i]),
                true_label=names[true] if true is not None else None,
                true_index=true,
                correct=(bool(indices[i, 0] == true) if true is not None else None),
            )
        )
    return tuple(results)


def _accuracy(
    found: _Inputs, scored: _Scored, names: tuple[str, ...], truth: np.ndarray, mapping: str, confusions: int
) -> AccuracySummary:
    indices = np.concatenate(scored.indices)
    hits = indices == truth[:, None]
    top1 = hits[:, 0]
    top5 = float(hits[:, :5].any(axis=1).mean()) if scored.classes >= TOP5_MIN_CLASSES else None
    per_class = []
    for c in sorted(set(truth.tolist())):
        mine = truth == c
        per_class.append(ClassAccuracy(names[c], int(c), int(mine.sum()), float(top1[mine].mean())))
    pairs: dict[tuple[int, int], int] = {}
    for t, p in zip(truth[~top1].tolist(), indices[~top1, 0].tolist(), strict=True):
        pairs[(t, p)] = pairs.get((t, p), 0) + 1
    class_size = {c.index: c.images for c in per_class}
    worst = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:confusions]
    confused = tuple(
        Confusion(names[t], names[p] if p >= 0 else "(NaN scores)", n, n / class_size[t]) for (t, p), n in worst
    )
    return AccuracySummary(
        images=len(truth),
        top1=float(top1.mean()),
        top5=top5,
        mapping=mapping,
        per_class=tuple(per_class),
        confused=confused,
    )
