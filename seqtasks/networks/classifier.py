"""The sequence classifier network: embedding → recurrent encoder → pooler → dropout → linear head.

A plain ``nn.Module`` (no Lightning): :class:`~seqtasks.tasks.classification.SequenceClassifier` trains
it, :class:`~seqtasks.inference.classification.Classifier` runs it, and a plain PyTorch loop, a benchmark
or the gradient probe can use it directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import Tensor, nn

from seqtasks.encoders.base import RecurrentEncoder
from seqtasks.nn.poolers import MaxPooler, Pooler

_LAYER = re.compile(r"_l(\d+)(?:_reverse)?$")


class ClassifierNetwork(nn.Module):
    """Logits of one class per sequence.

    Args:
        vocab_size: size of the word vocabulary (from the data).
        num_labels: number of classes (from the data).
        pad_index: padding index of the vocabulary (from the data).
        encoder: the recurrent encoder, built with ``embedding_dim``.
        pooler: sequence → vector, built with the encoder's output size; max pooling when None.
        embedding_dim: word embedding width.
        embedding_dropout: dropout on the word embeddings.
        dropout: dropout on the pooled vector, before the head.
    """

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        pad_index: int,
        encoder: Callable[[int], RecurrentEncoder],
        pooler: Callable[[int], Pooler] | None = None,
        embedding_dim: int = 128,
        embedding_dropout: float = 0.2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"a classifier needs at least two classes, got num_labels={num_labels}")
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(embedding_dim)
        if self.encoder.input_size != embedding_dim:
            raise ValueError(
                f"encoder input_size {self.encoder.input_size} does not match embedding_dim {embedding_dim}"
            )
        self.pooler = (pooler or MaxPooler)(self.encoder.output_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.pooler.output_size, num_labels)

    def mask(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``(B, T)``: True at the real (not padding) positions of a padded batch."""
        within = torch.arange(tokens.size(1), device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)
        return (tokens != self.pad_index) & within  # not in place (&=): ONNX export refuses it

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, num_labels)`` of a padded batch of token ids ``(B, T)`` with their ``lengths``."""
        mask = self.mask(tokens, lengths)
        embedded = self.embedding_dropout(self.embedding(tokens))
        encoded = self.encoder(embedded, lengths=lengths)
        return self.head(self.dropout(self.pooler(encoded, mask)))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters by depth, bottom to top: the embedding, each encoder layer (both directions
        together; parameters named ``…_l<k>``), then pooler and head. Discriminative learning rates and
        gradual unfreezing (ULMFiT) work on these groups."""
        layers: dict[int, list[nn.Parameter]] = {}
        unlayered: list[nn.Parameter] = []
        for name, parameter in self.encoder.named_parameters():
            found = _LAYER.search(name)
            (layers.setdefault(int(found.group(1)), []) if found else unlayered).append(parameter)
        encoder = [layers[k] for k in sorted(layers)]
        if unlayered:  # an encoder without per-layer names: one group
            encoder = [[p for group in encoder for p in group] + unlayered]
        top = [*self.pooler.parameters(), *self.head.parameters()]
        return [list(self.embedding.parameters()), *encoder, top]

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy of ``logits`` ``(B, num_labels)`` against class indices ``(B,)``."""
        return nn.functional.cross_entropy(logits, labels)
