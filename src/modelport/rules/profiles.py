"""Target profiles: for each picky backend, the ONNX ops it cannot run and the target rules that remove them.

A profile is a documented list of :mod:`~modelport.rules.catalog` rules plus the backend's op coverage, stated
either as the ops it runs (``supported``: a short allowlist, the Edge TPU's) or as the ONNX ops it does not
(``unsupported``: a denylist, for runtimes that run nearly everything). ``modelport rewrite --target T --check``
lists the model's ops the target cannot run before and after the profile's rules; besides op types it counts two
variants a target may lack (:func:`pseudo_ops`): ``Conv(grouped)`` and ``Resize(align_corners)``.

The coverage comes from each backend's own documentation, mapped to ONNX op types (what onnx2tf / the OpenVINO
and TensorRT ONNX parsers turn them into); ``source`` names the page. A rule belongs to a profile only when it
removes an op the target cannot run (``tests/rules/test_profiles.py`` checks this), and ``CHANGES`` rules
(different numerics by design) are never in a profile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import onnx_ir as ir

from modelport.errors import PassError
from modelport.rules.group_conv import GROUPED_CONV, is_grouped_conv
from modelport.rules.resize import ALIGN_CORNERS_RESIZE, is_align_corners_resize


@dataclasses.dataclass(frozen=True)
class Profile:
    """One target.

    Attributes:
        name: the ``--target`` value.
        summary: one line.
        rules: the rule names applied, in order.
        supported: the ONNX ops the target runs (an allowlist), or None.
        unsupported: the ONNX ops it does not run (a denylist; used when ``supported`` is None).
        source: where the coverage comes from.
        notes: why each rule is there, in a sentence or two.
    """

    name: str
    summary: str
    rules: tuple[str, ...]
    supported: frozenset[str] | None
    unsupported: frozenset[str]
    source: str
    notes: str = ""

    def runs(self, op_type: str) -> bool:
        """True when the target runs ``op_type`` (a default-domain ONNX op; any other domain is unsupported)."""
        if "::" in op_type:
            return False
        if self.supported is not None:
            return op_type in self.supported
        return op_type not in self.unsupported

    def cannot_run(self, ops: Iterable[str]) -> tuple[str, ...]:
        """The ops in ``ops`` the target cannot run, sorted, each once."""
        return tuple(sorted({op for op in ops if not self.runs(op)}))


#: Ops that only move or describe data and that every converter folds or maps (shape arithmetic, identities).
_PLUMBING = frozenset({"Constant", "Identity", "Shape", "Flatten", "Unsqueeze", "Squeeze", "Reshape", "Cast"})

_EDGETPU_OPS = _PLUMBING | frozenset(
    {
        # Coral "TensorFlow models on the Edge TPU", supported operations (TFLite builtins), as ONNX ops
        "Add", "AveragePool", "GlobalAveragePool", "Concat", "Conv", "ConvTranspose", "Gemm", "MatMul",
        "LpNormalization", "Sigmoid", "LSTM", "Max", "MaxPool", "GlobalMaxPool", "ReduceMean", "Min", "Mul",
        "Pad", "PRelu", "QuantizeLinear", "DequantizeLinear", "ReduceMax", "ReduceMin", "Relu", "Clip", "Resize",
        "Slice", "Softmax", "SpaceToDepth", "DepthToSpace", "Split", "Sub", "ReduceSum", "Tanh", "Transpose",
        "Gather",
        # lowered into the builtins above by every converter: BatchNormalization folded into the Conv before it
        # (or Mul + Add), HardSigmoid into Mul + Add + Relu6
        "BatchNormalization", "HardSigmoid",
    }
)  # fmt: skip

_MYRIAD_UNSUPPORTED = frozenset(
    {
        "Abs", "Asin", "Acos", "Atan", "Asinh", "Acosh", "Atanh", "GatherND", "ScatterND", "Pow", "Einsum",
        "NonZero", "Unique", "Loop", "If", "Scan",
    }
)  # fmt: skip

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="edgetpu",
            summary="Coral Edge TPU (through TFLite int8): only its listed builtins run on the TPU, the rest "
            "falls back to the CPU and splits the graph",
            rules=(
                "hardswish-decompose",
                "leakyrelu-to-max",
                "neg-to-mul",
                "pow-to-mul",
                "erf-gelu-fitted",
                "gathernd-to-gather",
                "split-group-conv",
            ),
            supported=_EDGETPU_OPS,
            unsupported=frozenset(),
            source="coral.ai/docs/edgetpu/models-intro (supported operations, compiler 16)",
            notes="HardSwish, LeakyRelu, Neg, Pow, Erf and GatherND are not Edge TPU ops: each is rewritten into "
            "Add/Clip/Mul/Max/Tanh/Gather, which are. A grouped Conv has no TFLite builtin (CONV_2D has no groups): "
            "it becomes one Conv per group.",
        ),
        Profile(
            name="myriad",
            summary="Intel Movidius Myriad X VPU (OpenVINO ≤ 2022.3 MYRIAD plugin): fp16, a narrower op set",
            rules=("abs-to-sqrt-square", "pow-to-mul", "approx-asin-acos-atan", "gathernd-to-gather"),
            supported=None,
            unsupported=_MYRIAD_UNSUPPORTED,
            source="docs.openvino.ai 2022.3, Supported Layers (MYRIAD column)",
            notes="Abs, Pow with a constant exponent, the inverse trigonometric ops and GatherND are rewritten "
            "into Mul/Sqrt/Gather chains the plugin runs in fp16.",
        ),
        Profile(
            name="tflite",
            summary="LiteRT / TFLite builtins without Select-TF (Flex) ops, as reached through onnx2tf",
            rules=("erf-decompose", "approx-asin-acos-atan"),
            supported=None,
            unsupported=frozenset({"Erf", "Asin", "Acos", "Atan", "Asinh", "Acosh", "Atanh", "Einsum", "Unique"}),
            source="ai.google.dev/edge/litert/models/ops_compatibility (builtin operators)",
            notes="TFLite has no ERF, ASIN, ACOS or ATAN builtin: onnx2tf would emit Flex ops a plain interpreter "
            "cannot run. Both become elementwise builtins.",
        ),
        Profile(
            name="tensorrt",
            summary="NVIDIA TensorRT (onnx-tensorrt parser): NMS on the host",
            rules=("split-nms",),
            supported=None,
            unsupported=frozenset({"NonMaxSuppression"}),
            source="github.com/onnx/onnx-tensorrt docs/operators.md",
            notes="TensorRT's NonMaxSuppression (INMSLayer, 8.5+) needs a fixed max_output_boxes_per_class and "
            "returns a data-dependent shape that breaks engine building on older versions; the model is cut "
            "before it and modelport's host NMS finishes the detections.",
        ),
        Profile(
            name="openvino-cpu",
            summary="OpenVINO on x86 CPUs: runs every ONNX op of the frontend; fuse HardSwish into one kernel",
            rules=("hardswish-fuse",),
            supported=None,
            unsupported=frozenset(),
            source="docs.openvino.ai, ONNX frontend supported operations",
            notes="Exporters spell HardSwish as x·Clip(x+3, 0, 6)/6 or x·HardSigmoid(x); one HardSwish is one "
            "HSwish kernel in OpenVINO.",
        ),
    )
}


def pseudo_ops(model: ir.Model) -> dict[str, int]:
    """Counts of the op variants a target may lack although it runs the op type: ``Conv(grouped)`` (a Conv with
    groups that is not depthwise) and ``Resize(align_corners)``, over the graph and its sub-graphs."""
    counts: dict[str, int] = {}
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        for name, test in ((GROUPED_CONV, is_grouped_conv), (ALIGN_CORNERS_RESIZE, is_align_corners_resize)):
            if test(node):
                counts[name] = counts.get(name, 0) + 1
    return counts


def profile(name: str) -> Profile:
    """The profile called ``name``; PassError listing the valid names otherwise."""
    found = PROFILES.get(name.strip())
    if found is None:
        raise PassError(f"unknown target {name!r}", hint=f"valid targets: {', '.join(PROFILES)}")
    return found
