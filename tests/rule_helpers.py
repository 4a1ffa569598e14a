"""What the target-rule tests share: apply one registered rule to a proto (shape inference first, onnx.checker
after), run a one-input model in ONNX Runtime, list its ops."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from modelport.rules.catalog import RuleSettings, rule_spec


def apply_rule(name: str, proto: onnx.ModelProto, settings: RuleSettings | None = None) -> tuple[int, onnx.ModelProto]:
    """``(rewrites, result)`` of the registered rule ``name`` on ``proto`` (not modified); the result passes the
    full onnx.checker."""
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    count = rule_spec(name).factory(settings or RuleSettings()).apply_to_model(model)
    out = ir.serde.serialize_model(model)
    onnx.checker.check_model(out, full_check=True)
    return count, out


def run_one(proto: onnx.ModelProto, x: np.ndarray, name: str = "x") -> np.ndarray:
    """The first output of ``proto`` in ONNX Runtime (CPU) fed ``x`` as input ``name``."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {name: x})[0])


def op_counts(proto: onnx.ModelProto) -> Counter[str]:
    """Op types of the main graph, counted."""
    return Counter(n.op_type for n in proto.graph.node)
