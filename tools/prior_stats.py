#!/usr/bin/env python3
"""Validity (RDKit), uniqueness, novelty and size/ring distributions of decoded molecules
beside the training set's.

  python3 tools/prior_stats.py DECODED.txt --train ZINC.smi[.gz] [--skip 5000] [--label NAME]

DECODED holds one decoding per line (an empty line: unfinished). Novelty compares RDKit
canonical SMILES with the training molecules (the lines after --skip, the test hold-out).
Prints one JSON object."""
import argparse, gzip, json, statistics, sys

from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")


def lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [l.strip() for l in f]


def describe(values):
    values = sorted(values)
    if not values:
        return {}
    q = lambda p: values[min(len(values) - 1, int(p * len(values)))]
    return {"mean": round(statistics.fmean(values), 2), "q25": q(0.25), "median": q(0.5), "q75": q(0.75)}


def profile(mols):
    return {
        "heavy_atoms": describe([m.GetNumHeavyAtoms() for m in mols]),
        "rings": describe([m.GetRingInfo().NumRings() for m in mols]),
        "smiles_length": describe([len(Chem.MolToSmiles(m)) for m in mols]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("decoded")
    ap.add_argument("--train", required=True)
    ap.add_argument("--skip", type=int, default=5000)
    ap.add_argument("--label", default="")
    ap.add_argument("--train-sample", type=int, default=20000, help="molecules profiled from the training set")
    a = ap.parse_args()
    decoded = lines(a.decoded)
    mols = [Chem.MolFromSmiles(s) if s else None for s in decoded]
    valid = [m for m in mols if m is not None]
    canon = [Chem.MolToSmiles(m) for m in valid]
    train = lines(a.train)[a.skip:]
    train_canon = set()
    train_mols = []
    for i, s in enumerate(train):
        m = Chem.MolFromSmiles(s)
        if m is None:
            continue
        train_canon.add(Chem.MolToSmiles(m))
        if i < a.train_sample:
            train_mols.append(m)
    unique = set(canon)
    out = {
        "label": a.label,
        "decodings": len(decoded),
        "valid_rdkit": round(len(valid) / max(len(decoded), 1), 4),
        "uniqueness": round(len(unique) / max(len(valid), 1), 4),
        "novelty": round(sum(c not in train_canon for c in canon) / max(len(valid), 1), 4),
        "novel_unique": round(sum(c not in train_canon for c in unique) / max(len(unique), 1), 4),
        "decoded": profile(valid),
        "training_set": profile(train_mols),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
