#!/usr/bin/env bash
# One training sitting of the shipped ZINC model (issue: shipped models in resumable sittings).
#   bash tools/sitting.sh start [MINUTES]   train in the background (one BLAS thread), resuming
#                                           runs/zinc.checkpoint if present, else warm-starting
#                                           from Models/zinc.safetensors (fresh Adam moments)
#   bash tools/sitting.sh stop              Ctrl-C the run: it checkpoints, saves its latest weights
#   bash tools/sitting.sh record            append the sitting to Models/zinc.sittings.jsonl, ship the
#                                           latest weights when they reconstruct better, redraw
#                                           Models/zinc.curve.svg
# ZINC=PATH picks the data file; PRESET (zinc-ar) the architecture and GRAMMAR (zinc) the
# grammar of a first sitting; NAME (zinc) names the run: runs/NAME.*, Models/NAME.safetensors,
# Models/NAME.sittings.jsonl, Models/NAME.curve.svg (NAME=zinc is the shipped default model).
# BIN=PATH starts a prebuilt gvae instead of building this tree.
# EXTRA adds training options to a start (e.g. EXTRA="--lr 0.0005 --kl-weight 0.1").
set -euo pipefail
cd "$(dirname "$0")/.."
ZINC=${ZINC:-../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz}
PRESET=${PRESET:-zinc-ar}
GRAMMAR=${GRAMMAR:-zinc}
NAME=${NAME:-zinc}
OUT=runs/$NAME.safetensors
mkdir -p runs
case "${1:-}" in
start)
  minutes=${2:-150}
  if [ -n "${BIN:-}" ]; then cp "$BIN" "runs/gvae-sitting-$NAME"   # a binary built elsewhere (a worktree)
  else
    swift build -c release --product gvae >/dev/null
    cp .build/release/gvae "runs/gvae-sitting-$NAME"   # a rebuild during the sitting leaves it alone
  fi
  args=(train --preset "$PRESET" --grammar "$GRAMMAR" --data "$ZINC" --output "$OUT" --hold-out 5000 --paper-loss
    --batch-size 100 --checkpoint-minutes 5 --half --seed 1 --max-minutes "$minutes"
    --monitor-count 1000 --monitor-minutes 10)
  # shellcheck disable=SC2206
  [ -n "${EXTRA:-}" ] && args+=($EXTRA)
  if [ -f "$OUT.checkpoint" ]; then args+=(--resume); how=resume
  elif [ -f "Models/$NAME.safetensors" ] && [ -f "Models/$NAME.sittings.jsonl" ]; then
    args+=(--init-from "Models/$NAME.safetensors"); how=warm-start
  else how=fresh; fi
  rm -f "$OUT.log.jsonl"
  echo "{\"start\":\"$(date -u +%FT%TZ)\",\"how\":\"$how\",\"commit\":\"$(git rev-parse --short HEAD)\",\"command\":\"gvae ${args[*]}\"}" >"runs/$NAME.sitting.json"
  OPENBLAS_NUM_THREADS=1 nohup "runs/gvae-sitting-$NAME" "${args[@]}" >"runs/$NAME.sitting.out" 2>&1 &
  echo $! >"runs/$NAME.sitting.pid"
  echo "sitting started ($how), pid $(cat "runs/$NAME.sitting.pid"); log runs/$NAME.sitting.out"
  ;;
stop)
  pid=$(cat "runs/$NAME.sitting.pid")
  kill -CONT "$pid" 2>/dev/null || true
  kill -INT "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 2; done
  tail -3 "runs/$NAME.sitting.out"
  ;;
record)
  python3 tools/record_sitting.py --log "$OUT.log.jsonl" --sitting "runs/$NAME.sitting.json" \
    --latest "runs/$NAME.latest.safetensors" --best "$OUT" --shipped "Models/$NAME.safetensors" \
    --record "Models/$NAME.sittings.jsonl" --svg "Models/$NAME.curve.svg"
  ;;
*) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
