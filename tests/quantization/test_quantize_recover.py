"""Accuracy recovery: a model whose per-tensor INT8 fails its check is recovered by keeping the error-adding nodes
in float (ONNX Runtime), each attempt reported; without recovery the first build stays and is reported as failing;
the sensitivity ranking names the node where the error enters; the check runs on samples held out of calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import models
from modelport.benchmark.timing import BenchConfig
from modelport.errors import InvalidInputError
from modelport.quantization import QuantizeOptions, QuantTypes, quantize
from modelport.quantization.ort_sensitivity import rank_nodes, sqnr
from modelport.verify.compare import Tolerance, compare_outputs

FAST = BenchConfig(warmup=1, iterations=4)
OPTIONS = QuantizeOptions(types=QuantTypes.U8S8, bench=FAST, samples=40)


@pytest.fixture(scope="module")
def offset_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("offset")
    src = models.save(models.offset_mlp(), root / "offset.onnx")
    np.save(root / "x.npy", np.random.default_rng(0).random((40, 16), dtype=np.float32))
    return src, root / "x.npy"


def _float_inputs_of(path: str | Path, node_name: str) -> bool:
    """True when no DequantizeLinear feeds the node: it runs on float inputs."""
    graph = onnx.load(str(path)).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    node = next(n for n in graph.node if n.name == node_name)
    return not any(i in dq for i in node.input)


def test_without_recovery_the_failing_build_is_reported(offset_model: tuple[Path, Path], tmp_path: Path) -> None:
    src, data = offset_model
    options = QuantizeOptions(types=QuantTypes.U8S8, bench=FAST, samples=40, recover=False)
    report = quantize(src, tmp_path, calib=data, options=options)
    assert report.status == "mismatch" and not report and report.recovery == ()
    assert "beyond int8" in report.reason and not _float_inputs_of(report.artifact, "add_2")
    # the ranking on that build puts the second addition first (against the source, whose first addition ORT's
    # pre-processing fused into the MatMul: only names present in both graphs can be ranked)
    x = np.load(data)[:4]
    ranked = rank_nodes(src, Path(report.artifact), [{"x": x[i : i + 1]} for i in range(4)])
    group, cost = ranked[0]
    assert group[0] == "add_2" and cost > 20.0  # dB of SQNR lost at that node


def test_recovery_keeps_the_error_adding_nodes_in_float(offset_model: tuple[Path, Path], tmp_path: Path) -> None:
    src, data = offset_model
    report = quantize(src, tmp_path, calib=data, options=OPTIONS)
    assert report.status == "verified", report.reason
    steps = report.recovery
    assert steps[0].label == "per-channel weight scales" and steps[0].status == "mismatch"  # no weight outliers here
    # kept in float: the second addition and the producer of its input (the first addition, fused into the MatMul
    # by ORT's pre-processing)
    kept = steps[-1].kept_float
    assert steps[-1].status == "verified" and "add_2" in kept and any(n.startswith("matmul_0") for n in kept)
    assert "after" in report.reason and steps[-1].label in report.reason
    artifact = Path(report.artifact)
    assert artifact.parent == tmp_path and artifact.name == "offset.int8.onnx"
    assert _float_inputs_of(artifact, "add_2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["offset.int8.onnx", "quantize.json", "quantize.md"]
    assert "accuracy recovery attempt" in (tmp_path / "quantize.md").read_text()
    assert json.loads((tmp_path / "quantize.json").read_text())["recovery"][-1]["status"] == "verified"
    # the adopted artifact, run independently on new inputs, agrees with the source within the int8 tolerance
    x = np.random.default_rng(7).random((16, 16), dtype=np.float32)
    ref = ort.InferenceSession(str(src)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(artifact)).run(None, {"x": x})[0]
    assert compare_outputs({"y": ref}, {"y": got}, Tolerance.for_precision("int8")).passed


def test_the_check_runs_on_samples_held_out_of_calibration(offset_model: tuple[Path, Path], tmp_path: Path) -> None:
    src, data = offset_model
    report = quantize(src, tmp_path, calib=data, options=OPTIONS)
    assert report.calibration.samples == 32 and report.evaluation.samples == 40  # a fifth held out, all judge
    assert any("held out of calibration" in w for w in report.evaluation.warnings)


def test_sqnr() -> None:
    a = np.ones(100, np.float32)
    assert sqnr([a], [a]) == 100.0  # equal: the clean ceiling
    assert sqnr([a], [a * 1.1]) == pytest.approx(20.0, abs=1e-4)  # noise a tenth of the signal
    assert sqnr([np.zeros(3)], [np.ones(3)]) < 0.0


def test_dynamic_quantization_comes_first_for_attention_and_recurrent_graphs(tmp_path: Path) -> None:
    from modelport.quantization.ort import _matmul_heavy

    attention = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        att (float[2,4,8] q, float[2,8,4] k) => (float[2,4,4] s) {
            s = MatMul (q, k)
        }
    """)
    assert _matmul_heavy(models.save(attention, tmp_path / "att.onnx"))
    assert not _matmul_heavy(models.save(models.mlp(), tmp_path / "mlp.onnx"))  # weights only: a plain MLP


def test_no_candidate_starts_after_the_recovery_budget(tmp_path: Path) -> None:
    """The first candidate runs; once the budget is spent the next one is recorded as skipped and nothing else runs."""
    import time
    from types import SimpleNamespace

    from modelport.quantization.recover import recover

    made: list[str] = []

    def candidates(job: object, work: Path, built: object):  # type: ignore[no-untyped-def]
        for label in ("first", "second", "third"):

            def make(label: str = label) -> tuple[object, tuple[str, ...]]:
                made.append(label)
                time.sleep(0.02)
                return SimpleNamespace(files=()), ()

            yield label, make

    job = SimpleNamespace(say=lambda _m: None, src=tmp_path / "m.onnx")
    accepted, steps = recover(
        job,  # type: ignore[arg-type]
        tmp_path,
        SimpleNamespace(files=()),  # type: ignore[arg-type]
        candidates,
        lambda _cand: None,  # type: ignore[arg-type,return-value]
        None,  # type: ignore[arg-type]
        lambda _vs: (None, "mismatch", "still beyond int8"),
        budget_s=0.01,
    )
    assert accepted is None and made == ["first"]
    assert [(s.label, s.status) for s in steps] == [("first", "mismatch"), ("second", "skipped")]
    assert "budget of 0.01 s" in steps[1].reason


def test_the_recovery_budget_must_be_positive() -> None:
    with pytest.raises(InvalidInputError, match="recovery budget"):
        QuantizeOptions(recover_seconds=0)
