"""Regression tests for the crashers the fuzz campaign (``tests/fuzz/campaign.py``) found, each rebuilt from a seed
and a mutation recipe (no binary fixtures): the damaged file gives one clean :class:`ModelLoadError` through the
API and one ``modelport: error:`` line through the CLI, or, where the file is readable, a summary.

Found by the campaign (before the fixes, a traceback from ``inspect``):

* ONNX with an element type ONNX does not define (``elem_type`` 40, 999) → ``ValueError`` from the protobuf enum;
  now ``inspect`` shows ``unknown(N)``.
* ONNX stamped with opset 2^31 − 1 → OpenVINO's ONNX frontend runs for many minutes (a hang under ``convert`` and
  ``compare``); now :func:`modelport.backends.openvino.check_onnx_opsets` refuses opsets above 1000 first.
* OpenVINO IR whose XML is truncated or malformed, whose attributes or dims do not parse, whose edges point at
  missing layers or ports, whose element types are unknown, or whose .bin is shorter than its constants →
  ``RuntimeError`` from ``Core.read_model``; now :func:`modelport.backends.openvino.read_ir` makes it a
  ``ModelLoadError``.
* TFLite flatbuffers whose indices point nowhere (operator opcode, graph output, signature subgraph or tensor)
  or with no subgraph → ``IndexError``; now :func:`modelport.backends.litert_check.check_tflite` checks every index
  first (operator inputs too: LiteRT refuses those models, so ``inspect`` says so rather than summarising them).
* TFLite operators out of order (one reads a tensor no earlier operator wrote) → SIGSEGV in TensorFlow's
  interpreter under ``convert`` (tf2onnx); ``check_tflite`` rejects them
  (``inspect``, and ``tflite_prep.prepare_tflite``, the converters' first read).
* TFLite constants whose buffer is shorter than their shape (or with a negative dim), builtin operator codes past
  the schema → ``ValueError`` from the interpreter that tf2onnx opens under ``convert``; ``check_tflite`` names
  the tensor or code.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fuzz_seeds
import onnx
import pytest
from campaign import classify

from modelport.cli.main import main
from modelport.errors import ModelLoadError
from modelport.inspection import inspect

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def cli_outcome(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, *args: object) -> str:
    """The campaign's classification of a CLI run (log records at WARNING and above count as stderr lines)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        code = main([str(a) for a in args])
    err = capfd.readouterr().err
    logged = "".join(f"{r.levelname} {r.getMessage()}\n" for r in caplog.records if r.levelno >= logging.WARNING)
    return classify(code, logged + err, timed_out=False)


# --- ONNX ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("elem_type", [40, 999])
def test_onnx_unknown_element_type_is_shown(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, elem_type: int
) -> None:
    model = onnx.load_from_string(fuzz_seeds.MNIST.read_bytes())
    model.graph.input[0].type.tensor_type.elem_type = elem_type
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    summary = inspect(path)
    assert summary.inputs[0].dtype == f"unknown({elem_type})"
    assert cli_outcome(capfd, caplog, "inspect", path) == "ok"


def test_onnx_opset_no_release_has_is_refused_before_openvino(tmp_path: Path) -> None:
    """Found by the campaign: ``convert``/``compare`` on an ONNX file stamped opset 2^31 − 1 never returned
    (OpenVINO's ONNX frontend counts down from the opset per node). The OpenVINO runner refuses it first."""
    from modelport.backends import open_runner

    model = onnx.load_from_string(fuzz_seeds.MNIST.read_bytes())
    model.opset_import[0].version = 2**31 - 1
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"opset ai\.onnx 2147483647") as info, open_runner("openvino", path):
        pass
    assert info.value.path == path and info.value.hint


# --- OpenVINO IR --------------------------------------------------------------------------------------------


def _xml_edit(edit: Callable[[ET.Element], None]) -> Callable[[dict[str, bytes]], None]:
    def apply(files: dict[str, bytes]) -> None:
        root = ET.fromstring(files["model.xml"])
        edit(root)
        files["model.xml"] = ET.tostring(root, encoding="utf-8", xml_declaration=True)

    return apply


def _first(root: ET.Element, tag: str, attr: str | None = None) -> ET.Element:
    return next(e for e in root.iter(tag) if attr is None or attr in e.attrib)


def _truncate(name: str) -> Callable[[dict[str, bytes]], None]:
    def apply(files: dict[str, bytes]) -> None:
        files[name] = files[name][: len(files[name]) // 2]

    return apply


def _drop_first_conv(root: ET.Element) -> None:
    layers = root.find("layers")
    assert layers is not None
    layers.remove(next(e for e in layers if e.get("type") == "Convolution"))


IR_RECIPES: dict[str, Callable[[dict[str, bytes]], None]] = {
    "xml_truncated": _truncate("model.xml"),
    "bin_truncated": _truncate("model.bin"),
    "edge_from_negative": _xml_edit(lambda r: _first(r, "edge").set("from-layer", "-1")),
    "edge_to_missing_port": _xml_edit(lambda r: _first(r, "edge").set("to-port", "9999")),
    "const_offset_not_a_number": _xml_edit(lambda r: _first(r, "data", "offset").set("offset", "abc")),
    "const_offset_past_the_bin": _xml_edit(lambda r: _first(r, "data", "offset").set("offset", str(2**40))),
    "unknown_element_type": _xml_edit(lambda r: _first(r, "data", "element_type").set("element_type", "zz")),
    "negative_dim": _xml_edit(lambda r: setattr(_first(r, "dim"), "text", "-7")),
    "layer_removed": _xml_edit(_drop_first_conv),
    "unknown_opset": _xml_edit(
        lambda r: next(e for e in r.iter("layer") if e.get("type") == "Add").set("version", "opset999")
    ),
}


@pytest.fixture(scope="module")
def ir_seed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return fuzz_seeds.openvino_seed(tmp_path_factory.mktemp("ir_seed"))


@pytest.mark.parametrize("recipe", sorted(IR_RECIPES))
def test_damaged_openvino_ir_is_one_clean_error(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    ir_seed: Any,
    recipe: str,
) -> None:
    files = ir_seed.as_dict()
    IR_RECIPES[recipe](files)
    fuzz_seeds.write(files, tmp_path)
    xml = tmp_path / "model.xml"
    with pytest.raises(ModelLoadError) as info:
        inspect(xml)
    assert info.value.path == xml and "OpenVINO cannot read the model" in str(info.value)
    assert "\n" not in str(info.value)
    assert cli_outcome(capfd, caplog, "inspect", xml) == "error"


# --- TFLite -------------------------------------------------------------------------------------------------


def _tfl_edit(edit: Callable[[Any], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        from ai_edge_litert.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
        edit(model)
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))

    return apply


def _set(path: str, value: Any) -> Callable[[Any], None]:
    """An edit that sets one field of the object model, ``path`` like ``subgraphs.0.operators.1.opcodeIndex``."""

    def edit(model: Any) -> None:
        *parents, leaf = path.split(".")
        obj = model
        for part in parents:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        if leaf.isdigit():
            obj[int(leaf)] = value
        else:
            setattr(obj, leaf, value)

    return edit


def _reverse_operators(model: Any) -> None:
    model.subgraphs[0].operators.reverse()


def _bad_utf8_name(data: bytes) -> bytes:
    at = data.index(b"relu_out")
    return data[:at] + b"\xff\xfe" + data[at + 2 :]


TFLITE_RECIPES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "opcode_index_past_the_codes": (_tfl_edit(_set("subgraphs.0.operators.1.opcodeIndex", 2)), "opcode index 2"),
    "operator_input_past_the_tensors": (_tfl_edit(_set("subgraphs.0.operators.0.inputs", [4])), "tensor 4"),
    "graph_output_past_the_tensors": (_tfl_edit(_set("subgraphs.0.outputs", [2**31 - 1])), "tensor 2147483647"),
    "tensor_buffer_past_the_buffers": (_tfl_edit(_set("subgraphs.0.tensors.2.buffer", 7)), "index 7"),
    "signature_subgraph_missing": (_tfl_edit(_set("signatureDefs.0.subgraphIndex", 3)), "subgraph index 3"),
    "signature_tensor_missing": (_tfl_edit(_set("signatureDefs.0.outputs.0.tensorIndex", 9)), "tensor index 9"),
    "no_subgraph": (_tfl_edit(_set("subgraphs", [])), "no subgraph"),
    "operators_out_of_order": (_tfl_edit(_reverse_operators), "operator 0 reads tensor 1 before any operator writes"),
    "constant_shorter_than_its_shape": (
        _tfl_edit(_set("subgraphs.0.tensors.2.shape", [4, 8])),
        "needs 128 bytes, its buffer holds 32",
    ),
    "constant_with_negative_dim": (_tfl_edit(_set("subgraphs.0.tensors.2.shape", [1, -8])), "negative dim"),
    "builtin_code_unknown": (_tfl_edit(_set("operatorCodes.1.builtinCode", 100_000)), "builtin operator 100000"),
}


@pytest.mark.parametrize("recipe", sorted(TFLITE_RECIPES))
def test_damaged_tflite_is_one_clean_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, recipe: str
) -> None:
    mutate, fragment = TFLITE_RECIPES[recipe]
    path = tmp_path / "model.tflite"
    path.write_bytes(mutate(fuzz_seeds.tflite_bytes()))
    with pytest.raises(ModelLoadError) as info:
        inspect(path)
    assert info.value.path == path and fragment in str(info.value), str(info.value)
    assert cli_outcome(capfd, caplog, "inspect", path) == "error"


def test_operators_out_of_order_never_reach_an_interpreter(tmp_path: Path) -> None:
    """Found by the campaign: ``convert`` of a TFLite file whose operators run out of order died with SIGSEGV in
    TensorFlow's interpreter (tf2onnx). ``check_tflite`` (for every reader to call before an engine) says so."""
    from modelport.backends.litert_check import check_tflite

    path = tmp_path / "model.tflite"
    path.write_bytes(_tfl_edit(_reverse_operators)(fuzz_seeds.tflite_bytes()))
    with pytest.raises(ModelLoadError, match="before any operator writes it") as info:
        check_tflite(path)
    assert info.value.path == path and "truncated or corrupt" in str(info.value)
    seed = tmp_path / "seed.tflite"
    seed.write_bytes(fuzz_seeds.tflite_bytes())
    check_tflite(seed)  # the same operators in order pass


def test_tflite_name_that_is_not_utf8_is_shown(tmp_path: Path) -> None:
    """A damaged tensor name is a name with replacement characters, not a UnicodeDecodeError."""
    path = tmp_path / "model.tflite"
    path.write_bytes(_bad_utf8_name(fuzz_seeds.tflite_bytes()))
    summary = inspect(path)
    assert summary.node_count == 2 and summary.inputs[0].name == "input"


def test_the_seeds_themselves_are_fine(tmp_path: Path, ir_seed: Any) -> None:
    """The recipes above damage working models: the undamaged seeds inspect cleanly."""
    fuzz_seeds.write(ir_seed.as_dict(), tmp_path / "ir")
    assert inspect(tmp_path / "ir" / "model.xml").node_count > 10
    (tmp_path / "model.tflite").write_bytes(fuzz_seeds.tflite_bytes())
    summary = inspect(tmp_path / "model.tflite")
    assert dict(summary.op_histogram) == {"RELU": 1, "ADD": 1}
    assert [s.key for s in summary.signatures] == ["serving_default"]


# --- the converters' first reads (fixes applied where the campaign's verbs met these files) ------------------


def test_convert_of_tflite_with_operators_out_of_order_is_one_clean_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the campaign: SIGSEGV in TensorFlow's interpreter (tf2onnx) under ``convert``; now
    ``tflite_prep.prepare_tflite`` runs ``check_tflite`` before any engine sees the file."""
    path = tmp_path / "model.tflite"
    path.write_bytes(_tfl_edit(_reverse_operators)(fuzz_seeds.tflite_bytes()))
    assert cli_outcome(capfd, caplog, "convert", path, "--to", "onnx", "-o", tmp_path / "out") == "error"


def test_convert_to_openvino_refuses_an_absurd_opset_at_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the campaign: ``convert --to openvino`` of an ONNX file stamped opset 2^31 − 1 ran for minutes."""
    model = onnx.load_from_string(fuzz_seeds.MNIST.read_bytes())
    model.opset_import[0].version = 2**31 - 1
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    assert cli_outcome(capfd, caplog, "convert", path, "--to", "openvino", "-o", tmp_path / "out") == "error"


def test_optimize_of_an_initializer_with_an_undefined_type_is_one_clean_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the campaign: ``onnx_ir.serde.SerdeError`` escaped ``optimize``."""
    model = onnx.load_from_string(fuzz_seeds.MNIST.read_bytes())
    model.graph.initializer[0].data_type = 999
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    outcome = cli_outcome(capfd, caplog, "optimize", path, "-o", tmp_path / "out.onnx")
    assert outcome == "error", outcome


def test_random_feeds_refuse_an_input_declaring_too_much() -> None:
    """Found by the campaign: numpy's ``_ArrayMemoryError`` escaped ``optimize``/``compare`` for an input of 10^12
    elements; now the feed is refused with a hint before anything is allocated."""
    from modelport.errors import InvalidInputError
    from modelport.inputs import TensorSpec, random_feeds

    with pytest.raises(InvalidInputError, match="too large for random data") as info:
        random_feeds([TensorSpec("x", "float32", (10**6, 10**6))])
    assert "--input-shape" in str(info.value)
