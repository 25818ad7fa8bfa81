#!/usr/bin/env python3
"""PyTorch reference for gvae-bench's training-step benchmarks (REFERENCE.md §3).

The same Grammar VAE networks as Sources/gvae-bench/TrainStepBenchmarks.swift, built by
tools/torch_gvae.py from the presets' configurations (the layout gvae's model files use), one
full training step (forward, backward, Adam) on random one-hot inputs with random valid masks,
2 CPU threads. Prints one JSON line per network with the fields gvae-bench prints:

  python3 tools/torch_train_step.py [--runs N] [--only zinc|equation|zinc-ar] [--threads N]
                                    [--zinc-batch N] [--equation-batch N]
                                    [--decoder repeated|autoregressive] [--embedding N]

Besides the median wall time it reports min_seconds and cpu_seconds (median process CPU
time per step, all threads), which are less sensitive to a loaded machine. The repeated
decoder keeps the explicit repeat over steps (the reference network). --decoder
autoregressive adds an N-wide embedding of the previous target to every GRU input (teacher
forcing); its lines are named like gvae-bench's -ar presets (zinc-ar-train-step).
"""
import os
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gvae import GrammarVAE  # noqa: E402


def conv(*specs):
    return [{"filters": f, "kernel": k} for f, k in specs]


# The paper presets' configurations (gvae's model files store the same dicts), plus the batch.
# epsilonStd 1: the benchmark has always drawn z = mu + N(0, 1)·sigma (the cost is the same).
SPECS = {
    "equation": dict(config=dict(kind="grammar", steps=15, vocabularySize=12,
                                 convolutions=conv((2, 2), (3, 3), (4, 4)), convolutionBatchNorm=True,
                                 encoderHidden=100, latentSize=25, latentBatchNorm=True,
                                 decoderHidden=25, gruHidden=100, gruLayers=3, epsilonStd=1.0),
                     batch=600),
    "zinc": dict(config=dict(kind="grammar", steps=277, vocabularySize=76,
                             convolutions=conv((9, 9), (9, 9), (10, 11)), convolutionBatchNorm=False,
                             encoderHidden=435, latentSize=56, latentBatchNorm=False,
                             decoderHidden=56, gruHidden=501, gruLayers=3, epsilonStd=1.0),
                 batch=100),
    # gvae's zinc-ar preset (Sources/GrammarVAE/Configuration.swift).
    "zinc-ar": dict(config=dict(kind="grammar", steps=277, vocabularySize=76,
                                convolutions=conv((32, 9), (32, 9), (32, 11)), convolutionBatchNorm=False,
                                encoderHidden=435, latentSize=56, latentBatchNorm=False,
                                decoderHidden=128, gruHidden=512, gruLayers=1, epsilonStd=1.0,
                                decoder="autoregressive", embeddingSize=32),
                    batch=100),
}


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


def bench(name, runs, batch=None, decoder="repeated", embedding=32, bf16=False):
    s = SPECS[name]
    config = dict(s["config"])
    if "decoder" not in config:
        config.update(decoder=decoder, embeddingSize=embedding if decoder == "autoregressive" else 0)
    decoder = config["decoder"]
    reset_peak_rss()
    torch.manual_seed(2017)
    b, t, c = batch or s["batch"], config["steps"], config["vocabularySize"]
    # Both grammars put the padding production last: the autoregressive decoder's first input.
    model = GrammarVAE(config, padding=c - 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    targets = torch.randint(0, c, (b, t))
    x = F.one_hot(targets, c).float().transpose(1, 2)  # [B, P, T], the encoder's layout
    mask = (torch.rand(b, t, c) < 0.3).float()
    mask.scatter_(2, targets.unsqueeze(2), 1.0)

    def step():
        opt.zero_grad(set_to_none=False)
        # --bf16: PyTorch's own mixed precision (CPU autocast to bfloat16), the peer of
        # `gvae train --bf16`; float32 weights and Adam either way.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
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
    suffix = "-ar" if decoder == "autoregressive" and not name.endswith("-ar") else ""
    print(json.dumps({
        "name": f"{name}{suffix}-train-step", "median_seconds": median, "batch": b, "runs": runs,
        "min_seconds": min(times), "cpu_seconds": statistics.median(cpu),
        "molecules_per_second": b / median, "peak_rss_bytes": peak_rss_bytes(), "loss": loss,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "decoder": decoder, "embedding": config["embeddingSize"], "autocast_bf16": bf16,
    }, sort_keys=True), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--only", choices=sorted(SPECS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--zinc-batch", type=int, default=SPECS["zinc"]["batch"])
    p.add_argument("--equation-batch", type=int, default=SPECS["equation"]["batch"])
    p.add_argument("--decoder", choices=["repeated", "autoregressive"], default="repeated")
    p.add_argument("--embedding", type=int, default=32, help="embedding width (autoregressive)")
    p.add_argument("--bf16", action="store_true", help="CPU autocast to bfloat16")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for name, batch in (("equation", a.equation_batch), ("zinc", a.zinc_batch), ("zinc-ar", a.zinc_batch)):
        if a.only == name or (a.only is None and name != "zinc-ar"):
            bench(name, a.runs, batch, a.decoder, a.embedding, a.bf16)


if __name__ == "__main__":
    main()
