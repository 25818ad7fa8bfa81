#!/usr/bin/env bash
# One epoch of `gvae image vae train` (the product's own training loop) against the same
# networks and step in PyTorch (tools/torch_vae.py), both on one CPU thread (set THREADS to
# change); per preset, prints both rates and their time ratio.
# Usage: tools/vae_speed.sh [PRESET] [STEPS]   (PRESET iwae-1 or conv, default both in turn;
#   default 600 steps of 100 = one epoch of MNIST's 60,000 training images; env PYTHON, GVAE,
#   THREADS, DATA)
set -euo pipefail
cd "$(dirname "$0")/.."
presets=${1:-iwae-1 conv}
steps=${2:-600}
batch=100
threads=${THREADS:-1}
python=${PYTHON:-tools/.venv-peer/bin/python}
gvae=${GVAE:-.build/release/gvae}
data=${DATA:-../shared/data/mnist}
export OPENBLAS_NUM_THREADS=$threads GVAE_BLAS_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
if [ ! -x "$gvae" ]; then swift build -c release --product gvae >&2; fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for preset in $presets; do
  # --limit with no validation images makes the epoch exactly STEPS batches; the rate is the
  # epoch's (every step timed; validation and file writes come after the clock stops).
  "$gvae" image vae train --data "$data" --output "$out/$preset.safetensors" --preset "$preset" \
    --epochs 1 --batch-size $batch --limit $((steps * batch)) --validation-count 0 --seed 0 \
    --blas-threads "$threads" 2> "$out/$preset.log"
  # The JSON log has the rate unrounded (stderr prints it to the image).
  gvae_rate=$(sed -n 's/.*"rowsPerSecond":\([0-9.e+-]*\).*/\1/p' "$out/$preset.safetensors.log.jsonl" | tail -n 1)
  [ -n "$gvae_rate" ] || { cat "$out/$preset.log" >&2; exit 1; }
  torch_line=$("$python" tools/torch_vae.py --preset "$preset" --steps "$steps" --batch-size $batch \
    --threads "$threads" --data "$data")
  torch_rate=$(echo "$torch_line" | sed -n 's/.*, \([0-9.]*\) images\/s$/\1/p')
  printf 'gvae (%s, %s, BLAS threads %s): %s steps of %s at %.1f images/s\n' \
    "$gvae" "$preset" "$threads" "$steps" $batch "$gvae_rate"
  echo "$torch_line"
  awk -v p="$preset" -v a="$gvae_rate" -v b="$torch_rate" \
    'BEGIN { printf "%s: ratio time gvae/torch: %.2f (below 1: gvae faster)\n", p, b / a }'
done
