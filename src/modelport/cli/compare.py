"""``modelport compare MODEL [MODEL2] --runtimes …``."""

from __future__ import annotations

from pathlib import Path

import typer

from modelport.cli.common import (
    comparison_table,
    console,
    image_preprocess,
    print_json,
    shapes_option,
    single_input,
    split_list,
)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        models: list[Path] = typer.Argument(
            ..., help="One or two models; the first on the first runtime is the reference."
        ),
        runtimes: str = typer.Option("onnxruntime", "--runtimes", "-r", help="Comma-separated runtimes."),
        input_shape: list[str] = typer.Option([], "--input-shape", help="NAME:D1,D2,… for dynamic dims."),
        feeds: Path | None = typer.Option(None, "--feeds", help=".npz (one array per input) or .npy feed file."),
        image: list[Path] = typer.Option([], "--image", help="Image file(s) batched into the single image input."),
        image_size: str | None = typer.Option(None, "--image-size", help="H,W to resize to (default: model's)."),
        layout: str = typer.Option("NCHW", "--layout", help="Image tensor layout: NCHW or NHWC."),
        mean: str = typer.Option("0", "--mean", help="Per-channel mean after scaling, e.g. 0.485,0.456,0.406."),
        std: str = typer.Option("1", "--std", help="Per-channel std after scaling, e.g. 0.229,0.224,0.225."),
        scale: float = typer.Option(1 / 255, "--scale", help="Pixel scale applied first (default 1/255)."),
        bgr: bool = typer.Option(False, "--bgr", help="Keep OpenCV's BGR channel order."),
        grayscale: bool = typer.Option(False, "--grayscale", help="Read images as one channel."),
        rtol: float | None = typer.Option(None, "--rtol", help="Relative tolerance (default by precision)."),
        atol: float | None = typer.Option(None, "--atol", help="Absolute tolerance (default by precision)."),
        precision: str = typer.Option("fp32", "--precision", help="Execution precision: fp32, fp16, bf16."),
        threads: int | None = typer.Option(None, "--threads", help="Runtime threads."),
        seed: int = typer.Option(0, "--seed", help="Seed of random feeds."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Run the same inputs through every (model, runtime) pair and compare with the reference."""
        from modelport.backends import open_runner
        from modelport.backends.runner import RunnerOptions
        from modelport.errors import InvalidInputError
        from modelport.formats import Precision
        from modelport.inputs import load_feeds, load_image_feeds
        from modelport.verify.compare import Tolerance, compare

        prec = Precision.parse(precision)
        default = Tolerance.for_precision(prec)
        tol = Tolerance(rtol=default.rtol if rtol is None else rtol, atol=default.atol if atol is None else atol)
        names = split_list(runtimes)
        options = RunnerOptions(threads=threads, precision=prec)
        feed_data = None
        if feeds is not None and image:
            raise InvalidInputError("give either --feeds or --image, not both")
        if feeds is not None or image:
            with open_runner(names[0] if names else "onnxruntime", models[0], options) as ref:
                if feeds is not None:
                    feed_data = load_feeds(feeds, ref.input_specs)
                else:
                    spec = single_input(ref.input_specs)
                    pre = image_preprocess(spec, image_size, layout, mean, std, scale, bgr, grayscale)
                    feed_data = load_image_feeds(image, spec, pre)
        report = compare(
            models,
            names,
            feeds=feed_data,
            input_shapes=shapes_option(input_shape),
            seed=seed,
            tolerance=tol,
            options=options,
        )
        if as_json:
            print_json(report.to_json())
        else:
            out = console()
            reference = report.comparisons[0].reference if report.comparisons else "?"
            out.print(f"reference: {reference}; feeds: " + ", ".join(f"{n} {list(s)} {d}" for n, s, d in report.feeds))
            out.print(comparison_table(report.comparisons, f"outputs vs reference ({tol})"))
            out.print("[green]all outputs match[/]" if report else "[red]mismatch[/]")
        if not report:
            raise typer.Exit(code=1)
