"""Model inputs: tensor specs, shape overrides, and feeds (random, .npy/.npz, images).

Feeds are prepared before anything is timed or compared, and always checked against the model's inputs, so a
wrong shape or dtype is reported by name before a runtime sees it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from modelport.errors import InferenceError, InvalidInputError, ModelLoadError, first_line

Dim = int | str | None


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of a model input or output; a dim is an int, a symbolic name, or None."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) and d >= 0 for d in self.shape)

    def shape_text(self) -> str:
        if self.shape is None:
            return "unknown rank"
        return "[" + ", ".join(_dim_text(d) for d in self.shape) + "]"

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
        }


def _dim_text(d: Dim) -> str:
    if isinstance(d, int) and d >= 0:
        return str(d)
    return str(d) if isinstance(d, str) and d else "?"


_SHAPE_RE = re.compile(r"^(?P<name>.+):(?P<dims>-?\d+(?:[,x]-?\d+)*)$")


def parse_input_shapes(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``name:1,3,224,224`` items (``x`` also separates dims) into a mapping.

    Raises:
        InvalidInputError: on malformed text or non-positive dims.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for raw in items:
        for item in (s for s in raw.split(";") if s.strip()):
            m = _SHAPE_RE.match(item.strip())
            if not m:
                raise InvalidInputError(
                    f"cannot parse input shape {item!r}", hint="write NAME:D1,D2,… e.g. image:1,3,224,224"
                )
            dims = tuple(int(d) for d in re.split(r"[,x]", m.group("dims")))
            if any(d <= 0 for d in dims):
                raise InvalidInputError(f"input shape {item!r} has a non-positive dimension")
            shapes[m.group("name")] = dims
    return shapes


def match_input_names(overrides: Mapping[str, Sequence[int]], names: set[str]) -> dict[str, Sequence[int]]:
    """``overrides`` with TensorFlow's output-index suffix matched to the inputs' names: ``image_tensor:0`` names the
    input ``image_tensor`` (a GraphDef's tensor vs the converted model's input) and the other way round."""
    matched: dict[str, Sequence[int]] = {}
    for name, shape in overrides.items():
        if name not in names:
            bare = name[:-2] if name.endswith(":0") else f"{name}:0"
            name = bare if bare in names else name
        matched[name] = shape
    return matched


def resolve_shapes(
    specs: Sequence[TensorSpec],
    overrides: Mapping[str, Sequence[int]] | None = None,
    batch: int | None = None,
) -> dict[str, tuple[int, ...]]:
    """Concrete shape for every input: overrides first, then static dims, then ``batch`` for a dynamic dim 0.

    Raises:
        InvalidInputError: unknown input in overrides, wrong rank, or a dynamic dim with no value.
    """
    names = {s.name for s in specs}
    overrides = match_input_names(overrides or {}, names)
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise InvalidInputError(
            f"--input-shape names unknown input(s) {', '.join(unknown)}",
            hint=f"the model's inputs are: {', '.join(sorted(names))}",
        )
    result: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        if spec.name in overrides:
            shape = tuple(int(d) for d in overrides[spec.name])
            if spec.shape is not None and len(shape) != len(spec.shape):
                raise InvalidInputError(
                    f"--input-shape for {spec.name!r} has rank {len(shape)}, the model's input has rank "
                    f"{len(spec.shape)} {spec.shape_text()}"
                )
            if batch is not None and shape:
                shape = (batch, *shape[1:])  # the batch size sets dim 0; overrides give the other dims
            if spec.shape is not None:
                for i, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
                    if i == 0 and batch is not None and isinstance(want, int) and want >= 0 and want != batch:
                        raise _fixed_batch_error(spec, want, batch)
                    if isinstance(want, int) and want >= 0 and want != got:
                        raise InvalidInputError(
                            f"--input-shape for {spec.name!r} sets dim {i} to {got}, but the model fixes it "
                            f"to {want} {spec.shape_text()}"
                        )
            result[spec.name] = shape
            continue
        if spec.shape is None:
            raise InvalidInputError(
                f"input {spec.name!r} has unknown rank", hint=f"give --input-shape {spec.name}:D1,D2,…"
            )
        dims: list[int] = []
        for i, d in enumerate(spec.shape):
            if isinstance(d, int) and d >= 0:
                if i == 0 and batch is not None and batch != d:
                    raise _fixed_batch_error(spec, d, batch)
                dims.append(d)
            elif i == 0 and batch is not None:
                dims.append(batch)
            else:
                raise InvalidInputError(
                    f"input {spec.name!r} has a dynamic dimension {i} ({_dim_text(d)}) in {spec.shape_text()}",
                    hint=f"give its size with --input-shape {spec.name}:"
                    + ",".join(str(x) if isinstance(x, int) and x >= 0 else "N" for x in spec.shape),
                )
        result[spec.name] = tuple(dims)
    return result


def with_shapes(specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]]) -> tuple[TensorSpec, ...]:
    """``specs`` with the dims ``shapes`` gives fixed, except a dynamic batch dim, which stays the data's.

    For verbs that read batches of real samples (calibration, evaluation): ``--input-shape x:1,3,224,224`` fixes
    H and W of a fully dynamic input while the number of samples per batch stays free.

    Raises:
        InvalidInputError: as :func:`resolve_shapes` (unknown input, wrong rank, a dim the model fixes otherwise).
    """
    if not shapes:
        return tuple(specs)
    shapes = match_input_names(shapes, {s.name for s in specs})
    if set(shapes) - {s.name for s in specs}:
        resolve_shapes(specs, shapes)  # raises the unknown-input error naming the model's inputs
    concrete = resolve_shapes([s for s in specs if s.name in shapes], shapes)
    out = []
    for spec in specs:
        if spec.name not in shapes:
            out.append(spec)
            continue
        dims: list[Dim] = list(concrete[spec.name])
        if spec.shape and not (isinstance(spec.shape[0], int) and spec.shape[0] >= 0):
            dims[0] = spec.shape[0]  # a dynamic batch stays dynamic
        out.append(dataclasses.replace(spec, shape=tuple(dims)))
    return tuple(out)


def _fixed_batch_error(spec: TensorSpec, fixed: int, batch: int) -> InvalidInputError:
    return InvalidInputError(
        f"input {spec.name!r} has a fixed batch of {fixed} {spec.shape_text()}, cannot run batch {batch}",
        hint="export the model with a dynamic batch dimension",
    )


def default_batch(specs: Sequence[TensorSpec]) -> int:
    """The batch a model runs when none is asked for: its inputs' fixed leading dimension, else 1."""
    for spec in specs:
        if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0:
            return spec.shape[0]
    return 1


#: The size ladder: the sizes a free dim gets, per kind, rung by rung. Rungs 0 and 1 are :data:`FREE_DIM_SIZES`;
#: when the model refuses a rung's sizes (a Reshape to a fixed element count, a reflect Pad longer than the signal,
#: an STFT window longer than the input), :func:`search_shapes` tries the next: a smaller image (text-line
#: recognisers such as PP-OCR's need a height of at most 64, and OpenVINO's pooling at least 48), then larger sizes
#: of every kind (audio front ends need hundreds of samples). The batch alternates between 1 and 2.
SIZE_LADDER: tuple[Mapping[str, int], ...] = (
    {"batch": 1, "spatial": 64, "sequence": 16, "other": 8},
    {"batch": 2, "spatial": 96, "sequence": 24, "other": 12},
    {"batch": 1, "spatial": 48, "sequence": 128, "other": 16},
    {"batch": 2, "spatial": 128, "sequence": 512, "other": 32},
    {"batch": 1, "spatial": 256, "sequence": 1024, "other": 64},
    {"batch": 2, "spatial": 512, "sequence": 4096, "other": 128},
)


#: sizes chosen for free dims, per kind of dim: (first set, second set) — the ladder's first two rungs. Spatial
#: dims are multiples of 32 (the stride of most detection and OCR backbones), sequence dims small but not degenerate.
FREE_DIM_SIZES: dict[str, tuple[int, int]] = {
    kind: (SIZE_LADDER[0][kind], SIZE_LADDER[1][kind]) for kind in SIZE_LADDER[0]
}
_SPATIAL_NAMES = ("height", "width", "h", "w", "image_h", "image_w", "img_h", "img_w", "x", "y")
_SEQUENCE_NAMES = ("seq", "sequence", "len", "length", "time", "frames", "tokens", "t", "steps")


def _dim_kind(spec: TensorSpec, axis: int, name: Dim) -> str:
    """What a free dim most likely is, from its position, the input's rank and layout, and its name."""
    text = str(name).lower() if isinstance(name, str) else ""
    words = [w for w in text.replace("-", "_").split("_") if w]
    spatial = any(w in _SPATIAL_NAMES for w in words) or "height" in text or "width" in text
    sequence = any(w in _SEQUENCE_NAMES for w in words) or "seq" in text
    if axis == 0 and ("batch" in text or not (spatial or sequence)):  # a generic name there (p2o.DynamicDimension.0)
        return "batch"
    if spatial:
        return "spatial"
    if sequence:
        return "sequence"
    shape = spec.shape or ()
    rank = len(shape)
    if rank == 4:  # images: NCHW with C in 1…4 fixed, or NHWC with C last
        channels_first = isinstance(shape[1], int) and 0 < shape[1] <= 4
        channels_last = isinstance(shape[3], int) and 0 < shape[3] <= 4
        if (channels_first and axis in (2, 3)) or (channels_last and axis in (1, 2)):
            return "spatial"
    if rank == 3 and axis == 1 and _recurrent_state(spec):
        return "batch"  # ONNX RNN state layout [layers·directions, batch, hidden] (silero's state [2, ?, 128])
    if rank in (2, 3) and axis == 1:
        return "sequence"
    return "other"


_STATE_NAMES = ("state", "states", "h", "c", "h0", "c0", "hn", "cn", "hidden", "cell")


def _recurrent_state(spec: TensorSpec) -> bool:
    """A rank-3 input named like a recurrent state whose first and last dims are fixed (few layers, hidden size)."""
    shape = spec.shape or ()
    words = [w for w in spec.name.lower().replace("-", "_").replace(".", "_").split("_") if w]
    small_first = isinstance(shape[0], int) and 0 < shape[0] <= 8
    return small_first and isinstance(shape[2], int) and any(w in _STATE_NAMES for w in words)


def verification_shapes(
    specs: Sequence[TensorSpec],
    given: Mapping[str, Sequence[int]] | None = None,
    batch: int | None = None,
) -> list[dict[str, tuple[int, ...]]]:
    """Concrete shapes to verify a model on, chosen here for every dim nobody fixed.

    ``given`` (``--input-shape``) only narrows: its inputs keep exactly those shapes. A dynamic dim elsewhere gets a
    size by what it is (:data:`FREE_DIM_SIZES`: batch, spatial, sequence, other, told from its name, position and
    the input's rank and layout); dims sharing a symbolic name share a size across inputs. When any dim was free,
    a second set gives every free dim another size, so an artifact is shown to stay dynamic, not merely to run at
    one size. Returns one set (no free dim) or two. :func:`search_shapes` goes further down :data:`SIZE_LADDER`
    when the model refuses these sizes.

    Raises:
        InvalidInputError: an input of unknown rank and not in ``given``, or ``given`` naming no input.
    """
    fixed = _given_shapes(specs, given, batch)
    first, free = _assign(specs, fixed, SIZE_LADDER[0], batch)
    second, _ = _assign(specs, fixed, SIZE_LADDER[1], batch)
    return [first, second] if free and first != second else [first]


def _given_shapes(
    specs: Sequence[TensorSpec], given: Mapping[str, Sequence[int]] | None, batch: int | None
) -> dict[str, tuple[int, ...]]:
    """The inputs ``given`` fixes, checked against the model (unknown names, ranks, dims the model fixes)."""
    given = match_input_names(given or {}, {s.name for s in specs})
    if set(given) - {s.name for s in specs}:
        resolve_shapes(specs, given)  # raises the unknown-input error naming the model's inputs
    return resolve_shapes([s for s in specs if s.name in given], given, batch) if given else {}


def _assign(
    specs: Sequence[TensorSpec], fixed: Mapping[str, tuple[int, ...]], sizes: Mapping[str, int], batch: int | None
) -> tuple[dict[str, tuple[int, ...]], bool]:
    """One shape set: ``fixed`` inputs as they are, every free dim elsewhere at ``sizes[its kind]`` (the first
    input naming a symbolic dim decides its kind); and whether any dim was free."""
    shapes: dict[str, tuple[int, ...]] = dict(fixed)
    free = False
    by_name: dict[str, int] = {}  # a symbolic dim has one size across inputs
    for spec in specs:
        if spec.name in fixed:
            continue
        if spec.shape is None:
            raise InvalidInputError(
                f"input {spec.name!r} has unknown rank", hint=f"give --input-shape {spec.name}:D1,D2,…"
            )
        dims: list[int] = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int) and d >= 0:
                dims.append(d)
                continue
            free = True
            kind = _dim_kind(spec, axis, d)
            size = batch if kind == "batch" and batch else sizes[kind]
            if isinstance(d, str) and d:
                size = by_name.setdefault(d, size)
            dims.append(size)
        shapes[spec.name] = tuple(dims)
    return shapes, free


ShapeSet = dict[str, tuple[int, ...]]
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ShapeAttempt:
    """One shape set tried on the model: the shapes, and why the model refused them ("" when it ran)."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    error: str = ""

    @property
    def text(self) -> str:
        return shapes_text(dict(self.shapes))


@dataclasses.dataclass(frozen=True)
class ShapeSearch(Generic[T]):
    """What :func:`search_shapes` found: the accepted shape sets (one, or two when a dim is free and a second size
    ran too), what the model returned on each, and every attempt in order."""

    sets: tuple[ShapeSet, ...]
    results: tuple[T, ...]
    attempts: tuple[ShapeAttempt, ...]
    #: whether any dim was free (the sizes were chosen here)
    free: bool = False

    @property
    def refused(self) -> tuple[ShapeAttempt, ...]:
        return tuple(a for a in self.attempts if a.error)

    def note(self) -> str:
        """One line for a report: which sizes the model refused and why, and where it was verified ("" when the
        first sizes ran and a second set was found, or no dim was free)."""
        if not self.free or (not self.refused and len(self.sets) > 1):
            return ""
        parts = [f"source refused {a.text}: {a.error}" for a in self.refused]
        where = " and ".join(shapes_text(s) for s in self.sets)
        parts.append(f"verified at {where}")
        if len(self.sets) == 1:
            parts.append("no second size ran on the source, so the artifact was checked at one size only")
        return "; ".join(parts)


def refusal_text(exc: BaseException) -> str:
    """Why a runtime refused a shape set, in one short line: the error's own message without the file's path, and
    of a nested runtime message (ONNX Runtime's "… Status Message: … Status Message: X") the innermost part."""
    text = first_line(getattr(exc, "message", None) or exc, limit=2000)
    inner = text.rsplit("Status Message: ", 1)[-1]
    return inner if len(inner) <= 200 else inner[:199] + "…"


def shapes_text(shapes: Mapping[str, Sequence[int]]) -> str:
    """``x 1×3×48×320, sr scalar`` — shape sets in reports and errors."""
    return ", ".join(f"{k} {'×'.join(str(d) for d in v) or 'scalar'}" for k, v in shapes.items())


def search_shapes(
    specs: Sequence[TensorSpec],
    run: Callable[[ShapeSet, int], T],
    given: Mapping[str, Sequence[int]] | None = None,
    batch: int | None = None,
    *,
    refusals: tuple[type[Exception], ...] = (InferenceError, ModelLoadError),
    path: str | Path | None = None,
) -> ShapeSearch[T]:
    """Find sizes for the free dims at which the model runs, walking down :data:`SIZE_LADDER`.

    ``run(shapes, role)`` runs the model on feeds of ``shapes`` (role 0: the first set, 1: the second) and returns
    what the caller keeps (so the accepted sets are not run again); an exception of a ``refusals`` type means the
    model refused those sizes. The first rung it runs gives the first set; later rungs, each with the other batch
    size, are tried for a second set whose free dims differ. Every rung is tried at most once (at most
    ``len(SIZE_LADDER)`` runs). ``given`` inputs keep exactly their shapes on every rung; with no free dim there is
    one attempt and its error propagates as the model raised it.

    Raises:
        InferenceError: the model refused every rung (lists each shape set and the model's error for it).
        InvalidInputError: as :func:`verification_shapes`.
    """
    fixed = _given_shapes(specs, given, batch)
    first_shapes, free = _assign(specs, fixed, SIZE_LADDER[0], batch)
    if not free:
        return ShapeSearch((first_shapes,), (run(first_shapes, 0),), (ShapeAttempt(tuple(first_shapes.items())),))
    attempts: list[ShapeAttempt] = []
    sets: list[ShapeSet] = []
    results: list[T] = []
    first_batch = 0
    for rung in SIZE_LADDER:
        sizes = dict(rung)
        if sets:  # the second set: another batch than the first
            one, two = SIZE_LADDER[0]["batch"], SIZE_LADDER[1]["batch"]
            sizes["batch"] = two if first_batch == one else one
        shapes, _ = _assign(specs, fixed, sizes, batch)
        if any(dict(a.shapes) == shapes for a in attempts):
            continue
        try:
            result = run(shapes, len(sets))
        except refusals as exc:
            attempts.append(ShapeAttempt(tuple(shapes.items()), refusal_text(exc)))
            continue
        attempts.append(ShapeAttempt(tuple(shapes.items())))
        sets.append(shapes)
        results.append(result)
        first_batch = rung["batch"]
        if len(sets) == 2:
            break
    if not sets:
        tried = "; ".join(f"{a.text}: {a.error}" for a in attempts)
        example = next((s for s in specs if s.name not in fixed and not s.is_static), specs[0])
        dims = ",".join(str(d) if isinstance(d, int) and d >= 0 else "N" for d in (example.shape or ()))
        raise InferenceError(
            f"the source model refused every size tried for its free dimensions ({len(attempts)}): {tried}",
            path=path,
            hint=f"give the sizes it needs with --input-shape {example.name}:{dims}",
        )
    return ShapeSearch(tuple(sets), tuple(results), tuple(attempts), free=True)


#: the most bytes one random feed may take (an input declaring more is a broken or hostile model, or needs its real
#: size given with --input-shape)
RANDOM_FEED_LIMIT = 2**31


def random_feeds(
    specs: Sequence[TensorSpec],
    shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    seed: int = 0,
    batch: int | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random feeds for every input: floats ~ U(0, 1), ints in {0, 1}, bools uniform.

    Integer inputs are mostly indices (token ids, token types, class ids) or masks: 0 and 1 are valid for any table
    of two or more rows, while larger values index past small ones (a 2-row token-type embedding).
    """
    concrete = resolve_shapes(specs, shapes, batch)
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = concrete[spec.name]
        dtype = np.dtype(spec.dtype)
        if any(d < 0 for d in shape) or math.prod(shape) * max(dtype.itemsize, 4) > RANDOM_FEED_LIMIT:
            raise InvalidInputError(
                f"input {spec.name!r} declares shape {list(shape)}: too large for random data",
                hint="give its size with --input-shape NAME:D0,D1,…",
            )
        if dtype.kind == "f":
            feeds[spec.name] = rng.random(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = np.asarray(rng.random(shape) < 0.5)  # an array even for a scalar (ORT refuses np.bool_)
        else:
            raise InvalidInputError(f"cannot make random data for input {spec.name!r} of dtype {spec.dtype}")
    return feeds


def load_feeds(path: str | Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Load feeds from .npz (keys = input names) or .npy (single-input models); never unpickles objects."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError("feed file not found", path=p)
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                feeds = {k: np.asarray(data[k]) for k in data.files}
        elif p.suffix == ".npy":
            if len(specs) != 1:
                raise InvalidInputError(
                    f"a .npy feed fits single-input models; this one has {len(specs)} inputs",
                    path=p,
                    hint="use an .npz with one array per input name",
                )
            feeds = {specs[0].name: np.load(p, allow_pickle=False)}
        else:
            raise InvalidInputError("feed files must be .npy or .npz", path=p)
    except ValueError as exc:
        raise InvalidInputError(f"cannot read feeds: {exc}", path=p) from exc
    check_feeds(feeds, specs)
    return feeds


def check_feeds(feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> None:
    """Check names, dtypes and static dims of feeds against the model's inputs."""
    names = {s.name for s in specs}
    missing = [s.name for s in specs if s.name not in feeds]
    extra = sorted(set(feeds) - names)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown input(s) {', '.join(extra)}")
        raise InvalidInputError("feeds do not match the model: " + "; ".join(parts))
    for spec in specs:
        arr = feeds[spec.name]
        if np.dtype(arr.dtype) != np.dtype(spec.dtype):
            raise InvalidInputError(
                f"feed for {spec.name!r} has dtype {arr.dtype}, the model expects {spec.dtype}",
                hint="cast the data or save it with the right dtype",
            )
        if spec.shape is not None:
            if arr.ndim != len(spec.shape):
                raise InvalidInputError(
                    f"feed for {spec.name!r} has shape {list(arr.shape)}, the model expects {spec.shape_text()}"
                )
            for want, got in zip(spec.shape, arr.shape, strict=True):
                if isinstance(want, int) and want >= 0 and want != got:
                    raise InvalidInputError(
                        f"feed for {spec.name!r} has shape {list(arr.shape)}, the model expects {spec.shape_text()}"
                    )


class Layout(str, enum.Enum):
    """Memory layout of an image tensor."""

    NCHW = "NCHW"
    NHWC = "NHWC"


@dataclasses.dataclass(frozen=True)
class ImagePreprocess:
    """How an image file becomes a tensor: resize, colour, scale, mean/std, layout.

    ``tensor = ((pixels * scale) - mean) / std`` per channel, after resizing to ``size`` (H, W).
    """

    size: tuple[int, int] | None = None
    layout: Layout = Layout.NCHW
    grayscale: bool = False
    bgr: bool = False
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    dtype: str = "float32"


def load_image(path: str | Path, pre: ImagePreprocess) -> np.ndarray:
    """Read an image (any format OpenCV reads) into a batch-of-one tensor following ``pre``."""
    import cv2

    p = Path(path)
    if not p.exists():
        raise ModelLoadError("image not found", path=p)
    flag = cv2.IMREAD_GRAYSCALE if pre.grayscale else cv2.IMREAD_COLOR
    img = cv2.imread(str(p), flag)
    if img is None:
        raise InvalidInputError("cannot decode image", path=p, hint="use PNG, JPEG, BMP, TIFF or WebP")
    return image_to_tensor(img if pre.grayscale or pre.bgr else cv2.cvtColor(img, cv2.COLOR_BGR2RGB), pre)


def image_to_tensor(pixels: np.ndarray, pre: ImagePreprocess) -> np.ndarray:
    """Turn an H×W or H×W×C uint8/float array into a 1×C×H×W (or 1×H×W×C) tensor."""
    import cv2

    img = pixels
    if pre.size is not None and img.shape[:2] != tuple(pre.size):
        h, w = pre.size
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = img[:, :, None]
    x = img.astype(np.float32) * np.float32(pre.scale)
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, 1, -1)
    std = np.asarray(pre.std, dtype=np.float32).reshape(1, 1, -1)
    x = (x - mean) / std
    if pre.layout is Layout.NCHW:
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None].astype(pre.dtype))


def load_image_feeds(paths: Sequence[str | Path], spec: TensorSpec, pre: ImagePreprocess) -> dict[str, np.ndarray]:
    """Stack images into one batch for a single image input."""
    if not paths:
        raise InvalidInputError("no images given")
    batch = np.concatenate([load_image(p, pre) for p in paths], axis=0)
    feeds = {spec.name: batch}
    check_feeds(feeds, [spec])
    return feeds
