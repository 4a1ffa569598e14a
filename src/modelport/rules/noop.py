"""Rules that replace no-op nodes by Identity (the identity-elimination pass then removes them).

onnxscript already covers Dropout at opset ≥ 12, Cast to the same type, Expand to the same shape, Transpose with
the identity permutation and some redundant Slices; these rules add what it lacks: exactly neutral scalars and
*tensors* (``x * 1``, ``x + zeros`` that do not broadcast ``x`` larger; onnxscript's own scalar rules match
within a tolerance and are not used), Dropout
before opset 12 (where inference is the identity and the mask output is unused), Pad with all-zero pads,
Slices with unit steps whose static output shape is the input's, single-output Split, and
Reshape/Flatten/Squeeze whose statically known output shape equals the input's — for Reshape also with dynamic
dims, when each target entry keeps its dim (the same size, a copying 0, or the one ``-1`` the element count then
forces to the input's size).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import broadcast_keeps_shape, const_array, is_all, static_shape


class NeutralElementwise(RewriteRuleClassBase):
    """``x ∘ c`` → ``x`` when ``c`` is the neutral element everywhere and does not broadcast ``x`` larger."""

    def __init__(self, op_type: str, neutral: float, const_first: bool = False) -> None:
        side = "cx" if const_first else "xc"
        super().__init__(name=f"Neutral{op_type}{side}")
        self.op_type = op_type
        self.neutral = neutral
        self.const_first = const_first

    def pattern(self, op: Any, x: ir.Value, c: ir.Value) -> ir.Value:
        fn = getattr(op, self.op_type)
        return fn(c, x) if self.const_first else fn(x, c)

    def check(self, context: Any, x: ir.Value, c: ir.Value) -> MatchResult:
        result = MatchResult()
        arr = const_array(c)
        if not is_all(arr, self.neutral):
            return result.fail(f"{c.name} is not a constant of all {self.neutral:g}")
        assert arr is not None
        shape = static_shape(x)
        if shape is None:
            if arr.size != 1 or arr.ndim > 0:
                return result.fail("input shape unknown and the constant is not a scalar")
        elif not broadcast_keeps_shape(shape, arr.shape):
            return result.fail("the constant would broadcast the input to a larger shape")
        if x.dtype is not None and c.dtype is not None and x.dtype != c.dtype:
            return result.fail("dtypes differ")
        return result

    def rewrite(self, op: Any, x: ir.Value, c: ir.Value) -> ir.Value:
        return op.Identity(x)


class DropoutInference(RewriteRuleClassBase):
    """``Dropout`` in inference (no ``training_mode``, or a constant False) with its mask unused → Identity."""

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Dropout(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        node = out.producer()
        assert node is not None
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            mode = const_array(node.inputs[2])
            if mode is None or bool(mode.reshape(-1)[0]):
                return result.fail("training_mode is not a constant False")
        for mask in node.outputs[1:]:
            if mask.uses() or mask.is_graph_output():
                return result.fail("the mask output is used")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        return op.Identity(x)


class ZeroPad(RewriteRuleClassBase):
    """``Pad`` whose pads are all zero (attribute before opset 11, input after) → Identity."""

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Pad(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        node = out.producer()
        assert node is not None
        attr = node.attributes.get("pads")
        if attr is not None:
            pads = np.asarray(attr.as_ints())
        else:
            arr = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
            if arr is None:
                return result.fail("pads are not constant")
            pads = arr
        if pads.size and not np.all(pads == 0):
            return result.fail("pads are not all zero")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        return op.Identity(x)


class SameShapeReshape(RewriteRuleClassBase):
    """``Reshape``/``Flatten``/``Squeeze`` whose static output shape equals its input shape → Identity."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name=f"SameShape{op_type}")
        self.op_type = op_type

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        fn = getattr(op, self.op_type)
        return fn(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        shape_in, shape_out = static_shape(x), static_shape(out)
        if self.op_type == "Reshape" and _reshape_keeps_dims(x, out):
            return result
        if shape_in is None or shape_out is None:
            return result.fail("shapes are not static")
        if shape_in != shape_out:
            return result.fail("the shape changes")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        return op.Identity(x)


def _reshape_keeps_dims(x: ir.Value, out: ir.Value) -> bool:
    """True when ``Reshape(x, target)`` with a constant target provably returns x's shape, dynamic dims included.

    Every target entry must keep its input dim: the same known size, or 0 ("copy", when ``allowzero`` is 0), or
    a single ``-1``. All other output dims then equal the input's, so the element count forces the ``-1`` to be
    the input's dim too.
    """
    node = out.producer()
    if node is None or len(node.inputs) < 2 or x.shape is None:
        return False
    target = const_array(node.inputs[1])
    attr = node.attributes.get("allowzero")
    allowzero = attr is not None and attr.as_int() == 1
    if target is None or target.ndim != 1 or len(target) != len(x.shape):
        return False
    minus_one = 0
    for dim, t in zip(x.shape.dims, target.tolist(), strict=True):
        if t == -1:
            minus_one += 1
        elif not ((t == 0 and not allowzero) or (isinstance(dim, int) and dim == t)):
            return False
    return minus_one <= 1


class FullSlice(RewriteRuleClassBase):
    """``Slice`` with unit steps whose static output shape equals its input's (so it takes every element)."""

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Slice(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        node = out.producer()
        assert node is not None
        shape_in = static_shape(x)
        if shape_in is None or shape_in != static_shape(out):
            return result.fail("shapes are not static or differ")
        if len(node.inputs) > 4 and node.inputs[4] is not None:
            steps = const_array(node.inputs[4])
            if steps is None or not np.all(steps == 1):
                return result.fail("steps are not all 1")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        return op.Identity(x)


class SinglePieceSplit(RewriteRuleClassBase):
    """``Split`` into a single output is the identity."""

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Split(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        node = out.producer()
        assert node is not None
        if len(node.outputs) != 1:
            return result.fail("Split has several outputs")
        shape_in, shape_out = static_shape(x), static_shape(out)
        if shape_in is not None and shape_out is not None and shape_in != shape_out:
            return result.fail("the single piece is smaller than the input")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        return op.Identity(x)


def noop_rules() -> RewriteRuleSet:
    """modelport's own no-op rules (see the module docstring)."""
    rules = [
        NeutralElementwise.rule("Mul", 1.0),
        NeutralElementwise.rule("Mul", 1.0, const_first=True),
        NeutralElementwise.rule("Add", 0.0),
        NeutralElementwise.rule("Add", 0.0, const_first=True),
        NeutralElementwise.rule("Sub", 0.0),
        NeutralElementwise.rule("Div", 1.0),
        NeutralElementwise.rule("Pow", 1.0),
        DropoutInference.rule(),
        ZeroPad.rule(),
        FullSlice.rule(),
        SinglePieceSplit.rule(),
        *(SameShapeReshape.rule(t) for t in ("Reshape", "Flatten", "Squeeze")),
    ]
    return RewriteRuleSet(rules)
