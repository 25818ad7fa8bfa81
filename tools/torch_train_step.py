#!/usr/bin/env python3
"""PyTorch reference for gvae-bench's training-step benchmarks (REFERENCE.md §3).

The same two Grammar VAE networks as Sources/gvae-bench/TrainStepBenchmarks.swift, one full
training step (forward, backward, Adam) on random one-hot inputs with random valid masks,
2 CPU threads. Prints one JSON line per network with the fields gvae-bench prints:

  python3 tools/torch_train_step.py [--runs N] [--only zinc|equation] [--threads N]
                                    [--zinc-batch N] [--equation-batch N]

Besides the median wall time it reports min_seconds and cpu_seconds (median process CPU
time per step, all threads), which are less sensitive to a loaded machine. The decoder keeps
the explicit repeat over steps (the reference network); gvae-bench's Swift network projects
the repeated code once per row instead (gru(repeating:)), which computes the same function.
"""
import os
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SPECS = {
    "equation": dict(steps=15, vocab=12, convs=[(2, 2), (3, 3), (4, 4)], conv_bn=True,
                     hidden=100, latent=25, latent_bn=True, gru=100, batch=600),
    "zinc": dict(steps=277, vocab=76, convs=[(9, 9), (9, 9), (10, 11)], conv_bn=False,
                 hidden=435, latent=56, latent_bn=False, gru=501, batch=100),
}


class GrammarVAE(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        convs, norms, ch, length = [], [], s["vocab"], s["steps"]
        for filters, kernel in s["convs"]:
            convs.append(nn.Conv1d(ch, filters, kernel))
            if s["conv_bn"]:
                norms.append(nn.BatchNorm1d(filters))
            ch, length = filters, length - kernel + 1
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.dense = nn.Linear(ch * length, s["hidden"])
        self.mean = nn.Linear(s["hidden"], s["latent"])
        self.log_var = nn.Linear(s["hidden"], s["latent"])
        self.latent_norm = nn.BatchNorm1d(s["latent"]) if s["latent_bn"] else None
        self.dec = nn.Linear(s["latent"], s["latent"])
        self.gru = nn.GRU(s["latent"], s["gru"], num_layers=3, batch_first=True)
        self.out = nn.Linear(s["gru"], s["vocab"])

    def loss(self, x, targets, mask):
        b = x.shape[0]
        h = x.transpose(1, 2)  # [B, C, L] for Conv1d
        for i, conv in enumerate(self.convs):
            h = F.relu(conv(h))
            if self.s["conv_bn"]:
                h = self.norms[i](h)
        h = F.relu(self.dense(h.reshape(b, -1)))
        mu, log_var = self.mean(h), self.log_var(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        if self.latent_norm is not None:
            z = self.latent_norm(z)
        d = F.relu(self.dec(z)).unsqueeze(1).expand(b, self.s["steps"], self.s["latent"])
        logits, _ = self.gru(d)
        logits = self.out(logits)
        logits = logits.masked_fill(mask == 0, float("-inf"))
        ce = F.cross_entropy(logits.reshape(-1, self.s["vocab"]), targets.reshape(-1), reduction="sum") / b
        kl = -0.5 * torch.sum(1 + log_var - mu * mu - torch.exp(log_var)) / b
        return ce + kl


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def bench(name, runs, batch=None):
    s = dict(SPECS[name], batch=batch or SPECS[name]["batch"])
    reset_peak_rss()
    torch.manual_seed(2017)
    model = GrammarVAE(s)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    b, t, c = s["batch"], s["steps"], s["vocab"]
    targets = torch.randint(0, c, (b, t))
    x = F.one_hot(targets, c).float()
    mask = (torch.rand(b, t, c) < 0.3).float()
    mask.scatter_(2, targets.unsqueeze(2), 1.0)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model.loss(x, targets, mask)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    times, cpu = [], []
    for _ in range(runs):
        c0 = sum(os.times()[:2])
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
        cpu.append(sum(os.times()[:2]) - c0)
    median = statistics.median(times)
    print(json.dumps({
        "name": f"{name}-train-step", "median_seconds": median, "batch": b, "runs": runs,
        "min_seconds": min(times), "cpu_seconds": statistics.median(cpu),
        "molecules_per_second": b / median, "peak_rss_bytes": peak_rss_bytes(), "loss": loss,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }, sort_keys=True), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--only", choices=sorted(SPECS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--zinc-batch", type=int, default=SPECS["zinc"]["batch"])
    p.add_argument("--equation-batch", type=int, default=SPECS["equation"]["batch"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for name, batch in (("equation", a.equation_batch), ("zinc", a.zinc_batch)):
        if a.only in (None, name):
            bench(name, a.runs, batch)


if __name__ == "__main__":
    main()
