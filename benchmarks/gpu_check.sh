#!/usr/bin/env bash
# The GPU check: one prepared run of at most 8 minutes on a lent accelerator.
#
#   benchmarks/gpu_check.sh [--tiny] [OUTDIR]
#
# Runs the roofline kernels (each kernel's time over its roofline bound: bytes over HBM
# bandwidth, flops over peak) and the scale benchmark (ml-100k, the mid-size synthetic
# catalogue, 1M x 1M evaluation memory) and writes their JSON records to OUTDIR (default
# benchmarks/results). Without --tiny it refuses to run on a machine without a GPU, so a CPU
# record is never filed as a GPU one. --tiny runs everything at small sizes on any device in
# about a minute (the test suite runs it on CPU under -m slow).
#
# PYTHON selects the interpreter (default .venv/bin/python); on a GPU machine it must have
# jax with CUDA (pip install -e '.[bench]' 'jax[cuda12]').
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
TINY=""
if [[ "${1:-}" == "--tiny" ]]; then TINY="--tiny"; shift; fi
OUT=${1:-benchmarks/results}
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%d-%H%M%S)
PLATFORM=$("$PY" -c 'import jax; print(jax.devices()[0].platform)')
if [[ -z "$TINY" && "$PLATFORM" != "gpu" ]]; then
  echo "gpu_check: no GPU visible to jax (platform: $PLATFORM); use --tiny to try it on CPU" >&2
  exit 2
fi
BUDGET=${GPU_CHECK_SECONDS:-480}
START=$SECONDS
left() { echo $((BUDGET - (SECONDS - START))); }
echo "gpu_check: platform $PLATFORM, budget ${BUDGET}s, records in $OUT"
timeout "$(left)" "$PY" -m benchmarks.roofline $TINY --json "$OUT/roofline-$PLATFORM-$STAMP.json"
# the mid-size quality runs are sized to fit the budget: 100 epochs on a GPU, 4 with --tiny
timeout "$(left)" "$PY" -m benchmarks.scale $TINY --json "$OUT/scale-$PLATFORM-$STAMP.json"
echo "gpu_check: done in $((SECONDS - START))s"
