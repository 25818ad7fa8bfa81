#!/usr/bin/env bash
# Regenerates the NLTK golden corpora in Tests/CFGTests/Golden from the first 300 lines of
# each data set (cheap: a few seconds). Needs `pip install nltk` and ../shared/data.
#   bash tools/make_golden.sh
# Production-order goldens (*.productions.txt): RECORD_GOLDEN=1 swift test --filter CFGTests
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make() {  # name grammar data title
  gzip -dc "$3" | awk 'NR <= 300' > "$tmp/$1.txt"  # awk: no SIGPIPE under pipefail
  python3 tools/nltk_reference.py --grammar "Grammars/$2.cfg" "$tmp/$1.txt" -o "$tmp/$1.nltk"
  if grep -q '^ERROR' "$tmp/$1.nltk"; then echo "NLTK failed on a line of $1" >&2; exit 1; fi
  { echo "# $4 -> production indices, from NLTK's ChartParser via tools/make_golden.sh"
    paste "$tmp/$1.txt" "$tmp/$1.nltk"; } > "Tests/CFGTests/Golden/$2.txt"
}
make zinc zinc ../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz \
  "ZINC SMILES (first 300 molecules of 250k_rndm_zinc_drugs_clean.smi)"
make equation equation ../shared/data/equations/equation2_15_dataset.txt.gz \
  "Expressions (first 300 lines of equation2_15_dataset.txt)"
# Hard cases: the 50 longest molecules and every 400th one with a charge, isotope, '@@' or
# a '/' or '\' bond.
gzip -dc ../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz > "$tmp/all.smi"
{ awk '{print length($0)"\t"NR"\t"$0}' "$tmp/all.smi" | sort -k1,1rn -k2,2n | awk 'NR <= 50' | cut -f3
  grep -E '\\|/|\+|\-\]|@@|\[[0-9]' "$tmp/all.smi" | awk 'NR % 400 == 0' | awk 'NR <= 50'; } > "$tmp/hard.txt"
python3 tools/nltk_reference.py --grammar Grammars/zinc.cfg "$tmp/hard.txt" -o "$tmp/hard.nltk"
{ echo "# ZINC hard cases (50 longest; 50 with charges, isotopes, '@@', '/' or '\\' bonds) -> production indices, from NLTK's ChartParser via tools/make_golden.sh"
  paste "$tmp/hard.txt" "$tmp/hard.nltk"; } > Tests/CFGTests/Golden/zinc_hard.txt
git diff --stat -- Tests/CFGTests/Golden
