"""``modelport quantize MODEL --runtime onnxruntime|openvino|tflite --calib SOURCE [--eval SOURCE] -o OUT``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, print_json

if TYPE_CHECKING:
    from modelport.quantization.report import QuantizeReport


def register(app: typer.Typer) -> None:
    @app.command("quantize")
    def quantize_cmd(
        model: Path = typer.Argument(
            ...,
            help="ONNX model (also OpenVINO IR for openvino; SavedModel/Keras for litert). "
            "Runtimes: onnxruntime, openvino, litert (alias tflite).",
        ),
        runtime: str = opt.runtime_option("onnxruntime"),
        calib: str = typer.Option(
            ..., "--calib", help="Image folder, .npy/.npz, mnist[:split], fashion-mnist[:split], or random."
        ),
        out_dir: Path = typer.Option(..., "--output", "-o", help="Output directory."),
        samples: int = typer.Option(300, "--samples", help="Calibration samples."),
        eval_source: str | None = typer.Option(None, "--eval", help="Evaluation data (labelled: top-1 and drop)."),
        eval_samples: int | None = typer.Option(None, "--eval-samples", help="Cap evaluation samples."),
        max_drop: float | None = typer.Option(
            None, "--max-drop", help="Allowed top-1 drop in points (OpenVINO: NNCF accuracy control)."
        ),
        per_channel: bool = typer.Option(False, "--per-channel", help="Per-channel weight scales (ONNX Runtime)."),
        method: str | None = typer.Option(None, "--method", help="Calibration: minmax, entropy, percentile."),
        types: str = typer.Option("auto", "--types", help="ONNX Runtime types: auto, u8s8, s8s8, u8u8."),
        mode: str = typer.Option("static", "--mode", help="static, or dynamic (ONNX Runtime)."),
        exclude: list[str] = typer.Option([], "--exclude", help="Op type or node name to keep in float."),
        fp16: bool = typer.Option(False, "--fp16", help="Add an FP16 variant to the comparison."),
        int8_io: bool = typer.Option(False, "--int8-io", help="TFLite: int8 inputs and outputs."),
        size: str | None = opt.IMAGE_SIZE,
        mean: str | None = opt.MEAN,
        std: str | None = opt.STD,
        scale: float | None = opt.SCALE,
        bgr: bool = opt.BGR,
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = typer.Option(None, "--batch", help="Latency batch (default: the model's, else 1)."),
        threads: int | None = opt.THREADS,
        seconds: float = typer.Option(1.0, "--seconds", help="Timing budget per variant."),
        no_recover: bool = typer.Option(
            False, "--no-recover", help="Keep the first INT8 build even when it fails its check (no recovery ladder)."
        ),
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Quantize to INT8 with real calibration data; measure size, latency and accuracy against FP32."""
        from modelport.benchmark.timing import BenchConfig
        from modelport.quantization import CalibrationMethod, Mode, QuantizeOptions, QuantTypes, quantize

        options = QuantizeOptions(
            samples=samples,
            eval_samples=eval_samples,
            per_channel=per_channel,
            method=CalibrationMethod.parse(method) if method else None,  # type: ignore[arg-type]
            types=QuantTypes.parse(types),  # type: ignore[arg-type]
            mode=Mode.parse(mode),  # type: ignore[arg-type]
            exclude=tuple(opt.split_list(exclude)),
            max_drop=max_drop,
            preprocess=opt.image_preprocess(size=size, mean=mean, std=std, scale=scale, bgr=bgr),
            batch=batch,
            threads=threads,
            bench=BenchConfig(warmup=5, seconds=seconds),
            fp16=fp16,
            int8_io=int8_io,
            seed=seed,
            recover=not no_recover,
            **opt.api_kwargs(
                QuantizeOptions,
                input_shapes=("--input-shape", opt.input_shape_items(input_shape), bool(input_shape)),
                **opt.tolerance_fields(rtol, atol),
            ),
        )
        err = Console(stderr=True, highlight=False)
        report = quantize(
            model,
            out_dir,
            runtime=runtime,
            calib=calib,
            eval=eval_source,
            options=options,
            progress=(lambda m: err.log(m)) if sys.stderr.isatty() else None,
        )
        if as_json:
            print_json(report.to_json())
        else:
            _print_report(report)
        report.require()


def _print_report(r: QuantizeReport) -> None:
    from modelport.quantization.render import HEADERS, kept_text, layers_text, variant_row

    out = console()
    out.print(f"{r.runtime}: {r.engine}", markup=False)
    out.print(f"why: {r.choice}", markup=False)
    out.print(f"calibration: {r.calibration.samples} samples of {r.calibration.source}", markup=False)
    for w in (*r.calibration.warnings, *r.evaluation.warnings):
        out.print(f"warning: {w}", markup=False)
    if r.trials:
        trials = Table(title="settings tried", title_justify="left")
        for h in ("setting", "p50 ms", "speed-up", "int8 ops", "float layers", "chosen"):
            trials.add_column(h, justify="left" if h == "setting" else "right")
        for t in r.trials:
            trials.add_row(
                t.setting, f"{t.p50_ms:.3f}", f"{t.speedup:.2f}×", str(t.int8_ops), str(t.float_layers), "✓" * t.chosen
            )
        out.print(trials)
    if r.recovery:
        steps = Table(title="accuracy recovery", title_justify="left")
        for h in ("attempt", "result", "kept in float", "s"):
            steps.add_column(h, justify="right" if h == "s" else "left")
        for step in r.recovery:
            steps.add_row(
                step.label, f"{step.status}: {step.reason}", kept_text(step.kept_float), f"{step.seconds:.1f}"
            )
        out.print(steps)
    table = Table(title=f"fp32 vs int8 on {r.runtime} (batch {r.batch})", title_justify="left")
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("variant", "executes", "flags") else "right")
    for v in r.variants:
        table.add_row(*variant_row(v))
    out.print(table)
    out.print(f"layers: {layers_text(r)}", markup=False)
    out.print(f"{r.status}: {r.reason}", markup=False)
    out.print(f"wrote {r.artifact} and {Path(r.artifact).parent / 'quantize.md'}", markup=False)
