#!/usr/bin/env bash
# `make test-gpu-extras`: build .venv-gpu-extras (torch 2.14.1 + torchvision + ptlflow, see
# requirements.txt beside this file) and run the ptlflow adapter for real on CPU.
#
#   infra/gpu-extras/run.sh          # build the venv if needed, then run tests/gpu_extras
#   infra/gpu-extras/run.sh build    # only build the venv
#
# The venv is rebuilt when requirements.txt changes (its hash is stamped in the venv).
# raystack itself goes in editable with --no-deps: the adapter test needs only the stack
# above, and the main dependencies (ray, decord, a CPU torch) would fight it.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${GPU_EXTRAS_VENV:-.venv-gpu-extras}
PYTHON=${PYTHON:-python3}
REQ=infra/gpu-extras/requirements.txt
STAMP=$VENV/.raystack-gpu-extras
start=$(date +%s)

want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ ! -f $STAMP || "$(cat "$STAMP")" != "$want" ]]; then
    test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -r "$REQ"
    "$VENV/bin/python" -m pip install -q -e . --no-deps
    echo "$want" >"$STAMP"
    echo "gpu-extras venv built in $(($(date +%s) - start)) s, $(du -sh "$VENV" | cut -f1)"
fi
if [[ ${1:-} == build ]]; then
    exit 0
fi

RAYSTACK_GPU_EXTRAS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/gpu_extras
echo "test-gpu-extras: $(($(date +%s) - start)) s in all"
