"""Chains of element-wise ops with constants merged into one op.

For constants ``a`` and ``b`` (initializers or Constant outputs) and any ``x``:

* ``(x · a) · b = x · (a·b)``;
* ``(x + a) + b = x + (a+b)``.

Broadcasting is associative, so the output shape ``broadcast(x, a, b)`` is the same both ways and ``a∘b`` is
computed once, in numpy, in the constants' dtype. In floating point the merged form rounds once where the chain
rounded twice: for Mul the results differ by at most two units in the last place (relative 2·2⁻²⁴ in fp32);
for Add by at most ``2⁻²⁴·(|x + a| + |a + b| + |x + a + b|)``, far inside the verification tolerance.
Exporters leave such chains from ``10 · log10(x)`` (``Log · (1/ln 10) · 10``), from
normalizations written as several scalings, and from folded BatchNorm parameters.

The inner op's result must have no other use (otherwise both ops would still be needed), and both constants must
have the dtype of ``x`` when it is known.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array


class ConstantChain(RewriteRuleClassBase):
    """``op(op(x, a), b)`` → ``op(x, a∘b)`` for an associative, commutative ``op`` (Mul, Add) and constants a, b."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name=f"{op_type}ConstantChain")
        self.op_type = op_type

    def pattern(self, op: Any, x: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        fn = getattr(op, self.op_type)
        return fn(fn(x, a, _outputs=["inner"]), b)

    def check(self, context: Any, x: ir.Value, a: ir.Value, b: ir.Value, inner: ir.Value) -> MatchResult:
        result = MatchResult()
        ca, cb = const_array(a), const_array(b)
        if ca is None or cb is None:
            return result.fail("both operands are not constants")
        if const_array(x) is not None:
            return result.fail("x is constant too (fold-constants evaluates the chain)")
        if len(inner.uses()) != 1 or inner.is_graph_output():
            return result.fail("the inner result has another use")
        if ca.dtype != cb.dtype or (x.dtype is not None and x.dtype.numpy() != ca.dtype):
            return result.fail("dtypes differ")
        if ca.dtype.kind not in "fiu":
            return result.fail("not a numeric dtype")
        return result

    def rewrite(self, op: Any, x: ir.Value, a: ir.Value, b: ir.Value, inner: ir.Value) -> ir.Value:
        ca, cb = const_array(a), const_array(b)
        assert ca is not None and cb is not None
        merged = np.multiply(ca, cb) if self.op_type == "Mul" else np.add(ca, cb)
        value = op.initializer(ir.tensor(np.asarray(merged, dtype=ca.dtype)), name=f"{inner.name}_{self.op_type}_ab")
        return getattr(op, self.op_type)(x, value)


def constant_chain_rules() -> RewriteRuleSet:
    """Mul and Add chains, every operand order."""
    return RewriteRuleSet([ConstantChain.rule("Mul"), ConstantChain.rule("Add")], commute=True)
