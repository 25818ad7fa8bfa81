#!/usr/bin/env python3
"""The image VAEs of `gvae image vae train` in PyTorch on the CPU, for timing (tools/vae_speed.sh).

Same networks as Sources/Images/VAE.swift: `iwae-1` is 784-200-200-50 (tanh) with mean and
log-variance heads and a mirrored decoder to 784 Bernoulli logits; `conv` is two stride-2
convolutions (32, 64 channels, kernel 4, padding 1) and a dense layer of 256 before 50 latent
dimensions, mirrored by a dense projection and transposed convolutions (ReLU, last one linear).
Same step: a shuffled batch, binarised afresh, one reparameterised sample, the ELBO with the
analytic KL, Adam lr 1e-3, betas (0.9, 0.999), eps 1e-4. Initialisation as gvae's: Glorot
uniform dense weights, He normal (convolution) kernels, zero biases.
"""
import argparse
import gzip
import os
import time

import torch
from torch import nn
from torch.nn import functional as F

LATENT = 50


class VAE(nn.Module):
    def __init__(self, preset):
        super().__init__()
        if preset == "iwae-1":
            act = nn.Tanh
            self.enc = nn.Sequential(nn.Linear(784, 200), act(), nn.Linear(200, 200), act())
            width = 200
            self.dec = nn.Sequential(
                nn.Linear(LATENT, 200), act(), nn.Linear(200, 200), act(), nn.Linear(200, 784))
        elif preset == "conv":
            act = nn.ReLU
            self.enc = nn.Sequential(
                nn.Unflatten(1, (1, 28, 28)),
                nn.Conv2d(1, 32, 4, 2, 1), act(), nn.Conv2d(32, 64, 4, 2, 1), act(),
                nn.Flatten(), nn.Linear(64 * 7 * 7, 256), act())
            width = 256
            self.dec = nn.Sequential(
                nn.Linear(LATENT, 256), act(), nn.Linear(256, 64 * 7 * 7), act(),
                nn.Unflatten(1, (64, 7, 7)),
                nn.ConvTranspose2d(64, 32, 4, 2, 1), act(), nn.ConvTranspose2d(32, 1, 4, 2, 1),
                nn.Flatten())
        else:
            raise SystemExit(f"unknown preset {preset!r} (iwae-1 or conv)")
        self.mean = nn.Linear(width, LATENT)
        self.log_variance = nn.Linear(width, LATENT)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                # gvae's fan-in is in-channels x kernel for both kinds (dim 1 of a
                # ConvTranspose2d weight is its out-channels, so PyTorch's kaiming would differ).
                c_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0, (2 / c_in) ** 0.5)
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.zeros_(m.bias)

    def loss(self, x):
        """The negative ELBO (one sample, analytic KL), averaged over the batch."""
        h = self.enc(x)
        mu, lv = self.mean(h), self.log_variance(h)
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
        nll = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + lv - mu * mu - torch.exp(lv))
        return (nll + kl) / x.shape[0]


def read_images(directory):
    """MNIST training images as float32 [n, 784] in [0, 1] (idx3, raw or .gz)."""
    for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
                raw = f.read()
            n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
            if int.from_bytes(raw[:4], "big") != 2051 or len(raw) != 16 + n * rows * cols:
                raise SystemExit(f"{path}: not an idx3 image file")
            pixels = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8)
            return pixels.view(n, rows * cols).float() / 255
    raise SystemExit(f"{directory}: no train-images-idx3-ubyte[.gz]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="iwae-1", choices=["iwae-1", "conv"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", help="MNIST directory (default: uniform random pixels)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    model = VAE(args.preset)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
    b = args.batch_size
    # Pixel values do not change the cost; without --data uniform grey images stand in.
    pool = read_images(args.data) if args.data else torch.rand(60_000, 784)
    # gvae shuffles before its epoch clock starts and gathers each batch inside it.
    order = torch.randperm(pool.shape[0])
    total = args.warmup + args.steps
    if total * b > pool.shape[0]:
        order = order.repeat(-(-total * b // pool.shape[0]))
    start = time.perf_counter()
    for step in range(total):
        if step == args.warmup:
            start = time.perf_counter()
        x = torch.bernoulli(pool[order[step * b:(step + 1) * b]])
        opt.zero_grad()
        loss = model.loss(x)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    # The last batch's loss, read after the clock, to compare with gvae's epoch loss.
    print(f"torch {torch.__version__} {args.preset}, {torch.get_num_threads()} thread(s) "
          f"({torch.get_num_interop_threads()} inter-op): {args.steps} steps of {b} in "
          f"{seconds:.2f} s, last loss {loss.item():.2f}, {args.steps * b / seconds:.1f} images/s")


if __name__ == "__main__":
    main()
