"""Runs onnx2tf in a child process: ``python -m modelport.conversion._onnx2tf_worker request.json``.

The parent is :func:`modelport.conversion.onnx_tflite.run_onnx2tf`, through the protocol of
:mod:`modelport.conversion.worker`: the request is a JSON object of ``onnx2tf.convert`` keyword arguments, and the
working directory is a staging directory that holds the private copy of the model and the calibration sample
onnx2tf would otherwise download. Not part of the public API.

**Tensor-name map.** onnx2tf keeps no ONNX tensor name, but the TFLite tensors are named after the Keras layers it
built (``model/<layer>/<TF op>``, ``;``-joined where the TFLite converter fused several). Once every ONNX node is
converted, onnx2tf hands its ``tf_layers_dict`` (ONNX tensor name, as onnx2tf sanitized it → ``{"tf_node": …}``) to
``get_tf_model_outputs``; the worker wraps that function to read, for each ONNX tensor, the name of the Keras layer
that produced its value (read once the conversion is done: onnx2tf renames the output layers last), and writes
``{ONNX tensor name (as in the copy): layer name}`` in the copy's graph order, with every layer name of the Keras
model in its topological order (``model.layers``), to :data:`TENSOR_MAP_FILE` in the output folder.
Capturing the map never fails the conversion (a failure is logged at debug level, the map left out).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.conversion.worker import serve

log = logging.getLogger(__name__)

#: the file, in onnx2tf's output folder, that holds ``{ONNX tensor name: Keras layer name}``
TENSOR_MAP_FILE = "modelport_tensor_map.json"


def _onnx2tf(request: dict[str, Any]) -> None:
    import onnx2tf
    import onnx2tf.onnx2tf as entry

    captured: dict[str, Any] = {}
    names = _onnx_names(Path(request["input_onnx_file_path"]))
    original = entry.get_tf_model_outputs
    entry.get_tf_model_outputs = functools.partial(_capturing, original, captured)  # type: ignore[attr-defined]
    try:
        model = onnx2tf.convert(**request)
    finally:
        entry.get_tf_model_outputs = original  # type: ignore[attr-defined]
    # read after the conversion: onnx2tf renames the output layers to the ONNX output names after that call
    _write_map(Path(request["output_folder_path"]), layer_names(captured), names, _layer_order(model))


def _capturing(original: Callable[..., Any], captured: dict[str, Any], **kwargs: Any) -> Any:
    """``get_tf_model_outputs`` that first records each ONNX tensor's Keras layer (only the first call counts)."""
    if not captured:
        try:
            captured.update(layers(kwargs.get("tf_layers_dict") or {}))
        except Exception as exc:  # the map is optional: never fail the conversion over it
            log.debug("tensor map not captured: %s", exc)
    return original(**kwargs)


def layers(tf_layers_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Sanitized ONNX tensor name → the Keras layer whose output holds its value (tensors that are constants or
    plain TensorFlow values, with no layer, are left out)."""
    out: dict[str, Any] = {}
    for key, entry in tf_layers_dict.items():
        node = entry.get("tf_node") if isinstance(entry, Mapping) else None
        history = getattr(node, "_keras_history", None)
        layer = getattr(history, "layer", None) or getattr(getattr(node, "node", None), "layer", None)
        if isinstance(key, str) and layer is not None:
            out[key] = layer
    return out


def layer_names(found: Mapping[str, Any]) -> dict[str, str]:
    """:func:`layers`' layers by name (a layer whose name cannot be read is left out)."""
    out: dict[str, str] = {}
    for key, layer in found.items():
        try:
            name = layer.name
        except Exception:  # optional map
            continue
        if isinstance(name, str) and name:
            out[key] = name
    return out


def _onnx_names(path: Path) -> list[str]:
    """Every tensor name of the copy onnx2tf converts (read before onnx2tf touches it), [] when it cannot be read."""
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # optional map
        log.debug("tensor map: cannot read %s: %s", path, exc)
        return []
    graph = proto.graph
    return [*(i.name for i in graph.input), *(o for n in graph.node for o in n.output if o)]


def _layer_order(model: Any) -> list[str]:
    """The Keras model's layer names in its topological order ([] when it cannot be read)."""
    try:
        return [str(layer.name) for layer in model.layers]
    except Exception as exc:  # optional map
        log.debug("tensor map: no layer order: %s", exc)
        return []


def sanitized(name: str) -> str:
    """The name onnx2tf gives an ONNX tensor (``:`` → ``__``; a leading ``/`` → ``wa/`` with signature defs on)."""
    return re.sub("^/", "wa/", name.replace(":", "__"))


def unsanitize(captured: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    """``captured`` keyed by the copy's ONNX names (a key onnx2tf did not rename is kept as it is), in the copy's
    graph order (the order per-tensor comparison relies on: of several source tensors fused into one TFLite tensor,
    the last holds its value)."""
    back: dict[str, str] = {}
    for name in names:
        for variant in (sanitized(name), name.replace(":", "__"), name):
            back.setdefault(variant, name)
    mapped = {back.get(k, k): v for k, v in captured.items()}
    order = {name: i for i, name in enumerate(names)}
    return dict(sorted(mapped.items(), key=lambda kv: order.get(kv[0], len(order))))


def _write_map(folder: Path, captured: Mapping[str, str], names: Sequence[str], order: Sequence[str]) -> None:
    """Write ``{"tensors": {ONNX name: layer}, "layers": [layer names in topological order]}``."""
    if not captured or not folder.is_dir():
        return
    try:
        path = folder / TENSOR_MAP_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tensors": unsanitize(captured, names), "layers": list(order)}), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.debug("tensor map not written: %s", exc)


def main(argv: list[str]) -> int:
    return serve(argv, _onnx2tf)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
