"""``port``'s first step: any source model becomes ``OUT/model.onnx``, the file every target starts from.

- ONNX: copied, or optimized by ``modelport optimize`` (verified, with its own rollback of failing passes).
- Anything ``convert`` reads (PyTorch under the same trust rules, SavedModel, frozen GraphDef with
  ``inputs``/``outputs``, Keras, TFLite, OpenVINO IR where a route exists): converted to ONNX by the chain planner
  into ``OUT/source/`` — each hop verified against the source — then optimized like an ONNX source. The hops are
  the first part of every target's route.

Every free dim but the batch needs a size to verify and benchmark with; a missing one is one error naming the
input and the ``--input-shape`` to give, before anything is written.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from modelport.backends import open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.runner import RunnerOptions
from modelport.conversion import ChainOptions, ConvertOptions, convert_chain
from modelport.conversion.routes import alternative_routes
from modelport.errors import InvalidInputError
from modelport.formats import Format
from modelport.inputs import default_batch, resolve_shapes
from modelport.model_io import atomic_files, load_proto, save_model
from modelport.passes import OptimizeOptions, optimize
from modelport.porting.results import OptimizationSummary, PortOptions
from modelport.verify.compare import Comparison


@dataclasses.dataclass(frozen=True)
class PreparedSource:
    """The ONNX model the targets start from, and how it was made.

    Attributes:
        onnx: ``OUT/model.onnx``.
        route: the conversion hops from the source to ONNX (empty for an ONNX source).
        verification: the converted ONNX against the source (None for an ONNX source).
        optimization: what the optimizer did (None with ``optimize=False``).
        loader: how the source itself is opened (its GraphDef tensor names, the PyTorch trust flag).
    """

    onnx: Path
    route: tuple[str, ...] = ()
    verification: Comparison | None = None
    optimization: OptimizationSummary | None = None
    loader: LoaderOptions = LoaderOptions()


def source_convert_options(opts: PortOptions) -> ConvertOptions:
    """How the source is converted to ONNX and opened (its GraphDef tensor names, trust flag, shapes)."""
    return ConvertOptions(
        name="model",
        inputs=opts.inputs,
        outputs=opts.outputs,
        trust_remote_code=opts.trust_remote_code,
        input_shapes=opts.input_shapes,
    )


def prepare_source(src: Path, fmt: Format, out_dir: Path, opts: PortOptions) -> PreparedSource:
    """``OUT/model.onnx`` from ``src`` (any format ``convert`` reads); see the module docstring."""
    route: tuple[str, ...] = ()
    verification = None
    convert_opts = source_convert_options(opts)
    onnx_src = src
    if fmt is not Format.ONNX:
        if not alternative_routes(fmt, Format.ONNX):
            raise InvalidInputError(
                f"port starts from a model that converts to ONNX; there is no route from {fmt.value}",
                path=src,
                hint="port the model this one was made from (ONNX, PyTorch, SavedModel, frozen .pb, Keras, TFLite)",
            )
        chain = convert_chain(
            src,
            Format.ONNX,
            out_dir / "source",
            options=ChainOptions(convert_opts, seed=opts.seed, threads=opts.threads),
        )
        onnx_src = Path(chain.artifact(Format.ONNX))
        route = tuple(h.label for h in chain.hops)
        verification = chain.hops[-1].against_source
    dst = out_dir / "model.onnx"
    proto = load_proto(onnx_src)  # onnx.checker first: a broken file is named as such, not as ORT's load error
    with open_runner("onnxruntime", onnx_src, RunnerOptions(threads=opts.threads)) as probe:
        specs = tuple(probe.input_specs)
    resolve_shapes(list(specs), dict(opts.input_shapes), batch=opts.batch or default_batch(list(specs)))
    optimization = None
    if opts.optimize:
        # the optimizer fixes these dims: give it the batch the feeds and benchmarks will use
        shapes = tuple((name, (opts.batch, *dims[1:]) if opts.batch else dims) for name, dims in opts.input_shapes)
        options = OptimizeOptions(input_shapes=shapes, seed=opts.seed, threads=opts.threads)
        rep = optimize(onnx_src, options=options).write(dst)
        optimization = OptimizationSummary(
            nodes_before=rep.nodes_before,
            nodes_after=rep.nodes_after,
            passes=tuple(p.name for p in rep.passes if p.modified),
            seconds=rep.seconds,
            max_abs_error=rep.verification.max_abs if rep.verification is not None else None,
            rolled_back=tuple(name for name, _ in rep.rolled_back),
        )
    else:
        save_model(proto, dst, source=src)
    return PreparedSource(dst, route, verification, optimization, convert_opts.loader)


def copy_source(src: Path, fmt: Format, target_dir: Path) -> tuple[Path, list[Path]]:
    """The source itself as a target's artifact (a TFLite source on LiteRT, an OpenVINO IR on OpenVINO, at fp32):
    no round trip through ONNX. Returns the copied model file and every file written."""
    files = [(src, f"model{src.suffix}")]
    if fmt is Format.OPENVINO_IR:
        files.append((src.with_suffix(".bin"), "model.bin"))
    with atomic_files(target_dir) as staging:
        for path, name in files:
            shutil.copyfile(path, staging / name)
    return target_dir / files[0][1], [target_dir / name for _, name in files]
