#!/usr/bin/env bash
# Issue 3's comparison in one run: gvae-bench and tools/torch_train_step.py back to back on
# the same machine, then the ratio ours/PyTorch for each training step and matmul-1024.
#   bash tools/bench_vs_torch.sh [--runs N] [--rounds R] [--zinc-data PATH]
# Each round runs both sides once (each side reports the median of N steps); the table
# gives the median over rounds. Needs `pip install torch==2.13.0+cpu`.
# With --zinc-data (the ZINC .smi[.gz]) it also measures real training throughput on the
# ZINC preset (batch 500): `gvae train` for one epoch of ~4,950 molecules (its molecules/s,
# with the shorter-derivation savings) against PyTorch's full-length step at batch 500.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5 rounds=3 zinc=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --zinc-data) zinc="$2"; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--rounds R] [--zinc-data PATH]" >&2; exit 2 ;;
  esac
done
swift build -c release --product gvae-bench >/dev/null
[ -n "$zinc" ] && swift build -c release --product gvae >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  .build/release/gvae-bench --runs "$runs" | sed 's/^/{"side":"gvae",/; s/,{/,/' >>"$out/lines"
  python3 tools/torch_train_step.py --runs "$runs" | sed 's/^/{"side":"torch",/; s/,{/,/' >>"$out/lines"
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
done
if [ -n "$zinc" ]; then
  .build/release/gvae train --preset zinc --data "$zinc" --hold-out 5000 --limit 5500 \
    --epochs 1 --seed 1 --output "$out/zinc.safetensors" >/dev/null 2>&1
  python3 - "$out/zinc.safetensors.log.jsonl" >>"$out/lines" <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1]) if '"epoch"' in l][-1]
print(json.dumps({"side": "gvae", "name": "zinc-train-epoch-500",
                  "molecules_per_second": e["rowsPerSecond"]}))
PY
  python3 tools/torch_train_step.py --only zinc --zinc-batch 500 --runs 2 |
    sed 's/^/{"side":"torch",/; s/,{/,/; s/zinc-train-step/zinc-train-epoch-500/' >>"$out/lines"
fi
python3 - "$out/lines" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(side, name, key="median_seconds"):
    v = [r[key] for r in rows if r["side"] == side and r["name"] == name and key in r]
    return statistics.median(v) if v else None
print(f"{'measurement':<22}{'gvae':>12}{'PyTorch':>12}{'ratio':>8}")
for name in ["matmul-1024", "matmul-gru", "equation-train-step", "zinc-train-step"]:
    g, t = med("gvae", name), med("torch", name)
    if g is None: continue
    ratio = f"{g / t:8.2f}" if t else "       -"
    print(f"{name + ' (s)':<22}{g:12.4f}{(t or float('nan')):12.4f}{ratio}")
for name in ["matmul-1024", "matmul-gru"]:
    g, t = med("gvae", name, "gflops"), med("torch", name, "gflops")
    if g: print(f"{name + ' (GFLOP/s)':<22}{g:12.1f}{(t or float('nan')):12.1f}")
for name in ["equation-train-step", "zinc-train-step"]:
    g, t = med("gvae", name, "peak_rss_bytes"), med("torch", name, "peak_rss_bytes")
    if g: print(f"{name + ' peak RSS (MB)':<22}{g / 1e6:12.0f}{t / 1e6:12.0f}{g / t:8.2f}")
g = med("gvae", "zinc-train-epoch-500", "molecules_per_second")
t = med("torch", "zinc-train-epoch-500", "molecules_per_second")
if g and t:
    print(f"{'ZINC training, batch 500 (molecules/s)':<40}{g:8.1f}{t:8.1f}  ours/PyTorch throughput {g / t:.2f}x")
PY
