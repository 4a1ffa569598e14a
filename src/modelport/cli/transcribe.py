"""``modelport transcribe INPUT… [--model …]`` and ``modelport bench-transcribe INPUT [--reference …]``.

The output has the shape of faster-whisper's own example: the detected language and its probability, then
each segment as soon as it is decoded (``[0.00s -> 7.24s] text``), then elapsed time, audio duration and
real-time factor. On a terminal a progress bar over the audio time runs below the segments.
"""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from modelport.apps.transcribe import StartInfo, TranscribeListener
from modelport.apps.transcribe.results import (
    DEFAULT_MODEL,
    BatchManifest,
    ComputeType,
    DecodeOptions,
    Device,
    FileStatus,
    ModelOptions,
    OutputFormat,
    Segment,
    Task,
    TranscriptionResult,
    parse_formats,
)
from modelport.cli import options as opt
from modelport.cli.common import print_json
from modelport.errors import AppError, InvalidInputError

_DEVICE = typer.Option(Device.AUTO, "--device", help="cpu, cuda, or auto (cuda when available).")
_COMPUTE = typer.Option(
    ComputeType.AUTO, "--compute-type", help="CTranslate2 compute type (auto: int8 on CPU, float16 on CUDA)."
)
_MODEL = typer.Option(
    DEFAULT_MODEL,
    "--model",
    "-m",
    help="CTranslate2 directory, Transformers Whisper checkpoint directory, or a name (tiny … large-v3).",
)
_LANGUAGE = typer.Option("auto", "--language", "-l", help="Language code (en, de, ja …) or auto to detect.")
_VAD = typer.Option(None, "--vad/--no-vad", help="Voice activity detection (default: on above 30 s of audio).")
_BATCH = typer.Option(1, "--batch-size", "-b", help="> 1 runs faster-whisper's batched pipeline.")
_BEAM = typer.Option(5, "--beam-size", help="Beam search width.")


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


class ConsoleRenderer(TranscribeListener):
    """Prints the seed's lines as events arrive; a progress bar per file when stdout is a terminal.

    For one input, errors are kept (the CLI raises them); for several, each is printed and the batch goes on.
    """

    def __init__(self, out: Console, err: Console, *, multi: bool, prefix: bool, quiet: bool) -> None:
        self.out = out
        self.err = err
        self.multi = multi
        self.prefix = prefix
        self.quiet = quiet
        self.errors: dict[str, Exception] = {}
        self.progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        if out.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} s of audio"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=out,
                transient=True,
            )

    def _print(self, source: str, text: str) -> None:
        line = f"{Path(source).name}: {text}" if self.prefix else text
        self.out.print(line, markup=False, highlight=False)

    def on_start(self, source: str, info: StartInfo) -> None:
        if self.multi and not self.prefix:
            self.out.print(f"==> {source} <==", markup=False)
        if info.silent:
            self._print(source, f"No speech: the audio is silent ({info.duration:.2f} s)")
            return
        self._print(source, f"Detected language {info.language} with probability {info.language_probability:.2f}")
        if self.progress is not None:
            with self._lock:
                self._tasks[source] = self.progress.add_task(Path(source).name, total=info.duration)

    def on_segment(self, source: str, segment: Segment) -> None:
        if not self.quiet:
            self._print(source, f"[{segment.start:.2f}s -> {segment.end:.2f}s] {segment.text}")
        if self.progress is not None and source in self._tasks:
            self.progress.update(self._tasks[source], completed=segment.end)

    def _finish_task(self, source: str) -> None:
        with self._lock:
            task = self._tasks.pop(source, None)
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)

    def on_done(self, source: str, result: TranscriptionResult, outputs: list[Path]) -> None:
        self._finish_task(source)
        self._print(
            source,
            f"Elapsed {result.elapsed:.2f} s, audio {result.duration:.2f} s, real-time factor {result.rtf:.3f}",
        )
        if outputs:
            self._print(source, "Wrote " + ", ".join(str(p) for p in outputs))

    def on_skip(self, source: str, outputs: list[Path]) -> None:
        self._print(source, f"Skipped {source}: its outputs already exist ({outputs[0].parent})")

    def on_error(self, source: str, error: Exception) -> None:
        self._finish_task(source)
        if self.multi:
            self.err.print(f"modelport: error: {error}", markup=False, highlight=False)
        else:
            self.errors[source] = error


def _transcribe_cluster(
    inputs: list[Path],
    address: str,
    model_options: ModelOptions,
    decode_options: DecodeOptions,
    out: Path | None,
    fmts: tuple[OutputFormat, ...],
    overwrite: bool,
    out_console: Console,
) -> None:
    """``transcribe --cluster``: one actor per node, one progress bar over the whole archive, the manifest."""
    from modelport.apps.transcribe.batch import MANIFEST_NAME
    from modelport.cluster.archive import transcribe_on_cluster

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    renderer = ConsoleRenderer(out_console, err, multi=True, prefix=True, quiet=True)
    bar = Progress(
        TextColumn("archive"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} files"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task("archive", total=None)

    def advance(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar if err.is_terminal else _Quiet():
        manifest = transcribe_on_cluster(
            inputs,
            address=address,
            model=model_options,
            options=decode_options,
            out_dir=out,
            formats=fmts,
            overwrite=overwrite,
            listener=renderer,
            progress=advance,
        )
    _summary(manifest, out_console, manifest.load_seconds)
    if not manifest.ok:
        failed = manifest.count(FileStatus.FAILED)
        where = f"see {out / MANIFEST_NAME}" if out is not None else "see the messages above"
        raise AppError(f"{failed} of {len(manifest.files)} files failed", hint=where)


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _summary(manifest: BatchManifest, out: Console, load_seconds: float) -> None:
    done, skipped, failed = (manifest.count(s) for s in (FileStatus.DONE, FileStatus.SKIPPED, FileStatus.FAILED))
    audio = sum(f.duration for f in manifest.files)
    out.print(
        f"{len(manifest.files)} files: {done} done, {skipped} skipped, {failed} failed; "
        f"{audio:.2f} s of audio in {manifest.elapsed:.2f} s (model load {load_seconds:.2f} s)",
        markup=False,
    )


def _output_plan(formats: str | None, out_dir: Path | None) -> tuple[tuple[OutputFormat, ...], Path | None]:
    """No flags: print only. ``-o`` alone: every format. ``--format`` alone: into the current directory."""
    fmts = parse_formats(formats)
    if out_dir is not None and not fmts:
        fmts = tuple(OutputFormat)
    if fmts and out_dir is None:
        out_dir = Path(".")
    return fmts, out_dir


def register(app: typer.Typer) -> None:
    """Add ``transcribe`` and ``bench-transcribe`` to the app."""

    @app.command("transcribe")
    def transcribe_cmd(
        inputs: list[Path] = typer.Argument(..., metavar="INPUT...", help="Audio/video files or directories."),
        model: str = _MODEL,
        device: Device = _DEVICE,
        compute_type: ComputeType = _COMPUTE,
        language: str = _LANGUAGE,
        task: Task = typer.Option(Task.TRANSCRIBE, "--task", help="transcribe, or translate to English."),
        vad: bool | None = _VAD,
        batch_size: int = _BATCH,
        beam_size: int = _BEAM,
        word_timestamps: bool = typer.Option(False, "--word-timestamps", help="Align words, record times."),
        formats: str | None = typer.Option(
            None, "--format", "-f", help="Comma-separated: txt,srt,vtt,json,tsv or all (default with -o: all)."
        ),
        out_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="Where transcripts go."),
        threads: int | None = opt.THREADS,
        workers: int = typer.Option(1, "--workers", "-j", help="Files transcribed concurrently."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo files whose outputs exist."),
        offline: bool = typer.Option(False, "--offline", help="Never contact the model hub."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the segments."),
        cluster: str | None = opt.CLUSTER,
    ) -> None:
        """Transcribe speech in audio or video files with Whisper (faster-whisper / CTranslate2)."""
        from modelport.apps.transcribe import Transcriber
        from modelport.apps.transcribe.batch import MANIFEST_NAME, transcribe_files

        fmts, out = _output_plan(formats, out_dir)
        model_options = ModelOptions(
            model=model,
            device=device,
            compute_type=compute_type,
            threads=threads or 0,
            workers=workers,
            offline=offline,
        )
        decode_options = DecodeOptions(
            language=language,
            task=task,
            vad=vad,
            batch_size=batch_size,
            beam_size=beam_size,
            word_timestamps=word_timestamps,
        )
        multi = len(inputs) > 1 or any(p.is_dir() for p in inputs)
        out_console = _stdout()
        err_console = Console(stderr=True, highlight=False, soft_wrap=True)
        if cluster is not None:
            _transcribe_cluster(inputs, cluster, model_options, decode_options, out, fmts, overwrite, out_console)
            return
        renderer = ConsoleRenderer(out_console, err_console, multi=multi, prefix=multi and workers > 1, quiet=quiet)
        with Transcriber(model_options) as transcriber:
            if renderer.progress is not None:
                renderer.progress.start()
            try:
                manifest = transcribe_files(
                    inputs,
                    transcriber,
                    decode_options,
                    out_dir=out,
                    formats=fmts,
                    overwrite=overwrite,
                    listener=renderer,
                )
            finally:
                if renderer.progress is not None:
                    renderer.progress.stop()
        if renderer.errors:
            raise next(iter(renderer.errors.values()))
        if multi:
            _summary(manifest, out_console, transcriber.load_seconds)
        if not manifest.ok:
            failed = manifest.count(FileStatus.FAILED)
            where = f"see {out / MANIFEST_NAME}" if out is not None else "see the messages above"
            raise AppError(f"{failed} of {len(manifest.files)} files failed", hint=where)

    @app.command("bench-transcribe")
    def bench_transcribe_cmd(
        audio: Path = typer.Argument(..., help="Audio or video file."),
        model: str = _MODEL,
        device: Device = _DEVICE,
        compute_type: ComputeType = _COMPUTE,
        language: str = _LANGUAGE,
        vad: bool | None = _VAD,
        batch_size: int = _BATCH,
        beam_size: int = _BEAM,
        threads: int | None = opt.THREADS,
        runs: int = typer.Option(3, "--runs", "-n", help="Measured runs (the median is reported)."),
        warmup: int = typer.Option(1, "--warmup", help="Unmeasured runs first."),
        reference: Path | None = typer.Option(None, "--reference", help="Text file with the spoken words."),
        reference_text: str | None = typer.Option(None, "--reference-text", help="The spoken words."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Also write the report as JSON to this file."),
        as_json: bool = opt.JSON,
    ) -> None:
        """Measure real-time factor, peak memory and (given the spoken text) word error rate."""
        from modelport.apps.transcribe.bench import bench_transcribe
        from modelport.model_io import write_text

        ref = _reference(reference, reference_text)
        report = bench_transcribe(
            audio,
            ModelOptions(model=model, device=device, compute_type=compute_type, threads=threads or 0),
            DecodeOptions(language=language, vad=vad, batch_size=batch_size, beam_size=beam_size),
            runs=runs,
            warmup=warmup,
            reference=ref,
        )
        if output is not None:
            write_text(output, report.to_json() + "\n")
        if as_json:
            print_json(report.to_json())
            return
        out = _stdout()
        rows = [
            ("model", f"{report.model} ({report.device}, {report.compute_type}, {report.threads} threads)"),
            ("pipeline", f"batch size {report.batch_size}, beam {report.beam_size}, vad {report.vad}"),
            ("audio", f"{report.source}: {report.duration:.2f} s, language {report.language}"),
            ("runs", " ".join(f"{s:.3f}" for s in report.seconds) + f" s (median {report.median:.3f} s)"),
            ("real-time factor", f"{report.rtf:.4f}"),
            ("peak RSS", f"{report.peak_rss_mb:.1f} MiB"),
            ("model load", f"{report.load_seconds:.2f} s"),
        ]
        if report.wer is not None:
            rows.append(("WER", f"{report.wer:.4f}"))
        for key, value in rows:
            out.print(f"{key:<17} {value}", markup=False)


def _reference(path: Path | None, text: str | None) -> str | None:
    if path is not None and text is not None:
        raise InvalidInputError("give --reference or --reference-text, not both")
    if path is None:
        return text
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read the reference text: {exc.strerror}", path=path) from exc
