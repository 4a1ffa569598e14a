"""Opset conversion with ONNX's version converter (``--opset N``); the result is verified like any pass."""

from __future__ import annotations

import dataclasses
import logging

import onnx
import onnx.version_converter
import onnx_ir as ir

from modelport.errors import PassError, first_line
from modelport.passes.base import ModelportPass, PassOptions, Phase, register_pass

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConvertOpsetOptions(PassOptions):
    """Options of ``convert-opset``.

    Attributes:
        target: the default-domain opset to convert to (None: leave the opset alone).
    """

    target: int | None = None


@register_pass(
    "convert-opset",
    summary="Convert the default-domain opset (--opset N) with onnx.version_converter",
    options=ConvertOpsetOptions,
    phase=Phase.PREPARE,
    engine="onnx",
)
class ConvertOpset(ModelportPass[ConvertOpsetOptions]):
    """Runs ``onnx.version_converter.convert_version`` and swaps the converted graph into the model."""

    def apply(self, model: ir.Model) -> bool:
        target = self.options.target
        current = int(model.opset_imports.get("", 0))
        if target is None or target == current:
            return False
        proto = ir.serde.serialize_model(model)
        try:
            converted = onnx.version_converter.convert_version(proto, target)
        except Exception as exc:  # the converter raises RuntimeError / ConvertError subclasses
            first = first_line(exc)
            raise PassError(
                f"cannot convert opset {current} → {target}: {first}",
                hint="try a nearer opset, or leave out --opset",
            ) from exc
        new = ir.serde.deserialize_model(converted)
        model.graph = new.graph
        model.ir_version = max(model.ir_version, new.ir_version)
        for func_id in list(model.functions):
            del model.functions[func_id]
        for func in new.functions.values():
            model.functions[func.identifier()] = func
        log.info("converted opset %d → %d", current, target)
        return True
