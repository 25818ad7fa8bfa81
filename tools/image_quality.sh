#!/usr/bin/env bash
# Scores generated MNIST images the same way (README, "GANs and CycleGAN"): 10,000 samples of
# each model given, and the first 10,000 training images as the floor, against the 10,000
# test images, by `gvae image score` with the shipped MNIST classifier. Prints a markdown table.
# Usage: tools/image_quality.sh [--gan G.safetensors]... [--vae V.safetensors]...
# env: GVAE (gvae binary, default .build/release/gvae), DATA (../shared/data/mnist),
#      CLASSIFIER (Models/mnist-classifier.safetensors), N (10000)
set -euo pipefail
cd "$(dirname "$0")/.."
gvae=${GVAE:-.build/release/gvae}
data=${DATA:-../shared/data/mnist}
classifier=${CLASSIFIER:-Models/mnist-classifier.safetensors}
n=${N:-10000}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
row() { # name, samples (npy or data dir), extra score options
  local name=$1 samples=$2
  shift 2
  "$gvae" image score --samples "$samples" --classifier "$classifier" --data "$data" --format json "$@" >"$out/s.json"
  python3 - "$name" "$out/s.json" <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
s = json.load(open(path))
labels = s["labelHistogram"]
total = sum(labels)
hist = " ".join(f"{100 * c / total:.0f}" for c in labels)
print(f"| {name} | {s['images']:,} | {s['frechetDistance']:.2f} | {s['inceptionScore']:.2f} | "
      f"{100 * s['confident']:.1f}% | {hist} |")
EOF
}
echo "| images | n | Fréchet distance to the test set | inception-style score (≤ 10) | confident (max p ≥ 0.9) | predicted labels 0–9 (%) |"
echo "|---|---|---|---|---|---|"
row "MNIST training images (the floor)" "$data" --limit "$n"
while [ $# -gt 0 ]; do
  case "$1" in
  --gan) "$gvae" image gan sample --model "$2" -n "$n" --seed 1 --output "$out/g.npy" 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
    row "DCGAN \`$(basename "$2")\`" "$out/g.npy" ;;
  --vae) "$gvae" image vae sample --model "$2" -n "$n" --seed 1 --output "$out/v.npy" 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
    row "image VAE \`$(basename "$2")\` (pixel means)" "$out/v.npy" ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
