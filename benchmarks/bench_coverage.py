"""Coverage on real models: modelport vs the raw engine, side by side, judged by the same comparator.

    .venv/bin/python benchmarks/corpus/provision.py            # once: the corpus into ~/.cache/modelport-corpus
    .venv/bin/python benchmarks/bench_coverage.py [--ids a,b] [--routes onnx→openvino,…] [--timeout 600]

For every model of ``benchmarks/corpus/manifest.json`` and every route its format can take, two cells run, each in
its own child process with a time limit (engines crash and hang on real models):

- **raw**: the engine called directly with its documented defaults — ``openvino.convert_model`` +
  ``save_model`` (ONNX/TFLite → OpenVINO), ``onnx2tf.convert`` (ONNX → TFLite; given a private copy of the input,
  because 1.28.8 rewrites it in place, and the calibration sample file it would otherwise download),
  ``tf2onnx.convert.from_tflite`` / ``from_saved_model`` / ``from_keras`` (→ ONNX, opset 17), onnxsim
  (ONNX → optimized ONNX);
- **modelport**: ``modelport.convert`` / ``modelport.optimize`` with no extra flag.

INT8 routes (``onnx→int8-onnxruntime``, ``onnx→int8-openvino``): raw is
``onnxruntime.quantization.quantize_static`` with its defaults (QDQ, S8S8, per-tensor MinMax) after nothing else,
and ``nncf.quantize`` on ``openvino.convert_model`` with default parameters, saved with ``openvino.save_model``;
modelport is ``modelport.quantize(runtime=…)`` (its own accuracy guard aside: only the artifact is judged; ONNX
Runtime's types fixed to U8S8, ``--types auto``'s first choice on x86, so the timing ladder cannot multiply a
cell's time on a loaded machine). Both
calibrate on the same :data:`CALIB_SAMPLES` seeded random feeds of the verify shapes (no dataset per model), and
the artifact is judged against the FP32 source at the int8 tolerance. LiteRT INT8 is left out (onnx2tf is slow).

Both artifacts are then judged the same way: the source and the artifact run on seeded random inputs (filled as
the manifest's ``verify_values`` say where values matter: sample rates, token ids, states) of the manifest's
``verify_shapes`` (plus ``verify_shapes_alt`` for dynamic models, when the artifact kept the dims
dynamic) on their native runtimes, and :func:`modelport.verify.comparator.check` compares them at fp32 with the
source's own precision as the floor. A cell passes when the tool produced an artifact and the comparison passed.
Results: ``benchmarks/results/coverage.{md,json}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "corpus"))

from provision import model_path, select  # noqa: E402

#: route → (source format, target); target "onnx-opt" is the optimizer
ROUTES: dict[str, tuple[str, str]] = {
    "onnx→openvino": ("onnx", "openvino"),
    "onnx→tflite": ("onnx", "tflite"),
    "onnx→onnx-opt": ("onnx", "onnx-opt"),
    "onnx→int8-onnxruntime": ("onnx", "int8-onnxruntime"),
    "onnx→int8-openvino": ("onnx", "int8-openvino"),
    "tflite→onnx": ("tflite", "onnx"),
    "tflite→openvino": ("tflite", "openvino"),
    "saved_model→onnx": ("saved_model", "onnx"),
    "keras→onnx": ("keras", "onnx"),
}
TOOLS = ("raw", "modelport")
#: random calibration feeds given to both tools on the INT8 routes (seeds apart from the judging feeds').
CALIB_SAMPLES = 16
CALIB_SEED = 100


@dataclasses.dataclass
class Cell:
    """One (model, route, tool) result."""

    id: str
    route: str
    tool: str
    ok: bool
    stage: str  # "convert" or "verify" when it failed there, "" when it passed
    reason: str
    seconds: float
    max_abs: float | None = None
    dynamic_kept: bool | None = None


# ---------------------------------------------------------------------------------------------------------------
# Producing artifacts


def _first_line(exc: BaseException | str) -> str:
    text = (exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}").strip()
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "error")[:300]


def raw_convert(src: Path, route: str, work: Path, entry: dict[str, Any] | None = None) -> Path:
    """The engine called directly, with its documented defaults."""
    source, target = ROUTES[route]
    if target.startswith("int8-"):
        return _raw_int8(src, target, work, entry or {})
    if target == "openvino":
        import openvino as ov

        out = work / "model.xml"
        ov.save_model(ov.convert_model(str(src)), str(out))
        return out
    if target == "tflite":
        return _raw_onnx2tf(src, work)
    if target == "onnx-opt":
        import onnx
        import onnxsim

        model, ok = onnxsim.simplify(onnx.load(str(src)))
        if not ok:
            raise RuntimeError("onnxsim could not validate its result")
        out = work / "model.onnx"
        onnx.save(model, str(out))
        return out
    import tf2onnx

    out = work / "model.onnx"
    if source == "tflite":
        tf2onnx.convert.from_tflite(str(src), opset=17, output_path=str(out))
    elif source == "saved_model":
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(src), "--opset", "17", "--output", str(out)],
            check=True,
            capture_output=True,
        )
    else:
        import tf_keras

        model = tf_keras.models.load_model(str(src), compile=False)
        tf2onnx.convert.from_keras(model, opset=17, output_path=str(out))
    return out


def _raw_onnx2tf(src: Path, work: Path) -> Path:
    import numpy as np
    import onnx2tf

    copy = work / "input.onnx"
    shutil.copyfile(src, copy)  # onnx2tf 1.28.8 rewrites its input in place
    # the calibration sample onnx2tf downloads for 4-D inputs (offline here): the documented workaround
    np.save(work / "calibration_image_sample_data_20x128x128x3_float32.npy", np.zeros((20, 128, 128, 3), np.float32))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        onnx2tf.convert(input_onnx_file_path=str(copy), output_folder_path=str(work / "tf"), non_verbose=True)
    finally:
        os.chdir(cwd)
    found = sorted((work / "tf").glob("*_float32.tflite"))
    if not found:
        raise RuntimeError("onnx2tf wrote no float32 .tflite")
    return found[0]


def calibration_feeds(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The INT8 routes' calibration data: :data:`CALIB_SAMPLES` seeded random feeds of the verify shapes."""
    values = entry.get("verify_values")
    return [
        _feeds(entry["inputs"], entry["verify_shapes"], seed=CALIB_SEED + i, values=values)
        for i in range(CALIB_SAMPLES)
    ]


def _raw_int8(src: Path, target: str, work: Path, entry: dict[str, Any]) -> Path:
    feeds = calibration_feeds(entry)
    if target == "int8-onnxruntime":
        from onnxruntime.quantization import CalibrationDataReader, quantize_static

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.items = iter(feeds)

            def get_next(self) -> dict[str, Any] | None:
                return next(self.items, None)

        out = work / "model.int8.onnx"
        quantize_static(str(src), str(out), Reader())
        return out
    import nncf
    import openvino as ov

    out = work / "model.int8.xml"
    ov.save_model(nncf.quantize(ov.convert_model(str(src)), nncf.Dataset(feeds)), str(out))
    return out


def modelport_convert(src: Path, route: str, work: Path, entry: dict[str, Any] | None = None) -> Path:
    """modelport with no extra flag (its own verification on: a mismatch fails the cell as modelport reports it)."""
    import modelport

    target = ROUTES[route][1]
    if target.startswith("int8-"):
        from modelport.benchmark.timing import BenchConfig
        from modelport.quantization import QuantizeOptions, QuantTypes

        feeds = calibration_feeds(entry or {})
        # auto's first choice on x86 (U8S8): the speed ladder re-quantizes when INT8 is not faster, which on a
        # loaded machine is noise and multiplies the time of a cell
        types = QuantTypes.U8S8 if target == "int8-onnxruntime" else QuantTypes.AUTO
        options = QuantizeOptions(samples=len(feeds), types=types, bench=BenchConfig(warmup=1, seconds=0.2))
        report = modelport.quantize(
            src, work / "out", runtime=target.removeprefix("int8-"), calib=lambda: feeds, options=options
        )
        return Path(report.variants[1].artifact)
    if target == "onnx-opt":
        out = work / "model.onnx"
        result = modelport.optimize(src)
        result.write(out)
        return out
    report = modelport.convert(src, target, work / "out")
    return Path(report.artifact)


# ---------------------------------------------------------------------------------------------------------------
# Judging


def _feeds(
    specs: list[dict[str, Any]],
    shapes: dict[str, list[int]],
    seed: int,
    values: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Seeded feeds of ``shapes``: floats U(0, 1), integers {0, 1}, except where the manifest's ``verify_values``
    say how an input must be filled (``fill`` a constant, ``fill_dim`` [input, axis] the size of another input's
    dim, ``low``/``high`` an integer range, ``normal`` the std of a normal draw): a VAD's sample rate, token ids."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = tuple(shapes[spec["name"]])
        dtype = np.dtype(spec["dtype"])
        how = (values or {}).get(spec["name"], {})
        if "fill" in how:
            feeds[spec["name"]] = np.full(shape, how["fill"], dtype)
        elif "fill_dim" in how:
            other, axis = how["fill_dim"]
            feeds[spec["name"]] = np.full(shape, shapes[other][axis], dtype)
        elif "low" in how:
            feeds[spec["name"]] = rng.integers(how["low"], how["high"], shape).astype(dtype)
        elif "normal" in how:
            feeds[spec["name"]] = (rng.standard_normal(shape) * how["normal"]).astype(dtype)
        elif dtype.kind == "f":
            feeds[spec["name"]] = rng.random(shape, dtype=np.float64).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec["name"]] = rng.integers(0, 2, shape).astype(dtype)
        else:
            feeds[spec["name"]] = np.zeros(shape, dtype)
    return feeds


#: NHWC-style permutations onnx2tf applies to an input of each rank (artifact axes → source axes).
_TO_CHANNELS_FIRST = {3: (0, 2, 1), 4: (0, 3, 1, 2), 5: (0, 4, 1, 2, 3)}


def static_sizes(entry: dict[str, Any], cand: Any) -> dict[str, list[int]] | None:
    """The source-layout shapes a fully static artifact was built for, when the source's declared dims allow them.

    A target that needs static shapes (TFLite through onnx2tf) gets sizes chosen for the dynamic dims and says
    so; judging it at other sizes tests what it never claimed. Each artifact input is matched to the source input of
    the same name (or position), as it is or moved back from channels-last; None when an input is not static or
    fits no way.
    """
    from modelport.backends import open_runner

    try:
        with open_runner(cand.backend, cand.model) as runner:
            specs = runner.input_specs
    except Exception:  # judged as usual; a load failure is reported there
        return None
    if len(specs) != len(entry["inputs"]) or not all(s.is_static for s in specs):
        return None
    by_name = {s.name: s for s in specs}
    shapes: dict[str, list[int]] = {}
    for i, src in enumerate(entry["inputs"]):
        spec = by_name.get(src["name"], specs[i])
        dims = [int(d) for d in spec.shape or ()]
        declared = src.get("shape") or [None] * len(dims)
        options = [dims]
        if len(dims) in _TO_CHANNELS_FIRST:
            options.append([dims[a] for a in _TO_CHANNELS_FIRST[len(dims)]])
        fits = [
            o
            for o in options
            if len(o) == len(declared)
            and all(not (isinstance(d, int) and d >= 0) or d == o[k] for k, d in enumerate(declared))
        ]
        if not fits:
            return None
        shapes[src["name"]] = fits[0]
    return shapes


def judge(
    entry: dict[str, Any], src: Path, artifact: Path, precision: str = "fp32"
) -> tuple[bool, str, float | None, bool | None]:
    """Run source and artifact on the same seeded feeds (both shape sets for dynamic models); compare.

    ``precision``: the tolerance policy (fp32 for conversions, int8 for the INT8 routes).
    """
    from modelport.backends import backend_for_format
    from modelport.formats import Precision, sniff_format
    from modelport.verify.comparator import Subject, check, run
    from modelport.verify.tolerance import Tolerance

    ref = Subject(src, backend_for_format(sniff_format(src)).name)
    cand = Subject(artifact, backend_for_format(sniff_format(artifact)).name)
    tol = Tolerance.for_precision(Precision(precision))
    worst = 0.0
    sets = [entry["verify_shapes"]]
    if entry.get("verify_shapes_alt"):
        sets.append(entry["verify_shapes_alt"])
    fixed = static_sizes(entry, cand)
    if fixed is not None and fixed != entry["verify_shapes"]:
        sets = [fixed]  # a static artifact of a dynamic model is judged at the sizes it was built for
    dynamic_kept: bool | None = None if fixed is None else False
    for i, shapes in enumerate(sets):
        feeds = _feeds(entry["inputs"], shapes, seed=i, values=entry.get("verify_values"))
        try:
            reference = run(ref, feeds)
            candidate = run(cand, feeds)
        except Exception as exc:  # the artifact cannot run these shapes
            if i == 0:
                return False, f"cannot run: {_first_line(exc)}", None, None
            dynamic_kept = False
            break
        comparison = check(reference, candidate, tol)
        worst = max(worst, comparison.max_abs)
        if not comparison.passed:
            return False, f"mismatch ({i}): {_first_line(comparison.reason())}", worst, dynamic_kept
        dynamic_kept = True if i == 1 else dynamic_kept
    note = "" if sets[0] is entry["verify_shapes"] else f"static at {json.dumps(sets[0])}"
    return True, note, worst, dynamic_kept


def run_cell(model_id: str, route: str, tool: str, work: Path) -> Cell:
    """Produce the artifact with ``tool`` and judge it (runs inside the child process)."""
    from provision import entry as manifest_entry

    entry = manifest_entry(model_id)
    src = model_path(model_id, download=False)
    produce: Callable[[Path, str, Path, dict[str, Any]], Path] = raw_convert if tool == "raw" else modelport_convert
    t0 = time.perf_counter()
    try:
        artifact = produce(src, route, work, entry)
    except BaseException as exc:  # any engine failure is a result, not a crash of the benchmark
        return Cell(model_id, route, tool, False, "convert", _first_line(exc), time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    try:
        precision = "int8" if ROUTES[route][1].startswith("int8-") else "fp32"
        ok, reason, max_abs, kept = judge(entry, src, artifact, precision)
    except BaseException as exc:
        return Cell(model_id, route, tool, False, "verify", _first_line(exc), seconds)
    return Cell(model_id, route, tool, ok, "" if ok else "verify", reason, seconds, max_abs, kept)


def spawn(model_id: str, route: str, tool: str, timeout: float) -> Cell:
    """Run one cell in a child process; a crash or a timeout is the cell's result."""
    with tempfile.TemporaryDirectory(prefix="mp-coverage-") as tmp:
        cmd = [sys.executable, __file__, "--cell", json.dumps([model_id, route, tool, tmp])]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return Cell(model_id, route, tool, False, "convert", f"timed out after {timeout:.0f} s", timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{") and '"route"' in ln]
        if not lines:
            tail = proc.stderr.strip().splitlines()
            why = _first_line(tail[-1] if tail else f"exit {proc.returncode}")
            return Cell(model_id, route, tool, False, "convert", f"crashed: {why}", time.perf_counter() - t0)
        return Cell(**json.loads(lines[-1]))


# ---------------------------------------------------------------------------------------------------------------
# Report


def routes_for(entry: dict[str, Any]) -> list[str]:
    return [r for r, (source, _) in ROUTES.items() if source == entry["format"]]


def render(cells: list[Cell], env: str, command: str) -> str:
    by_route: dict[str, dict[str, list[Cell]]] = {}
    for c in cells:
        by_route.setdefault(c.route, {}).setdefault(c.tool, []).append(c)
    lines = [
        "# Coverage on real models: modelport vs the raw engines",
        "",
        f"`{command}` — {env}",
        "",
        "Every cell is judged by the same comparator (fp32 policy for conversions, int8 against the FP32 source for",
        "the INT8 routes; the source's own precision as the floor) on seeded",
        "random inputs of the manifest's verify shapes (and the alternative shapes for dynamic models); a fully",
        'static artifact of a dynamic model at the sizes it was built for ("static at …").',
        "",
        "| route | models | raw engine | modelport |",
        "|---|---:|---:|---:|",
    ]
    total = {t: 0 for t in TOOLS}
    for route in ROUTES:
        if route not in by_route:
            continue
        counts = {t: sum(c.ok for c in by_route[route].get(t, [])) for t in TOOLS}
        n = len(by_route[route].get("raw", by_route[route].get("modelport", [])))
        for t in TOOLS:
            total[t] += counts[t]
        lines.append(f"| {route} | {n} | {counts['raw']} | {counts['modelport']} |")
    n_all = len({(c.id, c.route) for c in cells})
    lines += [f"| **all cells** | {n_all} | **{total['raw']}** | **{total['modelport']}** |", ""]
    lines += ["## Every cell", "", "| model | route | raw | modelport |", "|---|---|---|---|"]
    pairs: dict[tuple[str, str], dict[str, Cell]] = {}
    for c in cells:
        pairs.setdefault((c.id, c.route), {})[c.tool] = c
    for (mid, route), tools in sorted(pairs.items()):
        cols = []
        for t in TOOLS:
            c = tools.get(t)
            if c is None:
                cols.append("–")
            elif c.ok:
                dyn = " (dynamic kept)" if c.dynamic_kept else f" ({c.reason})" if c.reason else ""
                cols.append(f"pass {c.max_abs:.2g}{dyn}" if c.max_abs is not None else "pass")
            else:
                cols.append(f"FAIL {c.stage}: {c.reason.replace('|', '/')}")
        lines.append(f"| {mid} | {route} | {cols[0]} | {cols[1]} |")
    return "\n".join(lines) + "\n"


def environment() -> str:
    from modelport.reports.environment import capture_environment

    env = capture_environment()
    versions = dict(env.packages)
    keys = ("onnxruntime", "openvino", "onnx2tf", "tf2onnx", "tensorflow", "ai-edge-litert", "onnxsim")
    return env.summary() + "; " + ", ".join(f"{k} {versions[k]}" for k in keys if k in versions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", default="", help="comma-separated model ids (default: the whole corpus)")
    parser.add_argument("--subset", default=None, help="a manifest subset (e.g. tests)")
    parser.add_argument("--routes", default="", help="comma-separated routes (default: every route of each model)")
    parser.add_argument("--tools", default="raw,modelport")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per cell")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="coverage", help="results file stem (coverage_int8, coverage_tflite …)")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        help="render one table from the coverage.json of earlier runs (e.g. --tools raw, then --tools modelport; "
        "a cell in a later file replaces the same cell in an earlier one)",
    )
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.merge:
        latest = {  # a cell re-run in a later file replaces the earlier one
            (c["id"], c["route"], c["tool"]): Cell(**c) for path in args.merge for c in json.loads(path.read_text())
        }
        cells = list(latest.values())
        command = "python benchmarks/bench_coverage.py --merge " + " ".join(str(p) for p in args.merge)
        _write(args.results, cells, command, args.name)
        return 0
    if args.cell:
        model_id, route, tool, work = json.loads(args.cell)
        print(json.dumps(dataclasses.asdict(run_cell(model_id, route, tool, Path(work)))), flush=True)
        return 0
    entries = select([i for i in args.ids.split(",") if i] or None, args.subset)
    routes = [r for r in args.routes.split(",") if r]
    tools = [t for t in args.tools.split(",") if t]
    cells: list[Cell] = []
    command = ("python benchmarks/bench_coverage.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    for e in entries:
        model_path(e["id"])  # provision before timing anything
        for route in routes_for(e):
            if routes and route not in routes:
                continue
            for tool in tools:
                cell = spawn(e["id"], route, tool, args.timeout)
                cells.append(cell)
                state = "pass" if cell.ok else f"FAIL {cell.stage}: {cell.reason}"
                print(f"{e['id']:32s} {route:18s} {tool:10s} {cell.seconds:6.1f}s {state}", flush=True)
                _write(args.results, cells, command, args.name)  # after every cell: a stopped run keeps its cells
    _write(args.results, cells, command, args.name)
    return 0


def _write(results: Path, cells: list[Cell], command: str, name: str = "coverage") -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps([dataclasses.asdict(c) for c in cells], indent=1))
    (results / f"{name}.md").write_text(render(cells, environment(), command))


if __name__ == "__main__":
    sys.exit(main())
