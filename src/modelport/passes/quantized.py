"""``lower-quantized-contrib``: ONNX Runtime's contrib quantized ops rewritten into standard ONNX ops.

ONNX Runtime's dynamic quantizer writes ``com.microsoft::DynamicQuantizeLSTM`` for every LSTM whose weights it
quantizes. Only ONNX Runtime (and OpenVINO, which has its own translation) can run it; onnx2tf and other
converters stop at the unknown op. This pass replaces each one by standard ops that compute the same function:

* the int8 weights stay int8 in the file and are dequantized by ``DequantizeLinear`` (per-direction scales, one
  ``DequantizeLinear`` per direction joined by ``Concat``) or ``Cast → Sub → Mul`` (per-channel scales of shape
  ``[D, 4H]``, which ``DequantizeLinear`` cannot take before opset 13);
* the dequantized weights feed a standard ``LSTM`` with the contrib node's attributes and its other inputs
  (bias, sequence lengths, initial states, peepholes) unchanged.

**Layout.** The contrib op stores its weights transposed with respect to ``LSTM``: :math:`W_q` is
``[D, input_size, 4H]`` and :math:`R_q` is ``[D, H, 4H]``; ``LSTM`` takes ``[D, 4H, input_size]`` and
``[D, 4H, H]``, gates in the same order (i, o, f, c). The int8 tensors are transposed once, here.

**Semantics and error.** With scale :math:`s` and zero point :math:`z` per direction (or per gate row), the float
weights are exactly :math:`W = s\\,(W_q - z)`: the dequantization adds no error of its own. What differs is the
activations: the contrib op also quantizes :math:`x_t` and :math:`h_{t-1}` to uint8 at run time (per time step,
per tensor: one step is :math:`(\\max - \\min)/255` of their range) and multiplies in integers, while the lowered
graph multiplies the float activations by the dequantized weights. Per gate pre-activation the difference is
bounded by the sum of :math:`|W|` times half a step of each activation's range, so the two agree to int8
tolerance (:meth:`~modelport.verify.tolerance.Tolerance.for_precision` ``int8``), not fp32; the lowered graph is
the closer of the two to the float LSTM the model was quantized from. A source holding the op is judged at int8
tolerance anyway: its own precision is the floor.

Left alone (logged): nodes whose weights, scales or zero points are not constants, and nodes inside subgraphs.
The pass is opt-in: conversions to targets without the op apply it (ONNX Runtime runs the contrib op natively).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from modelport.passes.base import ModelportPass, PassOptions, Phase, register_pass
from modelport.rules._util import const_array

log = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
#: contrib ops this pass lowers.
LOWERED_OPS = ("DynamicQuantizeLSTM",)
#: ``DequantizeLinear`` exists from this opset on (scalar scale); before it the pass uses Cast/Sub/Mul.
DQ_OPSET = 10
#: attributes of DynamicQuantizeLSTM that ``LSTM`` takes as they are.
LSTM_ATTRIBUTES = ("activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size")


def _default_opset(model: ir.Model) -> int:
    return int(model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1)))


class _Builder:
    """Adds the constants and nodes of one lowering to the main graph."""

    def __init__(self, graph: ir.Graph, base: str, opset: int) -> None:
        self.graph, self.base, self.opset = graph, base, opset
        self.nodes: list[ir.Node] = []

    def const(self, suffix: str, array: np.ndarray) -> ir.Value:
        array = np.asarray(array) if array.flags.c_contiguous else array.copy()  # ascontiguousarray makes 0-d 1-d
        value = ir.Value(name=f"{self.base}_{suffix}", const_value=ir.tensor(array))
        value.type = ir.TensorType(ir.DataType.from_numpy(array.dtype))
        value.shape = ir.Shape(array.shape)
        self.graph.register_initializer(value)
        return value

    def node(self, op: str, inputs: list[ir.Value | None], **attributes: object) -> ir.Value:
        n = ir.node(op, inputs, attributes or None, name=f"{self.base}_{op}{len(self.nodes)}")  # type: ignore[arg-type]
        self.nodes.append(n)
        return n.outputs[0]

    def dequantized(self, tag: str, q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None) -> ir.Value:
        """Float ``[D, 4H, K]`` from contrib-layout int weights ``q`` ``[D, K, 4H]``, scale ``[D]`` or ``[D, 4H]``."""
        d, _, rows = q.shape
        qt = np.transpose(q, (0, 2, 1))  # [D, 4H, K]: LSTM's layout
        zero = np.zeros_like(scale, dtype=q.dtype) if zero is None else zero.astype(q.dtype)
        scale = scale.astype(np.float32)
        if scale.size in (1, d) and self.opset >= DQ_OPSET:
            s, z = scale.reshape(-1), zero.reshape(-1)
            parts = [
                self.node(
                    "DequantizeLinear",
                    [
                        self.const(f"{tag}_q{i}", qt[i : i + 1]),
                        self.const(f"{tag}_scale{i}", s[min(i, s.size - 1)].reshape(())),
                        self.const(f"{tag}_zero{i}", z[min(i, z.size - 1)].reshape(())),
                    ],
                )
                for i in range(d)
            ]
            return parts[0] if d == 1 else self.node("Concat", parts, axis=0)  # type: ignore[arg-type]
        per_row = scale.reshape(d, rows, 1) if scale.size == d * rows else scale.reshape(-1, 1, 1)
        zero_f = zero.astype(np.float32).reshape(per_row.shape)
        weights = self.node("Cast", [self.const(f"{tag}_q", qt)], to=ir.DataType.FLOAT)
        shifted = self.node("Sub", [weights, self.const(f"{tag}_zero", zero_f)])
        return self.node("Mul", [shifted, self.const(f"{tag}_scale", per_row)])


def lower_dynamic_quantize_lstm(model: ir.Model, node: ir.Node) -> bool:
    """Replace one ``DynamicQuantizeLSTM`` of the main graph by DequantizeLinear + ``LSTM``; False when left alone."""
    graph = model.graph
    inputs = list(node.inputs) + [None] * (12 - len(node.inputs))
    x, w, r, bias, seq, h0, c0, peep, w_scale, w_zero, r_scale, r_zero = inputs[:12]
    arrays = {k: const_array(v) for k, v in {"W": w, "R": r, "W_scale": w_scale, "R_scale": r_scale}.items()}
    missing = [k for k, a in arrays.items() if a is None]
    zeros = {k: const_array(v) if v is not None else None for k, v in {"W": w_zero, "R": r_zero}.items()}
    if missing or x is None or any(v is not None and zeros[k] is None for k, v in (("W", w_zero), ("R", r_zero))):
        log.info(
            "%s: %s not constant, DynamicQuantizeLSTM left as it is", node.name, ", ".join(missing) or "zero point"
        )
        return False
    wq, rq = arrays["W"], arrays["R"]
    assert wq is not None and rq is not None
    if wq.ndim != 3 or rq.ndim != 3:
        log.info("%s: weights of rank %d/%d, DynamicQuantizeLSTM left as it is", node.name, wq.ndim, rq.ndim)
        return False
    base = (node.name or "DynamicQuantizeLSTM").replace("/", "_") + "_lowered"
    build = _Builder(graph, base, _default_opset(model))
    w_f = build.dequantized("W", wq, arrays["W_scale"], zeros["W"])  # type: ignore[arg-type]
    r_f = build.dequantized("R", rq, arrays["R_scale"], zeros["R"])  # type: ignore[arg-type]
    lstm_inputs: list[ir.Value | None] = [x, w_f, r_f, bias, seq, h0, c0, peep]
    while lstm_inputs and lstm_inputs[-1] is None:
        lstm_inputs.pop()
    attributes = {a.name: a.value for a in node.attributes.values() if a.name in LSTM_ATTRIBUTES}
    forget = node.attributes.get("input_forget")
    if forget is not None and forget.as_int():
        attributes["input_forget"] = 1
    lstm = ir.node("LSTM", lstm_inputs, attributes, num_outputs=len(node.outputs), name=base)
    ir.convenience.replace_nodes_and_values(
        graph, node, [node], [*build.nodes, lstm], list(node.outputs), list(lstm.outputs)
    )
    for value in (w, r, w_scale, w_zero, r_scale, r_zero):  # the contrib-layout constants, now unused
        name = value.name if value is not None else None
        if (
            value is not None
            and name
            and name in graph.initializers
            and not value.uses()
            and not value.is_graph_output()
        ):
            del graph.initializers[name]
    return True


@register_pass(
    "lower-quantized-contrib",
    summary="com.microsoft::DynamicQuantizeLSTM → DequantizeLinear of its int8 weights + standard LSTM",
    phase=Phase.PREPARE,
    default=False,
    engine="onnx-ir",
)
class LowerQuantizedContrib(ModelportPass[PassOptions]):
    """Lower ONNX Runtime's contrib quantized ops (:data:`LOWERED_OPS`) of the main graph to standard ops."""

    def apply(self, model: ir.Model) -> bool:
        changed = False
        for node in list(model.graph):
            if node.domain == MS_DOMAIN and node.op_type == "DynamicQuantizeLSTM":
                changed |= lower_dynamic_quantize_lstm(model, node)
        nested = [
            n.name or n.op_type
            for n in ir.traversal.RecursiveGraphIterator(model.graph)
            if n.graph is not model.graph and n.domain == MS_DOMAIN and n.op_type in LOWERED_OPS
        ]
        if nested:
            log.info("contrib quantized ops inside subgraphs left as they are: %s", ", ".join(nested))
        return changed


def contrib_quantized_nodes(model: ir.Model) -> list[str]:
    """Names (op type when unnamed) of the contrib quantized ops this pass lowers, anywhere in ``model``."""
    return [
        n.name or n.op_type
        for n in ir.traversal.RecursiveGraphIterator(model.graph)
        if n.domain == MS_DOMAIN and n.op_type in LOWERED_OPS
    ]
