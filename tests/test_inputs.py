"""Inputs: shape parsing and resolution, random feeds, feed files, image preprocessing."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from modelport.errors import InvalidInputError, ModelLoadError
from modelport.inputs import (
    ImagePreprocess,
    Layout,
    TensorSpec,
    check_feeds,
    default_batch,
    image_to_tensor,
    load_feeds,
    load_image,
    load_image_feeds,
    parse_input_shapes,
    random_feeds,
    resolve_shapes,
    verification_shapes,
    with_shapes,
)

IMAGE = TensorSpec("image", "float32", ("N", 3, 224, 224))
TOKENS = TensorSpec("tokens", "int64", ("batch", "seq"))
MASK = TensorSpec("mask", "bool", (1, 4))
X = TensorSpec("x", "float32", ("batch", 8))

# --- parse_input_shapes ------------------------------------------------------------------------------


def test_parse_input_shapes() -> None:
    assert parse_input_shapes(["image:1,3,224,224"]) == {"image": (1, 3, 224, 224)}
    assert parse_input_shapes(["image:1x3x32x32", "mask:2,4"]) == {"image": (1, 3, 32, 32), "mask": (2, 4)}
    assert parse_input_shapes(["a:1,2;b:3"]) == {"a": (1, 2), "b": (3,)}
    # names may contain colons (the last one separates the dims)
    assert parse_input_shapes(["encoder:input:4"]) == {"encoder:input": (4,)}
    assert parse_input_shapes([]) == {}


@pytest.mark.parametrize("text", ["image", "image:", "image:1,,3", "image=1,3", ":1,3", "image:1,a"])
def test_parse_input_shapes_bad_syntax(text: str) -> None:
    with pytest.raises(InvalidInputError, match="cannot parse input shape") as info:
        parse_input_shapes([text])
    assert "NAME:D1,D2" in str(info.value)


@pytest.mark.parametrize("text", ["image:1,0,3", "image:-1,3"])
def test_parse_input_shapes_non_positive(text: str) -> None:
    with pytest.raises(InvalidInputError, match="non-positive"):
        parse_input_shapes([text])


# --- resolve_shapes ----------------------------------------------------------------------------------


def test_resolve_shapes() -> None:
    assert resolve_shapes([MASK]) == {"mask": (1, 4)}
    assert resolve_shapes([IMAGE], batch=2) == {"image": (2, 3, 224, 224)}
    assert resolve_shapes([IMAGE], {"image": (1, 3, 224, 224)}) == {"image": (1, 3, 224, 224)}
    assert resolve_shapes([TOKENS, MASK], {"tokens": (1, 16)}) == {"tokens": (1, 16), "mask": (1, 4)}


def test_resolve_shapes_batch_applies_to_overridden_input() -> None:
    # overrides give the non-batch dims; the batch size sets dim 0 (bench measures several batches)
    assert resolve_shapes([TOKENS], {"tokens": (1, 16)}, batch=4) == {"tokens": (4, 16)}


def test_resolve_shapes_matches_tensorflow_tensor_names() -> None:
    """``image:0`` (a GraphDef's tensor name) names the input ``image`` of the converted model, and back."""
    assert resolve_shapes([IMAGE], {"image:0": (1, 3, 224, 224)}) == {"image": (1, 3, 224, 224)}
    tf_image = TensorSpec("image:0", "float32", ("N", 3, 224, 224))
    assert resolve_shapes([tf_image], {"image": (2, 3, 224, 224)}) == {"image:0": (2, 3, 224, 224)}
    with pytest.raises(InvalidInputError, match="unknown input"):
        resolve_shapes([IMAGE], {"image:1": (1, 3, 32, 32)})  # another output index is another tensor
    assert with_shapes([IMAGE], {"image:0": (1, 3, 224, 224)})[0].shape == ("N", 3, 224, 224)
    assert verification_shapes([IMAGE], {"image:0": (2, 3, 224, 224)}) == [{"image": (2, 3, 224, 224)}]


def test_resolve_shapes_unknown_input_lists_valid_names() -> None:
    with pytest.raises(InvalidInputError, match="unknown input") as info:
        resolve_shapes([IMAGE, MASK], {"imag": (1, 3, 224, 224)})
    message = str(info.value)
    assert "imag" in message
    assert "image, mask" in message


def test_resolve_shapes_wrong_rank() -> None:
    with pytest.raises(InvalidInputError, match="rank 3") as info:
        resolve_shapes([IMAGE], {"image": (1, 224, 224)})
    assert "rank 4" in str(info.value)


def test_resolve_shapes_override_conflicts_with_fixed_dim() -> None:
    with pytest.raises(InvalidInputError, match="sets dim 1 to 1, but the model fixes it to 3"):
        resolve_shapes([IMAGE], {"image": (1, 1, 224, 224)})


def test_resolve_shapes_dynamic_dim_without_value() -> None:
    with pytest.raises(InvalidInputError) as info:
        resolve_shapes([TOKENS], batch=1)
    message = str(info.value)
    assert "'tokens'" in message
    assert "dynamic dimension 1 (seq)" in message
    assert "--input-shape tokens:N,N" in message


def test_resolve_shapes_dynamic_batch_without_batch() -> None:
    with pytest.raises(InvalidInputError, match="dynamic dimension 0") as info:
        resolve_shapes([IMAGE])
    assert "--input-shape image:N,3,224,224" in str(info.value)


def test_resolve_shapes_unknown_rank() -> None:
    with pytest.raises(InvalidInputError, match="unknown rank"):
        resolve_shapes([TensorSpec("blob", "float32", None)], batch=1)
    assert resolve_shapes([TensorSpec("blob", "float32", None)], {"blob": (2, 2)}) == {"blob": (2, 2)}


def test_resolve_shapes_fixed_batch_vs_requested() -> None:
    assert resolve_shapes([MASK], batch=1) == {"mask": (1, 4)}
    with pytest.raises(InvalidInputError, match="fixed batch of 1") as info:
        resolve_shapes([MASK], batch=4)
    assert "cannot run batch 4" in str(info.value)
    with pytest.raises(InvalidInputError, match="fixed batch of 1"):
        resolve_shapes([MASK], {"mask": (1, 4)}, batch=4)


def test_default_batch() -> None:
    assert default_batch([X]) == 1
    assert default_batch([MASK]) == 1
    assert default_batch([TensorSpec("a", "float32", (4, 3)), X]) == 4
    assert default_batch([TensorSpec("s", "float32", ()), TensorSpec("u", "float32", None)]) == 1


# --- random feeds ------------------------------------------------------------------------------------


def test_random_feeds_deterministic_and_typed() -> None:
    specs = [X, TOKENS, TensorSpec("mask", "bool", ("batch", 4)), TensorSpec("h", "float16", (2, 3))]
    shapes = {"tokens": (2, 5)}
    a = random_feeds(specs, shapes, seed=7, batch=2)
    b = random_feeds(specs, shapes, seed=7, batch=2)
    c = random_feeds(specs, shapes, seed=8, batch=2)
    assert {k: (v.shape, v.dtype) for k, v in a.items()} == {
        "x": ((2, 8), np.dtype("float32")),
        "tokens": ((2, 5), np.dtype("int64")),
        "mask": ((2, 4), np.dtype("bool")),
        "h": ((2, 3), np.dtype("float16")),
    }
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["x"], c["x"])
    assert a["x"].min() >= 0.0 and a["x"].max() < 1.0
    assert a["tokens"].min() >= 0 and a["tokens"].max() < 10


def test_random_feeds_bool_and_int_vary() -> None:
    feeds = random_feeds([TensorSpec("m", "bool", (64,)), TensorSpec("i", "int32", (64,))], seed=0)
    assert 0 < feeds["m"].sum() < 64
    assert set(np.unique(feeds["i"]).tolist()) == {0, 1}  # both values: valid indices and masks for any model
    assert feeds["i"].dtype == np.int32


def test_random_feeds_unsupported_dtype() -> None:
    with pytest.raises(InvalidInputError, match="cannot make random data for input 's'"):
        random_feeds([TensorSpec("s", "object", (2,))])


# --- feed files --------------------------------------------------------------------------------------


def test_load_feeds_npz(tmp_path: Path) -> None:
    x = np.arange(16, dtype=np.float32).reshape(2, 8)
    m = np.ones((1, 4), dtype=bool)
    p = tmp_path / "feeds.npz"
    np.savez(p, x=x, mask=m)
    feeds = load_feeds(p, [X, MASK])
    np.testing.assert_array_equal(feeds["x"], x)
    np.testing.assert_array_equal(feeds["mask"], m)


def test_load_feeds_npy(tmp_path: Path) -> None:
    x = np.ones((3, 8), dtype=np.float32)
    p = tmp_path / "x.npy"
    np.save(p, x)
    np.testing.assert_array_equal(load_feeds(p, [X])["x"], x)


def test_load_feeds_missing_key(tmp_path: Path) -> None:
    p = tmp_path / "feeds.npz"
    np.savez(p, x=np.ones((1, 8), np.float32))
    with pytest.raises(InvalidInputError, match="missing input\\(s\\) mask"):
        load_feeds(p, [X, MASK])


def test_load_feeds_extra_key(tmp_path: Path) -> None:
    p = tmp_path / "feeds.npz"
    np.savez(p, x=np.ones((1, 8), np.float32), y=np.ones(1))
    with pytest.raises(InvalidInputError, match="unknown input\\(s\\) y"):
        load_feeds(p, [X])


def test_load_feeds_wrong_dtype(tmp_path: Path) -> None:
    p = tmp_path / "feeds.npz"
    np.savez(p, x=np.ones((1, 8), np.float64))
    with pytest.raises(InvalidInputError, match="'x' has dtype float64, the model expects float32"):
        load_feeds(p, [X])


@pytest.mark.parametrize("shape", [(1, 7), (8,), (1, 8, 1)])
def test_load_feeds_wrong_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    p = tmp_path / "x.npy"
    np.save(p, np.ones(shape, np.float32))
    with pytest.raises(InvalidInputError, match=r"'x' has shape .*, the model expects \[batch, 8\]"):
        load_feeds(p, [X])


def test_load_feeds_npy_for_multi_input(tmp_path: Path) -> None:
    p = tmp_path / "x.npy"
    np.save(p, np.ones((1, 8), np.float32))
    with pytest.raises(InvalidInputError, match="single-input models; this one has 2 inputs"):
        load_feeds(p, [X, MASK])


def test_load_feeds_refuses_pickles(tmp_path: Path) -> None:
    obj = np.empty(2, dtype=object)
    obj[:] = [{"a": 1}, None]
    npy = tmp_path / "x.npy"
    np.save(npy, obj, allow_pickle=True)
    with pytest.raises(InvalidInputError, match="cannot read feeds"):
        load_feeds(npy, [X])
    npz = tmp_path / "x.npz"
    np.savez(npz, x=obj)
    with pytest.raises(InvalidInputError, match="cannot read feeds"):
        load_feeds(npz, [X])
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(InvalidInputError, match="cannot read feeds"):
        load_feeds(raw, [X])


def test_load_feeds_missing_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="feed file not found"):
        load_feeds(tmp_path / "none.npz", [X])
    p = tmp_path / "feeds.txt"
    p.write_text("1 2 3")
    with pytest.raises(InvalidInputError, match=r"\.npy or \.npz"):
        load_feeds(p, [X])


def test_check_feeds_accepts_any_dynamic_dim() -> None:
    check_feeds({"x": np.zeros((5, 8), np.float32)}, [X])
    with pytest.raises(InvalidInputError, match="has shape"):
        check_feeds({"x": np.zeros((5, 9), np.float32)}, [X])


# --- images ------------------------------------------------------------------------------------------


def _write_png(path: Path, bgr: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), bgr)
    return path


def test_load_image_rgb_nchw_mean_std(tmp_path: Path) -> None:
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R
    bgr[1, 2] = (255, 0, 51)
    png = _write_png(tmp_path / "img.png", bgr)
    pre = ImagePreprocess(mean=(0.5, 0.25, 0.125), std=(0.5, 0.25, 0.125))
    t = load_image(png, pre)
    assert t.shape == (1, 3, 2, 3) and t.dtype == np.float32
    # channel 0 is red: (30/255 - 0.5) / 0.5; channel 2 is blue: (10/255 - 0.125) / 0.125
    np.testing.assert_allclose(t[0, 0, 0, 0], (30 / 255 - 0.5) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(t[0, 1, 0, 0], (20 / 255 - 0.25) / 0.25, rtol=1e-6)
    np.testing.assert_allclose(t[0, 2, 0, 0], (10 / 255 - 0.125) / 0.125, rtol=1e-6)
    np.testing.assert_allclose(t[0, :, 1, 2], [(51 / 255 - 0.5) / 0.5, -1.0, (1.0 - 0.125) / 0.125], rtol=1e-6)


def test_load_image_bgr_nhwc_scale(tmp_path: Path) -> None:
    bgr = np.array([[[0, 128, 255], [255, 255, 255]]], np.uint8)  # 1×2 pixels
    png = _write_png(tmp_path / "img.png", bgr)
    pre = ImagePreprocess(layout=Layout.NHWC, bgr=True, scale=1.0, mean=(127.5,), std=(127.5,))
    t = load_image(png, pre)
    assert t.shape == (1, 1, 2, 3)
    np.testing.assert_allclose(t[0, 0, 0], [-1.0, 0.5 / 127.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(t[0, 0, 1], [1.0, 1.0, 1.0], rtol=1e-6)


def test_load_image_grayscale_resize(tmp_path: Path) -> None:
    gray = np.zeros((4, 4), np.uint8)
    gray[:2, :2], gray[:2, 2:], gray[2:, :2], gray[2:, 2:] = 0, 100, 200, 250
    png = _write_png(tmp_path / "g.png", gray)
    pre = ImagePreprocess(size=(2, 2), grayscale=True, scale=1.0, dtype="float16")
    t = load_image(png, pre)
    assert t.shape == (1, 1, 2, 2) and t.dtype == np.float16
    # INTER_AREA averages each 2×2 block, and every block is constant
    np.testing.assert_array_equal(t[0, 0], [[0, 100], [200, 250]])


def test_image_to_tensor_resize_non_square() -> None:
    img = np.full((10, 20, 3), 60, np.uint8)
    t = image_to_tensor(img, ImagePreprocess(size=(5, 4), scale=0.5))
    assert t.shape == (1, 3, 5, 4)
    np.testing.assert_allclose(t, 30.0)


def test_load_image_feeds_batch(tmp_path: Path) -> None:
    a = _write_png(tmp_path / "a.png", np.full((4, 4, 3), 255, np.uint8))
    b = _write_png(tmp_path / "b.png", np.zeros((8, 8, 3), np.uint8))
    spec = TensorSpec("image", "float32", ("N", 3, 4, 4))
    feeds = load_image_feeds([a, b], spec, ImagePreprocess(size=(4, 4)))
    assert feeds["image"].shape == (2, 3, 4, 4)
    np.testing.assert_allclose(feeds["image"][0], 1.0)
    np.testing.assert_allclose(feeds["image"][1], 0.0)
    with pytest.raises(InvalidInputError, match="has shape"):
        load_image_feeds([a], spec, ImagePreprocess(size=(5, 5)))


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="image not found"):
        load_image(tmp_path / "none.png", ImagePreprocess())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InvalidInputError, match="cannot decode image"):
        load_image(bad, ImagePreprocess())
    with pytest.raises(InvalidInputError, match="no images"):
        load_image_feeds([], IMAGE, ImagePreprocess())


def test_verification_shapes_pick_sizes_for_free_dims_by_kind() -> None:
    from modelport.inputs import FREE_DIM_SIZES, verification_shapes

    image = TensorSpec("image", "float32", ("N", 3, "height", "width"))
    sets = verification_shapes([image])
    spatial, batch = FREE_DIM_SIZES["spatial"], FREE_DIM_SIZES["batch"]
    assert sets == [{"image": (batch[0], 3, spatial[0], spatial[0])}, {"image": (batch[1], 3, spatial[1], spatial[1])}]
    # NHWC, unnamed dims (exporters' -1 and None), and a fixed dim kept as it is
    nhwc = TensorSpec("x", "float32", (-1, None, 48, 3))
    assert verification_shapes([nhwc]) == [{"x": (1, 64, 48, 3)}, {"x": (2, 96, 48, 3)}]
    # a symbolic dim has one size across inputs; rank-2 dim 1 is a sequence
    ids, mask = TensorSpec("ids", "int64", ("b", "seq")), TensorSpec("mask", "int64", ("b", "seq"))
    first, second = verification_shapes([ids, mask])
    assert first["ids"] == first["mask"] == (1, 16) and second["ids"] == second["mask"] == (2, 24)


def test_verification_shapes_given_ones_narrow_and_static_models_get_one_set() -> None:
    from modelport.inputs import verification_shapes

    a, b = TensorSpec("a", "float32", ("N", 8)), TensorSpec("b", "float32", ("N", "T", 4))
    sets = verification_shapes([a, b], {"b": (3, 5, 4)})
    assert [s["b"] for s in sets] == [(3, 5, 4), (3, 5, 4)]  # exactly as given, in both sets
    assert [s["a"] for s in sets] == [(1, 8), (2, 8)]
    assert verification_shapes([TensorSpec("x", "float32", (1, 8))]) == [{"x": (1, 8)}]
    assert verification_shapes([a], batch=4) == [{"a": (4, 8)}]  # the only free dim is the batch, which is given
    with pytest.raises(InvalidInputError, match="unknown rank"):
        verification_shapes([TensorSpec("u", "float32", None)])
    with pytest.raises(InvalidInputError, match="names unknown input"):
        verification_shapes([a], {"nope": (1, 8)})


def test_search_shapes_walks_the_ladder_until_the_model_runs() -> None:
    from modelport.errors import InferenceError
    from modelport.inputs import search_shapes

    audio = TensorSpec("audio", "float32", ("batch", "samples"))
    tried: list[tuple[tuple[int, ...], int]] = []

    def run(shapes: dict[str, tuple[int, ...]], role: int) -> str:
        tried.append((shapes["audio"], role))
        if shapes["audio"][1] < 500:
            raise InferenceError("Pad reflect: post-pad (32) exceeds maximum allowed (15)", path="/m/x.onnx")
        return f"ran {shapes['audio']}"

    found = search_shapes([audio], run)
    # rungs 0-2 refused; rung 3 (2×512) is the first set, rung 4 with the other batch (1×1024) the second
    assert tried == [((1, 16), 0), ((2, 24), 0), ((1, 128), 0), ((2, 512), 0), ((1, 1024), 1)]
    assert found.sets == ({"audio": (2, 512)}, {"audio": (1, 1024)})
    assert found.results == ("ran (2, 512)", "ran (1, 1024)")
    assert [a.error for a in found.refused] == ["Pad reflect: post-pad (32) exceeds maximum allowed (15)"] * 3
    assert found.note() == (
        "source refused audio 1×16: Pad reflect: post-pad (32) exceeds maximum allowed (15); "
        "source refused audio 2×24: Pad reflect: post-pad (32) exceeds maximum allowed (15); "
        "source refused audio 1×128: Pad reflect: post-pad (32) exceeds maximum allowed (15); "
        "verified at audio 2×512 and audio 1×1024"
    )


def test_search_shapes_keeps_given_shapes_and_reports_exhaustion() -> None:
    from modelport.errors import InferenceError, ModelLoadError
    from modelport.inputs import SIZE_LADDER, search_shapes

    image = TensorSpec("image", "float32", ("N", 3, "H", "W"))
    scale = TensorSpec("scale", "float32", ("N", 2))
    seen: list[dict[str, tuple[int, ...]]] = []

    def refuse(shapes: dict[str, tuple[int, ...]], role: int) -> None:
        seen.append(shapes)
        raise ModelLoadError("Node number 3 (CONV_2D) failed to prepare.")

    with pytest.raises(InferenceError, match=r"refused every size tried for its free dimensions \(2\)") as info:
        search_shapes([image, scale], refuse, {"image": (1, 3, 40, 40)}, path="/m/x.tflite")
    assert all(s["image"] == (1, 3, 40, 40) for s in seen)  # --input-shape is never overridden
    # only the other free dims move: scale's batch, 1 or 2 (a rung repeating a tried set is skipped)
    assert [s["scale"] for s in seen] == [(SIZE_LADDER[0]["batch"], 2), (SIZE_LADDER[1]["batch"], 2)]
    text = str(info.value)
    assert "image 1×3×40×40, scale 1×2: Node number 3 (CONV_2D) failed to prepare." in text
    assert "--input-shape scale:N,2" in text and info.value.path is not None
    # no free dim left: one attempt, the model's own error as it raised it
    with pytest.raises(ModelLoadError, match="CONV_2D"):
        search_shapes([image], refuse, {"image": (1, 3, 40, 40)})
    # the first sizes run and a second set is found: nothing to say
    found = search_shapes([scale], lambda shapes, role: role)
    assert found.sets == ({"scale": (1, 2)}, {"scale": (2, 2)}) and found.results == (0, 1) and found.note() == ""


def test_a_generic_name_on_dim_0_is_a_batch() -> None:
    from modelport.inputs import verification_shapes

    paddle = TensorSpec("x", "float32", ("p2o.DynamicDimension.0", 3, "?", "p2o.DynamicDimension.1"))
    assert verification_shapes([paddle]) == [{"x": (1, 3, 64, 64)}, {"x": (2, 3, 96, 96)}]
    frames = TensorSpec("f", "float32", ("frames", 80))  # a sequence named on dim 0 stays a sequence
    assert verification_shapes([frames]) == [{"f": (16, 80)}, {"f": (24, 80)}]


def test_random_feeds_a_scalar_bool_is_an_array() -> None:
    """ONNX Runtime refuses a numpy scalar (np.bool_) for a rank-0 input: feeds are always arrays."""
    feeds = random_feeds([TensorSpec("flag", "bool", ())])
    assert isinstance(feeds["flag"], np.ndarray) and feeds["flag"].shape == () and feeds["flag"].dtype == np.bool_


def test_a_recurrent_states_free_middle_dim_is_the_batch() -> None:
    """silero VAD: input [?, ?] and state [2, ?, 128]: the state's free dim is the batch (ONNX RNN state layout),
    so it gets the input's batch size, not a sequence length."""
    from modelport.inputs import FREE_DIM_SIZES, verification_shapes

    specs = [TensorSpec("input", "float32", (None, None)), TensorSpec("state", "float32", (2, None, 128))]
    first, second = verification_shapes(specs)
    assert first["state"] == (2, first["input"][0], 128) and second["state"] == (2, second["input"][0], 128)
    audio = [TensorSpec("features", "float32", (1, None, 80))]  # not a state: the free dim stays a sequence
    assert verification_shapes(audio)[0]["features"] == (1, FREE_DIM_SIZES["sequence"][0], 80)


def test_search_shapes_unknown_given_input_names_the_models_inputs() -> None:
    from modelport.inputs import search_shapes

    with pytest.raises(InvalidInputError) as err:
        search_shapes([IMAGE, TOKENS], lambda shapes, size: shapes, given={"foo": (1, 3, 8, 8)})
    assert "foo" in str(err.value) and "image, tokens" in str(err.value)
