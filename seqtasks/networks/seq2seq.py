"""The attentional recurrent encoder–decoder (Luong et al. 2015) as a plain ``nn.Module``.

source embedding → encoder (any library encoder; bidirectional allowed) → bridge (final hidden → the
decoder's initial state) → recurrent decoder stepping one subword at a time with attention over the
encoder outputs and input feeding (the previous attentional vector joins the next input). Teacher forcing
in training, optionally scheduled sampling (Bengio et al. 2015); greedy or batched beam search at inference
(:mod:`seqtasks.nn.decoding`).

Without input feeding (and without scheduled sampling) the decoder's inputs are the reference tokens alone,
so teacher forcing runs the whole target through the decoder's fused RNN in one call and attends with all
target positions at once; it computes what the per-step loop computes, padding positions included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from seqtasks.encoders.base import RecurrentEncoder, require_unidirectional
from seqtasks.nn.attention import Attention, AttentionKind
from seqtasks.nn.decoding import beam_search, beam_search_nbest, greedy_search

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>"]
"""The first ids of every vocabulary the network reads and writes (the codec's tokenizers are trained so)."""
PAD_INDEX, UNK_INDEX, BOS_INDEX, EOS_INDEX = range(4)

State = dict[str, Any]
"""The decoder state: ``rnn`` (batch-first tuple), ``feed``, ``memory``, ``keys``, ``mask``."""


class Seq2SeqNetwork(nn.Module):
    """Attentional encoder–decoder over subword ids.

    Args:
        source_vocab_size: source subword vocabulary (from the data).
        target_vocab_size: target subword vocabulary (from the data).
        pad_index: padding index of both vocabularies (from the data).
        encoder: the source encoder, built with the embedding width.
        decoder: the decoder's recurrent core, built with its input width; must be unidirectional.
        attention: ``additive`` (Bahdanau), ``dot`` or ``general`` (Luong).
        embedding_dim: width of both embeddings.
        attention_hidden_size: hidden width of the additive scorer.
        attentional_size: width of the attentional vector tanh(W [context; h]) that feeds the output layer
            (and the next input, with input feeding).
        input_feeding: feed the previous attentional vector into the decoder with the next token.
        bridge: ``linear`` (tanh of a linear map of the encoder's final hidden) or ``zero``.
        dropout: dropout on the attentional vector before the output layer.
        embedding_dropout: dropout on both embeddings.
        scheduled_sampling: in training, the probability of feeding the model's own previous prediction
            instead of the reference token; 0 is pure teacher forcing.
        max_length_ratio: decoding stops after ``max_length_ratio * source length + 10`` subwords.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        pad_index: int,
        encoder: Callable[[int], RecurrentEncoder],
        decoder: Callable[[int], RecurrentEncoder],
        attention: AttentionKind = "general",
        embedding_dim: int = 256,
        attention_hidden_size: int = 256,
        attentional_size: int = 512,
        input_feeding: bool = True,
        bridge: Literal["linear", "zero"] = "linear",
        dropout: float = 0.3,
        embedding_dropout: float = 0.1,
        scheduled_sampling: float = 0.0,
        max_length_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {scheduled_sampling}")
        if bridge not in ("linear", "zero"):
            raise ValueError(f"bridge must be linear or zero, got {bridge!r}")
        self.pad_index = pad_index
        self.input_feeding = input_feeding
        self.scheduled_sampling = scheduled_sampling
        self.max_length_ratio = max_length_ratio
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, padding_idx=pad_index)
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_dim, padding_idx=pad_index)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(embedding_dim)
        self.decoder = decoder(embedding_dim + (attentional_size if input_feeding else 0))
        require_unidirectional(self.decoder, "Seq2SeqNetwork's decoder")
        self.attentional_size = attentional_size
        self.attention = Attention(
            self.decoder.output_size, self.encoder.output_size, attention, attention_hidden_size
        )
        self.bridge = (
            nn.Linear(self.encoder.output_size, self.decoder.num_layers * self.decoder.hidden_size)
            if bridge == "linear"
            else None
        )
        self.combine = nn.Linear(self.encoder.output_size + self.decoder.output_size, attentional_size)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(attentional_size, target_vocab_size)

    # ---- encoder and one decoder step ---------------------------------------------------------------
    def encode(self, source: Tensor, lengths: Tensor) -> State:
        """Encoder outputs and the decoder's initial state, as a dict of batch-first tensors."""
        batch = source.size(0)
        mask = torch.arange(source.size(1), device=source.device).unsqueeze(0) < lengths.unsqueeze(1)
        embedded = self.embedding_dropout(self.source_embedding(source))
        encoded = self.encoder(embedded, lengths=lengths)
        layers, hidden = self.decoder.num_layers, self.decoder.hidden_size
        if self.bridge is not None:
            h0 = torch.tanh(self.bridge(encoded.final_hidden[-1])).view(batch, layers, hidden)
        else:
            h0 = encoded.outputs.new_zeros(batch, layers, hidden)
        rnn = (h0, torch.zeros_like(h0)) if self.decoder.is_lstm else (h0,)
        return {
            "rnn": rnn,  # batch first here; the decoder's (layers, B, H) form is made in attend
            "feed": encoded.outputs.new_zeros(batch, self.attentional_size),
            "memory": encoded.outputs,
            "keys": self.attention.prepare(encoded.outputs),
            "mask": mask,
        }

    @staticmethod
    def reorder(state: State, index: Tensor) -> State:
        """Select batch rows of every state tensor (beam expansion and reordering)."""
        return {
            key: tuple(s.index_select(0, index) for s in value)
            if isinstance(value, tuple)
            else value.index_select(0, index)
            for key, value in state.items()
        }

    def attend(self, tokens: Tensor, state: State) -> tuple[Tensor, State, Tensor]:
        """One decoder step up to the attentional vector ``(B, attentional_size)``; new state, weights."""
        embedded = self.embedding_dropout(self.target_embedding(tokens))
        inputs = torch.cat([embedded, state["feed"]], dim=-1) if self.input_feeding else embedded
        rnn_state = tuple(s.transpose(0, 1).contiguous() for s in state["rnn"])
        output, rnn_state = self.decoder.step(inputs, rnn_state)
        context, weights = self.attention(output, state["memory"], state["mask"], state["keys"])
        attentional = torch.tanh(self.combine(torch.cat([context, output], dim=-1)))
        new_state = {**state, "rnn": tuple(s.transpose(0, 1) for s in rnn_state), "feed": attentional}
        return attentional, new_state, weights

    def decode_step(self, tokens: Tensor, state: State) -> tuple[Tensor, State, Tensor]:
        """One decoder step: logits ``(B, V)``, the new state and the attention weights ``(B, S)``."""
        attentional, state, weights = self.attend(tokens, state)
        return self.output(self.dropout(attentional)), state, weights

    def forward(
        self, source: Tensor, source_lengths: Tensor, target_in: Tensor, *, step_loop: bool = False
    ) -> Tensor:
        """Logits ``(B, T, V)`` with teacher forcing (and scheduled sampling when training).

        Without input feeding or scheduled sampling the whole target runs at once (see the module
        docstring); ``step_loop`` forces the per-step loop instead (for tests and benchmarks).
        """
        state = self.encode(source, source_lengths)
        sampling = self.training and self.scheduled_sampling > 0
        if not (self.input_feeding or sampling or step_loop):
            return self._teacher_forced(target_in, state)
        outputs, previous = [], None
        for t in range(target_in.size(1)):
            tokens = target_in[:, t]
            if sampling and previous is not None:
                use_own = torch.rand(tokens.shape, device=tokens.device) < self.scheduled_sampling
                tokens = torch.where(use_own & (tokens != self.pad_index), previous, tokens)
            attentional, state, _ = self.attend(tokens, state)
            if sampling:
                with torch.no_grad():
                    previous = self.output(attentional).argmax(dim=-1)
            outputs.append(attentional)
        return self.output(self.dropout(torch.stack(outputs, dim=1)))

    def _teacher_forced(self, target_in: Tensor, state: State) -> Tensor:
        """All T steps of :meth:`attend` at once, when no step's input depends on an earlier output.

        The decoder runs over every position, padding included, as the step loop does (no lengths), so
        the logits match the loop's everywhere, not only where the loss looks. Embedding dropout draws one
        mask over ``(B, T, E)`` here instead of one per step: in training the random masks differ.
        """
        embedded = self.embedding_dropout(self.target_embedding(target_in))
        initial = tuple(s.transpose(0, 1).contiguous() for s in state["rnn"])
        output = self.decoder(embedded, initial_state=initial).outputs
        context, _ = self.attention(output, state["memory"], state["mask"], state["keys"])
        attentional = torch.tanh(self.combine(torch.cat([context, output], dim=-1)))
        return self.output(self.dropout(attentional))

    # ---- decoding -------------------------------------------------------------------------------------
    def max_lengths(self, source_lengths: Sequence[int], max_length: int | None = None) -> list[int]:
        """Each sentence's decoding limit, from its own length only (batching never changes it)."""
        limits = [int(self.max_length_ratio * n) + 10 for n in source_lengths]
        return [min(n, max_length) if max_length else n for n in limits]

    @torch.no_grad()
    def generate(
        self,
        source: Tensor,
        source_lengths: Tensor,
        beam: int = 1,
        max_length: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Token ids per sentence (no ``</s>``): greedy when ``beam`` is 1, else beam search.

        Runs in the mode the network is in: callers switch to eval mode (:func:`seqtasks.nn.modes.eval_mode`).
        """
        state = self.encode(source, source_lengths)
        limits = self.max_lengths(source_lengths.tolist(), max_length)
        if beam == 1:
            return greedy_search(self.decode_step, state, BOS_INDEX, EOS_INDEX, limits)[0]
        return beam_search(
            self.decode_step, self.reorder, state, BOS_INDEX, EOS_INDEX, limits, beam, length_penalty
        )[0]

    @torch.no_grad()
    def generate_nbest(
        self,
        source: Tensor,
        source_lengths: Tensor,
        beam: int = 1,
        nbest: int = 1,
        max_length: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[tuple[list[int], float]]]:
        """The ``nbest`` best ``(token ids, score)`` per sentence, best first, by beam search of ``beam``.

        The score is the length-normalised log-probability the search ranks by (see
        :func:`~seqtasks.nn.decoding.beam_search_nbest`); ``beam`` 1 gives the greedy translation with its
        score. Runs in the network's mode, like :meth:`generate`.
        """
        state = self.encode(source, source_lengths)
        limits = self.max_lengths(source_lengths.tolist(), max_length)
        return beam_search_nbest(
            self.decode_step, self.reorder, state, BOS_INDEX, EOS_INDEX, limits, beam, length_penalty, nbest
        )

    @torch.no_grad()
    def generate_with_attention(
        self, source: Tensor, source_lengths: Tensor
    ) -> tuple[list[list[int]], list[Tensor]]:
        """Greedy token ids per sentence and each one's attention ``(len + 1, S)`` (last row: ``</s>``)."""
        state = self.encode(source, source_lengths)
        limits = self.max_lengths(source_lengths.tolist())
        return greedy_search(self.decode_step, state, BOS_INDEX, EOS_INDEX, limits)
