"""Sequence to sequence: attentional recurrent encoder–decoder for translation (English → Hindi).

source embedding → encoder (any library encoder; bidirectional allowed) → bridge (final hidden → the
decoder's initial state) → recurrent decoder stepping one subword at a time with attention over the
encoder outputs and input feeding (Luong et al. 2015: the previous attentional vector joins the next input).
Teacher forcing in training, optionally scheduled sampling; greedy or batched beam search at inference.
Validation decodes a subset greedily for sacreBLEU/chrF and logs attention maps of a few sentences; the
test stage decodes the whole set and prints the sacreBLEU signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torchmetrics
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from seqtasks.data.translation import BOS_INDEX, EOS_INDEX, load_tokenizer
from seqtasks.encoders.base import RecurrentEncoder, require_unidirectional
from seqtasks.metrics import CorpusBLEU, CorpusChrF
from seqtasks.nn.attention import Attention, AttentionKind
from seqtasks.nn.decoding import beam_search, greedy_search
from seqtasks.plots import log_figure, plot_label
from seqtasks.tasks.base import SeqTask

MAP_MIN_LENGTH = 8
"""Source subwords a sentence needs before its attention map is worth drawing."""


class Seq2SeqTranslator(SeqTask):
    """Attentional encoder–decoder.

    Args:
        source_vocab_size: source subword vocabulary (linked from the datamodule).
        target_vocab_size: target subword vocabulary (linked from the datamodule).
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
        label_smoothing: cross-entropy label smoothing.
        scheduled_sampling: in training, the probability of feeding the model's own previous prediction
            instead of the reference token (Bengio et al. 2015); 0 is pure teacher forcing.
        max_length_ratio: decoding stops after ``max_length_ratio * source length + 10`` subwords.
        val_bleu_sentences: validation sentences decoded (greedy) for BLEU/chrF each epoch; 0 skips.
        attention_maps: validation sentences whose attention maps are logged as images each epoch.
        pad_index: padding index (linked from the datamodule).
        lr: AdamW learning rate.
        step_decay: from epoch ``step_decay_start`` on, the rate is multiplied by this factor each epoch.
        step_decay_start: first epoch (0-based) at a decayed rate; None keeps ``lr`` constant.
        weight_decay: AdamW weight decay.
        init_from: checkpoint to fine-tune from (weights only).
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
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
        label_smoothing: float = 0.1,
        scheduled_sampling: float = 0.0,
        max_length_ratio: float = 2.0,
        val_bleu_sentences: int = 300,
        attention_maps: int = 3,
        pad_index: int = 0,
        lr: float = 1e-3,
        step_decay: float = 0.5,
        step_decay_start: int | None = None,
        weight_decay: float = 0.0,
        init_from: str | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, init_from, step_decay, step_decay_start)
        if not 0.0 <= scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {scheduled_sampling}")
        if bridge not in ("linear", "zero"):
            raise ValueError(f"bridge must be linear or zero, got {bridge!r}")
        self.save_hyperparameters()
        self.pad_index = pad_index
        self.input_feeding = input_feeding
        self.scheduled_sampling = scheduled_sampling
        self.max_length_ratio = max_length_ratio
        self.val_bleu_sentences = val_bleu_sentences
        self.attention_maps = attention_maps
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, padding_idx=pad_index)
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_dim, padding_idx=pad_index)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(embedding_dim)
        self.decoder = decoder(embedding_dim + (attentional_size if input_feeding else 0))
        require_unidirectional(self.decoder, "Seq2SeqTranslator's decoder")
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
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=pad_index, label_smoothing=label_smoothing)
        self.train_loss = torchmetrics.MeanMetric()
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()
        self.val_bleu, self.test_bleu = CorpusBLEU(), CorpusBLEU()
        self.val_chrf, self.test_chrf = CorpusChrF(), CorpusChrF()
        self._decoded = 0
        self._map_batch: dict[str, Any] | None = None
        self._map_batch_final = False
        self._test_pairs: list[tuple[int, str, str]] = []
        self.test_report: dict[str, Any] | None = None  # rank 0's sacreBLEU report of the last test

    # ---- the network --------------------------------------------------------------------------------
    def encode(self, source: Tensor, lengths: Tensor) -> dict[str, Any]:
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
            "rnn": rnn,  # batch first here; the decoder's (layers, B, H) form is made in decode_step
            "feed": encoded.outputs.new_zeros(batch, self.attentional_size),
            "memory": encoded.outputs,
            "keys": self.attention.prepare(encoded.outputs),
            "mask": mask,
        }

    @staticmethod
    def reorder(state: dict[str, Any], index: Tensor) -> dict[str, Any]:
        """Select batch rows of every state tensor (beam expansion and reordering)."""
        return {
            key: tuple(s.index_select(0, index) for s in value)
            if isinstance(value, tuple)
            else value.index_select(0, index)
            for key, value in state.items()
        }

    def decode_step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any], Tensor]:
        """One decoder step: logits ``(B, V)``, the new state and the attention weights ``(B, S)``."""
        attentional, state, weights = self._attend_step(tokens, state)
        return self.output(self.dropout(attentional)), state, weights

    def _attend_step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any], Tensor]:
        embedded = self.embedding_dropout(self.target_embedding(tokens))
        inputs = torch.cat([embedded, state["feed"]], dim=-1) if self.input_feeding else embedded
        rnn_state = tuple(s.transpose(0, 1).contiguous() for s in state["rnn"])
        output, rnn_state = self.decoder.step(inputs, rnn_state)
        context, weights = self.attention(output, state["memory"], state["mask"], state["keys"])
        attentional = torch.tanh(self.combine(torch.cat([context, output], dim=-1)))
        new_state = {**state, "rnn": tuple(s.transpose(0, 1) for s in rnn_state), "feed": attentional}
        return attentional, new_state, weights

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor) -> Tensor:
        """Logits ``(B, T, V)`` with teacher forcing (and scheduled sampling when training)."""
        state = self.encode(source, source_lengths)
        sampling = self.training and self.scheduled_sampling > 0
        outputs, previous = [], None
        for t in range(target_in.size(1)):
            tokens = target_in[:, t]
            if sampling and previous is not None:
                use_own = torch.rand(tokens.shape, device=tokens.device) < self.scheduled_sampling
                tokens = torch.where(use_own & (tokens != self.pad_index), previous, tokens)
            attentional, state, _ = self._attend_step(tokens, state)
            if sampling:
                with torch.no_grad():
                    previous = self.output(attentional).argmax(dim=-1)
            outputs.append(attentional)
        return self.output(self.dropout(torch.stack(outputs, dim=1)))

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
        beam_size: int = 1,
        max_length: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Token ids per sentence: greedy when ``beam_size`` is 1, else beam search."""
        state = self.encode(source, source_lengths)
        limits = self.max_lengths(source_lengths.tolist(), max_length)
        if beam_size == 1:
            return greedy_search(self.decode_step, state, BOS_INDEX, EOS_INDEX, limits)[0]
        return beam_search(
            self.decode_step, self.reorder, state, BOS_INDEX, EOS_INDEX, limits, beam_size, length_penalty
        )[0]

    def _tokenizers(self) -> tuple[Any, Any]:
        if getattr(self, "_tokenizer_cache", None) is None:
            self._tokenizer_cache = (
                load_tokenizer(self.artefacts["source_tokenizer"]),
                load_tokenizer(self.artefacts["target_tokenizer"]),
            )
        return self._tokenizer_cache

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._tokenizers()[1].decode(list(ids), skip_special_tokens=True)

    @torch.no_grad()
    def translate(
        self,
        texts: Sequence[str],
        beam_size: int = 1,
        max_length: int | None = None,
        batch_size: int = 64,
        length_penalty: float = 1.0,
    ) -> list[str]:
        """Translate plain texts with the checkpoint alone (tokenizers from its artefacts)."""
        source_tokenizer = self._tokenizers()[0]
        max_source = self.artefacts.get("max_source_length", 100)
        was_training = self.training
        self.eval()
        try:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together
            results: list[str] = [""] * len(texts)
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                ids = [[*source_tokenizer.encode(texts[i]).ids[: max_source - 1], EOS_INDEX] for i in rows]
                lengths = torch.tensor([len(x) for x in ids])
                source = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
                for r, seq in enumerate(ids):
                    source[r, : len(seq)] = torch.tensor(seq)
                out = self.generate(
                    source.to(self.device), lengths.to(self.device), beam_size, max_length, length_penalty
                )
                for i, tokens in zip(rows, out, strict=True):
                    results[i] = self.detokenize(tokens)
        finally:
            self.train(was_training)
        return results

    # ---- training and evaluation --------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any], stage: str) -> Tensor:
        logits = self(batch["source"], batch["source_lengths"], batch["target_in"])
        loss = self.loss_fn(logits.reshape(-1, logits.size(-1)), batch["target_out"].reshape(-1))
        tokens = int((batch["target_out"] != self.pad_index).sum())
        mean = getattr(self, f"{stage}_loss")
        mean.update(loss.detach(), weight=tokens)
        self.log(f"{stage}/loss", mean, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self._loss(batch, "train")
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _decode_batch(self, batch: dict[str, Any]) -> list[str]:
        ids = self.generate(batch["source"], batch["source_lengths"])
        return [self.detokenize(x) for x in ids]

    def on_validation_epoch_start(self) -> None:
        self._decoded = 0

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._loss(batch, "val")
        # the sentences whose attention maps are drawn: the first validation batch whose sentences have
        # at least MAP_MIN_LENGTH subwords (batches come sorted by length; the first are one-word captions),
        # else the first batch; once chosen, the same sentences every epoch
        lengths = batch["source_lengths"]
        long_enough = int(lengths.min()) >= MAP_MIN_LENGTH
        if self.attention_maps > 0 and not self._map_batch_final and (self._map_batch is None or long_enough):
            n = self.attention_maps
            self._map_batch = {"source": batch["source"][:n].cpu(), "source_lengths": lengths[:n].cpu()}
            self._map_batch_final = long_enough
        if self._decoded < self.val_bleu_sentences:
            hyps = self._decode_batch(batch)
            refs = [[r] for r in batch["target_text"]]
            self.val_bleu.update(hyps, refs)
            self.val_chrf.update(hyps, refs)
            self._decoded += len(hyps)
            self.log("val/bleu", self.val_bleu, on_step=False, on_epoch=True, prog_bar=True)
            self.log("val/chrf", self.val_chrf, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or self._map_batch is None:
            return
        source = self._map_batch["source"].to(self.device)
        lengths = self._map_batch["source_lengths"].to(self.device)
        state = self.encode(source, lengths)
        limits = self.max_lengths(lengths.tolist())
        ids, maps = greedy_search(self.decode_step, state, BOS_INDEX, EOS_INDEX, limits)
        src_tok, tgt_tok = self._tokenizers()
        for row, (out, weights) in enumerate(zip(ids, maps, strict=True)):
            n = int(lengths[row])
            src_labels = [src_tok.id_to_token(int(i)) for i in source[row, :n]]
            tgt_labels = [tgt_tok.id_to_token(i) for i in out] + ["</s>"]
            figure = attention_figure(weights[:, :n].cpu(), src_labels, tgt_labels[: weights.size(0)])
            log_figure(self, f"val/attention_{row}", figure)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._loss(batch, "test")
        hyps = self._decode_batch(batch)
        refs = [[r] for r in batch["target_text"]]
        self.test_bleu.update(hyps, refs)
        self.test_chrf.update(hyps, refs)
        self._test_pairs.extend(zip(batch["indices"].tolist(), hyps, batch["target_text"], strict=True))
        self.log("test/bleu", self.test_bleu, on_step=False, on_epoch=True)
        self.log("test/chrf", self.test_chrf, on_step=False, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        pairs, self._test_pairs = self._test_pairs, []
        world = self.trainer.world_size
        if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            shares: list[Any] = [None] * world
            torch.distributed.all_gather_object(shares, pairs)
            pairs = [pair for share in shares for pair in share]
        if pairs and self.trainer.is_global_zero:
            hyps, refs = gathered_corpus(pairs)
            report = corpus_scores(hyps, refs)
            self.test_report = {"sentences": len(hyps), "hypotheses": hyps, **report}
            rank_zero_info(f"test ({len(hyps)} sentences, all ranks, greedy): {report['line']}")

    # ---- artefacts ----------------------------------------------------------------------------------
    def collect_artefacts(self, datamodule: Any) -> dict[str, Any]:
        return {
            "source_tokenizer": datamodule.prepared["source_tokenizer"],
            "target_tokenizer": datamodule.prepared["target_tokenizer"],
            "source_language": datamodule.source_language,
            "target_language": datamodule.target_language,
            "max_source_length": datamodule.max_source_length,
        }


def gathered_corpus(pairs: list[tuple[int, str, str]]) -> tuple[list[str], list[str]]:
    """(row index, hypothesis, reference) triples from every rank → the test set once, in row order.

    A distributed sampler pads the ranks' shares to equal length by repeating rows; the row index keeps
    each sentence once, so corpus BLEU is over exactly the test set.
    """
    unique = {index: (hyp, ref) for index, hyp, ref in pairs}
    ordered = [unique[index] for index in sorted(unique)]
    return [hyp for hyp, _ in ordered], [ref for _, ref in ordered]


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """sacreBLEU BLEU and chrF of detokenised text, with their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    line = f"BLEU {b.score:.2f} chrF {c.score:.2f} | {bleu.get_signature()} | {chrf.get_signature()}"
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()), "line": line}


def attention_figure(weights: Tensor, source: list[str], target: list[str]):
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source_labels, target_labels = [plot_label(t) for t in source], [plot_label(t) for t in target]
    fig, ax = plt.subplots(figsize=(1.5 + 0.4 * len(source), 1.2 + 0.35 * len(target)))
    ax.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source)), source_labels, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target_labels)
    ax.set_xlabel("source" + (" (transliterated)" if source_labels != list(source) else ""))
    ax.set_ylabel("output" + (" (transliterated)" if target_labels != list(target) else ""))
    with warnings.catch_warnings():  # glyphs of other scripts may still be missing
        warnings.simplefilter("ignore")
        fig.tight_layout()
    return fig
