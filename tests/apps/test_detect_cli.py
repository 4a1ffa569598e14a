"""``modelport detect`` end to end on tiny models built in the tests: an image, a folder, a video (annotated mp4,
pipelined, one JSON line per detection), and the bad inputs — an output folder that does not exist, an
undecodable video, an empty folder, a model that fits no contract: one error line each, nothing written."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import typer
from onnx import TensorProto, helper

from detectors import ssd_postprocessed_model, yolo_model
from modelport.apps.detect import DetectOptions, detect
from modelport.apps.vision.images import read_image, write_image
from modelport.apps.vision.video import VideoWriter, open_video
from modelport.cli import detect as detect_cli
from modelport.cli.main import VERBS, main
from modelport.errors import ModelportError


def run_cli(*args: str) -> tuple[int, str, str]:
    """``modelport detect ARGS`` → (exit code, stdout, stderr), through ``main`` once the verb is registered."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if "detect" in VERBS:
            code = main(["detect", *args])
        else:  # until cli/main.py registers the verb: the same path main takes
            app = typer.Typer()
            detect_cli.register(app)
            app.command("noop")(lambda: None)  # a group, so the verb name is given as in main
            try:
                result = app(args=["detect", *args], prog_name="modelport", standalone_mode=False)
                code = result if isinstance(result, int) else 0
            except ModelportError as exc:
                print(f"modelport: error: {exc}", file=err)
                code = exc.exit_code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("detect-cli")
    tree = d / "photos" / "sub"
    tree.mkdir(parents=True)
    write_image(d / "photos" / "a.png", np.full((64, 128, 3), 255, np.uint8))
    write_image(tree / "b.jpg", np.full((48, 48, 3), 255, np.uint8))
    (d / "empty").mkdir()
    with VideoWriter(d / "clip.mp4", 10.0, 128, 64) as writer:
        for k in range(6):
            writer.write(np.full((64, 128, 3), 255 if k % 2 == 0 else 0, np.uint8))
    (d / "broken.mp4").write_bytes(b"not a video" * 100)
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Flatten", ["x"], ["logits"])],
            "classifier",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 192])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, str(d / "classifier.onnx"))
    return {
        "dir": d,
        "yolo": yolo_model(d / "yolo.onnx"),
        "ssd": ssd_postprocessed_model(d / "ssd.onnx"),
        "classifier": d / "classifier.onnx",
        "image": d / "photos" / "a.png",
        "photos": d / "photos",
        "empty": d / "empty",
        "video": d / "clip.mp4",
        "broken": d / "broken.mp4",
    }


def test_image_json_and_annotated_png(files: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run_cli(str(files["ssd"]), str(files["image"]), "-o", str(tmp_path / "a.png"), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["frame"], r["label"], r["class_id"]) for r in rows] == [(0, "person", 1), (0, "dog", 18)]
    assert set(rows[0]) >= {"frame", "label", "class_id", "score", "box"}
    np.testing.assert_allclose(rows[0]["box"], [25.6, 6.4, 76.8, 32.0], atol=0.01)  # 128×64 image pixels
    drawn = read_image(tmp_path / "a.png")
    assert drawn.shape == (64, 128, 3) and (drawn != 255).any()  # boxes were drawn on the white image


def test_folder_keeps_its_tree(files: dict[str, Path], tmp_path: Path) -> None:
    out_dir = tmp_path / "annotated"
    code, out, err = run_cli(str(files["yolo"]), str(files["photos"]), "-o", str(out_dir), "--score", "0.3")
    assert code == 0, err
    assert sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.png")) == ["a.png", "sub/b.png"]
    assert "2 frame(s)" in out


def test_video_pipelined_mp4_and_json(files: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "boxes.mp4"
    report = detect(files["yolo"], files["video"], dest, options=DetectOptions(score=0.3))
    assert report.video is not None and report.video.mode == "pipelined" and report.frames == 6
    assert sorted({d.frame for d in report.detections}) == [0, 2, 4]  # the white frames; black ones have none
    info, frames = open_video(dest)
    assert (info.width, info.height) == (128, 64) and sum(1 for _ in frames) == 6
    code, out, err = run_cli(str(files["yolo"]), str(files["video"]), "--json", "--score", "0.3", "--sequential")
    assert code == 0, err
    assert sorted({json.loads(line)["frame"] for line in out.splitlines()}) == [0, 2, 4]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_dir", "does not exist"),
        ("broken_video", "cannot decode"),
        ("empty_folder", "empty folder"),
        ("no_contract", "fit no detection contract"),
        ("bad_adapter", "--adapter must be one of"),
    ],
)
def test_bad_input_one_error_nothing_written(files: dict[str, Path], tmp_path: Path, case: str, message: str) -> None:
    model, source, dest = files["yolo"], files["image"], tmp_path / "out.png"
    extra: list[str] = []
    if case == "missing_dir":
        dest = tmp_path / "nowhere" / "out.png"
    elif case == "broken_video":
        source, dest = files["broken"], tmp_path / "out.mp4"
    elif case == "empty_folder":
        source, dest = files["empty"], tmp_path / "outdir"
    elif case == "no_contract":
        model = files["classifier"]
    else:
        extra = ["--adapter", "retinanet"]
    code, out, err = run_cli(str(model), str(source), "-o", str(dest), *extra)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelport: error:") and message in lines[0], err
    assert list(tmp_path.iterdir()) == []
