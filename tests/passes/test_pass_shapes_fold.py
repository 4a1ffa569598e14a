"""fix-dims + shape-inference + fold-constants: dynamic dims fixed, Shape sub-graphs folded away."""

from __future__ import annotations

import numpy as np
import pytest

import models
from modelport.errors import InvalidInputError
from modelport.passes import OptimizeOptions, optimize

HEAD = '<ir_version: 8, opset_import: ["" : 17]>'
DEFAULT = None  # the default pipeline


def dynamic_flatten() -> object:
    """x[N,C,H,W] → Reshape(x, Concat(Shape(x)[0], -1)): the legacy exporter's flatten."""
    return models.build(
        f"""{HEAD}
        df (float[N,3,H,W] x) => (float[N,?] y) {{
            s = Shape(x)
            n = Gather<axis = 0>(s, zero)
            nu = Unsqueeze(n, axes)
            shape = Concat<axis = 0>(nu, minus1)
            r = Relu(x)
            y = Reshape(r, shape)
        }}""",
        zero=np.array(0, np.int64),
        axes=np.array([0], np.int64),
        minus1=np.array([-1], np.int64),
    )


def test_fixing_dims_folds_the_shape_subgraph() -> None:
    out, report = models.run_optimizer(dynamic_flatten(), DEFAULT, input_shapes={"x": (2, 3, 4, 5)})
    assert models.op_types(out) == ["Relu", "Reshape"]
    assert [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 4, 5]
    assert [d.dim_value for d in out.graph.output[0].type.tensor_type.shape.dim] == [2, 60]
    stats = {p.name: p for p in report.passes}  # type: ignore[attr-defined]
    assert stats["fix-dims"].modified and stats["fold-constants"].modified


def test_fixing_dims_takes_a_tensorflow_tensor_name() -> None:
    """``x:0`` (the GraphDef's tensor name a user knows) names the converted model's input ``x``."""
    out, _ = models.run_optimizer(dynamic_flatten(), DEFAULT, input_shapes={"x:0": (2, 3, 4, 5)})
    assert [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 4, 5]


def test_batch_fixes_every_dynamic_leading_dim() -> None:
    out, _ = models.run_optimizer(models.mlp(), DEFAULT, batch=4)
    assert [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == [4, 8]
    assert [d.dim_value for d in out.graph.output[0].type.tensor_type.shape.dim] == [4, 4]


def test_constant_subgraph_is_folded() -> None:
    model = models.build(
        f"""{HEAD}
        cf (float[2,3] x) => (float[2,3] y) {{
            a = Mul(k, two)
            b = Add(a, one)
            y = Add(x, b)
        }}""",
        k=(2, 3),
        two=np.array(2.0, np.float32),
        one=np.array(1.0, np.float32),
    )
    out, _ = models.run_optimizer(model, ["fold-constants", "remove-unused"])
    assert models.op_types(out) == ["Add"]
    assert len(out.graph.initializer) == 1


def test_symbolic_shape_inference_names_dims() -> None:
    options = OptimizeOptions(passes=("shape-inference",), verify=False)
    result = optimize(models.save(models.mlp(), _tmp()), options=options)
    hidden = next(v for v in result.model.graph.all_nodes() if v.op_type == "Relu").outputs[0]
    assert hidden.shape is not None and str(hidden.shape[0]) == "batch" and hidden.shape[1] == 16


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (("nope", (1, 8)), "unknown input"),
        (("x", (1, 8, 1)), "rank 3"),
        (("x", (1, 9)), "fixes it to 8"),
    ],
)
def test_bad_input_shapes(shape: tuple[str, tuple[int, ...]], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        optimize(models.save(models.mlp(), _tmp()), options=OptimizeOptions(input_shapes=(shape,)))


def test_batch_cannot_change_a_static_leading_dim() -> None:
    with pytest.raises(InvalidInputError, match="fixed leading dim"):
        optimize(models.save(models.two_inputs(), _tmp()), options=OptimizeOptions(batch=4))


def _tmp():  # type: ignore[no-untyped-def]
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="mp-")) / "m.onnx"
