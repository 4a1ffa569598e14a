"""Bad input (issue 10): custom ops no converter knows and truncated files give one clear error, and OUT stays clean.

Through the CLI: exit code 2, exactly one ``modelport: error: …`` line on stderr (no traceback, no engine log lines;
the C++ start-up banners of TensorFlow/LiteRT are not modelport's output and are ignored), and nothing written into
OUT — the test puts a file of the user's there first and lists OUT after the failure. Through the API: the typed
exception of :mod:`modelport.errors`, its message naming the op type and every node that uses it, and saying what
to do (``--outputs`` to cut the graph before the op).

The models are built here: an ONNX graph with two nodes of an op from a custom domain, and a TFLite flatbuffer
(written with the TFLite schema's object API) whose two operators are a CUSTOM code that LiteRT and tf2onnx lack.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import onnx.helper as oh
import pytest

import models
from modelport.cli.main import main
from modelport.conversion import convert
from modelport.errors import ConversionError, ModelLoadError, ModelportError
from modelport.model_io import op_use

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CUSTOM_DOMAIN = "com.example.vision"
CUSTOM_OP = "FancyWarp"
ONNX_CUSTOM_NODES = ("warp_node_1", "warp_node_2")
TFLITE_CUSTOM_OP = "MyFancyWarp"
#: TFLite operators have no names: a node is known by the tensor it writes
TFLITE_CUSTOM_NODES = ("warp_1", "warp_2")
#: lines the engines' C++ runtimes print to the process's stderr when they start (not modelport's output)
_ENGINE_BANNER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog|[IW]\d{4} |INFO: Created TensorFlow)"
)


def custom_op_onnx() -> onnx.ModelProto:
    """x → Relu → a → FancyWarp → b → FancyWarp → c → Sigmoid → y; FancyWarp from a domain nobody implements."""
    f = onnx.TensorProto.FLOAT
    nodes = [
        oh.make_node("Relu", ["x"], ["a"], name="relu"),
        oh.make_node(CUSTOM_OP, ["a"], ["b"], name=ONNX_CUSTOM_NODES[0], domain=CUSTOM_DOMAIN),
        oh.make_node(CUSTOM_OP, ["b"], ["c"], name=ONNX_CUSTOM_NODES[1], domain=CUSTOM_DOMAIN),
        oh.make_node("Sigmoid", ["c"], ["y"], name="sigmoid"),
    ]
    graph = oh.make_graph(
        nodes,
        "custom_op",
        [oh.make_tensor_value_info("x", f, [1, 3, 8, 8])],
        [oh.make_tensor_value_info("y", f, [1, 3, 8, 8])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid(CUSTOM_DOMAIN, 1)])
    model.ir_version = 8
    return model


def tflite_bytes(custom: bool) -> bytes:
    """input → RELU → relu_out → (CUSTOM MyFancyWarp → warp_1 → CUSTOM MyFancyWarp → warp_2 | RELU → out)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str) -> Any:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, 8], schema.TensorType.FLOAT32, 0
        return t

    def code(builtin: int, custom_code: str | None = None) -> Any:
        c = schema.OperatorCodeT()
        c.builtinCode = c.deprecatedBuiltinCode = builtin
        c.customCode, c.version = custom_code, 1
        return c

    def operator(opcode: int, src: int, dst: int) -> Any:
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = opcode, [src], [dst]
        return op

    names = ["input", "relu_out", *TFLITE_CUSTOM_NODES] if custom else ["input", "relu_out", "out"]
    second = 1 if custom else 0
    subgraph = schema.SubGraphT()
    subgraph.name, subgraph.tensors = "main", [tensor(n) for n in names]
    subgraph.operators = [operator(0, 0, 1), operator(second, 1, 2)] + ([operator(1, 2, 3)] if custom else [])
    subgraph.inputs, subgraph.outputs = [0], [len(names) - 1]
    model = schema.ModelT()
    model.version, model.description, model.buffers = 3, "modelport bad-input test", [schema.BufferT()]
    model.operatorCodes = [code(schema.BuiltinOperator.RELU), code(schema.BuiltinOperator.CUSTOM, TFLITE_CUSTOM_OP)]
    model.subgraphs = [subgraph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_models")
    paths = {"custom_onnx": models.save(custom_op_onnx(), d / "custom_op.onnx")}
    unknown = custom_op_onnx()  # an op type ONNX itself does not define, in the default domain, nodes unnamed
    for node in unknown.graph.node[1:3]:
        node.op_type, node.domain, node.name = "NotAnOp", "", ""
    paths["unknown_op"] = models.save(unknown, d / "unknown_op.onnx")
    (d / "custom_op.tflite").write_bytes(tflite_bytes(custom=True))
    paths["custom_tflite"] = d / "custom_op.tflite"
    onnx_bytes = models.wide_mlp().SerializeToString()
    (d / "truncated.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    paths["truncated_onnx"] = d / "truncated.onnx"
    whole = tflite_bytes(custom=False)
    (d / "truncated.tflite").write_bytes(whole[: len(whole) // 2])
    paths["truncated_tflite"] = d / "truncated.tflite"
    return paths


def user_out_dir(tmp_path: Path) -> Path:
    """An OUT that already holds a file of the user's (a failure must neither add to it nor remove it)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's file\n")
    return out


def listing(out: Path) -> list[str]:
    """Every file and folder under ``out`` (relative paths, sorted); [] when ``out`` does not exist."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []


def cli_failure(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, *args: object) -> str:
    """Run the CLI, expect exit code 2 and one clean error line; return that line.

    Log records of level WARNING or above count as lines too: the CLI prints them on stderr (here pytest's log
    capture takes them instead), so an engine's own error log would be a second message for the same failure.
    """
    caplog.clear()
    code = main([str(a) for a in args])
    err = capfd.readouterr().err
    logged = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert logged == [], logged
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not _ENGINE_BANNER.match(ln)]
    assert len(lines) == 1, err
    assert lines[0].startswith("modelport: error: "), err
    assert code == 2, err
    return lines[0]


def assert_names_every_node(message: str, op: str, nodes: tuple[str, ...]) -> None:
    assert op in message, message
    for node in nodes:
        assert node in message, message
    assert "--outputs" in message, message


# --- a custom op no converter knows -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["openvino", "tflite"])
def test_cli_onnx_custom_op_names_op_nodes_and_the_cut(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    bad: dict[str, Path],
    tmp_path: Path,
    target: str,
) -> None:
    out = user_out_dir(tmp_path)
    line = cli_failure(capfd, caplog, "convert", bad["custom_onnx"], "--to", target, "-o", out)
    assert_names_every_node(line, CUSTOM_OP, ONNX_CUSTOM_NODES)
    assert listing(out) == ["keep.txt"]


def test_api_onnx_custom_op_raises_a_typed_error(bad: dict[str, Path], tmp_path: Path) -> None:
    """ModelLoadError when the reference runtime cannot load the source, ConversionError when the engine fails."""
    out = tmp_path / "ov"
    with pytest.raises((ModelLoadError, ConversionError)) as info:
        convert(bad["custom_onnx"], "openvino", out)
    assert_names_every_node(str(info.value), CUSTOM_OP, ONNX_CUSTOM_NODES)
    assert isinstance(info.value, ModelportError) and info.value.hint, "the error says what to do"
    assert listing(out) == []


def test_cli_cut_before_the_custom_op_with_outputs(
    capfd: pytest.CaptureFixture[str], bad: dict[str, Path], tmp_path: Path
) -> None:
    """What the error tells the user to do works: ``--outputs a`` converts the part before the custom op."""
    import openvino as ov

    out = tmp_path / "cut"
    code = main(["convert", str(bad["custom_onnx"]), "--to", "openvino", "--outputs", "a", "-o", str(out)])
    err = capfd.readouterr().err
    assert code == 0, err
    (xml,) = out.glob("*.xml")
    ir = ov.Core().read_model(str(xml))
    assert [o.get_any_name() for o in ir.outputs] == ["a"]
    assert "Relu" in {op.get_type_name() for op in ir.get_ops()}


def test_cli_tflite_custom_op_names_op_and_nodes(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, bad: dict[str, Path], tmp_path: Path
) -> None:
    out = user_out_dir(tmp_path)
    line = cli_failure(capfd, caplog, "convert", bad["custom_tflite"], "--to", "onnx", "-o", out)
    assert_names_every_node(line, TFLITE_CUSTOM_OP, TFLITE_CUSTOM_NODES)
    assert listing(out) == ["keep.txt"]


def test_api_tflite_custom_op_raises_conversion_error(bad: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "onnx"
    with pytest.raises(ConversionError) as info:
        convert(bad["custom_tflite"], "onnx", out)
    assert_names_every_node(str(info.value), TFLITE_CUSTOM_OP, TFLITE_CUSTOM_NODES)
    assert listing(out) == []


def test_op_use_lists_nodes_and_the_cut_before_them() -> None:
    """The nodes of an op in every graph, and the tensors that end the graph just before the first of them."""
    use = op_use(custom_op_onnx(), CUSTOM_OP, CUSTOM_DOMAIN)
    assert use.op == f"{CUSTOM_DOMAIN}::{CUSTOM_OP}"
    assert use.nodes == ONNX_CUSTOM_NODES
    assert use.cut_before == ("a",)  # "b" is the first FancyWarp's output: cutting there keeps one of them
    assert "--outputs a" in use.hint()
    relu = op_use(custom_op_onnx(), "Relu")
    assert relu.nodes == ("relu",) and relu.cut_before == ()  # reads the model input: nothing before it
    assert "replace the op" in relu.hint()
    assert op_use(custom_op_onnx(), CUSTOM_OP, "other.domain").nodes == ()
    # x → Relu → FancyWarp → Sigmoid → FancyWarp: Sigmoid's output needs the first FancyWarp, so only "a" cuts
    model = custom_op_onnx()
    nodes = model.graph.node
    nodes[2].input[0], nodes[3].input[0], nodes[3].output[0] = "s", "b", "s"
    nodes[2].output[0] = "y"
    nodes.insert(2, nodes.pop(3))
    onnx.checker.check_model(model)
    assert op_use(model, CUSTOM_OP, CUSTOM_DOMAIN).cut_before == ("a",)


# --- a truncated file ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("truncated_onnx", "openvino"),
        ("truncated_onnx", "onnx"),
        ("truncated_tflite", "onnx"),
        ("truncated_tflite", "openvino"),
    ],
)
def test_cli_truncated_file_is_one_clear_error(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    bad: dict[str, Path],
    tmp_path: Path,
    source: str,
    target: str,
) -> None:
    out = user_out_dir(tmp_path)
    line = cli_failure(capfd, caplog, "convert", bad[source], "--to", target, "-o", out)
    assert bad[source].name in line and "truncated or corrupt" in line, line
    assert listing(out) == ["keep.txt"]


@pytest.mark.parametrize("source", ["truncated_onnx", "truncated_tflite"])
def test_api_truncated_file_raises_model_load_error(bad: dict[str, Path], tmp_path: Path, source: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ModelLoadError) as info:
        convert(bad[source], "onnx", out)
    assert info.value.path == bad[source]
    assert "truncated or corrupt" in str(info.value)
    assert listing(out) == []


def test_cli_debug_shows_the_traceback(capfd: pytest.CaptureFixture[str], bad: dict[str, Path], tmp_path: Path) -> None:
    """The traceback is there for whoever asks (``--debug``), and the error line still ends the output."""
    code = main(["--debug", "convert", str(bad["truncated_onnx"]), "--to", "openvino", "-o", str(tmp_path / "o")])
    err = capfd.readouterr().err
    assert code == 2
    assert "Traceback" in err and "ModelLoadError" in err
    assert err.strip().splitlines()[-1].startswith("modelport: error: ")


def test_console_script_prints_one_line(bad: dict[str, Path], tmp_path: Path) -> None:
    """The installed command in its own process (what a user sees: real stderr, logging configured by the CLI)."""
    exe = Path(sys.executable).parent / "modelport"
    out = user_out_dir(tmp_path)
    args = [str(exe), "convert", str(bad["custom_onnx"]), "--to", "openvino", "-o", str(out)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("modelport: error: "), result.stderr
    assert_names_every_node(lines[0], CUSTOM_OP, ONNX_CUSTOM_NODES)
    assert result.stdout == ""
    assert listing(out) == ["keep.txt"]


@pytest.mark.parametrize(
    ("backend", "source", "fragments"),
    [
        ("onnxruntime", "custom_onnx", (f"{CUSTOM_DOMAIN}::{CUSTOM_OP}", *ONNX_CUSTOM_NODES, "--outputs a")),
        ("onnxruntime", "unknown_op", ("op NotAnOp (nodes b, c)", "--outputs a")),
        ("openvino", "custom_onnx", (f"{CUSTOM_DOMAIN}.{CUSTOM_OP}",)),
        ("litert", "truncated_tflite", ("truncated or corrupt",)),
    ],
)
def test_runner_load_errors_name_the_cause(
    bad: dict[str, Path], backend: str, source: str, fragments: tuple[str, ...]
) -> None:
    """The runtimes' own load errors (what the chain's reference and candidates raise) name the op or the damage."""
    from modelport.backends import open_runner

    with pytest.raises(ModelLoadError) as info, open_runner(backend, bad[source]):
        pass
    assert info.value.path == bad[source]
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
