"""``detect``'s YOLO adapter on a real YOLOv8n export we did not build: NudeNet 3.4.2's ``320n.onnx`` (Ultralytics,
output ``[1, 22, N]``: 4 box values + 18 classes, no objectness), on skimage's astronaut photo.

NudeNet's own detector (its ``NudeDetector``, run once by hand on the same photo) finds one ``FACE_FEMALE`` (class 1)
at x 173–275, y 82–180 with score 0.72; it pads the image to a square at the bottom/right, where ``detect``
letterboxes it centred, so the score differs a little. The face is where the photo has it either way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelport.apps.detect import DetectOptions, detect
from modelport.apps.vision.images import write_image
from modelport.apps.vision.model import resolve_app_model
from modelport.rewriting.nms import box_iou

CorpusModel = Callable[[str], Path]
#: the face NudeNet's own pipeline reports on the astronaut (x0, y0, x1, y1 in pixels of the 512×512 photo)
NUDENET_FACE = np.array([173.0, 82.0, 275.0, 180.0])


def test_yolo_adapter_on_a_real_yolov8_export(corpus_model: CorpusModel, tmp_path: Path) -> None:
    from skimage import data

    model = corpus_model("nudenet_320n")
    photo = write_image(tmp_path / "astronaut.png", data.astronaut())
    found = {}
    for runtime in ("onnxruntime", "openvino"):
        report = detect(resolve_app_model(model, runtime=runtime), photo, options=DetectOptions(score=0.3))
        assert report.adapter.startswith("yolo"), report.adapter
        faces = [d for d in report.detections if d.class_id == 1]
        assert len(faces) == 1, report.detections
        found[runtime] = faces[0]
        assert box_iou(np.asarray(faces[0].box)[None], NUDENET_FACE[None])[0, 0] >= 0.7
        assert 0.5 <= faces[0].score <= 1.0
    ort, ov = found["onnxruntime"], found["openvino"]
    assert box_iou(np.asarray(ort.box)[None], np.asarray(ov.box)[None])[0, 0] >= 0.9
    assert abs(ort.score - ov.score) <= 1e-3
