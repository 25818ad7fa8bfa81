#!/usr/bin/env bash
# The paper's expression experiment: BO in the shipped expression GVAE's latent space,
# 5 iterations x 50 points per seed, 10 seeds, then the results table.
#
#   bash tools/bo_expression.sh                 # paper settings (long on 2 cores)
#   SEEDS="1 2 3" EPOCHS=10 REFIT=first bash tools/bo_expression.sh
#
# Environment: GVAE (binary), MODEL (equation), DATA (the 100k expressions), OUT (run
# directory), SEEDS, ITERATIONS, BATCH, DECODINGS, INDUCING, EPOCHS, GP_BATCH, GP_LR, REFIT,
# CANDIDATES. Latents and scores of the data are computed once and reused by every seed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
GVAE="${GVAE:-$here/.build/release/gvae}"
MODEL="${MODEL:-equation}"
DATA="${DATA:-$here/../shared/data/equations/equation2_15_dataset.txt.gz}"
OUT="${OUT:-/tmp/gvae-bo-expression}"
SEEDS="${SEEDS:-1 2 3 4 5 6 7 8 9 10}"
mkdir -p "$OUT"
[ -x "$GVAE" ] || { echo "bo_expression.sh: build gvae first (swift build -c release)" >&2; exit 1; }
[ -f "$DATA" ] || { echo "bo_expression.sh: no data set at $DATA" >&2; exit 1; }
if [ ! -s "$OUT/data.txt" ]; then
  case "$DATA" in *.gz) gzip -dc "$DATA" ;; *) cat "$DATA" ;; esac > "$OUT/data.txt"
fi
if [ ! -s "$OUT/latents.txt" ]; then
  "$GVAE" encode --model "$MODEL" < "$OUT/data.txt" > "$OUT/latents.txt"
fi
runs=()
for seed in $SEEDS; do
  run="$OUT/seed$seed.jsonl"
  "$GVAE" optimize --model "$MODEL" --objective expression --data "$OUT/data.txt" \
    --latents "$OUT/latents.txt" --iterations "${ITERATIONS:-5}" --batch "${BATCH:-50}" \
    --decodings "${DECODINGS:-25}" --inducing "${INDUCING:-500}" --epochs "${EPOCHS:-50}" \
    --gp-batch "${GP_BATCH:-5000}" --gp-lr "${GP_LR:-0.0005}" --refit "${REFIT:-every}" \
    --candidates "${CANDIDATES:-10000}" --seed "$seed" --plot "$OUT/seed$seed.svg" > "$run"
  tail -n 1 "$run"
  runs+=("$run")
done
python3 "$here/tools/bo_table.py" --objective expression "${runs[@]}"
