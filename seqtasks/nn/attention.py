"""Attention of a decoder state over encoder outputs: additive (Bahdanau) and multiplicative (Luong).

* ``additive``: score(q, k) = vᵀ tanh(W_q q + W_k k) (Bahdanau et al. 2015); ``W_k k`` is computed once per
  source sentence by :meth:`Attention.prepare`, not at every decoder step.
* ``dot``: score(q, k) = qᵀ k (Luong et al. 2015); needs equal query and key widths.
* ``general``: score(q, k) = qᵀ W k (Luong et al. 2015).

Padded source positions get weight exactly zero, so a sentence attends the same way in any batch.

A query is one decoder state per row ``(B, Q)`` (decoding, input feeding) or one per target position
``(B, T, Q)`` (teacher forcing without input feeding, where all T queries are known at once).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

AttentionKind = Literal["additive", "dot", "general"]


class Attention(nn.Module):
    """Score a query against every key, softmax over the real positions, and average the keys.

    Args:
        query_size: width of the decoder state that asks.
        key_size: width of the encoder outputs (keys and values).
        kind: ``additive``, ``dot`` or ``general`` (see the module docstring).
        hidden_size: width of the additive scorer's hidden layer (``additive`` only).
    """

    def __init__(
        self, query_size: int, key_size: int, kind: AttentionKind = "general", hidden_size: int = 256
    ) -> None:
        super().__init__()
        if kind not in ("additive", "dot", "general"):
            raise ValueError(f"attention kind must be additive, dot or general, got {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise ValueError(
                f"dot attention needs the decoder's hidden size ({query_size}) to equal the encoder's "
                f"output size ({key_size}); use attention 'general' or 'additive', or match the sizes"
            )
        self.kind = kind
        self.query_size = query_size
        self.key_size = key_size
        if kind == "general":
            self.query_proj = nn.Linear(query_size, key_size, bias=False)
        elif kind == "additive":
            self.key_proj = nn.Linear(key_size, hidden_size, bias=False)
            self.query_proj = nn.Linear(query_size, hidden_size)
            self.score = nn.Linear(hidden_size, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        """What can be computed once per source sentence: ``W_k k`` for additive, the keys otherwise."""
        return self.key_proj(keys) if self.kind == "additive" else keys

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor, prepared: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Context and weights for a query ``(B, Q)`` or ``(B, T, Q)`` over keys ``(B, S, K)``.

        A ``(B, Q)`` query gives context ``(B, K)`` and weights ``(B, S)``; a ``(B, T, Q)`` one gives
        ``(B, T, K)`` and ``(B, T, S)``, each of the T queries scored as if asked alone.
        ``mask`` is ``(B, S)``, True at real positions; every row needs at least one.
        """
        if prepared is None:
            prepared = self.prepare(keys)
        if query.dim() == 3:
            return self._forward_all(query, keys, mask, prepared)
        if self.kind == "additive":
            hidden = torch.tanh(prepared + self.query_proj(query).unsqueeze(1))
            scores = self.score(hidden).squeeze(-1)
        else:
            q = self.query_proj(query) if self.kind == "general" else query
            scores = torch.bmm(prepared, q.unsqueeze(-1)).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
        return context, weights

    def _forward_all(
        self, query: Tensor, keys: Tensor, mask: Tensor, prepared: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The ``(B, T, Q)`` form: one batched matrix product instead of T calls."""
        if self.kind == "additive":
            # (B, 1, S, A) + (B, T, 1, A): the scorer's hidden layer for every (query, key) pair
            hidden = torch.tanh(prepared.unsqueeze(1) + self.query_proj(query).unsqueeze(2))
            scores = self.score(hidden).squeeze(-1)
        else:
            q = self.query_proj(query) if self.kind == "general" else query
            scores = torch.bmm(q, prepared.transpose(1, 2))
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights
