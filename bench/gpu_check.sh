#!/usr/bin/env bash
# Device-machine wrapper of bench/gpu_check.py (see its docstring for the full command).
# The hard stop: 450 s of the 420 s the phases budget themselves, so a hung CUDA call still
# leaves $OUT/gpu_check.json as written after the last finished phase.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-bench/results}
# raystack/schemas is a git-ignored link in checkouts and does not travel with the tree
[ -e raystack/schemas ] || ln -s ../schemas raystack/schemas
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
timeout -k 10 450 python3 bench/gpu_check.py --device "${GPU_CHECK_DEVICE:-cuda}" "$@"
rc=$?
echo "gpu_check exit $rc"
exit $rc
