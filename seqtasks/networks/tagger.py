"""The token tagger's network: word ⊕ character ⊕ casing features → recurrent encoder → head → CRF or softmax.

word embedding (+ word dropout) ⊕ character CNN (Ma & Hovy 2016) ⊕ casing embedding (Reimers & Gurevych
2017) [⊕ contextual string embeddings (Akbik et al. 2018), which read the raw tokens] → dropout →
recurrent encoder → dropout → linear → a linear-chain CRF (Viterbi decoding) or a per-token softmax.
A plain ``nn.Module``: :class:`seqtasks.tasks.TokenTagger` trains it,
:class:`seqtasks.inference.tagging.Tagger` runs it, a benchmark's plain loop uses it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from seqtasks.encoders.base import RecurrentEncoder
from seqtasks.nn import contextual as contextual_embeddings  # a module: it imports the networks back
from seqtasks.nn.chars import CASINGS, CharCNN
from seqtasks.nn.crf import CRF

UNK_INDEX = 1
"""The unknown word's id, what word dropout replaces a word by."""


class TaggerNetwork(nn.Module):
    """Per-token tag scores of a sentence, their loss and their decoding.

    Args:
        vocab_size: size of the word vocabulary (from the data).
        char_vocab_size: size of the character vocabulary (from the data).
        labels: tag names, IOB2, in tag-id order (from the data); must include ``O``.
        pad_index: padding index of the word and character vocabularies (from the data).
        encoder: the recurrent encoder, built with the concatenated feature width.
        word_dim: word embedding width.
        char_dim: character embedding width (0: no character features).
        char_filters: character CNN filters (the width of a word's character feature).
        char_kernel: characters each filter sees.
        casing_dim: casing embedding width (0: no casing feature).
        word_dropout: training-time probability of replacing a word by the unknown word, so its
            embedding learns to stand for words never seen in training.
        dropout: dropout on the concatenated features and on the encoder's outputs.
        crf: a CRF layer (Viterbi decoding); false gives a per-token softmax.
        constrain_bio: forbid transitions IOB2 never contains in the CRF (``O → I-X``).
        contextual: contextual string embeddings from a forward and a backward character language model
            (:class:`~seqtasks.nn.contextual.ContextualStringEmbeddings`), concatenated with the other
            features; the network then needs each sentence's raw ``tokens``. Their LM weights are part of
            this network's state, so a checkpoint loads without the LM checkpoints.
    """

    def __init__(
        self,
        vocab_size: int,
        char_vocab_size: int,
        labels: Sequence[str],
        pad_index: int,
        encoder: Callable[[int], RecurrentEncoder],
        word_dim: int = 100,
        char_dim: int = 30,
        char_filters: int = 50,
        char_kernel: int = 3,
        casing_dim: int = 10,
        word_dropout: float = 0.05,
        dropout: float = 0.5,
        crf: bool = True,
        constrain_bio: bool = True,
        contextual: Callable[[], contextual_embeddings.ContextualStringEmbeddings] | None = None,
    ) -> None:
        super().__init__()
        labels = list(labels)
        if "O" not in labels or len(labels) < 2:
            raise ValueError(f"labels must include 'O' and at least one entity tag, got {labels}")
        if not 0.0 <= word_dropout < 1.0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"word_dropout and dropout must be in [0, 1), got {word_dropout}, {dropout}")
        self.labels = labels
        self.pad_index = pad_index
        self.word_dropout = word_dropout
        # built in this order (the order of the pre-network task): seeded runs start from the same weights
        self.embedding = nn.Embedding(vocab_size, word_dim, padding_idx=pad_index)
        width = word_dim
        self.chars = None
        if char_dim > 0:
            self.chars = CharCNN(char_vocab_size, char_dim, char_filters, char_kernel, pad_index=pad_index)
            width += self.chars.output_size
        self.casing = None
        if casing_dim > 0:
            self.casing = nn.Embedding(len(CASINGS), casing_dim, padding_idx=0)
            width += casing_dim
        self.contextual = None
        if contextual is not None:
            built = contextual_embeddings.ContextualStringEmbeddings
            self.contextual = contextual if isinstance(contextual, built) else contextual()
            width += self.contextual.output_size
        self.feature_dropout = nn.Dropout(dropout)
        self.encoder = encoder(width)
        if self.encoder.input_size != width:
            raise ValueError(
                f"encoder input_size {self.encoder.input_size} does not match the feature width {width} "
                f"(word_dim {word_dim} + char_filters + casing_dim + contextual output_size)"
            )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, len(labels))
        self.crf = CRF(len(labels), labels, constrain_bio) if crf else None

    def forward(
        self,
        words: Tensor,
        chars: Tensor,
        casing: Tensor,
        lengths: Tensor,
        tokens: Sequence[Sequence[str]] | None = None,
    ) -> Tensor:
        """Per-token tag scores (emissions) ``(B, T, num_tags)`` of ``(B, T)`` words, ``(B, T, L)`` chars;
        ``tokens`` (each sentence's raw tokens) are needed, and only read, with contextual embeddings."""
        if self.training and self.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.word_dropout
            words = words.masked_fill(drop & (words != self.pad_index), UNK_INDEX)
        features = [self.embedding(words)]
        if self.chars is not None:
            features.append(self.chars(chars))
        if self.casing is not None:
            features.append(self.casing(casing))
        if self.contextual is not None:
            if tokens is None:
                raise ValueError(
                    "this tagger has contextual string embeddings: give each sentence's raw tokens"
                )
            features.append(self.contextual(tokens, words.size(1)).to(features[0].dtype))
        inputs = self.feature_dropout(torch.cat(features, dim=-1))
        encoded = self.encoder(inputs, lengths=lengths)
        return self.head(self.dropout(encoded.outputs))

    @staticmethod
    def mask(lengths: Tensor, time: int) -> Tensor:
        """``(B, time)`` true at each row's real positions."""
        return torch.arange(time, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)

    def loss(self, scores: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """CRF negative log-likelihood or token cross-entropy, both per sentence averaged over the batch."""
        if self.crf is not None:
            return self.crf(scores, tags, mask, reduction="mean")
        token_loss = nn.functional.cross_entropy(scores.transpose(1, 2), tags, reduction="none")
        return (token_loss * mask).sum() / mask.size(0)

    def decode(self, scores: Tensor, mask: Tensor) -> Tensor:
        """The best tag ids ``(B, T)`` (Viterbi with a CRF, else the argmax); padded positions hold 0."""
        if self.crf is not None:
            return self.crf.decode(scores, mask)
        return scores.argmax(dim=-1).masked_fill(~mask, 0)

    def probabilities(self, scores: Tensor, mask: Tensor) -> Tensor:
        """Per-token tag probabilities ``(B, T, num_tags)``: CRF marginals (forward–backward) with a CRF,
        else the softmax of the scores; padded positions hold 0."""
        if self.crf is not None:
            return self.crf.marginals(scores, mask)
        return torch.softmax(scores, dim=-1).masked_fill(~mask.unsqueeze(2), 0.0)

    def tag_batch_with_confidence(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Decoded tag ids ``(B, T)`` and the probability of each decoded tag ``(B, T)`` (0 on padding)."""
        scores = self(batch["words"], batch["chars"], batch["casing"], batch["lengths"], batch.get("tokens"))
        mask = self.mask(batch["lengths"], scores.size(1))
        paths = self.decode(scores, mask)
        confidence = self.probabilities(scores, mask).gather(2, paths.unsqueeze(2)).squeeze(2)
        return paths, confidence

    def tag_batch(self, batch: dict[str, Tensor]) -> Tensor:
        """Decoded tag ids ``(B, T)`` of a collated batch (``words``, ``chars``, ``casing``, ``lengths``, and
        ``tokens`` with contextual embeddings)."""
        scores = self(batch["words"], batch["chars"], batch["casing"], batch["lengths"], batch.get("tokens"))
        return self.decode(scores, self.mask(batch["lengths"], scores.size(1)))
