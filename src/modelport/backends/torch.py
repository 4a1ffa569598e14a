"""PyTorch runner (eager and TorchScript) and the loader shared with the PyTorch converters.

A PyTorch model is one of:

* ``package.module:factory`` — an import path to a callable returning an ``nn.Module`` (eager mode). If the
  module has an ``example_inputs`` attribute (a tuple of tensors), its shapes and dtypes become the input specs.
* a TorchScript file (``torch.jit.save``) — run as TorchScript;
* an ExportedProgram file (``torch.export.save``, ``.pt2``) — its ``module()``, with the exported input specs;
* a pickled ``nn.Module`` (``torch.save(model)``) — unpickling runs code from the file, so it is refused unless
  ``trust_remote_code=True``; everything else loads with ``torch.load(weights_only=True)``.

Backend: PyTorch: runs TorchScript, exported programs and (trusted) pickled modules, as sources.
"""

from __future__ import annotations

import importlib
import inspect
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import register_backend
from modelport.backends.base import Backend
from modelport.backends.runner import Runner, RunnerInfo
from modelport.errors import (
    InferenceError,
    InvalidInputError,
    ModelLoadError,
    RuntimeUnavailable,
    first_line,
    optional_import,
)
from modelport.formats import Format, Precision
from modelport.inputs import TensorSpec

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def import_torch() -> Any:
    """Import torch or raise RuntimeUnavailable naming the extra."""
    return optional_import("torch", extra="torch", what="PyTorch")


def is_module_spec(source: str | Path) -> bool:
    """True for ``package.module:factory`` import paths that are not existing files."""
    text = str(source)
    return bool(_SPEC.match(text)) and not Path(text).exists()


def torch_file_kind(path: Path) -> str:
    """ "torchscript", "exported_program" or "pickle" for a torch zip archive (ModelLoadError otherwise)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(
            "not a PyTorch archive (torch.save / torch.jit.save / torch.export.save)", path=path
        ) from exc
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("models/model.json") for n in names):
        return "exported_program"
    if any(n.endswith("data.pkl") for n in names):
        return "pickle"
    raise ModelLoadError("unrecognised PyTorch archive", path=path)


def load_torch_model(source: str | Path, *, trust_remote_code: bool = False) -> tuple[Any, str, list[TensorSpec]]:
    """Load a PyTorch model for inference.

    Args:
        source: ``package.module:factory``, a TorchScript, ExportedProgram or pickled-module file.
        trust_remote_code: allow unpickling a whole module (runs code from the file).

    Returns:
        ``(module in eval mode, kind, input specs)``; kind is "eager", "torchscript" or "exported_program";
        the specs have shape None where the model does not tell.

    Raises:
        ModelLoadError: missing file, bad factory, a pickle without ``trust_remote_code``, a state_dict.
    """
    torch = import_torch()
    if is_module_spec(source):
        module = _from_factory(str(source))
        return module.eval(), "eager", _specs_from_module(module)
    path = Path(source)
    if not path.exists():
        raise ModelLoadError("file not found", path=path, hint="pass a model file or package.module:factory")
    kind = torch_file_kind(path)
    if kind == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ModelLoadError(f"cannot load TorchScript: {first_line(exc)}", path=path) from exc
        return module.eval(), kind, _specs_from_signature(module)
    if kind == "exported_program":
        if not trust_remote_code:
            _refuse_pickled_payloads(torch, path)
        try:
            program = torch.export.load(str(path))
        except Exception as exc:  # torch raises many types on a damaged archive
            raise ModelLoadError(f"cannot load the exported program: {first_line(exc)}", path=path) from exc
        return program.module(), kind, _specs_from_program(program)
    module = _from_pickle(torch, path, trust_remote_code)
    return module, "eager", _specs_from_module(module)


#: file-name prefixes of an ExportedProgram archive's constants that ``torch.export.load`` unpickles as objects
_OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")


def _refuse_pickled_payloads(torch: Any, path: Path) -> None:
    """Refuse an ExportedProgram archive whose pickled parts need more than ``torch.load(weights_only=True)``.

    ``torch.export.load`` unpickles sample inputs, legacy weight files and weights saved with ``use_pickle`` with
    the full unpickler when the weights-only one refuses them, and custom objects always: a crafted archive runs
    code. Each such part is tried here with the weights-only unpickler first; any refusal, and any custom object,
    refuses the file (``trust_remote_code`` lifts it).

    Raises:
        ModelLoadError: naming the first unsafe part.
    """
    import io
    import json

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        unsafe = [n for n in names if n.rsplit("/", 1)[-1].startswith(_OBJECT_PREFIXES)]
        pickled = [n for n in names if n.endswith(".pt")]  # sample inputs, legacy weights and constants
        for name in (n for n in names if n.endswith("_config.json") and "/data/" in f"/{n}"):
            try:
                config = json.loads(archive.read(name)).get("config", {})
                folder = name.rsplit("/", 1)[0]
                pickled += [f"{folder}/{m['path_name']}" for m in config.values() if m.get("use_pickle")]
            except (ValueError, AttributeError, KeyError, TypeError):
                unsafe.append(name)
        for name in pickled:
            blob = archive.read(name) if name in names else b""
            if not blob:
                continue
            try:
                torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            except Exception:  # the weights-only unpickler refuses it (or it is not a torch.save blob at all)
                unsafe.append(name)
    if unsafe:
        raise ModelLoadError(
            f"the exported program holds pickled Python objects ({unsafe[0]}); loading it would run code from the file",
            path=path,
            hint="pass --trust-remote-code if you trust its origin",
        )


def _from_factory(spec: str) -> Any:
    torch = import_torch()
    mod_name, fn_name = spec.split(":")
    try:
        factory = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"cannot import {spec}: {exc}", hint="write package.module:factory") from exc
    module = factory()
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"{spec} returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _from_pickle(torch: Any, path: Path, trust_remote_code: bool) -> Any:
    import pickle

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=not trust_remote_code)
    except pickle.UnpicklingError as exc:  # what the weights-only unpickler raises on anything but tensors
        raise ModelLoadError(
            "the file is a pickled Python object; unpickling it would run code from the file",
            path=path,
            hint="pass --trust-remote-code if you trust its origin, or save it with torch.jit.save/torch.export",
        ) from exc
    except Exception as exc:  # a damaged archive, or (trusted) code in the pickle that fails
        raise ModelLoadError(f"cannot load the PyTorch file: {first_line(exc)}", path=path) from exc
    if not isinstance(obj, torch.nn.Module):
        raise ModelLoadError(
            f"the file holds a {type(obj).__name__}, not a model (a state_dict has no architecture)",
            path=path,
            hint="pass package.module:factory building the model, or a TorchScript/ExportedProgram file",
        )
    return obj.eval()


def _specs_from_module(module: Any) -> list[TensorSpec]:
    examples = getattr(module, "example_inputs", None)
    names = _forward_names(module)
    if examples is None:
        return [TensorSpec(n, "float32", None) for n in names]
    examples = examples if isinstance(examples, tuple | list) else (examples,)
    if len(names) != len(examples):
        names = [f"input_{i}" for i in range(len(examples))]
    return [
        TensorSpec(n, str(t.dtype).removeprefix("torch."), tuple(int(d) for d in t.shape))
        for n, t in zip(names, examples, strict=True)
    ]


def _forward_names(module: Any) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return ["input"]
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _specs_from_signature(module: Any) -> list[TensorSpec]:
    try:
        args = module.forward.schema.arguments[1:]  # skip self
    except AttributeError:
        return [TensorSpec("input", "float32", None)]
    return [TensorSpec(a.name, "float32", None) for a in args]


def _specs_from_program(program: Any) -> list[TensorSpec]:
    user = {s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"}
    specs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            shape = tuple(int(d) if str(d).isdigit() else None for d in val.shape) if val is not None else None
            dtype = str(val.dtype).removeprefix("torch.") if val is not None else "float32"
            specs.append(TensorSpec(node.name, dtype, shape))
    return specs


class TorchRunner(Runner):
    """Runs a PyTorch model on CPU (eager or TorchScript) under ``torch.inference_mode``.

    Args:
        model: ``package.module:factory`` or a TorchScript / ExportedProgram / pickled-module file.
        options: threads (``torch.set_num_threads``, process-wide), device "cpu" or "cuda".
        loader: ``trust_remote_code`` (allow unpickling whole modules) and ``input_shapes`` (shapes for inputs the
            model does not describe; names from ``forward``'s signature).
    """

    name = "torch"

    def load(self) -> None:
        torch = import_torch()
        device = self.options.device.lower()
        if device not in ("cpu", "cuda"):
            raise RuntimeUnavailable(f"the torch runner runs on cpu or cuda, not {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable("torch has no CUDA device here", hint="use --device cpu")
        module, kind, specs = load_torch_model(str(self.model_path), trust_remote_code=self.loader.trust_remote_code)
        shapes = dict(self.loader.input_shapes)
        self._module = module.to(device)
        self._kind = kind
        self._device = device
        self._inputs = [TensorSpec(s.name, s.dtype, shapes[s.name]) if s.name in shapes else s for s in specs] or [
            TensorSpec(n, "float32", d) for n, d in shapes.items()
        ]
        if not self._inputs:
            raise InvalidInputError("cannot tell the model's inputs", hint="give --input-shape NAME:D1,D2,…")
        self._outputs = []  # learnt from the first run
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self._torch = torch

    def close(self) -> None:
        self._module = None

    @property
    def output_names(self) -> list[str]:
        if not self._outputs:
            raise InvalidInputError("the torch runner learns its outputs from a first run")
        return list(self._outputs)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from modelport.inputs import check_feeds

        check_feeds(feeds, self._inputs)
        outs = self._run(feeds)
        if len(self._outputs) != len(outs):
            self._outputs = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
        return dict(zip(self._outputs, outs, strict=True))

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            runtime=self.name,
            version=self._torch.__version__,
            device=self._device,
            requested_precision=self.options.precision.value,
            executed_precision="fp32",
            threads=self._torch.get_num_threads(),
            details=(("mode", self._kind),),
        )

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])).to(self._device) for s in self._inputs]
        try:
            with torch.inference_mode():
                out = self._module(*args)
        except Exception as exc:  # any error raised inside the user's forward
            raise InferenceError(f"the torch model failed: {first_line(exc)}", path=str(self.model_path)) from exc
        return [t.detach().cpu().numpy() for t in flatten_outputs(out)]


def flatten_outputs(out: Any) -> list[Any]:
    """Tensors of a forward's result in order (tensor, tuple/list, or dict by insertion order)."""
    if isinstance(out, dict):
        return [t for v in out.values() for t in flatten_outputs(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in flatten_outputs(v)]
    return [out]


def probe() -> tuple[str, tuple[str, ...]]:
    """The engine's version and the devices it sees here (imports the engine; RuntimeUnavailable without it)."""
    m = import_torch()
    return str(m.__version__), ("cpu",) + (("cuda",) if m.cuda.is_available() else ())


# ---------------------------------------------------------------------------------------------------
# The descriptor

F32, F16, BF16, I8 = Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8

BACKEND = register_backend(
    Backend(
        name="torch",
        aliases=("pytorch",),
        formats=(Format.TORCH,),
        precisions=(("cpu", (F32,)),),
        runner="modelport.backends.torch:TorchRunner",
        extra="torch",
        probe="modelport.backends.torch:probe",
        engine="torch",
    )
)
