"""``classify`` on a real classifier of the corpus test subset: RapidOCR's text-direction classifier (PaddleOCR
``ch_ppocr_mobile_v2.0_cls``: a text line upright → class "0", upside down → "180"; softmax inside the model,
dynamic height and width) on text lines drawn in the test, on ONNX Runtime and OpenVINO."""

from __future__ import annotations

import importlib.util
import statistics
from functools import cache
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from modelport.apps.vision.classify import ClassifyOptions, classify
from modelport.apps.vision.model import resolve_app_model
from modelport.errors import AppError
from modelport.inputs import ImagePreprocess

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "rapidocr_cls_v2"
WORDS = ("Hello modelport", "Vision apps", "any runtime", "OpenVINO 2026", "text lines", "upside down")


@cache
def _provision() -> ModuleType:
    spec = importlib.util.spec_from_file_location("modelport_corpus_provision", REPO / "benchmarks/corpus/provision.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def direction_model() -> Path:
    """The model file from the corpus cache (test subset; never downloaded here)."""
    prov = _provision()
    entry = prov.entry(MODEL_ID)
    assert "tests" in entry.get("subsets", []), f"{MODEL_ID} must be in the corpus test subset"
    try:
        path: Path = prov.provision(entry, prov.default_cache(), offline=True)
    except prov.CorpusError as exc:
        pytest.fail(f"{MODEL_ID} is not installed ({exc}): run `make setup`", pytrace=False)
    return path


@pytest.fixture(scope="module")
def text_lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``0/`` upright and ``180/`` upside-down text lines, black on white, 40 to 56 pixels high (the model's 4:1)."""
    root = tmp_path_factory.mktemp("lines")
    for folder in ("0", "180"):
        (root / folder).mkdir()
    for i, word in enumerate(WORDS):
        h = (40, 48, 56)[i % 3]
        img = np.full((h, 4 * h, 3), 250, np.uint8)
        cv2.putText(img, word, (6, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * h / 48, (10, 10, 10), 2, cv2.LINE_AA)
        cv2.imwrite(str(root / "0" / f"{i}.png"), img)
        cv2.imwrite(str(root / "180" / f"{i}.png"), img[::-1, ::-1])
    return root


PADDLE = ImagePreprocess(size=(48, 192), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_text_direction(direction_model: Path, text_lines: Path, runtime: str) -> None:
    opts = ClassifyOptions(labels=("0", "180"), preprocess=PADDLE, top_k=2, batch=4)
    report = classify(resolve_app_model(direction_model, runtime=runtime), text_lines, options=opts)
    assert report.scores == "probabilities" and report.classes == 2  # the model ends in a softmax
    assert report.accuracy is not None and report.accuracy.top1 == 1.0 and report.accuracy.top5 is None
    assert report.accuracy.mapping == "class folders by label name"
    assert report.batch == 4 and "48×192" in report.preprocessing
    for r in report.images:
        assert r.correct
        assert sum(p.probability for p in r.predictions) == pytest.approx(1.0, abs=1e-3)
    # confident on the whole, not on every line: how sure it is of one drawn line moves with OpenCV's rasteriser
    # (the upright "upside down" line: 0.89 with opencv 5.0, 0.56 with 5.1 — still correct)
    confidence = [r.predictions[0].probability for r in report.images]
    assert statistics.median(confidence) > 0.95 and statistics.mean(confidence) > 0.9, confidence


def test_a_dynamic_image_size_needs_one(direction_model: Path, text_lines: Path) -> None:
    with pytest.raises(AppError, match="dynamic height/width"):
        classify(direction_model, text_lines)
