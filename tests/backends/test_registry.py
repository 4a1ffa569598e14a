"""The backend registry: every descriptor is consistent, tables derive from it, and one module adds a runtime."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends import backend_for_format, backends, get_backend, open_runner, parse_backends, resolve
from modelport.backends.runner import Runner, RunnerOptions
from modelport.conversion import parse_format, runtime_for_format
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision
from modelport.quantization.api import quantizable_backends


def test_every_backend_resolves_its_entry_points() -> None:
    for backend in backends():
        cls = backend.runner_class()
        assert issubclass(cls, Runner), backend.name
        assert cls.name == backend.name  # the runner reports the backend it belongs to
        if backend.inspector is not None:
            assert callable(resolve(backend.inspector))
        if backend.probe is not None:
            assert callable(resolve(backend.probe))
        if backend.quantizer is not None:
            engine = importlib.import_module(backend.quantizer)
            assert callable(engine.build) and callable(engine.layer_summary), backend.quantizer
            assert backend.quantize_sources, backend.name
        assert backend.formats and all(isinstance(f, Format) for f in backend.formats)
        assert all(p in Precision for _, ps in backend.precisions for p in ps)


def test_names_and_aliases_are_unique_and_resolve() -> None:
    seen: dict[str, str] = {}
    for backend in backends():
        for name in (backend.name, *backend.aliases):
            assert name not in seen, f"{name} names both {seen.get(name)} and {backend.name}"
            seen[name] = backend.name
            assert get_backend(name.upper()).name == backend.name
    assert parse_backends("ov, ort,tflite,ov") == ["openvino", "onnxruntime", "litert"]
    with pytest.raises(InvalidInputError, match=r"valid runtimes: .*onnxruntime.*openvino"):
        get_backend("tvm")


def test_formats_are_run_by_the_backend_that_builds_them() -> None:
    # ONNX is read by OpenVINO too, but ONNX Runtime builds it: it runs ONNX
    expected = {
        Format.ONNX: "onnxruntime",
        Format.OPENVINO_IR: "openvino",
        Format.TFLITE: "litert",
        Format.SAVED_MODEL: "tensorflow",
        Format.TF_GRAPHDEF: "tensorflow",
        Format.KERAS: "tensorflow",
        Format.TORCH: "torch",
        Format.TENSORRT: "tensorrt",
    }
    assert {f: backend_for_format(f).name for f in Format} == expected
    assert {f: runtime_for_format(f) for f in Format} == expected
    # a runtime's name names its artifact format
    assert parse_format("ov") is Format.OPENVINO_IR and parse_format("litert") is Format.TFLITE
    assert parse_format("ir") is Format.OPENVINO_IR and parse_format("saved-model") is Format.SAVED_MODEL
    with pytest.raises(InvalidInputError, match="unknown format 'mlir'"):
        parse_format("mlir")


def test_execution_precision_and_device_tables() -> None:
    ov, ort = get_backend("openvino"), get_backend("onnxruntime")
    # an fp16 OpenVINO IR holds compressed weights and computes f32 on CPU; ORT fp16 runs fp16 kernels
    assert ov.execution_precision(Precision.FP16) is Precision.FP32
    assert ov.execution_precision(Precision.FP16, "gpu") is Precision.FP16
    assert ort.execution_precision(Precision.FP16) is Precision.FP16
    assert ov.supports(Precision.BF16) and not ort.supports(Precision.BF16)
    assert get_backend("tensorrt").executes("cpu") == ()
    assert [b.name for b in quantizable_backends()] == ["onnxruntime", "openvino", "litert"]


def test_open_runner_by_name_format_and_descriptor(tmp_path: Path) -> None:
    path = models.save(models.mlp(), tmp_path / "mlp.onnx")
    x = np.ones((2, 8), np.float32)
    outs = []
    for key in ("onnxruntime", Format.ONNX, get_backend("ort")):
        with open_runner(key, path, RunnerOptions(threads=1)) as runner:
            outs.append(runner.infer({"x": x})["y"])
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_a_new_backend_is_one_module(tmp_path: Path) -> None:
    """A newcomer's runtime: one module that defines a Runner and registers its descriptor — then every generic
    entry point (get_backend, open_runner, parse_backends, the compare verb) knows it."""
    (tmp_path / "numpy_backend.py").write_text(
        textwrap.dedent(
            """
            from collections.abc import Mapping
            import numpy as np
            import onnx
            from onnx.reference import ReferenceEvaluator
            from modelport.backends import register_backend
            from modelport.backends.base import Backend
            from modelport.backends.runner import Runner, RunnerInfo
            from modelport.formats import Format, Precision
            from modelport.inputs import TensorSpec


            class ReferenceRunner(Runner):
                name = "onnx-reference"

                def load(self) -> None:
                    proto = onnx.load(self.model_path)
                    self._session = ReferenceEvaluator(proto)
                    dims = lambda vi: tuple(d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim)
                    self._inputs = [TensorSpec(i.name, "float32", dims(i)) for i in proto.graph.input]
                    self._outputs = [o.name for o in proto.graph.output]

                def info(self) -> RunnerInfo:
                    return RunnerInfo("onnx-reference", onnx.__version__, "cpu", "fp32", "fp32", None)

                def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
                    return list(self._session.run(None, dict(feeds)))


            register_backend(
                Backend(
                    name="onnx-reference",
                    aliases=("ref",),
                    formats=(Format.ONNX,),
                    precisions=(("cpu", (Precision.FP32,)),),
                    runner="numpy_backend:ReferenceRunner",
                    extra="all",
                    engine="onnx",
                )
            )
            """
        )
    )
    model = models.save(models.mlp(), tmp_path / "mlp.onnx")
    script = textwrap.dedent(
        f"""
        import numpy_backend
        import modelport
        from modelport.backends import backend_for_format, parse_backends
        from modelport.formats import Format

        assert parse_backends("ref,ort") == ["onnx-reference", "onnxruntime"]
        assert backend_for_format(Format.ONNX).name == "onnxruntime"  # registered later: not the ONNX default
        options = modelport.CompareOptions(input_shapes=(("x", (2, 8)),))
        report = modelport.compare([r"{model}"], "onnxruntime,ref", options=options)
        assert bool(report), report
        print("ok", report.comparisons[0].max_abs)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok")


def test_installed_finds_the_engine_without_importing_it() -> None:
    import dataclasses

    assert get_backend("onnxruntime").installed()
    missing = dataclasses.replace(get_backend("openvino"), engine="modelport_no_such_engine")
    assert not missing.installed()
    assert not dataclasses.replace(missing, engine="modelport_no_such_engine.sub").installed()  # parent missing
