"""Speech made by espeak-ng for the transcription tests (the texts, the generators) and checks of it.

The conftest builds the session's files with these helpers; the tests here check that the generated media
is what the other tests assume (durations, streams).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

#: What the English clip says (espeak-ng voice "en").
EN_TEXT = (
    "Hello and welcome. Today we talk about the weather in the city. "
    "It will be warm and sunny in the morning, with some rain in the evening."
)
#: What the German clip says (espeak-ng voice "de").
DE_TEXT = (
    "Guten Morgen und herzlich willkommen. Heute sprechen wir über das Wetter in der Stadt. "
    "Am Morgen wird es warm und sonnig, am Abend kommt etwas Regen."
)
#: What the long English clip (≈ 38 s, longer than one 30 s Whisper window) says.
LONG_TEXT = (
    "Good morning, everyone, and thank you for coming to this talk. "
    "Today I want to show you how a computer can turn speech into text. "
    "First, the sound is recorded by a microphone and stored as a file. "
    "Then the program cuts the sound into short pieces of thirty seconds. "
    "Each piece is changed into a picture of frequencies over time. "
    "A large neural network reads this picture and writes the words it hears. "
    "The same network can also tell which language is being spoken. "
    "When all pieces are done, the words are joined into one long text. "
    "The text can be saved as subtitles with the time of every sentence. "
    "Thank you very much for listening, and have a nice day."
)


def run_tool(*cmd: str) -> None:
    """Run a system tool (espeak-ng, ffmpeg, sox), failing loudly when it is missing."""
    tool = shutil.which(cmd[0])
    if tool is None:
        raise RuntimeError(f"{cmd[0]} is not installed (scripts/setup_env.sh installs espeak-ng, ffmpeg, sox)")
    subprocess.run([tool, *cmd[1:]], check=True, capture_output=True)


def espeak(voice: str, text: str, out: Path) -> Path:
    """Speak ``text`` into a wav file."""
    run_tool("espeak-ng", "-v", voice, "-w", str(out), text)
    return out


def mux_mp4(audio: Path, out: Path) -> Path:
    """An .mp4 with an H.264 video track and the audio as AAC (like a recorded talk)."""
    run_tool(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "color=c=navy:s=64x48:r=10", "-i", str(audio),
        "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out),
    )  # fmt: skip
    return out


@dataclass(frozen=True)
class SpeechFiles:
    """Generated inputs: speech with known text, and one file per way an input can be bad."""

    en_wav: Path
    de_wav: Path
    en_mp4: Path
    long_wav: Path
    silent_wav: Path
    empty_wav: Path
    no_audio_mp4: Path
    corrupt_mp3: Path
    missing: Path


def test_generated_speech_has_the_expected_shape(speech: SpeechFiles) -> None:
    with av.open(str(speech.en_mp4)) as container:
        kinds = sorted(s.type for s in container.streams)
    assert kinds == ["audio", "video"]
    with av.open(str(speech.long_wav)) as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        assert float(stream.duration * stream.time_base) > 30.0  # longer than one Whisper window
    with av.open(str(speech.no_audio_mp4)) as container:
        assert not container.streams.audio and container.streams.video
    assert not speech.missing.exists()
    assert speech.corrupt_mp3.stat().st_size > 0


def test_espeak_speaks_the_given_text_for_longer_texts(tmp_path: Path) -> None:
    short = espeak("en", "Hello.", tmp_path / "short.wav")
    longer = espeak("en", "Hello. " * 8, tmp_path / "long.wav")
    assert longer.stat().st_size > 3 * short.stat().st_size
    with pytest.raises(subprocess.CalledProcessError):
        run_tool("ffmpeg", "-hide_banner", "-i", str(tmp_path / "nope.wav"), str(tmp_path / "x.wav"))
