#!/usr/bin/env bash
# One BO iteration's batch selection, one run: `gvae gp propose` (the acquisition step of
# `gvae optimize`) against tools/bo_peer.py (the same search in PyTorch float64 with scipy's
# L-BFGS-B) on the same saved GP, box and incumbent, one thread each: 50 kriging-believer
# points, 10,000 uniform candidates and 5 L-BFGS refinements per point. Prints both times and
# their ratio, wall clock and CPU time (decoding and scoring, which the peer has no part of,
# are not included).
#   bash tools/bo_speed.sh LATENTS TARGETS [GP.json]
# LATENTS: `gvae encode` output; TARGETS: one number per line, minimised (nan: dropped; for
# penalized logP pass its negation, as gvae optimize does). Without GP.json the GP is
# fitted first (`gvae gp fit`, EPOCHS=2, seed 1), untimed. Environment: GVAE, PEER_PYTHON,
# BATCH (50), CANDIDATES (10000), RESTARTS (5), SEED (1).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
GVAE="${GVAE:-$here/.build/release/gvae}"
PY="${PEER_PYTHON:-$here/tools/.venv-peer/bin/python}"
latents=$1 targets=$2 gp=${3:-}
batch=${BATCH:-50} candidates=${CANDIDATES:-10000} restarts=${RESTARTS:-5} seed=${SEED:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
paste -d '\t' "$targets" "$latents" | awk -F '\t' '$1 != "nan" && $1 != "" { print $1 > "'"$work"'/y"; print $2 > "'"$work"'/x" }'
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ -z "$gp" ]; then
  gp="$work/gp.json"
  "$GVAE" gp fit --features "$work/x" --targets "$work/y" --output "$gp" --epochs "${EPOCHS:-2}" \
    --seed 1 > /dev/null
fi
"$GVAE" gp propose --gp "$gp" --box "$work/x" --targets "$work/y" --batch "$batch" \
  --candidates "$candidates" --restarts "$restarts" --seed "$seed" > "$work/gvae.jsonl"
"$PY" "$here/tools/bo_peer.py" --gp "$gp" --box "$work/x" --targets "$work/y" --batch "$batch" \
  --candidates "$candidates" --restarts "$restarts" --seed "$seed" --threads 1 > "$work/peer.jsonl"
python3 - "$work/gvae.jsonl" "$work/peer.jsonl" "$(wc -l < "$work/y")" <<'PY'
import json, sys
g = [json.loads(l) for l in open(sys.argv[1])]
p = [json.loads(l) for l in open(sys.argv[2])]
def mean_of(rows):
    means = [r["mean"] for r in rows if "mean" in r]
    return sum(means) / len(means)
out = {"data": int(sys.argv[3]), "points": g[-1]["points"], "candidates": g[-1]["candidates"],
       "restarts": g[-1]["restarts"], "incumbent": g[-1]["best"],
       "gvae_seconds": g[-1]["seconds"], "peer_seconds": p[-1]["seconds"],
       "ratio_gvae_to_peer": g[-1]["seconds"] / p[-1]["seconds"],
       "gvae_cpu_seconds": g[-1]["cpu_seconds"], "peer_cpu_seconds": p[-1]["cpu_seconds"],
       "cpu_ratio_gvae_to_peer": g[-1]["cpu_seconds"] / p[-1]["cpu_seconds"],
       "gvae_mean_prediction": mean_of(g), "peer_mean_prediction": mean_of(p),
       "torch": p[-1]["torch"], "scipy": p[-1]["scipy"]}
print(json.dumps(out))
PY
