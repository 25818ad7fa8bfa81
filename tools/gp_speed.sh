#!/usr/bin/env bash
# Sparse-GP training speed, one run: `gvae gp fit` against tools/gp_peer.py (PyTorch autograd
# on the same FITC model, minibatch Adam and float64; GPyTorch's SGPR beside it) on the same
# features and targets, one thread each, as the ratio of seconds per epoch (wall clock, and
# CPU time, which a loaded machine disturbs less).
#   bash tools/gp_speed.sh LATENTS SCORES [EPOCHS]
# LATENTS: `gvae encode` output (e.g. /tmp/gvae-bo-molecule/latents.txt from
# tools/bo_molecule.sh), SCORES: one number per line (nan: invalid, dropped).
# PEER_PYTHON (tools/.venv-peer/bin/python) needs torch and gpytorch. GP_OUT=FILE keeps
# gvae's fitted GP (for tools/bo_speed.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
GVAE="${GVAE:-$here/.build/release/gvae}"
PY="${PEER_PYTHON:-$here/tools/.venv-peer/bin/python}"
latents=$1 scores=$2 epochs=${3:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# gvae's fit drops nothing itself: keep the rows with finite scores.
paste -d '\t' "$scores" "$latents" | awk -F '\t' '$1 != "nan" && $1 != "" { print $1 > "'"$work"'/y"; print $2 > "'"$work"'/x" }'
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
"$GVAE" gp fit --features "$work/x" --targets "$work/y" --output "$work/gp.json" --epochs "$epochs" \
  --inducing 500 --gp-batch 5000 --gp-lr 0.0005 --seed 1 > "$work/gvae.jsonl"
[ -n "${GP_OUT:-}" ] && cp "$work/gp.json" "$GP_OUT"
"$PY" "$here/tools/gp_peer.py" --features "$work/x" --targets "$work/y" --epochs "$epochs" \
  --inducing 500 --batch 5000 --lr 0.0005 --threads 1 --gpytorch > "$work/peer.jsonl"
python3 - "$work/gvae.jsonl" "$work/peer.jsonl" <<'PY'
import json, sys
g = [json.loads(l) for l in open(sys.argv[1])]
p = [json.loads(l) for l in open(sys.argv[2])]
epochs = [r["seconds"] for r in g if "epoch" in r]
cpus = [r["cpu_seconds"] for r in g if "epoch" in r]
summary = g[-1]
mine, mine_cpu = sum(epochs) / len(epochs), sum(cpus) / len(cpus)
out = {"gvae_seconds_per_epoch": mine, "gvae_cpu_seconds_per_epoch": mine_cpu,
       "gvae_test_rmse": summary["rmse"],
       "gvae_test_log_likelihood": summary["test_log_likelihood"], "train": summary["train"]}
for r in p:
    out[r["peer"] + "_seconds_per_epoch"] = r["seconds_per_epoch"]
    out[r["peer"] + "_cpu_seconds_per_epoch"] = r["cpu_seconds_per_epoch"]
    out["ratio_to_" + r["peer"]] = mine / r["seconds_per_epoch"]
    out["cpu_ratio_to_" + r["peer"]] = mine_cpu / r["cpu_seconds_per_epoch"]
    if "test_rmse" in r:
        out[r["peer"] + "_test_rmse"] = r["test_rmse"]
        out[r["peer"] + "_test_log_likelihood"] = r["test_log_likelihood"]
print(json.dumps(out))
PY
