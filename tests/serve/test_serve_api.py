"""The web service's JSON API end to end on the shipped MNIST model, and every bad request it must refuse."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import MNIST, TOKEN, client, upload_mnist, wait_state

from modelport.errors import InvalidInputError
from modelport.serve.app import inside
from modelport.serve.settings import ServeSettings


def test_upload_port_events_report_and_artifacts(tmp_path: Path) -> None:
    with client(tmp_path / "data", job_timeout_s=600) as c:
        model = upload_mnist(c)
        listed = c.get(f"/api/models/{model}").json()
        assert listed["format"] == "onnx" and listed["size"] == MNIST.stat().st_size
        import hashlib

        assert listed["sha256"] == hashlib.sha256(MNIST.read_bytes()).hexdigest()
        r = c.post(
            "/api/jobs", json={"model": model, "verb": "port", "to": "onnxruntime", "precision": "fp32", "quick": True}
        )
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["state"] in ("queued", "running")
        assert job["command"] == "modelport port mnist.onnx --to onnxruntime --precision fp32 --quick --output out"
        events: list[tuple[str, str]] = []
        with c.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, line[6:]))
        kinds = [k for k, _ in events]
        assert kinds[-1] == "end" and json.loads(events[-1][1])["state"] == "done"
        logs = [d for k, d in events if k == "log"]
        assert "progress: onnxruntime/fp32: done, verified" in logs
        done = c.get(f"/api/jobs/{job['id']}").json()
        assert done["state"] == "done" and done["exit_code"] == 0 and done["error"] is None
        assert done["progress"]["onnxruntime/fp32"]["status"] == "verified"
        assert done["report"]["fastest"] == "onnxruntime/fp32"  # the verb's own --json report
        paths = {a["path"] for a in done["artifacts"]}
        assert {"report.html", "report.json", "targets/onnxruntime-fp32/model.onnx"} <= paths
        one = c.get(f"/api/jobs/{job['id']}/artifacts/targets/onnxruntime-fp32/model.onnx")
        assert (
            one.status_code == 200
            and one.content[:2]
            == (
                Path(tmp_path / "data/jobs" / job["id"] / "artifacts/targets/onnxruntime-fp32/model.onnx").read_bytes()[
                    :2
                ]
            )
        )
        z = c.get(f"/api/jobs/{job['id']}/artifacts.zip")
        assert z.status_code == 200
        names = set(zipfile.ZipFile(io.BytesIO(z.content)).namelist())
        assert names == paths
        html = c.get(f"/api/jobs/{job['id']}/artifacts/report.html")
        assert "sandbox" in html.headers["content-security-policy"] and b"<html" in html.content.lower()


def test_convert_job_runs_the_cli_with_the_same_option_names(tmp_path: Path) -> None:
    with client(tmp_path / "data") as c:
        model = upload_mnist(c)
        r = c.post(
            "/api/jobs",
            json={"model": model, "verb": "convert", "to": ["openvino"], "input_shape": ["image:1,1,28,28"]},
        )
        assert r.status_code == 201, r.text
        job = wait_state(c, r.json()["id"], ("done", "failed"))
        assert job["state"] == "done", job
        assert any(a["path"].endswith(".xml") for a in job["artifacts"])
        assert "--input-shape image:1,1,28,28" in job["command"]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"verb": "port", "model": "nope"}, "model", "no uploaded model"),
        ({"verb": "rm -rf", "model": "MODEL"}, "verb", "must be one of"),
        ({"verb": "port", "model": "MODEL", "output": "/etc"}, "output", "set by the server"),
        ({"verb": "port", "model": "MODEL", "trust_remote_code": True}, "trust_remote_code", "not allowed"),
        ({"verb": "port", "model": "MODEL", "cluster": "10.0.0.5:6379"}, "cluster", "never connects"),
        ({"verb": "port", "model": "MODEL", "bogus": 1}, "bogus", "not an option"),
        ({"verb": "port", "model": "MODEL", "seconds": "fast"}, "seconds", "valid number"),
        ({"verb": "port", "model": "MODEL", "quick": "yes"}, "quick", "true or false"),
        ({"verb": "port", "model": "MODEL", "calib": "../../etc/passwd"}, "calib", "neither an uploaded data id"),
        ({"verb": "convert", "model": "MODEL", "to": ["onnx"], "name": "../x"}, "name", "plain file name"),
        ({"verb": "quantize", "model": "MODEL", "calib": "random", "threads": 0}, "threads", "greater than or equal"),
    ],
)
def test_bad_job_specs_name_each_wrong_field(tmp_path: Path, spec: dict[str, object], field: str, words: str) -> None:
    with client(tmp_path / "data") as c:
        model = upload_mnist(c)
        body = {k: (model if v == "MODEL" else v) for k, v in spec.items()}
        r = c.post("/api/jobs", json=body)
        assert r.status_code == 422, r.text
        fields = {f["field"]: f["message"] for f in r.json()["fields"]}
        assert field in fields and words in fields[field], fields
        assert c.get("/api/jobs").json() == []


def test_several_wrong_fields_are_all_reported(tmp_path: Path) -> None:
    with client(tmp_path / "data") as c:
        r = c.post("/api/jobs", json={"verb": "port", "model": "x", "output": "o", "bogus": 1})
        assert r.status_code == 422
        assert {f["field"] for f in r.json()["fields"]} == {"model", "output", "bogus"}
        assert (
            c.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        )


def test_oversized_upload_is_refused_while_streaming(tmp_path: Path) -> None:
    with client(tmp_path / "data", max_upload_mb=1) as c:
        blob = b"\x08\x07" + b"\0" * (2 * 1024 * 1024)
        r = c.post("/api/models", files={"file": ("big.onnx", blob)})  # refused by its Content-Length
        assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap is enforced while streaming
            boundary = b"xyzzy"
            yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.onnx"\r\n\r\n'
            for _ in range(40):
                yield b"\x08\x07" + b"\0" * 65534
            yield b"\r\n--" + boundary + b"--\r\n"

        r = c.post("/api/models", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyzzy"})
        assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]
        assert list((tmp_path / "data" / "uploads").iterdir()) == []  # nothing kept
        assert c.get("/api/models").json() == []


@pytest.mark.parametrize("payload", [b"GIF89a" + b"\0" * 5000, b"just some text\n" * 10, b""])
def test_unknown_format_is_refused(tmp_path: Path, payload: bytes) -> None:
    with client(tmp_path / "data") as c:
        r = c.post("/api/models", files={"file": ("thing.bin", payload)})
        assert r.status_code in (400, 415), r.text
        assert r.json()["error"]
        assert list((tmp_path / "data" / "uploads").iterdir()) == []


def test_upload_needs_multipart_field_file(tmp_path: Path) -> None:
    with client(tmp_path / "data") as c:
        assert c.post("/api/models", content=MNIST.read_bytes()).status_code == 415
        r = c.post("/api/models", files={"other": ("m.onnx", MNIST.read_bytes())})
        assert r.status_code == 400 and "'file'" in r.json()["error"]


def test_uploaded_file_names_are_never_paths(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with client(data) as c:
        r = c.post("/api/models", files={"file": ("../../../escape.onnx", MNIST.read_bytes())})
        assert r.status_code == 201
        stored = list((data / "uploads").rglob("*.onnx"))
        assert [p.name for p in stored] == ["model.onnx"]
        assert not (tmp_path / "escape.onnx").exists() and not (data.parent.parent / "escape.onnx").exists()


def test_zip_upload_with_traversal_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ir/model.xml", "<net/>")
        z.writestr("../../evil.txt", "x")
    with client(tmp_path / "data") as c:
        r = c.post("/api/models", files={"file": ("ir.zip", buf.getvalue())})
        assert r.status_code == 400 and "leave the upload" in r.json()["error"]
    assert not (tmp_path / "evil.txt").exists()


def test_zip_upload_of_an_openvino_ir(tmp_path: Path) -> None:
    import modelport

    out = tmp_path / "ir"
    modelport.convert(MNIST, "openvino", out)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in out.rglob("*"):
            if p.suffix in (".xml", ".bin"):
                z.write(p, f"model/{p.name}")
    with client(tmp_path / "data") as c:
        r = c.post("/api/models", files={"file": ("mnist-ir.zip", buf.getvalue())})
        assert r.status_code == 201, r.text
        assert r.json()["format"] == "openvino"


def test_artifact_paths_stay_inside_the_job(tmp_path: Path) -> None:
    folder = tmp_path / "jobs" / "abc" / "artifacts"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("s")
    (folder / "link").symlink_to(tmp_path / "secret.txt")
    assert inside(folder, "sub/a.txt") == (folder / "sub" / "a.txt").resolve()
    for bad in ("../../../secret.txt", "/etc/passwd", "sub/../../../secret.txt", "link", "", "a\x00b"):
        assert inside(folder, bad) is None, bad


def test_artifact_traversal_over_http_is_404(tmp_path: Path) -> None:
    with client(tmp_path / "data") as c:
        model = upload_mnist(c)
        r = c.post("/api/jobs", json={"model": model, "verb": "optimize"})
        job = wait_state(c, r.json()["id"], ("done", "failed"))
        assert job["state"] == "done", job
        for bad in ("..%2F..%2Fmodelport-serve.sqlite", "%2e%2e/job.log", "%2Fetc%2Fpasswd"):
            resp = c.get(f"/api/jobs/{job['id']}/artifacts/{bad}")
            assert resp.status_code == 404, (bad, resp.status_code)
        assert c.get("/api/jobs/nope/artifacts.zip").status_code == 404


def test_token_is_required_on_every_api_route(tmp_path: Path) -> None:
    with client(tmp_path / "data", token=TOKEN) as c:
        model = upload_mnist(c)  # with the token
        routes = [
            ("get", "/api/info"),
            ("get", "/api/models"),
            ("post", "/api/models"),
            ("post", "/api/jobs"),
            ("get", "/api/jobs"),
            ("get", f"/api/models/{model}"),
            ("get", "/api/jobs/x"),
            ("delete", "/api/jobs/x"),
            ("get", "/api/jobs/x/events"),
            ("get", "/api/jobs/x/artifacts.zip"),
            ("get", "/api/jobs/x/artifacts/a"),
            ("post", "/api/data"),
        ]
        for header in (None, "Bearer wrong-token-wrong-token", f"Basic {TOKEN}"):
            for method, path in routes:
                headers = {"Authorization": header} if header else {}
                del c.headers["Authorization"]
                r = getattr(c, method)(path, headers=headers)
                c.headers["Authorization"] = f"Bearer {TOKEN}"
                assert r.status_code == 401, (method, path, header, r.status_code)
                assert "token" in r.json()["error"]
        assert c.get("/").status_code == 200  # the page itself holds no data


def test_non_loopback_host_without_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="without a token"):
        ServeSettings(data_dir=tmp_path, host="0.0.0.0")
    assert ServeSettings(data_dir=tmp_path, host="0.0.0.0", token=TOKEN).host == "0.0.0.0"
    assert ServeSettings(data_dir=tmp_path, host="::1").token is None


def test_concurrent_uploads_per_client_are_limited(tmp_path: Path) -> None:
    with client(tmp_path / "data", max_uploads_per_client=0) as c:
        r = c.post("/api/models", files={"file": ("m.onnx", MNIST.read_bytes())})
        assert r.status_code == 429


def test_nothing_is_written_outside_the_data_folder(tmp_path: Path) -> None:
    before = {p for p in tmp_path.rglob("*")}
    data = tmp_path / "data"
    with client(data) as c:
        model = upload_mnist(c)
        c.post("/api/models", files={"file": ("../../x.onnx", b"junk")})
        c.post("/api/jobs", json={"model": model, "verb": "convert", "to": ["onnx"], "name": "../../y"})
        r = c.post("/api/jobs", json={"model": model, "verb": "optimize"})
        wait_state(c, r.json()["id"], ("done", "failed"))
    after = {p for p in tmp_path.rglob("*")}
    assert {p for p in after - before if data not in p.parents and p != data} == set()


def test_uploaded_data_calibrates_a_quantize_job(tmp_path: Path) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, image=np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32))
    with client(tmp_path / "data") as c:
        model = upload_mnist(c)
        r = c.post("/api/data", files={"file": ("calib.npz", buf.getvalue())})
        assert r.status_code == 201, r.text
        data = r.json()["id"]
        assert c.post("/api/data", files={"file": ("calib.pkl", b"\x80\x04")}).status_code == 415
        r = c.post("/api/jobs", json={"model": model, "verb": "quantize", "calib": data, "samples": 16})
        assert r.status_code == 201, r.text
        job = wait_state(c, r.json()["id"], ("done", "failed"), timeout=300)
        assert job["state"] == "done", job
        assert "--calib calib.npz" in job["command"]  # the data by the name it was uploaded with
        assert any(a["path"].endswith(".onnx") for a in job["artifacts"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "0.0.0.0"], "without a token"),
        (["--token-file", "/nonexistent/token"], "cannot read the token file"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_serve_cli_bad_settings_are_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "modelport", "serve", "--data", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert words in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_short_token_file_is_refused(tmp_path: Path) -> None:
    from modelport.serve.settings import read_token

    (tmp_path / "t").write_text("short\n")
    with pytest.raises(InvalidInputError, match="shorter than 16"):
        read_token(tmp_path / "t")
    (tmp_path / "t").write_text(TOKEN + "\n")
    assert read_token(tmp_path / "t") == TOKEN
