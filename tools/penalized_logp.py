#!/usr/bin/env python3
"""Penalized logP of SMILES strings, the Grammar VAE paper's molecule objective.

    score = z(logP) + z(-SA) + z(-cycle),  cycle = max(0, largest ring size - 6)

with logP from RDKit's Crippen MolLogP, SA the synthetic-accessibility score from RDKit's
Contrib (sascorer, Ertl & Schuffenhauer 2009), and z(v) = (v - mean) / std using the
constants of the 250k ZINC set (REFERENCE.md section 4).

Scorer protocol (gvae optimize --objective molecule): one SMILES per line on stdin, one
line per SMILES on stdout, flushed: the score, or "nan" when RDKit cannot parse it.

    --draw FILE.png SMILES...   draws the molecules in a row with their scores (PNG).

Exit status 2 when RDKit or its SA_Score contribution is missing (pip install rdkit).
"""
import os
import sys

try:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors, RDConfig
except ImportError:
    sys.stderr.write("penalized_logp.py: RDKit is not installed (pip install rdkit)\n")
    sys.exit(2)

sys.path.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
try:
    import sascorer  # noqa: E402  (lives in RDKit's Contrib directory)
except ImportError:
    sys.stderr.write(
        "penalized_logp.py: RDKit's Contrib SA_Score is missing (looked in %s)\n"
        % RDConfig.RDContribDir)
    sys.exit(2)

RDLogger.DisableLog("rdApp.*")

LOGP_MEAN, LOGP_STD = 2.4570953396190123, 1.434324401111988
SA_MEAN, SA_STD = -3.0525811293166134, 0.8335207024513095  # of -SA
CYCLE_MEAN, CYCLE_STD = -0.0485696876403053, 0.2860212110245455  # of -cycle


def penalized_logp(mol):
    logp = Descriptors.MolLogP(mol)
    sa = -sascorer.calculateScore(mol)
    rings = mol.GetRingInfo().AtomRings()
    largest = max((len(r) for r in rings), default=0)
    cycle = -max(0, largest - 6)
    return ((logp - LOGP_MEAN) / LOGP_STD + (sa - SA_MEAN) / SA_STD
            + (cycle - CYCLE_MEAN) / CYCLE_STD)


def score(smiles):
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    try:
        return penalized_logp(mol)
    except Exception:  # RDKit raises on a few sanitised-but-odd molecules
        return None


def draw(path, smiles):
    from rdkit.Chem.Draw import rdMolDraw2D
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    keep = [(m, s) for m, s in zip(mols, smiles) if m is not None]
    if not keep:
        sys.stderr.write("penalized_logp.py: nothing to draw\n")
        sys.exit(1)
    w, h = 350, 300
    d = rdMolDraw2D.MolDraw2DCairo(w * len(keep), h, w, h)
    legends = ["%.2f" % penalized_logp(m) for m, _ in keep]
    d.DrawMolecules([m for m, _ in keep], legends=legends)
    d.FinishDrawing()
    with open(path, "wb") as f:
        f.write(d.GetDrawingText())


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--draw":
        if len(sys.argv) < 4:
            sys.stderr.write("usage: penalized_logp.py --draw FILE.png SMILES...\n")
            sys.exit(1)
        draw(sys.argv[2], sys.argv[3:])
        return
    out = sys.stdout
    for line in sys.stdin:
        v = score(line.strip())
        out.write("nan\n" if v is None else "%r\n" % v)
        out.flush()


if __name__ == "__main__":
    main()
