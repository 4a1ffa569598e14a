"""The corpus fixture: offline, test subset only, and a failure (not a skip) that says what to run."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest


def test_resolves_a_subset_model_offline(corpus_model: Callable[[str], Path]) -> None:
    path = corpus_model("mtcnn_pnet")
    assert path.is_file() and path.name == "pnet.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("07a69013")


def test_missing_model_fails_with_the_setup_command(
    corpus_model: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELPORT_CORPUS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(pytest.fail.Exception) as info:
        corpus_model("mtcnn_pnet")
    message = str(info.value)
    assert "make setup" in message and "provision.py --subset tests" in message
    assert str(tmp_path / "empty-cache") in message
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").rglob("*.onnx"))


def test_only_the_test_subset_is_served(corpus_model: Callable[[str], Path]) -> None:
    with pytest.raises(pytest.fail.Exception, match="not in the 'tests' subset"):
        corpus_model("rapidocr_rec_v4")
