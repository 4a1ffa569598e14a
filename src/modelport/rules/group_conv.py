"""A grouped ``Conv`` split into one plain ``Conv`` per group (``split-group-conv``), for targets whose convolution
has no groups (TFLite's CONV_2D and so the Edge TPU; some NPU compilers).

``Conv(X, W, B)`` with ``group = g`` splits the ``C`` input channels into ``g`` consecutive blocks of ``C/g`` and
the ``M`` output channels likewise into blocks of ``M/g``; block ``i`` of the output is the ordinary convolution of
input block ``i`` with filters ``W[i·M/g : (i+1)·M/g]`` (shape ``[M/g, C/g, k…]``, exactly ``W``'s own layout) plus
``B`` on the same range. So::

    Conv_g(X, W, B) = Concat_axis1( Conv(X_i, W_i, B_i) for i < g ),   (X_0 … X_{g−1}) = Split_axis1(X, [C/g]·g)

with strides, pads (or auto_pad), dilations and kernel_shape unchanged: each output pixel is the same sum over
the same inputs — EXACT up to the summation order the runtime's kernels choose.

Weights (and bias, when present) must be constants: they are sliced at rewrite time. The input channel count must
be known and equal ``g · W.shape[1]`` (from shape inference or a fixed input shape), else the rule refuses with the
reason. Depthwise convolutions — one input channel per group, ``group = C`` — are skipped unless
``RuleSettings.depthwise`` is set: TFLite has DEPTHWISE_CONV_2D for them, and splitting one into ``C`` convolutions
is rarely what a target wants.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array, opset_version
from modelport.rules.catalog import Exactness, RuleSettings, target_rule

#: The pseudo op type ``split-group-conv`` removes: a Conv with ``group > 1`` that is not depthwise. ONNX has one
#: ``Conv`` op type for all; targets without grouped convolutions (CONV_2D) run depthwise and plain ones only, so
#: ``--check`` counts these under their own name (see :func:`is_grouped_conv`).
GROUPED_CONV = "Conv(grouped)"


def is_grouped_conv(node: ir.Node) -> bool:
    """True for a default-domain Conv with ``group > 1`` whose filters see more than one input channel each (not
    depthwise); a weight of unknown shape counts as grouped."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or node.attributes.get_int("group", 1) <= 1:
        return False
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    array = const_array(weight)
    dims = array.shape if array is not None else weight.shape.dims if weight and weight.shape is not None else None
    return not (dims is not None and len(dims) > 1 and dims[1] == 1)


def _parts(node: ir.Node) -> tuple[int, np.ndarray | None, np.ndarray | None, bool]:
    """``(group, weights, bias, bias_ok)``: constants as numpy (None when not constant); bias_ok False when a
    bias is present but not constant."""
    group = node.attributes.get_int("group", 1)
    weights = const_array(node.inputs[1])
    bias_value = node.inputs[2] if len(node.inputs) > 2 else None
    bias = const_array(bias_value) if bias_value is not None else None
    return group, weights, bias, bias_value is None or bias is not None


class SplitGroupConv(RewriteRuleClassBase):
    """``Conv<group = g>`` → ``Split`` + ``g`` Convs + ``Concat``.

    Args:
        depthwise: also split depthwise convolutions (one input channel per group).
        opset: the model's default-domain opset (Split takes its sizes as an input from 13, an attribute before).
    """

    def __init__(self, depthwise: bool = False, opset: int = 13) -> None:
        super().__init__(name="SplitGroupConv")
        self.depthwise = depthwise
        self.opset = opset

    def pattern(self, op: Any, x: ir.Value, w: ir.Value) -> ir.Value:
        return op.Conv(x, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, w: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        node = out.producer()
        assert node is not None
        group, weights, _, bias_ok = _parts(node)
        if group <= 1:
            return result.fail("not a grouped convolution")
        if weights is None or not bias_ok:
            return result.fail("weights or bias are not constants (they are sliced at rewrite time)")
        if weights.ndim < 3 or weights.shape[0] % group:
            return result.fail(f"{weights.shape[0]} output channels do not split into {group} groups")
        channels = x.shape[1] if x.shape is not None and len(x.shape) > 1 else None
        if not isinstance(channels, int):
            return result.fail("the input channel count is unknown (run shape inference or fix the input shape)")
        if channels != group * weights.shape[1]:
            return result.fail(f"{channels} input channels ≠ group {group} × {weights.shape[1]} weight channels")
        if weights.shape[1] == 1 and not self.depthwise:
            return result.fail(f"depthwise convolution (group = channels = {group}); RuleSettings.depthwise splits it")
        return result

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, out: ir.Value) -> ir.Value:
        node = out.producer()
        assert node is not None
        group, weights, bias, _ = _parts(node)
        assert weights is not None
        per_in, per_out = weights.shape[1], weights.shape[0] // group
        attrs = {k: v for k, v in node.attributes.items() if k != "group"}
        sizes = [per_in] * group
        if self.opset >= 13:
            split_sizes = op.initializer(ir.tensor(np.array(sizes, dtype=np.int64)), name=f"{out.name}_split")
            parts = op.Split(x, split_sizes, axis=1, _outputs=group)
        else:
            parts = op.Split(x, axis=1, split=sizes, _outputs=group)
        convs = []
        for i, part in enumerate(parts):
            block = slice(i * per_out, (i + 1) * per_out)
            inputs = [part, op.initializer(ir.tensor(np.ascontiguousarray(weights[block])), name=f"{out.name}_g{i}_w")]
            if bias is not None:
                inputs.append(op.initializer(ir.tensor(np.ascontiguousarray(bias[block])), name=f"{out.name}_g{i}_b"))
            convs.append(op.Conv(*inputs, **attrs))
        return op.Concat(*convs, axis=1)


class _SplitGroupConvs:
    """Builds the rule for the model's opset, then applies it."""

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings

    def apply_to_model(self, model: ir.Model) -> int:
        rule = SplitGroupConv.rule(self.settings.depthwise, opset_version(model))
        return RewriteRuleSet([rule]).apply_to_model(model)


@target_rule(
    "split-group-conv",
    summary="Conv with group > 1 → Split + one Conv per group + Concat (weights sliced at rewrite time; depthwise "
    "convs only with RuleSettings.depthwise)",
    removes=(GROUPED_CONV,),
    adds=("Split", "Conv", "Concat"),
    exactness=Exactness.EXACT,
)
def split_group_conv(settings: RuleSettings) -> _SplitGroupConvs:
    """The registered rule: reads ``settings.depthwise``."""
    return _SplitGroupConvs(settings)
