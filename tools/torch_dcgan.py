#!/usr/bin/env python3
"""The DCGAN of `gvae image gan train` in PyTorch on the CPU, for timing (tools/gan_speed.sh).

Same networks (generator 128,64; discriminator 64,128; z of 100; 28x28), same step: D on a
real batch and G's batch (detached), then G's non-saturating loss through the updated D,
BCE with logits, Adam lr 2e-4, betas (0.5, 0.999), weights N(0, 0.02).
--freeze-d turns off D's parameter gradients during G's step (as gvae does); without it the
step is the PyTorch DCGAN example's, whose G backward also fills D's unused gradients.
"""
import argparse
import time

import torch
from torch import nn


def generator(latent=100, c0=128, c1=64, side=7):
    return nn.Sequential(
        nn.Linear(latent, c0 * side * side, bias=False), nn.BatchNorm1d(c0 * side * side), nn.ReLU(),
        nn.Unflatten(1, (c0, side, side)),
        nn.ConvTranspose2d(c0, c1, 4, 2, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
        nn.ConvTranspose2d(c1, 1, 4, 2, 1), nn.Sigmoid())


def discriminator(c0=64, c1=128, side=7):
    return nn.Sequential(
        nn.Conv2d(1, c0, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(c0, c1, 4, 2, 1, bias=False), nn.BatchNorm2d(c1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(c1 * side * side, 1))


def init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(m.weight, 1, 0.02)
        nn.init.zeros_(m.bias)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--freeze-d", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(0)
    G, D = generator(), discriminator()
    G.apply(init)
    D.apply(init)
    og = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    b = args.batch_size
    # Pixel values do not change the cost; a fixed pool of uniform images stands in for MNIST.
    pool = torch.rand(16 * b, 1, 28, 28)
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
    start = time.perf_counter()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            start = time.perf_counter()
        i = step % 16
        real = pool[i * b:(i + 1) * b]
        fake = G(torch.randn(b, 100))
        od.zero_grad()
        ld = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        ld.backward()
        od.step()
        og.zero_grad()
        if args.freeze_d:
            D.requires_grad_(False)
        lg = bce(D(fake), ones)
        lg.backward()
        og.step()
        if args.freeze_d:
            D.requires_grad_(True)
    seconds = time.perf_counter() - start
    frozen = ", D frozen in G's step" if args.freeze_d else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) ({torch.get_num_interop_threads()} inter-op){frozen}: {args.steps} steps of {b} in "
          f"{seconds:.2f} s, {args.steps * b / seconds:.1f} images/s")


if __name__ == "__main__":
    main()
