"""The options the verbs share: one definition per flag, so a flag has the same name, type, default meaning and
help on every verb that takes it (``tests/test_cli_options.py`` checks this on the built commands).

A verb uses a definition as its parameter's default (``threads: int | None = THREADS``); typer copies it per
command. The few options whose default value differs between verbs (which runtimes, which precisions) are
made by a function taking that default; their name, type and help are fixed here. Below the definitions, the
converters turn the raw values into the API's types, with one error message per flag.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import typer

from modelport.errors import InvalidInputError

if TYPE_CHECKING:
    from modelport.backends.base import LoaderOptions
    from modelport.formats import Precision
    from modelport.inputs import ImagePreprocess, TensorSpec
    from modelport.verify.tolerance import Tolerance

# --- what runs the model ----------------------------------------------------------------------------------

INPUT_SHAPE: Any = typer.Option(
    [],
    "--input-shape",
    metavar="NAME:D0,D1,…",
    help="Concrete shape of an input, fixing its dynamic dimensions (repeatable; D0 is the batch).",
)
THREADS: Any = typer.Option(
    None, "--threads", min=1, help="CPU threads of the runtime (default: its own choice, normally every core)."
)
SEED: Any = typer.Option(0, "--seed", help="Seed of every random draw (random inputs, sample picks).")
JSON: Any = typer.Option(False, "--json", help="Print the report as JSON instead of tables.")
RTOL: Any = typer.Option(
    None, "--rtol", help="Relative tolerance of the output check (default: the precision's, see docs/verify.md)."
)
ATOL: Any = typer.Option(
    None, "--atol", help="Absolute tolerance of the output check (default: the precision's, see docs/verify.md)."
)
FEEDS: Any = typer.Option(
    None, "--feeds", help="Inputs to verify on: .npz with one array per input name, or .npy for a single input."
)

#: port's targets, compare's and bench's runtimes: each in a child process with this limit (0: all in this process)
TIMEOUT: Any = typer.Option(
    900.0,
    "--timeout",
    help="Seconds per target (port) or runtime (compare, bench), each in its own process (0: all in this process, "
    "no limit).",
)


def child_timeout(seconds: float) -> float | None:
    """``--timeout`` as the API's ``timeout``: 0 runs everything in this process (None).

    Raises:
        InvalidInputError: a negative number of seconds.
    """
    if seconds < 0:
        raise InvalidInputError(
            f"--timeout must be > 0 seconds, got {seconds:g}", hint="--timeout 0 runs everything in this process"
        )
    return seconds or None


#: bench/port across the device nodes of a Ray cluster (docs/cluster.md)
CLUSTER: Any = typer.Option(
    None, "--cluster", help="Run on the device nodes of the Ray cluster at this head address (HOST:PORT)."
)
DEVICES: Any = typer.Option(
    None, "--devices", help="With --cluster: comma-separated device labels to run on (default: every device)."
)


def no_devices_without_cluster(devices: str | None) -> None:
    """``--devices`` means nothing without ``--cluster``: one clear error instead of silently ignoring it."""
    if devices:
        raise InvalidInputError("--devices needs --cluster ADDRESS", hint="see docs/cluster.md")


# --- how a model file is opened (backends.LoaderOptions) --------------------------------------------------

TRUST_REMOTE_CODE: Any = typer.Option(
    False,
    "--trust-remote-code",
    help="PyTorch: allow unpickling whole modules and importing package.module:factory (runs the model's code).",
)
INPUTS: Any = typer.Option(
    [],
    "--inputs",
    help="Input tensors (comma-separated, repeatable): a TF GraphDef's (input:0); for an ONNX model (convert, "
    "edit extract), inner tensors to cut the graph at.",
)
OUTPUTS: Any = typer.Option(
    [],
    "--outputs",
    help="Output tensors (comma-separated, repeatable) of a TF GraphDef or of an ONNX model (convert, edit extract): "
    "inner ones cut the graph (e.g. before an op no engine converts).",
)

# --- image inputs (compare --image, quantize --calib/--eval image sources) --------------------------------

IMAGE: Any = typer.Option([], "--image", help="Image file(s), batched into the model's single image input.")
IMAGE_SIZE: Any = typer.Option(None, "--image-size", help="Images: resize to H,W (default: the model's input size).")
LAYOUT: Any = typer.Option(None, "--layout", help="Images: tensor layout NCHW or NHWC (default: NCHW).")
MEAN: Any = typer.Option(
    None, "--mean", help="Images: per-channel mean subtracted after scaling (default: the data's own, else 0)."
)
STD: Any = typer.Option(
    None, "--std", help="Images: per-channel std divided by last (default: the data's own, else 1)."
)
SCALE: Any = typer.Option(None, "--scale", help="Images: pixel scale applied first (default: 1/255).")
BGR: Any = typer.Option(False, "--bgr", help="Images: keep OpenCV's BGR channel order.")
GRAYSCALE: Any = typer.Option(False, "--grayscale", help="Images: read as one channel.")

_RUNTIMES_HELP = "Comma-separated runtimes (`modelport doctor` lists them; aliases like ort, ov work)."
_RUNTIME_HELP = "The runtime, by name or alias (`modelport doctor` lists them)."
_PRECISION_HELP = (
    "Precision to run (convert: to store the weights) at: fp32, fp16, bf16 or int8; "
    "a comma-separated list where the verb builds one target per precision."
)


def runtimes_option(default: str) -> Any:
    """``--runtimes/-r``: several runtimes (bench, compare, example)."""
    return typer.Option(default, "--runtimes", "-r", help=_RUNTIMES_HELP)


def runtime_option(default: str) -> Any:
    """``--runtime/-r``: one runtime (quantize)."""
    return typer.Option(default, "--runtime", "-r", help=_RUNTIME_HELP)


def precision_option(default: str = "fp32") -> Any:
    """``--precision``: one (bench, compare, convert: :func:`precision`) or a list (port: :func:`precisions`)."""
    return typer.Option(default, "--precision", help=_PRECISION_HELP)


# --- converters -------------------------------------------------------------------------------------------


def split_list(values: Sequence[str] | str | None) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [p.strip() for v in items for p in v.split(",") if p.strip()]


def input_shapes(values: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    """``--input-shape`` values → ``{name: shape}``."""
    from modelport.inputs import parse_input_shapes

    return parse_input_shapes(values or [])


def input_shape_items(values: Sequence[str] | None) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``--input-shape`` values in the tuple form the options dataclasses hold."""
    return tuple(input_shapes(values).items())


def precision(text: str) -> Precision:
    """One ``--precision`` value."""
    from modelport.formats import Precision

    if len(split_list(text)) > 1:
        raise InvalidInputError(f"--precision takes one precision here, got {text!r}")
    return Precision.parse(text)


def precisions(text: str) -> list[Precision]:
    """A comma-separated ``--precision`` list."""
    from modelport.formats import Precision

    return [Precision.parse(p) for p in split_list(text)]


def tolerance(prec: Precision | str, rtol: float | None, atol: float | None) -> Tolerance | None:
    """``--rtol/--atol`` over the precision's policy; None when neither is given (the API's own policy applies,
    with the source's precision as its floor)."""
    if rtol is None and atol is None:
        return None
    from modelport.verify.tolerance import Tolerance

    try:
        return Tolerance.for_precision(prec).with_overrides(rtol=rtol, atol=atol)
    except ValueError as exc:
        raise InvalidInputError(f"--rtol/--atol: {exc}") from None


def tolerance_fields(rtol: float | None, atol: float | None) -> dict[str, tuple[str, Any, bool]]:
    """``--rtol/--atol`` as :func:`api_kwargs` entries for an API that takes them as ``rtol``/``atol``."""
    return {"rtol": ("--rtol", rtol, rtol is not None), "atol": ("--atol", atol, atol is not None)}


def loader(
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    trust_remote_code: bool = False,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> LoaderOptions:
    """``--inputs/--outputs/--trust-remote-code`` (and the input shapes) as the backends' loader options."""
    from modelport.backends.base import LoaderOptions

    return LoaderOptions.build(
        inputs=split_list(inputs), outputs=split_list(outputs), trust_remote_code=trust_remote_code, input_shapes=shapes
    )


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in split_list(text))
    except ValueError:
        raise InvalidInputError(f"{flag} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise InvalidInputError(f"{flag} takes comma-separated numbers, got {text!r}")
    return values


def image_size(text: str | None) -> tuple[int, int] | None:
    """``--image-size H,W``."""
    dims = _floats(text, "--image-size")
    if dims is None:
        return None
    if len(dims) != 2 or min(dims) < 1 or any(d != int(d) for d in dims):
        raise InvalidInputError(f"--image-size takes H,W, got {text!r}")
    return int(dims[0]), int(dims[1])


def image_preprocess(
    *,
    size: str | None,
    mean: str | None,
    std: str | None,
    scale: float | None,
    bgr: bool,
    layout: str | None = None,
    grayscale: bool = False,
    spec: TensorSpec | None = None,
) -> ImagePreprocess | None:
    """The image options as an ImagePreprocess; None when none was given (the data source's own default).

    Args:
        spec: the image input the tensors are for; when given, the size defaults to its static H, W and a
            preprocessing is always returned.
    """
    from modelport.inputs import ImagePreprocess, Layout

    lay = Layout.NCHW
    if layout is not None:
        try:
            lay = Layout(layout.upper())
        except ValueError:
            raise InvalidInputError(f"--layout must be NCHW or NHWC, got {layout!r}") from None
    hw = image_size(size)
    given = (size, mean, std, scale, layout)
    if spec is None and all(v is None for v in given) and not bgr and not grayscale:
        return None
    if hw is None and spec is not None and spec.shape is not None and len(spec.shape) == 4:
        h, w = spec.shape[2:4] if lay is Layout.NCHW else spec.shape[1:3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            hw = (h, w)
    base = ImagePreprocess()
    return ImagePreprocess(
        size=hw,
        layout=lay,
        grayscale=grayscale,
        bgr=bgr,
        scale=base.scale if scale is None else scale,
        mean=_floats(mean, "--mean") or base.mean,
        std=_floats(std, "--std") or base.std,
        dtype=spec.dtype if spec is not None else base.dtype,
    )


def api_kwargs(api: Callable[..., Any], **values: tuple[str, Any, bool]) -> dict[str, Any]:
    """The keyword arguments ``api`` (a function or an options dataclass) takes, from ``name=(flag, value, given)``.

    Every verb offers the shared options, and an API may lag behind (a field not added yet): a parameter ``api``
    does not take is dropped when the user left its option unset (``given`` False), and is an error naming the
    flag when the user set it — an option is never silently ignored.
    """
    params = inspect.signature(api).parameters
    kwargs: dict[str, Any] = {}
    for name, (flag, value, was_given) in values.items():
        if name in params:
            kwargs[name] = value
        elif was_given:
            raise InvalidInputError(f"{flag} is not supported by this verb in this version of modelport")
    return kwargs
