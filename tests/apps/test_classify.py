"""``classify``: the shipped MNIST ConvNet on MNIST test digits written as PNGs (accuracy equal to the evaluation
``port`` and ``quantize`` use, on ONNX Runtime, OpenVINO and a ``port`` output), scores, labels, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import models
from modelport.apps.vision.classify import ClassifyOptions, ClassifyReport, classify
from modelport.apps.vision.model import resolve_app_model
from modelport.assets import default_model_metadata, default_model_path
from modelport.backends import open_runner
from modelport.benchmark.timing import BenchConfig
from modelport.cli import main as cli_main
from modelport.data import evaluate_classifier, load_samples
from modelport.data.datasets import load_mnist
from modelport.errors import AppError
from modelport.formats import Precision
from modelport.inputs import ImagePreprocess

WRONG, RIGHT = 60, 240  # misclassified digits (all there are, up to 60) and correctly classified ones


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled tree ``digit/nnnnn.png`` of MNIST test images: the ConvNet's mistakes and some hits."""
    card = default_model_metadata()
    data = load_mnist("test")
    with open_runner("onnxruntime", default_model_path()) as runner:
        logits = runner.infer({card.input: card.normalize(data.images)})[card.output]
    wrong = np.flatnonzero(logits.argmax(1) != data.labels)[:WRONG]
    right = np.flatnonzero(logits.argmax(1) == data.labels)[:RIGHT]
    root = tmp_path_factory.mktemp("mnist") / "digits"
    for i in np.sort(np.concatenate([wrong, right])):
        folder = root / str(data.labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:05d}.png"), np.round(data.images[i, 0] * 255).astype(np.uint8))
    return root


def _evaluate(runtime: str, model: Path, tree: Path) -> tuple[float | None, float | None]:
    """Top-1/top-5 as ``quantize --eval DIR`` and ``port --eval DIR`` measure them on the same images."""
    card = default_model_metadata()
    with open_runner(runtime, model) as runner:
        pre = ImagePreprocess(mean=card.mean, std=card.std)
        samples, _ = load_samples(tree, runner.input_specs, role="evaluation", preprocess=pre)
        metrics = evaluate_classifier(runner, samples)
    return metrics.top1, metrics.top5


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_accuracy_equals_the_evaluation_of_port_and_quantize(digits: Path, runtime: str) -> None:
    model = default_model_path()
    report = classify(resolve_app_model(model, runtime=runtime), digits)
    acc = report.accuracy
    assert acc is not None and report.runtime == runtime
    assert (acc.top1, acc.top5) == _evaluate(runtime, model, digits)
    assert 0.5 < acc.top1 < 0.95  # a real measurement on a set holding the model's mistakes
    assert acc.images == len(report.images) == sum(c.images for c in acc.per_class) == 60 + RIGHT
    assert sum(bool(r.correct) for r in report.images) == round(acc.top1 * acc.images)
    assert report.scores == "softmax of logits" and report.classes == 10
    assert "model card" in report.labels and acc.mapping == "class folders by label name"
    assert "mean [0.1307]" in report.preprocessing and "grayscale" in report.preprocessing
    assert acc.confused and acc.confused[0].count >= acc.confused[-1].count
    worst = acc.confused[0]
    assert worst.true_label != worst.predicted_label
    assert sum(1 for r in report.images if r.true_label == worst.true_label and r.predictions[0].label
               == worst.predicted_label) == worst.count  # fmt: skip
    first = report.images[0]
    assert len(first.predictions) == 5 and first.latency_ms > 0
    probs = [p.probability for p in first.predictions]
    assert probs == sorted(probs, reverse=True) and 0.99 < sum(probs) <= 1.0 + 1e-9


def test_a_port_output_classifies_like_its_evaluation(digits: Path, tmp_path: Path) -> None:
    from modelport.porting.pipeline import PortOptions, port

    model = default_model_path()
    with open_runner("onnxruntime", model) as runner:
        card = default_model_metadata()
        pre = ImagePreprocess(mean=card.mean, std=card.std)
        samples, _ = load_samples(digits, runner.input_specs, role="evaluation", preprocess=pre)
    options = PortOptions(
        targets=("onnxruntime",),
        precisions=(Precision.FP32,),
        optimize=False,
        bench=BenchConfig(warmup=1, iterations=3),
        budget=0,
        timeout=None,
    )
    ported = port(model, tmp_path / "port", options=options, eval_set=samples)
    target = ported.targets[0]
    assert target.verified and target.accuracy is not None
    # the output directory as given, and resolved first (as the CLI does): the source's model card is found
    for given in (tmp_path / "port", resolve_app_model(tmp_path / "port")):
        report = classify(given, digits)
        assert "port's fastest" in report.model and report.runtime == "onnxruntime"
        assert "mean [0.1307]" in report.preprocessing and "model card" in report.labels
        assert report.accuracy is not None and report.accuracy.top1 == target.accuracy.top1
        assert report.accuracy.top5 == target.accuracy.top5


# --- a tiny colour classifier -------------------------------------------------------------------------------

COLOURS = {"red": (220, 30, 30), "green": (30, 220, 30), "blue": (30, 30, 220)}


def colour_model(tmp_path: Path, *, softmax: bool = False, name: str = "colours.onnx") -> Path:
    """Mean colour of an 8×8 RGB image → logits (or probabilities) of red, green, blue."""
    tail = "y = Softmax <axis = 1> (z)" if softmax else "y = Identity(z)"
    model = models.parse(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        colours (float[N, 3, 8, 8] x) => (float[N, 3] y)
        <float[3, 3] w = {{10.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 10.0}}> {{
            m = ReduceMean <axes = [2, 3], keepdims = 0> (x)
            z = MatMul(m, w)
            {tail}
        }}
    """)
    return models.save(model, tmp_path / name)


def colour_tree(root: Path, per_class: int = 3) -> Path:
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = np.zeros((20, 16, 3), np.uint8)
            img[:] = rgb
            img[i, i] = (0, 0, 0)
            cv2.imwrite(str(root / name / f"{i}.png"), img[:, :, ::-1])
    return root


def test_logits_get_a_softmax_and_probabilities_do_not(tmp_path: Path) -> None:
    tree = colour_tree(tmp_path / "tree")
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    opts = ClassifyOptions(labels=labels, top_k=3)
    logits = classify(colour_model(tmp_path), tree, options=opts)
    probs = classify(colour_model(tmp_path, softmax=True, name="p.onnx"), tree, options=opts)
    assert logits.scores == "softmax of logits" and probs.scores == "probabilities"
    for a, b in zip(logits.images, probs.images, strict=True):
        assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
        assert [p.probability for p in a.predictions] == pytest.approx([p.probability for p in b.predictions])
        assert a.predictions[0].label == a.true_label == Path(a.path).parent.name
    assert logits.accuracy is not None and logits.accuracy.top1 == 1.0 and logits.accuracy.top5 is None
    written = logits.write(tmp_path / "out")
    assert written.name == "classify.json" and ClassifyReport.from_json(written.read_text()) == logits
    # the red image's probabilities are the softmax of 10 × its mean colour
    red = logits.images[[Path(r.path).parent.name for r in logits.images].index("red")]
    mean = cv2.imread(red.path)[:, :, ::-1].reshape(-1, 3).mean(0) / 255 * 10
    expected = np.exp(mean - mean.max()) / np.exp(mean - mean.max()).sum()
    assert [p.probability for p in red.predictions] == pytest.approx(sorted(expected, reverse=True), rel=1e-4)


def test_an_8bit_input_gets_raw_pixels(tmp_path: Path) -> None:
    model = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        colours (uint8[N, 8, 8, 3] x) => (float[N, 3] y)
        <float[3, 3] w = {0.1, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.1}> {
            f = Cast <to = 1> (x)
            m = ReduceMean <axes = [1, 2], keepdims = 0> (f)
            y = MatMul(m, w)
        }
    """)
    tree = colour_tree(tmp_path / "tree")
    opts = ClassifyOptions(labels=("red", "green", "blue"))
    report = classify(models.save(model, tmp_path / "u8.onnx"), tree, options=opts)
    assert "NHWC" in report.preprocessing and "uint8" in report.preprocessing and "× 1 " in report.preprocessing
    # pixels / 255 cast to uint8 would be all zeros: equal scores, every image "red", top-1 1/3
    assert report.accuracy is not None and report.accuracy.top1 == 1.0


def test_folder_names_map_by_labels_else_sorted(tmp_path: Path) -> None:
    tree = colour_tree(tmp_path / "tree")
    model = colour_model(tmp_path)
    sorted_names = classify(model, tree)
    assert sorted_names.accuracy is not None and "sorted name order" in sorted_names.accuracy.mapping
    # blue, green, red → 0, 1, 2 while the model's classes are red, green, blue: only green is right
    assert sorted_names.accuracy.top1 == pytest.approx(1 / 3)
    assert {c.label: c.top1 for c in sorted_names.accuracy.per_class} == {"0": 0.0, "1": 1.0, "2": 0.0}
    assert sorted_names.labels == "class indices (no labels file)"
    as_json = tmp_path / "labels.json"
    as_json.write_text(json.dumps(["red", "green", "blue"]))
    named = classify(model, tree, options=ClassifyOptions(labels=as_json))
    assert named.accuracy is not None and named.accuracy.top1 == 1.0
    unlabelled = classify(model, tree / "red" / "0.png", options=ClassifyOptions(labels=("r", "g", "b"), top_k=1))
    assert unlabelled.accuracy is None and len(unlabelled.images) == 1
    assert [p.label for p in unlabelled.images[0].predictions] == ["r"]


# --- the CLI --------------------------------------------------------------------------------------------------


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """`modelport classify` through the real entry point (registered here until the verb table has it)."""
    monkeypatch.setitem(cli_main.VERBS, "classify", "classify")


def test_cli_tables_and_json(cli: None, digits: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(default_model_path())
    assert cli_main.main(["classify", model, str(digits), "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "accuracy on 300 labelled images: top-1" in out and "most confused" in out and "per class" in out
    assert "softmax of logits over 10 classes" in out and "misclassified: 60 of 300" in out
    assert cli_main.main(["classify", model, str(digits / "7"), "--json", "-r", "openvino", "--threads", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runtime"] == "openvino" and data["accuracy"] is None
    assert len(data["images"]) == len(list((digits / "7").iterdir()))
    assert all(len(r["predictions"]) == 5 for r in data["images"])
    assert {"label", "index", "probability"} == set(data["images"][0]["predictions"][0])


def _bad(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli_main.main(argv)
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("modelport: error: "), captured.err
    assert captured.out == ""
    return lines[0]


def test_cli_bad_input(cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(colour_model(tmp_path))
    (tmp_path / "empty").mkdir()
    one = colour_tree(tmp_path / "one")
    for name in ("green", "blue"):
        for f in (one / name).iterdir():
            f.unlink()
        (one / name).rmdir()
    broken = colour_tree(tmp_path / "broken")
    (broken / "red" / "bad.png").write_text("not a png")
    three = colour_tree(tmp_path / "three", per_class=1)
    short = tmp_path / "two.txt"
    short.write_text("red\ngreen\n")
    not_nc = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        maps (float[N, 3, 8, 8] x) => (float[N, 3, 8, 8] y) { y = Relu(x) }
    """)
    maps = str(models.save(not_nc, tmp_path / "maps.onnx"))
    before = sorted(tmp_path.rglob("*"))

    assert "empty folder" in _bad(["classify", model, str(tmp_path / "empty")], capsys)
    assert "one class (red)" in _bad(["classify", model, str(one)], capsys)
    line = _bad(["classify", model, str(broken)], capsys)
    assert "cannot decode image" in line and "bad.png" in line
    line = _bad(["classify", model, str(three), "--labels", str(short)], capsys)
    assert "2 labels from" in line and "fewer labels than the 3 classes" in line
    line = _bad(["classify", maps, str(three)], capsys)
    assert "one N×C floating-point score output" in line and "y [3, 3, 8, 8] float32" in line
    assert "does not exist" in _bad(["classify", str(tmp_path / "nope.onnx"), str(three)], capsys)
    assert "int3" in _bad(["classify", model, str(three), "--precision", "int3"], capsys)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_options_are_checked() -> None:
    with pytest.raises(AppError, match="top-k"):
        ClassifyOptions(top_k=0)
    with pytest.raises(AppError, match="batch"):
        ClassifyOptions(batch=0)
