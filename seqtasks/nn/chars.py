"""Character-level word features: a CNN over each word's characters, max-pooled (Ma & Hovy 2016), and
a word's casing class (Reimers & Gurevych 2017).

Characters see what a lower-cased word vocabulary throws away (capitals, suffixes, digits) and give
unknown words a representation of their own.
"""

from __future__ import annotations

from torch import Tensor, nn

CASINGS = ["<pad>", "numeric", "mainly_numeric", "lower", "upper", "title", "has_digit", "other"]
"""Casing classes of a word (Reimers & Gurevych 2017); index 0 is padding."""


def casing(token: str) -> int:
    """The casing class of ``token`` (an index into :data:`CASINGS`)."""
    digits = sum(c.isdigit() for c in token)
    if token.isdigit():
        return 1
    if digits / max(len(token), 1) > 0.5:
        return 2
    if token.islower():
        return 3
    if token.isupper():
        return 4
    if token[:1].isupper():
        return 5
    if digits:
        return 6
    return 7


class CharCNN(nn.Module):
    """``(B, T, L)`` character ids → ``(B, T, num_filters)``, one vector per word.

    Args:
        vocab_size: size of the character vocabulary.
        embedding_dim: character embedding width.
        num_filters: convolution filters (the output width).
        kernel_size: characters each filter sees.
        dropout: dropout on the character embeddings.
        pad_index: the padding character id (its embedding is zero and it is masked out of the max).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 30,
        num_filters: int = 50,
        kernel_size: int = 3,
        dropout: float = 0.0,
        pad_index: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.pad_index = pad_index
        self.output_size = num_filters
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(embedding_dim, num_filters, kernel_size, padding=kernel_size // 2)

    def forward(self, chars: Tensor) -> Tensor:
        batch, time, length = chars.shape
        flat = chars.reshape(batch * time, length)
        embedded = self.dropout(self.embedding(flat)).transpose(1, 2)  # (N, E, L)
        features = self.conv(embedded)  # (N, F, L)
        real = (flat != self.pad_index).unsqueeze(1)
        features = features.masked_fill(~real, float("-inf")).amax(dim=2)
        # words with no characters (padding positions) pool to zeros, not -inf
        features = features.masked_fill(~real.any(dim=2), 0.0)
        return features.view(batch, time, -1)
