"""The vision apps' image and video layer: file listing, RGB reading, atomic writing, H.264 video, the frame loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from modelport.apps.vision.images import check_output_path, list_images, read_image, write_image
from modelport.apps.vision.video import (
    FrameTimes,
    VideoWriter,
    draw_overlay,
    is_video,
    open_video,
    run_video,
)
from modelport.errors import AppError

W, H, N = 64, 48, 20


def moving_square(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Frame ``i``: a dark background with a red square moving right and a green bar moving down."""
    f = np.full((h, w, 3), 30, np.uint8)
    x = 2 * i % (w - 12)
    f[10:22, x : x + 12] = (230, 20, 20)
    y = i % (h - 4)
    f[y : y + 4, w - 10 : w - 2] = (20, 220, 20)
    return f


def write_clip(path: Path, n: int = N, w: int = W, h: int = H) -> Path:
    with VideoWriter(path, 25.0, w, h) as out:
        for i in range(n):
            out.write(moving_square(i, w, h))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def video_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("modelport-video")]


# --- images -----------------------------------------------------------------------------------------------


def test_list_images_file_folder_and_empty(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    img = np.zeros((4, 4, 3), np.uint8)
    for rel in ("z.png", "b/a.jpg", "a.PNG", ".hidden/x.png", ".dot.png"):
        write_image(tmp_path / rel, img)
    (tmp_path / "notes.txt").write_text("not an image")
    assert list_images(tmp_path) == [tmp_path / "a.PNG", tmp_path / "b/a.jpg", tmp_path / "z.png"]
    assert list_images(tmp_path / "z.png") == [tmp_path / "z.png"]
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub/readme.txt").write_text("x")
    with pytest.raises(AppError, match="empty folder") as info:
        list_images(empty)
    assert str(empty) in str(info.value)
    with pytest.raises(AppError, match="does not exist"):
        list_images(tmp_path / "missing")


def test_read_image_is_rgb_and_gray_becomes_three_channels(tmp_path: Path) -> None:
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[2, 3] = (1, 2, 3)
    path = write_image(tmp_path / "red.png", rgb)
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 200]  # on disk as a normal (BGR-stored) PNG
    back = read_image(path)
    assert back.dtype == np.uint8 and back.shape == (5, 7, 3)
    np.testing.assert_array_equal(back, rgb)
    gray = np.arange(35, dtype=np.uint8).reshape(5, 7)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    g = read_image(tmp_path / "gray.png")
    assert g.shape == (5, 7, 3)
    np.testing.assert_array_equal(g[..., 1], gray)
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png", gray=True), gray)
    assert read_image(path, gray=True).shape == (5, 7)  # a colour file read as one channel


def test_read_image_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_text("this is text, not a PNG")
    with pytest.raises(AppError, match="cannot decode image") as info:
        read_image(bad)
    assert "broken.png" in str(info.value)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(AppError, match=r"empty\.jpg"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(AppError, match=r"missing\.png"):
        read_image(tmp_path / "missing.png")


def test_write_image_checks_before_writing(tmp_path: Path) -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(AppError, match="does not exist"):
        write_image(tmp_path / "no" / "such" / "out.png", img)
    assert leftovers(tmp_path) == []
    with pytest.raises(AppError, match=r"\.gif"):
        write_image(tmp_path / "out.gif", img)
    with pytest.raises(AppError, match="uint8"):
        write_image(tmp_path / "out.png", img.astype(np.float32))
    with pytest.raises(AppError, match="is a folder"):
        check_output_path(tmp_path)
    assert leftovers(tmp_path) == []
    write_image(tmp_path / "out.jpg", img)
    assert leftovers(tmp_path) == ["out.jpg"]  # no temporary left beside it


# --- video files ------------------------------------------------------------------------------------------


def test_video_round_trip(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4")
    assert leftovers(tmp_path) == ["clip.mp4"]
    info, frames = open_video(path)
    assert (info.width, info.height, info.frames) == (W, H, N)
    assert info.fps == pytest.approx(25.0)
    got = list(frames)
    assert len(got) == N
    for i, frame in enumerate(got):
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        err = np.abs(frame.astype(np.int16) - moving_square(i)).mean()
        assert err < 6, f"frame {i} differs by {err:.1f} on average"
    # the square really moves: frame 10 is closer to its own source than to frame 0's
    assert (
        np.abs(got[10].astype(int) - moving_square(10)).mean() < np.abs(got[10].astype(int) - moving_square(0)).mean()
    )


def test_video_gets_a_plain_new_files_mode(tmp_path: Path) -> None:
    """The finished mp4 has the mode ``open()`` would give (not the temporary file's private 0600)."""
    with VideoWriter(tmp_path / "mode.mp4", 25, W, H) as out:
        out.write(moving_square(0))
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "mode.mp4").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_codec_threads_can_be_limited(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "one.mp4", 25, W, H, threads=1) as out:
        for i in range(5):
            out.write(moving_square(i))
    info, frames = open_video(tmp_path / "one.mp4", threads=1)
    got = list(frames)
    assert info.frames == len(got) == 5
    assert np.abs(got[4].astype(np.int16) - moving_square(4)).mean() < 6


def test_video_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "odd.mp4", 10, 33, 21) as out:
        assert out.encoded_size == (34, 22)
        for i in range(3):
            out.write(moving_square(i, 33, 21))
    info, frames = open_video(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (34, 22)
    first = next(frames)
    assert np.abs(first[:21, :33].astype(int) - moving_square(0, 33, 21)).mean() < 8


def test_video_writer_is_atomic(tmp_path: Path) -> None:
    dest = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(dest, 25, W, H) as out:
        out.write(moving_square(0))
        assert any(name.endswith(".partial.mp4") for name in leftovers(tmp_path))
        assert not dest.exists()
        raise RuntimeError("boom")
    assert leftovers(tmp_path) == []
    with pytest.raises(AppError, match="must be 48×64×3 uint8"), VideoWriter(dest, 25, W, H) as out:
        out.write(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(AppError, match="no frame was written"), VideoWriter(dest, 25, W, H):
        pass
    assert leftovers(tmp_path) == []


def test_video_writer_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(AppError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", 25, W, H)
    with pytest.raises(AppError, match=r"must be \.mp4"):
        VideoWriter(tmp_path / "out.avi", 25, W, H)
    assert leftovers(tmp_path) == []


def test_undecodable_video(tmp_path: Path) -> None:
    fake = tmp_path / "x.mp4"
    fake.write_text("not a video at all\n" * 20)
    with pytest.raises(AppError, match="cannot decode") as info:
        open_video(fake)
    assert "x.mp4" in str(info.value)
    with pytest.raises(AppError, match="does not exist"):
        open_video(tmp_path / "missing.mp4")
    audio = tmp_path / "sound.mp4"
    container = av.open(str(audio), mode="w", format="mp4")
    stream = container.add_stream("aac", rate=8000)
    for i in range(4):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, i * 1024
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    with pytest.raises(AppError, match="no video stream"):
        open_video(audio)
    assert is_video(Path("a.MP4")) and is_video(Path("b.avi")) and not is_video(Path("c.png"))


# --- the frame loop ---------------------------------------------------------------------------------------


def signature(frame: np.ndarray) -> tuple[int, int]:
    """Where the red square is (its first column) and the green bar (its first row): differs per frame."""
    red = np.flatnonzero(frame[15, :, 0] > 150)
    green = np.flatnonzero(frame[:, -5, 1] > 150)
    return int(red[0]), int(green[0])


def jittery_infer(frame: np.ndarray) -> tuple[int, int]:
    time.sleep(0.001 * (int(frame[0, 0, 0]) % 3 + signature(frame)[1] % 3))
    return signature(frame)


@pytest.mark.parametrize("pipelined", [True, False])
def test_run_video_results_in_order(tmp_path: Path, pipelined: bool) -> None:
    source = [moving_square(i) for i in range(N)]
    seen: list[tuple[int, tuple[int, int]]] = []
    overlays: list[FrameTimes] = []

    def render(frame: np.ndarray, result: tuple[int, int], times: FrameTimes) -> np.ndarray:
        overlays.append(times)
        return draw_overlay(frame, [f"{times.fps:.1f} FPS", f"infer {times.infer_ms:.1f} ms"])

    with VideoWriter(tmp_path / "out.mp4", 25, W, H) as out:
        stats = run_video(
            iter(source),
            jittery_infer,
            render,
            out,
            pipelined=pipelined,
            queue_size=2,
            on_result=lambda i, r: seen.append((i, r)),
        )
    assert seen == [(i, signature(f)) for i, f in enumerate(source)]
    assert [t.index for t in overlays] == list(range(N))
    assert all(t.fps > 0 and t.infer_ms > 0 for t in overlays)
    assert stats.mode == ("pipelined" if pipelined else "sequential")
    assert stats.frames == N and stats.fps == pytest.approx(N / stats.seconds)
    assert stats.infer_ms >= 1.0 and stats.render_ms > 0 and stats.encode_ms > 0 and stats.decode_ms >= 0
    info, _ = open_video(tmp_path / "out.mp4")
    assert info.frames == N
    assert video_threads() == []


def test_run_video_on_a_decoded_file_with_max_frames(tmp_path: Path) -> None:
    _, frames = open_video(write_clip(tmp_path / "clip.mp4"))
    got: list[int] = []
    stats = run_video(frames, lambda f: signature(f)[0], None, None, on_result=lambda i, r: got.append(r), max_frames=7)
    assert stats.frames == 7 and stats.render_ms == 0 and stats.encode_ms == 0
    assert got == [signature(moving_square(i))[0] for i in range(7)]


def endless() -> Iterator[np.ndarray]:
    i = 0
    while True:
        yield moving_square(i)
        i += 1


def failing_frames() -> Iterator[np.ndarray]:
    yield moving_square(0)
    yield moving_square(1)
    raise OSError("disk went away")


@pytest.mark.parametrize("pipelined", [True, False])
@pytest.mark.parametrize("stage", ["decode", "infer", "render"])
def test_run_video_stage_error_stops_everything(tmp_path: Path, stage: str, pipelined: bool) -> None:
    def infer(frame: np.ndarray) -> int:
        if stage == "infer" and signature(frame)[1] == 5:
            raise ValueError("the runtime failed on frame 5")
        return 0

    def render(frame: np.ndarray, result: int, times: FrameTimes) -> np.ndarray:
        if stage == "render" and times.index == 3:
            raise KeyError("no colour for class 3")
        return frame

    frames = failing_frames() if stage == "decode" else endless()
    expected = {"decode": OSError, "infer": ValueError, "render": KeyError}[stage]
    dest = tmp_path / "out.mp4"
    started = time.perf_counter()
    with pytest.raises(expected), VideoWriter(dest, 25, W, H) as out:
        run_video(frames, infer, render, out, pipelined=pipelined)
    assert time.perf_counter() - started < 10
    assert video_threads() == []
    assert leftovers(tmp_path) == []  # the writer was aborted: no video, no partial file
    assert frames.gi_frame is None  # the source generator was closed


def test_draw_overlay_draws_top_left_only() -> None:
    frame = np.full((240, 320, 3), 200, np.uint8)
    out = draw_overlay(frame, ["12.3 FPS · pipelined", "infer 4.5 × ms"])
    assert (frame == 200).all()  # the input is untouched
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (out[:20, :60] != 200).any()
    assert (out[-60:, -60:] == 200).all()
    np.testing.assert_array_equal(draw_overlay(frame, []), frame)
