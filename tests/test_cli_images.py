"""`modelport compare --image`: image files as feeds, with the preprocessing options and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import models
from modelport.assets import default_model_metadata, default_model_path
from modelport.backends import open_runner
from modelport.cli.main import main
from modelport.data.datasets import load_mnist


@pytest.fixture(scope="module")
def digit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A real MNIST test digit written as a PNG, with its label."""
    data = load_mnist("test", limit=1)
    path = tmp_path_factory.mktemp("img") / "digit.png"
    cv2.imwrite(str(path), np.round(data.images[0, 0] * 255).astype(np.uint8))
    return path, int(data.labels[0])


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compare_with_image_feeds_matches_dataset_pixels(capsys: pytest.CaptureFixture[str], digit) -> None:
    path, label = digit
    card = default_model_metadata()
    args = ["compare", default_model_path(), "-r", "onnxruntime,openvino", "--image", path, "--grayscale"]
    args += ["--mean", card.mean[0], "--std", card.std[0], "--json"]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    report = json.loads(out)
    assert report["feeds"] == [["image", [1, 1, 28, 28], "float32"]]
    assert report["comparisons"][0]["outputs"][0]["max_abs"] < 1e-4
    # the PNG round trip is lossless: the same tensor as the dataset's, so the model predicts the label
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    feed = card.normalize(pixels[None, None])
    with open_runner("onnxruntime", default_model_path()) as runner:
        logits = runner.infer({"image": feed})["logits"]
    assert int(np.argmax(logits)) == label


def test_image_size_follows_the_model_and_resizes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.full((56, 84), 200, np.uint8))
    code, out, err = _run(
        capsys, "compare", default_model_path(), "-r", "ort,ov", "--image", big, "--image", big, "--grayscale", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["feeds"][0][1] == [2, 1, 28, 28]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--layout", "NCWH"], "--layout must be NCHW or NHWC"),
        (["--image-size", "28"], "--image-size takes H,W"),
        (["--mean", "a,b"], "--mean takes comma-separated numbers"),
    ],
)
def test_bad_image_options(capsys: pytest.CaptureFixture[str], digit, extra: list[str], fragment: str) -> None:
    path, _ = digit
    code, _, err = _run(capsys, "compare", default_model_path(), "-r", "ort,ov", "--image", path, "--grayscale", *extra)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("modelport: error:") and fragment in lines[0]


def test_image_needs_single_input_model(capsys: pytest.CaptureFixture[str], digit, tmp_path: Path) -> None:
    path, _ = digit
    two = models.save(models.two_inputs(), tmp_path / "two.onnx")
    code, _, err = _run(capsys, "compare", two, "-r", "ort,ov", "--image", path)
    assert code == 2 and "needs a single-input model; this one has 2 (a, b)" in err


def test_feeds_and_image_are_exclusive(capsys: pytest.CaptureFixture[str], digit, tmp_path: Path) -> None:
    path, _ = digit
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 1, 28, 28), np.float32))
    code, _, err = _run(capsys, "compare", default_model_path(), "-r", "ort,ov", "--image", path, "--feeds", npy)
    assert code == 2 and "either --feeds or --image" in err


def test_unreadable_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    code, _, err = _run(capsys, "compare", default_model_path(), "-r", "ort,ov", "--image", junk, "--grayscale")
    assert code == 2 and "cannot decode image" in err and "junk.png" in err
