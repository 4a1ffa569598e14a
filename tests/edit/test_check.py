"""``modelport.edit.CheckOptions``: one options dataclass for how every edit is checked — the public surface takes
it as ``check=`` everywhere, and each of its fields reaches the check (user feeds, threads, tolerance, shapes)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import pytest

import modelport.edit as edit
import models
from modelport.edit import CheckOptions
from modelport.errors import InvalidInputError
from modelport.verify.tolerance import Tolerance

#: every edit function of the public surface (the TFLite JSON converters are no checked edits)
EDITS = tuple(n for n in edit.__all__ if n.islower() and "tflite" not in n)
#: the keywords CheckOptions replaces
OLD_KEYWORDS = {"verify", "tolerance", "seed", "input_shapes", "feeds", "threads"}


def test_every_edit_takes_one_check_keyword_even_after_importing_every_module() -> None:
    assert len(EDITS) == 12 and {"merge", "extract", "rename", "ir_set_shape"} <= set(EDITS)
    for info in pkgutil.walk_packages(edit.__path__, "modelport.edit."):
        importlib.import_module(info.name)  # a module named like a function would rebind it here
    for name in EDITS:
        fn = getattr(edit, name)
        assert inspect.isfunction(fn), name
        params = inspect.signature(fn).parameters
        assert params["check"].kind is inspect.Parameter.KEYWORD_ONLY and params["check"].default is None, name
        assert not OLD_KEYWORDS & set(params), (name, OLD_KEYWORDS & set(params))
        assert "batch" not in params or name == "set_batch", name  # set_batch's own batch is the edit, not the check


@pytest.mark.parametrize(("field", "value", "message"), [("batch", 0, "batch must be ≥ 1"), ("threads", 0, "threads")])
def test_check_options_refuse_bad_values(field: str, value: int, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        CheckOptions(**{field: value})
    assert CheckOptions(input_shapes=(("x", (2, 8)),)).shapes == {"x": (2, 8)} and CheckOptions().shapes is None


def _x(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(3).random((batch, 8), dtype=np.float32)}


def test_tensor_edits_verify_on_the_users_feeds(tmp_path: Path) -> None:
    """Random feeds never have batch 5: an output of that shape shows the user's feeds were used."""
    model = models.mlp()
    renamed = edit.rename(model, {"x": "image"}, check=CheckOptions(feeds=_x(5)))  # feeds by the original's names
    v = renamed.report.verification
    assert v is not None and v.passed and v.max_abs == 0.0 and v.outputs[0].shape == (5, 4)
    npz = tmp_path / "feeds.npz"
    np.savez(npz, **_x(5))
    for result in (
        edit.shrink_constants(model, check=CheckOptions(feeds=npz)),
        edit.set_opset(model, 18, check=CheckOptions(feeds=str(npz))),
        edit.set_batch(model, 5, check=CheckOptions(feeds=npz)),
    ):
        v = result.report.verification
        assert v is not None and v.passed and v.outputs[0].shape == (5, 4), result.report.edit
    with pytest.raises(InvalidInputError, match=r"feed for 'x' has shape \[5, 8\], the model expects \[3, 8\]"):
        edit.set_batch(model, 3, check=CheckOptions(feeds=npz))  # feeds must fit the edited model
    with pytest.raises(InvalidInputError, match="unknown input"):
        edit.rename(model, {"x": "image"}, check=CheckOptions(feeds={"image": _x(2)["x"]}))


def test_graph_and_ir_edits_take_feeds_tolerance_and_shapes(tmp_path: Path) -> None:
    model = models.mlp()
    tol = Tolerance.for_precision("fp32").with_overrides(atol=1e-3)
    result = edit.add_outputs(model, ["h"], check=CheckOptions(feeds=_x(5), tolerance=tol))
    v = result.report.verification
    assert v is not None and v.tolerance.atol == 1e-3 and {o.shape for o in v.outputs} == {(5, 4), (5, 16)}
    shaped = edit.remove_outputs(result.model, ["h"], check=CheckOptions(input_shapes=(("x", (7, 8)),)))
    assert shaped.report.verification is not None and shaped.report.verification.outputs[0].shape == (7, 4)
    onnx_path = models.save(model, tmp_path / "m.onnx")
    xml = tmp_path / "m.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    ir = edit.ir_rename(xml, {"x": "image"}, check=CheckOptions(feeds={"image": _x(5)["x"]}, tolerance=tol))
    v = ir.report.verification
    assert v is not None and v.passed and v.tolerance.atol == 1e-3 and v.outputs[0].shape == (5, 4)
    with pytest.raises(InvalidInputError, match="missing input"):
        edit.ir_rename(xml, {"x": "image"}, check=CheckOptions(feeds=_x(5)))  # the IR's new names


def test_threads_reach_every_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sources and the result all open with the check's threads."""
    from modelport.verify.session import OnnxSession

    seen: list[int | None] = []

    class Recording(OnnxSession):
        def __init__(self, proto: Any, threads: int | None = None) -> None:
            seen.append(threads)
            super().__init__(proto, threads)

    for info in pkgutil.walk_packages(edit.__path__, "modelport.edit."):
        module = importlib.import_module(info.name)
        if getattr(module, "OnnxSession", None) is OnnxSession:
            monkeypatch.setattr(module, "OnnxSession", Recording)
    check = CheckOptions(threads=1)
    runs: list[Callable[[], object]] = [
        lambda: edit.merge([models.mlp(), models.mlp()], parallel=True, check=check),
        lambda: edit.extract(models.mlp(), ["h"], ["y"], check=check),
        lambda: edit.set_opset(models.mlp(), 18, check=check),
    ]
    for run in runs:
        seen.clear()
        run()
        assert len(seen) >= 2 and set(seen) == {1}, seen
