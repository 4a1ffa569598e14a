"""``modelport classify MODEL IMAGE|DIR … [--labels FILE] [--top-k 5] [--json]``: top-k per image, and accuracy
on a labelled folder tree (``class/xxx.jpg``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelport.cli import app_options as ao
from modelport.cli import options as opt

if TYPE_CHECKING:
    from rich.console import Console

    from modelport.apps.vision.classify import ClassifyReport, ImageResult

#: per-image rows printed before the table says how many more there are (``--json`` has them all).
MAX_ROWS = 50
_DEFAULT_BATCH = 100  # modelport.data.evaluate.DEFAULT_BATCH, kept literal so the CLI starts without numpy


def register(app: typer.Typer) -> None:
    @app.command("classify")
    def classify_cmd(
        model: str = ao.model_argument(),
        inputs: list[Path] = typer.Argument(
            ...,
            metavar="IMAGE|DIR…",
            help="Images, or a folder of images (recursive); class sub-folders (class/xxx.jpg) make it a labelled "
            "tree whose accuracy is measured.",
        ),
        labels: Path | None = typer.Option(
            None,
            "--labels",
            help="Class names by index: one per line, or a JSON list (default: the model card <model>.json's, else "
            "class indices). Class folders are matched to them by name; without labels, integer folder names are "
            "class indices and other names are numbered in sorted order.",
        ),
        top_k: int = typer.Option(5, "--top-k", min=1, help="Classes shown per image."),
        batch: int = typer.Option(
            _DEFAULT_BATCH, "--batch", min=1, help="Images per inference call when the model's batch is dynamic."
        ),
        runtime: str = ao.RUNTIME,
        threads: int | None = opt.THREADS,
        precision: str = ao.PRECISION,
        image_size: str | None = opt.IMAGE_SIZE,
        mean: str | None = opt.MEAN,
        std: str | None = opt.STD,
        scale: float | None = opt.SCALE,
        bgr: bool = opt.BGR,
        grayscale: bool = opt.GRAYSCALE,
        layout: str | None = opt.LAYOUT,
        as_json: bool = opt.JSON,
    ) -> None:
        """Classify images on any runtime: top-k per image; on a labelled tree, top-1/top-5 and the confusions."""
        from rich.console import Console

        from modelport.apps.vision.classify import ClassifyOptions, classify
        from modelport.cli.common import console, print_json
        from modelport.errors import AppError

        images = ao.app_image_options(
            size=image_size, mean=mean, std=std, scale=scale, bgr=bgr, layout=layout, grayscale=grayscale
        )
        app_model = ao.app_model_from_cli(model, runtime, threads, precision)
        options = ClassifyOptions(
            top_k=top_k,
            labels=labels,
            preprocess=images.preprocess,
            layout=images.layout,
            grayscale=images.grayscale,
            batch=batch,
        )
        if not inputs:  # pragma: no cover - typer requires one
            raise AppError("give an image or a folder")
        source = inputs[0] if len(inputs) == 1 else inputs
        err = Console(stderr=True, highlight=False)
        if err.is_terminal:  # a transient status line on stderr while batches run
            with err.status("classifying …") as status:
                report = classify(app_model, source, options=options, progress=lambda msg: status.update(msg))
        else:
            report = classify(app_model, source, options=options)
        if as_json:
            print_json(report.to_json())
            return
        render(report, console())


def render(report: ClassifyReport, out: Console) -> None:
    """The report as rich tables: per image, then the accuracy summary of a labelled tree."""
    from rich.markup import escape

    out.print(f"model: {escape(report.model)} ({report.precision})")
    out.print(f"input: {escape(report.input)}; {escape(report.preprocessing)}")
    out.print(f"scores: {report.scores} over {report.classes} classes; labels: {escape(report.labels)}")
    labelled = report.accuracy is not None
    shown = [r for r in report.images if r.correct is False] if labelled else list(report.images)
    if shown:
        _image_table(report, shown, labelled, out)
    out.print(
        f"{len(report.images)} images in {report.seconds:.2f} s; inference {report.mean_latency_ms:.3f} ms per image "
        f"(batches of {report.batch}) on {report.runtime}"
    )
    if report.accuracy is not None:
        _render_accuracy(report, out)


def _image_table(report: ClassifyReport, shown: list[ImageResult], labelled: bool, out: Console) -> None:
    """Per-image rows: every image, or on a labelled tree the misclassified ones (at most :data:`MAX_ROWS`)."""
    from rich.markup import escape
    from rich.table import Table

    k = max(len(r.predictions) for r in report.images)
    title = f"misclassified: {len(shown)} of {len(report.images)}" if labelled else f"top-{k} per image"
    table = Table(title=title, title_justify="left")
    for col, justify in (("image", "left"), ("top-1", "left"), ("p", "right"), ("next", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    if labelled:
        table.add_column("true")
    for r in shown[:MAX_ROWS]:
        best = r.predictions[0] if r.predictions else None
        rest = ", ".join(f"{escape(p.label)} {p.probability:.3f}" for p in r.predictions[1:])
        row = [escape(_short(r.path)), escape(best.label) if best else "–", f"{best.probability:.3f}" if best else "–"]
        row.append(rest)
        if labelled:
            row.append(escape(r.true_label or ""))
        table.add_row(*row)
    out.print(table)
    if len(shown) > MAX_ROWS:
        out.print(f"… and {len(shown) - MAX_ROWS} more (--json lists every image)")


def _render_accuracy(report: ClassifyReport, out: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    acc = report.accuracy
    assert acc is not None
    top5 = f", top-5 {acc.top5:.2%}" if acc.top5 is not None else ""
    out.print(f"accuracy on {acc.images} labelled images: top-1 {acc.top1:.2%}{top5} ({escape(acc.mapping)})")
    per_class = Table(title="per class", title_justify="left")
    for col in ("class", "index", "images", "top-1"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c in acc.per_class:
        per_class.add_row(escape(c.label), str(c.index), str(c.images), f"{c.top1:.2%}")
    out.print(per_class)
    if acc.confused:
        confused = Table(title="most confused (true → predicted)", title_justify="left")
        for col in ("true", "predicted", "images", "share of class"):
            confused.add_column(col, justify="left" if col in ("true", "predicted") else "right")
        for pair in acc.confused:
            confused.add_row(
                escape(pair.true_label), escape(pair.predicted_label), str(pair.count), f"{pair.share:.1%}"
            )
        out.print(confused)
    else:
        out.print("no confusions: every labelled image's top-1 is its class")


def _short(path: str, keep: int = 2) -> str:
    """The last ``keep`` parts of a path (``class/file.png``)."""
    parts = Path(path).parts
    return str(Path(*parts[-keep:])) if len(parts) > keep else path
