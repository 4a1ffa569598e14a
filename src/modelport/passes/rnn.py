"""Recurrent ops: initial states that are zero are the ops' defaults.

ONNX ``LSTM``, ``GRU`` and ``RNN`` take optional ``initial_h`` (input 5), ``LSTM`` also ``initial_c`` (6) and the
peephole weights ``P`` (7); each "if not specified, assumed to be 0". Exporters nevertheless build zero states at
run time, typically ``ConstantOfShape([layers·dirs, batch, hidden])`` or ``Expand(0, Concat(…, Shape(x)[1], …))``
sliced per layer, which costs a Shape → Slice → Concat → Expand → Slice sub-graph per model. When such an input is
provably all zeros it is dropped (the shape it had must already match what the op requires, or the original
would not run), and the sub-graph dies.

A value is provably all zeros when it is a constant of zeros, ``ConstantOfShape`` with no value or a zero value,
``Expand`` of a zero constant, or the result of a pure data-movement op (Slice, Reshape, Squeeze, Unsqueeze,
Transpose, Flatten, Gather, Tile, Identity, Expand, Cast) applied to such a value: these only copy elements.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from modelport.passes.base import ModelportPass, PassOptions, register_pass
from modelport.rules._util import const_array

log = logging.getLogger(__name__)

#: op → indices of its optional inputs whose default is zero
ZERO_DEFAULT_INPUTS = {"LSTM": (5, 6, 7), "GRU": (5,), "RNN": (5,)}
COPYING_OPS = frozenset(
    {"Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Flatten", "Gather", "Tile", "Identity", "Expand", "Cast"}
)


def is_all_zero(value: ir.Value | None, depth: int = 16) -> bool:
    """True when ``value`` is provably all zeros (see the module docstring)."""
    if value is None or depth == 0:
        return False
    arr = const_array(value)
    if arr is not None:
        return arr.size > 0 and not np.any(arr)
    node = value.producer()
    if node is None or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "ConstantOfShape":
        attr = node.attributes.get("value")
        return attr is None or not np.any(attr.as_tensor().numpy())
    if node.op_type in COPYING_OPS:
        return is_all_zero(node.inputs[0] if node.inputs else None, depth - 1)
    return False


def drop_zero_states(graph: ir.Graph) -> int:
    """Disconnect provably-zero optional state inputs of LSTM/GRU/RNN in ``graph`` and its sub-graphs."""
    count = 0
    for node in ir.traversal.RecursiveGraphIterator(graph):
        slots = ZERO_DEFAULT_INPUTS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if not slots:
            continue
        for i in slots:
            if i < len(node.inputs) and node.inputs[i] is not None and is_all_zero(node.inputs[i]):
                node.replace_input_with(i, None)
                count += 1
        while node.inputs and node.inputs[-1] is None:  # trailing empty inputs are just absent
            node.resize_inputs(len(node.inputs) - 1)
    return count


@register_pass(
    "drop-zero-rnn-states",
    summary="Drop LSTM/GRU/RNN initial states (and LSTM peepholes) that are provably zero: 0 is their default",
)
class DropZeroRnnStates(ModelportPass[PassOptions]):
    """modelport's pass; the sub-graphs that built the zero states are removed by ``remove-unused``."""

    def apply(self, model: ir.Model) -> bool:
        count = drop_zero_states(model.graph)
        if count:
            log.debug("drop-zero-rnn-states: %d inputs dropped", count)
        return bool(count)
