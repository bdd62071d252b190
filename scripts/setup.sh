#!/usr/bin/env bash
# Creates .venv with the pinned CPU torch first (a bare `torch` requirement would pull a CUDA build),
# then pareco with its test extras, and Debian's Fashion-MNIST when it is missing.
# Usage: scripts/setup.sh            (idempotent; re-running is cheap)
#        TORCH_SPEC="torch==2.13.0" scripts/setup.sh   (another pinned build, e.g. on a GPU box)
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
PYTHON="${PYTHON:-python3}"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[dev]"
# timm's model code is plain PyTorch, but its metadata requires torchvision (a CUDA build here that
# would replace the CPU torch): install it without dependencies; its light ones come with [models].
.venv/bin/python -m pip install -q --no-deps "timm>=1.0.20,<1.1"

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  ($sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
    || ($sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null)) \
    || echo "setup: could not install dataset-fashion-mnist; pass --data-dir to pareco train" >&2
fi
.venv/bin/python -c "import torch, pareco; print(f'pareco {pareco.__version__}, torch {torch.__version__}')"
