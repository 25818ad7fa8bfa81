#!/usr/bin/env bash
# Speed as ratios measured in one run: gvae-bench (the product's Trainer.trainBatch) and
# tools/torch_train_step.py (the same networks in PyTorch, tools/torch_gvae.py) back to back,
# round after round on the same machine; the table gives medians over the rounds.
#   bash tools/bench_vs_torch.sh [--runs N] [--rounds R] [--zinc-data PATH] [--fused OLD_GVAE]
# --zinc-data adds real training throughput: `gvae train` for one pass over 1,500 ZINC
# molecules (batch 100, length buckets, truncated decoding) for the zinc and zinc-ar presets,
# molecules/s and peak RSS; --fused OLD_GVAE times the same command with a gvae binary built
# before the one-engine change (its hand-fused network). Needs `pip install torch==2.13.0+cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5 rounds=3 zinc="" fused=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --zinc-data) zinc="$2"; shift 2 ;;
    --fused) fused="$2"; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--rounds R] [--zinc-data PATH] [--fused OLD_GVAE]" >&2; exit 2 ;;
  esac
done
swift build -c release --product gvae-bench >/dev/null
swift build -c release --product gvae >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
tag() { sed "s/^{/{\"side\":\"$1\",/"; }
train_rate() {  # side binary preset: one pass over 1,500 molecules
  local side=$1 bin=$2 preset=$3
  /usr/bin/time -f '%M' -o "$out/rss" "$bin" train --preset "$preset" --data "$zinc" --hold-out 5000 \
    --limit 1500 --validation-fraction 0 --epochs 1 --batch-size 100 --paper-loss --seed 1 \
    --output "$out/$side-$preset.safetensors" >/dev/null 2>&1
  python3 - "$out/$side-$preset.safetensors.log.jsonl" "$side" "$preset" "$(cat "$out/rss")" <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1]) if '"trainLoss"' in l][-1]
print(json.dumps({"side": sys.argv[2], "name": f"train-{sys.argv[3]}", "molecules_per_second": e["rowsPerSecond"],
                  "peak_rss_bytes": int(sys.argv[4]) * 1024}))
PY
}
for r in $(seq "$rounds"); do
  .build/release/gvae-bench --runs "$runs" | tag gvae >>"$out/lines"
  .build/release/gvae-bench --runs "$runs" --only zinc-ar | tag gvae >>"$out/lines"
  python3 tools/torch_train_step.py --runs "$runs" | tag torch >>"$out/lines"
  python3 tools/torch_train_step.py --runs "$runs" --only zinc-ar | tag torch >>"$out/lines"
  python3 - "$runs" >>"$out/lines" <<'PY'
import json, statistics, sys, time
import torch
torch.set_num_threads(2)
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
for _ in range(5): a @ b
ts = []
for _ in range(max(20, int(sys.argv[1]))):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
m = statistics.median(ts)
print(json.dumps({"side": "torch", "name": "matmul-1024", "median_seconds": m,
                  "gflops": round(2 * 1024**3 / m / 1e9, 1)}))
PY
  if [ -n "$zinc" ]; then
    train_rate gvae .build/release/gvae zinc >>"$out/lines"
    train_rate gvae .build/release/gvae zinc-ar >>"$out/lines"
    [ -n "$fused" ] && train_rate fused "$fused" zinc >>"$out/lines"
  fi
done
python3 - "$out/lines" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(side, name, key="median_seconds"):
    v = [r[key] for r in rows if r["side"] == side and r["name"] == name and key in r]
    return statistics.median(v) if v else None
print(f"{'training step (s)':<26}{'gvae':>10}{'PyTorch':>10}{'ratio':>8}{'gvae MB':>9}{'torch MB':>9}")
for name in ["equation-train-step", "zinc-train-step", "zinc-ar-train-step"]:
    g, t = med("gvae", name), med("torch", name)
    if g is None: continue
    gm, tm = med("gvae", name, "peak_rss_bytes"), med("torch", name, "peak_rss_bytes")
    print(f"{name:<26}{g:10.3f}{(t or float('nan')):10.3f}{(g / t if t else float('nan')):8.2f}"
          f"{gm / 1e6:9.0f}{(tm or 0) / 1e6:9.0f}")
for name in ["matmul-1024", "matmul-gru"]:
    g, t = med("gvae", name, "gflops"), med("torch", name, "gflops")
    if g: print(f"{name + ' (GFLOP/s)':<26}{g:10.1f}{(t or float('nan')):10.1f}")
for name in ["train-zinc", "train-zinc-ar"]:
    g = med("gvae", name, "molecules_per_second")
    if g is None: continue
    line = f"gvae train {name[6:]:<8} {g:7.1f} molecules/s, peak {med('gvae', name, 'peak_rss_bytes') / 1e6:.0f} MB"
    f = med("fused", name, "molecules_per_second")
    if f: line += f"; fused network {f:.1f} molecules/s, peak {med('fused', name, 'peak_rss_bytes') / 1e6:.0f} MB, ratio {g / f:.2f}"
    print(line)
PY
