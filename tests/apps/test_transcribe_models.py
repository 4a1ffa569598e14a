"""Finding, converting and loading Whisper models: every way a model argument can be wrong, and the
Transformers-checkpoint conversion on a tiny randomly initialised Whisper."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_transcribe_speech import EN_TEXT, SpeechFiles

from modelport.apps.transcribe import DecodeOptions, ModelOptions, Transcriber
from modelport.apps.transcribe.bench import word_error_rate
from modelport.apps.transcribe.models import (
    ModelSource,
    convert_transformers_checkpoint,
    resolve_compute_type,
    resolve_device,
    resolve_model,
)
from modelport.apps.transcribe.results import ComputeType, Device
from modelport.errors import InvalidInputError, ModelLoadError, RuntimeUnavailable


def test_local_ctranslate2_directory_is_used_as_is(tiny_en_dir: Path) -> None:
    resolved = resolve_model(tiny_en_dir)
    assert resolved.path == tiny_en_dir and resolved.source is ModelSource.CTRANSLATE2_DIR


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInputError, match="unknown Whisper model 'tiny-xl'") as info:
        resolve_model("tiny-xl")
    assert "large-v3" in str(info.value)


def test_missing_model_path_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model directory not found"):
        resolve_model(tmp_path / "nope" / "model")


def test_hub_id_not_cached_fails_clearly_when_offline() -> None:
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        resolve_model("modelport-tests/no-such-whisper", offline=True)


def test_model_name_offline_fails_with_one_line_and_exit_2(tmp_path: Path, speech: SpeechFiles) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, "-m", "modelport", "transcribe", str(speech.en_wav), "--model", "tiny.en"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelport: error: ")
    assert "'tiny.en' is not in the local Hugging Face cache" in lines[0]
    assert "--model PATH" in lines[0] and "Traceback" not in proc.stderr


def test_directory_that_is_not_a_whisper_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(ModelLoadError, match="not a CTranslate2 Whisper model directory"):
        resolve_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="model_type 'bert'"):
        resolve_model(tmp_path)


def test_a_file_is_not_a_model_directory(tiny_en_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="expected a model directory"):
        resolve_model(tiny_en_dir / "model.bin")


def test_truncated_model_bin_fails_to_load_clearly(tiny_en_dir: Path, tmp_path: Path) -> None:
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(tiny_en_dir / name, tmp_path / name)
    with (tiny_en_dir / "model.bin").open("rb") as f:
        (tmp_path / "model.bin").write_bytes(f.read(4096))
    with pytest.raises(ModelLoadError, match="cannot load the CTranslate2 Whisper model"):
        Transcriber(ModelOptions(model=tmp_path, threads=1))


def test_device_and_compute_type_defaults() -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        assert resolve_device(Device.AUTO) == "cpu"
        with pytest.raises(RuntimeUnavailable, match="no CUDA device"):
            resolve_device(Device.CUDA)
    else:
        assert resolve_device(Device.AUTO) == "cuda"
    assert resolve_compute_type(ComputeType.AUTO, "cpu") == "int8"
    assert resolve_compute_type(ComputeType.FLOAT32, "cpu") == "float32"
    unsupported = {"float16", "int8_float16"} - set(ctranslate2.get_supported_compute_types("cpu"))
    for name in unsupported:
        with pytest.raises(InvalidInputError, match=f"{name} is not supported on cpu"):
            resolve_compute_type(ComputeType(name), "cpu")


def test_float32_and_int8_give_close_transcripts(tiny_en_dir: Path, tiny_en: Transcriber, speech: SpeechFiles) -> None:
    with Transcriber(ModelOptions(model=tiny_en_dir, compute_type=ComputeType.FLOAT32, threads=2)) as fp32:
        result = fp32.transcribe_file(speech.en_wav)
    assert result.compute_type == "float32"
    assert word_error_rate(EN_TEXT, result.text) < 0.15
    assert word_error_rate(tiny_en.transcribe_file(speech.en_wav).text, result.text) < 0.15


def _tiny_transformers_whisper(base_dir: Path, out: Path) -> Path:
    """A randomly initialised 2-layer Whisper with the real multilingual tokenizer, saved with save_pretrained."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperTokenizerFast

    config = WhisperConfig(
        vocab_size=51865,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        num_mel_bins=80,
    )
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(out)
    WhisperTokenizerFast(tokenizer_file=str(base_dir / "tokenizer.json")).save_pretrained(out)
    return out


@pytest.mark.slow
def test_transformers_checkpoint_is_converted_once_and_cached(
    base_dir: Path, tmp_path: Path, speech: SpeechFiles
) -> None:
    checkpoint = _tiny_transformers_whisper(base_dir, tmp_path / "hf-whisper")
    cache = tmp_path / "cache"
    options = ModelOptions(model=checkpoint, cache_dir=cache, threads=1)
    with Transcriber(options) as transcriber:
        assert transcriber.resolved.source is ModelSource.TRANSFORMERS_DIR
        converted = transcriber.resolved.path
        assert converted.parent == cache
        assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in converted.iterdir()}
        result = transcriber.transcribe_file(speech.en_wav, DecodeOptions(language="en", beam_size=1))
        assert result.language == "en" and result.duration > 5  # random weights: the text is noise
        # The conversion recorded no language tokens, so detection is refused with a clear message.
        with pytest.raises(InvalidInputError, match="cannot detect the language"):
            transcriber.transcribe_file(speech.en_wav)
    stamp = (converted / "model.bin").stat().st_mtime_ns
    assert convert_transformers_checkpoint(checkpoint, cache) == converted  # cache hit, no new conversion
    assert (converted / "model.bin").stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [converted.name]  # no staging directory left behind


def test_broken_transformers_checkpoint_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper", "d_model": 64}))
    with pytest.raises(ModelLoadError, match="cannot convert the Transformers checkpoint"):
        resolve_model(tmp_path, cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/model.bin"))


@pytest.mark.gpu
def test_cuda_float16_transcription(tiny_en_dir: Path, speech: SpeechFiles) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        pytest.skip("CTranslate2 sees no CUDA device")
    with Transcriber(ModelOptions(model=tiny_en_dir, device=Device.AUTO)) as transcriber:
        assert transcriber.device == "cuda" and transcriber.compute_type == "float16"
        result = transcriber.transcribe_file(speech.en_mp4)
        batched = transcriber.transcribe_file(speech.long_wav, DecodeOptions(batch_size=8))
    assert word_error_rate(EN_TEXT, result.text) < 0.15
    assert batched.duration > 30 and batched.segments
