"""TFLite conversions in a child process: ``python -m modelport.quantization._tflite_worker request.json``.

Writes the float32, float16 and full-integer INT8 TFLite models of a SavedModel (or Keras file) with TensorFlow's
``TFLiteConverter``; INT8 uses the calibration samples of ``calib`` (an .npz, one array per signature input, samples
along axis 0) as the representative dataset, builtin int8 kernels only (``TFLITE_BUILTINS_INT8``: the conversion
fails instead of leaving float ops), per-channel weights, and float or int8 model inputs/outputs. TensorFlow runs
here, not in the caller's process (it is slow to import and must not meet an already imported torch); the parent
is :func:`modelport.quantization.tflite.build`, through the protocol of :mod:`modelport.conversion.worker`. Not
part of the public API.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from modelport.conversion.worker import serve


def _saved_model(source: str, kind: str, tmp: str) -> str:
    """A SavedModel directory for the source (a Keras file is exported first)."""
    if kind == "saved_model":
        return source
    try:
        import keras

        model = keras.saving.load_model(source)
        model.export(tmp)  # Keras 3: a SavedModel with a serving signature
    except Exception:  # legacy .h5 files: tf_keras
        import tensorflow as tf
        import tf_keras

        model = tf_keras.models.load_model(source)
        tf.saved_model.save(model, tmp)
    return tmp


def _converter(tf: Any, saved_model: str) -> Any:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _representative(np: Any, calib: str, keys: list[str]) -> Any:
    with np.load(calib, allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k]) for k in data.files}
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"calibration data lacks signature input(s) {missing}; it has {sorted(arrays)}")
    n = len(next(iter(arrays.values())))

    def gen() -> Any:
        for i in range(n):
            yield {k: arrays[k][i : i + 1] for k in keys}

    return gen


def convert(request: dict[str, Any]) -> None:
    import numpy as np
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="modelport-keras-") as tmp:
        saved = _saved_model(request["source"], request["kind"], tmp)
        loaded = tf.saved_model.load(saved)
        signature = loaded.signatures.get("serving_default") or next(iter(loaded.signatures.values()))
        keys = list(signature.structured_input_signature[1])
        outputs = request["outputs"]
        if outputs.get("fp32"):
            Path(outputs["fp32"]).write_bytes(_converter(tf, saved).convert())
        if outputs.get("fp16"):
            conv = _converter(tf, saved)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
            Path(outputs["fp16"]).write_bytes(conv.convert())
        conv = _converter(tf, saved)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.representative_dataset = _representative(np, request["calib"], keys)
        io_type = tf.int8 if request.get("int8_io") else tf.float32
        conv.inference_input_type = io_type
        conv.inference_output_type = io_type
        Path(outputs["int8"]).write_bytes(conv.convert())


def main(argv: list[str]) -> int:
    return serve(argv, convert)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
