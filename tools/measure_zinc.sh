#!/usr/bin/env bash
# The figures a shipped ZINC model is judged by (README results, Models/README.md):
#   tools/measure_zinc.sh MODEL OUTDIR [GVAE]
# 1. the paper's protocol on its 5,000 held-out molecules, scored exactly (10 encodings; the
#    expected fraction of decodings that give the input back) and greedy from the mean;
# 2. the same protocol sampled (200 molecules × 5 encodings × 10 decodings), with and
#    without chemistry constraints;
# 3. the prior: 1,000 draws × 10 decodings, RDKit validity, uniqueness, novelty and the size
#    and ring distributions beside the training set's, with and without constraints;
# 4. the README's examples (sample, reconstruct, interpolate), checked by RDKit.
# Needs RDKit in PATH's python3 (tools/.venv-peer). One BLAS thread; about 12 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?model file}
OUT=${2:?output directory}
G=${3:-.build/release/gvae}
ZINC=${ZINC:-../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz}
PY=${PY:-tools/.venv-peer/bin/python}
export OPENBLAS_NUM_THREADS=1 PATH="$(dirname "$PY"):$PATH"
mkdir -p "$OUT"
run() { echo "+ $*" >&2; "$@"; }

run "$G" evaluate --model "$MODEL" --data "$ZINC" --test-count 5000 --encodings 10 --prior-samples 0 \
  --constraints none --reconstruction exact --format json >"$OUT/exact.json"
for c in chemistry none; do
  run "$G" evaluate --model "$MODEL" --data "$ZINC" --test-count 200 --encodings 5 --decodings 10 \
    --prior-samples 0 --constraints "$c" --format json >"$OUT/sampled-$c.json"
  run "$G" evaluate --model "$MODEL" --data "$ZINC" --test-count 0 --prior-samples 1000 --prior-decodings 10 \
    --rdkit --constraints "$c" --prior-output "$OUT/prior-$c.txt" --format json >"$OUT/prior-$c.json"
  run "$PY" tools/prior_stats.py "$OUT/prior-$c.txt" --train "$ZINC" --label "$c" >"$OUT/prior-$c.stats.json"
done
{
  "$G" sample --model "$MODEL" -n 10 --seed 1
  echo ---
  "$G" reconstruct --model "$MODEL" "c1ccccc1" "CC(=O)Nc1ccc(O)cc1" "CC(C)Cc1ccc(C(C)C(=O)O)cc1"
  echo ---
  "$G" interpolate --model "$MODEL" "CC(=O)Nc1ccc(O)cc1" "CC(C)Cc1ccc(C(C)C(=O)O)cc1" --steps 6
} >"$OUT/examples.txt"
grep -v '^---$' "$OUT/examples.txt" | awk '{print $NF}' | "$PY" tools/rdkit_valid.py >"$OUT/examples.valid"
for f in "$OUT"/*.json; do echo "== $f"; cat "$f"; echo; done
echo "== examples: $(grep -c 1 "$OUT/examples.valid") of $(wc -l <"$OUT/examples.valid") RDKit-valid"
