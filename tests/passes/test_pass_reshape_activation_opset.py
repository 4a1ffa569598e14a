"""collapse-reshapes, cse, dedup-initializers, the opt-in activation fusions and convert-opset."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import models
from modelport.passes import OptimizeOptions, optimize
from modelport.passes import reshape as reshape_pass

HEAD = '<ir_version: 8, opset_import: ["" : 17]>'


def test_reshape_chain_collapses_to_one_reshape() -> None:
    model = models.build(
        f"""{HEAD}
        rc (float[2,3,4] x) => (float[6,4,1] y) {{
            r = Relu(x)
            a = Flatten<axis = 2>(r)
            b = Unsqueeze(a, ax0)
            c = Squeeze(b, ax0)
            y = Reshape(c, shape)
        }}""",
        ax0=np.array([0], np.int64),
        shape=np.array([6, 4, 1], np.int64),
    )
    out, report = models.run_optimizer(model, ["shape-inference", "collapse-reshapes", "remove-unused"])
    assert models.op_types(out) == ["Relu", "Reshape"]
    assert report.nodes_before == 5 and report.nodes_after == 2  # type: ignore[attr-defined]


def test_cse_merges_duplicate_branches() -> None:
    model = models.parse(f"""{HEAD}
        cse (float[2,3] x) => (float[2,3] y) {{
            a = Relu(x)
            b = Relu(x)
            y = Add(a, b)
        }}""")
    out, _ = models.run_optimizer(model, ["cse", "remove-unused"])
    assert models.op_types(out) == ["Relu", "Add"]


def test_duplicate_initializers_are_merged() -> None:
    k = np.arange(6, dtype=np.float32).reshape(2, 3)
    model = models.build(
        f"""{HEAD}
        dd (float[2,3] x) => (float[2,3] y) {{
            a = Mul(x, k1)
            y = Mul(a, k2)
        }}""",
        k1=k,
        k2=k.copy(),
    )
    out, report = models.run_optimizer(model, ["dedup-initializers"])
    assert len(out.graph.initializer) == 1
    assert {p.name: p.modified for p in report.passes}["dedup-initializers"]  # type: ignore[attr-defined]


def test_relu6_spellings_become_clip() -> None:
    model = models.build(
        f"""{HEAD}
        r6 (float[2,3] x) => (float[2,3] y, float[2,3] z) {{
            a = Relu(x)
            y = Min(a, six)
            b = Max(x, zero)
            z = Min(b, six)
        }}""",
        six=np.array(6.0, np.float32),
        zero=np.array(0.0, np.float32),
    )
    out, _ = models.run_optimizer(model, ["fuse-relu6", "remove-unused"])
    assert models.op_types(out) == ["Clip", "Clip"]


def test_relu6_is_opt_in() -> None:
    model = models.build(
        f"""{HEAD}
        r6 (float[2,3] x) => (float[2,3] y) {{
            a = Relu(x)
            y = Min(a, six)
        }}""",
        six=np.array(6.0, np.float32),
    )
    out, _ = models.run_optimizer(model, None)
    assert models.op_types(out) == ["Relu", "Min"]


def test_hardsigmoid_times_x_becomes_hardswish() -> None:
    model = models.parse(f"""{HEAD}
        hs (float[2,3] x) => (float[2,3] y) {{
            h = HardSigmoid<alpha = 0.16666667, beta = 0.5>(x)
            y = Mul(x, h)
        }}""")
    out, _ = models.run_optimizer(model, ["fuse-hardswish"])
    assert models.op_types(out) == ["HardSwish"]


def test_convert_opset_down_and_up() -> None:
    for model, target in ((models.mlp(), 14), (models.conv_bn(), 18)):
        out, report = models.run_optimizer(model, ["convert-opset"], batch=1, opset=target)
        assert next(o.version for o in out.opset_import if o.domain == "") == target
        assert report.opset_before == 17 and report.opset_after == target  # type: ignore[attr-defined]


def test_opset_conversion_to_impossible_version_is_a_pass_error() -> None:
    import tempfile
    from pathlib import Path

    import pytest

    from modelport.errors import PassError

    path = models.save(models.conv_bn(), Path(tempfile.mkdtemp()) / "m.onnx")
    with pytest.raises(PassError, match="opset"):
        optimize(path, options=OptimizeOptions(opset=99, batch=1))


def _computed_reshape_opset12() -> onnx.ModelProto:
    return models.build(
        """<ir_version: 7, opset_import: ["" : 12]>
        rs (float[2,3,4] x) => (float[2,12] y) {
            s = Shape(x)
            n = Slice(s, starts, ends)
            shape = Concat<axis = 0>(n, minus_one)
            r = Relu(x)
            y = Reshape(r, shape)
        }""",
        starts=np.array([0], np.int64),
        ends=np.array([1], np.int64),
        minus_one=np.array([-1], np.int64),
    )


def test_materialized_reshape_stays_valid_before_opset_14(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxscript materializes a computed Reshape shape with ``allowzero``, an attribute opsets < 14 lack."""
    passes = ["shape-inference", "collapse-reshapes", "remove-unused"]
    out, report = models.run_optimizer(_computed_reshape_opset12(), passes)
    ops = [op for op in models.op_types(out) if op != "Constant"]
    assert ops == ["Relu", "Reshape"]  # the Shape → Slice → Concat computation is gone
    reshape = next(n for n in out.graph.node if n.op_type == "Reshape")
    assert [a.name for a in reshape.attribute] == []  # no allowzero at opset 12 (onnx.checker ran in the helper)
    assert report.nodes_before == 5  # type: ignore[attr-defined]
    # without the fix the result fails onnx.checker: the optimizer rolls the pass back rather than break the model
    monkeypatch.setattr(reshape_pass, "_drop_default_allowzero", lambda model: None)
    result = optimize(
        ir.serde.deserialize_model(_computed_reshape_opset12()), options=OptimizeOptions(passes=tuple(passes))
    )
    assert [name for name, _ in result.report.rolled_back] == ["collapse-reshapes"]
    assert "allowzero" in result.report.rolled_back[0][1]
