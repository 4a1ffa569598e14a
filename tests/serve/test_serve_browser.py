"""End to end in a real browser: `modelport serve` started as a user would, the page driven by pytest-playwright in
Chromium — upload the shipped MNIST model, port it, wait for the report, download the zip, check its contents."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import MNIST, alive

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelport", "serve", "--port", str(port), "--data", str(tmp_path / "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/info", timeout=2)
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
    yield url
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the server did not stop on SIGINT") from None
    assert not alive(proc.pid)


def test_page_uploads_ports_and_downloads(server: str, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/")
    page.wait_for_selector("#targets input")
    for box in page.query_selector_all("input[name=runtime]"):
        box.set_checked(box.get_attribute("value") == "onnxruntime")
    for box in page.query_selector_all("input[name=precision]"):
        box.set_checked(box.get_attribute("value") == "fp32")
    page.set_input_files("#file", str(MNIST))
    page.wait_for_function("!document.getElementById('start').disabled", timeout=30_000)
    assert "onnx" in page.inner_text("#upmsg")
    page.click("#start")
    page.wait_for_selector("#state.done, #state.failed, #state.cancelled", timeout=240_000)
    assert page.inner_text("#state") == "done", page.inner_text("#log")
    assert (
        page.inner_text("#command")
        == "modelport port mnist_convnet.onnx --to onnxruntime --quick --precision fp32 --output out"
    )
    assert "onnxruntime/fp32" in page.inner_text("#progress")
    page.wait_for_selector("#report:not([hidden])")
    frame = page.frame_locator("#report")
    assert "onnxruntime/fp32" in frame.locator("body").inner_text(timeout=20_000)
    with page.expect_download() as download:
        page.click("#zip")
    saved = tmp_path / "artifacts.zip"
    download.value.save_as(saved)
    names = set(zipfile.ZipFile(io.BytesIO(saved.read_bytes())).namelist())
    assert {"report.html", "report.json", "model.onnx", "targets/onnxruntime-fp32/model.onnx"} <= names
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.screenshot(path=str(tmp_path / "serve-page.png"), full_page=True)
    shot = os.environ.get("MODELPORT_SERVE_SCREENSHOT")  # scripts: keep the screenshot for docs/serve.md
    if shot:
        page.screenshot(path=shot, full_page=True)
