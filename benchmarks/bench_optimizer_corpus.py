"""Optimizer node counts on the real-model corpus: modelport optimize vs onnxsim, onnxslim and onnxoptimizer.

    MODELPORT_CORPUS_CACHE=… .venv/bin/python benchmarks/bench_optimizer.py --corpus [--ids a,b] [--timeout 600]

(``bench_optimizer.py --corpus`` runs :func:`main` of this module.) For every ONNX model of
``benchmarks/corpus/manifest.json`` each tool runs in its own child process with a time limit:

- **onnxsim** 0.8.1: ``onnxsim.simplify(model)`` (its own check must pass);
- **onnxslim** 0.1.98: ``onnxslim.slim(model)``;
- **onnxoptimizer**: ``onnxoptimizer.optimize(model)`` with its default passes;
- **modelport**: ``modelport.optimize(path)`` with its defaults (default passes, verification on: a model whose
  verification fails is a failure; a pass rolled back is recorded with its reason).

Every output is then judged alike, so a tool that breaks a model does not "win": ``onnx.checker`` (full check,
with shape inference) on the saved file, then the input and the output run in ONNX Runtime on seeded random
feeds of the manifest's ``verify_shapes`` (and ``verify_shapes_alt`` when the output kept the dims dynamic),
compared by :func:`modelport.verify.comparator.check` at the fp32 policy with the source's own precision as
the floor (``bench_coverage.judge``, the one the coverage benchmark uses).

Node counts are taken from the saved ONNX file: every node of the main graph plus, recursively, every node of
every sub-graph attribute (``If`` branches, ``Loop``/``Scan`` bodies); function bodies are not counted (no
tool inlines or outlines functions on this corpus). A tool is counted as "valid" only when its output passes
the checker and the comparison. Results: ``benchmarks/results/optimizer_corpus.{md,json}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "corpus"))

from bench_coverage import _first_line, judge  # noqa: E402
from provision import entry as manifest_entry  # noqa: E402
from provision import model_path, select  # noqa: E402

TOOLS = ("input", "onnxsim", "onnxslim", "onnxoptimizer", "modelport")
PEERS = ("onnxsim", "onnxslim", "onnxoptimizer")


@dataclasses.dataclass
class Cell:
    """One (model, tool) result."""

    id: str
    tool: str
    nodes: int | None = None
    valid: bool = False
    stage: str = ""  # where it failed: "run", "checker", "verify"; "" when valid
    reason: str = ""
    seconds: float = 0.0
    max_abs: float | None = None
    dynamic_kept: bool | None = None
    rolled_back: list[list[str]] = dataclasses.field(default_factory=list)


def count_nodes(graph: Any) -> int:
    """Nodes of ``graph`` and, recursively, of every sub-graph attribute (If/Loop/Scan)."""
    from modelport.model_guard import all_nodes

    return sum(1 for _ in all_nodes(graph))


def _save(model: Any, dst: Path) -> None:
    import onnx

    big = model.ByteSize() > 2**31 - 2**26
    onnx.save(model, str(dst), save_as_external_data=big, location=dst.name + ".data" if big else None)


def produce(tool: str, src: Path, dst: Path) -> list[list[str]]:
    """Write ``tool``'s output for ``src`` to ``dst``; returns modelport's rolled-back passes (name, why)."""
    import onnx

    if tool == "modelport":
        import modelport

        report = modelport.optimize(src).write(dst)
        return [list(r) for r in report.rolled_back]
    model = onnx.load(str(src))
    if tool == "onnxsim":
        import onnxsim

        model, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim could not validate its result")
    elif tool == "onnxslim":
        import onnxslim

        model = onnxslim.slim(model)
    elif tool == "onnxoptimizer":
        import onnxoptimizer

        model = onnxoptimizer.optimize(model)
    else:
        raise ValueError(f"unknown tool {tool!r}")
    _save(model, dst)
    return []


def run_cell(model_id: str, tool: str, work: Path) -> Cell:
    """Produce the tool's output, count its nodes, check and judge it (inside the child process)."""
    import onnx

    src = model_path(model_id, download=False)
    cell = Cell(model_id, tool)
    t0 = time.perf_counter()
    dst = src if tool == "input" else work / "model.onnx"
    try:
        if tool != "input":
            cell.rolled_back = produce(tool, src, dst)
    except BaseException as exc:  # a tool failing on a model is a result
        cell.stage, cell.reason, cell.seconds = "run", _first_line(exc), time.perf_counter() - t0
        return cell
    cell.seconds = time.perf_counter() - t0
    cell.nodes = count_nodes(onnx.load(str(dst), load_external_data=False).graph)
    if tool == "input":
        cell.valid = True
        return cell
    try:
        onnx.checker.check_model(str(dst), full_check=True)
    except BaseException as exc:
        cell.stage, cell.reason = "checker", _first_line(exc)
        return cell
    try:
        ok, reason, cell.max_abs, cell.dynamic_kept = judge(manifest_entry(model_id), src, dst)
    except BaseException as exc:
        ok, reason = False, _first_line(exc)
    cell.valid, cell.stage, cell.reason = ok, "" if ok else "verify", reason
    return cell


def spawn(model_id: str, tool: str, timeout: float) -> Cell:
    """Run one cell in a child process; a crash or a timeout is the cell's result."""
    with tempfile.TemporaryDirectory(prefix="mp-optcorpus-") as tmp:
        cmd = [sys.executable, __file__, "--cell", json.dumps([model_id, tool, tmp])]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return Cell(model_id, tool, stage="run", reason=f"timed out after {timeout:.0f} s", seconds=timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{") and '"tool"' in ln]
        if not lines:
            tail = proc.stderr.strip().splitlines()
            why = _first_line(tail[-1] if tail else f"exit {proc.returncode}")
            return Cell(model_id, tool, stage="run", reason=f"crashed: {why}", seconds=time.perf_counter() - t0)
        return Cell(**json.loads(lines[-1]))


# ---------------------------------------------------------------------------------------------------------------
# Report


def verdict(tools: dict[str, Cell]) -> tuple[str, int | None]:
    """modelport against the best valid peer: ("yes (fewer)" / "yes (equal)" / "**no** (+n)" / …, best)."""
    peers = [tools[t].nodes for t in PEERS if t in tools and tools[t].valid and tools[t].nodes is not None]
    best = min(peers) if peers else None
    mine = tools.get("modelport")
    if mine is None or not mine.valid or mine.nodes is None:
        return "**no** (modelport failed)", best
    if best is None:
        return "yes (no valid peer)", best
    if mine.nodes < best:
        return f"yes (−{best - mine.nodes})", best
    if mine.nodes == best:
        return "yes (equal)", best
    return f"**no** (+{mine.nodes - best})", best


def _cell_text(c: Cell | None) -> str:
    if c is None:
        return "—"
    if c.valid or c.tool == "input":
        return str(c.nodes)
    shown = f"{c.nodes} " if c.nodes is not None else ""
    return f"{shown}✗ {c.stage}"


def render(cells: list[Cell], env: str, command: str, baseline: dict[str, Cell] | None = None) -> str:
    """The Markdown page; ``baseline`` (model id → an earlier modelport cell) adds a "before" column."""
    by_model: dict[str, dict[str, Cell]] = {}
    for c in cells:
        by_model.setdefault(c.id, {})[c.tool] = c
    wins = sum(verdict(t)[0].startswith("yes") for t in by_model.values())
    before_head = " modelport before |" if baseline else ""
    lines = [
        "# Optimizer on the real-model corpus: modelport vs onnxsim, onnxslim, onnxoptimizer",
        "",
        f"`{command}` — {env}",
        "",
        "Nodes = main graph + every sub-graph (If/Loop/Scan bodies), counted on the saved file. A peer's count "
        'enters "best valid peer" only when its output passes `onnx.checker` (full check) and matches the input '
        "in ONNX Runtime (the coverage benchmark's comparator, fp32 policy); `✗ stage` marks an output that failed "
        "(run: the tool raised or timed out; checker; verify). modelport runs with its defaults (verification on; "
        "rolled-back passes listed below).",
        "",
        f"**modelport ≤ best valid peer on {wins} of {len(by_model)} models.**"
        + (" *modelport before*: an earlier run given with `--baseline` (✗: it failed there)." if baseline else ""),
        "",
        f"| model | input | onnxsim | onnxslim | onnxoptimizer |{before_head} modelport | best valid peer "
        "| modelport ≤ best |",
        "|---|---:|---:|---:|---:|" + ("---:|" if baseline else "") + "---:|---:|:---:|",
    ]
    for model, tools in by_model.items():
        text, best = verdict(tools)
        cols = [_cell_text(tools.get(t)) for t in TOOLS]
        if baseline is not None:
            cols.insert(4, _cell_text(baseline.get(model)))
        lines.append(f"| {model} | {' | '.join(cols)} | {best if best is not None else '—'} | {text} |")
    lines += ["", "## Failures and roll-backs", "", "| model | tool | stage | reason |", "|---|---|---|---|"]
    for c in cells:
        if not c.valid and c.tool != "input":
            lines.append(f"| {c.id} | {c.tool} | {c.stage} | {c.reason.replace('|', '/')} |")
        for name, why in c.rolled_back:
            lines.append(f"| {c.id} | {c.tool} | rolled back `{name}` | {why.replace('|', '/')[:300]} |")
    lines += ["", "## Seconds per tool", "", "| model | " + " | ".join(TOOLS[1:]) + " |", "|---|" + "---:|" * 4]
    for model, tools in by_model.items():
        secs = " | ".join(f"{tools[t].seconds:.1f}" if t in tools else "—" for t in TOOLS[1:])
        lines.append(f"| {model} | {secs} |")
    return "\n".join(lines) + "\n"


def environment() -> str:
    from importlib.metadata import version

    names = ("onnx", "onnx-ir", "onnxscript", "onnxruntime", "onnxsim", "onnxslim", "onnxoptimizer")
    out = []
    for n in names:
        try:
            out.append(f"{n} {version(n)}")
        except Exception:
            out.append(f"{n} ?")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", default="", help="comma-separated model ids (default: every ONNX model)")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per (model, tool)")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, help="re-render from earlier JSON files")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="an earlier run's JSON: its modelport counts as a 'before' column"
    )
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        model_id, tool, work = json.loads(args.cell)
        print(json.dumps(dataclasses.asdict(run_cell(model_id, tool, Path(work)))), flush=True)
        return 0
    command = "python benchmarks/bench_optimizer.py --corpus " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.merge:
        merged: dict[tuple[str, str], Cell] = {}
        for path in args.merge:  # later files replace earlier cells of the same (model, tool)
            for c in json.loads(path.read_text())["cells"]:
                merged[(c["id"], c["tool"])] = Cell(**c)
        _write(args.results, list(merged.values()), command.strip(), _baseline(args.baseline))
        return 0
    ids = [i for i in args.ids.split(",") if i] or None
    entries = [e for e in select(ids) if e["format"] == "onnx"]
    tools = [t for t in args.tools.split(",") if t]
    cells: list[Cell] = []
    for e in entries:
        model_path(e["id"])  # provision before timing anything
        for tool in tools:
            cell = spawn(e["id"], tool, args.timeout)
            cells.append(cell)
            state = "valid" if cell.valid else f"FAIL {cell.stage}: {cell.reason}"
            print(f"{e['id']:28s} {tool:14s} {cell.seconds:6.1f}s nodes={cell.nodes} {state}", flush=True)
    _write(args.results, cells, command.strip(), _baseline(args.baseline))
    return 0


def _baseline(path: Path | None) -> dict[str, Cell] | None:
    if path is None:
        return None
    cells = [Cell(**c) for c in json.loads(path.read_text())["cells"]]
    return {c.id: c for c in cells if c.tool == "modelport"}


def _write(results: Path, cells: list[Cell], command: str, baseline: dict[str, Cell] | None = None) -> None:
    results.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "environment": environment(), "cells": [dataclasses.asdict(c) for c in cells]}
    if baseline is not None:
        payload["baseline"] = [dataclasses.asdict(c) for c in baseline.values()]
    (results / "optimizer_corpus.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    (results / "optimizer_corpus.md").write_text(render(cells, environment(), command, baseline), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
