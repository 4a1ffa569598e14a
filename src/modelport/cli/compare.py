"""``modelport compare MODEL [MODEL2] --runtimes …``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from modelport.cli import options as opt
from modelport.cli.common import comparison_table, console, print_json, single_input


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        models: list[Path] = typer.Argument(
            ..., help="One or two models; the first on the first runtime is the reference."
        ),
        runtimes: str = opt.runtimes_option("onnxruntime"),
        input_shape: list[str] = opt.INPUT_SHAPE,
        feeds: Path | None = opt.FEEDS,
        image: list[Path] = opt.IMAGE,
        image_size: str | None = opt.IMAGE_SIZE,
        layout: str | None = opt.LAYOUT,
        mean: str | None = opt.MEAN,
        std: str | None = opt.STD,
        scale: float | None = opt.SCALE,
        bgr: bool = opt.BGR,
        grayscale: bool = opt.GRAYSCALE,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        precision: str = opt.precision_option(),
        threads: int | None = opt.THREADS,
        seed: int = opt.SEED,
        inputs: list[str] = opt.INPUTS,
        outputs: list[str] = opt.OUTPUTS,
        trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
        as_json: bool = opt.JSON,
    ) -> None:
        """Run the same inputs through every (model, runtime) pair and compare with the reference."""
        from modelport.backends import open_runner
        from modelport.backends.runner import RunnerOptions
        from modelport.errors import InvalidInputError
        from modelport.inputs import load_feeds, load_image_feeds
        from modelport.verify.compare import CompareOptions, compare

        prec = opt.precision(precision)
        names = opt.split_list(runtimes)
        shapes = opt.input_shapes(input_shape)
        options = CompareOptions(
            runner=RunnerOptions(threads=threads, precision=prec),
            loader=opt.loader(inputs=inputs, outputs=outputs, trust_remote_code=trust_remote_code, shapes=shapes),
            input_shapes=tuple(shapes.items()),
            seed=seed,
            tolerance=opt.tolerance(prec, rtol, atol),
        )
        feed_data = None
        if feeds is not None and image:
            raise InvalidInputError("give either --feeds or --image, not both")
        if feeds is not None or image:
            reference = names[0] if names else "onnxruntime"
            with open_runner(reference, models[0], options.runner, options.loader) as ref:
                if feeds is not None:
                    feed_data = load_feeds(feeds, ref.input_specs)
                else:
                    spec = single_input(ref.input_specs)
                    pre = opt.image_preprocess(
                        size=image_size, mean=mean, std=std, scale=scale, bgr=bgr, layout=layout,
                        grayscale=grayscale, spec=spec,
                    )  # fmt: skip
                    assert pre is not None
                    feed_data = load_image_feeds(image, spec, pre)
        report = compare(models, names, options=options, feeds=feed_data)
        if as_json:
            print_json(report.to_json())
        else:
            out = console()
            reference = report.comparisons[0].reference if report.comparisons else "?"
            tol = report.comparisons[0].tolerance if report.comparisons else "?"
            feeds_text = ", ".join(f"{n} {list(s)} {d}" for n, s, d in report.feeds)
            out.print(f"reference: {reference}; feeds: {feeds_text}", markup=False)
            out.print(comparison_table(report.comparisons, f"outputs vs reference ({escape(str(tol))})"))
            out.print("[green]all outputs match[/]" if report else "[red]mismatch[/]")
        if not report:
            raise typer.Exit(code=1)
