"""Longest-match tokenizer over a grammar's terminals, as gvae's tokenizer does (shared by
tools/nltk_reference.py and tools/torch_gvae.py)."""


def tokenize(s, terminals, skip_whitespace=True):
    """`terminals` sorted longest first; whitespace between tokens is skipped when asked."""
    out, i = [], 0
    while i < len(s):
        if skip_whitespace and s[i].isspace():
            i += 1
            continue
        for t in terminals:
            if s.startswith(t, i):
                out.append(t)
                i += len(t)
                break
        else:
            raise ValueError(f"unknown character {s[i]!r} at column {i + 1}")
    return out
