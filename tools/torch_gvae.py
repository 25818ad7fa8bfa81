#!/usr/bin/env python3
"""PyTorch twin of gvae's network, reading gvae model files (format 2: PyTorch state_dict names).

    python3 tools/torch_gvae.py encode MODEL [STRINGS...]   # posterior means, one line each
    python3 tools/torch_gvae.py decode MODEL < latents.txt  # greedy masked decoding

As a library: `model, config, metadata = load(path)`, then `encode_strings(model, strings)`
and `decode_latents(model, z)`. `GrammarVAE(config)` builds an untrained network from a
`gvae.configuration` dict; its `loss(...)` is what tools/torch_train_step.py benchmarks.
Needs torch and safetensors; grammar models also need nltk (the parser).
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfg_tokens  # noqa: E402

# Keys a configuration may omit (files written before they existed).
DEFAULTS = {
    "decoder": "repeated",
    "embeddingSize": 0,
    "convolutionBatchNorm": False,
    "latentBatchNorm": False,
    "characters": [],
    "stripWhitespace": False,
    "epsilonStd": 0.01,
}
BN_EPS = 1e-3  # gvae's BatchNorm epsilon (Keras' default, as in the paper's code)


# ----------------------------------------------------------------------------- network

class Encoder(nn.Module):
    """Conv1d stack over the one-hot input [B, P, T], a dense layer, then mean and log-variance."""

    def __init__(self, c):
        super().__init__()
        convs, norms = [], []
        channels, length = c["vocabularySize"], c["steps"]
        for spec in c["convolutions"]:
            convs.append(nn.Conv1d(channels, spec["filters"], spec["kernel"]))
            if c["convolutionBatchNorm"]:
                norms.append(nn.BatchNorm1d(spec["filters"], eps=BN_EPS))
            channels, length = spec["filters"], length - spec["kernel"] + 1
        if length < 1:
            raise ValueError(f"convolutions leave no output for {c['steps']} steps")
        self.conv = nn.ModuleList(convs)
        # No `encoder.norm.*` keys at all without batch norm, matching what gvae writes.
        self.norm = nn.ModuleList(norms) if c["convolutionBatchNorm"] else None
        self.dense = nn.Linear(channels * length, c["encoderHidden"])
        self.mean = nn.Linear(c["encoderHidden"], c["latentSize"])
        self.logvar = nn.Linear(c["encoderHidden"], c["latentSize"])

    def forward(self, x):
        h = x
        for i, conv in enumerate(self.conv):
            h = F.relu(conv(h))
            if self.norm is not None:
                h = self.norm[i](h)  # after the ReLU, as in the paper's Keras model
        h = F.relu(self.dense(h.flatten(1)))
        return self.mean(h), self.logvar(h)


class Decoder(nn.Module):
    """z → dense code → GRU over T steps → logits [B, T, P].

    "repeated" feeds the same code at every step (the paper's decoder); "autoregressive"
    appends an embedding of the previous symbol (teacher forcing in training, the decoder's
    own choice when decoding; the padding index before the first step).
    """

    def __init__(self, c, padding):
        super().__init__()
        P, Z, D = c["vocabularySize"], c["latentSize"], c["decoderHidden"]
        self.steps = c["steps"]
        self.padding = padding
        self.autoregressive = c["decoder"] == "autoregressive"
        if c["decoder"] not in ("repeated", "autoregressive"):
            raise ValueError(f"unknown decoder {c['decoder']!r}")
        self.norm = nn.BatchNorm1d(Z, eps=BN_EPS) if c["latentBatchNorm"] else None
        self.latent = nn.Linear(Z, D)
        E = 0
        if self.autoregressive:
            E = c["embeddingSize"]
            if E <= 0:
                raise ValueError("an autoregressive decoder needs embeddingSize > 0")
            if padding is None:
                raise ValueError("an autoregressive decoder needs the padding index")
            self.embedding = nn.Embedding(P, E)
        self.gru = nn.GRU(D + E, c["gruHidden"], c["gruLayers"], batch_first=True)
        self.output = nn.Linear(c["gruHidden"], P)

    def code(self, z):
        if self.norm is not None:
            z = self.norm(z)
        return F.relu(self.latent(z))

    def forward(self, z, targets=None):
        """Logits [B, T, P] for every step; `targets` [B, T] is needed when autoregressive."""
        d = self.code(z)
        x = d.unsqueeze(1).expand(-1, self.steps, -1)
        if self.autoregressive:
            first = torch.full_like(targets[:, :1], self.padding)
            previous = torch.cat([first, targets[:, :-1]], dim=1)
            x = torch.cat([x, self.embedding(previous)], dim=2)
        out, _ = self.gru(x)
        return self.output(out)

    def step(self, d, previous, h):
        """One decoding step from the code `d` [B, D] and previous choices [B]: logits, state."""
        x = torch.cat([d, self.embedding(previous)], dim=1) if self.autoregressive else d
        out, h = self.gru(x.unsqueeze(1), h)
        return self.output(out[:, 0]), h


class GrammarVAE(nn.Module):
    """The Grammar VAE (or character VAE) of a `gvae.configuration` dict.

    `padding` is the index fed as the "previous" symbol before step 0 by an autoregressive
    decoder: the grammar's padding production, or 0 for character models (the default).
    """

    def __init__(self, config, padding=None):
        super().__init__()
        c = {**DEFAULTS, **config}
        if c["kind"] == "character" and padding is None:
            padding = 0
        self.config = c
        self.grammar = None  # set by load() for grammar models
        self.encoder = Encoder(c)
        self.decoder = Decoder(c, padding)

    def forward(self, x):
        return self.encoder(x)

    def loss(self, x, targets, mask=None, epsilon_std=None):
        """The paper's VAE loss for one-hot inputs x [B, P, T] and target indices [B, T].

        Cross-entropy of the logits masked to `mask` [B, T, P] (nonzero = allowed; None for
        character models), summed over steps; plus KL(q(z|x) || N(0, I)) summed over latent
        dimensions; both averaged over the batch. z = μ + ε·σ with ε ~ N(0, epsilon_std²)
        (the configuration's epsilonStd by default).
        """
        B, P = x.shape[0], self.config["vocabularySize"]
        mu, logvar = self.encoder(x)
        std = self.config["epsilonStd"] if epsilon_std is None else epsilon_std
        z = mu + std * torch.randn_like(mu) * torch.exp(0.5 * logvar)
        logits = self.decoder(z, targets)
        if mask is not None:
            logits = logits.masked_fill(mask == 0, float("-inf"))
        ce = F.cross_entropy(logits.reshape(-1, P), targets.reshape(-1), reduction="sum") / B
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - torch.exp(logvar)) / B
        return ce + kl


# ----------------------------------------------------------------------------- grammar

def strip_comments(text):
    """Drops '#' comments outside quotes (NLTK only knows whole-line comments)."""
    lines = []
    for line in text.split("\n"):
        quote, cut = None, len(line)
        for i, ch in enumerate(line):
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                cut = i
                break
        lines.append(line[:cut])
    return "\n".join(lines)


class Grammar:
    """A CFG in NLTK's text format, numbered in file order like gvae's grammars.

    Parsing is NLTK's chart parser on gvae's tokens (as tools/nltk_reference.py, which
    reproduces gvae's parser); decoding uses the productions' left-hand sides and the
    productivity analysis that masks out productions that can never finish.
    """

    def __init__(self, text, separator=""):
        import nltk

        raw = nltk.CFG.fromstring(strip_comments(text))
        # NLTK reads an unquoted `None` as a non-terminal named None; gvae means an empty RHS.
        fixed = []
        for p in raw.productions():
            rhs = p.rhs()
            if len(rhs) == 1 and isinstance(rhs[0], nltk.Nonterminal) and rhs[0].symbol() == "None":
                rhs = ()
            fixed.append(nltk.Production(p.lhs(), rhs))
        self.cfg = nltk.CFG(raw.start(), fixed)
        self.productions = fixed
        self.separator = separator
        self.start = raw.start()
        self.index = {p: i for i, p in enumerate(fixed)}
        self.parser = nltk.ChartParser(self.cfg)
        self._nt = nltk.Nonterminal

        # Productive non-terminals (derive some terminal string): a fixpoint.
        productive, changed = set(), True
        while changed:
            changed = False
            for p in fixed:
                if p.lhs() not in productive and all(
                        not isinstance(s, nltk.Nonterminal) or s in productive for s in p.rhs()):
                    productive.add(p.lhs())
                    changed = True
        self.usable = [all(not isinstance(s, nltk.Nonterminal) or s in productive for s in p.rhs())
                       for p in fixed]
        if self.start not in productive:
            raise ValueError(f"start symbol {self.start} derives no terminal string")

        empties = [i for i, p in enumerate(fixed) if not p.rhs()]
        nothing = [i for i in empties if fixed[i].lhs().symbol() == "Nothing"]
        self.padding = (nothing or empties or [-1])[-1]

        # Decoding mask per left-hand side: the usable productions of that non-terminal.
        self.allowed = {}
        for i, p in enumerate(fixed):
            row = self.allowed.setdefault(p.lhs(), torch.zeros(len(fixed), dtype=torch.bool))
            row[i] = self.usable[i]

        terminals = {s for p in fixed for s in p.rhs() if isinstance(s, str)}
        self.terminals = sorted(terminals, key=len, reverse=True)  # longest match first
        self.skip_whitespace = not any(ch.isspace() for t in terminals for ch in t)

    def tokenize(self, s):
        return cfg_tokens.tokenize(s, self.terminals, self.skip_whitespace)

    def parse(self, s):
        """The leftmost derivation of `s` as production indices; ValueError when none."""
        tree = next(self.parser.parse(self.tokenize(s.strip())), None)
        if tree is None:
            raise ValueError("no parse")
        return [self.index[p] for p in tree.productions()]


# ----------------------------------------------------------------------------- files

def load(path):
    """(model in eval mode, configuration, metadata) of a gvae model file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, "pt") as f:
        metadata = f.metadata() or {}
    config = {**DEFAULTS, **json.loads(metadata["gvae.configuration"])}
    grammar = None
    if config["kind"] == "grammar":
        grammar = Grammar(metadata["gvae.grammar"], metadata.get("gvae.grammar_separator", ""))
        if len(grammar.productions) != config["vocabularySize"]:
            raise ValueError(f"{path}: grammar has {len(grammar.productions)} productions, "
                             f"the model {config['vocabularySize']}")
    model = GrammarVAE(config, padding=grammar.padding if grammar else 0)
    model.grammar = grammar
    state = {k: v.float() for k, v in load_file(path).items()}  # F16 files too
    # Names first, for a clear message on an old-layout file (before shapes can mismatch).
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{path} (gvae.format {metadata.get('gvae.format', '?')}) does not match "
                         f"the PyTorch layout: missing {missing}, unexpected {unexpected}")
    # gvae writes no num_batches_tracked (unused in eval mode); nothing else may be missing.
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith(".num_batches_tracked") for k in missing), missing
    model.eval()
    return model, config, metadata


# ----------------------------------------------------------------------------- encode / decode

def sequence(model, s):
    """The padded index sequence [T] of a string (gvae's SequenceCodec.encode)."""
    c = model.config
    T = c["steps"]
    if c["kind"] == "grammar":
        seq = model.grammar.parse(s)
        pad = model.grammar.padding
    else:
        s = s.strip()
        if c["stripWhitespace"]:
            s = "".join(ch for ch in s if not ch.isspace())
        if not s:
            raise ValueError("empty input")
        index = {ch: i for i, ch in enumerate(c["characters"]) if i > 0}  # 0 is padding only
        seq = []
        for k, ch in enumerate(s):
            if ch not in index:
                raise ValueError(f"column {k + 1}: character {ch!r} is not in the model's vocabulary")
            seq.append(index[ch])
        pad = 0
    if len(seq) > T:
        raise ValueError(f"encoding has {len(seq)} steps, more than the model's {T}")
    return seq + [pad] * (T - len(seq))


def one_hot(model, strings):
    """One-hot inputs [B, P, T] of strings."""
    seqs = []
    for i, s in enumerate(strings):
        try:
            seqs.append(sequence(model, s))
        except ValueError as e:
            raise ValueError(f"input {i + 1} ({s!r}): {e}") from None
    idx = torch.tensor(seqs, dtype=torch.long)
    return F.one_hot(idx, model.config["vocabularySize"]).float().transpose(1, 2)


@torch.no_grad()
def encode_strings(model, strings, chunk=256):
    """Posterior means [B, Z]."""
    out = [model.encoder(one_hot(model, strings[k:k + chunk]))[0]
           for k in range(0, len(strings), chunk)]
    return torch.cat(out) if out else torch.zeros(0, model.config["latentSize"])


@torch.no_grad()
def decode_latents(model, z):
    """Greedy decodings of latents [B, Z]: strings, or None where the derivation is unfinished
    after T steps (grammar models)."""
    c, g = model.config, model.grammar
    B, T = z.shape[0], c["steps"]
    d = model.decoder.code(z)
    previous = torch.full((B,), model.decoder.padding, dtype=torch.long)
    h = None
    grammar = c["kind"] == "grammar"
    stacks = [[g.start] for _ in range(B)] if grammar else None
    words = [[] for _ in range(B)]
    done = [False] * B
    for _ in range(T):
        if all(done):
            break
        logits, h = model.decoder.step(d, previous, h)
        if grammar:
            # Only the productions of each stack's top symbol; finished rows allow anything.
            mask = torch.stack([g.allowed[s[-1]] if s else torch.ones(c["vocabularySize"], dtype=torch.bool)
                                for s in stacks])
            logits = logits.masked_fill(~mask, float("-inf"))
        choice = logits.argmax(dim=1)  # first maximum on ties, like gvae
        for i in range(B):
            if done[i]:
                continue
            k = int(choice[i])
            if grammar:
                stack = stacks[i]
                stack.pop()
                stack.extend(reversed(g.productions[k].rhs()))
                while stack and isinstance(stack[-1], str):  # terminals come out in order
                    words[i].append(stack.pop())
                done[i] = not stack
            elif k == 0:
                done[i] = True
            else:
                words[i].append(c["characters"][k])
        previous = choice
    if not grammar:
        return ["".join(w) for w in words]
    return [g.separator.join(w) if done[i] else None for i, w in enumerate(words)]


# ----------------------------------------------------------------------------- CLI

def input_lines(arguments):
    if arguments:
        return arguments
    lines = [l[:-1] if l.endswith("\r") else l for l in sys.stdin.read().split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def parse_vector(line, size, number):
    s = line.strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    v = [float(f) for f in s.replace(",", " ").split()]
    if len(v) != size:
        raise SystemExit(f"torch_gvae: line {number}: expected {size} numbers, got {len(v)}")
    return v


def main(argv):
    if len(argv) < 2 or argv[0] not in ("encode", "decode"):
        raise SystemExit(__doc__)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        model, config, _ = load(argv[1])
    except (ValueError, KeyError, OSError) as e:
        raise SystemExit(f"torch_gvae: {e}")
    if argv[0] == "encode":
        strings = input_lines(argv[2:])
        try:
            z = encode_strings(model, strings)
        except ValueError as e:
            raise SystemExit(f"torch_gvae: {e}")
        for row in z.tolist():
            print(" ".join(f"{v:.9g}" for v in row))  # 9 digits round-trip a Float32
    else:
        lines = input_lines(argv[2:])
        z = torch.tensor([parse_vector(l, config["latentSize"], n + 1) for n, l in enumerate(lines)],
                         dtype=torch.float32).reshape(-1, config["latentSize"])
        for n in range(0, z.shape[0], 512):
            for i, s in enumerate(decode_latents(model, z[n:n + 512])):
                if s is None:  # as gvae: an empty line, a note on stderr
                    print(f"output {n + i + 1}: incomplete (symbols left to expand after the "
                          "length limit)", file=sys.stderr)
                    s = ""
                print(s)


if __name__ == "__main__":
    main(sys.argv[1:])
