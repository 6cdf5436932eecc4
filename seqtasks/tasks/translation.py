"""Training the attentional encoder–decoder (:class:`~seqtasks.networks.seq2seq.Seq2SeqNetwork`) for
translation (English → Hindi).

Label-smoothed cross-entropy under teacher forcing (the network does scheduled sampling when asked).
Validation decodes a subset greedily for sacreBLEU/chrF and logs attention maps of a few sentences as images;
the test stage decodes the whole set, gathers every rank's translations and prints the sacreBLEU signature.
Decoding goes through :class:`~seqtasks.inference.translation.Translator`, as ``seqtasks translate`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchmetrics
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from seqtasks.attention_maps import attention_figure
from seqtasks.checkpoints import legacy_network, legacy_optimizer
from seqtasks.data.batching import real_rows
from seqtasks.inference.translation import Translator, corpus_scores, translation_record
from seqtasks.inference.writers import RecordWriter
from seqtasks.metrics import CorpusBLEU, CorpusChrF
from seqtasks.networks.seq2seq import Seq2SeqNetwork
from seqtasks.plots import log_figure
from seqtasks.tasks.base import SeqTask

MAP_MIN_LENGTH = 8
"""Source subwords a sentence needs before its attention map is worth drawing."""

NETWORK_SETTINGS = [
    "encoder",
    "decoder",
    "attention",
    "embedding_dim",
    "attention_hidden_size",
    "attentional_size",
    "input_feeding",
    "bridge",
    "dropout",
    "embedding_dropout",
    "scheduled_sampling",
    "max_length_ratio",
]
"""The settings a format-1 checkpoint kept on the task that are now the network's."""


class Seq2SeqTranslator(SeqTask):
    """Trains a seq2seq network on sentence pairs.

    Args:
        network: the network, built with ``(source_vocab_size, target_vocab_size, pad_index)``.
        source_vocab_size: source subword vocabulary (linked from the datamodule).
        target_vocab_size: target subword vocabulary (linked from the datamodule).
        pad_index: padding index (linked from the datamodule).
        label_smoothing: cross-entropy label smoothing.
        val_bleu_sentences: validation sentences decoded (greedy) for BLEU/chrF each epoch; 0 skips.
        attention_maps: validation sentences whose attention maps are logged as images each epoch.
        optimizer: see :class:`SeqTask`.
        lr_scheduler: see :class:`SeqTask`.
        init_from: checkpoint to fine-tune from (weights only).
        init_from_strict: refuse an ``init_from`` checkpoint of another task or one nothing loads from
            (set false to allow it).
        predict_beam: beam size of the predict stage (``seqtasks predict``; 1: greedy). A predict-time
            setting: ``--model.init_args.predict_beam 5`` on the predict command line; training ignores it.
        predict_nbest: hypotheses per sentence the predict stage keeps (at most ``predict_beam``); they
            appear in a JSONL prediction file (``--predictions OUT.jsonl``).
    """

    def __init__(
        self,
        network: Callable[[int, int, int], Seq2SeqNetwork],
        source_vocab_size: int,
        target_vocab_size: int,
        pad_index: int = 0,
        label_smoothing: float = 0.1,
        val_bleu_sentences: int = 300,
        attention_maps: int = 3,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
        predict_beam: int = 1,
        predict_nbest: int = 1,
        init_from_strict: bool = True,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, init_from, init_from_strict)
        if not 1 <= predict_nbest <= predict_beam:
            raise ValueError(
                f"predict_nbest must be between 1 and predict_beam ({predict_beam}), got {predict_nbest}"
            )
        self.save_hyperparameters()
        self.predict_beam = predict_beam
        self.predict_nbest = predict_nbest
        self.network = self.build_network(network, source_vocab_size, target_vocab_size, pad_index)
        self.pad_index = pad_index
        self.val_bleu_sentences = val_bleu_sentences
        self.attention_maps = attention_maps
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=pad_index, label_smoothing=label_smoothing)
        self.train_loss = torchmetrics.MeanMetric()
        # a NaN batch makes the epoch's mean NaN instead of being dropped (nan_strategy NaN keeps the weights;
        # torchmetrics' 'disable' would ignore them)
        self.val_loss = torchmetrics.MeanMetric(nan_strategy=float("nan"))
        self.test_loss = torchmetrics.MeanMetric(nan_strategy=float("nan"))
        self.val_bleu, self.test_bleu = CorpusBLEU(), CorpusBLEU()
        self.val_chrf, self.test_chrf = CorpusChrF(), CorpusChrF()
        self._translator: Translator | None = None
        self._translator_artefacts: dict[str, Any] | None = None
        self._decoded = 0
        self._map_batch: dict[str, Any] | None = None
        self._map_batch_final = False
        self._test_pairs: list[tuple[int, str, str]] = []
        self.test_report: dict[str, Any] | None = None  # rank 0's sacreBLEU report of the last test

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor) -> Tensor:
        """Logits ``(B, T, V)`` under teacher forcing (see :meth:`Seq2SeqNetwork.forward`)."""
        return self.network(source, source_lengths, target_in)

    @property
    def translator(self) -> Translator:
        """The inference API over this task's network and the codec in its artefacts."""
        if self._translator is None or self._translator_artefacts is not self.artefacts:
            self._translator = Translator.from_task(self)
            self._translator_artefacts = self.artefacts  # a checkpoint loaded later brings its own
        return self._translator

    # ---- training and evaluation --------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any], stage: str, log: bool = True) -> Tensor:
        logits = self(batch["source"], batch["source_lengths"], batch["target_in"])
        loss = self.loss_fn(logits.reshape(-1, logits.size(-1)), batch["target_out"].reshape(-1))
        tokens = int((batch["target_out"] != self.pad_index).sum())
        mean = getattr(self, f"{stage}_loss")
        mean.update(loss.detach(), weight=tokens)
        if log:
            self.log(f"{stage}/loss", mean, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self._loss(batch, "train", self.logs_epoch_metrics())
        if self.logs_this_step(batch_idx):
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._decoded = 0

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # only the batch's real rows count (under DDP, rows repeated to keep the ranks in step are left out)
        rows = real_rows(batch)
        if rows is None:  # nothing but repeated rows: log (every rank logs alike), count nothing
            self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
            if self._decoded > 0:
                self.log("val/bleu", self.val_bleu, on_step=False, on_epoch=True, prog_bar=True)
                self.log("val/chrf", self.val_chrf, on_step=False, on_epoch=True)
            return
        batch = rows
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
            hyps = self.translator.translate_batch(batch["source"], lengths)
            refs = [[r] for r in batch["target_text"]]
            self.val_bleu.update(hyps, refs)
            self.val_chrf.update(hyps, refs)
            self._decoded += len(hyps)
            self.log("val/bleu", self.val_bleu, on_step=False, on_epoch=True, prog_bar=True)
            self.log("val/chrf", self.val_chrf, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or self._map_batch is None:
            return
        maps = self.translator.attention_maps(self._map_batch["source"], self._map_batch["source_lengths"])
        for row, (weights, source, target) in enumerate(maps):
            log_figure(self, f"val/attention_{row}", attention_figure(weights, source, target))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # only the batch's real rows count (under DDP, rows repeated to keep the ranks in step are left out)
        rows = real_rows(batch)
        if rows is None:  # nothing but repeated rows: log (every rank logs alike), count nothing
            self.log("test/loss", self.test_loss, on_step=False, on_epoch=True, prog_bar=True)
            self.log("test/bleu", self.test_bleu, on_step=False, on_epoch=True)
            self.log("test/chrf", self.test_chrf, on_step=False, on_epoch=True)
            return
        batch = rows
        self._loss(batch, "test")
        hyps = self.translator.translate_batch(batch["source"], batch["source_lengths"])
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
            # keyed by (row index, rank): a streamed split's indices count each rank's rows from 0
            pairs = [((i, rank), hyp, ref) for rank, share in enumerate(shares) for i, hyp, ref in share]
        if pairs and self.trainer.is_global_zero:
            hyps, refs = gathered_corpus(pairs)
            report = corpus_scores(hyps, refs)
            self.test_report = {"sentences": len(hyps), "hypotheses": hyps, **report}
            rank_zero_info(f"test ({len(hyps)} sentences, all ranks, greedy): {report['line']}")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """One record per sentence, ``{"id", "translation", "score", "nbest"}`` as ``translate --format
        jsonl`` writes it (``predict_beam``, ``predict_nbest``); the id is the row number from 1."""
        hyps = self.translator.translate_batch_nbest(
            batch["source"], batch["source_lengths"], self.predict_beam, self.predict_nbest
        )
        indices = batch.get("indices")
        ids = (indices + 1).tolist() if indices is not None else [None] * len(hyps)
        return [translation_record(i, h) for i, h in zip(ids, hyps, strict=True)]

    def prediction_writer(self, path: str) -> Any:
        """The predict stage's writer: one best translation per line in row order, or the JSONL records
        (with the n-best list) when ``path`` ends with ``.jsonl``. Rank 0 gathers every rank's records and
        writes the one file (:mod:`seqtasks.inference.writers`)."""
        if path.endswith(".jsonl"):
            return RecordWriter(path, "jsonl")
        return RecordWriter(path, "text", lambda record: record["translation"])

    # ---- checkpoints ----------------------------------------------------------------------------------
    @classmethod
    def upgrade_legacy(cls, checkpoint: dict[str, Any]) -> None:
        """Format 1 → 2: the layers and their settings move to ``network``; lr / step decay to the recipe's
        optimizer and schedule."""
        legacy_optimizer(checkpoint["hyper_parameters"])
        legacy_network(checkpoint, "seqtasks.networks.seq2seq.Seq2SeqNetwork", NETWORK_SETTINGS)


def gathered_corpus(pairs: list[tuple[Any, str, str]]) -> tuple[list[str], list[str]]:
    """(row key, hypothesis, reference) triples from every rank → the test set once, in row order.

    The test step already leaves out the rows a distributed sampler repeats to even out the ranks' shares
    (``batch["real"]``); keying by row index also keeps each sentence once for a batch without that flag.
    """
    unique = {index: (hyp, ref) for index, hyp, ref in pairs}
    ordered = [unique[index] for index in sorted(unique)]
    return [hyp for hyp, _ in ordered], [ref for _, ref in ordered]
