"""The command line: each spine verb's output and exit code, and every error path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx.helper
import pytest

import models
from modelport.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    paths = {
        "mlp": models.save(models.mlp(), d / "mlp.onnx"),
        "mlp2": models.save(models.mlp(seed=1), d / "mlp2.onnx"),
        "two": models.save(models.two_inputs(), d / "two.onnx"),
    }
    text = d / "notes.onnx"
    text.write_text("hello, not a model\n")
    paths["text"] = text
    data = models.wide_mlp().SerializeToString()
    cut = d / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    paths["cut"] = cut
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["undefined_tensor"], ["y"])],
        "bad",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    bad = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    bad.ir_version = 8
    paths["bad"] = models.save(bad, d / "bad.onnx")
    np.save(d / "wrong_shape.npy", np.zeros((2, 7), np.float32))
    np.save(d / "wrong_dtype.npy", np.zeros((2, 8), np.float64))
    np.save(d / "good.npy", np.ones((2, 8), np.float32))
    for name in ("wrong_shape", "wrong_dtype", "good"):
        paths[name] = d / f"{name}.npy"
    return paths


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(code: int, err: str, *fragments: str) -> None:
    """Exit 2, exactly one stderr line starting with ``modelport: error:``, no traceback."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("modelport: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


# --- verbs -------------------------------------------------------------------------------------------


def test_console_script_help() -> None:
    exe = Path(sys.executable).parent / "modelport"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for verb in ("inspect", "compare", "bench", "convert", "port", "doctor"):
        assert verb in result.stdout


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("Usage: modelport") and "modelport: error" not in err
    assert "port" in err and "Commands" in err


def test_verb_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "bench", "--help")
    assert code == 0
    assert "--batch" in out and "--iterations" in out


def test_inspect_text(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, err = run(capsys, "inspect", files["mlp"])
    assert code == 0, err
    assert "mlp.onnx" in out and "(onnx," in out
    assert "input" in out and "[batch, 8]" in out and "[batch, 4]" in out
    assert "MatMul" in out and "Relu" in out
    assert "parameters: 208" in out  # 8·16 + 16 + 16·4
    assert err == ""


def test_inspect_json(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "inspect", files["two"], "--json")
    assert code == 0
    data = json.loads(out)
    assert data["format"] == "onnx"
    assert [i["name"] for i in data["inputs"]] == ["a", "b"]
    assert data["inputs"][0]["shape"] == [2, 3]
    assert [o["name"] for o in data["outputs"]] == ["s", "p"]
    assert dict(data["op_histogram"]) == {"Add": 1, "Mul": 1}
    assert data["node_count"] == 2


def test_compare_pass(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, err = run(capsys, "compare", files["mlp"], "-r", "onnxruntime,openvino", "--input-shape", "x:2,8")
    assert code == 0, err
    assert "mlp.onnx@openvino/fp32" in out
    assert "all outputs match" in out


def test_compare_mismatch_exits_1(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "compare", files["mlp"], files["mlp2"], "--input-shape", "x:2,8")
    assert code == 1
    assert "mismatch" in out and "FAIL" in out


def test_compare_json_and_feeds(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "compare", files["mlp"], "-r", "ort,ov", "--feeds", files["good"], "--json")
    assert code == 0
    data = json.loads(out)
    assert data["feeds"] == [["x", [2, 8], "float32"]]
    assert data["comparisons"][0]["outputs"][0]["passed"] is True


def test_compare_loose_tolerance(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    args = ["compare", files["mlp"], files["mlp2"], "--input-shape", "x:2,8", "--json"]
    code, out, _ = run(capsys, *args, "--atol", "1000")
    assert code == 0
    assert json.loads(out)["comparisons"][0]["tolerance"]["atol"] == 1000.0


def test_bench_json(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, err = run(
        capsys,
        "bench",
        files["mlp"],
        "-r",
        "onnxruntime,openvino",
        "--batch",
        "1,2",
        "-n",
        "3",
        "--warmup",
        "1",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert [(r["runtime"], r["batch"]) for r in data["results"]] == [
        ("onnxruntime", 1),
        ("onnxruntime", 2),
        ("openvino", 1),
        ("openvino", 2),
    ]
    assert all(r["latency"]["n"] == 3 for r in data["results"])


def test_bench_table(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "bench", files["two"], "-n", "2", "--warmup", "0", "--threads", "1")
    assert code == 0
    assert "latency of two.onnx" in out and "samples/s" in out and "onnxruntime" in out


def test_convert(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run(capsys, "convert", files["mlp"], "--to", "openvino", "-o", tmp_path)
    assert code == 0, err
    assert "wrote" in out and "mlp.xml" in out and "pass" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.bin", "mlp.xml"]
    code, out, _ = run(capsys, "convert", files["mlp"], "--to", "onnx", "--precision", "fp16", "-o", tmp_path, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["precision"] == "fp16" and data["verification"]["outputs"][0]["passed"] is True
    assert (tmp_path / "mlp.onnx").is_file()


def test_convert_failure_leaves_no_files(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    # verification with a zero tolerance cannot pass for fp16 weights: the artifact must go
    from modelport.verify.compare import Tolerance

    original = Tolerance.for_precision
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Tolerance, "for_precision", staticmethod(lambda p: Tolerance(0, 0)))
        code, _, err = run(capsys, "convert", files["mlp"], "--to", "openvino", "--precision", "fp16", "-o", out_dir)
    assert Tolerance.for_precision("fp32") == original("fp32")
    assert code == 1
    assert err.strip().startswith("modelport: error: ") and "differs from" in err
    assert not out_dir.exists()  # nothing written, not even the folder
    code, _, err = run(capsys, "convert", files["bad"], "--to", "openvino", "-o", out_dir)
    assert_one_error(code, err)
    code, _, err = run(capsys, "convert", files["mlp"], "--to", "keras", "-o", out_dir)
    assert_one_error(code, err, "no converter from onnx to keras", "available routes")
    assert not out_dir.exists()


def test_doctor(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor")
    assert code == 0
    assert "onnxruntime" in out and "openvino" in out and "CPU flags" in out
    code, out, _ = run(capsys, "doctor", "--json")
    assert code == 0
    names = {r["name"]: r["available"] for r in json.loads(out)["runtimes"]}
    assert names["onnxruntime"] and names["openvino"]


def test_port(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run(
        capsys, "port", files["mlp"], "--to", "onnxruntime,openvino", "--precision", "fp32,bf16", "-o", tmp_path,
        "--seconds", "0.1",
    )  # fmt: skip
    assert code == 0, err
    assert "onnxruntime/fp32" in out and "openvino/bf16" in out
    assert "onnxruntime/bf16: skipped: onnxruntime does not run bf16 on CPU" in out
    assert "fastest verified target:" in out
    assert {"report.json", "report.md", "report.html"} <= {p.name for p in tmp_path.iterdir()}
    text = (tmp_path / "report.json").read_text()
    report = json.loads(text)
    assert [t["status"] for t in report["targets"]] == ["verified", "skipped", "verified", "verified"]
    from modelport.porting.pipeline import PortReport

    assert PortReport.from_json(text).to_json() == text  # with the optimizer's summary (optimization is on)


def test_port_progress_goes_to_stderr(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(
        capsys, "port", files["two"], "--to", "onnxruntime", "--precision", "fp32", "-o", tmp_path, "--seconds", "0.05",
        "--no-optimize",
    )  # fmt: skip
    assert code == 0, err
    assert "preparing the source model" in err
    assert "preparing the source model" not in out
    assert "onnxruntime/fp32" in out


def test_port_mismatch_exits_1(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelport.verify.compare import Tolerance

    monkeypatch.setattr(Tolerance, "for_precision", staticmethod(lambda p: Tolerance(0, 0)))
    code, out, _ = run(
        capsys, "port", files["mlp"], "--to", "onnxruntime", "--precision", "fp16", "-o", tmp_path, "--seconds",
        "0.05", "--no-optimize", "--timeout", "0",  # in this process: the patched tolerance applies
    )  # fmt: skip
    assert code == 1
    assert "not verified: onnxruntime/fp16" in out


# --- error paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["inspect", "compare", "bench", "convert"])
def test_missing_file(capsys: pytest.CaptureFixture[str], verb: str, tmp_path: Path) -> None:
    extra = {"compare": ["-r", "ort,ov"], "convert": ["--to", "openvino", "-o", str(tmp_path / "o")]}.get(verb, [])
    code, _, err = run(capsys, verb, tmp_path / "missing.onnx", *extra)
    assert_one_error(code, err, "missing.onnx", "file not found")


# capfd: what the runtimes' C++ code writes to file descriptor 2 counts as well


@pytest.mark.parametrize(("verb", "runtime"), [("inspect", None), ("bench", "ort"), ("bench", "ov"), ("port", None)])
def test_non_model_file(
    capfd: pytest.CaptureFixture[str], files: dict[str, Path], verb: str, runtime: str | None, tmp_path: Path
) -> None:
    extra = ["-o", str(tmp_path)] if verb == "port" else ["-r", runtime] if runtime else []
    code, _, err = run(capfd, verb, files["text"], *extra)
    assert_one_error(code, err, "notes.onnx", "not a model file")


@pytest.mark.parametrize(
    "args",
    [["inspect"], ["bench", "-r", "onnxruntime"], ["bench", "-r", "openvino"], ["compare", "-r", "ov,ort"], ["port"]],
)
def test_truncated_onnx(
    capfd: pytest.CaptureFixture[str], files: dict[str, Path], args: list[str], tmp_path: Path
) -> None:
    extra = ["-o", str(tmp_path)] if args[0] == "port" else []
    code, _, err = run(capfd, args[0], files["cut"], *args[1:], *extra)
    assert_one_error(code, err, "cut.onnx")
    if args[-1] == "onnxruntime":
        assert "onnxruntime cannot load the model" in err
    else:
        assert "truncated or corrupt" in err


def test_convert_truncated_onnx(capfd: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run(capfd, "convert", files["cut"], "--to", "openvino", "-o", tmp_path / "out")
    assert_one_error(code, err, "cut.onnx", "truncated or corrupt")
    assert not (tmp_path / "out").exists()


def test_checker_failure(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run(capsys, "port", files["bad"], "-o", tmp_path, "--no-optimize")
    assert_one_error(code, err, "bad.onnx", "fails onnx.checker", "undefined_tensor")
    code, _, err = run(capsys, "compare", files["bad"], "-r", "ort,ov")
    assert_one_error(code, err, "bad.onnx")


def test_unknown_runtime(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, _, err = run(capsys, "bench", files["mlp"], "-r", "onnxruntime,tvm")
    assert_one_error(
        code, err, "unknown runtime 'tvm'", "valid runtimes: litert, litert-noxnnpack, onnxruntime, openvino"
    )
    code, _, err = run(capsys, "compare", files["mlp"], "-r", "tfl", "--input-shape", "x:1,8")
    assert_one_error(code, err, "unknown runtime 'tfl'")


def test_dynamic_dim_without_input_shape_gets_a_size(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    """compare picks the free batch itself (as convert does) and prints the shape it fed."""
    code, out, _ = run(capsys, "compare", files["mlp"], "-r", "ort,ov")
    assert code == 0 and "feeds: x [1, 8] float32" in out


@pytest.mark.parametrize(
    ("feed", "fragment"), [("wrong_shape", "has shape [2, 7]"), ("wrong_dtype", "has dtype float64")]
)
def test_bad_feeds(capsys: pytest.CaptureFixture[str], files: dict[str, Path], feed: str, fragment: str) -> None:
    code, _, err = run(capsys, "compare", files["mlp"], "-r", "ort,ov", "--feeds", files[feed])
    assert_one_error(code, err, "feed for 'x'", fragment)


@pytest.mark.parametrize("shape", ["x=1,8", "x:1,,8", "x:0,8"])
def test_bad_input_shape(capsys: pytest.CaptureFixture[str], files: dict[str, Path], shape: str) -> None:
    code, _, err = run(capsys, "bench", files["mlp"], "--input-shape", shape)
    assert_one_error(code, err, shape)


def test_bad_options(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run(capsys, "bench", files["mlp"], "--batch", "1,two")
    assert_one_error(code, err, "--batch takes integers")
    code, _, err = run(capsys, "bench", files["mlp"], "--seconds", "0")
    assert_one_error(code, err, "--seconds must be > 0")
    code, _, err = run(capsys, "port", files["mlp"], "--precision", "fp8", "-o", tmp_path)
    assert_one_error(code, err, "unknown precision 'fp8'")
    code, _, err = run(capsys, "inspect", files["mlp"], "--no-such-option")
    assert_one_error(code, err, "--no-such-option")
    code, _, err = run(capsys, "no-such-verb")
    assert_one_error(code, err, "no-such-verb")


def test_debug_adds_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--debug", "inspect", tmp_path / "missing.onnx")
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "ModelLoadError" in err
    assert err.strip().splitlines()[-1].startswith("modelport: error: ")
