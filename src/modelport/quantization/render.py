"""A quantize report as table rows and Markdown."""

from __future__ import annotations

from modelport.quantization.report import QuantizeReport, VariantResult

HEADERS = [
    "variant",
    "executes",
    "size KiB",
    "p50 ms",
    "speed-up",
    "top-1",
    "top-5",
    "agreement",
    "max abs err",
    "flags",
]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def variant_row(v: VariantResult) -> list[str]:
    """variant, executed precision, size, p50, speed-up, top-1, top-5, agreement with fp32, max abs error, flags."""
    m = v.metric
    return [
        v.name,
        v.runner.executed_precision if v.runner else "–",
        f"{v.size_bytes / 1024:.1f}",
        f"{v.latency.p50_ms:.3f}" if v.latency else "–",
        f"{v.speedup:.2f}×" if v.speedup is not None else "–",
        _pct(m.top1 if m else None),
        _pct(m.top5 if m else None),
        _pct(m.agreement if m else None),
        f"{v.error.max_abs:.3g}" if v.error is not None else "–",
        ", ".join(v.flags) or "",
    ]


def kept_text(names: tuple[str, ...], shown: int = 6) -> str:
    """Up to ``shown`` names, then how many more."""
    if not names:
        return "–"
    return ", ".join(names[:shown]) + (f" … (+{len(names) - shown})" if len(names) > shown else "")


def layers_text(report: QuantizeReport) -> str:
    layers = report.int8.layers
    if layers is None:
        return "layers: not inspected"
    floats = layers.float_layers
    shown = ", ".join(floats[:8]) + (f" … (+{len(floats) - 8})" if len(floats) > 8 else "")
    return (
        f"{layers.int8_ops} ops run integer kernels; {layers.quant_nodes} quantization nodes in the artifact; "
        f"{len(floats)} compute layers left in float" + (f": {shown}" if floats else "")
    )


def quantize_markdown(report: QuantizeReport) -> str:
    """The report as Markdown."""
    cal, ev = report.calibration, report.evaluation
    lines = [
        f"# modelport quantize: {report.runtime}",
        "",
        f"- source: `{report.source}`",
        f"- result: **{report.status}** — {report.reason}",
        f"- engine: {report.engine}; " + ", ".join(f"{k} {v}" for k, v in report.settings),
        f"- why: {report.choice}",
        f"- calibration: {cal.samples} samples of {cal.source}"
        + (f" ({cal.preprocessing})" if cal.preprocessing else ""),
        f"- evaluation: {ev.samples} samples of {ev.source}" + (" (labelled)" if ev.labelled else " (unlabelled)"),
        f"- layers: {layers_text(report)}",
        f"- latency: batch {report.batch}, FP32 and INT8 timed in interleaved rounds on the same runtime",
        f"- machine: {report.environment.summary()}",
    ]
    for w in (*cal.warnings, *ev.warnings):
        lines.append(f"- warning: {w}")
    if report.trials:
        lines += [
            "",
            "| setting tried | p50 ms | speed-up vs FP32 | int8 ops | float layers | chosen |",
            "|---|---|---|---|---|---|",
        ]
        for t in report.trials:
            chosen = "✓" if t.chosen else ""
            lines.append(
                f"| {t.setting} | {t.p50_ms:.3f} | {t.speedup:.2f}× | {t.int8_ops} | {t.float_layers} | {chosen} |"
            )
    if report.recovery:
        lines += ["", "| accuracy recovery attempt | result | kept in float | s |", "|---|---|---|---|"]
        for step in report.recovery:
            lines.append(
                f"| {step.label} | {step.status}: {step.reason} | {kept_text(step.kept_float)} | {step.seconds:.1f} |"
            )
    lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(variant_row(v)) + " |" for v in report.variants]
    lines.append("")
    return "\n".join(lines)
