"""Pairing tensors by name, order and shape; layouts; one judgment for ``compare`` and a ``convert`` hop."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import models
from modelport.conversion import ConversionReport, ConvertOptions, convert, verify_against_source
from modelport.conversion.base import Converter
from modelport.errors import InvalidInputError, VerificationError
from modelport.formats import Format
from modelport.verify.comparator import compare_outputs
from modelport.verify.compare import compare
from modelport.verify.matching import TensorPair, layout_permutation, pair_tensors
from modelport.verify.tolerance import Tolerance


def test_pair_by_name_then_position_then_shape() -> None:
    by_name = pair_tensors({"boxes": (1, 4), "scores": (1, 9)}, {"scores:0": (1, 9), "boxes:0": (1, 4)})
    assert by_name == [TensorPair("boxes", "boxes:0", "name"), TensorPair("scores", "scores:0", "name")]
    by_position = pair_tensors({"a": (2, 3), "b": (2, 3)}, {"Identity": (2, 3), "Identity_1": (2, 3)})
    assert [(p.candidate, p.by) for p in by_position] == [("Identity", "position"), ("Identity_1", "position")]
    # renamed and reordered (onnx2tf): the shapes tell them apart, one of them in NHWC
    by_shape = pair_tensors({"heat": (1, 3, 8, 6), "emb": (1, 128)}, {"Identity": (1, 128), "Identity_1": (1, 8, 6, 3)})
    assert [(p.reference, p.candidate, p.by) for p in by_shape] == [
        ("heat", "Identity_1", "shape"),
        ("emb", "Identity", "shape"),
    ]
    ambiguous = pair_tensors({"a": (2,), "b": (3,)}, {"x": (3,), "y": (3,)})  # no unique fit: by position
    assert [p.by for p in ambiguous] == ["position", "position"]
    with pytest.raises(InvalidInputError, match="cannot pair tensors"):
        pair_tensors({"a": (1,)}, {"x": (1,), "y": (1,)})


def test_layout_permutation_only_when_unique() -> None:
    assert layout_permutation((1, 3, 6, 5), (1, 3, 6, 5)) == ()
    assert layout_permutation((1, 3, 6, 5), (1, 6, 5, 3)) == (0, 3, 1, 2)
    assert layout_permutation((1, 6, 5, 3), (1, 3, 6, 5)) == (0, 2, 3, 1)
    assert layout_permutation((1, 3, 3, 3), (1, 3, 3, 3)) == ()  # square: never transposed
    assert layout_permutation((2, 3), (3, 2)) is None  # rank 2 has no layout
    assert layout_permutation((1, 3, 6, 5), (1, 3, 5, 6)) is None  # H ↔ W is not a layout


def test_compare_outputs_aligns_layout_and_records_it() -> None:
    ref = np.random.default_rng(0).standard_normal((1, 3, 6, 5)).astype(np.float32)
    c = compare_outputs({"y": ref}, {"Identity": ref.transpose(0, 2, 3, 1)}, Tolerance.for_precision("fp32"))
    (m,) = c.outputs
    assert c and m.candidate_name == "Identity" and m.permutation == (0, 3, 1, 2) and m.shape == (1, 3, 6, 5)
    with pytest.raises(VerificationError, match="cand has 2 outputs, reference has 1"):
        compare_outputs({"y": ref}, {"a": ref, "b": ref}, Tolerance(), candidate_label="cand")


# --- the same NHWC-vs-NCHW pair through `compare` and through a `convert` hop ---------------------------


def _nchw(seed: int = 0) -> onnx.ModelProto:
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        nchw (float[1,3,6,6] x) => (float[1,4,6,6] y) {
            y = Conv(x, w)
        }
    """)
    w = np.random.default_rng(seed).standard_normal((4, 3, 1, 1)).astype(np.float32)
    return models.with_initializers(model, w=w)


def _nhwc(spatial_swap: bool) -> onnx.ModelProto:
    """The same model taking and giving NHWC (TFLite's layout); ``spatial_swap`` transposes H ↔ W: wrong."""
    out_perm = "[0, 3, 2, 1]" if spatial_swap else "[0, 2, 3, 1]"  # NCHW → NHWC, or → N W H C
    model = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        nhwc (float[1,6,6,3] image) => (float[1,6,6,4] Identity) {{
            t = Transpose<perm = [0, 3, 1, 2]>(image)
            c = Conv(t, w)
            Identity = Transpose<perm = {out_perm}>(c)
        }}
    """)
    return models.with_initializers(model, w=onnx.numpy_helper.to_array(_nchw().graph.initializer[0]))


def _fake_converter(artifact: onnx.ModelProto) -> Converter:
    """A converter that "produces" ``artifact`` (the hop's verification is what is under test)."""

    def convert_to(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = models.save(artifact, out_dir / f"{options.name}.onnx")
        return ConversionReport.for_file(
            src, Format.ONNX, Format.ONNX, options.precision, path, time.perf_counter(), "test"
        )

    return convert_to


@pytest.mark.parametrize("broken", [False, True], ids=["nhwc", "nhwc-transposed"])
def test_compare_and_convert_judge_a_layout_pair_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    src = models.save(_nchw(), tmp_path / "nchw.onnx")
    other = models.save(_nhwc(spatial_swap=broken), tmp_path / "nhwc.onnx")
    by_compare = compare([src, other], "onnxruntime")
    (c,) = by_compare.comparisons
    assert c.outputs[0].candidate_name == "Identity" and c.outputs[0].permutation == (0, 3, 1, 2)

    feeds = {"x": np.random.default_rng(0).random((1, 3, 6, 6), np.float32)}
    by_port = verify_against_source(src, other, Format.ONNX, feeds)  # port's check of an artifact

    import modelport.conversion.chain as chain

    monkeypatch.setattr(chain, "get_converter", lambda a, b: _fake_converter(onnx.load(str(other))))
    out = tmp_path / "out"
    if broken:
        assert not by_compare and not by_port
        with pytest.raises(VerificationError, match=r"hop onnx → onnx: .*output 'y'"):
            convert(src, "onnx", out)
        assert not (out / "nchw.onnx").exists()  # a failed chain removes what it wrote
    else:
        assert by_compare and by_port
        hop = convert(src, "onnx", out).verification
        assert hop is not None and hop.passed and hop.outputs[0].permutation == (0, 3, 1, 2)
        assert hop.tolerance == c.tolerance == by_port.tolerance == Tolerance.for_precision("fp32")
