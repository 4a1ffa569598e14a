"""Structural check of TFLite flatbuffers before any engine reads them (:func:`check_tflite`).

A flatbuffer passes LiteRT's verifier with any index wrong (indices are plain integers), and the readers that trust
them fail: Python's object API with ``IndexError``, LiteRT and TensorFlow's interpreters with ``ValueError``, and
TensorFlow's interpreter (which tf2onnx runs) with a segmentation fault on operators out of order. The check reads
the generated accessors only (no weight is copied): about 0.1 s for a 6 MB model.

A constant needs ``prod(shape) · itemsize`` bytes; its buffer must hold at least that many.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ModelLoadError, first_line


def _indices(values: Any) -> list[int]:
    return [int(v) for v in values] if not isinstance(values, int) else []


#: bytes per element of the TFLite tensor types whose constants are plain arrays (TensorType codes)
_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}


def _short_constant(tensor: Any, shape: list[int], data_bytes: int) -> str | None:
    """What is wrong with a constant tensor's declared shape against its buffer (a negative dim, fewer bytes than
    its elements need), or ``None``; sparse and packed (int4, string) constants are not checked."""
    if not data_bytes or tensor.Sparsity() is not None or tensor.Type() not in _ITEMSIZE:
        return None
    if any(d < 0 for d in shape):
        return f"constant with a negative dim {shape}"
    need = int(np.prod(shape, dtype=object)) * _ITEMSIZE[tensor.Type()]
    return f"constant of shape {shape} needs {need} bytes, its buffer holds {data_bytes}" if need > data_bytes else None


def _graph_problem(model: Any, g: int, n_codes: int, n_buffers: int) -> str | None:
    """What is wrong with subgraph ``g`` (an index out of range, an operator reading a tensor nothing wrote yet)."""
    graph = model.Subgraphs(g)
    n = graph.TensorsLength()
    ready = {i for i in _indices(graph.InputsAsNumpy()) if 0 <= i < n}
    for t in range(n):
        tensor = graph.Tensors(t)
        b = tensor.Buffer()
        if not 0 <= b < max(n_buffers, 1):
            return f"subgraph {g} tensor {t}: buffer index {b} is out of range (0..{n_buffers - 1})"
        buffer = model.Buffers(b) if n_buffers else None
        shape = _indices(tensor.ShapeAsNumpy())
        short = _short_constant(tensor, shape, buffer.DataLength() if buffer is not None else 0)
        if short:
            return f"subgraph {g} tensor {t}: {short}"
        empty = 0 in shape  # no element: nothing to write (a [0] reshape target)
        if empty or tensor.IsVariable() or (buffer is not None and (buffer.DataLength() or buffer.Offset() > 1)):
            ready.add(t)
    named = [("input", graph.InputsAsNumpy()), ("output", graph.OutputsAsNumpy())]
    for what, values in named:
        bad = [i for i in _indices(values) if not 0 <= i < n]
        if bad:
            return f"subgraph {g}: {what} tensor {bad[0]} is out of range (0..{n - 1})"
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        if not 0 <= op.OpcodeIndex() < n_codes:
            return f"subgraph {g} operator {k}: opcode index {op.OpcodeIndex()} is out of range (0..{n_codes - 1})"
        inputs, outputs = _indices(op.InputsAsNumpy()), _indices(op.OutputsAsNumpy())
        bad = [i for i in (*inputs, *outputs, *_indices(op.IntermediatesAsNumpy())) if not -1 <= i < n]
        if bad:
            return f"subgraph {g} operator {k}: tensor {bad[0]} is out of range (0..{n - 1})"
        unset = [i for i in inputs if i >= 0 and i not in ready]
        if unset:
            return f"subgraph {g} operator {k} reads tensor {unset[0]} before any operator writes it"
        ready.update(outputs)
    return None


def tflite_problem(data: bytes) -> str | None:
    """The first thing in a TFLite flatbuffer that points nowhere, or ``None`` when its structure is sound.

    Checked without copying any weight: there is a subgraph; every operator's opcode index and tensor indices,
    every tensor's buffer index and every signature's subgraph and tensor indices are in range; operators come in
    an order that runs (each reads only graph inputs, constants, variables and earlier operators' outputs). A
    flatbuffer passes LiteRT's verifier with any of these wrong, and TensorFlow's interpreter (which tf2onnx runs)
    crashes with a segmentation fault on operators out of order.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    if not model.SubgraphsLength():
        return "the model has no subgraph"
    known = max(v for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_"))
    for k in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(k)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if not 0 <= builtin <= known:
            return f"operator code {k}: builtin operator {builtin} is unknown (0..{known})"
    for g in range(model.SubgraphsLength()):
        problem = _graph_problem(model, g, model.OperatorCodesLength(), model.BuffersLength())
        if problem:
            return problem
    for k in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(k)
        g = sig.SubgraphIndex()
        if not 0 <= g < model.SubgraphsLength():
            return f"signature {k}: subgraph index {g} is out of range"
        n = model.Subgraphs(g).TensorsLength()
        maps = [sig.Inputs(i) for i in range(sig.InputsLength())] + [sig.Outputs(i) for i in range(sig.OutputsLength())]
        bad = [m.TensorIndex() for m in maps if not 0 <= m.TensorIndex() < n]
        if bad:
            return f"signature {k}: tensor index {bad[0]} is out of range (0..{n - 1})"
    return None


def check_tflite(path: Path) -> None:
    """Raise :class:`ModelLoadError` when a .tflite file's structure is unsound (see :func:`tflite_problem`); for
    every reader to call before handing the file to an engine."""
    from modelport.backends.litert import import_litert_interpreter

    import_litert_interpreter()
    try:
        problem = tflite_problem(Path(path).read_bytes())
    except Exception as exc:  # offsets past the end of a damaged flatbuffer: struct/index errors
        problem = f"unreadable flatbuffer ({first_line(exc)})"
    if problem:
        raise ModelLoadError(
            f"LiteRT cannot load the model: the TFLite flatbuffer is truncated or corrupt: {problem}",
            path=path,
            hint="export it again",
        )
