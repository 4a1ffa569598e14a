"""The vision apps' benchmark, in one command: ``detect`` (FPS per runtime and threads on the pedestrian video, the
pipelined video loop vs a sequential one, the NMS cut vs in-graph NMS) and ``depth`` (ms per 480×640 pair per
runtime and threads, EPE/bad-3px vs OpenCV's StereoSGBM, the pipelined video loop).

    nice -n 5 .venv/bin/python benchmarks/bench_apps.py [--quick]

It runs ``benchmarks/bench_detect.py`` and ``benchmarks/bench_depth.py`` one after the other, each in its own
process (their results: ``benchmarks/results/apps_detect.md`` and ``apps_depth.md``, with the machine's CPU flags),
then ``benchmarks/collect.py`` to refresh ``docs/benchmarks.md``. Inputs it needs beyond ``make setup``: OpenCV's
``vtest.avi`` and Aloe pair from Debian's opencv-doc (``apt-get download opencv-doc && dpkg -x opencv-doc_*.deb
/work/opencv-doc``) and ``.venv-bench`` (torchvision, for ssdlite320; README, Benchmarks).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ALOE = Path("/work/opencv-doc/usr/share/doc/opencv-doc/examples/data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and repeats (a first look)")
    args = parser.parse_args(argv)
    frames, repeats, runs = ("60", "2", "3") if args.quick else ("150", "3", "5")
    detect = [sys.executable, str(HERE / "bench_detect.py"), "--frames", frames, "--repeats", repeats]
    depth = [sys.executable, str(HERE / "bench_depth.py"), "--runs", runs, "--frames", "40"]
    if (ALOE / "aloeL.jpg").exists():
        depth += ["--aloe", str(ALOE)]
    failed = 0
    for command in (detect, depth, [sys.executable, str(HERE / "collect.py")]):
        t0 = time.perf_counter()
        print("$", " ".join(command[1:]), flush=True)
        code = subprocess.call(command)
        print(f"  exit {code} after {time.perf_counter() - t0:.0f} s", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
