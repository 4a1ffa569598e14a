r"""Which nodes of an ONNX Runtime QDQ model add the most quantization error.

Both the float model and its QDQ quantization are run by ONNX Runtime with graph optimizations off and every
quantized activation exposed as an output: in the QDQ graph each quantized activation :math:`t` passes through
``QuantizeLinear → DequantizeLinear``, and that DequantizeLinear's output is :math:`\hat t`, the value the next
layers see (the integer arithmetic simulated in float). ORT's own ``qdq_loss_debug`` does the same matching, but
its augmented QDQ graphs fail to load on real models (a bias DequantizeLinear that keeps the bias's name). The
error of a tensor is its signal-to-quantization-noise ratio against the float model over the samples,

.. math:: \mathrm{SQNR}(t) = 20 \log_{10} \frac{\lVert t \rVert_2}{\lVert t - \hat t \rVert_2} \ \text{dB},

which accumulates along the graph. Between one quantized tensor and the quantized tensors that feed it lies a
*region* of nodes (often one node; a Conv and its Relu share one quantized output). The region's own
contribution is how much it lowers the SQNR,

.. math:: \Delta(t) = \min_{f \in \mathrm{feeding}(t)} \mathrm{SQNR}(f) - \mathrm{SQNR}(t),

(graph inputs and weights count as noise-free, :data:`CLEAN_DB`). Regions are ranked by :math:`\Delta`, largest
first, each with the producers of its feeding tensors (:func:`rank_nodes`), then the remaining ones from the
noisiest output up; keeping the top of that list in float removes the error where it enters instead of where it
shows. Only nodes named in both graphs can be ranked (ORT keeps nodes in float by name).
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


def graph_nodes(qdq: Path) -> set[str]:
    """Names of the named nodes of a QDQ model other than its QuantizeLinear/DequantizeLinear (ORT excludes by name)."""
    graph = load_proto(qdq, check=False, load_external_data=False).graph
    return {n.name for n in graph.node if n.name and n.op_type not in ("QuantizeLinear", "DequantizeLinear")}


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


#: nodes walked back from a quantized tensor to the quantized tensors (or graph inputs) that feed it.
MAX_REGION = 16


def rank_nodes(
    float_model: Path, qdq_model: Path, feeds: Sequence[dict[str, np.ndarray]]
) -> list[tuple[tuple[str, ...], float]]:
    """Groups of nodes to keep in float together, with the SQNR they cost (dB), most error-adding first.

    Each quantized activation :math:`t` defines a group: the nodes between the quantized tensors that feed it and
    :math:`t` (ORT quantizes only some tensors: a Conv followed by its Relu has one quantized output, after the
    Relu), plus the producers of those feeding tensors — the error a node shows is often made by the quantization
    of its input (a tensor offset far from zero loses its detail to the step size; the loss appears after a later
    subtraction), and an input stays quantized while its producer is. The cost is the SQNR lost from the noisiest
    feeding tensor to :math:`t`. Groups that add error come by cost; then the others from the noisiest output up
    (a node fed by noisy inputs can cost ≤ 0 dB and still add error of its own).
    """
    errors = tensor_sqnr(float_model, qdq_model, feeds)
    names = graph_nodes(qdq_model)
    graph = load_proto(float_model, check=False, load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    ranked: list[tuple[tuple[str, ...], float, float]] = []
    for tensor, out_db in errors.items():
        if tensor not in producer:
            continue  # a graph input
        region, feeding = _region(producer[tensor], producer, errors)
        group = [n.name for n in region if n.name in names]
        group += [producer[f].name for f in feeding if f in producer and producer[f].name in names]
        if not group:
            continue
        cost = min((errors[f] for f in feeding), default=CLEAN_DB) - out_db
        ranked.append((tuple(dict.fromkeys(group)), cost, out_db))
    ranked.sort(key=lambda item: (0, -item[1]) if item[1] > 0.0 else (1, item[2]))
    log.info("quantization error by group (dB): %s", ", ".join(f"{g[0]} {c:.1f}" for g, c, _ in ranked[:10]))
    return [(group, cost) for group, cost, _ in ranked]


def _region(start: Any, producer: dict[str, Any], errors: dict[str, float]) -> tuple[list[Any], list[str]]:
    """(nodes from ``start`` back to the measured tensors, those measured tensors), at most :data:`MAX_REGION`."""
    region: list[Any] = []
    feeding: list[str] = []
    todo, seen = [start], set()
    while todo and len(region) < MAX_REGION:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        region.append(node)
        for name in node.input:
            if name in errors:
                feeding.append(name)
            elif name in producer:
                todo.append(producer[name])
    return region, list(dict.fromkeys(feeding))
