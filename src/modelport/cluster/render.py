"""The fleet report as one page: ``fleet.md`` and ``fleet.html`` beside ``fleet.json``.

The question a fleet answers is "which target on which device", so the page's centre is one matrix: a row per
target (``port``: runtime/precision; ``bench``: runtime/executed precision at its batch), a column per device, each
cell the median latency when the target verified there (the device's fastest marked), else its status. Below it:
each device's node and environment (CPU, flags that decide kernels, GPUs, engine versions), the build made once
(what was built where, and what was left to the devices) and every error. Per-device detail stays in each device's
own ``devices/DEVICE/report.html``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelport.reports.render import CSS, markdown_table

if TYPE_CHECKING:
    from modelport.cluster.fleet import DeviceRun, FleetReport

FASTEST = "★"
INTERRUPTED = "**Interrupted** (Ctrl-C): the devices that had not finished were stopped; their rows say so."
#: CPU flags that decide which kernels run (shown per device; the rest are in fleet.json).
KEY_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve")
#: engine versions shown per device.
KEY_PACKAGES = ("modelport", "onnxruntime", "openvino", "ai-edge-litert", "tensorrt", "ray")


def _cells(run: DeviceRun) -> dict[str, str]:
    """Target label → cell text on this device."""
    cells: dict[str, str] = {}
    if run.port is not None:
        for t in run.port.targets:
            if t.verified and t.latency is not None:
                mark = f" {FASTEST}" if t.label == run.port.fastest else ""
                cells[t.label] = f"{t.latency.p50_ms:.3f} ms{mark}"
            else:
                cells[t.label] = t.status
    elif run.bench is not None:
        fastest = min(run.bench.results, key=lambda r: r.latency.p50_ms, default=None)
        for r in run.bench.results:
            mark = f" {FASTEST}" if r is fastest else ""
            cells[f"{r.label} ×{r.batch}"] = f"{r.latency.p50_ms:.3f} ms{mark}"
        for f in run.bench.failures:
            cells[f.runtime] = f.kind
    return cells


def matrix(report: FleetReport) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): a row per target, a column per device."""
    per_device = [(r.device, _cells(r)) for r in report.runs]
    labels: list[str] = []
    for _, cells in per_device:
        labels += [k for k in cells if k not in labels]
    headers = ["target", *(d for d, _ in per_device)]
    rows = [[label, *(cells.get(label, "–") for _, cells in per_device)] for label in labels]
    return headers, rows


def device_rows(report: FleetReport) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): each device's node, run and environment."""
    headers = ["device", "node", "attempts", "seconds", "CPU", "kernel flags", "GPUs", "versions", "fastest / error"]
    rows = []
    for r in report.runs:
        env = r.environment
        cpu = f"{env.cpu_model}, {env.cpu_count} cores, {env.memory_gb:.0f} GiB" if env else "–"
        flags = " ".join(f for f in KEY_FLAGS if env and f in env.cpu_flags) if env else "–"
        gpus = ", ".join(env.gpus) if env and env.gpus else "none"
        versions = ", ".join(f"{k} {v}" for k, v in env.packages if k in KEY_PACKAGES) if env else "–"
        outcome = r.error or r.fastest or "nothing verified"
        rows.append(
            [r.device, r.node_address, str(r.attempts), f"{r.seconds:.0f}", cpu, flags, gpus, versions, outcome]
        )
    return headers, rows


def build_lines(report: FleetReport) -> list[str]:
    b = report.build
    if b is None:
        return []
    lines = [
        f"Built once on {b.machine} in {b.seconds:.1f} s: " + (", ".join(a.label for a in b.artifacts) or "nothing"),
        "Always built on the device itself: INT8 (judged on the device's own integer kernels), compiled engines"
        + "".join(f"; {label} ({why})" for label, why in b.left),
    ]
    return lines


def fleet_markdown(report: FleetReport) -> str:
    lines = [
        f"# modelport {report.verb} on a fleet",
        "",
        f"Model `{report.model}` on the cluster at `{report.address}`, {len(report.runs)} devices, "
        f"{report.seconds:.0f} s in all. Median latency per target and device ({FASTEST}: the device's fastest "
        + ("verified target)." if report.verb == "port" else "runtime)."),
        "",
        *([INTERRUPTED, ""] if report.interrupted else []),
        *markdown_table(*matrix(report)),
        "",
        "## Devices",
        "",
        *markdown_table(*device_rows(report)),
        "",
    ]
    build = build_lines(report)
    if build:
        lines += ["## Build", "", *(f"- {line}" for line in build), ""]
    if report.verb == "port":
        lines += ["Each device's full report: `devices/DEVICE/report.html`.", ""]
    return "\n".join(lines)


_PAGE_CSS = """table.matrix td{text-align:right;white-space:nowrap}table.matrix td:first-child{text-align:left}
td.best{font-weight:bold;background:#e8f5e9}td.bad{color:#b00020}td.none{color:#999}
table.devices td,table.devices th{font-size:.9em;vertical-align:top;text-align:left}
.alert{background:#fff3cd;border:1px solid #e0c060;padding:.5em .8em;font-weight:bold}"""


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for j, c in enumerate(row):
            kind = ""
            if cls == "matrix" and j > 0:
                kind = "best" if FASTEST in c else "none" if c == "–" else "bad" if not c.endswith("ms") else ""
            cells.append(f'<td class="{kind}">{esc(c)}</td>' if kind else f"<td>{esc(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body) + "\n</tbody></table>"


def fleet_html(report: FleetReport) -> str:
    """One self-contained page (no script): the matrix, the devices, the build, links to each device's report."""
    esc = html.escape
    what = "verified target" if report.verb == "port" else "runtime"
    links = ""
    if report.verb == "port":
        items = "".join(
            f'<li><a href="devices/{esc(r.device)}/report.html">{esc(r.device)}</a></li>'
            for r in report.runs
            if r.port is not None
        )
        links = f"<h2>Each device's report</h2><ul>{items}</ul>" if items else ""
    build = "".join(f"<li>{esc(line)}</li>" for line in build_lines(report))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelport {esc(report.verb)} on a fleet</title>
<style>{CSS}
{_PAGE_CSS}</style></head>
<body>
<h1>modelport {esc(report.verb)} on a fleet</h1>
<p>Model <code>{esc(report.model)}</code> on the cluster at <code>{esc(report.address)}</code>, {len(report.runs)}
devices, {report.seconds:.0f} s in all. Median latency per target and device; {FASTEST} the device's fastest
{what}.</p>
{'<p class="alert">' + esc(INTERRUPTED.replace("**", "")) + "</p>" if report.interrupted else ""}
{_html_table(*matrix(report), "matrix")}
<h2>Devices</h2>
{_html_table(*device_rows(report), "devices")}
{f"<h2>Build</h2><ul>{build}</ul>" if build else ""}
{links}
</body></html>
"""
