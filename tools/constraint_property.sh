#!/usr/bin/env bash
# Property check of the chemistry constraint with RDKit: an (almost) untrained network makes
# near-random choices, so its constrained samples are random mask-respecting derivations.
# Every one must be complete and a molecule by RDKit; the plain samples show the contrast.
#   bash tools/constraint_property.sh [COUNT] [GRAMMAR]     (defaults: 5000 zinc-rr)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
grammar=${2:-zinc-rr}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
swift build -c release --product gvae >/dev/null
gvae=.build/release/gvae
printf 'CCO\nc1ccccc1\nCC(=O)Nc1ccc(O)cc1\nC1CCNCC1\n' >"$work/data.smi"
# One batch of four molecules: the weights stay close to their initialisation.
"$gvae" train --preset tiny-ar --grammar "$grammar" --data "$work/data.smi" --output "$work/untrained.safetensors" \
  --epochs 1 --batch-size 4 --validation-fraction 0 --seed 3 >/dev/null 2>&1
for c in chemistry grammar; do
  "$gvae" sample --model "$work/untrained.safetensors" -n "$count" --seed 1 --constraints "$c" >"$work/$c.txt"
  lines=$(wc -l <"$work/$c.txt")
  valid=$(python3 tools/rdkit_valid.py <"$work/$c.txt" | awk '$1 == 1 { n++ } END { print n + 0 }')
  distinct=$(sort -u "$work/$c.txt" | wc -l)
  echo "{\"constraints\":\"$c\",\"samples\":$lines,\"rdkit_valid\":$valid,\"distinct\":$distinct}"
  if [ "$c" = chemistry ] && [ "$valid" -ne "$count" ]; then
    echo "constraint_property: $((count - valid)) of $count constrained samples are not molecules" >&2
    exit 1
  fi
done
