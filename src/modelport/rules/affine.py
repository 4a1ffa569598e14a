"""Per-channel constant Mul/Add folded into the weights and bias of a preceding Conv, Gemm or MatMul.

onnxscript's ``conv_affine`` rules only take *scalar* Mul+Add pairs; these take per-output-channel constants,
one op at a time, so ``Conv → Mul(s) → Add(t)`` folds in two steps.

With output channel ``c`` of a Conv ``y_c = Σ W_c · x + b_c`` (W of shape [C_out, C_in/g, k…]):

* ``y_c · s_c = Σ (s_c W_c) · x + s_c b_c``  → ``W' = W · s[:, None, …]``, ``b' = b · s``;
* ``y_c + t_c`` → ``b' = b + t``.

A constant qualifies when, numpy-broadcast to the output rank, it varies only along the channel axis 1
(shape [1, C, 1, …] or a size-1 tensor), so it never enlarges the output. ConvTranspose takes only the bias
Add (its weight layout is [C_in, C_out/g, k…]).

For ``Gemm(A, B, C; α, β) = α·op(A)·op(B) + β·C`` with output [M, N] and a constant varying only along N:

* ``· s`` scales the columns of ``op(B)`` (rows of B when ``transB=1``) and ``C`` → ``C' = C · s``;
* ``+ t`` → ``C' = β·C + t``, ``β' = 1`` (``t`` may also be a full [M, N] or [M, 1] constant).

For ``MatMul(x, W)`` with a constant 2-D ``W`` of shape [K, N], ``(x·W) · s = x · (W·diag(s))`` for ``s``
varying only along the last axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import align, const_array, per_axis_vector, rank_of


def _channel_vector(c: ir.Value, out_rank: int, axis: int, size: int) -> np.ndarray | None:
    arr = const_array(c)
    if arr is None or arr.ndim > out_rank:
        return None
    return per_axis_vector(arr, out_rank, axis, size)


class FuseMulAddIntoConv(RewriteRuleClassBase):
    """``Conv(x, W[, b]) · s`` → ``Conv(x, W·s, b·s)`` and ``Conv(x, W[, b]) + t`` → ``Conv(x, W, b + t)``."""

    def __init__(self, op_type: str, conv_type: str = "Conv") -> None:
        super().__init__(name=f"Fuse{op_type}Into{conv_type}")
        self.op_type = op_type
        self.conv_type = conv_type

    def pattern(self, op: Any, x: ir.Value, w: ir.Value, c: ir.Value) -> ir.Value:
        conv = getattr(op, self.conv_type)(
            x, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["conv"]
        )
        return getattr(op, self.op_type)(conv, c)

    def _parts(self, w: ir.Value, conv: ir.Value, c: ir.Value) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        node = conv.producer()
        weights = const_array(w)
        if node is None or weights is None:
            return None
        channels = weights.shape[0] if self.conv_type == "Conv" else weights.shape[1] * _group(node)
        bias_value = node.inputs[2] if len(node.inputs) > 2 else None
        bias = np.zeros(channels, weights.dtype) if bias_value is None else const_array(bias_value)
        vec = _channel_vector(c, weights.ndim, 1, channels)
        if bias is None or vec is None:
            return None
        return weights, bias, vec

    def check(self, context: Any, x: ir.Value, w: ir.Value, c: ir.Value, conv: ir.Value) -> MatchResult:
        result = MatchResult()
        if self.conv_type != "Conv" and self.op_type != "Add":
            return result.fail("only the bias Add folds into ConvTranspose")
        if self._parts(w, conv, c) is None:
            return result.fail("weights, bias or the per-channel constant are not constant")
        if w.uses() and len(w.uses()) > 1:
            return result.fail("the weight is shared with another node")
        return result

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, c: ir.Value, conv: ir.Value) -> ir.Value:
        node = conv.producer()
        parts = self._parts(w, conv, c)
        assert node is not None and parts is not None
        weights, bias, vec = parts
        if self.op_type == "Mul":
            shape = (-1,) + (1,) * (weights.ndim - 1)
            weights = weights * vec.reshape(shape)
            bias = bias * vec
        else:
            bias = bias + vec
        new_w = op.initializer(ir.tensor(weights.astype(weights.dtype)), name=f"{conv.name}_{self.op_type}_w")
        new_b = op.initializer(ir.tensor(bias.astype(weights.dtype)), name=f"{conv.name}_{self.op_type}_b")
        return op.op(self.conv_type, x, new_w, new_b, **dict(node.attributes))


def _group(node: ir.Node) -> int:
    attr = node.attributes.get("group")
    return attr.as_int() if attr is not None else 1


def _gemm_attrs(node: ir.Node) -> tuple[float, float, int, int]:
    def get(name: str, default: float) -> float:
        a = node.attributes.get(name)
        if a is None:
            return default
        return a.as_float() if a.type == ir.AttributeType.FLOAT else float(a.as_int())

    return get("alpha", 1.0), get("beta", 1.0), int(get("transA", 0)), int(get("transB", 0))


class FuseMulAddIntoGemm(RewriteRuleClassBase):
    """``Gemm(A, B[, C]) · s`` and ``Gemm(A, B[, C]) + t`` → one Gemm with folded B and C."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name=f"Fuse{op_type}IntoGemm")
        self.op_type = op_type

    def pattern(self, op: Any, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        gemm = op.Gemm(a, b, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["gemm"])
        return getattr(op, self.op_type)(gemm, c)

    def _parts(self, b: ir.Value, gemm: ir.Value, c: ir.Value) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        node = gemm.producer()
        weights, arr = const_array(b), const_array(c)
        if node is None or weights is None or arr is None or weights.ndim != 2 or arr.ndim > 2:
            return None
        _, beta, _, trans_b = _gemm_attrs(node)
        n = weights.shape[0] if trans_b else weights.shape[1]
        bias_value = node.inputs[2] if len(node.inputs) > 2 else None
        bias = np.zeros((), weights.dtype) if bias_value is None else const_array(bias_value)
        if bias is None:
            return None
        if self.op_type == "Mul":
            vec = per_axis_vector(arr, 2, 1, n)
            return None if vec is None else (weights, beta * bias, vec)
        full = align(arr, 2)
        rows = rank_of(gemm) == 2 and gemm.shape is not None and gemm.shape[0]
        if full is None or full.shape[1] not in (1, n) or (full.shape[0] != 1 and full.shape[0] != rows):
            return None
        return weights, beta * bias, full

    def check(self, context: Any, a: ir.Value, b: ir.Value, c: ir.Value, gemm: ir.Value) -> MatchResult:
        result = MatchResult()
        if self._parts(b, gemm, c) is None:
            return result.fail("B, C or the constant are not of a foldable form")
        if len(b.uses()) > 1:
            return result.fail("B is shared with another node")
        return result

    def rewrite(self, op: Any, a: ir.Value, b: ir.Value, c: ir.Value, gemm: ir.Value) -> ir.Value:
        node = gemm.producer()
        parts = self._parts(b, gemm, c)
        assert node is not None and parts is not None
        weights, bias, const = parts
        alpha, _, trans_a, trans_b = _gemm_attrs(node)
        if self.op_type == "Mul":
            weights = weights * (const[:, None] if trans_b else const[None, :])
            bias = bias * const
        else:
            bias = bias + const
        if bias.ndim == 2 and bias.shape[0] == 1:
            bias = bias.reshape(-1)
        dtype = weights.dtype
        new_b = op.initializer(ir.tensor(weights.astype(dtype)), name=f"{gemm.name}_{self.op_type}_B")
        new_c = op.initializer(ir.tensor(np.asarray(bias, dtype=dtype)), name=f"{gemm.name}_{self.op_type}_C")
        return op.Gemm(a, new_b, new_c, alpha=alpha, beta=1.0, transA=trans_a, transB=trans_b)


class FuseMulIntoMatMul(RewriteRuleClassBase):
    """``MatMul(x, W) · s`` → ``MatMul(x, W·diag(s))`` for a constant 2-D ``W``."""

    def pattern(self, op: Any, x: ir.Value, w: ir.Value, s: ir.Value) -> ir.Value:
        return op.Mul(op.MatMul(x, w, _outputs=["mm"]), s)

    def _scaled(self, w: ir.Value, s: ir.Value, mm: ir.Value) -> np.ndarray | None:
        weights, arr, rank = const_array(w), const_array(s), rank_of(mm)
        if weights is None or arr is None or rank is None or weights.ndim != 2 or arr.ndim > rank:
            return None
        vec = per_axis_vector(arr, rank, rank - 1, weights.shape[1])
        return None if vec is None else weights * vec[None, :]

    def check(self, context: Any, x: ir.Value, w: ir.Value, s: ir.Value, mm: ir.Value) -> MatchResult:
        result = MatchResult()
        if self._scaled(w, s, mm) is None:
            return result.fail("W is not a constant matrix or s is not per output column")
        if len(w.uses()) > 1:
            return result.fail("W is shared with another node")
        return result

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, s: ir.Value, mm: ir.Value) -> ir.Value:
        scaled = self._scaled(w, s, mm)
        assert scaled is not None
        new_w = op.initializer(ir.tensor(scaled.astype(const_array(w).dtype)), name=f"{mm.name}_Mul_W")  # type: ignore[union-attr]
        return op.MatMul(x, new_w)


def affine_rules() -> RewriteRuleSet:
    """Mul/Add by per-channel constants folded into Conv, ConvTranspose (Add only), Gemm and MatMul."""
    rules = [
        FuseMulAddIntoConv.rule("Mul"),
        FuseMulAddIntoConv.rule("Add"),
        FuseMulAddIntoConv.rule("Add", "ConvTranspose"),
        FuseMulAddIntoGemm.rule("Mul"),
        FuseMulAddIntoGemm.rule("Add"),
        FuseMulIntoMatMul.rule(),
    ]
    return RewriteRuleSet(rules, commute=True)
