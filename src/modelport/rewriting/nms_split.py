"""The NMS split: a detector's in-graph ``NonMaxSuppression`` replaced by modelport's host NMS.

Some runtimes run ``NonMaxSuppression`` badly or not at all (ONNX Runtime on one thread, TensorRT only from 8.5 with
a fixed output count, the Edge TPU never), and exporters hand it every candidate box. The split cuts the graph at
that node, with onnx's own extractor (``onnx.utils.Extractor``):

* the **head** runs from the model's inputs to the NMS node's inputs (the decoded boxes ``[B, N, 4]`` and the
  per-class scores ``[B, C, N]``) plus every tensor the rest of the graph reads from before the NMS;
* the host computes the operator's ``selected_indices`` (:func:`~modelport.rewriting.nms.onnx_nms`);
* the **tail** runs from ``selected_indices`` (and those tensors) to the model's outputs — the gathers and
  top-k that turn indices into detections — so the outputs are the original model's.

An ``If`` that only guards the NMS against an empty input (torchvision's) is resolved to the branch that holds the
NMS: its nodes are inlined. The split is described by a JSON file (:func:`write_split` / :func:`read_split`) that
names the head and tail beside it: ``modelport rewrite --rules split-nms -o OUT.onnx`` writes ``OUT.onnx`` (the
head), ``OUT.tail.onnx`` and ``OUT.nms.json``, and ``modelport detect OUT.onnx`` finds the JSON and runs the three
parts; ``detect`` also makes the split itself (cached) for ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from modelport.errors import PassError
from modelport.model_io import write_text
from modelport.rewriting.nms import onnx_nms

NMS_OP = "NonMaxSuppression"
#: the suffix of a split's description beside its head (``model.onnx`` → ``model.nms.json``)
SPLIT_SUFFIX = ".nms.json"


@dataclasses.dataclass(frozen=True)
class NmsCut:
    """A detector split at its ``NonMaxSuppression``.

    Attributes:
        head: the ONNX model from the inputs to the NMS inputs and the tensors the tail reads.
        tail: the ONNX model from ``selected`` (and ``carried``) to the original outputs.
        boxes: the head output that is the NMS boxes.
        scores: the head output that is the NMS scores.
        selected: the tail input that takes ``selected_indices``.
        carried: head outputs the tail reads as they are.
        max_per_class: the operator's ``max_output_boxes_per_class`` (0 when absent).
        iou: its ``iou_threshold``.
        score_threshold: its ``score_threshold`` (None when absent).
        center_point_box: its attribute.
    """

    head: Path
    tail: Path
    boxes: str
    scores: str
    selected: str
    carried: tuple[str, ...]
    max_per_class: int
    iou: float
    score_threshold: float | None
    center_point_box: int

    @property
    def head_outputs(self) -> tuple[str, ...]:
        """The head's outputs, in its order."""
        return tuple(dict.fromkeys([self.boxes, self.scores, *self.carried]))

    def by_name(self, head_out: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """The head's outputs under the names the cut gave them.

        A runtime may report an output under another of its tensor's names (OpenVINO drops a no-op ``Cast`` before
        the NMS and names the output after the Cast's input); the outputs then come back in the head's order.
        """
        if all(name in head_out for name in self.head_outputs) or len(head_out) != len(self.head_outputs):
            return head_out
        return dict(zip(self.head_outputs, head_out.values(), strict=True))

    def tail_feeds(self, head_out: Mapping[str, np.ndarray], score_floor: float | None = None) -> dict[str, np.ndarray]:
        """The tail's feeds from the head's outputs: the host NMS's indices and the carried tensors.

        Args:
            head_out: the head's outputs.
            score_floor: drop boxes scoring under this before NMS (the app's ``--score``; None: the operator's own).
        """
        head_out = self.by_name(head_out)
        threshold = self.score_threshold
        if score_floor is not None:
            floor = float(np.nextafter(np.float32(score_floor), np.float32(-np.inf)))
            threshold = floor if threshold is None else max(threshold, floor)
        selected = onnx_nms(
            head_out[self.boxes],
            head_out[self.scores],
            self.max_per_class,
            self.iou,
            threshold,
            center_point_box=self.center_point_box,
        )
        return {self.selected: selected, **{name: head_out[name] for name in self.carried}}


def has_nms(path: Path) -> bool:
    """Whether an ONNX model file holds a ``NonMaxSuppression`` (in its graph or in an ``If`` branch of it)."""
    return has_nms_proto(onnx.load(str(path), load_external_data=False))


def has_nms_proto(proto: onnx.ModelProto) -> bool:
    """Whether a model holds a ``NonMaxSuppression`` (in its graph or in an ``If`` branch of it)."""
    return _find_nms(proto.graph) is not None


def _find_nms(graph: onnx.GraphProto) -> tuple[int, int | None] | None:
    """``(node index, None)`` for a top-level NMS, ``(If node index, branch attribute index)`` for one in a branch."""
    for i, node in enumerate(graph.node):
        if node.op_type == NMS_OP and node.domain in ("", "ai.onnx"):
            return i, None
    for i, node in enumerate(graph.node):
        if node.op_type == "If":
            for j, attr in enumerate(node.attribute):
                if attr.g is not None and any(n.op_type == NMS_OP for n in attr.g.node):
                    return i, j
    return None


def _inline_branch(graph: onnx.GraphProto, index: int, branch: int) -> None:
    """Replace the ``If`` at ``index`` by the nodes of its branch ``branch`` (outputs renamed by Identity)."""
    node = graph.node[index]
    sub = node.attribute[branch].g
    nodes = list(sub.node)
    pairs = zip(sub.output, node.output, strict=True)
    nodes += [onnx.helper.make_node("Identity", [o.name], [name]) for o, name in pairs]
    graph.initializer.extend(sub.initializer)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(rest[:index] + nodes + rest[index + 1 :])


def _constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for init in graph.initializer:
        if init.name == name:
            return onnx.numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and name in node.output:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            return None if attr is None else onnx.numpy_helper.to_array(attr.t)
    return None


def split_before_nms(proto: onnx.ModelProto, head_path: Path, tail_path: Path, source: str | Path = "") -> NmsCut:
    """Split ``proto`` at its ``NonMaxSuppression`` and write the head and tail models (see the module docstring).

    ``proto`` is changed (an ``If`` guarding the NMS is inlined): pass a copy.

    Raises:
        PassError: the model has no ``NonMaxSuppression``, or a parameter of it is computed (the cut needs constants).
    """
    graph = proto.graph
    found = _find_nms(graph)
    if found is None:
        raise PassError(f"{source or 'the model'} has no {NMS_OP} to cut", path=source or None)
    if found[1] is not None:
        _inline_branch(graph, found[0], found[1])
    index = next(i for i, n in enumerate(graph.node) if n.op_type == NMS_OP)
    nms = graph.node[index]
    names = [nms.input[k] if len(nms.input) > k else "" for k in (2, 3, 4)]
    params = [_constant_value(graph, n) if n else None for n in names]
    for name, value in zip(names, params, strict=True):
        if name and value is None:
            raise PassError(
                f"the {NMS_OP} node {nms.name!r} takes a computed parameter {name!r}; the cut needs constants",
                hint="keep the in-graph NMS",
                path=source or None,
            )
    selected = nms.output[0]
    carried = _tail_inputs(graph, index, selected)
    boxes, scores = nms.input[0], nms.input[1]
    inferred = onnx.shape_inference.infer_shapes(proto)
    extractor = onnx.utils.Extractor(inferred)
    graph_inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    head_outputs = list(dict.fromkeys([boxes, scores, *carried]))
    _ensure_types(extractor, head_outputs, {selected})
    head = extractor.extract_model(graph_inputs, head_outputs)
    tail = extractor.extract_model([selected, *carried], [o.name for o in graph.output])
    for model, path in ((head, head_path), (tail, tail_path)):
        onnx.save(model, str(path))
    center = next((a.i for a in nms.attribute if a.name == "center_point_box"), 0)
    max_out, iou, score = params
    return NmsCut(
        head=Path(head_path),
        tail=Path(tail_path),
        boxes=boxes,
        scores=scores,
        selected=selected,
        carried=tuple(carried),
        max_per_class=int(min(np.asarray(max_out).reshape(-1)[0], 2**62)) if max_out is not None else 0,
        iou=float(np.asarray(iou).reshape(-1)[0]) if iou is not None else 0.0,
        score_threshold=float(np.asarray(score).reshape(-1)[0]) if score is not None else None,
        center_point_box=int(center),
    )


def _tail_inputs(graph: onnx.GraphProto, nms_index: int, selected: str) -> list[str]:
    """Tensors the nodes downstream of the NMS read from upstream (not constants, not initializers)."""
    downstream = {selected}
    tail_nodes: list[onnx.NodeProto] = []
    for node in graph.node[nms_index + 1 :]:
        if any(i in downstream for i in node.input):
            downstream.update(o for o in node.output if o)
            tail_nodes.append(node)
    constants = {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    constants |= {t.name for t in graph.initializer}
    wanted: list[str] = []
    for node in tail_nodes:
        for name in node.input:
            if name and name not in downstream and name not in constants and name not in wanted:
                wanted.append(name)
    return wanted


def _ensure_types(extractor: onnx.utils.Extractor, names: list[str], indices: set[str]) -> None:
    """Give the extractor a type for every cut tensor shape inference left untyped (int64 indices, else float)."""
    for name in [*names, *indices]:
        if name not in extractor.value_infos:
            elem = onnx.TensorProto.INT64 if name in indices else onnx.TensorProto.FLOAT
            extractor.value_infos[name] = onnx.helper.make_tensor_value_info(name, elem, None)


def sidecar(head: Path) -> Path:
    """Where the split description of ``head`` lives: ``model.onnx`` → ``model.nms.json``."""
    return head.with_suffix(SPLIT_SUFFIX)


def write_split(cut: NmsCut, path: Path) -> Path:
    """Write the split's description to ``path`` (JSON; head and tail named relative to its folder)."""
    d = dataclasses.asdict(cut)
    d["head"] = str(Path(cut.head).resolve().relative_to(path.parent.resolve()))
    d["tail"] = str(Path(cut.tail).resolve().relative_to(path.parent.resolve()))
    d["carried"] = list(cut.carried)
    return write_text(path, json.dumps(d, indent=2))


def read_split(path: Path) -> NmsCut | None:
    """The split described by ``path``, or None when it is missing, unreadable or its models are gone."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        d["head"], d["tail"], d["carried"] = path.parent / d["head"], path.parent / d["tail"], tuple(d["carried"])
        cut = NmsCut(**d)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return cut if cut.head.is_file() and cut.tail.is_file() else None
