#!/usr/bin/env bash
# Measures the shipped models (the figures in Models/README.md). ZINC evaluation on two
# cores is slow, so its test count is reduced from the paper's 5,000 (ZINC_TEST_COUNT).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
G=.build/release/gvae
EQ=/work/shared/data/equations/equation2_15_dataset.txt.gz
ZINC=/work/shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz
mkdir -p runs
# Expression test set: 1,000 strings drawn from the validation split of the training run
# (the data file is sorted, so its first lines are not a fair test set).
$G train --preset equation --data $EQ --output runs/unused.safetensors --hold-out 1000 --seed 1 \
  --export-validation runs/equation-validation.txt
python3 -c "
import random
l = open('runs/equation-validation.txt').read().split('\n')[:-1]
random.Random(0).shuffle(l)
open('runs/equation-test.txt', 'w').write('\n'.join(l[:1000]) + '\n')"
for m in equation equation-char; do
  $G evaluate --model $m --data $EQ --test-file runs/equation-test.txt --test-count 1000 \
    --encodings 10 --decodings 100 --prior-samples 1000 --prior-decodings 10 --format json \
    | tee runs/$m.eval.json
done
for m in zinc zinc-char; do
  $G evaluate --model $m --data $ZINC --test-count ${ZINC_TEST_COUNT:-200} --encodings 10 \
    --decodings 100 --prior-samples 1000 --prior-decodings 10 --rdkit --format json \
    | tee runs/$m.eval.json
done
