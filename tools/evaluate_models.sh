#!/usr/bin/env bash
# Measures the shipped models (the figures in Models/README.md and the README).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
G=.build/release/gvae
EQ=${EQ:-../shared/data/equations/equation2_15_dataset.txt.gz}
ZINC=${ZINC:-../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz}
mkdir -p runs
# Expression test set: the 1,000 lines that `gvae train --test-sample 1000` (seed 0) holds
# out of the whole file: never trained on, never used for validation or model selection.
$G train --preset equation --data $EQ --output runs/unused.safetensors --test-sample 1000 \
  --export-test runs/equation-test.txt
for m in equation equation-char; do
  $G evaluate --model $m --data $EQ --test-file runs/equation-test.txt --test-count 1000 \
    --encodings 10 --decodings 100 --prior-samples 1000 --prior-decodings 10 --format json \
    | tee runs/$m.eval.json
done
# The Grammar VAE again with the length-budget mask (what `gvae sample` does by default).
$G evaluate --model equation --data $EQ --test-file runs/equation-test.txt --test-count 1000 \
  --encodings 10 --decodings 100 --prior-samples 1000 --prior-decodings 10 --length-budget \
  --format json | tee runs/equation.eval-budget.json
# ZINC: the paper's 5,000 held-out molecules, SD-VAE's 10 × 5 (with the prior) and the
# paper's 10 × 100 (reconstruction only).
for m in zinc zinc-char; do
  $G evaluate --model $m --data $ZINC --test-count 5000 --encodings 10 --decodings 5 \
    --prior-samples 1000 --prior-decodings 10 --rdkit --format json | tee runs/$m.eval5000.json
  $G evaluate --model $m --data $ZINC --test-count 5000 --encodings 10 --decodings 100 \
    --prior-samples 0 --format json | tee runs/$m.eval5000x100.json
done
$G evaluate --model zinc --data $ZINC --test-count 0 --prior-samples 1000 --prior-decodings 10 \
  --rdkit --length-budget --format json | tee runs/zinc.eval-budget.json
