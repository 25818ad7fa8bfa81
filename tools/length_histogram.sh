#!/usr/bin/env bash
# Derivation-length histogram of the real expression data set next to strings made by
# `gvae dataset generate` (same count, same max length).
#   bash tools/length_histogram.sh [SEED] [TERMINATION_BIAS]
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:-1}
bias=${2:-0.1}
EQUATIONS=${EQUATIONS:-../shared/data/equations/equation2_15_dataset.txt.gz}
swift build -c release --product gvae >/dev/null 2>&1
gvae=.build/release/gvae
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gzip -dc "$EQUATIONS" > "$tmp/real.txt"
n=$(wc -l < "$tmp/real.txt")
"$gvae" dataset generate --grammar equation -n "$n" --max-len 15 --seed "$seed" \
  --termination-bias "$bias" -o "$tmp/gen.txt"
"$gvae" parse --grammar equation < "$tmp/real.txt" | awk '{print NF}' | sort -n | uniq -c > "$tmp/real.h"
"$gvae" parse --grammar equation < "$tmp/gen.txt" | awk '{print NF}' | sort -n | uniq -c > "$tmp/gen.h"
echo "length  real($n)  generated(seed $seed, bias $bias)"
join -1 2 -2 2 -a 1 -a 2 -e 0 -o 0,1.1,2.1 <(sort -k2,2 "$tmp/real.h") <(sort -k2,2 "$tmp/gen.h") \
  | sort -n | awk '{printf "%6d  %8d  %8d\n", $1, $2, $3}'
awk '{s+=$1*$2; c+=$1} END {printf "mean    %8.2f", s/c}' "$tmp/real.h"
awk '{s+=$1*$2; c+=$1} END {printf "  %8.2f\n", s/c}' "$tmp/gen.h"
