#!/usr/bin/env bash
# Full-data check of the parser against NLTK's chart parser (the paper's parser), and of the
# round trip derive(parse(s)) == s, on both data sets.
#
#   bash tools/check_parser.sh [ZINC_NLTK] [EQUATIONS_NLTK]
#
# The NLTK references (one line per input, made by tools/nltk_reference.py over the full
# sets; ~1 h for ZINC on one core) default to /work/ref/zinc.nltk and
# /work/ref/equations.nltk. A missing reference skips that comparison. Data sets are read
# from ../shared/data (override with ZINC=... EQUATIONS=...).
set -euo pipefail
cd "$(dirname "$0")/.."
zinc_ref=${1:-/work/ref/zinc.nltk}
eq_ref=${2:-/work/ref/equations.nltk}
ZINC=${ZINC:-../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz}
EQUATIONS=${EQUATIONS:-../shared/data/equations/equation2_15_dataset.txt.gz}
swift build -c release --product gvae >/dev/null
gvae=.build/release/gvae
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

check() {  # name grammar data reference compare-mode
  local name=$1 grammar=$2 data=$3 ref=$4 mode=$5
  gzip -dc "$data" > "$tmp/$name.txt"
  local n
  n=$(wc -l < "$tmp/$name.txt")
  local start end
  start=$(date +%s.%N)
  "$gvae" parse --grammar "$grammar" --report-ambiguity < "$tmp/$name.txt" > "$tmp/$name.gvae" \
    2> "$tmp/$name.err" || { echo "$name: gvae parse failed: $(cat "$tmp/$name.err")"; status=1; return; }
  end=$(date +%s.%N)
  echo "$name: parsed $n strings in $(echo "$end - $start" | bc) s (gvae parse, release, text output)"
  echo "$name: $(tail -n 1 "$tmp/$name.err")"
  if [ -f "$ref" ]; then
    echo -n "$name: vs NLTK: "
    python3 tools/nltk_reference.py --compare "$ref" "$tmp/$name.gvae" | tail -n 1 || status=1
  else
    echo "$name: no NLTK reference at $ref; comparison skipped"
  fi
  "$gvae" derive --grammar "$grammar" < "$tmp/$name.gvae" > "$tmp/$name.derived"
  local diffs
  if [ "$mode" = exact ]; then
    diffs=$(paste -d '\n' "$tmp/$name.txt" "$tmp/$name.derived" | awk 'NR%2==1{a=$0;next}{if(a!=$0)c++}END{print c+0}')
  else  # equal up to whitespace
    diffs=$(paste -d '\n' "$tmp/$name.txt" "$tmp/$name.derived" | tr -d ' \t' | awk 'NR%2==1{a=$0;next}{if(a!=$0)c++}END{print c+0}')
  fi
  local exact
  exact=$(cmp -s "$tmp/$name.txt" "$tmp/$name.derived" && echo "byte-identical" || echo "not byte-identical")
  echo "$name: round trip derive(parse(s)) == s ($mode): $diffs mismatches of $n; files $exact"
  [ "$diffs" = 0 ] || status=1
}

check zinc zinc "$ZINC" "$zinc_ref" exact
check equations equation "$EQUATIONS" "$eq_ref" whitespace
exit $status
