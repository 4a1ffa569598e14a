"""resize-no-align-corners: the rewritten model IS ONNX Runtime's half_pixel Resize (bit for bit), and differs from
the align_corners original by a measured amount within the derived bound, on a gradient-plus-edge image."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from modelport.rules.catalog import Exactness, rule_spec
from modelport.rules.resize import (
    ALIGN_CORNERS_RESIZE,
    grid_shift_bound,
    is_align_corners_resize,
    linear_difference_bound,
)
from rule_helpers import apply_rule, run_one

H, W = 24, 32


def _image() -> np.ndarray:
    """A smooth diagonal gradient plus a vertical edge of height 1 near a quarter of the width."""
    i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    img = 0.3 * (i / H) + 0.2 * (j / W) + (j >= W // 4 + 1)
    return np.stack([img, 1.0 - img]).astype(np.float32)[None]  # [1, 2, H, W]


def _resize(
    mode: str,
    transform: str,
    *,
    scales: tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    nearest: str = "floor",
) -> onnx.ModelProto:
    inputs = ["x", ""]
    inits = []
    if scales is not None:
        inputs.append("scales")
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, *scales]))
        out_hw = [int(H * scales[0]), int(W * scales[1])]
    else:
        assert size is not None
        inputs += ["", "sizes"]
        inits.append(helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 2, *size]))
        out_hw = list(size)
    node = helper.make_node(
        "Resize", inputs, ["y"], mode=mode, coordinate_transformation_mode=transform, nearest_mode=nearest
    )
    graph = helper.make_graph(
        [node],
        "r",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, *out_hw])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _apply(proto: onnx.ModelProto) -> tuple[int, onnx.ModelProto]:
    return apply_rule("resize-no-align-corners", proto)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return run_one(proto, x)


def _attrs(proto: onnx.ModelProto) -> dict[str, object]:
    (node,) = proto.graph.node
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "linear 2x up (scales)": ("linear", {"scales": (2.0, 2.0)}),
    "linear 3x up (sizes)": ("linear", {"size": (3 * H, 3 * W)}),
    "linear 2x down (scales)": ("linear", {"scales": (0.5, 0.5)}),
    "linear odd sizes": ("linear", {"size": (37, 45)}),
    "nearest 3x up": ("nearest", {"scales": (3.0, 3.0), "nearest": "round_prefer_ceil"}),
    "cubic 2x up": ("cubic", {"scales": (2.0, 2.0)}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_becomes_half_pixel_and_differs_by_the_measured_amount(case: str) -> None:
    mode, kw = CASES[case]
    original = _resize(mode, "align_corners", **kw)
    count, out = _apply(original)
    assert count == 1
    attrs = _attrs(out)
    assert attrs["coordinate_transformation_mode"] == b"half_pixel"
    assert (
        attrs["mode"] == mode.encode() and attrs["nearest_mode"] == _attrs(original)["nearest_mode"]
    )  # the others are kept
    x = _image()
    got = _run(out, x)
    np.testing.assert_array_equal(got, _run(_resize(mode, "half_pixel", **kw), x))  # ORT's own half_pixel Resize
    diff = np.abs(got - _run(original, x))
    scales = {2: got.shape[2] / H, 3: got.shape[3] / W}
    shift = max(grid_shift_bound(s) for s in scales.values())
    print(f"{case}: max |half_pixel − align_corners| = {diff.max():.4f} (grid shift ≤ {shift:.3f} px)")
    assert diff.max() > (0.01 if mode == "nearest" else 0.05)  # the change is real (at the edge unless nearest)
    if mode == "linear":
        assert diff.max() <= linear_difference_bound(x, scales) + 1e-5
    if mode == "nearest":  # the picked pixel moves by at most ⌈shift⌉ along each axis
        ceil = {axis: np.ceil(grid_shift_bound(s)) for axis, s in scales.items()}
        steps = [np.abs(np.diff(x, axis=axis)).max() * c for axis, c in ceil.items()]
        assert diff.max() <= sum(steps) + 1e-6


def test_leaves_other_modes_alone() -> None:
    for transform in ("half_pixel", "asymmetric", "pytorch_half_pixel"):
        count, out = _apply(_resize("linear", transform, scales=(2.0, 2.0)))
        assert count == 0
        assert _attrs(out)["coordinate_transformation_mode"] == transform.encode()


def test_declared_as_changing_numerics() -> None:
    spec = rule_spec("resize-no-align-corners")
    assert spec.exactness is Exactness.CHANGES
    assert grid_shift_bound(2.0) == 0.25 and grid_shift_bound(0.5) == 0.5 and grid_shift_bound(0.25) == 1.5


def test_align_corners_pseudo_op_for_the_profile_check() -> None:
    assert rule_spec("resize-no-align-corners").removes == (ALIGN_CORNERS_RESIZE,)
    original = _resize("linear", "align_corners", scales=(2.0, 2.0))
    assert [is_align_corners_resize(n) for n in ir.serde.deserialize_model(original).graph] == [True]
    _, out = _apply(original)
    assert [is_align_corners_resize(n) for n in ir.serde.deserialize_model(out).graph] == [False]
