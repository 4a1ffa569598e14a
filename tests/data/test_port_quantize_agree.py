"""``port`` and ``quantize`` evaluate with the same code: on the same runner and samples they report the same
task metrics, equal to :func:`~modelport.data.evaluate.evaluate_classifier` called directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.assets import default_model_path
from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.benchmark.timing import BenchConfig
from modelport.data import SampleSet, TaskMetrics, evaluate_classifier, load_samples
from modelport.formats import Precision
from modelport.porting.pipeline import PortOptions, port
from modelport.quantization import QuantizeOptions, QuantTypes, quantize

FAST = BenchConfig(warmup=1, iterations=3)


def _task(m: TaskMetrics | None) -> tuple[object, ...]:
    assert m is not None
    return (m.dataset, m.samples, m.top1, m.top5, m.agreement)


@pytest.fixture(scope="module")
def digits() -> SampleSet:
    with open_runner("onnxruntime", default_model_path()) as runner:
        specs = runner.input_specs
    samples, _ = load_samples("mnist:test", specs, role="evaluation", limit=600, seed=1)
    return samples


def test_port_and_quantize_report_the_same_top1(tmp_path: Path, digits: SampleSet) -> None:
    model = default_model_path()
    with open_runner("onnxruntime", model) as runner:
        direct = evaluate_classifier(runner, digits)
    assert direct.samples == 600 and direct.top1 is not None and direct.top5 is not None
    assert 0.97 < direct.top1 < 1.0  # a real measurement, not a constant

    options = PortOptions(targets=("onnxruntime",), precisions=(Precision.FP32,), optimize=False, bench=FAST)
    ported = port(model, tmp_path / "port", options=options, eval_set=digits)
    assert ported.feeds == f"64 real samples from {digits.name}"
    assert ported.source_accuracy == direct
    assert ported.targets[0].accuracy == direct

    qopts = QuantizeOptions(samples=64, types=QuantTypes.U8S8, bench=FAST)
    quantized = quantize(model, tmp_path / "int8", runtime="onnxruntime", calib=digits, eval=digits, options=qopts)
    assert _task(quantized.fp32.metric) == _task(direct)  # the FP32 variant: same runner, samples and numbers
    int8 = quantized.int8.metric
    assert int8 is not None and int8.agreement is not None
    with open_runner("onnxruntime", quantized.artifact, RunnerOptions(precision=Precision.INT8)) as runner:
        again = evaluate_classifier(runner, digits)
    assert _task(int8)[:4] == _task(again)[:4]
    assert quantized.drop == pytest.approx(100 * (direct.top1 - again.top1))  # type: ignore[operator]
