"""A build made once and measured elsewhere (``port --cluster``'s driver build): port verifies and times the
prebuilt artifacts without converting them again, and refuses a build made for another source or other options."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelport.errors import ConversionError, InvalidInputError
from modelport.formats import Precision
from modelport.porting.pipeline import PortOptions, port
from modelport.porting.prebuilt import PREBUILT_NAME, build_once, portable, read_prebuilt
from modelport.porting.results import PREBUILT_HOP

MNIST = Path(__file__).resolve().parents[2] / "src" / "modelport" / "assets" / "mnist_convnet.onnx"
OPTIONS = PortOptions(targets=("onnxruntime", "openvino"), precisions=(Precision.FP32,), quick=True, budget=0)
PAIRS = [("onnxruntime", Precision.FP32), ("openvino", Precision.FP32), ("onnxruntime", Precision.INT8)]


def test_int8_and_compiled_engines_are_built_on_the_device() -> None:
    assert portable("openvino", Precision.FP16) and portable("litert", Precision.FP32)
    assert not portable("onnxruntime", Precision.INT8)
    assert not portable("tensorrt", Precision.FP16)


def test_port_measures_the_build_without_converting_again(tmp_path: Path) -> None:
    build = build_once(MNIST, tmp_path, PAIRS, options=OPTIONS)
    assert [a.label for a in build.artifacts] == ["onnxruntime/fp32", "openvino/fp32"]  # INT8: the device's
    assert build.left == () and build.optimization is not None
    assert read_prebuilt(tmp_path) == build
    xml = tmp_path / "targets" / "openvino-fp32" / "model.xml"
    stamp = xml.stat().st_mtime_ns, (tmp_path / "model.onnx").stat().st_mtime_ns

    report = port(MNIST, tmp_path, options=OPTIONS, prebuilt=read_prebuilt(tmp_path))

    assert report and report.fastest is not None
    by_label = {t.label: t for t in report.targets}
    assert by_label["openvino/fp32"].route == ("onnx → openvino", PREBUILT_HOP)
    assert by_label["openvino/fp32"].verification is not None and by_label["openvino/fp32"].verification.passed
    assert Path(by_label["openvino/fp32"].artifact) == xml
    assert (xml.stat().st_mtime_ns, (tmp_path / "model.onnx").stat().st_mtime_ns) == stamp  # not written again
    assert report.optimization == build.optimization


def test_a_target_this_machine_cannot_convert_is_left_to_the_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelport.porting.target as target

    real = target.convert

    def no_openvino_converter(src, fmt, *args, **kwargs):  # type: ignore[no-untyped-def]
        if fmt.value == "openvino":
            raise ConversionError("the OpenVINO converter is not installed here")
        return real(src, fmt, *args, **kwargs)

    monkeypatch.setattr(target, "convert", no_openvino_converter)
    build = build_once(MNIST, tmp_path, PAIRS, options=OPTIONS)
    assert [a.label for a in build.artifacts] == ["onnxruntime/fp32"]
    assert build.left == (("openvino/fp32", "the OpenVINO converter is not installed here"),)
    monkeypatch.setattr(target, "convert", real)

    report = port(MNIST, tmp_path, options=OPTIONS, prebuilt=read_prebuilt(tmp_path))
    ov = next(t for t in report.targets if t.runtime == "openvino")
    assert ov.verified and PREBUILT_HOP not in ov.route  # converted by the port that measured it


def test_a_build_of_another_source_or_other_options_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    shutil.copyfile(MNIST, source)
    build_dir = tmp_path / "build"
    build = build_once(source, build_dir, PAIRS[:1], options=OPTIONS)

    with pytest.raises(InvalidInputError, match="other options"):
        port(source, build_dir, options=PortOptions(optimize=False, quick=True), prebuilt=build)

    (build_dir / build.artifacts[0].artifact).unlink()
    with pytest.raises(InvalidInputError, match=r"lacks targets/onnxruntime-fp32/model\.onnx"):
        port(source, build_dir, options=OPTIONS, prebuilt=build)

    source.write_bytes(source.read_bytes() + b"\0")  # another model (a trailing byte is enough)
    with pytest.raises(InvalidInputError, match="another source"):
        port(source, build_dir, options=OPTIONS, prebuilt=build)


def test_reading_a_folder_without_a_build_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="holds no build"):
        read_prebuilt(tmp_path)
    (tmp_path / PREBUILT_NAME).write_text('{"source": 3}')
    with pytest.raises(InvalidInputError, match="not a build record"):
        read_prebuilt(tmp_path)


def test_a_source_whose_external_data_changed_is_another_source(tmp_path: Path) -> None:
    import onnx

    from modelport.porting.prebuilt import source_digest

    source = tmp_path / "model.onnx"
    onnx.save(onnx.load(MNIST), source, save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    before = source_digest(source)
    data = tmp_path / "model.onnx.data"
    blob = bytearray(data.read_bytes())
    blob[-1] ^= 1  # one weight bit: the .onnx file itself is unchanged
    data.write_bytes(bytes(blob))
    assert source_digest(source) != before
