"""``modelport detect``: object detection with any SSD- or YOLO-style model on any runtime.

The output contract is recognised from the model's outputs (:mod:`.adapters`), NMS runs on the host in
modelport's own vectorised implementation (:mod:`modelport.rewriting.nms`), and an ONNX model's in-graph
``NonMaxSuppression`` is cut out and replaced by it (:mod:`.cut`) unless asked otherwise.
"""

from __future__ import annotations

from modelport.apps.detect.adapters import AdapterKind, Detections, choose_adapter
from modelport.apps.detect.app import Detection, DetectOptions, DetectReport, detect
from modelport.apps.detect.cut import NmsCut, cut_before_nms
from modelport.apps.detect.detector import Detector, DetectorOptions
from modelport.rewriting.nms import onnx_nms

__all__ = [
    "AdapterKind",
    "DetectOptions",
    "DetectReport",
    "Detection",
    "Detections",
    "Detector",
    "DetectorOptions",
    "NmsCut",
    "choose_adapter",
    "cut_before_nms",
    "detect",
    "onnx_nms",
]
