#!/usr/bin/env bash
# The paper-regime method comparison (configs/compare_fmnist_paper.yaml, issue #20) on a machine
# with one NVIDIA GPU and 16 CPU cores: every training of every seed runs side by side on the one
# GPU (one process each, one CPU thread each), then TwoStage's stage two and the evaluations.
# Summaries go to docs/results/compare_paper_gpu/ and the page to docs/results_paper_gpu.md; they
# are kept apart from the CPU runs' (CUDA kernels and bf16 autocast make other numbers).
#
# Usage:  benchmarks/compare_on_gpu.sh [SEEDS...]        (default seeds: 0 1 2)
# Env:    PYTHON      a Python with a CUDA build of torch and pareco's dependencies
#                     (default: .venv/bin/python, e.g. from TORCH_SPEC="torch==2.13.0" scripts/setup.sh)
#         DATA_DIR    Fashion-MNIST's IDX files (default: /usr/share/datasets/fashion-mnist)
#         JOBS        processes at once (default: 4 per seed, at most 15)
#         ROOT        run directories (default: runs/paper-gpu); a rerun resumes every job
#         SUMMARIES   per-seed summaries (default: docs/results/compare_paper_gpu)
#         PAGE        the report page (default: docs/results_paper_gpu.md)
#         OVERRIDES   config lines appended to the experiment's config (a plumbing check on a
#                     CPU: DEVICE=cpu OVERRIDES=$'epochs: 1\ntrain_subset: 1500' ...)
#         DEVICE      cuda (default), or cpu for that check
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
DATA_DIR="${DATA_DIR:-/usr/share/datasets/fashion-mnist}"
ROOT="${ROOT:-runs/paper-gpu}"
SUMMARIES="${SUMMARIES:-docs/results/compare_paper_gpu}"
PAGE="${PAGE:-docs/results_paper_gpu.md}"
DEVICE="${DEVICE:-cuda}"
SEEDS=("${@:-0 1 2}")
read -r -a SEEDS <<<"${SEEDS[*]}"
JOBS="${JOBS:-$((4 * ${#SEEDS[@]} < 15 ? 4 * ${#SEEDS[@]} : 15))}"

if [ "$DEVICE" != cpu ]; then
  "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "compare_on_gpu: no CUDA device here; this script is for a GPU machine" >&2; exit 2; }
fi
"$PYTHON" -c "import pareco" 2>/dev/null || "$PYTHON" -m pip install -q --no-deps -e .
[ -f "$DATA_DIR/train-images-idx3-ubyte.gz" ] || [ -f "$DATA_DIR/train-images-idx3-ubyte" ] \
  || { echo "compare_on_gpu: no Fashion-MNIST IDX files in $DATA_DIR; set DATA_DIR" >&2; exit 2; }
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', '| torch', torch.__version__)"

mkdir -p "$ROOT"
CONFIG="$ROOT/config.yaml"
{ cat configs/compare_fmnist_paper.yaml; echo "data_dir: $DATA_DIR"; [ -z "${OVERRIDES:-}" ] || printf '# OVERRIDES (the last value of a key wins)\n%s\n' "$OVERRIDES"; } >"$CONFIG"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
start=$(date +%s)
"$PYTHON" benchmarks/compare_methods.py run --config "$CONFIG" --root "$ROOT" \
  --summaries "$SUMMARIES" --seeds "${SEEDS[@]}" --jobs "$JOBS" --device "$DEVICE"
"$PYTHON" benchmarks/compare_methods.py report --config "$CONFIG" \
  --summaries "$SUMMARIES" --page "$PAGE" \
  --planned "${#SEEDS[@]}" --jobs "$JOBS" --title "Method comparison in the paper's regime, on one GPU"
echo "compare_on_gpu: $(( $(date +%s) - start )) s for seeds ${SEEDS[*]} ($JOBS jobs at once)"
