"""A conditional NADE over binary vectors (Larochelle & Murray 2011), as in the RNN-NADE of
Boulanger-Lewandowski, Bengio & Vincent (2012).

For a frame ``v`` of ``K`` keys, the chain rule over keys (lowest first) gives

    p(v) = prod_i p(v_i | v_<i),   p(v_i = 1 | v_<i) = sigmoid(b_v[i] + V[i] . h_i),
    h_i = sigmoid(b_h + W[:, :i] v_<i),

with ``W`` (H×K) and ``V`` (K×H) shared over time, and the biases ``b_v(t)``, ``b_h(t)`` produced from a
conditioning vector (the recurrent state) at each step. The log-likelihood is exact: all ``K`` hidden
pre-activations come from one exclusive cumulative sum over keys, so a whole batch of frames is scored in
one pass. Sampling is ancestral, key by key, from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ConditionalNADE(nn.Module):
    """NADE over ``num_visible`` binary units whose biases are affine functions of a conditioning vector.

    Args:
        num_visible: binary units per vector (88 piano keys).
        num_hidden: NADE hidden units (H).
        condition_size: width of the conditioning vector (the encoder's ``output_size``).
    """

    def __init__(self, num_visible: int, num_hidden: int, condition_size: int) -> None:
        super().__init__()
        if num_visible < 1 or num_hidden < 1:
            raise ValueError(f"num_visible and num_hidden must be positive, got {num_visible}, {num_hidden}")
        self.num_visible, self.num_hidden = num_visible, num_hidden
        self.W = nn.Parameter(torch.empty(num_hidden, num_visible))  # visible -> hidden
        self.V = nn.Parameter(torch.empty(num_visible, num_hidden))  # hidden -> visible
        self.visible_bias = nn.Linear(condition_size, num_visible)  # b_v(t)
        self.hidden_bias = nn.Linear(condition_size, num_hidden)  # b_h(t)
        nn.init.normal_(self.W, std=1.0 / math.sqrt(num_visible))
        nn.init.normal_(self.V, std=1.0 / math.sqrt(num_hidden))

    def biases(self, condition: Tensor) -> tuple[Tensor, Tensor]:
        """``(b_v, b_h)`` of ``(..., condition_size)`` conditioning vectors."""
        return self.visible_bias(condition), self.hidden_bias(condition)

    def forward(self, condition: Tensor, visible: Tensor) -> Tensor:
        """Conditional logits ``(..., K)``: entry i is the logit of ``p(v_i = 1 | v_<i, condition)``.

        Binary cross-entropy of these logits against ``visible``, summed over keys, is the exact
        ``-log p(visible | condition)``.
        """
        b_v, b_h = self.biases(condition)
        shape = visible.shape
        v = visible.reshape(-1, shape[-1]).to(self.W.dtype)
        # contributions W[:, j] v_j, summed over the keys below i (exclusive cumulative sum): (N, H, K)
        contributions = v.unsqueeze(1) * self.W.unsqueeze(0)
        below = torch.cumsum(contributions, dim=2) - contributions
        hidden = torch.sigmoid(b_h.reshape(-1, self.num_hidden, 1) + below)
        logits = b_v.reshape(-1, shape[-1]) + torch.einsum("nhk,kh->nk", hidden, self.V)
        return logits.reshape(shape)

    def log_prob(self, condition: Tensor, visible: Tensor) -> Tensor:
        """Exact ``log p(visible | condition)``, shape ``visible.shape[:-1]``."""
        logits = self(condition, visible)
        return -nn.functional.binary_cross_entropy_with_logits(logits, visible, reduction="none").sum(-1)

    @torch.no_grad()
    def sample(
        self,
        condition: Tensor,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Ancestral samples ``(B, K)`` for ``(B, condition_size)`` conditions, key by key (lowest first).

        ``temperature`` divides each conditional logit (0: a key sounds when its conditional probability
        exceeds 1/2); ``top_k`` lets at most k keys sound (the keys after the k-th drawn stay silent).
        The uniform draws come from ``generator`` on the CPU, so a seed gives the same frames on any device.
        """
        b_v, b_h = self.biases(condition)
        batch = condition.size(0)
        acts = b_h.clone()
        out = torch.zeros(batch, self.num_visible, device=condition.device)
        sounding = torch.zeros(batch, device=condition.device)
        draws = torch.rand(batch, self.num_visible, generator=generator).to(condition.device)
        for i in range(self.num_visible):
            logit = b_v[:, i] + torch.sigmoid(acts) @ self.V[i]
            if temperature == 0:
                key = (logit > 0).float()
            else:
                key = (draws[:, i] < torch.sigmoid(logit.float() / temperature)).float()
            if top_k is not None:
                key = key * (sounding < top_k).float()
            sounding = sounding + key
            out[:, i] = key
            acts = acts + key.unsqueeze(1) * self.W[:, i]
        return out
