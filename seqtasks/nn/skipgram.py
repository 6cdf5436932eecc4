"""Skip-gram with negative sampling (Mikolov et al. 2013): the model behind ``seqtasks word-vectors``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SkipGram(nn.Module):
    """Word (input) and context (output) embeddings; the word vectors are the input embeddings.

    Both tables are sparse, so an optimizer step touches only the rows of the batch's words.
    """

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab_size, dim, sparse=True)
        self.contexts = nn.Embedding(vocab_size, dim, sparse=True)
        nn.init.uniform_(self.words.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.contexts.weight)

    def forward(self, centers: Tensor, contexts: Tensor, negatives: Tensor) -> Tensor:
        """Mean negative-sampling loss of ``(B,)`` centre/context pairs with ``(B, K)`` negatives."""
        center = self.words(centers)  # (B, D)
        positive = (center * self.contexts(contexts)).sum(-1)  # (B,)
        negative = torch.bmm(self.contexts(negatives), center.unsqueeze(2)).squeeze(2)  # (B, K)
        return -(F.logsigmoid(positive) + F.logsigmoid(-negative).sum(-1)).mean()
