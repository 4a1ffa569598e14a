"""Inputs are never modified: every verb that reads a model leaves its input files byte-for-byte as they were.

Each case runs one real command line (``modelport VERB …`` through :func:`modelport.cli.main.main`, in this process,
on the shipped MNIST model and small files made from it) with the inputs in a folder of their own and the outputs
in another. Before and after, every file of the input folder is fingerprinted: SHA-256, size, mtime (ns) and mode.
The check is that the fingerprints are equal and that no file appeared in or vanished from the input folder (a verb
writes only where ``-o`` points). The inputs cover external data (``ext.onnx`` + ``ext.onnx.data``), an OpenVINO IR
(``.xml`` + ``.bin``), calibration data (``.npy``), feeds (``.npz``) and an image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from modelport.assets import default_model_path
from modelport.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: a tensor inside the MNIST graph (after the first conv block)
INNER = "/features/features.3/MaxPool_output_0"

Fingerprint = dict[str, tuple[str, int, int, int]]


def fingerprint(folder: Path) -> Fingerprint:
    """name → (sha256, size, mtime_ns, mode) of every file under ``folder``."""
    out: Fingerprint = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(folder))] = (digest, st.st_size, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The input folder: MNIST, MNIST with external data, an OpenVINO IR, calibration data, feeds, an image."""
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copyfile(default_model_path(), folder / "mnist.onnx")
    proto = onnx.load(str(folder / "mnist.onnx"))
    onnx.save_model(
        proto, str(folder / "ext.onnx"), save_as_external_data=True, location="ext.onnx.data", size_threshold=256
    )
    assert (folder / "ext.onnx.data").stat().st_size > 100_000
    import openvino as ov

    ov.save_model(ov.convert_model(str(folder / "mnist.onnx")), str(folder / "mnist.xml"), compress_to_fp16=False)
    rng = np.random.default_rng(0)
    np.save(folder / "calib.npy", rng.random((16, 1, 28, 28), dtype=np.float32))
    np.savez(folder / "feeds.npz", image=rng.random((1, 1, 28, 28), dtype=np.float32))
    from PIL import Image

    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(folder / "digit.png")
    old = 1_000_000_000  # an old mtime: a rewrite of the same bytes still shows
    for path in folder.iterdir():
        os.utime(path, ns=(old, old))
    return folder


#: case id → the command line: ``{i}`` is the input folder, ``{o}`` a fresh output folder (no spaces in either)
CASES: dict[str, str] = {
    "inspect": "inspect {i}/mnist.onnx",
    "inspect-external": "inspect {i}/ext.onnx --json",
    "inspect-ir": "inspect {i}/mnist.xml",
    "compare": "compare {i}/mnist.onnx {i}/ext.onnx --feeds {i}/feeds.npz",
    "compare-runtimes": "compare {i}/mnist.onnx -r onnxruntime,openvino",
    "bisect": "compare {i}/mnist.onnx {i}/ext.onnx --bisect --html {o}/b.html",
    "bench": "bench {i}/mnist.onnx --warmup 1 -n 2",
    "convert": "convert {i}/mnist.onnx --to openvino -o {o}",
    "convert-external": "convert {i}/ext.onnx --to onnx -o {o} --name copy",
    "optimize": "optimize {i}/mnist.onnx -o {o}/opt.onnx",
    "optimize-external": "optimize {i}/ext.onnx -o {o}/opt.onnx --feeds {i}/feeds.npz",
    "rewrite": "rewrite {i}/mnist.onnx --rules neg-to-mul -o {o}/rw.onnx",
    "quantize": "quantize {i}/mnist.onnx --calib {i}/calib.npy --samples 16 --seconds 0.02 --types u8s8 -o {o}",
    "port": "port {i}/ext.onnx --to onnxruntime --precision fp32 --seconds 0.02 --budget 0 -o {o}",
    "edit-merge": "edit merge {i}/mnist.onnx {i}/ext.onnx --parallel -o {o}/m.onnx",
    "edit-extract": f"edit extract {{i}}/mnist.onnx --inputs image --outputs {INNER} -o {{o}}/e.onnx",
    "edit-add-outputs": f"edit add-outputs {{i}}/ext.onnx {INNER} -o {{o}}/a.onnx",
    "edit-rename": "edit rename {i}/mnist.onnx --map image=x -o {o}/r.onnx",
    "edit-set-batch": "edit set-batch {i}/ext.onnx --batch 2 -o {o}/b.onnx",
    "edit-set-opset": "edit set-opset {i}/mnist.onnx --opset 18 -o {o}/s.onnx",
    "edit-shrink-constants": "edit shrink-constants {i}/ext.onnx -o {o}/c.onnx",
    "edit-ir-rename": "edit ir-rename {i}/mnist.xml --map logits=y -o {o}/ir.xml",
    "edit-ir-set-shape": "edit ir-set-shape {i}/mnist.xml --input-shape image:2,1,28,28 -o {o}/irs.xml",
    "classify": "classify {i}/mnist.onnx {i}/digit.png --json",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_verb_leaves_its_inputs_untouched(
    case: str, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # a stray relative write lands here, not beside the inputs
    before = fingerprint(inputs)
    code = main(CASES[case].format(i=inputs, o=out).split())
    err = capsys.readouterr().err
    assert code in (0, 1), err  # 1: a verification mismatch is still a finished run
    after = fingerprint(inputs)
    assert sorted(after) == sorted(before), f"{case} added or removed files among its inputs"
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"{case} modified its inputs: {changed}"
