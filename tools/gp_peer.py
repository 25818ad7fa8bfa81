#!/usr/bin/env python3
"""Peers for `gvae gp fit` (sparse FITC GP by minibatch Adam) on the same features and targets.

  tools/.venv-peer/bin/python tools/gp_peer.py --features LATENTS --targets SCORES \
      [--epochs 2] [--inducing 500] [--batch 5000] [--lr 0.0005] [--threads 1] [--gpytorch]

`fitc`: the same model and training as gvae's SparseGP (FITC marginal likelihood of each
minibatch, Adam over inducing inputs, log lengthscales, log signal and noise variance and
the mean; median-heuristic start; float64), with PyTorch autograd for the gradients.
`--gpytorch`: GPyTorch's SGPR (Titsias' collapsed bound) as a second reference, trained
by the same minibatch Adam. Prints one JSON line per peer: seconds per epoch (wall and CPU,
the latter steadier on a loaded machine), test RMSE and
test log-likelihood on the same kind of held-out 10%.
Install: python3 -m venv --system-site-packages tools/.venv-peer &&
         tools/.venv-peer/bin/pip install torch==2.13.0+cpu gpytorch
"""
import argparse
import json
import math
import time

import numpy as np
import torch


def load(features, targets):
    x = np.loadtxt(features, dtype=np.float64, ndmin=2)
    y = np.array([float(t) for t in open(targets).read().split()], dtype=np.float64)
    keep = np.isfinite(y)
    return x[keep], y[keep]


def fitc_nll(x, y, z, log_ell, log_s2, log_noise, mean):
    """Negative FITC log marginal likelihood of (x, y), summed over points."""
    n, m = x.shape[0], z.shape[0]
    s2 = torch.exp(log_s2)
    noise = torch.exp(log_noise)
    xs, zs = x / torch.exp(log_ell), z / torch.exp(log_ell)

    def k(a, b):
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return s2 * torch.exp(-0.5 * d.clamp_min(0))

    kuu = k(zs, zs) + 1e-6 * s2 * torch.eye(m, dtype=x.dtype)
    L = torch.linalg.cholesky(kuu)
    v = torch.linalg.solve_triangular(L, k(zs, xs), upper=False)  # [m, n]
    lam = (s2 - (v * v).sum(0)).clamp_min(0) + noise
    r = y - mean
    vs = v / lam.sqrt()
    A = torch.eye(m, dtype=x.dtype) + vs @ vs.T
    LA = torch.linalg.cholesky(A)
    c = torch.linalg.solve_triangular(LA, (v @ (r / lam))[:, None], upper=False)[:, 0]
    logdet = 2 * torch.log(torch.diagonal(LA)).sum() + torch.log(lam).sum()
    quad = (r * r / lam).sum() - (c * c).sum()
    return 0.5 * (quad + logdet + n * math.log(2 * math.pi))


def predict(x, y, xt, z, log_ell, log_s2, log_noise, mean, block=4096):
    """FITC predictive mean and variance (noise included) at xt from all of (x, y)."""
    with torch.no_grad():
        m = z.shape[0]
        s2, noise = torch.exp(log_s2), torch.exp(log_noise)
        ell = torch.exp(log_ell)

        def k(a, b):
            a, b = a / ell, b / ell
            d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
            return s2 * torch.exp(-0.5 * d.clamp_min(0))

        L = torch.linalg.cholesky(k(z, z) + 1e-6 * s2 * torch.eye(m, dtype=x.dtype))
        A = torch.eye(m, dtype=x.dtype)
        beta = torch.zeros(m, dtype=x.dtype)
        for s in range(0, x.shape[0], block):
            v = torch.linalg.solve_triangular(L, k(z, x[s:s + block]), upper=False)
            lam = (s2 - (v * v).sum(0)).clamp_min(0) + noise
            A += (v / lam) @ v.T
            beta += v @ ((y[s:s + block] - mean) / lam)
        LA = torch.linalg.cholesky(A)
        vt = torch.linalg.solve_triangular(L, k(z, xt), upper=False)
        w = torch.linalg.solve_triangular(LA, vt, upper=False)
        c = torch.linalg.solve_triangular(LA, beta[:, None], upper=False)[:, 0]
        mu = mean + w.T @ c
        var = (s2 - (vt * vt).sum(0)).clamp_min(0) + (w * w).sum(0) + noise
        return mu, var


def scores(mu, var, yt):
    rmse = float(torch.sqrt(((mu - yt) ** 2).mean()))
    ll = float((-0.5 * (torch.log(2 * math.pi * var) + (yt - mu) ** 2 / var)).mean())
    return rmse, ll


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--inducing", type=int, default=500)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpytorch", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    x, y = load(a.features, a.targets)
    order = rng.permutation(len(y))
    nt = len(y) // 10
    test, train = order[:nt], order[nt:]
    X, Y = torch.tensor(x[train]), torch.tensor(y[train])
    XT, YT = torch.tensor(x[test]), torch.tensor(y[test])
    n, D = X.shape
    m = min(a.inducing, n)
    pairs = rng.integers(0, n, size=(2000, 2))
    sq = ((x[train][pairs[:, 0]] - x[train][pairs[:, 1]]) ** 2).sum(1)
    ell0 = math.sqrt(max(np.median(sq), 1e-12) / 2)
    var0 = float(Y.var(unbiased=False))
    batches = (n + a.batch - 1) // a.batch

    def minibatches():
        perm = torch.tensor(rng.permutation(n))
        for k in range(batches):
            yield perm[k * n // batches:(k + 1) * n // batches]

    # FITC, the same model and training as gvae's.
    z = X[torch.tensor(rng.permutation(n)[:m])].clone().requires_grad_(True)
    log_ell = torch.full((D,), math.log(ell0), dtype=torch.float64, requires_grad=True)
    log_s2 = torch.tensor(math.log(var0), dtype=torch.float64, requires_grad=True)
    log_noise = torch.tensor(math.log(var0 * 0.1), dtype=torch.float64, requires_grad=True)
    mean = torch.tensor(float(Y.mean()), dtype=torch.float64, requires_grad=True)
    params = [z, log_ell, log_s2, log_noise, mean]
    opt = torch.optim.Adam(params, lr=a.lr)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(a.epochs):
        for rows in minibatches():
            opt.zero_grad()
            loss = fitc_nll(X[rows], Y[rows], *params) / len(rows)
            loss.backward()
            opt.step()
    seconds = (time.perf_counter() - start) / max(a.epochs, 1)
    cpu = (time.process_time() - start_cpu) / max(a.epochs, 1)
    rmse, ll = scores(*predict(X, Y, XT, *[p.detach() for p in params]), YT)
    print(json.dumps({"peer": "pytorch-fitc", "train": n, "test": nt, "dimensions": D, "inducing": m,
                      "batch": a.batch, "threads": a.threads, "seconds_per_epoch": seconds,
                      "cpu_seconds_per_epoch": cpu, "test_rmse": rmse, "test_log_likelihood": ll}), flush=True)

    if a.gpytorch:
        import gpytorch

        class SGPR(gpytorch.models.ExactGP):
            def __init__(self, tx, ty, lik):
                super().__init__(tx, ty, lik)
                self.mean_module = gpytorch.means.ConstantMean()
                base = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=D))
                self.covar_module = gpytorch.kernels.InducingPointKernel(
                    base, inducing_points=X[torch.tensor(rng.permutation(n)[:m])].clone(), likelihood=lik)

            def forward(self, q):
                return gpytorch.distributions.MultivariateNormal(self.mean_module(q), self.covar_module(q))

        lik = gpytorch.likelihoods.GaussianLikelihood().double()
        model = SGPR(X[:a.batch], Y[:a.batch], lik).double()
        model.train()
        lik.train()
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(a.epochs):
            for rows in minibatches():
                model.set_train_data(X[rows], Y[rows], strict=False)
                opt.zero_grad()
                loss = -mll(model(X[rows]), Y[rows])
                loss.backward()
                opt.step()
        seconds = (time.perf_counter() - start) / max(a.epochs, 1)
        cpu = (time.process_time() - start_cpu) / max(a.epochs, 1)
        print(json.dumps({"peer": "gpytorch-sgpr", "train": n, "inducing": m, "batch": a.batch,
                          "threads": a.threads, "seconds_per_epoch": seconds,
                          "cpu_seconds_per_epoch": cpu, "gpytorch": gpytorch.__version__}), flush=True)


if __name__ == "__main__":
    main()
