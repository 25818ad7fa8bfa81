#!/usr/bin/env bash
# Cross-checks gvae against the PyTorch twin (tools/torch_gvae.py) on one model file:
# the posterior means of every string must agree to 1e-4, and greedy decoding of gvae's means
# (no length budget: the PyTorch decoder has none) must give identical lines.
#
#   bash tools/check_torch_interop.sh MODEL STRINGS_FILE
#
# GVAE=path picks another gvae binary (default .build/release/gvae). Needs torch,
# safetensors and, for grammar models, nltk.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 MODEL STRINGS_FILE" >&2
  exit 2
fi
model=$1 strings=$2
gvae=${GVAE:-.build/release/gvae}
py="python3 $(dirname "$0")/torch_gvae.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs a command with stderr kept aside (decode notes each incomplete output there); shows it
# only when the command fails.
quiet() { "$@" 2>"$tmp/err" || { cat "$tmp/err" >&2; echo "failed: $*" >&2; exit 1; }; }

quiet "$gvae" encode --model "$model" <"$strings" >"$tmp/swift.z"
quiet $py encode "$model" <"$strings" >"$tmp/torch.z"
quiet "$gvae" decode --model "$model" --no-length-budget <"$tmp/swift.z" >"$tmp/swift.out"
quiet $py decode "$model" <"$tmp/swift.z" >"$tmp/torch.out"

python3 - "$tmp" <<'EOF'
import sys
d = sys.argv[1]
read = lambda name: open(f"{d}/{name}").read().split("\n")[:-1]
ok = True

a = [[float(v) for v in l.split()] for l in read("swift.z")]
b = [[float(v) for v in l.split()] for l in read("torch.z")]
if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
    print(f"means: shapes differ ({len(a)} vs {len(b)} lines)")
    ok = False
else:
    diff = max((abs(x - y) for r, s in zip(a, b) for x, y in zip(r, s)), default=0.0)
    ok &= diff <= 1e-4
    print(f"means: {len(a)} strings, max |gvae - torch| = {diff:.3g} (limit 1e-4)"
          f" {'ok' if diff <= 1e-4 else 'FAIL'}")

s, t = read("swift.out"), read("torch.out")
same = sum(x == y for x, y in zip(s, t))
incomplete = sum(x == "" for x in s)
ok &= same == len(s) == len(t)
print(f"decodings: {same} of {len(s)} identical ({incomplete} incomplete in gvae)"
      f" {'ok' if same == len(s) == len(t) else 'FAIL'}")
for i in [i for i, (x, y) in enumerate(zip(s, t)) if x != y][:5]:
    print(f"  line {i + 1}: gvae {s[i]!r}, torch {t[i]!r}")
sys.exit(0 if ok else 1)
EOF
