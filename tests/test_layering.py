"""The import-linter contracts in pyproject.toml hold on the package, and they do catch what they forbid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src_parent: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the pyproject in ``cwd`` on the ``modelport`` package found in ``src_parent``."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(src_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of src/modelport and pyproject.toml that a test may break."""
    root = tmp_path_factory.mktemp("layering")
    shutil.copytree(ROOT / "src" / "modelport", root / "src" / "modelport", ignore=shutil.ignore_patterns("*.onnx"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_contracts_hold_on_the_package() -> None:
    proc = _lint(ROOT / "src", ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


def _break(tree: Path, module: str, line: str) -> None:
    path = tree / "src" / "modelport" / module
    path.write_text(path.read_text() + f"\n\ndef _injected() -> None:\n    {line}\n")


def test_an_upward_import_hidden_in_a_function_breaks_the_layers(tree_copy: Path) -> None:
    _break(tree_copy, "backends/base.py", "from modelport.porting import port  # noqa")
    proc = _lint(tree_copy / "src", tree_copy)
    assert proc.returncode != 0
    assert "modelport layers BROKEN" in proc.stdout
    assert "modelport.backends.base -> modelport.porting" in proc.stdout


def test_an_engine_import_in_a_descriptor_module_is_forbidden(tree_copy: Path) -> None:
    _break(tree_copy, "formats.py", "import openvino  # noqa")
    proc = _lint(tree_copy / "src", tree_copy)
    assert proc.returncode != 0
    assert "only a backend's own module imports its\nruntime BROKEN" in proc.stdout or "runtime BROKEN" in proc.stdout


def test_a_cycle_between_siblings_breaks_acyclicity(tree_copy: Path) -> None:
    # backends.onnxruntime imports backends.runner; the reverse, even inside a function, closes a cycle
    _break(tree_copy, "backends/runner.py", "from modelport.backends.onnxruntime import OnnxRuntimeRunner  # noqa")
    proc = _lint(tree_copy / "src", tree_copy)
    assert proc.returncode != 0
    assert "No cycles are allowed in modelport.backends" in proc.stdout
