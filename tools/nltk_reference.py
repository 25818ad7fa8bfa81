#!/usr/bin/env python3
"""Reference production sequences from NLTK's chart parser (the Grammar VAE paper's parser).

Writes one line per input: the leftmost derivation as space-separated production
indices (grammar file order), or `ERROR <message>` when NLTK finds no parse.
With --compare FILE, compares against another file of the same format (for example
the output of `gvae parse --format indices`) and prints the mismatch count.

    pip install nltk
    python3 tools/nltk_reference.py --grammar Grammars/zinc.cfg \
        ../shared/data/zinc250k/250k_rndm_zinc_drugs_clean.smi.gz -o /tmp/zinc.nltk -j 2
    swift run -c release gvae parse --grammar zinc < molecules.txt > /tmp/zinc.gvae
    python3 tools/nltk_reference.py --compare /tmp/zinc.nltk /tmp/zinc.gvae
"""
import argparse
import gzip
import multiprocessing as mp
import os
import sys
import time

import nltk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfg_tokens  # noqa: E402

_grammar = None
_parser = None
_index = None
_terminals = None


def open_text(path):
    return gzip.open(path, "rt") if path.endswith(".gz") else open(path)


def read_lines(path):
    with open_text(path) as f:
        return [line.strip() for line in f if line.strip()]


def _init(grammar_path):
    global _grammar, _parser, _index, _terminals
    _grammar = nltk.CFG.fromstring(open(grammar_path).read())
    _parser = nltk.ChartParser(_grammar)
    _index = {p: i for i, p in enumerate(_grammar.productions())}
    terms = {t for p in _grammar.productions() for t in p.rhs() if isinstance(t, str)}
    _terminals = sorted(terms, key=len, reverse=True)


def tokenize(s):
    """Longest match over the grammar's terminals; whitespace separates tokens."""
    return cfg_tokens.tokenize(s, _terminals)


def derive(s):
    try:
        tokens = tokenize(s)
        tree = next(_parser.parse(tokens), None)
        if tree is None:
            return "ERROR no parse"
        return " ".join(str(_index[p]) for p in tree.productions())
    except Exception as e:  # report and go on: one bad line must not stop the run
        return "ERROR " + str(e).replace("\n", " ")


def compare(a_path, b_path):
    a, b = read_lines(a_path), read_lines(b_path)
    if len(a) != len(b):
        print(f"line counts differ: {len(a)} vs {len(b)}")
    bad = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    for i in bad[:10]:
        print(f"line {i + 1}:\n  {a_path}: {a[i]}\n  {b_path}: {b[i]}")
    print(f"compared {min(len(a), len(b))} lines, mismatches: {len(bad) + abs(len(a) - len(b))}")
    return 1 if bad or len(a) != len(b) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grammar", default="Grammars/zinc.cfg")
    ap.add_argument("input", nargs="?")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"))
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    lines = read_lines(args.input)
    if args.limit:
        lines = lines[: args.limit]
    start = time.time()
    with mp.Pool(args.jobs, initializer=_init, initargs=(args.grammar,)) as pool:
        results = pool.map(derive, lines, chunksize=256)
    elapsed = time.time() - start
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    for r in results:
        out.write(r + "\n")
    out.close()
    print(f"{len(lines)} strings in {elapsed:.1f} s ({1000 * elapsed / max(1, len(lines)):.2f} ms each, "
          f"{args.jobs} jobs)", file=sys.stderr)


if __name__ == "__main__":
    main()
