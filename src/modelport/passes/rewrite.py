"""Passes that apply onnxscript rewrite rules: the rule engine is onnxscript's, the rule sets are named here.

Each pass builds its :class:`~onnxscript.rewriter.RewriteRuleSet` when it is created (no state shared between
runs) and applies it once per call; the fixed-point loop around the passes repeats it until nothing matches.
Which rules are onnxscript's and which are modelport's (``modelport.rules``) is said per pass.
"""

from __future__ import annotations

import logging

import onnx_ir as ir
from onnxscript.rewriter import RewriteRuleSet
from onnxscript.rewriter.rules import common as osr

from modelport.passes.base import ModelportPass, PassOptions, register_pass
from modelport.rules import activation, affine, arith, batchnorm, noop, slices, transpose

log = logging.getLogger(__name__)


class RulesPass(ModelportPass[PassOptions]):
    """Applies :meth:`rules` to the model; modified when any rule fired."""

    def rules(self) -> RewriteRuleSet:
        """The rule set of this pass."""
        raise NotImplementedError

    def applicable(self, model: ir.Model) -> bool:
        """False to skip the pass on this model (e.g. an opset too old for the replacement op)."""
        return True

    def apply(self, model: ir.Model) -> bool:
        if not self.applicable(model):
            return False
        count = self.rules().apply_to_model(model)
        if count:
            log.debug("%s: %d rewrites", self.name, count)
        return bool(count)


@register_pass(
    "eliminate-noops",
    summary="Replace no-op nodes (Mul 1, Add 0, Dropout, same-type Cast, same-shape Reshape/Expand, "
    "identity Transpose, zero Pad, full Slice, one-input Concat) by Identity",
    engine="onnxscript + modelport",
)
class EliminateNoOps(RulesPass):
    """onnxscript's no-op rules (Dropout ≥ 12, Cast, Expand, Transpose, Slice) plus modelport's (neutral scalars
    and tensors, legacy Dropout, zero Pad, same-shape Reshape/Flatten/Squeeze). One-input Concat and same-shape
    Reshape with a constant shape are also removed by fold-constants.

    onnxscript's ``x + 0`` / ``x * 1`` / ``x - 0`` / ``x / 1`` rules are not used: their constant patterns match
    within ``abs_tol=1e-8, rel_tol=1e-5``, so they delete ``Add(x², 1e-10)`` before a ``Log`` (−inf at x = 0
    instead of −23) or ``Mul(x, 1.000001)``; modelport's rules require the exact neutral element."""

    def rules(self) -> RewriteRuleSet:
        return RewriteRuleSet(
            [
                osr.dropout_zero_rule,
                osr.dropout_inference_rule,
                osr.no_op_cast_rule,
                osr.no_op_expand_rule,
                osr.no_op_transpose_rule,
                osr.collapse_slice_rule,
                osr.collapse_slice2_rule,
                *noop.noop_rules().rules,
            ]
        )


@register_pass(
    "merge-constant-chains",
    summary="Merge Mul(Mul(x, a), b) and Add(Add(x, a), b) with constants a, b into one Mul / Add",
)
class MergeConstantChains(RulesPass):
    """modelport's rules (``modelport.rules.arith``)."""

    def rules(self) -> RewriteRuleSet:
        return arith.constant_chain_rules()


@register_pass(
    "merge-slices",
    summary="Merge a Slice of a Slice on disjoint axes into one Slice",
)
class MergeSlices(RulesPass):
    """modelport's rule (``modelport.rules.slices``)."""

    def rules(self) -> RewriteRuleSet:
        return slices.slice_rules()


@register_pass(
    "fold-batchnorm",
    summary="Fold BatchNormalization into a preceding Conv, ConvTranspose, Gemm or rank-2 MatMul (+ bias), "
    "and per-channel Mul/Add after a BatchNormalization into its scale and bias",
    engine="onnxscript + modelport",
)
class FoldBatchNorm(RulesPass):
    """Conv / ConvTranspose / Gemm: onnxscript's ``fuse_batchnorm`` rules; MatMul (+Add) and Mul/Add after BN:
    modelport's."""

    def rules(self) -> RewriteRuleSet:
        return RewriteRuleSet(
            [
                osr.fuse_batchnorm_into_conv_rule,
                osr.fuse_batchnorm_into_conv_transpose_rule,
                osr.fuse_batchnorm_into_gemm_rule,
                *batchnorm.batchnorm_matmul_rules().rules,
                *batchnorm.batchnorm_affine_rules().rules,
            ]
        )


@register_pass(
    "fuse-conv-affine",
    summary="Fold constant per-channel Mul/Add after Conv, ConvTranspose (Add), Gemm and MatMul (Mul) into "
    "their weights and bias",
    engine="modelport + onnxscript",
)
class FuseConvAffine(RulesPass):
    """modelport's per-channel rules, plus onnxscript's scalar Mul+Add *before* a 1×1 unpadded Conv."""

    def rules(self) -> RewriteRuleSet:
        return RewriteRuleSet([*affine.affine_rules().rules, osr.affine_conv_fusion_rule])


@register_pass(
    "fuse-pad-conv",
    summary="Fold a constant-zero Pad into the pads of the following Conv",
    engine="onnxscript",
)
class FusePadIntoConv(RulesPass):
    """onnxscript's ``fuse_pad_into_conv`` (with its pad-format normalization)."""

    def rules(self) -> RewriteRuleSet:
        return RewriteRuleSet([osr.normalize_pad_format_conv_rule, osr.fuse_pad_into_conv_rule])


@register_pass(
    "eliminate-transposes",
    summary="Merge consecutive Transposes, drop identity ones, and push Transposes through element-wise ops "
    "so inverse pairs meet and cancel",
    engine="modelport + onnxscript",
)
class EliminateTransposes(RulesPass):
    """modelport's push-down rules; onnxscript's ``transpose_transpose`` and ``no_op_transpose``."""

    def rules(self) -> RewriteRuleSet:
        return RewriteRuleSet(
            [osr.transpose_transpose_rule, osr.no_op_transpose_rule, *transpose.transpose_push_rules().rules]
        )


@register_pass(
    "matmul-add-to-gemm",
    summary="Replace rank-2 MatMul + Add (optionally with a transposed operand) by Gemm",
    engine="onnxscript",
)
class MatMulAddToGemm(RulesPass):
    """onnxscript's ``matmul_add_to_gemm`` rules (rank-2 operands only: Gemm is 2-D)."""

    def rules(self) -> RewriteRuleSet:
        return RewriteRuleSet(
            [
                osr.matmul_add_to_gemm_rule,
                osr.transpose_a_matmul_add_to_gemm_rule,
                osr.transpose_b_matmul_add_to_gemm_rule,
                osr.transpose_ab_matmul_add_to_gemm_rule,
            ],
            commute=True,
        )


@register_pass(
    "decompose-batchnorm",
    summary="Opt-in: rewrite a stand-alone BatchNormalization as Mul + Add (for runtimes without a BN kernel)",
    default=False,
)
class DecomposeBatchNorm(RulesPass):
    """modelport's rule; runs after fold-batchnorm in each iteration, so foldable BNs are folded first."""

    def rules(self) -> RewriteRuleSet:
        return batchnorm.decompose_batchnorm_rules()


@register_pass(
    "fuse-relu6",
    summary="Opt-in: canonicalize Relu6 spellings (Min/Max pairs, Relu + Min, Relu + Clip) into one Clip(0, 6)",
    default=False,
    engine="onnxscript + modelport",
)
class FuseRelu6(RulesPass):
    """onnxscript's min/max→Clip and Relu/Clip merging rules plus modelport's Relu+Min rules."""

    def rules(self) -> RewriteRuleSet:
        return RewriteRuleSet(
            [
                osr.min_max_rule,
                osr.max_min_rule,
                osr.successive_relu_clip_rule,
                osr.successive_clip_relu_rule,
                osr.successive_relu_rule,
                osr.successive_clip_rule,
                *activation.relu6_rules().rules,
            ]
        )


@register_pass(
    "fuse-hardswish",
    summary="Opt-in: fuse x·HardSigmoid(x) and x·Clip(x+3, 0, 6)/6 into HardSwish (opset ≥ 14)",
    default=False,
    engine="onnxscript",
)
class FuseHardSwish(RulesPass):
    """onnxscript's ``fuse_hardswish`` rules."""

    def applicable(self, model: ir.Model) -> bool:
        return int(model.opset_imports.get("", 0)) >= 14

    def rules(self) -> RewriteRuleSet:
        return osr.fuse_hardswish_rules()
