"""optimize (+ OptimizeResult.write): reports, verification, options, and every bad-input path
(nothing written on failure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import models
from modelport.errors import InvalidInputError, ModelLoadError, PassError, VerificationError
from modelport.passes import OptimizeOptions, OptimizeReport, api, base, optimize, register_pass
from modelport.passes.base import ModelportPass, PassOptions

LIGHT = Path(onnx.__file__).parent / "backend/test/data/light"


@pytest.fixture
def wrong_pass(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Registers, for this test only, a pass that changes numerics (scales every Relu's output by 1.01)."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register_pass("test-wrong-numerics", summary="deliberately wrong", default=False)
    class WrongNumerics(ModelportPass[PassOptions]):
        def apply(self, model: ir.Model) -> bool:
            changed = False
            for node in list(model.graph):
                out = node.outputs[0]
                if node.op_type != "Relu" or f"{out.name}_k" in model.graph.initializers:
                    continue
                scale = ir.Value(name=f"{out.name}_k", const_value=ir.tensor(np.float32(1.01)))
                scale.shape, scale.type = ir.Shape([]), ir.TensorType(ir.DataType.FLOAT)
                model.graph.register_initializer(scale)
                uses = list(out.uses())
                mul = ir.node("Mul", inputs=[out, scale])
                mul.outputs[0].type = out.type
                for user, index in uses:
                    user.replace_input_with(index, mul.outputs[0])
                if out.is_graph_output():
                    model.graph.outputs[model.graph.outputs.index(out)] = mul.outputs[0]
                    mul.outputs[0].name, out.name = out.name, f"{out.name}_raw"
                model.graph.insert_after(node, mul)
                changed = True
            return changed

    yield "test-wrong-numerics"


def test_write_saves_the_model_and_reports_file_sizes(tmp_path: Path) -> None:
    src = models.save(models.conv_bn(), tmp_path / "in.onnx")
    dst = tmp_path / "out.onnx"
    result = optimize(src, options=OptimizeOptions(batch=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]  # optimize itself writes nothing
    report = result.write(dst)
    assert dst.exists() and report.nodes_before == 3 and report.nodes_after == 2
    assert report.ops_before["BatchNormalization"] == 1 and "BatchNormalization" not in report.ops_after
    assert report.verification is not None and report.verification.passed
    assert report.verification.max_abs < 1e-4
    assert report.size_before == src.stat().st_size and report.size_after == dst.stat().st_size
    assert {p.name for p in report.passes} >= {"fold-batchnorm", "fold-constants"}
    assert OptimizeReport.from_json(report.to_json()) == report
    assert OptimizeReport.from_json(result.to_json()) == result.report
    onnx.checker.check_model(onnx.load(str(dst)), full_check=True)


def test_write_saves_the_optimized_model(tmp_path: Path) -> None:
    src = models.save(models.conv_bn(), tmp_path / "in.onnx")
    report = optimize(src, options=OptimizeOptions(batch=2)).write(tmp_path / "a.onnx")
    assert report.nodes_after == 2 and report.size_after == (tmp_path / "a.onnx").stat().st_size
    # the batch given as a shape gives the same model
    again = optimize(src, options=OptimizeOptions(input_shapes=(("image", (2, 3, 8, 8)),))).write(tmp_path / "b.onnx")
    assert again.nodes_after == 2 and (tmp_path / "b.onnx").read_bytes() == (tmp_path / "a.onnx").read_bytes()


def test_progress_threads_and_in_memory_write(tmp_path: Path) -> None:
    lines: list[str] = []
    model = ir.serde.deserialize_model(models.conv_bn())
    result = optimize(model, options=OptimizeOptions(batch=1, threads=1), progress=lines.append)
    assert lines[0].startswith("running ") and lines[-1].startswith("verifying the optimized model")
    v = result.report.verification
    assert v is not None and v.runner is not None and v.runner.threads == 1
    report = result.write(tmp_path / "m.onnx")
    assert report.source == "<model>" and report.size_after == (tmp_path / "m.onnx").stat().st_size


def test_options_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="max_iterations"):
        OptimizeOptions(max_iterations=0)


def test_in_memory_model_is_not_modified() -> None:
    model = ir.serde.deserialize_model(models.conv_bn())
    before = [n.op_type for n in model.graph]
    result = optimize(model, options=OptimizeOptions(batch=1))
    assert [n.op_type for n in model.graph] == before
    assert [n.op_type for n in result.model.graph] == ["Conv", "Relu"]


def test_given_feeds_are_verified_too(tmp_path: Path) -> None:
    src = models.save(models.mlp(), tmp_path / "in.onnx")
    feeds = {"x": np.full((5, 8), 1e3, np.float32)}
    report = optimize(src, feeds=feeds).report
    assert report.verification is not None and report.verification.passed


def test_light_model_default_pipeline_is_idempotent(tmp_path: Path) -> None:
    first = optimize(LIGHT / "light_squeezenet.onnx").write(tmp_path / "a.onnx")
    assert first.nodes_after < first.nodes_before and first.modified
    second = optimize(tmp_path / "a.onnx").write(tmp_path / "b.onnx")
    assert second.nodes_after == first.nodes_after
    assert not second.modified, [p.name for p in second.passes if p.modified]


def test_a_pass_that_breaks_numerics_is_rolled_back(tmp_path: Path, wrong_pass: str) -> None:
    src = models.save(models.conv_bn(), tmp_path / "in.onnx")
    report = optimize(src, options=OptimizeOptions(passes=("default", wrong_pass), batch=1)).write(tmp_path / "o.onnx")
    assert [name for name, _ in report.rolled_back] == [wrong_pass]
    assert "max abs error" in report.rolled_back[0][1]
    assert report.verification is not None and report.verification.passed
    assert "Mul" not in report.ops_after and report.nodes_after == 2  # the default passes still folded the BN
    assert not any(p.name == wrong_pass for p in report.passes)


def test_wrong_numerics_no_single_pass_explains_fail_and_write_nothing(
    tmp_path: Path, wrong_pass: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = models.save(models.conv_bn(), tmp_path / "in.onnx")
    dst = tmp_path / "out.onnx"
    spec = base._REGISTRY[wrong_pass]
    monkeypatch.setitem(base._REGISTRY, "test-wrong-twice", dataclasses.replace(spec, name="test-wrong-twice"))
    with pytest.raises(VerificationError, match="max abs error") as info:
        optimize(src, options=OptimizeOptions(passes=(wrong_pass, "test-wrong-twice"), batch=1)).write(dst)
    assert info.value.exit_code == 1 and wrong_pass in str(info.value)
    assert not dst.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]
    # without verification the same pass goes through
    optimize(src, options=OptimizeOptions(passes=(wrong_pass,), batch=1, verify=False)).write(dst)
    assert dst.exists()


def test_unknown_pass_lists_the_valid_ones(tmp_path: Path) -> None:
    src = models.save(models.conv_bn(), tmp_path / "in.onnx")
    with pytest.raises(PassError, match="unknown pass 'fold-everything'") as info:
        optimize(src, options=OptimizeOptions(passes=("fold-everything",)))
    assert "fold-batchnorm" in str(info.value) and "eliminate-transposes" in str(info.value)
    with pytest.raises(PassError, match="unknown pass"):
        optimize(src, options=OptimizeOptions(skip=("nope",)))


@pytest.mark.parametrize(
    ("content", "error"),
    [(None, ModelLoadError), (b"\x08\x07garbage", ModelLoadError), ("checker", ModelLoadError)],
)
def test_unloadable_models(tmp_path: Path, content: bytes | str | None, error: type[Exception]) -> None:
    src = tmp_path / "in.onnx"
    if content == "checker":
        bad = models.conv_bn()
        bad.graph.node[0].input[1] = "missing_weight"  # dangling input: fails onnx.checker
        src.write_bytes(bad.SerializeToString())
    elif isinstance(content, bytes):
        src.write_bytes(content)
    with pytest.raises(error):
        optimize(src).write(tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_bad_input_shape_writes_nothing(tmp_path: Path) -> None:
    src = models.save(models.mlp(), tmp_path / "in.onnx")
    with pytest.raises(InvalidInputError, match="rank"):
        optimize(src, options=OptimizeOptions(input_shapes=(("x", (2, 8, 1)),))).write(tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_refuses_to_overwrite_the_source(tmp_path: Path) -> None:
    src = models.save(models.mlp(), tmp_path / "in.onnx")
    data = src.read_bytes()
    with pytest.raises(InvalidInputError, match="overwrite"):
        optimize(src).write(src)
    result = optimize(src)
    with pytest.raises(InvalidInputError, match="overwrite"):
        result.write(tmp_path / "." / "in.onnx")
    assert src.read_bytes() == data


def test_dynamic_dims_are_verified_at_two_sizes_chosen_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        d (float[N,H] x) => (float[N,H] y) { y = Relu(x) }
    """)
    src = models.save(model, tmp_path / "in.onnx")
    seen: list[tuple[int, ...]] = []
    real = api.verify_models

    def spy(original, optimized, feed_sets, tolerance, threads):  # type: ignore[no-untyped-def]
        seen.extend(tuple(f["x"].shape) for f in feed_sets)
        return real(original, optimized, feed_sets, tolerance, threads)

    monkeypatch.setattr(api, "verify_models", spy)
    report = optimize(src).report
    assert report.verification is not None and report.verification.passed
    assert seen == [(1, 64), (2, 96)]  # batch 1 and 2, H (a spatial name) 64 and 96: the model stays dynamic
    seen.clear()
    optimize(src, options=OptimizeOptions(input_shapes=(("x", (2, 3)),)))
    assert seen == [(2, 3)]  # --input-shape narrows to exactly that
