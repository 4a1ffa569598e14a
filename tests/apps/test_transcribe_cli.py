"""``modelport transcribe`` and ``modelport bench-transcribe``: output shape, files, batches, errors."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from test_transcribe_speech import EN_TEXT, SpeechFiles

from modelport.apps.transcribe import StartInfo
from modelport.apps.transcribe.batch import MANIFEST_NAME, plan_inputs
from modelport.apps.transcribe.bench import TranscribeBenchReport, word_error_rate
from modelport.apps.transcribe.formats import format_timestamp, render_srt, render_tsv, render_vtt
from modelport.apps.transcribe.results import (
    BatchManifest,
    FileStatus,
    OutputFormat,
    Segment,
    TranscriptionResult,
    parse_formats,
)
from modelport.cli.main import main
from modelport.cli.transcribe import ConsoleRenderer
from modelport.errors import InvalidInputError

SEGMENT_LINE = re.compile(r"^\[(\d+\.\d\d)s -> (\d+\.\d\d)s\] (\S.*)$")
SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
SRT_CUE = re.compile(rf"^(\d+)\n{SRT_TIME} --> {SRT_TIME}\n(.+)$")
VTT_CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)\n(.+)$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_prints_what_the_seed_prints(
    tiny_en_dir: Path, speech: SpeechFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["transcribe", str(speech.en_mp4), "--model", str(tiny_en_dir), "--threads", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "Detected language en with probability 1.00"
    segments = [SEGMENT_LINE.match(line) for line in lines[1:-1]]
    assert segments and all(segments), lines
    assert re.fullmatch(r"Elapsed \d+\.\d\d s, audio \d+\.\d\d s, real-time factor \d+\.\d{3}", lines[-1])
    text = " ".join(m.group(3) for m in segments if m)
    assert word_error_rate(EN_TEXT, text) < 0.15
    ends = [float(m.group(2)) for m in segments if m]
    assert ends == sorted(ends)


def _check_srt(text: str) -> list[tuple[float, float]]:
    blocks = text.strip().split("\n\n")
    spans = []
    for i, block in enumerate(blocks, start=1):
        m = SRT_CUE.match(block)
        assert m, block
        assert int(m.group(1)) == i
        start, end = _seconds(*m.group(2, 3, 4, 5)), _seconds(*m.group(6, 7, 8, 9))
        assert start <= end
        spans.append((start, end))
    starts = [s for s, _ in spans]
    assert starts == sorted(starts)
    return spans


def _check_vtt(text: str) -> list[tuple[float, float]]:
    assert text.startswith("WEBVTT\n\n")
    spans = []
    for block in text[len("WEBVTT\n\n") :].strip().split("\n\n"):
        m = VTT_CUE.match(block)
        assert m, block
        start, end = _seconds(*m.group(1, 2, 3, 4)), _seconds(*m.group(5, 6, 7, 8))
        assert start <= end
        spans.append((start, end))
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)
    return spans


def test_writes_every_format_well_formed(
    tiny_en_dir: Path, speech: SpeechFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["transcribe", str(speech.long_wav), "-m", str(tiny_en_dir), "--threads", "2", "-o", str(out)]
    rc = main([*argv, "--format", "txt,srt,vtt,json,tsv", "--word-timestamps", "--batch-size", "4"])
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["long.txt", "long.srt", "long.vtt", "long.json", "long.tsv", MANIFEST_NAME])
    result = TranscriptionResult.from_json((out / "long.json").read_text())
    assert result.batch_size == 4 and result.segments and result.segments[0].words
    srt_spans = _check_srt((out / "long.srt").read_text())
    vtt_spans = _check_vtt((out / "long.vtt").read_text())
    assert srt_spans == vtt_spans and len(srt_spans) == len(result.segments)
    assert srt_spans[-1][1] == pytest.approx(result.segments[-1].end, abs=0.001)
    assert (out / "long.txt").read_text().splitlines() == [s.text for s in result.segments]
    tsv = (out / "long.tsv").read_text().splitlines()
    assert tsv[0] == "start\tend\ttext" and len(tsv) == len(result.segments) + 1
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no staging files
    manifest = BatchManifest.from_json((out / MANIFEST_NAME).read_text())
    assert [f.status for f in manifest.files] == [FileStatus.DONE]


def _batch_dir(speech: SpeechFiles, root: Path) -> Path:
    d = root / "inputs"
    (d / "sub").mkdir(parents=True)
    shutil.copy(speech.en_wav, d / "a_good.wav")
    shutil.copy(speech.en_mp4, d / "sub" / "b_talk.mp4")
    shutil.copy(speech.corrupt_mp3, d / "c_corrupt.mp3")
    shutil.copy(speech.no_audio_mp4, d / "d_no_audio.mp4")
    shutil.copy(speech.silent_wav, d / "e_silent.wav")
    shutil.copy(speech.empty_wav, d / "f_empty.wav")
    (d / "notes.txt").write_text("not media: ignored when the directory is expanded")
    return d


def test_batch_records_failures_goes_on_and_resumes(
    tiny_en_dir: Path, speech: SpeechFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _batch_dir(speech, tmp_path)
    out = tmp_path / "out"
    argv = ["transcribe", str(inputs), str(speech.missing), "-m", str(tiny_en_dir), "-o", str(out), "-f", "srt"]
    rc = main([*argv, "--threads", "2"])
    stdout, stderr = capsys.readouterr()
    assert rc == 2
    manifest = BatchManifest.from_json((out / MANIFEST_NAME).read_text())
    status = {Path(f.source).name: f.status for f in manifest.files}
    assert status == {
        "a_good.wav": FileStatus.DONE,
        "b_talk.mp4": FileStatus.DONE,
        "c_corrupt.mp3": FileStatus.FAILED,
        "d_no_audio.mp4": FileStatus.FAILED,
        "e_silent.wav": FileStatus.DONE,
        "f_empty.wav": FileStatus.FAILED,
        "missing.wav": FileStatus.FAILED,
    }
    errors = {Path(f.source).name: f.error for f in manifest.files if f.error}
    assert "cannot read media" in errors["c_corrupt.mp3"]
    assert "no audio stream" in errors["d_no_audio.mp4"]
    assert "no audio samples" in errors["f_empty.wav"]
    assert "file not found" in errors["missing.wav"]
    err_lines = stderr.strip().splitlines()
    assert len(err_lines) == 5 and all(line.startswith("modelport: error: ") for line in err_lines)
    assert "4 of 7 files failed" in err_lines[-1]
    assert "==> " in stdout and "No speech: the audio is silent" in stdout
    assert "7 files: 3 done, 0 skipped, 4 failed" in stdout
    srt = out / "sub" / "b_talk.srt"  # the directory's layout is kept
    assert srt.is_file() and (out / "a_good.srt").is_file()
    _check_srt(srt.read_text())
    stamp = srt.stat().st_mtime_ns

    rc = main([*argv, "--threads", "2"])  # resume: done files are skipped, failures retried
    stdout, _ = capsys.readouterr()
    assert rc == 2 and "7 files: 0 done, 3 skipped, 4 failed" in stdout
    assert srt.stat().st_mtime_ns == stamp
    sub_argv = ["transcribe", str(inputs / "sub"), "-m", str(tiny_en_dir), "-o", str(out / "sub"), "-f", "srt"]
    rc = main(sub_argv)
    assert rc == 0 and "1 skipped" in capsys.readouterr().out
    rc = main([*sub_argv, "--overwrite"])
    assert rc == 0 and "1 done" in capsys.readouterr().out
    assert srt.stat().st_mtime_ns != stamp


def test_two_workers_prefix_lines_with_the_file(
    tiny_en_dir: Path, speech: SpeechFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["transcribe", str(speech.en_wav), str(speech.en_mp4), "-m", str(tiny_en_dir), "-j", "2"]
    rc = main([*argv, "--threads", "1"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    for name in ("en.wav", "talk.mp4"):
        assert f"{name}: Detected language en with probability 1.00" in out
        assert re.search(rf"^{re.escape(name)}: \[0\.\d\ds -> \d+\.\d\ds\] \S", out, re.M)
    assert "2 files: 2 done, 0 skipped, 0 failed" in out


@pytest.mark.parametrize(
    ("make_args", "fragment"),
    [
        (lambda s, m, t: [str(s.missing), "-m", m], "missing.wav: file not found"),
        (lambda s, m, t: [str(s.no_audio_mp4), "-m", m], "no audio stream"),
        (lambda s, m, t: [str(s.corrupt_mp3), "-m", m], "cannot read media"),
        (lambda s, m, t: [str(s.empty_wav), "-m", m], "no audio samples"),
        (lambda s, m, t: [str(s.en_wav), "-m", "tiny-xxl"], "unknown Whisper model 'tiny-xxl'"),
        (lambda s, m, t: [str(s.en_wav), "-m", str(t)], "not a CTranslate2 Whisper model directory"),
        (lambda s, m, t: [str(s.en_wav), "-m", m, "--language", "de"], "English-only"),
        (lambda s, m, t: [str(s.en_wav), "-m", m, "--format", "docx"], "unknown output format 'docx'"),
        (lambda s, m, t: [str(s.en_wav), "-m", m, "--batch-size", "0"], "batch size must be"),
        (lambda s, m, t: [str(s.en_wav), "-m", m, "-b", "4", "--no-vad"], "batched pipeline cuts the audio"),
    ],
)
def test_each_error_is_one_line_and_exit_2(
    tiny_en_dir: Path,
    speech: SpeechFiles,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_args: Callable[[SpeechFiles, str, Path], list[str]],
    fragment: str,
) -> None:
    args = make_args(speech, str(tiny_en_dir), tmp_path)
    rc = main(["transcribe", *args])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelport: error: ") and fragment in lines[0], err
    assert "Traceback" not in err


def test_silent_file_is_not_a_failure(
    tiny_en_dir: Path, speech: SpeechFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["transcribe", str(speech.silent_wav), "-m", str(tiny_en_dir)])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert out.splitlines()[0] == "No speech: the audio is silent (4.00 s)"


def test_bench_transcribe_reports_rtf_memory_and_wer(
    tiny_en_dir: Path, speech: SpeechFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ref.txt").write_text(EN_TEXT)
    report_path = tmp_path / "bench.json"
    argv = ["bench-transcribe", str(speech.en_wav), "-m", str(tiny_en_dir), "--threads", "2", "--runs", "2"]
    rc = main([*argv, "--warmup", "0", "--reference", str(tmp_path / "ref.txt"), "-o", str(report_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert re.search(r"^real-time factor\s+\d+\.\d{4}$", out, re.M)
    assert re.search(r"^peak RSS\s+\d+\.\d MiB$", out, re.M)
    report = TranscribeBenchReport.from_json(report_path.read_text())
    assert len(report.seconds) == 2 and report.median > 0
    assert report.rtf == pytest.approx(report.median / report.duration, rel=1e-3)
    assert report.wer is not None and report.wer < 0.15
    assert 50 < report.peak_rss_mb < 4096
    assert f"WER               {report.wer:.4f}" in out
    rc = main([*argv, "--reference-text", "x", "--reference", "r"])
    assert rc == 2 and "not both" in capsys.readouterr().err
    rc = main([*argv[:-2], "--runs", "1", "--warmup", "0", "--json"])  # the shared --json: the report on stdout
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert len(TranscribeBenchReport.from_json(out).seconds) == 1


def test_progress_bar_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    renderer = ConsoleRenderer(console, console, multi=False, prefix=False, quiet=False)
    assert renderer.progress is not None
    renderer.progress.start()
    renderer.on_start("talk.mp4", StartInfo("ja", 1.0, 60.0, vad=True, silent=False))
    task = renderer.progress.tasks[0]
    assert task.total == 60.0 and task.description == "talk.mp4"
    renderer.on_segment("talk.mp4", Segment(0, 0.0, 7.24, "こんにちは"))
    assert renderer.progress.tasks[0].completed == pytest.approx(7.24)
    result = TranscriptionResult("talk.mp4", "ja", 1.0, 60.0, 60.0, (), 6.0, "m", "cpu", "int8")
    renderer.on_done("talk.mp4", result, [])
    assert not renderer.progress.tasks
    renderer.progress.stop()
    text = buffer.getvalue()
    assert "Detected language ja with probability 1.00" in text and "[0.00s -> 7.24s] こんにちは" in text
    assert not ConsoleRenderer(Console(file=io.StringIO()), console, multi=False, prefix=False, quiet=False).progress


def test_subtitle_renderers_keep_times_monotonic() -> None:
    segments = (
        Segment(0, 0.0, 2.5, "one"),
        Segment(1, 2.4, 2.3, "two"),  # overlaps the previous and ends before it starts
        Segment(2, 3661.0015, 3662.5, "three"),
        Segment(3, 3663.0, 3664.0, "  "),  # empty text: no cue
    )
    result = TranscriptionResult("x", "en", 1.0, 4000.0, 4000.0, segments, 1.0, "m", "cpu", "int8")
    spans = _check_srt(render_srt(result))
    assert spans == [(0.0, 2.5), (2.4, 2.4), (3661.002, 3662.5)]
    assert _check_vtt(render_vtt(result)) == spans
    assert render_tsv(result).splitlines()[1:] == ["0\t2500\tone", "2400\t2300\ttwo", "3661002\t3662500\tthree"]
    assert format_timestamp(3661.0015) == "01:01:01,002" and format_timestamp(-1.0, ".") == "00:00:00.000"


def test_format_parsing_and_output_names(tmp_path: Path) -> None:
    assert parse_formats("srt, TXT,srt") == (OutputFormat.SRT, OutputFormat.TXT)
    assert parse_formats("all") == tuple(OutputFormat) and parse_formats(None) == ()
    with pytest.raises(InvalidInputError, match="unknown output format"):
        parse_formats("srt,doc")
    (tmp_path / "talk.mp4").write_bytes(b"")
    (tmp_path / "talk.wav").write_bytes(b"")
    (tmp_path / "solo.flac").write_bytes(b"")
    planned = plan_inputs([tmp_path], tmp_path / "out")
    bases = {p.path.name: p.out_base for p in planned}
    assert bases == {
        "solo.flac": tmp_path / "out" / "solo",
        "talk.mp4": tmp_path / "out" / "talk.mp4",  # same stem: the suffix is kept to tell them apart
        "talk.wav": tmp_path / "out" / "talk.wav",
    }
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no audio or video files"):
        plan_inputs([tmp_path / "empty"], None)
    assert json.loads(BatchManifest("m", "cpu", "int8", None, ()).to_json())["files"] == []
