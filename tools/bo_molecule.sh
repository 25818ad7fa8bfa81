#!/usr/bin/env bash
# The paper's molecule experiment: BO of penalized logP in a ZINC model's latent space,
# 5 iterations x 50 points per seed, 10 seeds, then the results table; draws each seed's
# best three molecules.
#
#   bash tools/bo_molecule.sh
#   SEEDS="1 2" EPOCHS=5 REFIT=first MAX_DATA=50000 bash tools/bo_molecule.sh
#
# Needs RDKit for tools/penalized_logp.py: PYTHON names an interpreter that has it (e.g. a
# venv made with `python3 -m venv tools/.venv-bo && tools/.venv-bo/bin/pip install rdkit`).
# Environment as tools/bo_expression.sh, plus MODEL (zinc), PYTHON, MAX_DATA.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
GVAE="${GVAE:-$here/.build/release/gvae}"
MODEL="${MODEL:-zinc}"
DATA="${DATA:-$here/../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz}"
OUT="${OUT:-/tmp/gvae-bo-molecule}"
PYTHON="${PYTHON:-python3}"
SEEDS="${SEEDS:-1 2 3 4 5 6 7 8 9 10}"
mkdir -p "$OUT"
[ -x "$GVAE" ] || { echo "bo_molecule.sh: build gvae first (swift build -c release)" >&2; exit 1; }
"$PYTHON" -c 'import rdkit' 2>/dev/null \
  || { echo "bo_molecule.sh: $PYTHON has no RDKit (pip install rdkit)" >&2; exit 1; }
if [ ! -s "$OUT/data.txt" ]; then
  case "$DATA" in *.gz) gzip -dc "$DATA" ;; *) cat "$DATA" ;; esac > "$OUT/data.txt"
fi
if [ ! -s "$OUT/scores.txt" ]; then
  "$PYTHON" "$here/tools/penalized_logp.py" < "$OUT/data.txt" > "$OUT/scores.txt"
fi
if [ ! -s "$OUT/latents.txt" ]; then
  "$GVAE" encode --model "$MODEL" < "$OUT/data.txt" > "$OUT/latents.txt"
fi
runs=()
for seed in $SEEDS; do
  run="$OUT/seed$seed.jsonl"
  extra=()
  [ -n "${MAX_DATA:-}" ] && extra+=(--max-data "$MAX_DATA")
  "$GVAE" optimize --model "$MODEL" --objective molecule --python "$PYTHON" \
    --data "$OUT/data.txt" --data-scores "$OUT/scores.txt" --latents "$OUT/latents.txt" \
    --iterations "${ITERATIONS:-5}" --batch "${BATCH:-50}" --decodings "${DECODINGS:-25}" \
    --inducing "${INDUCING:-500}" --epochs "${EPOCHS:-50}" --gp-batch "${GP_BATCH:-5000}" \
    --gp-lr "${GP_LR:-0.0005}" --refit "${REFIT:-every}" --candidates "${CANDIDATES:-10000}" \
    --seed "$seed" --plot "$OUT/seed$seed.svg" --draw "$OUT/seed$seed.png" "${extra[@]}" > "$run"
  tail -n 1 "$run"
  runs+=("$run")
done
python3 "$here/tools/bo_table.py" --objective molecule "${runs[@]}"
