"""The options every vision app (``classify``, ``detect``, ``depth``) shares, and how they become an AppModel.

The flags are the shared definitions of :mod:`modelport.cli.options` (same names, help and types as on the other
verbs; ``tests/test_cli_options.py`` checks it); this module adds the MODEL argument, the apps' defaults
(``auto``: the format's own runtime, or a ``port`` output's fastest verified target, at the artifact's own
precision) and the converters from raw flag values to :func:`~modelport.apps.vision.model.resolve_app_model`'s
arguments and an :class:`~modelport.inputs.ImagePreprocess`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from modelport.cli import options as opt
from modelport.cli.options import BGR, GRAYSCALE, IMAGE_SIZE, JSON, LAYOUT, MEAN, SCALE, STD, THREADS

if TYPE_CHECKING:
    from modelport.apps.vision.model import AppModel
    from modelport.inputs import ImagePreprocess, Layout

__all__ = [
    "AUTO",
    "BGR",
    "GRAYSCALE",
    "IMAGE_SIZE",
    "JSON",
    "LAYOUT",
    "MEAN",
    "MODEL_HELP",
    "PRECISION",
    "RUNTIME",
    "SCALE",
    "STD",
    "THREADS",
    "AppImageOptions",
    "app_image_options",
    "app_model_from_cli",
    "is_auto",
    "model_argument",
]

#: the default of ``--runtime`` and ``--precision`` on the apps: decided by the model argument.
AUTO = "auto"
MODEL_HELP = (
    "A model in any format a runtime runs (.onnx, OpenVINO .xml, .tflite, SavedModel dir …), or a `modelport port` "
    "output directory: then its fastest verified target runs, with the runtime settings port saved. "
    "--runtime and --precision default to auto: the format's own runtime (the port's fastest) at the artifact's "
    "own precision."
)
RUNTIME: Any = opt.runtime_option(AUTO)
PRECISION: Any = opt.precision_option(AUTO)


def model_argument(help_text: str = MODEL_HELP) -> Any:
    """The ``MODEL`` positional argument (required)."""
    return typer.Argument(..., metavar="MODEL", help=help_text, show_default=False)


def app_model_from_cli(
    model: str, runtime: str, threads: int | None, precision: str, *, for_throughput: bool = False
) -> AppModel:
    """The raw ``MODEL --runtime --threads --precision`` values as a resolved :class:`AppModel`.

    Raises:
        InvalidInputError: an unknown precision, a missing model, a runtime that cannot run it, a ``port`` output
            without a verified target.
    """
    from modelport.apps.vision.model import resolve_app_model

    return resolve_app_model(
        model,
        runtime=None if is_auto(runtime) else runtime,
        threads=threads,
        precision=None if is_auto(precision) else opt.precision(precision),
        for_throughput=for_throughput,
    )


def is_auto(value: str | None) -> bool:
    """Whether a ``--runtime``/``--precision`` value leaves the choice to the app."""
    return value is None or value.strip().lower() in ("", AUTO)


@dataclass(frozen=True)
class AppImageOptions:
    """The image flags as the apps take them.

    Attributes:
        preprocess: the normalisation and size given (None: none given, the model's own defaults apply).
        layout: ``--layout`` when given (None: the model's input decides).
        grayscale: ``--grayscale`` was given.
    """

    preprocess: ImagePreprocess | None
    layout: Layout | None
    grayscale: bool


def app_image_options(
    *,
    size: str | None,
    mean: str | None,
    std: str | None,
    scale: float | None,
    bgr: bool,
    layout: str | None,
    grayscale: bool,
) -> AppImageOptions:
    """``--image-size --mean --std --scale --bgr --layout --grayscale`` as :class:`AppImageOptions`.

    Raises:
        InvalidInputError: a malformed value (one message per flag).
    """
    pre = opt.image_preprocess(size=size, mean=mean, std=std, scale=scale, bgr=bgr, layout=layout, grayscale=grayscale)
    return AppImageOptions(pre, pre.layout if pre is not None and layout is not None else None, grayscale)
