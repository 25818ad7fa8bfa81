#!/usr/bin/env bash
# One DCGAN training run of `gvae image gan train` against the same networks and step in
# PyTorch (tools/torch_dcgan.py), both on one CPU thread; prints both rates and their ratio.
# Usage: tools/gan_speed.sh [STEPS]   (default 300 steps of 64 MNIST images; env PYTHON, GVAE)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
python=${PYTHON:-tools/.venv-peer/bin/python}
gvae=${GVAE:-/tmp/build-gan-rel/release/gvae}
data=${DATA:-../shared/data/mnist}
export OPENBLAS_NUM_THREADS=1 GVAE_BLAS_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ ! -x "$gvae" ]; then swift build -c release --scratch-path /tmp/build-gan-rel --product gvae >&2; fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# --limit makes one epoch exactly STEPS steps of 64.
"$gvae" image gan train --data "$data" --output "$out/g.safetensors" --epochs 1 --batch-size 64 \
  --limit $((steps * 64)) --seed 0 2> "$out/gvae.log"
gvae_rate=$(sed -n 's/^epoch 1: .*, \([0-9.]*\) images\/s;.*/\1/p' "$out/gvae.log")
torch_line=$("$python" tools/torch_dcgan.py --steps "$steps" --threads 1)
torch_rate=$(echo "$torch_line" | sed -n 's/.*, \([0-9.]*\) images\/s$/\1/p')
echo "gvae: $steps steps of 64 at $gvae_rate images/s ($(grep -c . "$out/gvae.log") log lines; $(head -1 "$out/gvae.log" | cut -c1-120))"
echo "$torch_line"
awk -v a="$gvae_rate" -v b="$torch_rate" 'BEGIN { printf "ratio gvae/torch: %.2f (above 1: gvae faster)\n", a / b }'
