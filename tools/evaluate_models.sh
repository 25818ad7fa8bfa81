#!/usr/bin/env bash
# Measures the shipped models (the figures in Models/README.md). ZINC evaluation on two
# cores is slow, so its test count is reduced from the paper's 5,000 (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
G=.build/release/gvae
EQ=/work/shared/data/equations/equation2_15_dataset.txt.gz
ZINC=/work/shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz
mkdir -p runs
for m in equation equation-char; do
  $G evaluate --model $m --data $EQ --test-count 1000 --encodings 10 --decodings 100 \
    --prior-samples 1000 --prior-decodings 10 --format json | tee runs/$m.eval.json
done
for m in zinc zinc-char; do
  $G evaluate --model $m --data $ZINC --test-count ${ZINC_TEST_COUNT:-200} --encodings 10 \
    --decodings 100 --prior-samples 1000 --prior-decodings 10 --rdkit --format json \
    | tee runs/$m.eval.json
done
