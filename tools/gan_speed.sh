#!/usr/bin/env bash
# One DCGAN epoch of `gvae image gan train` (the product's own training loop) against the same
# networks and step in PyTorch (tools/torch_dcgan.py), both on one CPU thread (set THREADS to
# change); prints the rates, the thread settings and the ratios against two PyTorch peers
# (the DCGAN example's step, and the same with D's gradients off in G's step, as gvae runs it).
# Usage: tools/gan_speed.sh [STEPS]   (default 300 steps of 64 MNIST images; env PYTHON, GVAE, THREADS)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
threads=${THREADS:-1}
python=${PYTHON:-tools/.venv-peer/bin/python}
gvae=${GVAE:-.build-gan/release/gvae}
data=${DATA:-../shared/data/mnist}
export OPENBLAS_NUM_THREADS=$threads GVAE_BLAS_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
if [ ! -x "$gvae" ]; then swift build -c release --scratch-path .build-gan --product gvae >&2; fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# --limit makes one epoch exactly STEPS steps of 64; the rate is the epoch's (every step timed,
# file writes after the epoch not), as the torch side times every step.
"$gvae" image gan train --data "$data" --output "$out/g.safetensors" --epochs 1 --batch-size 64 \
  --limit $((steps * 64)) --seed 0 --blas-threads "$threads" 2> "$out/gvae.log"
gvae_rate=$(sed -n 's/^epoch 1: .*, \([0-9.]*\) images\/s;.*/\1/p' "$out/gvae.log")
[ -n "$gvae_rate" ] || { cat "$out/gvae.log" >&2; exit 1; }
echo "gvae ($gvae, BLAS threads $threads): $steps steps of 64 at $gvae_rate images/s"
# Two peers: the PyTorch DCGAN example's step, and the same with D frozen in G's step (gvae's).
for freeze in "" --freeze-d; do
  torch_line=$("$python" tools/torch_dcgan.py --steps "$steps" --warmup 0 --threads "$threads" $freeze)
  torch_rate=$(echo "$torch_line" | sed -n 's/.*, \([0-9.]*\) images\/s$/\1/p')
  echo "$torch_line"
  awk -v a="$gvae_rate" -v b="$torch_rate" 'BEGIN { printf "ratio time gvae/torch: %.2f (below 1: gvae faster)\n", b / a }'
done
