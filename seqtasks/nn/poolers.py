"""Sequence → vector: swappable poolers over an encoder's output.

Each pooler is built with the encoder's ``output_size`` and maps ``EncoderOutput`` plus the ``(B, T)``
mask to ``(B, output_size)``. Empty rows pool to zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqtasks.encoders.base import EncoderOutput


class Pooler(nn.Module):
    """Base class; ``output_size`` is what the head is sized from."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.output_size = input_size

    def forward(self, encoded: EncoderOutput, mask: Tensor) -> Tensor:
        raise NotImplementedError


class LastStatePooler(Pooler):
    """The top layer's final hidden state: after the last token (forward) and the first (backward)."""

    def forward(self, encoded: EncoderOutput, mask: Tensor) -> Tensor:
        return encoded.final_hidden[-1]


class MeanPooler(Pooler):
    """Mean of the outputs over real positions."""

    def forward(self, encoded: EncoderOutput, mask: Tensor) -> Tensor:
        counts = mask.sum(dim=1, keepdim=True).clamp(min=1).to(encoded.outputs.dtype)
        return (encoded.outputs * mask.unsqueeze(-1)).sum(dim=1) / counts


class MaxPooler(Pooler):
    """Element-wise max of the outputs over real positions."""

    def forward(self, encoded: EncoderOutput, mask: Tensor) -> Tensor:
        filled = encoded.outputs.masked_fill(~mask.unsqueeze(-1), torch.finfo(encoded.outputs.dtype).min)
        pooled = filled.max(dim=1).values
        return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


class ConcatPooler(Pooler):
    """ULMFiT's concat pooling (Howard & Ruder 2018): the last state, the max and the mean of the outputs,
    side by side (``3 × input_size``), so a long review's early evidence is not only in one final state."""

    def __init__(self, input_size: int) -> None:
        super().__init__(input_size)
        self.last, self.max, self.mean = (
            LastStatePooler(input_size),
            MaxPooler(input_size),
            MeanPooler(input_size),
        )
        self.output_size = 3 * input_size

    def forward(self, encoded: EncoderOutput, mask: Tensor) -> Tensor:
        return torch.cat([p(encoded, mask) for p in (self.last, self.max, self.mean)], dim=-1)


class AttentionPooler(Pooler):
    """Additive self-attention pooling (Yang et al. 2016): a learned query scores each position.

    Args:
        input_size: the encoder's output size.
        attention_size: width of the scoring layer.
    """

    def __init__(self, input_size: int, attention_size: int = 128) -> None:
        super().__init__(input_size)
        self.project = nn.Linear(input_size, attention_size)
        self.query = nn.Linear(attention_size, 1, bias=False)
        self.last_weights: Tensor | None = None

    def forward(self, encoded: EncoderOutput, mask: Tensor) -> Tensor:
        scores = self.query(torch.tanh(self.project(encoded.outputs))).squeeze(-1)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1) * mask
        self.last_weights = weights.detach()
        return torch.bmm(weights.unsqueeze(1), encoded.outputs).squeeze(1)
