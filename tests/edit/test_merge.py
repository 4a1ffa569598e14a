"""``modelport.edit.merging``: chains, parallel fusion, prefixes, opset alignment and every bad-input path."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import models
from modelport.edit import CheckOptions, merge
from modelport.edit.merging import default_opset, resolve_connection
from modelport.errors import InvalidInputError


def relu(opset: int = 17, ir_version: int = 8, name: str = "a") -> onnx.ModelProto:
    return models.parse(f"""
        <ir_version: {ir_version}, opset_import: ["" : {opset}]>
        {name} (float[N,4] x) => (float[N,4] y) {{ y = Relu(x) }}
    """)


def neg(opset: int = 17, ir_version: int = 8) -> onnx.ModelProto:
    return models.parse(f"""
        <ir_version: {ir_version}, opset_import: ["" : {opset}]>
        b (float[N,4] u) => (float[N,4] v) {{ v = Neg(u) }}
    """)


def add_two() -> onnx.ModelProto:
    """p + q → s, and p * 2 → d: one input that a chain leaves open, two outputs."""
    return models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        c (float[N,4] p, float[N,4] q) => (float[N,4] s, float[N,4] d) {
            s = Add(p, q)
            two = Constant <value = float {2.0}> ()
            d = Mul(p, two)
        }
    """)


def run(model: onnx.ModelProto, **feeds: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))


X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
Q = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)


def test_chain_of_two_keeps_names_without_a_collision() -> None:
    a, b = relu(), neg()
    a_bytes, b_bytes = a.SerializeToString(), b.SerializeToString()
    result = merge([a, b], connect=["y:u"])
    assert [i.name for i in result.model.graph.input] == ["x"]
    assert [o.name for o in result.model.graph.output] == ["v"]
    np.testing.assert_array_equal(run(result.model, x=X)["v"], -np.maximum(X, 0))
    report = result.report
    assert report.changes == ("connected 0.y → 1.u",)
    assert (report.nodes_before, report.nodes_after) == (2, 2)
    assert report.verification is not None and report.verification.passed and report.verification.max_abs == 0
    assert (a.SerializeToString(), b.SerializeToString()) == (a_bytes, b_bytes)  # sources untouched


def test_chain_of_three_with_indices_fan_out_and_an_open_input() -> None:
    # 0.y feeds both 1.u and 2.p; 2.q stays a graph input; 1.v is a final output next to 2.s and 2.d
    result = merge([relu(), neg(), add_two()], connect=[("0.y", "1.u"), "0.y:2.p"])
    graph = result.model.graph
    assert [i.name for i in graph.input] == ["x", "q"]
    assert [o.name for o in graph.output] == ["v", "s", "d"]
    got = run(result.model, x=X, q=Q)
    r = np.maximum(X, 0)
    np.testing.assert_array_equal(got["v"], -r)
    np.testing.assert_array_equal(got["s"], r + Q)
    np.testing.assert_array_equal(got["d"], r * 2)
    assert result.report.verification is not None and result.report.verification.max_abs == 0


def test_chain_of_three_wired_in_sequence() -> None:
    third = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        t (float[N,4] w) => (float[N,4] z) { z = Exp(w) }
    """)
    result = merge([relu(), neg(), third], connect=["y:u", "v:w"])
    assert [o.name for o in result.model.graph.output] == ["z"]
    np.testing.assert_allclose(run(result.model, x=X)["z"], np.exp(-np.maximum(X, 0)), rtol=1e-6)
    assert result.report.nodes_after == 3


def test_parallel_of_three_shares_the_equal_input() -> None:
    third = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        t (float[N,4] x, float[N,4] k) => (float[N,4] y) { y = Sub(x, k) }
    """)
    renamed = relu(name="r")
    result = merge([relu(), renamed, third], parallel=True)
    graph = result.model.graph
    # x is shared by all three; the outputs all called y collide and get their model's prefix, k stays as it is
    assert [i.name for i in graph.input] == ["x", "k"]
    assert [o.name for o in graph.output] == ["m0/y", "m1/y", "m2/y"]
    got = run(result.model, x=X, k=Q)
    np.testing.assert_array_equal(got["m0/y"], np.maximum(X, 0))
    np.testing.assert_array_equal(got["m1/y"], np.maximum(X, 0))
    np.testing.assert_array_equal(got["m2/y"], X - Q)
    assert any("shared inputs: x (models 0, 1, 2)" in c for c in result.report.changes)
    assert any("inner names of every model with m0/, m1/, m2/ (names collide: y)" in c for c in result.report.changes)
    assert result.report.verification is not None and result.report.verification.max_abs == 0


def test_parallel_does_not_share_an_input_of_another_shape() -> None:
    other = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        o (float[N,5] x) => (float[N,5] z) { z = Abs(x) }
    """)
    result = merge([relu(), other], parallel=True)
    assert [i.name for i in result.model.graph.input] == ["m0/x", "m1/x"]
    assert [o.name for o in result.model.graph.output] == ["y", "z"]
    assert "inputs/outputs renamed: m0/x, m1/x" in result.report.changes[-1]


def test_given_prefixes_and_collisions_in_a_chain() -> None:
    # both models name their tensors x and y: the consumed input does not count, the two y do; the inner names
    # are all prefixed, an input or output only where it collides
    second = relu(name="second")
    auto = merge([relu(), second], connect=["0.y:1.x"])
    assert [i.name for i in auto.model.graph.input] == ["x"]
    assert [o.name for o in auto.model.graph.output] == ["m1/y"]
    onnx.checker.check_model(auto.model, full_check=True)
    given = merge([relu(), second], connect=["0.y:1.x"], prefixes=["", "b."])
    assert [i.name for i in given.model.graph.input] == ["x"]
    assert [o.name for o in given.model.graph.output] == ["b.y"]
    with pytest.raises(InvalidInputError, match="cannot merge"):
        merge([relu(), second], connect=["0.y:1.x"], prefixes=["", ""], check=CheckOptions(verify=False))
    with pytest.raises(InvalidInputError, match="1 prefixes for 2 models"):
        merge([relu(), second], connect=["0.y:1.x"], prefixes=["p/"])


def test_opsets_and_ir_versions_are_aligned() -> None:
    result = merge([relu(opset=13, ir_version=7), neg(opset=17, ir_version=8)], connect=["y:u"])
    assert default_opset(result.model) == 17 and result.model.ir_version == 8
    assert "converted model 0 (<model>) from opset 13 to 17" in result.report.changes
    pinned = merge([relu(opset=13), neg(opset=17)], connect=["y:u"], opset=18)
    assert default_opset(pinned.model) == 18
    assert pinned.report.verification is not None and pinned.report.verification.max_abs == 0


def test_opsets_that_cannot_be_aligned() -> None:
    layer_norm = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        ln (float[N,4] u, float[4] s, float[4] b) => (float[N,4] v) { v = LayerNormalization(u, s, b) }
    """)
    with pytest.raises(InvalidInputError, match=r"model 1 .* opset 17 to 13: .*LayerNormalization"):
        merge([relu(opset=13), layer_norm], connect=["y:u"], opset=13)


def test_connection_errors_name_the_model_and_its_tensors() -> None:
    a, b = relu(), neg()
    with pytest.raises(InvalidInputError, match="'nope' is no output of any model") as exc:
        merge([a, b], connect=["nope:u"])
    assert exc.value.hint is not None and "model 0 (<model>) outputs: y" in exc.value.hint
    with pytest.raises(InvalidInputError, match="'nope' is no input of a later model") as exc:
        merge([a, b], connect=["y:nope"])
    assert exc.value.hint is not None and "model 1 (<model>) inputs: u" in exc.value.hint
    with pytest.raises(InvalidInputError, match="from model 1 to model 0"):
        merge([a, b], connect=["v:x"])
    with pytest.raises(InvalidInputError, match="no ':'"):
        merge([a, b], connect=["yu"])
    with pytest.raises(InvalidInputError, match="ambiguous"):
        merge([relu(), relu(name="r2"), neg()], connect=["y:u"])
    with pytest.raises(InvalidInputError, match="fed by two connections"):
        merge([relu(), relu(name="r2"), neg()], connect=["0.y:2.u", "1.y:2.u"])


def test_dtype_and_shape_mismatches() -> None:
    ints = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        i (int64[N,4] u) => (int64[N,4] v) { v = Neg(u) }
    """)
    with pytest.raises(InvalidInputError, match=r"dtypes differ: float32\[\?,4\] → int64\[\?,4\]"):
        merge([relu(), ints], connect=["y:u"])
    wide = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        w (float[N,5] u) => (float[N,5] v) { v = Neg(u) }
    """)
    with pytest.raises(InvalidInputError, match=r"static shapes differ: float32\[\?,4\] → float32\[\?,5\]"):
        merge([relu(), wide], connect=["y:u"])
    flat = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        f (float[N] u) => (float[N] v) { v = Neg(u) }
    """)
    with pytest.raises(InvalidInputError, match="ranks differ"):
        merge([relu(), flat], connect=["y:u"])


def test_mode_errors() -> None:
    with pytest.raises(InvalidInputError, match="two or more models, got 1"):
        merge([relu()], parallel=True)
    with pytest.raises(InvalidInputError, match="needs connections"):
        merge([relu(), neg()])
    with pytest.raises(InvalidInputError, match="not both"):
        merge([relu(), neg()], connect=["y:u"], parallel=True)


def test_tensor_names_with_colons_resolve() -> None:
    outputs, inputs = [["out:0"], ["b:1"]], [["in:0"], ["in:0", "a:b"]]
    wire = resolve_connection("out:0:in:0", outputs, inputs, ["a", "b"])
    assert (wire.src_model, wire.src, wire.dst_model, wire.dst) == (0, "out:0", 1, "in:0")
    wire = resolve_connection("0.out:0:1.a:b", outputs, inputs, ["a", "b"])
    assert (wire.src, wire.dst) == ("out:0", "a:b")


def test_no_verify_skips_the_check() -> None:
    result = merge([relu(), neg()], connect=["y:u"], check=CheckOptions(verify=False))
    assert result.report.verification is None


def test_the_check_catches_a_wrong_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    import modelport.edit.merging as merge_module
    from modelport.errors import VerificationError

    chain = merge_module._chain

    def miswired(*args: object) -> onnx.ModelProto:
        out = chain(*args)  # type: ignore[arg-type]
        next(n for n in out.graph.node if n.op_type == "Neg").op_type = "Abs"
        return out

    monkeypatch.setattr(merge_module, "_chain", miswired)
    with pytest.raises(VerificationError):
        merge([relu(), neg()], connect=["y:u"])


def gather_rows() -> onnx.ModelProto:
    """x[1,4] gathered at 8 row indices: any index but 0 is out of range, so random {0, 1} feeds break it."""
    return models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,4] x, int64[8] i) => (float[8,4] y) { y = Gather(x, i) }
    """)


def test_a_failing_source_is_named_and_real_feeds_verify() -> None:
    absolute = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        b (float[8,4] u) => (float[8,4] v) { v = Abs(u) }
    """)
    with pytest.raises(InvalidInputError, match=r"the source model 0 \(<model>\) fails on the verification inputs"):
        merge([gather_rows(), absolute], connect=["y:u"])
    feeds = {"x": X[:1], "i": np.zeros(8, np.int64)}
    result = merge([gather_rows(), absolute], connect=["y:u"], check=CheckOptions(feeds=feeds))
    assert result.report.verification is not None and result.report.verification.max_abs == 0
    with pytest.raises(InvalidInputError, match="missing input"):
        merge([gather_rows(), absolute], connect=["y:u"], check=CheckOptions(feeds={"x": X[:1]}))
