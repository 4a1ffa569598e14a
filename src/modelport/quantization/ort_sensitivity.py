r"""Which nodes of an ONNX Runtime QDQ model add the most quantization error, measured with ORT's QDQ debugger.

Both the float model and its QDQ quantization are run by ONNX Runtime with graph optimizations off and every
quantized activation exposed as an output: in the QDQ graph each activation :math:`t` passes through
``QuantizeLinear → DequantizeLinear``, and that DequantizeLinear's output is :math:`\hat t`, the value the next
layers see (the integer arithmetic simulated in float). ORT's own ``qdq_loss_debug`` does the same matching, but
its augmented QDQ graphs fail to load on real models (a bias DequantizeLinear that keeps the bias's name). The error of
a tensor is its signal-to-quantization-noise ratio against the float model over the samples,

.. math:: \mathrm{SQNR}(t) = 20 \log_{10} \frac{\lVert t \rVert_2}{\lVert t - \hat t \rVert_2} \ \text{dB},

which accumulates along the graph. A node's *own* contribution is how much it lowers the SQNR from its noisiest
input to its noisiest output,

.. math:: \Delta(n) = \min_{i \in \mathrm{in}(n)} \mathrm{SQNR}(i) - \min_{o \in \mathrm{out}(n)} \mathrm{SQNR}(o),

(graph inputs and weights-only inputs count as noise-free, :data:`CLEAN_DB`). Nodes are ranked by :math:`\Delta`,
largest first, each with the quantized producers of its inputs (:func:`rank_nodes`); keeping the top of that list
in float removes the error where it enters instead of where it shows.
Only nodes that ORT quantized (a compute node fed by a DequantizeLinear in the QDQ model) and that have a name
(ORT excludes by name) are ranked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.model_io import load_proto

log = logging.getLogger(__name__)

#: ORT's name for the float value of a quantized graph output (the output's own name goes to the DequantizeLinear).
GRAPH_OUTPUT_SUFFIX = "_QuantizeLinear_Input"
#: the SQNR given to tensors that are not quantized in the QDQ model (graph inputs of float nodes, constants).
CLEAN_DB = 100.0


def quantized_nodes(qdq: Path) -> dict[str, str]:
    """Named compute nodes of a QDQ model that read a DequantizeLinear output: name → op type."""
    graph = load_proto(qdq, check=False, load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {
        n.name: n.op_type
        for n in graph.node
        if n.name and n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i in dq_outputs for i in n.input)
    }


def sqnr(reference: Iterable[np.ndarray], quantized: Iterable[np.ndarray]) -> float:
    """SQNR in dB of ``quantized`` against ``reference`` over all samples (:data:`CLEAN_DB` when equal)."""
    ref = np.concatenate([np.asarray(r, np.float64).ravel() for r in reference])
    got = np.concatenate([np.asarray(q, np.float64).ravel() for q in quantized])
    if ref.shape != got.shape:
        return -CLEAN_DB
    noise = float(np.linalg.norm(np.nan_to_num(ref - got, nan=1e30, posinf=1e30, neginf=-1e30)))
    signal = float(np.linalg.norm(ref))
    if noise == 0.0:
        return CLEAN_DB
    if signal == 0.0:
        return -CLEAN_DB
    return min(CLEAN_DB, 20.0 * math.log10(signal / noise))


def activation_pairs(qdq: Any) -> dict[str, str]:
    """Float activation name → the name of its quantize-dequantize result in a QDQ graph (weights left out)."""
    graph = qdq.graph
    constants = {t.name for t in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    quantized_from = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear" and n.input}
    pairs: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in quantized_from:
            source = quantized_from[node.input[0]]
            if source not in constants:
                # a graph output keeps its name on the DequantizeLinear; the float value is renamed with a suffix
                float_name = (
                    source.removesuffix(GRAPH_OUTPUT_SUFFIX) if source.endswith(GRAPH_OUTPUT_SUFFIX) else source
                )
                pairs.setdefault(float_name, node.output[0])
    return pairs


def _run_exposed(model: Any, names: Sequence[str], feeds: Iterable[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """Run ``model`` (a ModelProto, copied) with ``names`` added as graph outputs, optimizations off."""
    import onnx
    import onnxruntime as ort

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in present:
            exposed.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    session = ort.InferenceSession(exposed.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [session.run(list(names), feed) for feed in feeds]


def tensor_sqnr(float_model: Path, qdq_model: Path, feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """SQNR of every activation the QDQ model quantizes, against the float model, on ``feeds``."""
    float_proto = load_proto(float_model, check=False)
    qdq_proto = load_proto(qdq_model, check=False)
    produced = {o for n in float_proto.graph.node for o in n.output} | {i.name for i in float_proto.graph.input}
    pairs = {f: q for f, q in activation_pairs(qdq_proto).items() if f in produced}
    names = sorted(pairs)
    reference = _run_exposed(float_proto, names, feeds)
    quantized = _run_exposed(qdq_proto, [pairs[n] for n in names], feeds)
    return {name: sqnr([r[k] for r in reference], [q[k] for q in quantized]) for k, name in enumerate(names)}


def rank_nodes(
    float_model: Path, qdq_model: Path, feeds: Sequence[dict[str, np.ndarray]]
) -> list[tuple[tuple[str, ...], float]]:
    """Groups of nodes to keep in float together, with the SQNR they cost (dB), most error-adding first.

    A group is a node that adds error and the quantized producers of its inputs: the error a node shows is often
    made by the quantization of its input (a tensor offset far from zero loses its detail to the step size and
    the loss appears only after a later subtraction), and an input stays quantized while its producer is.
    """
    errors = tensor_sqnr(float_model, qdq_model, feeds)
    candidates = quantized_nodes(qdq_model)
    graph = load_proto(float_model, check=False, load_external_data=False).graph
    producer = {o: n.name for n in graph.node for o in n.output}
    ranked: list[tuple[tuple[str, ...], float]] = []
    for node in graph.node:
        if node.name not in candidates:
            continue
        outs = [errors[o] for o in node.output if o in errors]
        if not outs:
            continue
        ins = [errors.get(i, CLEAN_DB) for i in node.input if i]
        cost = min(ins, default=CLEAN_DB) - min(outs)
        if cost > 0.0:
            feeding = (producer[i] for i in node.input if i in errors and producer.get(i) in candidates)
            ranked.append(((node.name, *dict.fromkeys(feeding)), cost))
    ranked.sort(key=lambda item: -item[1])
    log.info("quantization error by node (dB): %s", ", ".join(f"{g[0]} {c:.1f}" for g, c in ranked[:10]))
    return ranked
