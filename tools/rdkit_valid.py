#!/usr/bin/env python3
"""Reads SMILES on stdin, prints 1 (RDKit parses it) or 0 per line.

Exit status 2 when RDKit is not installed (`pip install rdkit`); gvae then reports
'rdkit: unavailable'.
"""
import sys

try:
    from rdkit import Chem, RDLogger
except ImportError:
    sys.stderr.write("rdkit_valid.py: RDKit is not installed (pip install rdkit)\n")
    sys.exit(2)

RDLogger.DisableLog("rdApp.*")
out = []
for line in sys.stdin:
    s = line.strip()
    ok = bool(s) and Chem.MolFromSmiles(s) is not None
    out.append("1" if ok else "0")
sys.stdout.write("\n".join(out) + ("\n" if out else ""))
