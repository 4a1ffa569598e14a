"""TFLite → TFLite preparations that let tf2onnx and OpenVINO's TFLite frontend read a file.

Each preparation edits the flatbuffer through TensorFlow's object API (``schema_py_generated``: ``ModelT``) and
writes a new file; the input is never touched. :func:`prepare_tflite` runs all of them and says which ran.

**Densify.** A tensor with ``sparsity`` parameters stores only its non-zero values, in *traversal order*. With
``n`` original dims and ``k`` block dims, the expanded shape has ``n + k`` dims: original dim ``d`` has
``shape[d] / b_d`` entries when a block dim maps to it through ``block_map`` (block size ``b_d``, the block dim's
``dense_size``), else ``shape[d]``; block dim ``n + j`` has ``b_j`` entries. ``traversal_order[l]`` is the expanded
dim visited at level ``l`` and ``dim_metadata[l]`` describes it: DENSE (``dense_size`` entries, all stored) or
SPARSE_CSR (for the parent position ``p``, the stored entries are ``array_segments[p] .. array_segments[p+1]`` with
coordinates ``array_indices[i]``). A level's position is ``p·dense_size + i`` (DENSE) or ``i`` (CSR); the leaves,
visited depth-first, are the stored values in order. An original coordinate is
``c_d = e_d · b_d + e_{n+j}`` (``block_map[j] = d``). A ``DENSIFY`` op fed by such a constant is removed and its
output becomes a plain constant with the dense values; other sparse constants are densified in place.

**Explicit state.** Resource variables (``VAR_HANDLE`` → ``READ_VARIABLE`` / ``ASSIGN_VARIABLE``, initialised by a
``CALL_ONCE`` subgraph) become graph I/O: variable ``v`` gets an input ``state:v`` (its value before the call; every
read before an assignment uses it, a read after one uses the assigned tensor) and an output ``new_state:v`` (the
last value assigned). The init subgraph's constants are the initial state (:class:`StateVariable.initial`); feeding
them reproduces a fresh interpreter's first call, feeding ``new_state`` back the next calls.

**Convolution2DTransposeBias** (MediaPipe custom op; inputs ``input, weights OHWI, bias``; ``custom_options`` the
12 bytes of ``{int32 padding (1 SAME, 2 VALID), int32 stride_w, int32 stride_h}``) is the builtin
``TRANSPOSE_CONV`` (version 3: inputs ``output_shape, weights, input, bias``) with the output tensor's static shape.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ConversionError, ModelLoadError
from modelport.verify.matching import STATE_OUTPUT_PREFIX  # the comparator leaves these out

log = logging.getLogger(__name__)

STATE_INPUT_PREFIX = "state:"

#: TFLite TensorType → numpy dtype (the storage types a constant can have here)
_NUMPY_TYPES: dict[int, Any] = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
    9: np.int8, 10: np.float64, 12: np.uint64, 15: np.uint32, 16: np.uint16,
}  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class StateVariable:
    """One resource variable made explicit.

    Attributes:
        name: the variable's shared name in the TFLite file.
        input_name: graph input holding its value before the call (``state:<name>``).
        output_name: graph output holding its value after the call (``new_state:<name>``), or empty when the
            graph never assigns it.
        initial: its value after the ``CALL_ONCE`` init subgraph (the TFLite tensor's storage type: int8 for a
            quantized model).
        scale: quantization scale of the stored values (empty for float state).
        zero_point: quantization zero point (empty for float state).
    """

    name: str
    input_name: str
    output_name: str
    initial: np.ndarray
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()

    def describe(self) -> str:
        """One line: names, type, shape and the initial value."""
        arr = self.initial
        if arr.size and np.all(arr == arr.flat[0]):
            value = f"all {arr.flat[0]}"
        else:
            value = f"min {arr.min()} max {arr.max()}" if arr.size else "empty"
        quant = f" (scale {self.scale[0]:.6g}, zero point {self.zero_point[0]})" if self.scale else ""
        out = f" → {self.output_name}" if self.output_name else " (never assigned)"
        return f"{self.input_name}{out}: {arr.dtype}{list(arr.shape)}{quant}, initial value {value}"


@dataclasses.dataclass(frozen=True)
class PreparedTflite:
    """A TFLite file ready for the engines.

    Attributes:
        path: the prepared file (the source itself when nothing needed preparing).
        notes: one line per preparation that ran.
        state: the variables made explicit (empty for a stateless model).
    """

    path: Path
    notes: tuple[str, ...] = ()
    state: tuple[StateVariable, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether a preparation rewrote the file."""
        return bool(self.notes)

    def initial_state(self) -> dict[str, np.ndarray]:
        """Feeds for the state inputs that reproduce a fresh interpreter's first call."""
        return {v.input_name: v.initial for v in self.state}


def prepare_tflite(src: Path, work_dir: Path) -> PreparedTflite:
    """Densify sparse weights, make resource-variable state explicit and replace known custom ops.

    Args:
        src: the TFLite file (read only).
        work_dir: where the prepared file is written (``<stem>.prepared.tflite``) when something changed.

    Returns:
        The prepared file, what was done, and the state variables made explicit.

    Raises:
        ModelLoadError: the file is not a readable TFLite flatbuffer.
        ConversionError: its state cannot be made explicit, or a custom op's options are not understood.
    """
    from modelport.backends.litert_check import check_tflite

    check_tflite(src)  # indices, operator order, constant sizes: a bad file is one error, not an engine's crash
    try:
        model = flatbuffer_tools().read_model_from_bytearray(bytearray(src.read_bytes()))
    except Exception as exc:  # struct.error, IndexError … from reading past the end of a cut file
        raise ModelLoadError(
            "not a valid TFLite flatbuffer (truncated or corrupt)", path=src, hint="export or download the model again"
        ) from exc
    notes: list[str] = []
    dense = densify(model)
    if dense:
        notes.append(
            f"densified {len(dense)} sparse weight tensor(s) ({', '.join(dense[:3])}{' …' * (len(dense) > 3)})"
        )
    replaced = replace_transpose_conv_bias(model)
    if replaced:
        notes.append(f"Convolution2DTransposeBias → TRANSPOSE_CONV with bias ({len(replaced)}: {', '.join(replaced)})")
    state = make_state_explicit(model, src)
    if state:
        notes.append(f"state made explicit: {len(state)} resource variable(s) as inputs state:* / outputs new_state:*")
        notes.extend(f"initial state (CALL_ONCE init subgraph) {v.describe()}" for v in state)
    if not notes:
        return PreparedTflite(src)
    drop_unused_tensors(model)
    work_dir.mkdir(parents=True, exist_ok=True)
    dst = work_dir / f"{src.stem}.prepared.tflite"
    dst.write_bytes(flatbuffer_tools().convert_object_to_bytearray(model))
    for note in notes:
        log.info("%s: %s", src.name, note)
    return PreparedTflite(dst, tuple(notes), tuple(state))


# --------------------------------------------------------------------------------------------------------- helpers


def tflite_schema() -> Any:
    """The TFLite flatbuffer schema's Python object API (LiteRT's copy, newer; else TensorFlow's)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def flatbuffer_tools() -> Any:
    """``flatbuffer_utils`` (read a file into ``ModelT``, pack it back) from LiteRT, else from TensorFlow."""
    try:
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        from tensorflow.lite.tools import flatbuffer_utils
    return flatbuffer_utils


def _opcode_name(model: Any, op: Any) -> str:
    schema = tflite_schema()

    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return (code.customCode or b"").decode(errors="replace")
    for key, value in vars(schema.BuiltinOperator).items():
        if value == builtin and not key.startswith("_"):
            return key
    return str(builtin)


def _opcode_index(model: Any, builtin: int, version: int) -> int:
    """Index of the operator code for ``builtin`` (added, or its version raised to ``version``)."""
    schema = tflite_schema()

    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, version)
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)  # PLACEHOLDER_FOR_GREATER_OP_CODES above 127
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _add_buffer(model: Any, data: np.ndarray) -> int:
    schema = tflite_schema()

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _add_tensor(sg: Any, name: str, shape: Iterable[int], ttype: int, buffer: int) -> int:
    schema = tflite_schema()

    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = np.array(list(shape), dtype=np.int32)
    tensor.type = ttype
    tensor.buffer = buffer
    sg.tensors.append(tensor)
    return len(sg.tensors) - 1


def _const_array(model: Any, tensor: Any) -> np.ndarray | None:
    """A constant tensor's values (its storage type), or None when it has no data."""
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0 or tensor.type not in _NUMPY_TYPES:
        return None
    arr: np.ndarray = np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype=_NUMPY_TYPES[tensor.type])
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    return arr.reshape(shape) if int(np.prod(shape)) == arr.size else arr


def _tensor_name(sg: Any, index: int) -> str:
    return (sg.tensors[index].name or b"").decode(errors="replace")


# --------------------------------------------------------------------------------------------------------- densify


def _index_vector(vector: Any) -> np.ndarray:
    return np.asarray(vector.values if vector is not None and vector.values is not None else [], dtype=np.int64)


def densify_values(values: np.ndarray, shape: tuple[int, ...], sparsity: Any) -> np.ndarray:
    """The dense tensor of ``shape`` stored as ``values`` under TFLite ``sparsity`` (see the module docstring)."""
    order = [int(x) for x in sparsity.traversalOrder]
    block_map = [int(x) for x in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    n = len(shape)
    coords = np.zeros((1, 0), dtype=np.int64)
    pos = np.zeros(1, dtype=np.int64)
    for meta in sparsity.dimMetadata:
        if meta.format == 0:  # DENSE: every entry of the level is stored
            size = int(meta.denseSize)
            col = np.tile(np.arange(size, dtype=np.int64), len(pos))
            coords, pos = np.repeat(coords, size, axis=0), np.repeat(pos, size) * size + col
        else:  # SPARSE_CSR: the parent's segment of array_indices
            segments, indices = _index_vector(meta.arraySegments), _index_vector(meta.arrayIndices)
            starts, stops = segments[pos], segments[pos + 1]
            counts = stops - starts
            within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            child = np.repeat(starts, counts) + within
            coords, pos, col = np.repeat(coords, counts, axis=0), child, indices[child]
        coords = np.concatenate([coords, col[:, None]], axis=1)
    if len(coords) != values.size:
        raise ValueError(f"sparsity describes {len(coords)} values, the buffer holds {values.size}")
    expanded = np.zeros((len(coords), len(order)), dtype=np.int64)
    expanded[:, order] = coords
    original = expanded[:, :n].copy()
    for j, dim in enumerate(block_map):
        level = order.index(n + j)
        original[:, dim] = original[:, dim] * int(sparsity.dimMetadata[level].denseSize) + expanded[:, n + j]
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(original.T)] = values.reshape(-1)
    return dense


def densify(model: Any) -> list[str]:
    """Densify every sparse constant; a ``DENSIFY`` op fed by one is removed. Returns the tensors' names."""
    done: list[str] = []
    for sg in model.subgraphs:
        producers_of_dense: dict[int, int] = {}
        for i, op in enumerate(sg.operators):
            if _opcode_name(model, op) == "DENSIFY":
                producers_of_dense[int(op.inputs[0])] = i
        drop: set[int] = set()
        for t_index, tensor in enumerate(sg.tensors):
            if tensor.sparsity is None:
                continue
            stored = _const_array(model, tensor)
            if stored is None:
                continue
            dense = densify_values(stored.reshape(-1), tuple(int(d) for d in tensor.shape), tensor.sparsity)
            if t_index in producers_of_dense:
                op_index = producers_of_dense[t_index]
                out = sg.tensors[sg.operators[op_index].outputs[0]]
                out.buffer = _add_buffer(model, dense)
                drop.add(op_index)
            else:
                tensor.sparsity = None
                tensor.buffer = _add_buffer(model, dense)
            done.append(_tensor_name(sg, t_index))
        sg.operators = [op for i, op in enumerate(sg.operators) if i not in drop]
    return done


# -------------------------------------------------------------------------------- Convolution2DTransposeBias


def transpose_conv_bias_options(raw: bytes) -> tuple[int, int, int]:
    """``(TFLite Padding enum, stride_w, stride_h)`` from the custom op's 12 option bytes."""
    if len(raw) < 12:
        raise ValueError(f"expected 12 option bytes (padding, stride_w, stride_h), got {len(raw)}")
    padding, stride_w, stride_h = struct.unpack("<iii", raw[:12])
    if padding not in (1, 2):
        raise ValueError(f"unknown padding {padding} (1 SAME, 2 VALID)")
    return (0 if padding == 1 else 1), stride_w, stride_h


def replace_transpose_conv_bias(model: Any) -> list[str]:
    """Replace every ``Convolution2DTransposeBias`` custom op by a builtin ``TRANSPOSE_CONV`` (with bias)."""
    schema = tflite_schema()

    done: list[str] = []
    for sg in model.subgraphs:
        for op in sg.operators:
            if _opcode_name(model, op) != "Convolution2DTransposeBias":
                continue
            name = _tensor_name(sg, op.outputs[0])
            raw = bytes(np.asarray(op.customOptions, dtype=np.uint8)) if op.customOptions is not None else b""
            try:
                padding, stride_w, stride_h = transpose_conv_bias_options(raw)
            except ValueError as exc:
                raise ConversionError(f"Convolution2DTransposeBias (node {name}): {exc}") from exc
            out_shape = np.array([int(d) for d in sg.tensors[op.outputs[0]].shape], dtype=np.int32)
            if len(out_shape) != 4 or (out_shape < 1).any():
                raise ConversionError(
                    f"Convolution2DTransposeBias (node {name}) has no static 4-D output shape",
                    hint="give the input a fixed shape",
                )
            shape_tensor = _add_tensor(sg, f"{name}/output_shape", [4], 2, _add_buffer(model, out_shape))
            options = schema.TransposeConvOptionsT()
            options.padding, options.strideW, options.strideH = padding, stride_w, stride_h
            data, weights, bias = (int(x) for x in op.inputs[:3])
            op.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.TRANSPOSE_CONV, 3)
            op.inputs = np.array([shape_tensor, weights, data, bias], dtype=np.int32)
            op.builtinOptionsType = schema.BuiltinOptions.TransposeConvOptions
            op.builtinOptions = options
            op.customOptions = None
            op.customOptionsFormat = 0
            done.append(name)
    return done


# ------------------------------------------------------------------------------------------------ explicit state

_STATE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


def _var_key(op: Any) -> str:
    opts = op.builtinOptions
    container = (opts.container or b"").decode() if opts is not None else ""
    shared = (opts.sharedName or b"").decode() if opts is not None else ""
    return f"{container}/{shared}" if container else shared


def _initial_values(model: Any, init_index: int) -> dict[str, tuple[np.ndarray, Any]]:
    """Variable name → (value, tensor) assigned by the init subgraph, which must assign constants only."""
    sg = model.subgraphs[init_index]
    handles: dict[int, str] = {}
    values: dict[str, tuple[np.ndarray, Any]] = {}
    others: list[str] = []
    for op in sg.operators:
        kind = _opcode_name(model, op)
        if kind == "VAR_HANDLE":
            handles[int(op.outputs[0])] = _var_key(op)
            continue
        if kind == "ASSIGN_VARIABLE":
            value = _const_array(model, sg.tensors[op.inputs[1]])
            if int(op.inputs[0]) in handles and value is not None:
                values[handles[int(op.inputs[0])]] = (value, sg.tensors[op.inputs[1]])
                continue
        others.append(f"{kind} (output {_tensor_name(sg, op.outputs[0]) if len(op.outputs) else '-'})")
    if others:
        raise ConversionError(
            f"the CALL_ONCE init subgraph computes its initial state with {', '.join(others[:5])}; "
            "modelport can make only constant initial states explicit",
            hint="export the model with constant variable initialisers",
        )
    return values


def _refuse_state(model: Any, src: Path, why: str) -> ConversionError:
    found = sorted({_opcode_name(model, op) for sg in model.subgraphs for op in sg.operators} & set(_STATE_OPS))
    return ConversionError(
        f"cannot make the resource-variable state explicit ({', '.join(found)}): {why}",
        path=src,
        hint="export a stateless model (state as explicit inputs/outputs) or cut the graph with --inputs/--outputs",
    )


def make_state_explicit(model: Any, src: Path) -> list[StateVariable]:
    """Turn the main subgraph's resource variables into graph inputs/outputs (module docstring)."""
    main = model.subgraphs[0]
    pairs = [(op, _opcode_name(model, op)) for op in main.operators]
    if not any(kind in _STATE_OPS for _, kind in pairs):
        if any(_opcode_name(model, op) in _STATE_OPS for sg in model.subgraphs for op in sg.operators):
            raise _refuse_state(model, src, "variables are used inside control-flow subgraphs")
        return []
    init = [int(op.builtinOptions.initSubgraphIndex) for op, kind in pairs if kind == "CALL_ONCE"]
    initial: dict[str, tuple[np.ndarray, Any]] = {}
    for index in init:
        initial.update(_initial_values(model, index))
    inputs, current, alias = _trace_variables(model, src, pairs)
    kept = [op for op, kind in pairs if kind not in _STATE_OPS]
    for op in kept:
        op.inputs = np.array([alias.get(int(i), int(i)) for i in op.inputs], dtype=np.int32)
    main.operators = kept
    main.outputs = np.array([alias.get(int(i), int(i)) for i in main.outputs], dtype=np.int32)
    _drop_subgraphs(model, set(init))
    return _wire_state(model, src, inputs, current, initial)


def _trace_variables(
    model: Any, src: Path, pairs: list[tuple[Any, str]]
) -> tuple[dict[str, int], dict[str, int], dict[int, int]]:
    """Walk the ops in execution order: (variable → input tensor, variable → last assigned tensor,
    READ_VARIABLE output → the tensor it stands for)."""
    handles = {int(op.outputs[0]): _var_key(op) for op, kind in pairs if kind == "VAR_HANDLE"}
    inputs: dict[str, int] = {}
    current: dict[str, int] = {}
    alias: dict[int, int] = {}
    for op, kind in pairs:
        if kind not in ("READ_VARIABLE", "ASSIGN_VARIABLE"):
            continue
        var = handles.get(int(op.inputs[0]))
        if var is None:
            raise _refuse_state(model, src, f"{kind} on a handle that no VAR_HANDLE of the main graph makes")
        if kind == "READ_VARIABLE":
            read = int(op.outputs[0])
            if var in current:
                alias[read] = current[var]
            else:
                inputs[var] = current[var] = read
        else:
            value = int(op.inputs[1])
            current[var] = alias.get(value, value)
    return inputs, current, alias


def _wire_state(
    model: Any, src: Path, inputs: dict[str, int], current: dict[str, int], initial: dict[str, tuple[np.ndarray, Any]]
) -> list[StateVariable]:
    """Add the state tensors to the main graph's inputs/outputs and its signature; return their description."""
    main = model.subgraphs[0]
    state: list[StateVariable] = []
    new_inputs, new_outputs = list(main.inputs), list(main.outputs)
    for var in sorted(set(inputs) | set(current)):
        if var not in initial:
            raise _refuse_state(model, src, f"variable {var} has no constant initial value in a CALL_ONCE subgraph")
        value, init_tensor = initial[var]
        if var not in inputs:  # assigned before any read: the first value is not an input
            inputs[var] = _add_tensor(main, "", value.shape, init_tensor.type, 0)
            main.tensors[inputs[var]].quantization = init_tensor.quantization
        t_in = inputs[var]
        main.tensors[t_in].name = f"{STATE_INPUT_PREFIX}{var}".encode()
        new_inputs.append(t_in)
        out_name = ""
        t_out = current.get(var, t_in)
        if t_out != t_in:
            if t_out in new_outputs or t_out in new_inputs or _const_array(model, main.tensors[t_out]) is not None:
                raise _refuse_state(model, src, f"variable {var} is assigned a graph input, output or constant")
            out_name = f"{STATE_OUTPUT_PREFIX}{var}"
            main.tensors[t_out].name = out_name.encode()
            new_outputs.append(t_out)
        quant = main.tensors[t_in].quantization
        scale = tuple(float(s) for s in (quant.scale if quant is not None and quant.scale is not None else ()))
        zero = tuple(int(z) for z in (quant.zeroPoint if quant is not None and quant.zeroPoint is not None else ()))
        stored = value.astype(_NUMPY_TYPES.get(main.tensors[t_in].type, value.dtype)).reshape(
            [int(d) for d in main.tensors[t_in].shape]
        )
        state.append(StateVariable(var, f"{STATE_INPUT_PREFIX}{var}", out_name, stored, scale, zero))
        main.tensors[t_in].buffer = 0
    main.inputs = np.array(new_inputs, dtype=np.int32)
    main.outputs = np.array(new_outputs, dtype=np.int32)
    _extend_signatures(model, state)
    return state


def _extend_signatures(model: Any, state: list[StateVariable]) -> None:
    schema = tflite_schema()

    main = model.subgraphs[0]
    index = {_tensor_name(main, i): i for i in range(len(main.tensors))}
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex != 0:
            continue
        for v in state:
            for names, tensor_name in ((sig.inputs, v.input_name), (sig.outputs, v.output_name)):
                if tensor_name:
                    entry = schema.TensorMapT()
                    entry.name, entry.tensorIndex = tensor_name.encode(), index[tensor_name]
                    names.append(entry)


# ------------------------------------------------------------------------------------------------ housekeeping


def _drop_subgraphs(model: Any, drop: set[int]) -> None:
    """Remove subgraphs and renumber every ``*SubgraphIndex`` option and signature that points past them."""
    if not drop:
        return
    remap: dict[int, int] = {}
    for old in range(len(model.subgraphs)):
        if old not in drop:
            remap[old] = len(remap)
    for sg in (sg for i, sg in enumerate(model.subgraphs) if i not in drop):
        for op in sg.operators:
            for opts in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
                if opts is not None:
                    _renumber_subgraph_refs(opts, drop, remap)
    model.subgraphs = [sg for i, sg in enumerate(model.subgraphs) if i not in drop]
    for sig in model.signatureDefs or []:
        sig.subgraphIndex = remap[sig.subgraphIndex]


def _renumber_subgraph_refs(opts: Any, drop: set[int], remap: dict[int, int]) -> None:
    """Renumber an op's subgraph references (``thenSubgraphIndex``, ``bodySubgraphIndex``, lists of branches …)."""
    for attr, value in vars(opts).items():
        if "ubgraph" not in attr or value is None or isinstance(value, (bytes, str)):
            continue
        indices = [int(v) for v in np.atleast_1d(value)]
        if drop & set(indices):
            raise ConversionError(f"subgraph {indices} is still used by {attr}; cannot remove it")
        remapped = [remap[i] for i in indices]
        setattr(opts, attr, remapped[0] if np.ndim(value) == 0 else np.array(remapped, dtype=np.int32))


def _renumber(values: Any, remap: dict[int, int]) -> Any:
    if values is None:
        return None
    return np.array([remap[int(i)] if i >= 0 else -1 for i in values], dtype=np.int32)


def drop_unused_tensors(model: Any) -> None:
    """Remove tensors no op, graph I/O or signature refers to, renumbering references; free unused buffers."""
    for s_index, sg in enumerate(model.subgraphs):
        used: set[int] = {int(i) for i in [*sg.inputs, *sg.outputs] if i >= 0}
        for op in sg.operators:
            for group in (op.inputs, op.outputs, getattr(op, "intermediates", None)):
                used.update(int(i) for i in (group if group is not None else []) if i >= 0)
        sigs = [s for s in model.signatureDefs or [] if s.subgraphIndex == s_index]
        used.update(int(m.tensorIndex) for s in sigs for m in [*s.inputs, *s.outputs])
        remap = {old: new for new, old in enumerate(sorted(used))}
        sg.tensors = [t for i, t in enumerate(sg.tensors) if i in remap]
        sg.inputs, sg.outputs = _renumber(sg.inputs, remap), _renumber(sg.outputs, remap)
        for op in sg.operators:
            op.inputs, op.outputs = _renumber(op.inputs, remap), _renumber(op.outputs, remap)
            if getattr(op, "intermediates", None) is not None:
                op.intermediates = _renumber(op.intermediates, remap)
        for m in (m for s in sigs for m in [*s.inputs, *s.outputs]):
            m.tensorIndex = remap[int(m.tensorIndex)]
    referenced = {int(t.buffer) for sg in model.subgraphs for t in sg.tensors}
    referenced.update(int(m.buffer) for m in model.metadata or [])
    referenced.update(int(b) for b in (model.metadataBuffer if model.metadataBuffer is not None else []))
    for i, buffer in enumerate(model.buffers):
        if i not in referenced:
            buffer.data = None


# ------------------------------------------------------------------------------------------------ OpenVINO state


def openvino_stateful(model: Any, state: Iterable[StateVariable]) -> Any:
    """Give an OpenVINO model read from a prepared TFLite file its state back, as OpenVINO variables.

    Each ``state:<v>`` Parameter becomes a ``ReadValue`` initialised with the variable's initial value and each
    ``new_state:<v>`` Result an ``Assign`` to the same variable, so the model takes the original inputs only, its
    first inference reproduces a fresh interpreter's first call, and later inferences on the same request carry
    the state on (``request.reset_state()`` starts over).

    Args:
        model: ``openvino.Model`` converted from :attr:`PreparedTflite.path` (edited in place).
        state: :attr:`PreparedTflite.state`.

    Returns:
        The same model.
    """
    from openvino import op, opset1, opset6

    params = {p.get_output_tensor(0).get_any_name(): p for p in model.get_parameters()}
    results = {o.get_any_name(): r for o, r in zip(model.outputs, model.get_results(), strict=True)}
    sinks = []
    for var in state:
        param = params[var.input_name]
        info = op.util.VariableInfo()
        info.data_shape, info.data_type, info.variable_id = (
            param.get_partial_shape(),
            param.get_element_type(),
            var.name,
        )
        variable = op.util.Variable(info)
        initial = opset1.constant(var.initial.astype(param.get_element_type().to_dtype()))
        read = opset6.read_value(initial, variable)
        param.output(0).replace(read.output(0))
        model.remove_parameter(param)
        if var.output_name:
            result = results[var.output_name]
            value = result.input_value(0)
            node = value.get_node()
            if node.get_output_size() != 1:  # Assign takes a node: wrap one output of a multi-output node
                node = opset1.convert(value, value.get_element_type())
            sinks.append(opset6.assign(node, variable))
            model.remove_result(result)
    model.add_sinks(sinks)
    model.validate_nodes_and_infer_types()
    return model
