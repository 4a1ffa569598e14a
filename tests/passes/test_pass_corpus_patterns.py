"""Patterns found on the real-model corpus where onnxsim left fewer nodes (benchmarks/results/optimizer_corpus.md):
dynamic-batch reshape chains, nested Concats, per-axis Slices, scalar-index shape gathers, constant Mul chains,
zero RNN states, and two soundness fixes (approximate no-op matching, trusting a declared output shape)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import models
from modelport.passes import OptimizeOptions, optimize

HEAD = '<ir_version: 8, opset_import: ["" : 17]>'


def _same_at(model: onnx.ModelProto, out: onnx.ModelProto, batch: int) -> None:
    feeds = models.feeds_for(model, seed=batch, batch=batch)
    for ref, got in zip(models.ort_outputs(model, feeds), models.ort_outputs(out, feeds), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_reshape_unsqueeze_reshape_collapses_with_a_dynamic_batch() -> None:
    model = models.build(
        f"""{HEAD}
        rc (float[N,1,40] x) => (float[N,1,1,40] y) {{
            r = Relu(x)
            a = Reshape(r, s1)
            b = Unsqueeze(a, ax)
            y = Reshape(b, s2)
        }}""",
        s1=np.array([-1, 40, 1], np.int64),
        ax=np.array([-3], np.int64),
        s2=np.array([-1, 1, 1, 40], np.int64),
    )
    out, _ = models.run_optimizer(model, ["shape-inference", "collapse-reshapes", "remove-unused"], batch=None)
    assert models.op_types(out) == ["Relu", "Reshape"]
    _same_at(model, out, batch=3)


def test_unsqueeze_after_reshape_becomes_one_reshape() -> None:
    model = models.build(
        f"""{HEAD}
        ru (float[N,6] x) => (float[N,2,1,3] y) {{
            r = Relu(x)
            a = Reshape(r, s1)
            y = Unsqueeze(a, ax)
        }}""",
        s1=np.array([-1, 2, 3], np.int64),
        ax=np.array([2], np.int64),
    )
    out, _ = models.run_optimizer(model, ["collapse-reshapes", "remove-unused"])
    assert models.op_types(out) == ["Relu", "Reshape"]
    target = {i.name: onnx.numpy_helper.to_array(i) for i in out.graph.initializer}[out.graph.node[1].input[1]]
    assert target.tolist() == [-1, 2, 1, 3]
    _same_at(model, out, batch=4)


def test_reshape_keeping_a_dynamic_shape_is_removed() -> None:
    model = models.build(
        f"""{HEAD}
        rk (float[N,1,4,5] x) => (float[N,1,4,5] y) {{
            r = Relu(x)
            y = Reshape(r, s)
        }}""",
        s=np.array([-1, 1, 4, 5], np.int64),
    )
    out, _ = models.run_optimizer(model, ["shape-inference", "eliminate-noops", "eliminate-identity"])
    assert models.op_types(out) == ["Relu"]
    _same_at(model, out, batch=2)


def test_reshape_moving_a_dynamic_dim_is_kept() -> None:
    model = models.build(
        f"""{HEAD}
        rm (float[N,4] x) => (float[4,N] y) {{
            y = Reshape(x, s)
        }}""",
        s=np.array([4, -1], np.int64),
    )
    out, _ = models.run_optimizer(model, ["shape-inference", "eliminate-noops", "eliminate-identity"])
    assert models.op_types(out) == ["Reshape"]


def test_tiny_epsilon_add_is_not_a_noop() -> None:
    """onnxscript's x+0 rule matches |c| ≤ 1e-8; Log(x² + 1e-10) must keep its epsilon."""
    model = models.build(
        f"""{HEAD}
        eps (float[2,3] x) => (float[2,3] y) {{
            sq = Mul(x, x)
            a = Add(sq, eps)
            b = Add(a, zero)
            y = Log(b)
        }}""",
        eps=np.array(1e-10, np.float32),
        zero=np.array(0.0, np.float32),
    )
    out, _ = models.run_optimizer(model, ["eliminate-noops", "eliminate-identity"])
    assert models.op_types(out) == ["Mul", "Add", "Log"]
    feeds = {"x": np.zeros((2, 3), np.float32)}
    np.testing.assert_allclose(models.ort_outputs(out, feeds)[0], np.log(np.float32(1e-10)), rtol=1e-6)


def test_constant_mul_and_add_chains_merge() -> None:
    model = models.build(
        f"""{HEAD}
        mc (float[N,3] x) => (float[N,3] y) {{
            l = Log(x)
            a = Mul(l, c1)
            b = Mul(c2, a)
            c = Add(b, d1)
            y = Add(c, d2)
        }}""",
        c1=np.array(0.4342944622039795, np.float32),
        c2=np.array([10.0, 20.0, 30.0], np.float32),
        d1=np.array(1.5, np.float32),
        d2=np.array(-0.25, np.float32),
    )
    out, _ = models.run_optimizer(model, ["merge-constant-chains", "remove-unused"])
    assert models.op_types(out) == ["Log", "Mul", "Add"]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in out.graph.initializer}
    np.testing.assert_allclose(
        inits[out.graph.node[1].input[1]],
        np.float32(0.4342944622039795) * np.array([10, 20, 30], np.float32),
        rtol=1e-7,
    )
    feeds = {"x": np.random.default_rng(0).uniform(0.5, 2.0, (5, 3)).astype(np.float32)}
    for ref, got in zip(models.ort_outputs(model, feeds), models.ort_outputs(out, feeds), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_shared_inner_mul_is_not_merged() -> None:
    model = models.build(
        f"""{HEAD}
        ms (float[2,3] x) => (float[2,3] y, float[2,3] z) {{
            a = Mul(x, c1)
            y = Mul(a, c2)
            z = Relu(a)
        }}""",
        c1=np.array(2.0, np.float32),
        c2=np.array(3.0, np.float32),
    )
    out, _ = models.run_optimizer(model, ["merge-constant-chains"])
    assert models.op_types(out) == ["Mul", "Mul", "Relu"]


def test_nested_concats_on_one_axis_merge() -> None:
    model = models.parse(f"""{HEAD}
        cc (float[N,2,3] a, float[N,2,3] b, float[N,2,3] c, float[N,2,3] d) => (float[N,2,12] y, float[N,4,6] z) {{
            ab = Concat<axis = -1>(a, b)
            abc = Concat<axis = 2>(ab, c)
            y = Concat<axis = 2>(abc, d)
            cd = Concat<axis = 2>(c, d)
            z = Concat<axis = 1>(ab, cd)
        }}""")
    out, _ = models.run_optimizer(model, ["shape-inference", "merge-concats", "remove-unused"])
    assert models.op_types(out).count("Concat") == 4  # ab, y (was abc + y), cd, z (cd joins on another axis)
    y_node = next(n for n in out.graph.node if n.output[0] == "y")
    assert list(y_node.input) == ["ab", "c", "d"]  # ab also feeds z: kept
    _same_at(model, out, batch=2)


def test_slices_on_disjoint_axes_merge() -> None:
    """YOLOv5's Focus: x[..., ::2, ::2] and friends, written as one Slice per axis."""
    model = models.build(
        f"""{HEAD}
        sl (float[1,3,8,8] x) => (float[1,6,4,4] y) {{
            r = Slice(x, s0, e, a2, k)
            p = Slice(r, s0, e, a3, k)
            q = Slice(r, s1, e, a3, k)
            y = Concat<axis = 1>(p, q)
        }}""",
        s0=np.array([0], np.int64),
        s1=np.array([1], np.int64),
        e=np.array([2**62], np.int64),
        a2=np.array([2], np.int64),
        a3=np.array([-1], np.int64),
        k=np.array([2], np.int64),
    )
    out, _ = models.run_optimizer(model, ["merge-slices", "remove-unused"])
    assert models.op_types(out) == ["Slice", "Slice", "Concat"]
    assert all(n.input[0] == "x" for n in out.graph.node if n.op_type == "Slice")


def test_slices_on_the_same_axis_are_kept() -> None:
    model = models.build(
        f"""{HEAD}
        ss (float[1,10] x) => (float[1,2] y) {{
            r = Slice(x, s, e, a)
            y = Slice(r, s, e2, a)
        }}""",
        s=np.array([1], np.int64),
        e=np.array([8], np.int64),
        e2=np.array([3], np.int64),
        a=np.array([1], np.int64),
    )
    out, _ = models.run_optimizer(model, ["merge-slices"])
    assert models.op_types(out) == ["Slice", "Slice"]


def test_scalar_shape_gather_and_one_free_reshape_target_fold() -> None:
    """x.view(x.size(0), x.size(1), 6) with only the batch dynamic: the target becomes [-1, 4, 6]."""
    model = models.build(
        f"""{HEAD}
        sg (float[N,4,2,3] x) => (float[N,4,6] y) {{
            s = Shape(x)
            n = Gather<axis = 0>(s, i0)
            c = Gather<axis = 0>(s, i1)
            nu = Unsqueeze(n, ax)
            cu = Unsqueeze(c, ax)
            t = Concat<axis = 0>(nu, cu, six)
            y = Reshape(x, t)
        }}""",
        i0=np.array(0, np.int64),
        i1=np.array(1, np.int64),
        ax=np.array([0], np.int64),
        six=np.array([6], np.int64),
    )
    names = ["shape-inference", "fold-constants", "fold-shape-gathers", "collapse-reshapes", "remove-unused"]
    out, _ = models.run_optimizer(model, names)
    assert models.op_types(out) == ["Reshape"]
    _same_at(model, out, batch=3)


def test_reshape_to_a_graph_output_does_not_trust_the_declared_shape() -> None:
    """A graph output declared [1, M, 4] although the Reshape gives [N, 1, 4]: ORT ignores the declaration, so
    materializing the target from it ([1, -1, 4]) would change the result's shape."""
    model = models.build(
        f"""{HEAD}
        ds (float[N,1,4] x) => (float[1,M,4] y) {{
            s = Shape(x)
            n = Gather<axis = 0>(s, i0)
            nu = Unsqueeze(n, ax)
            t = Concat<axis = 0>(nu, one, m1)
            y = Reshape(x, t)
        }}""",
        i0=np.array(0, np.int64),
        ax=np.array([0], np.int64),
        one=np.array([1], np.int64),
        m1=np.array([-1], np.int64),
    )
    options = OptimizeOptions(passes=("default",))
    result = optimize(ir.serde.deserialize_model(model), options=options)
    out = ir.serde.serialize_model(result.model)
    feeds = {"x": np.ones((3, 1, 4), np.float32)}
    assert models.ort_outputs(out, feeds)[0].shape == (3, 1, 4)
    assert not result.report.rolled_back


def test_zero_gru_state_is_dropped() -> None:
    """Paddle's GRU export: initial_h = Slice(Expand(0, [2, batch, H])) — zero, GRU's default."""
    hidden, feat = 3, 2
    rng = np.random.default_rng(0)
    model = models.build(
        f"""{HEAD}
        gru (float[T,N,{feat}] x) => (float[T,1,N,{hidden}] y) {{
            s = Shape(x)
            b = Slice(s, i1, i2, i0)
            shp = Concat<axis = 0>(two, b, h)
            z = Expand(zero, shp)
            h0 = Slice(z, i0, i1, i0)
            y, yh = GRU<hidden_size = {hidden}, linear_before_reset = 1>(x, w, r, bias, , h0)
        }}""",
        i0=np.array([0], np.int64),
        i1=np.array([1], np.int64),
        i2=np.array([2], np.int64),
        two=np.array([2], np.int64),
        h=np.array([hidden], np.int64),
        zero=np.array([0.0], np.float32),
        w=rng.standard_normal((1, 3 * hidden, feat)).astype(np.float32),
        r=rng.standard_normal((1, 3 * hidden, hidden)).astype(np.float32),
        bias=rng.standard_normal((1, 6 * hidden)).astype(np.float32),
    )
    out, _ = models.run_optimizer(model, ["drop-zero-rnn-states", "remove-unused"])
    assert models.op_types(out) == ["GRU"]
    assert len(out.graph.node[0].input) == 4
    _same_at(model, out, batch=2)


def test_slice_of_shape_with_known_dims_folds() -> None:
    model = models.build(
        f"""{HEAD}
        ss (float[N,4,6] x) => (float[N,24] y) {{
            s = Shape(x)
            tail = Slice(s, m2, big)
            p = ReduceProd<keepdims = 1>(tail)
            t = Concat<axis = 0>(m1, p)
            y = Reshape(x, t)
        }}""",
        m2=np.array([-2], np.int64),
        big=np.array([2**62], np.int64),
        m1=np.array([-1], np.int64),
    )
    names = ["shape-inference", "fold-constants", "fold-shape-gathers", "remove-unused"]
    out, _ = models.run_optimizer(model, names)
    assert models.op_types(out) == ["Reshape"]
    _same_at(model, out, batch=3)


def test_unsqueeze_pairs_merge_with_a_dynamic_dim() -> None:
    model = models.build(
        f"""{HEAD}
        uu (float[N] x) => (float[N,1,1,1] y) {{
            a = Unsqueeze(x, ax12)
            y = Unsqueeze(a, ax3)
        }}""",
        ax12=np.array([1, 2], np.int64),
        ax3=np.array([-1], np.int64),
    )
    out, _ = models.run_optimizer(model, ["collapse-reshapes", "remove-unused"])
    assert models.op_types(out) == ["Unsqueeze"]
    axes = {i.name: onnx.numpy_helper.to_array(i) for i in out.graph.initializer}[out.graph.node[0].input[1]]
    assert axes.tolist() == [1, 2, 3]
    _same_at(model, out, batch=5)


def test_a_result_that_cannot_run_is_rolled_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass whose result loads but fails at run time is rolled back like a numerical mismatch."""
    from modelport.passes import reshape as reshape_pass

    def break_reshape(graph: ir.Graph) -> int:  # a wrong target: valid for the checker, fails in ORT
        for node in graph:
            if node.op_type == "Reshape" and "bad" not in graph.initializers:
                node.replace_input_with(1, ir.Value(name="bad", const_value=ir.tensor(np.array([5, -1], np.int64))))
                graph.register_initializer(node.inputs[1])  # type: ignore[arg-type]
                return 1
        return 0

    monkeypatch.setattr(reshape_pass, "_collapse", break_reshape)
    model = models.build(
        f"""{HEAD}
        rb (float[2,3] x) => (float[6] y) {{
            r = Relu(x)
            y = Reshape(r, s)
        }}""",
        s=np.array([6], np.int64),
    )
    result = optimize(ir.serde.deserialize_model(model))
    assert [name for name, _ in result.report.rolled_back] == ["collapse-reshapes"]
    assert "fails where the original runs" in result.report.rolled_back[0][1]


def test_verification_uses_sizes_the_original_accepts() -> None:
    """Reshaping an [N, H] input to [N, 32, -1] needs H divisible by 32: the original refuses the default sizes
    (H = 16, 24), the ladder of sizes finds ones it accepts (128, 512) and verification runs there."""
    model = models.build(
        f"""{HEAD}
        needs (float[N,H] x) => (float[N,32,K] y) {{
            r = Relu(x)
            a = Identity(r)
            y = Reshape(a, s)
        }}""",
        s=np.array([0, 32, -1], np.int64),
    )
    result = optimize(ir.serde.deserialize_model(model))
    assert result.report.verification is not None and result.report.verification.passed
    assert models.op_types(ir.serde.serialize_model(result.model)) == ["Relu", "Reshape"]


def test_a_pass_that_raises_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass that crashes on a graph (a bug, an unsupported construct) is dropped and the rest still run."""
    from modelport.passes import merge

    def crash(graph: ir.Graph) -> int:
        raise ValueError("Value is already an output of a different graph")

    monkeypatch.setattr(merge, "merge_concats", crash)
    model = models.build(
        f"""{HEAD}
        pc (float[2,3] x) => (float[2,3] y) {{
            a = Mul(x, one)
            y = Relu(a)
        }}""",
        one=np.array(1.0, np.float32),
    )
    result = optimize(ir.serde.deserialize_model(model))
    assert [name for name, _ in result.report.rolled_back] == ["merge-concats"]
    assert "already an output" in result.report.rolled_back[0][1]
    assert models.op_types(ir.serde.serialize_model(result.model)) == ["Relu"]  # eliminate-noops still ran


def test_concat_of_every_dim_becomes_shape() -> None:
    """T5's decoder: ConstantOfShape(Concat(x.size(0), x.size(1))) — the Concat is Shape(x)."""
    model = models.build(
        f"""{HEAD}
        cs (float[N,T] x) => (float[N,T] y) {{
            s = Shape(x)
            a = Gather<axis = 0>(s, i0)
            b = Gather<axis = 0>(s, i1)
            au = Unsqueeze(a, ax)
            bu = Unsqueeze(b, ax)
            t = Concat<axis = 0>(au, bu)
            z = ConstantOfShape<value = float[1] {{2.0}}>(t)
            y = Mul(x, z)
        }}""",
        i0=np.array(0, np.int64),
        i1=np.array(1, np.int64),
        ax=np.array([0], np.int64),
    )
    out, _ = models.run_optimizer(model, ["fold-shape-gathers", "remove-unused"])
    assert models.op_types(out) == ["Shape", "ConstantOfShape", "Mul"]
    _same_at(model, out, batch=3)


def test_concat_of_dims_out_of_order_is_kept() -> None:
    model = models.build(
        f"""{HEAD}
        co (float[N,T] x) => (int64[2] y) {{
            s = Shape(x)
            a = Gather<axis = 0>(s, i0)
            b = Gather<axis = 0>(s, i1)
            au = Unsqueeze(a, ax)
            bu = Unsqueeze(b, ax)
            y = Concat<axis = 0>(bu, au)
        }}""",
        i0=np.array(0, np.int64),
        i1=np.array(1, np.int64),
        ax=np.array([0], np.int64),
    )
    out, _ = models.run_optimizer(model, ["fold-shape-gathers", "remove-unused"])
    assert "Concat" in models.op_types(out)
