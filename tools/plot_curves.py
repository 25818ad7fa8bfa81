#!/usr/bin/env python3
"""Learning curves as SVG: greedy reconstruction (%) and teacher-forced reconstruction loss
(nats per string) against training hours, one colour per run.

    python3 tools/plot_curves.py --out curves.svg NAME=LOG.jsonl [NAME=LOG.jsonl ...]

LOG is a `gvae train --monitor-count N` log (its "monitor" lines) or a sittings record
(Models/zinc.sittings.jsonl, "point" lines with cumulative figures)."""
import argparse
import json

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def points(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        if r.get("event") == "monitor":
            out.append((r["seconds"] / 3600, 100 * r["reconstruction_greedy"], r["train_reconstruction"]))
        elif r.get("type") == "point":
            out.append((r["cum_seconds"] / 3600, 100 * r["reconstruction_greedy"], r["train_reconstruction"]))
    return out


def svg(series, title):
    W, H, L, R, T, B = 720, 360, 60, 60, 30, 45
    xs = [p[0] for _, pts in series for p in pts] or [1]
    x1 = max(max(xs), 1e-3)
    recon_max = max([p[1] for _, pts in series for p in pts] + [1]) * 1.1
    loss_max = max([p[2] for _, pts in series for p in pts if p[2] > 0] + [1]) * 1.1
    px = lambda x: L + x / x1 * (W - L - R)
    py = lambda y, top: T + (1 - y / top) * (H - T - B)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W/2}" y="18" text-anchor="middle">{title}</text>',
         f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
         f'<line x1="{W-R}" y1="{T}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
         f'<text x="{W/2}" y="{H-8}" text-anchor="middle">training hours</text>',
         f'<text x="14" y="{H/2}" transform="rotate(-90 14 {H/2})" text-anchor="middle">greedy reconstruction % (solid)</text>',
         f'<text x="{W-12}" y="{H/2}" transform="rotate(90 {W-12} {H/2})" text-anchor="middle">reconstruction loss, nats (dashed)</text>']
    for i in range(6):
        x = x1 * i / 5
        s.append(f'<text x="{px(x):.1f}" y="{H-B+16}" text-anchor="middle">{x:.2g}</text>')
        s.append(f'<text x="{L-6}" y="{py(recon_max*i/5, recon_max)+4:.1f}" text-anchor="end">{recon_max*i/5:.2g}</text>')
        s.append(f'<text x="{W-R+6}" y="{py(loss_max*i/5, loss_max)+4:.1f}">{loss_max*i/5:.3g}</text>')
    for k, (name, pts) in enumerate(series):
        c = COLOURS[k % len(COLOURS)]
        r = " ".join(f"{px(x):.1f},{py(y, recon_max):.1f}" for x, y, _ in pts)
        l = " ".join(f"{px(x):.1f},{py(z, loss_max):.1f}" for x, _, z in pts if z > 0)
        s.append(f'<polyline points="{r}" fill="none" stroke="{c}" stroke-width="2"/>')
        s.append(f'<polyline points="{l}" fill="none" stroke="{c}" stroke-dasharray="5,4"/>')
        s.append(f'<text x="{L+10}" y="{T+16+16*k}" fill="{c}">{name}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


if __name__ == "__main__":
    a = argparse.ArgumentParser()
    a.add_argument("--out", required=True)
    a.add_argument("--title", default="gvae learning curves")
    a.add_argument("runs", nargs="+")
    args = a.parse_args()
    series = [(r.split("=", 1)[0], points(r.split("=", 1)[1])) for r in args.runs]
    open(args.out, "w").write(svg(series, args.title))
