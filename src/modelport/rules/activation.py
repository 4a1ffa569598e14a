"""Activation canonicalization rules that onnxscript lacks.

ONNX has no Relu6 operator; runtimes and converters (ORT's Conv+Clip fusion, OpenVINO, TFLite's RELU6)
recognise ``Clip(x, 0, 6)``. Exporters also write it as ``Min(Relu(x), 6)`` or ``Relu(Min(x, 6))``;
both equal ``Clip(x, 0, 6)`` because ``max(min(x, 6), 0) = min(max(x, 0), 6)`` for ``0 ≤ 6``.
(``Min(Max(x, 0), 6)``, ``Relu → Clip`` and ``Clip → Clip`` merges are onnxscript's rules; HardSwish
fusion — ``x · HardSigmoid(x)`` and ``x · Clip(x + 3, 0, 6) / 6`` — is onnxscript's ``fuse_hardswish``.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array


class ReluMinToClip(RewriteRuleClassBase):
    """``Min(Relu(x), c)`` and ``Relu(Min(x, c))`` with a scalar ``c ≥ 0`` → ``Clip(x, 0, c)``."""

    def __init__(self, relu_first: bool) -> None:
        super().__init__(name="ReluMinToClip" if relu_first else "MinReluToClip")
        self.relu_first = relu_first

    def pattern(self, op: Any, x: ir.Value, c: ir.Value) -> ir.Value:
        if self.relu_first:
            return op.Min(op.Relu(x), c, _outputs=["out"])
        return op.Relu(op.Min(x, c), _outputs=["out"])

    def check(self, context: Any, x: ir.Value, c: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        arr = const_array(c)
        if arr is None or arr.size != 1 or float(arr.reshape(-1)[0]) < 0:
            return result.fail("the bound is not a non-negative scalar constant")
        if x.dtype is None or not x.dtype.is_floating_point():
            return result.fail("input dtype unknown or not floating point")
        if context.model.opset_imports.get("", 0) < 11:
            return result.fail("Clip takes its bounds as inputs only from opset 11")
        return result

    def rewrite(self, op: Any, x: ir.Value, c: ir.Value, out: ir.Value) -> ir.Value:
        arr = const_array(c)
        assert arr is not None and x.dtype is not None
        dtype = x.dtype.numpy()
        low = op.initializer(ir.tensor(np.array(0, dtype=dtype)), name=f"{out.name}_min")
        high = op.initializer(ir.tensor(np.array(arr.reshape(-1)[0], dtype=dtype)), name=f"{out.name}_max")
        return op.Clip(x, low, high)


def relu6_rules() -> RewriteRuleSet:
    """modelport's Relu6 spellings → Clip(0, 6)."""
    return RewriteRuleSet([ReluMinToClip.rule(True), ReluMinToClip.rule(False)], commute=True)
