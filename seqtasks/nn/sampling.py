"""Sampling the next step of an autoregressive model: temperature, top-k, top-p (nucleus), seeded.

Every draw takes an explicit ``torch.Generator``, so a generation seeded once is reproducible and does not
disturb (or depend on) the global random state.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Refuse settings that mean nothing, naming the field."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to ``-inf`` every logit outside the top ``k`` and outside the smallest set of probability ≥ ``p``.

    Works on the last axis. Ties at the k-th value are all kept; the most probable entry always survives.
    """
    out = logits.clone()
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of the strictly more probable entries
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample_categorical(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One index per row of ``(B, V)`` logits; temperature 0 takes the most probable."""
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    filtered = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = torch.softmax(filtered, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def sample_bernoulli(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Independent 0/1 draws for ``(B, K)`` logits (one Bernoulli per key), as floats.

    ``top_k`` lets only the k most probable keys of a row sound; temperature divides the logits
    (0: a key sounds when its probability exceeds 1/2).
    """
    check_sampling(temperature, top_k, None)
    if top_k is not None and top_k < logits.size(-1):
        logits = filter_logits(logits, top_k=top_k)
    if temperature == 0:
        return (logits > 0).float()
    probs = torch.sigmoid(logits.float() / temperature)
    draws = torch.rand(probs.shape, generator=generator, dtype=probs.dtype)
    return (draws.to(probs.device) < probs).float()
