#!/usr/bin/env bash
# The expression models' training file: the data set without the 1,000 test strings, plus
# 60,000 random strings of the grammar (all lengths up to MAX_LEN 15: the data set alone
# has no expression shorter than 7 tokens, so a model of it cannot encode `x + 1`),
# deduplicated ignoring spaces, shuffled (seed 3).
#   bash tools/expression_training_set.sh [EQ] [OUT]   (default runs/equation-train-aug.txt)
# The test set (runs/equation-test.txt) is what `gvae train --test-sample 1000` (seed 0)
# holds out of the data set: never trained on, never used for model selection.
set -euo pipefail
cd "$(dirname "$0")/.."
EQ=${1:-../shared/data/equations/equation2_15_dataset.txt.gz}
OUT=${2:-runs/equation-train-aug.txt}
G=${G:-.build/release/gvae}
mkdir -p runs
$G train --preset equation --data "$EQ" --output runs/unused.safetensors --test-sample 1000 \
  --export-test runs/equation-test.txt
$G dataset generate --grammar equation -n 60000 --max-len 15 --seed 7 >runs/equation-generated.txt
python3 - "$EQ" runs/equation-generated.txt runs/equation-test.txt "$OUT" <<'PY'
import gzip, random, sys
eq, gen, test, out = sys.argv[1:]
norm = lambda s: s.replace(" ", "")
held = {norm(l.rstrip("\n")) for l in open(test)}
lines = [l.rstrip("\n") for l in gzip.open(eq, "rt")] + [l.rstrip("\n") for l in open(gen)]
seen, keep = set(), []
for s in lines:
    k = norm(s)
    if k and k not in held and k not in seen:
        seen.add(k)
        keep.append(s)
random.Random(3).shuffle(keep)
open(out, "w").write("\n".join(keep) + "\n")
print(f"{out}: {len(keep)} strings", file=sys.stderr)
PY
