"""BatchNormalization rewrites that onnxscript lacks: folding into MatMul, and decomposition into Mul + Add.

Inference BatchNormalization over the channel axis 1 is an affine map per channel ``c``::

    y = γ_c · (x − μ_c) / sqrt(σ²_c + ε) + β_c = s_c · x + t_c,
    s_c = γ_c / sqrt(σ²_c + ε),   t_c = β_c − μ_c · s_c.

**Into MatMul** (``BatchNorm1d`` after ``Linear`` on a 2-D input): with ``x`` of shape [M, K], a constant
``W`` of shape [K, N] and an optional bias ``b`` of shape [N], the channel axis of the product is its last
axis, so ``BN(x·W + b) = x·(W·diag(s)) + (b·s + t)``: the columns of ``W`` are scaled and the result is a
single ``Gemm(x, W', b')``. Higher-rank products put ``x``'s rows on axis 1, which ``W`` cannot absorb, so
they are left alone.

**Mul/Add after BN** (Caffe2's BN → Scale pairs): ``s' · BN(x) + t' `` is again a BatchNormalization with
``γ' = γ·s'`` and ``β' = β·s' + t'`` when ``s'`` and ``t'`` vary only along the channel axis.

**Decomposition** (opt-in, for runtimes without a BatchNormalization kernel, e.g. TFLite's builtins):
``BN(x) = x · s + t`` with ``s`` and ``t`` shaped [C, 1, …, 1] to broadcast over the spatial axes.
(Folding into a preceding Conv / ConvTranspose / Gemm is onnxscript's ``fuse_batchnorm`` rules.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array, per_axis_vector, rank_of


def batchnorm_affine(node: ir.Node) -> tuple[np.ndarray, np.ndarray] | None:
    """``(s, t)`` of an inference BatchNormalization node, or None if its parameters are not constant."""
    params = [const_array(v) for v in node.inputs[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        return None
    gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)  # type: ignore[arg-type]
    eps_attr = node.attributes.get("epsilon")
    eps = eps_attr.as_float() if eps_attr is not None else 1e-5
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _inference_only(node: ir.Node, result: MatchResult) -> MatchResult:
    if any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
        return result.fail("training outputs of BatchNormalization are used")
    mode = node.attributes.get("training_mode")
    if mode is not None and mode.as_int():
        return result.fail("training_mode=1")
    return result


class FuseBatchNormIntoMatMul(RewriteRuleClassBase):
    """``BN(MatMul(x, W) [+ b])`` on rank-2 products → ``Gemm(x, W·diag(s), b·s + t)``."""

    def __init__(self, with_bias: bool) -> None:
        super().__init__(name="FuseBatchNormIntoMatMulAdd" if with_bias else "FuseBatchNormIntoMatMul")
        self.with_bias = with_bias

    def pattern(self, op: Any, x: ir.Value, w: ir.Value, b: ir.Value) -> ir.Value:
        y = op.MatMul(x, w)
        if self.with_bias:
            y = op.Add(y, b)
        return op.BatchNormalization(y, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["bn"])

    def check(self, context: Any, x: ir.Value, w: ir.Value, bn: ir.Value, b: ir.Value | None = None) -> MatchResult:
        result = MatchResult()
        node = bn.producer()
        assert node is not None
        if not _inference_only(node, result):
            return result
        weights = const_array(w)
        if weights is None or weights.ndim != 2:
            return result.fail("the MatMul weight is not a constant matrix")
        if rank_of(x) != 2:
            return result.fail("the MatMul input is not known to be rank 2")
        if self.with_bias:
            bias = const_array(b)
            if bias is None or bias.size not in (1, weights.shape[1]) or bias.ndim > 1:
                return result.fail("the bias is not a constant vector over the output columns")
        if batchnorm_affine(node) is None:
            return result.fail("BatchNormalization parameters are not constant")
        return result

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, bn: ir.Value, b: ir.Value | None = None) -> ir.Value:
        node = bn.producer()
        assert node is not None
        affine = batchnorm_affine(node)
        weights = const_array(w)
        assert affine is not None and weights is not None
        scale, shift = affine
        bias_arr = const_array(b) if b is not None else None
        bias = np.zeros(weights.shape[1]) if bias_arr is None else np.broadcast_to(bias_arr, weights.shape[1])
        dtype = weights.dtype
        new_w = (weights * scale[None, :]).astype(dtype)
        new_b = (bias * scale + shift).astype(dtype)
        w_init = op.initializer(ir.tensor(new_w), name=f"{bn.name}_weight")
        b_init = op.initializer(ir.tensor(new_b), name=f"{bn.name}_bias")
        return op.Gemm(x, w_init, b_init)


class DecomposeBatchNorm(RewriteRuleClassBase):
    """``BN(x)`` → ``x · s + t`` with ``s``, ``t`` shaped [C, 1, …] (needs the input rank)."""

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.BatchNormalization(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["bn"])

    def check(self, context: Any, x: ir.Value, bn: ir.Value) -> MatchResult:
        result = MatchResult()
        node = bn.producer()
        assert node is not None
        if not _inference_only(node, result):
            return result
        if rank_of(x) is None or (rank_of(x) or 0) < 2:
            return result.fail("input rank unknown")
        if batchnorm_affine(node) is None:
            return result.fail("BatchNormalization parameters are not constant")
        if x.dtype is None or not x.dtype.is_floating_point():
            return result.fail("input dtype unknown")
        return result

    def rewrite(self, op: Any, x: ir.Value, bn: ir.Value) -> ir.Value:
        node = bn.producer()
        assert node is not None and x.dtype is not None
        affine = batchnorm_affine(node)
        assert affine is not None
        rank = rank_of(x) or 2
        np_dtype = x.dtype.numpy()
        shape = (-1,) + (1,) * (rank - 2)
        scale = op.initializer(ir.tensor(affine[0].reshape(shape).astype(np_dtype)), name=f"{bn.name}_scale")
        shift = op.initializer(ir.tensor(affine[1].reshape(shape).astype(np_dtype)), name=f"{bn.name}_shift")
        return op.Add(op.Mul(x, scale), shift)


class FuseAffineIntoBatchNorm(RewriteRuleClassBase):
    """``BN(x) · s`` → ``BN(x; γ·s, β·s)`` and ``BN(x) + t`` → ``BN(x; γ, β + t)`` for per-channel constants."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name=f"Fuse{op_type}IntoBatchNorm")
        self.op_type = op_type

    def pattern(self, op: Any, x: ir.Value, c: ir.Value) -> ir.Value:
        bn = op.BatchNormalization(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["bn"])
        return getattr(op, self.op_type)(bn, c)

    def _vector(self, bn: ir.Value, c: ir.Value) -> np.ndarray | None:
        node = bn.producer()
        arr, rank = const_array(c), rank_of(bn)
        gamma = const_array(node.inputs[1]) if node is not None and len(node.inputs) > 1 else None
        if arr is None or rank is None or gamma is None or rank < 2 or arr.ndim > rank:
            return None
        return per_axis_vector(arr, rank, 1, gamma.shape[0])

    def check(self, context: Any, x: ir.Value, c: ir.Value, bn: ir.Value) -> MatchResult:
        result = MatchResult()
        node = bn.producer()
        assert node is not None
        if not _inference_only(node, result):
            return result
        if batchnorm_affine(node) is None or self._vector(bn, c) is None:
            return result.fail("parameters are not constant or the constant is not per channel")
        return result

    def rewrite(self, op: Any, x: ir.Value, c: ir.Value, bn: ir.Value) -> ir.Value:
        node = bn.producer()
        vec = self._vector(bn, c)
        assert node is not None and vec is not None
        gamma, beta = const_array(node.inputs[1]), const_array(node.inputs[2])
        assert gamma is not None and beta is not None
        if self.op_type == "Mul":
            gamma, beta = gamma * vec, beta * vec
        else:
            beta = beta + vec
        dtype = gamma.dtype
        g = op.initializer(ir.tensor(gamma.astype(dtype)), name=f"{bn.name}_{self.op_type}_scale")
        b = op.initializer(ir.tensor(beta.astype(dtype)), name=f"{bn.name}_{self.op_type}_bias")
        attrs = {k: v for k, v in node.attributes.items() if k in ("epsilon", "momentum", "spatial")}
        return op.BatchNormalization(x, g, b, node.inputs[3], node.inputs[4], **attrs)


def batchnorm_affine_rules() -> RewriteRuleSet:
    """Per-channel Mul/Add after a BatchNormalization folded into its scale and bias."""
    return RewriteRuleSet([FuseAffineIntoBatchNorm.rule("Mul"), FuseAffineIntoBatchNorm.rule("Add")], commute=True)


def batchnorm_matmul_rules() -> RewriteRuleSet:
    """BatchNormalization folded into a preceding rank-2 MatMul (with or without a bias Add)."""
    return RewriteRuleSet([FuseBatchNormIntoMatMul.rule(True), FuseBatchNormIntoMatMul.rule(False)], commute=True)


def decompose_batchnorm_rules() -> RewriteRuleSet:
    """Stand-alone BatchNormalization → Mul + Add."""
    return RewriteRuleSet([DecomposeBatchNorm.rule()])
