"""A recurrent language model over a token stream (words or characters), regularised as AWD-LSTM.

:class:`LanguageModelNetwork` is token embedding → unidirectional library encoder (a stacked LSTM,
usually) → dropout → linear output, with the regularisation of Merity et al. (2017, "Regularizing and
Optimizing LSTM Language Models"), each a typed constructor argument:

* ``embedding_dropout``: drops whole word types (rows of the embedding matrix) per batch, the rest scaled
  up, so a dropped word is missing everywhere in the batch;
* locked (variational) dropout: one mask per sequence, shared over all time steps, on the embedding output
  (``input_dropout``) and the encoder output (``output_dropout``); between stacked layers the encoder's own
  ``dropout`` applies (an ordinary mask per position);
* DropConnect on the recurrent weights is the encoder's ``weight_drop``
  (:class:`~seqtasks.encoders.rnn.FusedRecurrentEncoder`);
* ``tie_weights``: the output layer's weight is the embedding matrix (Press & Wolf 2017; Inan et al.
  2017); when the encoder is wider than the embedding, a linear projection down to it comes first.

``forward(tokens, state)`` returns the logits and the new state, so a stream can be continued window by
window (truncated BPTT) and the result equals reading it in one go.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from seqtasks.encoders.base import RecurrentEncoder, State, require_unidirectional


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout on ``(B, T, D)`` with one mask per row ``(B, 1, D)``, the same at every time step."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1.0 - p) / (1.0 - p)
    return x * mask


def embedding_dropout(embedding: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Look ``tokens`` up in ``embedding`` with whole rows (word types) dropped with probability ``p``."""
    weight = embedding.weight
    if training and p > 0.0:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1.0 - p) / (1.0 - p)
        weight = weight * mask
    return nn.functional.embedding(tokens, weight, embedding.padding_idx)


def _check_probability(**values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")


class LanguageModelNetwork(nn.Module):
    """Next-token prediction over a token stream, with the hidden state carried between calls.

    Args:
        vocab_size: number of token types (linked from the datamodule).
        encoder: a unidirectional recurrent encoder, built with ``embedding_dim``.
        embedding_dim: token embedding width.
        embedding_dropout: probability of dropping a whole word type (embedding row) per batch.
        input_dropout: locked dropout on the embedding output (one mask per sequence).
        output_dropout: locked dropout on the encoder output, before the output layer.
        tie_weights: the output layer uses the embedding matrix; a projection from the encoder's width to
            ``embedding_dim`` comes first when they differ.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder: Callable[[int], RecurrentEncoder],
        embedding_dim: int = 400,
        embedding_dropout: float = 0.1,
        input_dropout: float = 0.65,
        output_dropout: float = 0.4,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
        _check_probability(
            embedding_dropout=embedding_dropout, input_dropout=input_dropout, output_dropout=output_dropout
        )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.embedding_dropout = embedding_dropout
        self.input_dropout = input_dropout
        self.output_dropout = output_dropout
        self.tie_weights = tie_weights
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.encoder = encoder(embedding_dim)
        require_unidirectional(self.encoder, type(self).__name__)
        if self.encoder.input_size != embedding_dim:
            raise ValueError(
                f"encoder input_size {self.encoder.input_size} does not match embedding_dim {embedding_dim}"
            )
        width = self.encoder.output_size
        if tie_weights and width != embedding_dim:
            self.projection: nn.Module = nn.Linear(width, embedding_dim)
            width = embedding_dim
        else:
            self.projection = nn.Identity()
        self.head = nn.Linear(width, vocab_size)
        if tie_weights:
            self.head.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Logits ``(B, T, vocab_size)`` of each next token, and the state after the last one.

        Args:
            tokens: ``(B, T)`` token ids, every position real (a window of ``B`` parallel streams).
            state: the state a previous window ended with (zeros when None).
        """
        embedded = embedding_dropout(self.embedding, tokens, self.embedding_dropout, self.training)
        embedded = locked_dropout(embedded, self.input_dropout, self.training)
        encoded = self.encoder(embedded, initial_state=state, need_state=True)
        outputs = locked_dropout(encoded.outputs, self.output_dropout, self.training)
        return self.head(self.projection(outputs)), encoded.state

    def nll(self, tokens: Tensor, targets: Tensor, state: State | None = None) -> tuple[Tensor, int, State]:
        """``(NLL summed over the targets (nats), number of targets, the new state)``."""
        logits, new_state = self(tokens, state)
        nll_sum = nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"
        )
        return nll_sum, targets.numel(), new_state

    def initial_state(self, batch_size: int) -> State:
        weight = self.embedding.weight
        return self.encoder.initial_state(batch_size, weight.device, weight.dtype)


def detach_state(state: State | None) -> State | None:
    """The state without its graph: truncated BPTT carries the values, not the gradient path."""
    return None if state is None else tuple(s.detach() for s in state)


__all__ = ["LanguageModelNetwork", "detach_state", "embedding_dropout", "locked_dropout"]
