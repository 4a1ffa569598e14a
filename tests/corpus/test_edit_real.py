"""Model surgery on a real detector (nudenet_320n, a YOLOv8 export): cut it in two with ``extract`` at a boundary
of several tensors, merge the halves back with ``merge``, and fuse two copies side by side — every step verified,
the re-merged model equal to the source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx

from modelport.edit import extract, merge

CorpusModel = Callable[[str], Path]


def boundary(proto: onnx.ModelProto, at: float) -> list[str]:
    """The tensors made before node ``at``·N (in graph order) and read from it on: a cut through the graph."""
    nodes = list(proto.graph.node)
    k = int(len(nodes) * at)
    made = {o for n in nodes[:k] for o in n.output} - {i.name for i in proto.graph.initializer}
    return sorted({i for n in nodes[k:] for i in n.input if i in made})


def test_cut_in_two_and_merged_back(corpus_model: CorpusModel, tmp_path: Path) -> None:
    source = corpus_model("nudenet_320n")
    proto = onnx.load(str(source))
    cut = boundary(proto, 0.5)
    assert len(cut) >= 2
    head = extract(source, ["images"], cut)
    tail = extract(source, cut, [o.name for o in proto.graph.output])
    for part in (head, tail):
        assert part.report.verification is not None and part.report.verification.max_abs == 0.0
    paths = [head.write(tmp_path / "head.onnx").output, tail.write(tmp_path / "tail.onnx").output]
    whole = merge(paths, connect=[f"0.{t}:1.{t}" for t in cut])
    assert whole.report.nodes_after == len(proto.graph.node)
    assert whole.report.inputs == ("images",) and whole.report.outputs == tuple(o.name for o in proto.graph.output)
    assert whole.report.verification is not None and whole.report.verification.max_abs == 0.0


def test_two_copies_side_by_side_share_the_image(corpus_model: CorpusModel) -> None:
    source = corpus_model("nudenet_320n")
    fused = merge([source, source], parallel=True)
    assert fused.report.inputs == ("images",) and len(fused.report.outputs) == 2
    assert fused.report.nodes_after == 2 * len(onnx.load(str(source)).graph.node)
    assert fused.report.verification is not None and fused.report.verification.passed


def test_rename_and_set_batch_on_silero(corpus_model: CorpusModel) -> None:
    """silero_vad's tensors are read inside its If branches: renamed everywhere, still the same model."""
    from modelport.edit import rename, set_batch

    source = corpus_model("silero_vad")
    renamed = rename(source, replace=[("_", "-")], what="both")
    assert renamed.report.verification is not None and renamed.report.verification.max_abs == 0.0
    inner = {o for n in renamed.model.graph.node for o in n.output}
    assert not any("_" in name for name in inner)
    batched = set_batch(source, 2)
    assert batched.report.verification is not None and batched.report.verification.max_abs == 0.0


def test_shrink_constants_on_rapidocr_cls(corpus_model: CorpusModel) -> None:
    from modelport.edit import shrink_constants

    result = shrink_constants(corpus_model("rapidocr_cls_v2"))
    assert result.after.constants < result.before.constants
    assert result.report.nodes_after < result.report.nodes_before
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0
