"""Model edits: ONNX → ONNX surgery (and two OpenVINO IR edits), each checked against its source.

Every edit is a function returning a result whose ``write(path)`` saves atomically (never over a source); how
the result is checked is one :class:`CheckOptions` given as ``check=`` (default: verified at the fp32 tolerance on
seeded random feeds)::

    from modelport.edit import CheckOptions, merge, set_batch

    merged = merge(["a.onnx", "b.onnx"], connect=["0.y:1.x"], check=CheckOptions(seed=1, threads=2))
    merged.write("ab.onnx")
    set_batch("ab.onnx", 4, check=CheckOptions(verify=False)).write("ab4.onnx")

One module per edit family: :mod:`~modelport.edit.merging` (``merge``), :mod:`~modelport.edit.extraction`
(``extract``), :mod:`~modelport.edit.outputs`, :mod:`~modelport.edit.renaming`, :mod:`~modelport.edit.shapes`,
:mod:`~modelport.edit.constants`, :mod:`~modelport.edit.openvino_ir`, :mod:`~modelport.edit.tflite_json`; what they
share is in :mod:`~modelport.edit.base`. (No module is named like a function exported here: importing it would
rebind the package attribute.)
"""

from __future__ import annotations

from modelport.edit.base import CheckOptions, EditReport, EditResult
from modelport.edit.constants import ShrinkResult, shrink_constants
from modelport.edit.extraction import extract
from modelport.edit.merging import merge
from modelport.edit.openvino_ir import IrEditResult, ir_rename, ir_set_shape
from modelport.edit.outputs import add_outputs, remove_outputs
from modelport.edit.renaming import RenameOptions, RenameWhat, rename, rename_with
from modelport.edit.shapes import set_batch, set_input_shape, set_opset
from modelport.edit.tflite_json import json_to_tflite, tflite_to_json

__all__ = [
    "CheckOptions",
    "EditReport",
    "EditResult",
    "IrEditResult",
    "RenameOptions",
    "RenameWhat",
    "ShrinkResult",
    "add_outputs",
    "extract",
    "ir_rename",
    "ir_set_shape",
    "json_to_tflite",
    "merge",
    "remove_outputs",
    "rename",
    "rename_with",
    "set_batch",
    "set_input_shape",
    "set_opset",
    "shrink_constants",
    "tflite_to_json",
]
