"""``modelport compare MODEL [MODEL2] --runtimes …``.

Each (model, runtime) pair runs in a child process of its own (``--timeout`` seconds each, as ``port``'s targets;
``--timeout 0``: all in this process): a runtime that crashes, hangs or raises is printed as that runtime's failure
under the table and the command exits 1; a reference that fails is the one error line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from modelport.cli import options as opt
from modelport.cli.common import comparison_table, console, print_json, single_input

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    from rich.table import Table

    from modelport.divergence.analysis import Divergence
    from modelport.divergence.int8 import LayerContribution
    from modelport.verify.compare import AccuracyReport, CompareOptions


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
        per_tensor: bool = typer.Option(
            False, "--per-tensor", help="Compare every intermediate tensor of two models; name the first that diverges."
        ),
        bisect: bool = typer.Option(
            False,
            "--bisect",
            help="Cut both models at midpoints and compare the prefixes (runtimes that cannot "
            "expose their tensors, fused kernels).",
        ),
        html: Path | None = typer.Option(
            None, "--html", help="With --per-tensor/--bisect: write an HTML page plotting the error per tensor."
        ),
        timeout: float = opt.TIMEOUT,
    ) -> None:
        """Run the same inputs through every (model, runtime) pair and compare with the reference."""
        from modelport.backends.runner import RunnerOptions
        from modelport.errors import InvalidInputError
        from modelport.inputs import load_feeds, load_image_feeds
        from modelport.verify.compare import CompareOptions, compare, reference_inputs

        prec = opt.precision(precision)
        names = opt.split_list(runtimes)
        shapes = opt.input_shapes(input_shape)
        options = CompareOptions(
            runner=RunnerOptions(threads=threads, precision=prec),
            loader=opt.loader(inputs=inputs, outputs=outputs, trust_remote_code=trust_remote_code, shapes=shapes),
            input_shapes=tuple(shapes.items()),
            seed=seed,
            tolerance=opt.tolerance(prec, rtol, atol),
            timeout=opt.child_timeout(timeout),
        )
        feed_data = None
        if feeds is not None and image:
            raise InvalidInputError("give either --feeds or --image, not both")
        if feeds is not None or image:
            specs = list(reference_inputs(models[0], names[0] if names else "onnxruntime", options=options))
            if feeds is not None:
                feed_data = load_feeds(feeds, specs)
            else:
                spec = single_input(specs)
                pre = opt.image_preprocess(
                    size=image_size, mean=mean, std=std, scale=scale, bgr=bgr, layout=layout,
                    grayscale=grayscale, spec=spec,
                )  # fmt: skip
                assert pre is not None
                feed_data = load_image_feeds(image, spec, pre)
        if per_tensor or bisect:
            _divergence(models, names, options, feed_data, "bisect" if bisect else "per-tensor", html, as_json)
            return
        if html is not None:
            raise InvalidInputError("--html needs --per-tensor or --bisect")
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
            for failure in report.failures:
                out.print(f"[red]{escape(failure.line())}[/]")
            out.print(_verdict(report))
        if not report:
            raise typer.Exit(code=1)


def _verdict(report: AccuracyReport) -> str:
    """The last line: all matched, or what did not."""
    if report:
        return "[green]all outputs match[/]"
    words = []
    if not all(c.passed for c in report.comparisons):
        words.append("mismatch")
    if report.failures:
        n = len(report.failures)
        words.append(f"{n} runtime{'s' if n > 1 else ''} failed")
    return f"[red]{'; '.join(words)}[/]"


def _divergence(
    models: list[Path],
    runtimes: list[str],
    options: CompareOptions,
    feeds: Mapping[str, np.ndarray] | None,
    mode: str,
    html: Path | None,
    as_json: bool,
) -> None:
    """``compare A B --per-tensor`` / ``--bisect``: where the candidate diverges from the reference."""
    from modelport.divergence import report as render
    from modelport.divergence.api import BisectOptions, bisect
    from modelport.errors import InvalidInputError

    if len(models) == 1 and len(runtimes) == 2:  # one model on two runtimes
        models = [models[0], models[0]]
    if len(models) != 2:
        raise InvalidInputError(
            f"--per-tensor and --bisect compare exactly two models, got {len(models)}",
            hint="give a reference and a candidate (or one model and two --runtimes)",
        )
    opts = BisectOptions(
        runtimes=tuple(runtimes),
        tolerance=options.tolerance,
        seed=options.seed,
        input_shapes=options.input_shapes,
        feeds=feeds,
        threads=options.runner.threads,
        mode=mode,
    )
    out = console()
    result = bisect(models, options=opts, progress=None if as_json else lambda line: out.print(line, markup=False))
    if html is not None:
        result.write_html(html)
    if as_json:
        print_json(result.to_json())
    else:
        if result.note:
            out.print(f"[yellow]{escape(result.note)}[/]")
        div = result.divergence
        if div is not None:
            out.print(
                f"reference: {div.reference}; candidate: {div.candidate}; tolerance {div.tolerance}", markup=False
            )
            out.print(render.first_line(div), markup=False, style="red" if div.first else "green")
            out.print(_divergence_table(div))
            out.print(render.matched_line(div), markup=False)
            out.print("[green]outputs match[/]" if div.outputs_passed else "[red]outputs mismatch[/]")
            if result.ranking:
                out.print(_ranking_table(result.ranking))
                if result.exclude:
                    out.print(f"keep in float: modelport quantize … --exclude {','.join(result.exclude)}", markup=False)
        elif result.bisection is not None:
            b = result.bisection
            out.print(f"reference: {b.reference}; candidate: {b.candidate}; tolerance {b.tolerance}", markup=False)
            out.print(b.summary(), markup=False)
        if html is not None:
            out.print(f"wrote {html}", markup=False)
    if not result:
        raise typer.Exit(code=1)


def _ranking_table(ranking: Sequence[LayerContribution]) -> Table:
    """The INT8 layers ranked by the error each adds (the top ten)."""
    from rich.table import Table

    table = Table(title="layers by the quantization error they add (angle to the reference, radians)")
    for col in ("layer", "op", "adds", "inherited", "max abs"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for r in ranking[:10]:
        table.add_row(r.op, r.op_type, f"{r.contribution:.3g}", f"{r.inherited:.3g}", f"{r.max_abs:.3g}")
    return table


def _divergence_table(div: Divergence) -> Table:
    from rich.table import Table

    from modelport.divergence.report import condensed

    rows = condensed(div)
    table = Table(
        title=f"error along the graph ({len(rows)} of {len(div.tensors)} matched tensors)", title_justify="left"
    )
    for col in ("", "tensor", "op", "by", "max abs", "bound", "max rel", "cosine", "result"):
        table.add_column(col, justify="right" if col in ("max abs", "bound", "max rel", "cosine") else "left")
    for t in rows:
        first = div.first is not None and t.reference == div.first.reference
        name = t.reference if t.candidate == t.reference else f"{t.reference} ↔ {t.candidate}"
        table.add_row(
            "[red]first[/]" if first else "",
            escape(name),
            escape(f"{t.op_type} {t.op}".strip()),
            t.matched_by,
            f"{t.max_abs:.3g}",
            f"{t.atol_eff:.3g}",
            f"{t.max_rel:.3g}",
            f"{t.cosine:.6f}",
            "[green]pass[/]" if t.passed else "[red]FAIL[/]",
        )
    return table
