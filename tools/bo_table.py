#!/usr/bin/env python3
"""Summarises `gvae optimize` runs (one JSON-lines file per seed) as the paper's table.

    python3 tools/bo_table.py --objective expression|molecule RUN.jsonl...

Prints a Markdown table: fraction of valid proposals, the best three distinct strings over
all seeds with their scores, the average score of valid proposals (mean +- std over
seeds), the sparse GP's test log-likelihood and RMSE (first fit, mean +- std over seeds),
seeds and wall time.
"""
import argparse
import json
import statistics as st


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return "%.3f" % xs[0]
    return "%.3f +- %.3f" % (st.mean(xs), st.stdev(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective", choices=["expression", "molecule"], required=True)
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    maximise = a.objective == "molecule"
    proposals, valid_fractions, averages, lls, rmses, seeds, seconds = [], [], [], [], [], [], []
    for path in a.runs:
        first_gp = None
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if r.get("event") == "gp" and first_gp is None:
                    first_gp = r
                elif r.get("event") == "best":
                    valid_fractions.append(r["valid_fraction"])
                    averages.append(r["average_score"])
                    seeds.append(r["seed"])
                    seconds.append(r["seconds"])
                elif "iteration" in r and "event" not in r and r.get("valid"):
                    proposals.append((r["score"], r["string"]))
        if first_gp:
            lls.append(first_gp["test_log_likelihood"])
            rmses.append(first_gp["rmse"])
    seen, best = set(), []
    for score, s in sorted(proposals, key=lambda p: -p[0] if maximise else p[0]):
        if s not in seen:
            seen.add(s)
            best.append((score, s))
        if len(best) == 3:
            break
    print("| measure | value |")
    print("|---|---|")
    print("| fraction of valid proposals | %s |" % mean_sd(valid_fractions))
    for k, (score, s) in enumerate(best):
        print("| best %d | %.3f `%s` |" % (k + 1, score, s))
    print("| average score of valid proposals | %s |" % mean_sd(averages))
    print("| sparse GP test log-likelihood (first fit) | %s |" % mean_sd(lls))
    print("| sparse GP test RMSE (first fit) | %s |" % mean_sd(rmses))
    print("| seeds | %s |" % ", ".join(str(s) for s in seeds))
    print("| wall time per seed (s) | %s |" % mean_sd(seconds))


if __name__ == "__main__":
    main()
