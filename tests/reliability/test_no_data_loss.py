"""No data loss: every write is temp-then-rename, and no verb writes over its own input.

1. A static audit of ``src/modelport``: every call that writes a file (``Path.write_bytes/write_text``,
   ``open(…, "w")``, ``onnx.save``, ``np.save``, ``shutil.copyfile``, an engine's ``save``/``save_model`` …) is one of
   ``model_io``'s atomic writers (``write_text``, ``write_bytes``, ``save_model``), or runs inside
   ``with atomic_path(…)`` / ``with atomic_files(…)`` (a temporary path in the destination folder, renamed into
   place) or a private temporary folder, or is listed in :data:`PRIVATE_WRITES` with the reason its path is a
   temporary one. A new raw write into a user's folder fails this test.
2. Refusing to overwrite the input: for each verb that writes a model, an output that is the input (same path, a
   symlink or a hard link to it), an output folder holding a file of the same name, or an output whose external
   data file is the input's, ends in one ``modelport: error: … refusing to overwrite …`` line, exit code 2, and the
   input folder byte-for-byte as it was.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
from pathlib import Path

import onnx
import pytest

from modelport.assets import default_model_path
from modelport.cli.main import main

SRC = Path(main.__code__.co_filename).resolve().parents[1]  # src/modelport

#: calls that write a file, by the called name (attribute or bare name)
WRITERS = frozenset(
    {"write_bytes", "write_text", "save", "save_model", "savez", "savez_compressed", "copyfile", "copy2", "copytree"}
)
#: the atomic writers of model_io (called by bare name after ``from modelport.model_io import …``)
ATOMIC_WRITERS = frozenset({"write_bytes", "write_text", "save_model"})
#: ``with`` contexts under which a write goes to a temporary path
GUARDS = frozenset({"atomic_path", "atomic_files", "TemporaryDirectory", "mkdtemp"})
#: (module, function) → why its raw write is to a temporary path (checked by reading the code)
PRIVATE_WRITES: dict[tuple[str, str], str] = {
    ("cluster/tasks.py", "transcribe"): "the audio sent to an archive actor, into the actor's TemporaryDirectory",
    ("conversion/_onnx2tf_worker.py", "_write_map"): "the tensor map, into onnx2tf's private work folder",
    ("conversion/onnx_tflite.py", "_attempt"): "calibration stand-in, into the attempt's private work folder",
    ("conversion/tflite_prep.py", "prepare_tflite"): "the prepared copy, into the caller's TemporaryDirectory",
    ("conversion/torch_onnx.py", "_dynamo"): "the exported program, into export_onnx's TemporaryDirectory",
    ("conversion/worker.py", "run_worker"): "the request file, into the worker's private work folder",
    ("conversion/worker.py", "serve"): "the result file, into the worker's private work folder",
    ("conversion/tf.py", "export_keras"): "a SavedModel at a path its callers take from atomic_path or a temp dir",
    ("quantization/_tflite_worker.py", "_saved_model"): "a SavedModel in the worker's temporary folder",
    ("quantization/ort.py", "preprocess"): "the pre-processed copy, into build's TemporaryDirectory",
    ("quantization/tflite.py", "build"): "calibration arrays, into the build's private work folder",
    ("rewriting/nms_split.py", "split_before_nms"): "head and tail, at paths in its callers' temporary folders",
    ("apps/vision/video.py", "__init__"): "the video, into mkstemp beside the target, os.replace'd on close",
}


def _called_name(call: ast.Call) -> tuple[str | None, bool]:
    """The called name and whether it is a bare name (``f(…)``) rather than an attribute (``x.f(…)``)."""
    if isinstance(call.func, ast.Attribute):
        return call.func.attr, False
    if isinstance(call.func, ast.Name):
        return call.func.id, True
    return None, False


def _opens_for_writing(call: ast.Call, name: str | None) -> bool:
    if name != "open":
        return False
    modes = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "mode")]
    return any(isinstance(m, ast.Constant) and isinstance(m.value, str) and set(m.value) & set("wax") for m in modes)


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.With):
            for item in node.items:
                ctx = item.context_expr
                if isinstance(ctx, ast.Call) and _called_name(ctx)[0] in GUARDS:
                    return True
    return False


def _function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node.name
    return "<module>"


def raw_writes(path: Path) -> list[tuple[str, int, str]]:
    """``(function, line, call)`` of every file write in ``path`` that is neither atomic nor in a temporary folder."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    from_model_io = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "modelport.model_io"
        for alias in node.names
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name, bare = _called_name(node)
        if not (name in WRITERS or _opens_for_writing(node, name)):
            continue
        if bare and name in ATOMIC_WRITERS and name in from_model_io:
            continue
        if isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) in ("json", "pickle"):
            continue
        if _guarded(node, parents):
            continue
        found.append((_function(node, parents), node.lineno, ast.unparse(node.func)))
    return found


def test_every_write_is_atomic_or_private() -> None:
    unlisted = []
    used = set()
    for path in sorted(SRC.rglob("*.py")):
        module = str(path.relative_to(SRC))
        if module == "model_io.py":  # the atomic writers themselves
            continue
        for function, line, call in raw_writes(path):
            if (module, function) in PRIVATE_WRITES:
                used.add((module, function))
            else:
                unlisted.append(f"{module}:{line} {function}: {call}(…)")
    assert not unlisted, "writes that are not atomic (use model_io.atomic_path / write_bytes / save_model):\n" + (
        "\n".join(unlisted)
    )
    stale = sorted(set(PRIVATE_WRITES) - used)
    assert not stale, f"PRIVATE_WRITES entries with no raw write left (remove them): {stale}"


def test_the_audit_sees_a_raw_write(tmp_path: Path) -> None:
    """The scanner itself: a plain write is found; the same write under atomic_path, or model_io's, is not."""
    module = tmp_path / "m.py"
    module.write_text(
        "from modelport.model_io import atomic_path, write_text\n"
        "def raw(p):\n    p.write_bytes(b'x')\n    open(p, 'wb').close()\n"
        "def safe(p):\n    write_text(p, 'x')\n    with atomic_path(p) as tmp:\n        tmp.write_bytes(b'x')\n"
    )
    assert [(f, c) for f, _, c in raw_writes(module)] == [("raw", "p.write_bytes"), ("raw", "open")]


# --- refusing to overwrite the input ----------------------------------------------------------------------------


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """``m.onnx`` (MNIST), ``model.onnx`` (a copy), ``a.onnx`` whose weights are in ``b.onnx.data``, ``m.xml/.bin``,
    and links to ``m.onnx``: ``soft.onnx`` (symlink) and ``hard.onnx`` (hard link)."""
    shutil.copyfile(default_model_path(), tmp_path / "m.onnx")
    shutil.copyfile(default_model_path(), tmp_path / "model.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.save_model(proto, str(tmp_path / "a.onnx"), save_as_external_data=True, location="b.onnx.data")
    (tmp_path / "soft.onnx").symlink_to("m.onnx")
    os.link(tmp_path / "m.onnx", tmp_path / "hard.onnx")
    import openvino as ov

    ov.save_model(ov.convert_model(str(tmp_path / "m.onnx")), str(tmp_path / "m.xml"), compress_to_fp16=False)
    return tmp_path


#: case → command line (``{d}``: the folder): each would write over a file of its own input
REFUSED: dict[str, str] = {
    "optimize-same": "optimize {d}/m.onnx -o {d}/m.onnx",
    "optimize-symlink": "optimize {d}/m.onnx -o {d}/soft.onnx",
    "optimize-hardlink": "optimize {d}/m.onnx -o {d}/hard.onnx",
    "optimize-via-symlink": "optimize {d}/soft.onnx -o {d}/m.onnx",
    "rewrite-hardlink": "rewrite {d}/m.onnx --rules neg-to-mul -o {d}/hard.onnx",
    "edit-set-batch-same": "edit set-batch {d}/m.onnx --batch 2 -o {d}/m.onnx",
    "edit-rename-hardlink": "edit rename {d}/m.onnx --map image=x -o {d}/hard.onnx",
    "edit-merge-second": "edit merge {d}/model.onnx {d}/m.onnx --parallel -o {d}/soft.onnx",
    "edit-shrink-external-data": "edit shrink-constants {d}/a.onnx --external-threshold 1024 -o {d}/b.onnx",
    "edit-ir-same": "edit ir-rename {d}/m.xml --map logits=y -o {d}/m.xml",
    "convert-into-its-folder": "convert {d}/m.onnx --to onnx -o {d}",
    "port-into-its-folder": "port {d}/model.onnx --to onnxruntime --precision fp32 --no-optimize -o {d}",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_output_over_the_input_is_refused(case: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = fingerprint(folder)
    code = main(REFUSED[case].format(d=folder).split())
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("modelport: error: ") and "Traceback" not in err, err
    assert "refusing to overwrite" in lines[0], lines[0]
    assert fingerprint(folder) == before
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], "temporary entries left behind"
