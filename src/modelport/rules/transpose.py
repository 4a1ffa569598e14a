"""Transpose elimination: push Transposes down through element-wise ops so that pairs meet and cancel.

For a permutation ``p`` write ``T_p(x)`` for ``Transpose(x, perm=p)``; ``T_p(x)[i] = x[i∘p⁻¹]``.

* An element-wise unary ``f`` commutes with any permutation of axes: ``f(T_p(x)) = T_p(f(x))``.
* A binary element-wise ``∘`` with both operands transposed the same way: ``T_p(a) ∘ T_p(b) = T_p(a ∘ b)``.
* With a constant ``c`` (numpy-broadcast to the rank ``r`` of ``x`` by prepending unit axes):
  ``T_p(a) ∘ c = T_p(a ∘ T_{p⁻¹}(c))``, so the constant is transposed once, at rewrite time.
* A Transpose that keeps the relative order of its non-unit axes does not move any data: it is a Reshape.
* Two Transposes compose, ``T_q(T_p(x)) = T_{p∘q}(x)``, and an identity permutation is removed; both of these
  are onnxscript's ``transpose_transpose`` / ``no_op_transpose`` rules.

Each rewrite moves one Transpose one node further down and needs the Transpose to have no other consumer,
so the node count never grows; repeated to a fixed point, the pass brings inverse pairs together
(``T_p → Relu → T_{p⁻¹}`` becomes ``Relu``), which is the OpenVINO/TFLite layout cleanup of the talk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import align, broadcast_keeps_shape, const_array, static_shape

#: Unary ops that act element by element (extra inputs, if any, are scalars such as Clip's bounds).
UNARY_ELEMENTWISE = (
    "Abs", "Acos", "Asin", "Atan", "Cast", "Ceil", "Celu", "Clip", "Cos", "Elu", "Erf", "Exp", "Floor",
    "Gelu", "HardSigmoid", "HardSwish", "Identity", "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not",
    "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Tan",
    "Tanh", "ThresholdedRelu",
)  # fmt: skip
#: Binary ops that broadcast element by element.
BINARY_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Greater", "Less", "And", "Or")
COMMUTATIVE = ("Add", "Mul", "Max", "Min", "Equal", "And", "Or")


def _perm(value: ir.Value) -> list[int] | None:
    node = value.producer()
    if node is None or node.op_type != "Transpose":
        return None
    attr = node.attributes.get("perm")
    if attr is None or attr.is_ref():
        return None
    return list(attr.as_ints())


class TransposeThroughUnary(RewriteRuleClassBase):
    """``f(T_p(x))`` → ``T_p(f(x))`` for an element-wise unary ``f``."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name=f"TransposeThrough{op_type}")
        self.op_type = op_type

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        t = op.Transpose(x, _allow_other_attributes=True, _outputs=["t"])
        fn = getattr(op, self.op_type)
        return fn(t, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, t: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if _perm(t) is None:
            return result.fail("Transpose has no constant perm")
        node = out.producer()
        assert node is not None
        if any(inp is t for inp in node.inputs[1:]):
            return result.fail("the Transpose feeds a non-data input")
        return result

    def rewrite(self, op: Any, x: ir.Value, t: ir.Value, out: ir.Value) -> ir.Value:
        node = out.producer()
        assert node is not None
        inner = op.op(self.op_type, x, *node.inputs[1:], _domain=node.domain, **dict(node.attributes))
        return op.Transpose(inner, perm=_perm(t))


class TransposeThroughBinary(RewriteRuleClassBase):
    """``T_p(a) ∘ T_p(b)`` → ``T_p(a ∘ b)``."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name=f"TransposeBoth{op_type}")
        self.op_type = op_type

    def pattern(self, op: Any, a: ir.Value, b: ir.Value) -> ir.Value:
        ta = op.Transpose(a, _allow_other_attributes=True, _outputs=["ta"])
        tb = op.Transpose(b, _allow_other_attributes=True, _outputs=["tb"])
        return getattr(op, self.op_type)(ta, tb)

    def check(self, context: Any, a: ir.Value, b: ir.Value, ta: ir.Value, tb: ir.Value) -> MatchResult:
        result = MatchResult()
        pa, pb = _perm(ta), _perm(tb)
        if pa is None or pa != pb:
            return result.fail("the two Transposes differ")
        return result

    def rewrite(self, op: Any, a: ir.Value, b: ir.Value, ta: ir.Value, tb: ir.Value) -> ir.Value:
        return op.Transpose(getattr(op, self.op_type)(a, b), perm=_perm(ta))


class TransposeThroughBinaryConst(RewriteRuleClassBase):
    """``T_p(a) ∘ c`` → ``T_p(a ∘ T_{p⁻¹}(c))`` for a constant ``c`` that does not enlarge the result."""

    def __init__(self, op_type: str, const_first: bool) -> None:
        super().__init__(name=f"TransposeConst{op_type}{'cx' if const_first else 'xc'}")
        self.op_type = op_type
        self.const_first = const_first

    def pattern(self, op: Any, a: ir.Value, c: ir.Value) -> ir.Value:
        ta = op.Transpose(a, _allow_other_attributes=True, _outputs=["ta"])
        fn = getattr(op, self.op_type)
        return fn(c, ta) if self.const_first else fn(ta, c)

    def check(self, context: Any, a: ir.Value, c: ir.Value, ta: ir.Value) -> MatchResult:
        result = MatchResult()
        perm = _perm(ta)
        arr = const_array(c)
        if perm is None or arr is None:
            return result.fail("no constant perm or operand")
        if arr.ndim > len(perm):
            return result.fail("the constant has a higher rank than the Transpose")
        if arr.size != 1:
            shape = static_shape(ta)
            if shape is None or not broadcast_keeps_shape(shape, arr.shape):
                return result.fail("the constant could enlarge the result")
        return result

    def rewrite(self, op: Any, a: ir.Value, c: ir.Value, ta: ir.Value) -> ir.Value:
        perm = _perm(ta)
        arr = const_array(c)
        assert perm is not None and arr is not None
        if arr.ndim == 0:
            moved = arr
        else:
            full = align(arr, len(perm))
            assert full is not None
            moved = np.ascontiguousarray(np.transpose(full, np.argsort(perm)))
        const = op.initializer(ir.tensor(moved), name=f"{ta.name}_{c.name}_T")
        fn = getattr(op, self.op_type)
        inner = fn(const, a) if self.const_first else fn(a, const)
        return op.Transpose(inner, perm=perm)


class TransposeOfUnitDimsToReshape(RewriteRuleClassBase):
    """A Transpose that keeps the order of its non-unit axes only moves size-1 axes: the buffer is unchanged,
    so it is a Reshape (which then merges with neighbouring Reshapes)."""

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Transpose(x, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        perm, shape, out_shape = _perm(out), static_shape(x), static_shape(out)
        if perm is None or shape is None or out_shape is None:
            return result.fail("perm or static shapes unknown")
        moved = [a for a in perm if shape[a] != 1]
        if moved != sorted(moved):
            return result.fail("non-unit axes change order")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        shape = static_shape(out)
        assert shape is not None
        const = op.initializer(ir.tensor(np.asarray(shape, dtype=np.int64)), name=f"{out.name}_shape")
        return op.Reshape(x, const)


def transpose_push_rules() -> RewriteRuleSet:
    """Rules that move Transposes below element-wise ops (see the module docstring)."""
    rules = [TransposeOfUnitDimsToReshape.rule(), *(TransposeThroughUnary.rule(t) for t in UNARY_ELEMENTWISE)]
    for t in BINARY_ELEMENTWISE:
        rules.append(TransposeThroughBinary.rule(t))
        rules.append(TransposeThroughBinaryConst.rule(t, False))
        if t not in COMMUTATIVE:
            rules.append(TransposeThroughBinaryConst.rule(t, True))
    return RewriteRuleSet(rules, commute=True)
