"""``inspect`` for SavedModel directories, read from ``saved_model.pb`` (``saved_model_cli show`` reads the same):
every signature of the serving meta graph with dtypes and dims (−1 → None), the op histogram of the graph and its
function library, and the variables from the checkpoint index. Other TensorFlow formats (GraphDef, Keras) are not
read yet.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ModelLoadError
from modelport.formats import Format
from modelport.inputs import TensorSpec
from modelport.inspection.summary import ModelSummary, SignatureSummary


def _tensor_info_spec(tf: Any, key: str, info: Any) -> TensorSpec:
    dtype = np.dtype(tf.dtypes.as_dtype(info.dtype).as_numpy_dtype).name
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(None if d.size < 0 else int(d.size) for d in shape.dim)
    return TensorSpec(key, dtype, dims)


def _constants(graph_def: Any) -> tuple[int, int]:
    """Elements and bytes of the Const tensors of a graph (a frozen graph keeps its weights there)."""
    elements = size = 0
    for node in graph_def.node:
        if node.op == "Const" and "value" in node.attr:
            tensor = node.attr["value"].tensor
            elements += int(np.prod([d.size for d in tensor.tensor_shape.dim])) if tensor.tensor_shape.dim else 1
            size += len(tensor.tensor_content)
    return elements, size


def inspect_saved_model(path: Path, fmt: Format | None = None) -> ModelSummary:
    """Summarise a SavedModel directory: signatures (dtypes, −1 dims), ops, variables."""
    if fmt is not None and fmt is not Format.SAVED_MODEL:
        raise ModelLoadError(f"inspect does not read {fmt.value} models yet", path=path, hint="save it as a SavedModel")
    from modelport.backends.tensorflow import import_tensorflow

    tf = import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb = path / "saved_model.pb"
    if not pb.exists():
        raise ModelLoadError("only binary SavedModels (saved_model.pb) are read", path=path)
    proto.ParseFromString(pb.read_bytes())
    meta = next((m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags), proto.meta_graphs[0])
    signatures = tuple(
        SignatureSummary(
            key,
            sig.method_name,
            tuple(_tensor_info_spec(tf, k, v) for k, v in sorted(sig.inputs.items())),
            tuple(_tensor_info_spec(tf, k, v) for k, v in sorted(sig.outputs.items())),
        )
        for key, sig in sorted(meta.signature_def.items())
        if not key.startswith("__")
    )
    hist: collections.Counter[str] = collections.Counter(n.op for n in meta.graph_def.node)
    for fn in meta.graph_def.library.function:
        hist.update(n.op for n in fn.node_def)
    params, bytes_ = _constants(meta.graph_def)
    variables = path / "variables" / "variables"
    if (path / "variables" / "variables.index").exists():
        params += sum(int(np.prod(shape)) for _, shape in tf.train.list_variables(str(variables)))
        bytes_ += sum(f.stat().st_size for f in (path / "variables").glob("variables.data-*"))
    serving = next((s for s in signatures if s.key == "serving_default"), signatures[0] if signatures else None)
    files = [f for f in path.rglob("*") if f.is_file()]
    return ModelSummary(
        path=str(path),
        format=Format.SAVED_MODEL,
        file_bytes=sum(f.stat().st_size for f in files),
        inputs=serving.inputs if serving else (),
        outputs=serving.outputs if serving else (),
        opsets=(),
        op_histogram=tuple(hist.most_common()),
        node_count=sum(hist.values()),
        parameter_count=params,
        parameter_bytes=bytes_,
        producer=f"tensorflow {meta.meta_info_def.tensorflow_version}".strip(),
        signatures=signatures,
    )
