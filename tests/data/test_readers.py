"""Readers (modelport.data.readers): image folders, .npy/.npz, MNIST/Fashion-MNIST, random, arrays, callables,
sample sets; bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from modelport.assets import default_model_metadata
from modelport.data.datasets import load_mnist
from modelport.data.preprocess import image_input
from modelport.data.readers import load_samples
from modelport.data.samples import SampleSet, check_samples
from modelport.errors import InvalidInputError, ModelLoadError
from modelport.inputs import ImagePreprocess, TensorSpec

MNIST_SPEC = [TensorSpec("image", "float32", ("batch", 1, 28, 28))]
RGB_SPEC = [TensorSpec("input", "float32", (1, 3, 32, 32))]
NHWC_SPEC = [TensorSpec("x", "float32", (None, 32, 32, 3))]


@pytest.fixture(scope="module")
def mnist_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """40 MNIST test digits as PNGs: in class folders 0‥9, and loose in one folder; plus their pixels."""
    root = tmp_path_factory.mktemp("digits")
    data = load_mnist("test", limit=40)
    pixels = np.round(data.images[:, 0] * 255).astype(np.uint8)
    labelled, loose = root / "by_class", root / "loose"
    loose.mkdir()
    for i, (img, label) in enumerate(zip(pixels, data.labels, strict=True)):
        (labelled / str(label)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(labelled / str(label) / f"{i:03d}.png"), img)
        cv2.imwrite(str(loose / f"{i:03d}.png"), img)
    (loose / "notes.txt").write_text("not an image")
    return labelled, loose, data.labels


def test_image_folder_with_class_subfolders(mnist_folders: tuple[Path, Path, np.ndarray]) -> None:
    labelled, _, labels = mnist_folders
    samples, warnings = load_samples(labelled, MNIST_SPEC, role="evaluation")
    assert warnings == [] and len(samples) == 40 and samples.labelled
    assert samples.inputs["image"].shape == (40, 1, 28, 28) and samples.inputs["image"].dtype == np.float32
    # digit folders are the labels themselves; the multiset of labels is the data's
    assert sorted(samples.labels.tolist()) == sorted(labels.tolist())
    assert samples.classes == tuple(sorted({str(v) for v in labels.tolist()}, key=int))
    assert "28×28, grayscale, NCHW" in samples.preprocessing


def test_image_folder_normalisation_matches_the_model_card(mnist_folders: tuple[Path, Path, np.ndarray]) -> None:
    """A folder of MNIST PNGs, normalised with the shipped card's mean/std, equals card.normalize of the pixels."""
    _, loose, _ = mnist_folders
    card = default_model_metadata()
    pre = ImagePreprocess(mean=card.mean, std=card.std)
    samples, _ = load_samples(loose, MNIST_SPEC, preprocess=pre)
    assert not samples.labelled and len(samples) == 40  # notes.txt is not an image
    pixels = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(loose.glob("*.png"))])
    expected = card.normalize(pixels[:, None].astype(np.float32) / 255.0)
    np.testing.assert_allclose(samples.inputs["image"], expected, rtol=0, atol=1e-5)


def test_images_resized_and_laid_out_for_the_model(mnist_folders: tuple[Path, Path, np.ndarray]) -> None:
    _, loose, _ = mnist_folders
    samples, _ = load_samples(loose, NHWC_SPEC, limit=5)
    assert samples.inputs["x"].shape == (5, 32, 32, 3)  # grey PNGs → RGB, 28 → 32, NHWC
    samples, _ = load_samples(loose, RGB_SPEC, limit=3)
    assert samples.inputs["input"].shape == (3, 3, 32, 32)


def test_dynamic_image_size_needs_a_size(mnist_folders: tuple[Path, Path, np.ndarray]) -> None:
    _, loose, _ = mnist_folders
    spec = [TensorSpec("x", "float32", ("N", 3, "H", "W"))]
    with pytest.raises(InvalidInputError, match="dynamic height/width") as exc:
        load_samples(loose, spec)
    assert "--image-size H,W" in str(exc.value)
    samples, _ = load_samples(loose, spec, preprocess=ImagePreprocess(size=(20, 24)), limit=4)
    assert samples.inputs["x"].shape == (4, 3, 20, 24)


def test_mnist_dataset_source_uses_the_card_normalisation() -> None:
    card = default_model_metadata()
    samples, _ = load_samples("mnist:test", MNIST_SPEC, role="evaluation", limit=10_000)
    data = load_mnist("test")
    np.testing.assert_allclose(samples.inputs["image"], card.normalize(data.images), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(samples.labels, data.labels)
    calib, _ = load_samples("mnist", MNIST_SPEC, limit=300, seed=3)
    assert calib.name == "mnist:train" and len(calib) == 300  # calibration reads the training split by default
    again, _ = load_samples("mnist", MNIST_SPEC, limit=300, seed=3)
    np.testing.assert_array_equal(calib.inputs["image"], again.inputs["image"])  # a seeded draw
    assert len(set(calib.labels.tolist())) == 10  # a random draw covers every class


def test_fashion_mnist_source() -> None:
    samples, _ = load_samples("fashion-mnist:test", MNIST_SPEC, role="evaluation", limit=50)
    assert len(samples) == 50 and samples.labelled and samples.classes[0] == "T-shirt/top"


def test_npy_and_npz_sources(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((12, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "xy.npz", x=x, labels=np.arange(12) % 4)
    spec = [TensorSpec("x", "float32", ("batch", 8))]
    samples, _ = load_samples(tmp_path / "x.npy", spec)
    np.testing.assert_array_equal(samples.inputs["x"], x)
    labelled, _ = load_samples(tmp_path / "xy.npz", spec, role="evaluation")
    assert labelled.labels.tolist() == (np.arange(12) % 4).tolist()


def test_multi_input_npz(tmp_path: Path) -> None:
    specs = [TensorSpec("a", "float32", (2, 3)), TensorSpec("b", "float32", (2, 3))]
    np.savez(tmp_path / "ab.npz", a=np.ones((4, 3), np.float32), b=np.zeros((4, 3), np.float32))
    samples, _ = load_samples(tmp_path / "ab.npz", specs)
    assert set(samples.inputs) == {"a", "b"} and len(samples) == 4
    np.savez(tmp_path / "a_only.npz", a=np.ones((4, 3), np.float32))
    with pytest.raises(InvalidInputError, match="missing input"):
        load_samples(tmp_path / "a_only.npz", specs)
    with pytest.raises(InvalidInputError, match="single-input"):
        np.save(tmp_path / "a.npy", np.ones((4, 3), np.float32))
        load_samples(tmp_path / "a.npy", specs)


def test_callable_source_yields_dicts_arrays_and_labelled_pairs() -> None:
    def feeds() -> list[dict[str, np.ndarray]]:
        return [{"image": np.zeros((1, 28, 28), np.float32)} for _ in range(3)]  # one sample, no batch axis

    samples, _ = load_samples(feeds, MNIST_SPEC)
    assert samples.inputs["image"].shape == (3, 1, 28, 28) and samples.name == "feeds"

    def pairs() -> list[tuple[np.ndarray, int]]:
        return [(np.full((2, 1, 28, 28), i, np.float32), i) for i in range(3)]  # batches of 2, one label each

    with pytest.raises(InvalidInputError, match="labels for"):
        load_samples(pairs, MNIST_SPEC)

    def labelled() -> list[tuple[np.ndarray, np.ndarray]]:
        return [(np.full((2, 1, 28, 28), i, np.float32), np.array([i, i])) for i in range(3)]

    samples, _ = load_samples(labelled, MNIST_SPEC, role="evaluation")
    assert samples.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_a_sample_set_and_arrays_are_sources() -> None:
    data = SampleSet("digits", {"image": np.zeros((4, 1, 28, 28), np.float32)}, np.arange(4), classes=("a", "b"))
    samples, _ = load_samples(data, MNIST_SPEC, role="evaluation")
    assert samples is data  # taken as it is, then checked against the model
    with pytest.raises(InvalidInputError, match="holds float64"):
        load_samples(SampleSet("f64", {"image": np.zeros((2, 1, 28, 28))}), MNIST_SPEC)
    arrays, _ = load_samples({"image": np.ones((3, 1, 28, 28), np.float32)}, MNIST_SPEC, limit=2)
    assert arrays.name == "arrays" and len(arrays) == 2 and not arrays.labelled
    with pytest.raises(InvalidInputError, match="unsupported evaluation source of type int"):
        load_samples(42, MNIST_SPEC, role="evaluation")


def test_random_calibration_warns_and_random_evaluation_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        samples, warnings = load_samples("random", MNIST_SPEC, limit=20)
    assert samples.synthetic and len(samples) == 20 and "random data" in warnings[0]
    assert "random data" in caplog.text
    with pytest.raises(InvalidInputError, match="cannot measure accuracy"):
        load_samples("random", MNIST_SPEC, role="evaluation")
    fixed, _ = load_samples("random", RGB_SPEC, limit=6)  # a fixed-batch model still gets 6 samples
    assert fixed.inputs["input"].shape == (6, 3, 32, 32)


def test_more_samples_than_the_data_holds_warns(mnist_folders: tuple[Path, Path, np.ndarray]) -> None:
    _, loose, _ = mnist_folders
    samples, warnings = load_samples(loose, MNIST_SPEC, limit=300)
    assert len(samples) == 40
    assert warnings == ["calibration asked for 300 samples but images:" + str(loose) + " holds only 40: using 40"]


def test_wrong_layout_shape_and_dtype_are_one_clear_error(tmp_path: Path) -> None:
    np.save(tmp_path / "nhwc.npy", np.zeros((4, 28, 28, 1), np.float32))
    with pytest.raises(InvalidInputError, match=r"looks NHWC and the model takes NCHW: transpose it \(0, 3, 1, 2\)"):
        load_samples(tmp_path / "nhwc.npy", MNIST_SPEC)
    np.save(tmp_path / "f64.npy", np.zeros((4, 1, 28, 28), np.float64))
    with pytest.raises(InvalidInputError, match="holds float64, the model expects float32"):
        load_samples(tmp_path / "f64.npy", MNIST_SPEC)
    np.save(tmp_path / "small.npy", np.zeros((4, 1, 14, 14), np.float32))
    with pytest.raises(InvalidInputError, match=r"samples have shape \[1, 14, 14\], the model expects \[1, 28, 28\]"):
        load_samples(tmp_path / "small.npy", MNIST_SPEC)


def test_empty_sources_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no images in the folder"):
        load_samples(tmp_path / "empty", MNIST_SPEC)
    np.save(tmp_path / "none.npy", np.zeros((0, 1, 28, 28), np.float32))
    with pytest.raises(InvalidInputError, match="is empty"):
        load_samples(tmp_path / "none.npy", MNIST_SPEC)
    with pytest.raises(InvalidInputError, match="yielded no samples"):
        load_samples(lambda: [], MNIST_SPEC)


def test_unknown_sources_and_splits(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="calibration source not found"):
        load_samples(tmp_path / "missing", MNIST_SPEC)
    with pytest.raises(InvalidInputError, match="mnist has no split 'bogus'"):
        load_samples("mnist:bogus", MNIST_SPEC)
    (tmp_path / "data.csv").write_text("1,2,3\n")
    with pytest.raises(InvalidInputError, match="cannot read calibration data from this file"):
        load_samples(tmp_path / "data.csv", MNIST_SPEC)
    with pytest.raises(InvalidInputError, match="--samples must be ≥ 1"):
        load_samples("mnist", MNIST_SPEC, limit=0)


def test_mnist_on_a_three_channel_model_is_a_mismatch() -> None:
    with pytest.raises(InvalidInputError, match="1-channel 28×28 images, the model's input 'input' has 3 channels"):
        load_samples("mnist", RGB_SPEC)


def test_images_need_an_image_input() -> None:
    specs = [TensorSpec("x", "float32", ("batch", 8))]
    with pytest.raises(InvalidInputError, match="not N×C×H×W or N×H×W×C"):
        image_input(specs, "the folder")
    with pytest.raises(InvalidInputError, match="gives images, but the model has 2 inputs"):
        image_input([*specs, *specs], "the folder")


def test_check_samples_names_unknown_inputs() -> None:
    samples = SampleSet("s", {"other": np.zeros((2, 8), np.float32)})
    with pytest.raises(InvalidInputError, match=r"missing input.*x; unknown input.*other"):
        check_samples(samples, [TensorSpec("x", "float32", ("batch", 8))])
