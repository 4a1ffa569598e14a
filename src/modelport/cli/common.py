"""Helpers shared by the CLI verbs: consoles, list options, JSON output, tables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from modelport.errors import InvalidInputError
from modelport.formats import Precision
from modelport.inputs import ImagePreprocess, Layout, TensorSpec, parse_input_shapes
from modelport.verify.compare import Comparison


def console() -> Console:
    """stdout console; when piped, wide enough for the tables instead of rich's 80 columns."""
    probe = Console()
    return Console(highlight=False, soft_wrap=False, width=None if probe.is_terminal else 160)


def split_list(values: Sequence[str] | str | None) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [p.strip() for v in items for p in v.split(",") if p.strip()]


def shapes_option(values: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    return parse_input_shapes(values or [])


def precisions_option(values: Sequence[str] | str | None) -> list[Precision]:
    return [Precision.parse(p) for p in split_list(values)]


def print_json(text: str) -> None:
    """Plain JSON on stdout (no rich markup or wrapping)."""
    print(text)


def comparison_table(comparisons: Sequence[Comparison], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("candidate", "output", "max abs", "max rel", "mean abs", "cosine", "mismatch", "result"):
        table.add_column(col, justify="left" if col in ("candidate", "output", "result") else "right")
    for c in comparisons:
        for o in c.outputs:
            table.add_row(
                c.candidate,
                o.name,
                f"{o.max_abs:.3g}",
                f"{o.max_rel:.3g}",
                f"{o.mean_abs:.3g}",
                f"{o.cosine:.6f}",
                f"{o.mismatch_fraction:.2%}",
                "[green]pass[/]" if o.passed else f"[red]FAIL[/] {o.note}".rstrip(),
            )
    return table


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in split_list(text))
    except ValueError:
        raise InvalidInputError(f"{what} takes comma-separated numbers, got {text!r}") from None


def single_input(specs: Sequence[TensorSpec]) -> TensorSpec:
    """The only input of an image model; image feeds need exactly one."""
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise InvalidInputError(f"--image needs a single-input model; this one has {len(specs)} ({names})")
    return specs[0]


def image_preprocess(
    spec: TensorSpec,
    size: str | None,
    layout: str,
    mean: str,
    std: str,
    scale: float,
    bgr: bool,
    grayscale: bool,
) -> ImagePreprocess:
    """Build the image preprocessing from CLI options; the size defaults to the input's static H, W."""
    try:
        lay = Layout(layout.upper())
    except ValueError:
        raise InvalidInputError(f"--layout must be NCHW or NHWC, got {layout!r}") from None
    hw: tuple[int, int] | None = None
    if size:
        dims = tuple(int(v) for v in _floats(size, "--image-size"))
        if len(dims) != 2 or min(dims) <= 0:
            raise InvalidInputError(f"--image-size takes H,W, got {size!r}")
        hw = (dims[0], dims[1])
    elif spec.shape is not None and len(spec.shape) == 4:
        h, w = spec.shape[2:4] if lay is Layout.NCHW else spec.shape[1:3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            hw = (h, w)
    return ImagePreprocess(
        size=hw,
        layout=lay,
        grayscale=grayscale,
        bgr=bgr,
        scale=scale,
        mean=_floats(mean, "--mean"),
        std=_floats(std, "--std"),
        dtype=spec.dtype,
    )
