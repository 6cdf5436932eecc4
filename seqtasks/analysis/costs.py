"""The cost of one-hot inputs: a ``V``-word one-hot input layer vs an embedding lookup, measured.

Multiplying a one-hot row by the weight matrix ``W (V × E)`` picks row ``W[id]``: the product *is* the
lookup (:func:`one_hot_layer` and :func:`embedding_layer` give the same numbers, tested), but the product
builds a ``B·T × V`` input and does ``2·B·T·V·E`` FLOPs forward and as many backward (``∂L/∂W = Xᵀ·∂L/∂Y``),
while the lookup copies ``B·T·E`` numbers forward and adds as many into ``∂L/∂W`` backward.
:func:`measure` times forward + backward of both and reads the bytes the step's operators allocate from
torch's profiler.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


def one_hot_layer(ids: Tensor, weight: Tensor) -> Tensor:
    """``onehot(ids) @ weight``: the plain network's input layer over a ``V``-word vocabulary."""
    x = torch.zeros(*ids.shape, weight.size(0), dtype=weight.dtype).scatter_(-1, ids.unsqueeze(-1), 1.0)
    return x @ weight


def embedding_layer(ids: Tensor, weight: Tensor) -> Tensor:
    """``weight[ids]``: the same numbers, by lookup."""
    return nn.functional.embedding(ids, weight)


def flops(layer: str, tokens: int, vocab: int, dim: int) -> dict[str, int]:
    """Floating-point operations of forward and backward (multiply and add counted apart)."""
    if layer == "one-hot":
        return {"forward": 2 * tokens * vocab * dim, "backward": 2 * tokens * vocab * dim}
    return {"forward": 0, "backward": tokens * dim}  # a copy; then a scatter-add into ∂L/∂W


@contextmanager
def _quiet_native_stderr():
    """The profiler's native start/stop lines (written to file descriptor 2) kept out of the lab's log."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def allocated_bytes(step) -> int:
    """Bytes the operators of ``step()`` allocate (their own allocations, summed), from torch's profiler."""
    from torch.profiler import profile

    with _quiet_native_stderr(), profile(profile_memory=True) as prof:
        step()
    return sum(e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage > 0)


def measure(
    vocab: int, batch_size: int = 32, length: int = 30, dim: int = 100, repeats: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per layer (one-hot, embedding): median ms of forward and backward, MB allocated, FLOPs."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch_size, length), generator=generator)
    weight = nn.Parameter(torch.randn(vocab, dim, generator=generator) * 0.01)
    upstream = torch.randn(batch_size, length, dim, generator=generator)
    rows = []
    for name, layer in (("one-hot", one_hot_layer), ("embedding", embedding_layer)):

        def step(layer=layer) -> tuple[float, float]:
            weight.grad = None
            start = time.perf_counter()
            y = layer(ids, weight)
            middle = time.perf_counter()
            y.backward(upstream)
            return middle - start, time.perf_counter() - middle

        step()  # warm up
        times = [step() for _ in range(repeats)]
        count = flops(name, batch_size * length, vocab, dim)
        rows.append(
            {
                "layer": name,
                "vocab": vocab,
                "batch": batch_size,
                "length": length,
                "dim": dim,
                "forward_ms": round(1000 * statistics.median(t[0] for t in times), 3),
                "backward_ms": round(1000 * statistics.median(t[1] for t in times), 3),
                "allocated_mb": round(allocated_bytes(step) / 2**20, 3),
                "flops_forward": count["forward"],
                "flops_backward": count["backward"],
                "input_mb": round(batch_size * length * (4 * vocab if name == "one-hot" else 8) / 2**20, 3),
            }
        )
    return rows
