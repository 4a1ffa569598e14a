"""The NMS cut: an ONNX detector's in-graph ``NonMaxSuppression`` replaced by modelport's host NMS.

ONNX Runtime runs ``NonMaxSuppression`` on one thread, and exporters hand it every candidate box: torchvision's
ssdlite320 spends most of a frame there. The cut splits the graph at that node, with onnx's own extractor
(``onnx.utils.Extractor``):

* the **head** runs from the model's inputs to the NMS node's inputs (the decoded boxes ``[B, N, 4]`` and the
  per-class scores ``[B, C, N]``) plus every tensor the rest of the graph reads from before the NMS;
* the host computes the operator's ``selected_indices`` (:func:`~modelport.apps.detect.nms.onnx_nms`);
* the **tail** runs from ``selected_indices`` (and those tensors) to the model's outputs — the gathers and
  top-k that turn indices into detections — so the outputs are the original model's.

An ``If`` that only guards the NMS against an empty input (torchvision's) is resolved to the branch that holds the
NMS: its nodes are inlined. Scores below the app's ``--score`` are dropped before the host NMS — exact for the
boxes above it, since greedy NMS lets a box suppress only boxes of lower score. The cut models are cached by the
source's SHA-256 under ``<cache>/detect/<sha>/`` (the input is never modified).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from modelport.apps.detect.nms import onnx_nms
from modelport.errors import AppError

log = logging.getLogger(__name__)

NMS_OP = "NonMaxSuppression"
#: the cut's description file in its cache folder
CUT_JSON = "cut.json"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/modelport`` (``~/.cache/modelport`` when unset), read at call time."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelport"


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

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values."""
        d = dataclasses.asdict(self)
        d["head"], d["tail"], d["carried"] = self.head.name, self.tail.name, list(self.carried)
        return d


def has_nms(path: Path) -> bool:
    """Whether an ONNX model holds a ``NonMaxSuppression`` (in its graph or in an ``If`` branch of it)."""
    proto = onnx.load(str(path), load_external_data=False)
    return _find_nms(proto.graph) is not None


def preferred_runtime(model: Path) -> str | None:
    """The runtime ``detect`` picks when none is given: OpenVINO (when installed) for an ONNX detector whose graph
    runs ``NonMaxSuppression`` over every candidate, else None (the format's own runtime).

    Measured on torchvision's ssdlite320 (``benchmarks/results/apps_detect.md``, 27,000 candidates): ONNX Runtime
    in-graph 495 ms, ONNX Runtime with the NMS cut 232 ms, OpenVINO with the graph as it is 98 ms — OpenVINO's NMS
    is multi-threaded and its head runs the unrolled per-class top-k faster.
    """
    from modelport.backends import get_backend
    from modelport.formats import Format, sniff_format

    if not model.is_file() or sniff_format(model) is not Format.ONNX or not has_nms(model):
        return None
    return "openvino" if get_backend("openvino").installed() else None


def cut_before_nms(source: Path, cache_dir: Path | None = None) -> NmsCut:
    """The NMS cut of ``source``, from the cache or made now (see the module docstring).

    Raises:
        AppError: the model has no ``NonMaxSuppression``, or the graph cannot be split there.
    """
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:24]
    folder = (cache_dir or default_cache_dir()) / "detect" / digest
    cached = _load_cut(folder)
    if cached is not None:
        log.debug("NMS cut of %s from %s", source, folder)
        return cached
    proto = onnx.load(str(source))
    found = _find_nms(proto.graph)
    if found is None:
        raise AppError(f"{source} has no {NMS_OP} to cut", hint="run it without the cut (--in-graph-nms)", path=source)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=folder.parent))
    try:
        cut = _split(proto, tmp, source)
        (tmp / CUT_JSON).write_text(json.dumps(cut.to_dict(), indent=2), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    loaded = _load_cut(folder)
    assert loaded is not None
    log.info("cut %s before its %s: %s", source, NMS_OP, folder)
    return loaded


def _load_cut(folder: Path) -> NmsCut | None:
    try:
        d = json.loads((folder / CUT_JSON).read_text(encoding="utf-8"))
        d["head"], d["tail"], d["carried"] = folder / d["head"], folder / d["tail"], tuple(d["carried"])
        cut = NmsCut(**d)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return cut if cut.head.is_file() and cut.tail.is_file() else None


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


def _split(proto: onnx.ModelProto, folder: Path, source: Path) -> NmsCut:
    graph = proto.graph
    found = _find_nms(graph)
    assert found is not None
    if found[1] is not None:
        _inline_branch(graph, found[0], found[1])
    index = next(i for i, n in enumerate(graph.node) if n.op_type == NMS_OP)
    nms = graph.node[index]
    names = [nms.input[k] if len(nms.input) > k else "" for k in (2, 3, 4)]
    params = [_constant_value(graph, n) if n else None for n in names]
    for name, value in zip(names, params, strict=True):
        if name and value is None:
            raise AppError(
                f"the {NMS_OP} node {nms.name!r} takes a computed parameter {name!r}; the cut needs constants",
                hint="run it with the in-graph NMS (--in-graph-nms)",
                path=source,
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
    for model, name in ((head, "head.onnx"), (tail, "tail.onnx")):
        onnx.save(model, str(folder / name))
    center = next((a.i for a in nms.attribute if a.name == "center_point_box"), 0)
    max_out, iou, score = params
    return NmsCut(
        head=folder / "head.onnx",
        tail=folder / "tail.onnx",
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
