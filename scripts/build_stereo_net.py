#!/usr/bin/env python
"""Build modelport's stereo network — a classical cost-volume matcher written as a torch module — and export it.

The network needs no training: every weight is a fixed constant (the census offsets). It maps one input
``stereo`` (``1×6×H×W`` float32, left RGB then right RGB, values in [0, 1], rectified pair, any ``H×W``) to
one output ``disparity`` (``1×1×H×W`` float32, pixels of the left image, ``x_right = x_left − d``). Matching
runs at half resolution (``h = ⌊H/2⌋``, ``w = ⌊W/2⌋``) over ``D = max_disp / 2`` integer shifts.

1. **Grey and half resolution.** ``g = 0.299 R + 0.587 G + 0.114 B`` per view, then a 2×2 average pool.
2. **Soft census descriptor** (robust to gain and bias between the cameras). For each offset ``o`` of a
   ``(2a+1)×(2b+1)`` window except its centre, ``f_o(p) = tanh((g(p+o) − g(p)) / s)`` — a smooth sign, so
   ``|f_o^L − f_o^R| / 2`` is a soft Hamming bit. One fixed ``Conv`` (kernels ``δ_o − δ_0``, replicate padding)
   and ``Tanh`` make the ``K = (2a+1)(2b+1) − 1`` channels.
3. **Cost volume.** ``C(d, p) = (1 / 2K) Σ_o |f_o^L(x, y) − f_o^R(x − d, y)|`` for ``d = 0 … D−1`` (the right
   descriptor shifted by ``d`` with zeros entering at the left: where ``x < d`` the cost is ``≈ ½``, a
   neutral value). ``Pad`` + ``Slice`` + ``Sub`` + ``Abs`` + ``ReduceMean`` per shift, ``Concat`` → ``D×h×w``.
4. **Edge-aware aggregation: the guided filter** (He et al.) of every cost slice ``C_d`` with the left grey
   image ``I`` as guide, radius ``r``, regulariser ``ε``: with ``⟨·⟩`` the ``(2r+1)²`` box mean (two
   separable ``AveragePool``, padding excluded) ``a_d = (⟨I C_d⟩ − ⟨I⟩⟨C_d⟩) / (⟨I²⟩ − ⟨I⟩² + ε)``,
   ``b_d = ⟨C_d⟩ − a_d ⟨I⟩``, ``A_d = ⟨a_d⟩ I + ⟨b_d⟩``. Inside a region of uniform colour it is a box mean;
   across an edge the cost of the other side does not leak in (cost-volume filtering, Hosni et al.).
5. **Winner and sub-pixel step.** ``d* = argmin_d A_d``; a parabola through ``A`` at ``d*−1, d*, d*+1`` gives
   ``d̂ = d* + (A₋ − A₊) / (2 (A₋ + A₊ − 2 A₀))`` clamped to ±½ (0 at the ends of the range). ``A₀`` is
   ``min_d A_d``; ``A₋``, ``A₊`` are read with ``GatherElements`` at the clamped indices.
6. **Left-right check.** The right view's volume is the left one re-indexed, ``C^R(d, x) = C(d, x + d)``
   (slice ``d`` shifted left by ``d``), aggregated by the guided filter with the right grey image: ``d̂^R``.
   A left pixel is kept when ``|d̂(x) − d̂^R(x − round d̂(x))| ≤ τ`` (the right map read at the matched
   column: ``GatherElements`` over the ``D`` copies of ``d̂^R`` shifted by ``0 … D−1``).
7. **Fill.** A rejected pixel (occluded, or a mismatch) takes the smallest kept disparity within ``k`` pixels on
   its row, for ``k = 3, 9, 27, 81`` in turn until one exists (a horizontal min-pool of the kept map, rejected
   pixels set to +10⁴): occlusions belong to the farther surface, so the minimum is the background's value.
   Any pixel still empty keeps ``d̂``. Every pixel has a disparity.
8. **Full resolution.** Bilinear ``Resize`` to ``H×W`` and multiply by 2 (disparities are in pixels of the
   half-size image).

Every op (Conv, Tanh, Pad, Slice, Sub, Abs, ReduceMean, Concat, AveragePool, Mul, Add, Div, ArgMin, ReduceMin,
GatherElements, Cast, Round, Where, MaxPool, Resize, Clip) converts to OpenVINO IR and TFLite through
``modelport convert``.
The export (torch.export) is opset 18 with dynamic ``height``/``width``; batch 1.

Measured on ``skimage.data.stereo_motorcycle()`` (Middlebury 2014, 500×741, 92.7 % of pixels with ground
truth): see ``benchmarks/results/apps_depth.md`` (``benchmarks/bench_depth.py``) and the sidecar JSON.

Usage (from the repository root, under a minute)::

    .venv/bin/python scripts/build_stereo_net.py            # writes src/modelport/assets/census_stereo.{onnx,json}
    .venv/bin/python scripts/build_stereo_net.py --check    # rebuilds in memory, compares with the committed file
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("build_stereo_net")

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "src" / "modelport" / "assets"
NAME = "census_stereo"
OPSET = 18
INPUT_NAME = "stereo"
OUTPUT_NAME = "disparity"
BIG = 1.0e4


@dataclass(frozen=True)
class StereoParams:
    """The network's constants (see the module docstring for each symbol).

    Attributes:
        max_disp: the disparity range searched, in full-resolution pixels (``D = max_disp / 2`` shifts).
        census: half-height ``a`` and half-width ``b`` of the census window.
        slope: ``s``, the soft sign's scale on grey values in [0, 1].
        radius: ``r``, the guided filter's radius (half-resolution pixels).
        eps: ``ε``, the guided filter's regulariser.
        lr_tolerance: ``τ``, the left-right check's tolerance (half-resolution pixels).
        fill: the min-pool half-widths tried in turn to fill rejected pixels.
    """

    max_disp: int = 64
    census: tuple[int, int] = (1, 1)
    slope: float = 0.01
    radius: int = 3
    eps: float = 1e-4
    lr_tolerance: float = 1.0
    fill: tuple[int, ...] = (3, 9, 27, 81)


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """The ``(2r+1)²`` box mean, padding excluded (two separable average pools)."""
    x = F.avg_pool2d(x, (1, 2 * r + 1), 1, (0, r), count_include_pad=False)
    return F.avg_pool2d(x, (2 * r + 1, 1), 1, (r, 0), count_include_pad=False)


def shift_right(x: torch.Tensor, d: int, value: float = 0.0) -> torch.Tensor:
    """``y(x) = x(x − d)``, ``value`` entering at the left."""
    return x if d == 0 else F.pad(x, (d, 0), value=value)[..., :-d]


def shift_left(x: torch.Tensor, d: int, value: float = 0.0) -> torch.Tensor:
    """``y(x) = x(x + d)``, ``value`` entering at the right."""
    return x if d == 0 else F.pad(x, (0, d), value=value)[..., d:]


class CensusStereoNet(nn.Module):
    """Census cost volume → guided-filter aggregation → argmin + parabola → left-right check → fill."""

    def __init__(self, params: StereoParams | None = None) -> None:
        super().__init__()
        self.params = p = params or StereoParams()
        if p.max_disp % 2 or p.max_disp < 8:
            raise ValueError(f"max_disp must be even and >= 8, got {p.max_disp}")
        self.shifts = p.max_disp // 2
        a, b = p.census
        kernels = []
        for dy in range(-a, a + 1):
            for dx in range(-b, b + 1):
                if dy or dx:
                    k = torch.zeros(1, 2 * a + 1, 2 * b + 1)
                    k[0, dy + a, dx + b] += 1.0
                    k[0, a, b] -= 1.0
                    kernels.append(k)
        self.register_buffer("census_kernels", torch.stack(kernels) / p.slope, persistent=False)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1), persistent=False)

    def grey_half(self, rgb: torch.Tensor) -> torch.Tensor:
        """Step 1: luminance, then a 2×2 average pool."""
        return F.avg_pool2d((rgb * self.luma).sum(1, keepdim=True), 2)

    def descriptor(self, grey: torch.Tensor) -> torch.Tensor:
        """Step 2: the soft census channels ``tanh((g(p+o) − g(p)) / s)``."""
        a, b = self.params.census
        return torch.tanh(F.conv2d(F.pad(grey, (b, b, a, a), mode="replicate"), self.census_kernels))

    def cost_volume(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Step 3: ``C(d) = mean_o |f^L − shift_d f^R| / 2``, ``D`` channels."""
        slices = [(left - shift_right(right, d)).abs().mean(1, keepdim=True) for d in range(self.shifts)]
        return torch.cat(slices, 1) * 0.5

    def guided(self, guide: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
        """Step 4: the guided filter of every cost slice with a grey guide."""
        r, eps = self.params.radius, self.params.eps
        mean_i = box(guide, r)
        var_i = box(guide * guide, r) - mean_i * mean_i
        mean_c = box(cost, r)
        a = (box(guide * cost, r) - mean_i * mean_c) / (var_i + eps)
        b = mean_c - a * mean_i
        return box(a, r) * guide + box(b, r)

    def winner(self, cost: torch.Tensor) -> torch.Tensor:
        """Step 5: argmin and the parabola's sub-pixel offset (neighbours read with GatherElements)."""
        best = torch.argmin(cost, dim=1, keepdim=True)
        c0 = torch.amin(cost, dim=1, keepdim=True)
        cm = torch.gather(cost, 1, torch.clamp(best - 1, min=0))
        cp = torch.gather(cost, 1, torch.clamp(best + 1, max=self.shifts - 1))
        curvature = torch.clamp(cm + cp - 2.0 * c0, min=1e-6)
        offset = torch.clamp((cm - cp) / (2.0 * curvature), -0.5, 0.5)
        index = best.to(torch.float32)
        inner = (index > 0) & (index < self.shifts - 1)
        return index + torch.where(inner, offset, torch.zeros_like(offset))

    def right_volume(self, cost: torch.Tensor) -> torch.Tensor:
        """Step 6: ``C^R(d, x) = C(d, x + d)`` (neutral ½ entering at the right)."""
        slices = torch.split(cost, 1, dim=1)
        return torch.cat([shift_left(s, d, 0.5) for d, s in enumerate(slices)], 1)

    def consistent(self, disp: torch.Tensor, disp_right: torch.Tensor) -> torch.Tensor:
        """Step 6: ``|d̂(x) − d̂^R(x − round d̂(x))| ≤ τ``."""
        shifted = torch.cat([shift_right(disp_right, d, -BIG) for d in range(self.shifts)], 1)
        index = torch.clamp(torch.round(disp), 0, self.shifts - 1).to(torch.int64)
        seen = torch.gather(shifted, 1, index)
        return torch.abs(disp - seen) <= self.params.lr_tolerance

    def fill(self, disp: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Step 7: rejected pixels take the row's smallest kept disparity within k, for growing k."""
        big = torch.full_like(disp, BIG)
        kept = torch.where(keep, disp, big)
        out = kept
        for k in self.params.fill:
            nearest = -F.max_pool2d(-kept, (1, 2 * k + 1), 1, (0, k))
            out = torch.where(out >= BIG, nearest, out)
        return torch.where(out >= BIG, disp, out)

    def forward(self, stereo: torch.Tensor) -> torch.Tensor:
        """``1×6×H×W`` in [0, 1] → ``1×1×H×W`` disparity in pixels of the left image."""
        grey_l = self.grey_half(stereo[:, 0:3])
        grey_r = self.grey_half(stereo[:, 3:6])
        cost = self.cost_volume(self.descriptor(grey_l), self.descriptor(grey_r))
        disp = self.winner(self.guided(grey_l, cost))
        disp_right = self.winner(self.guided(grey_r, self.right_volume(cost)))
        filled = self.fill(disp, self.consistent(disp, disp_right))
        full = F.interpolate(filled, size=stereo.shape[-2:], mode="bilinear", align_corners=False)
        return full * 2.0


def export_onnx(net: CensusStereoNet, height: int = 480, width: int = 640) -> onnx.ModelProto:
    """Export with dynamic height and width (torch.export: a plain graph of ~450 nodes, no shape arithmetic)."""
    dims = {2: torch.export.Dim("height", min=16, max=4096), 3: torch.export.Dim("width", min=16, max=4096)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net.eval(),
            (torch.zeros(1, 6, height, width),),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: dims},
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    del proto.metadata_props[:]
    for value_info in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        del value_info.metadata_props[:]
    for node in proto.graph.node:
        del node.metadata_props[:]
    proto.doc_string = f"{NAME}: census cost volume + guided filter + left-right check; scripts/build_stereo_net.py"
    proto.producer_name = "modelport"
    proto.producer_version = ""
    for key, value in {"max_disp": str(net.params.max_disp), "input_range": "0..1"}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def card(net: CensusStereoNet, measured: dict[str, float]) -> dict[str, object]:
    """The sidecar JSON: the I/O contract the depth app reads, the constants, and the measured accuracy."""
    p = net.params
    return {
        "name": NAME,
        "task": "stereo-disparity",
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "layout": "NCHW",
        "input_contract": "one input, left RGB then right RGB on the channel axis (6 channels), float32 in [0, 1]",
        "output_contract": "disparity in pixels of the left image, full input resolution, x_right = x_left - d",
        "scale": 1.0 / 255.0,
        "max_disp": p.max_disp,
        "dynamic_size": True,
        "params": {
            "census": list(p.census),
            "slope": p.slope,
            "radius": p.radius,
            "eps": p.eps,
            "lr_tolerance": p.lr_tolerance,
            "fill": list(p.fill),
        },
        "measured": measured,
        "trained_with": None,
        "script": "scripts/build_stereo_net.py",
    }


def motorcycle_accuracy(net: CensusStereoNet) -> dict[str, float]:
    """EPE and bad-3px of the torch module on ``skimage.data.stereo_motorcycle`` (every GT pixel counts)."""
    from skimage.data import stereo_motorcycle

    left, right, gt = stereo_motorcycle()
    x = torch.from_numpy(np.concatenate([left, right], axis=2)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        disp = net(x)[0, 0].numpy()
    valid = np.isfinite(gt)
    err = np.abs(disp - gt)[valid]
    return {
        "motorcycle_epe": round(float(err.mean()), 3),
        "motorcycle_bad3": round(float((err > 3).mean()), 4),
        "motorcycle_bad1": round(float((err > 1).mean()), 4),
    }


def build(params: StereoParams) -> tuple[bytes, str]:
    """The ONNX bytes and the sidecar text, deterministically."""
    torch.manual_seed(0)
    net = CensusStereoNet(params)
    proto = export_onnx(net)
    sidecar = json.dumps(card(net, motorcycle_accuracy(net)), indent=2) + "\n"
    return proto.SerializeToString(), sidecar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS, help="folder for census_stereo.onnx/.json")
    parser.add_argument("--max-disp", type=int, default=StereoParams.max_disp)
    parser.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, sidecar = build(StereoParams(max_disp=args.max_disp))
    onnx_path, json_path = args.out / f"{NAME}.onnx", args.out / f"{NAME}.json"
    if args.check:
        same = onnx_path.read_bytes() == model and json_path.read_text(encoding="utf-8") == sidecar
        log.info("%s: %s", onnx_path, "identical" if same else "DIFFERS")
        return 0 if same else 1
    from modelport.model_io import write_bytes, write_text

    write_bytes(onnx_path, model)
    write_text(json_path, sidecar)
    log.info("wrote %s (%d bytes) and %s: %s", onnx_path, len(model), json_path, json.loads(sidecar)["measured"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
