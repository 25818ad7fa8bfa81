#!/usr/bin/env python3
"""Python peer of `gvae gp propose` (the acquisition step of one `gvae optimize` iteration).

  tools/.venv-peer/bin/python tools/bo_peer.py --gp GP.json --box FEATURES --targets SCORES \
      [--batch 50] [--candidates 10000] [--restarts 5] [--iterations 50] [--threads 1] [--seed 0]

The same computation as gvae's `selectBatch` on the same saved GP (the posterior written by
`gvae gp fit`: mean(x) = mu + k(x, C) w, variance(x) = s2 - k(x, C) M k(C, x)), in PyTorch
float64: for each of --batch points, --candidates uniform points in the bounding box of the
--box rows scored by log expected improvement below the incumbent (minimisation) in blocks of
1,024, the best --restarts refined together by scipy's L-BFGS-B on the sum of their log EI (as
BoTorch's gen_candidates_scipy; at most --iterations iterations; gradients by PyTorch
autograd), the best kept; then the point is added to the batch as a
kriging-believer fantasy (the posterior's joint covariance conditioned on it at its predicted
mean, which leaves the means and shrinks the variances) and the incumbent drops to its mean
when lower. Log EI in three regimes as gvae's (direct above z = -1, erfcx-scaled down to -30,
asymptotic series below). Prints gvae's JSON lines: one per point, then the batch's seconds
(the search alone, files read beforehand).
"""
import argparse
import json
import math
import time

import numpy as np
import scipy.optimize
import torch

torch.set_default_dtype(torch.float64)
LOG_2PI = math.log(2 * math.pi)


def log_h(z):
    """log(z Phi(z) + phi(z)), finite far in the lower tail; differentiable."""
    def log_phi(t):
        return -0.5 * t * t - 0.5 * LOG_2PI

    z1 = z.clamp_min(-1.0)
    direct = torch.log(z1 * 0.5 * torch.special.erfc(-z1 / math.sqrt(2)) + torch.exp(log_phi(z1)))
    t = -z.clamp(-30.0, -1.0)
    ratio = math.sqrt(math.pi / 2) * torch.special.erfcx(t / math.sqrt(2))
    middle = log_phi(-t) + torch.log1p(-t * ratio)
    z3 = z.clamp_max(-30.0)
    u = 1 / (z3 * z3)
    term = torch.ones_like(z3)
    total = torch.ones_like(z3)
    for k in range(1, 13):
        term = term * (-(2 * k + 1)) * u
        total = total + term
    tail = log_phi(z3) + torch.log(u) + torch.log(total)
    return torch.where(z > -1, direct, torch.where(z > -30, middle, tail))


class Posterior:
    """The saved GP posterior, conditioned on pending (fantasised) points."""

    def __init__(self, gp):
        k = gp["kernel"]
        self.inv_ell = torch.exp(-torch.tensor(k["logLengthscales"]))
        self.s2 = math.exp(k["logSignalVariance"])
        self.noise = math.exp(gp["logNoiseVariance"])
        self.mu = gp["mean"]
        c = gp["centers"]
        self.C = torch.tensor(c["storage"]).reshape(c["rows"], c["columns"])
        self.w = torch.tensor(gp["weights"])
        p = gp["precision"]
        self.M = torch.tensor(p["storage"]).reshape(p["rows"], p["columns"])
        self.P = torch.zeros(0, self.C.shape[1])
        self.G = None
        self.L = None

    def kernel(self, a, b):
        a, b = a * self.inv_ell, b * self.inv_ell
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return self.s2 * torch.exp(-0.5 * d.clamp_min(0))

    def base(self, x):
        k = self.kernel(x, self.C)
        mean = self.mu + k @ self.w
        var = self.s2 - ((k @ self.M) * k).sum(1)
        return mean, var, k

    def predict(self, x):
        mean, var, k = self.base(x)
        floor = 1e-12 * self.s2
        var = var.clamp_min(floor)
        if self.L is not None:
            c = self.kernel(x, self.P) - k @ self.G  # c(x, P) [n, q]
            s = torch.linalg.solve_triangular(self.L, c.T, upper=False)
            var = var - (s * s).sum(0)
        return mean, var.clamp_min(floor)

    def add(self, x):
        self.P = torch.cat([self.P, x[None, :]])
        self.G = self.M @ self.kernel(self.C, self.P)
        c = self.kernel(self.P, self.P) - self.kernel(self.P, self.C) @ self.G
        c = 0.5 * (c + c.T)
        d = torch.diagonal(c).clamp_min(0) + self.noise + 1e-8 * self.s2
        c = c - torch.diag(torch.diagonal(c)) + torch.diag(d)
        self.L = torch.linalg.cholesky(c)


def log_ei(model, x, best):
    mean, var = model.predict(x)
    s = var.sqrt()
    return torch.log(s) + log_h((best - mean) / s)


def select_batch(model, count, best, lower, upper, candidates, restarts, iterations, rng):
    batch = []
    bounds = list(zip(lower.tolist(), upper.tolist()))
    D = len(lower)
    for _ in range(count):
        cand = torch.tensor(lower + (upper - lower) * rng.random((candidates, D)))
        with torch.no_grad():
            scores = torch.cat([log_ei(model, cand[s:s + 1024], best) for s in range(0, candidates, 1024)])
        order = torch.argsort(scores, descending=True)
        point, value = cand[order[0]], float(scores[order[0]])

        starts = order[:restarts]
        if len(starts) > 0:
            # The restarts are independent: one L-BFGS-B run on their sum (as BoTorch's
            # gen_candidates_scipy does), so Python's overhead is paid once per step.
            def f(v):
                x = torch.tensor(v, requires_grad=True)
                values = log_ei(model, x.view(len(starts), D), best)
                (-values.sum()).backward()
                return float(-values.sum().detach()), x.grad.numpy().copy()

            r = scipy.optimize.minimize(f, cand[starts].numpy().ravel(), jac=True, method="L-BFGS-B",
                                        bounds=bounds * len(starts), options={"maxiter": iterations})
            refined = torch.tensor(r.x).view(len(starts), D)
            with torch.no_grad():
                values = log_ei(model, refined, best)
            j = int(torch.argmax(values))
            if math.isfinite(float(values[j])) and float(values[j]) > value:
                value, point = float(values[j]), refined[j]
        with torch.no_grad():
            mean = float(model.base(point[None, :])[0][0])
            model.add(point)
        best = min(best, mean)
        batch.append(point)
    return torch.stack(batch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gp", required=True)
    ap.add_argument("--box", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--candidates", type=int, default=10000)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gp = json.load(open(a.gp))
    x = np.loadtxt(a.box, dtype=np.float64, ndmin=2)
    y = np.loadtxt(a.targets, dtype=np.float64, ndmin=1)
    best = float(np.nanmin(y))
    lower, upper = x.min(0), x.max(0)
    model = Posterior(gp)
    rng = np.random.default_rng(a.seed)
    start, start_cpu = time.perf_counter(), time.process_time()
    points = select_batch(model, a.batch, best, lower, upper, a.candidates, a.restarts, a.iterations, rng)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    with torch.no_grad():
        mean, var, _ = model.base(points)
    for k in range(len(points)):
        print(json.dumps({"index": k + 1, "mean": float(mean[k]), "variance": float(var[k]),
                          "z": points[k].tolist()}))
    print(json.dumps({"event": "batch", "peer": "pytorch", "points": len(points), "candidates": a.candidates,
                      "restarts": a.restarts, "best": best, "threads": a.threads, "seconds": seconds, "cpu_seconds": cpu,
                      "torch": torch.__version__, "scipy": scipy.__version__}), flush=True)


if __name__ == "__main__":
    main()
