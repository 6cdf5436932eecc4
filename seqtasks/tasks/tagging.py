"""Many-to-many, aligned: training a token tagger (named entities, chunks), one tag per token.

The network (:class:`~seqtasks.networks.tagger.TaggerNetwork`: word ⊕ character CNN ⊕ casing features →
recurrent encoder → linear → CRF or softmax) comes from the recipe; this task trains it on its CRF
negative log-likelihood (or token cross-entropy) and keeps entity-level precision/recall/F1, as conlleval
computes them, per validation and test epoch, with a per-type F1 figure each validation epoch.
Inference: :class:`~seqtasks.inference.tagging.Tagger`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchmetrics
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from seqtasks.checkpoints import CHECKPOINT_KEY, legacy_network, legacy_optimizer
from seqtasks.data.batching import real_rows
from seqtasks.data.vectors import read_word_vectors
from seqtasks.inference.writers import TaggingPredictionWriter
from seqtasks.metrics import SpanF1
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.plots import f1_per_type_figure, log_figure
from seqtasks.tasks.base import SeqTask, map_rows

NETWORK = "seqtasks.networks.tagger.TaggerNetwork"
NETWORK_SETTINGS = [
    "encoder",
    "word_dim",
    "char_dim",
    "char_filters",
    "char_kernel",
    "casing_dim",
    "word_dropout",
    "dropout",
    "crf",
    "constrain_bio",
]
"""Format-1 hyperparameters that moved to the network."""

CODEC = "tagging_codec"
"""The artefact of the :class:`~seqtasks.data.tagging.TaggingCodec` state (format 1: ``token_encoder``)."""

_ROW_KEYS = ("network.head.weight", "network.head.bias", "network.crf.start", "network.crf.end")


def record_contextual(checkpoint: dict[str, Any], network: Any) -> None:
    """With contextual string embeddings read from LM checkpoints, write their architecture and codecs into
    the checkpoint's ``network`` setting (the weights are in the state dict already): the tagger's checkpoint
    then rebuilds and loads with no LM checkpoint file present."""
    contextual = getattr(network, "contextual", None)
    settings = contextual.portable_settings() if contextual is not None else {}
    hparams = checkpoint.get("hyper_parameters")
    spec = hparams.get("network") if isinstance(hparams, dict) else None
    if not settings or not isinstance(spec, dict):
        return
    spec = copy.deepcopy(spec)
    given = spec.setdefault("init_args", {}).get("contextual")
    if isinstance(given, dict) and "class_path" in given:
        given.setdefault("init_args", {}).update(copy.deepcopy(settings))
        hparams["network"] = spec


def _contextual_args(hparams: Any) -> dict[str, Any] | None:
    try:
        given = hparams["network"]["init_args"]["contextual"]
        return given["init_args"] if isinstance(given, dict) and "class_path" in given else None
    except (KeyError, TypeError):
        return None


def align_contextual(checkpoint: dict[str, Any], hparams: Any) -> None:
    """Give the checkpoint's contextual settings that :func:`record_contextual` derived (the LMs'
    architecture and codecs) this model's values, so comparing the two settings (a resume, the test stage
    reloading the best checkpoint) warns only about settings a user gave."""
    saved = checkpoint.get("hyper_parameters")
    if _contextual_args(saved) is None:
        return
    saved["network"] = copy.deepcopy(saved["network"])
    ours, theirs = _contextual_args(hparams) or {}, _contextual_args(saved)
    for direction in ("forward", "backward"):
        for key in (f"{direction}_network", f"{direction}_codec"):
            if key in ours:
                theirs[key] = ours[key]
            else:
                theirs.pop(key, None)


class TokenTagger(SeqTask):
    """Train a tagger of every token of a sentence.

    Args:
        network: the network, built with ``(vocab_size, char_vocab_size, labels, pad_index)``.
        vocab_size: size of the word vocabulary (linked from the datamodule).
        char_vocab_size: size of the character vocabulary (linked from the datamodule).
        labels: tag names, IOB2 (linked from the datamodule).
        pad_index: padding index of the word and character vocabularies (linked from the datamodule).
        word_vectors: a GloVe-style vectors file (linked from the datamodule's ``word_vectors``): when
            fitting from scratch, every vocabulary word it holds starts from its vector.
        optimizer: see :class:`~seqtasks.tasks.base.SeqTask`.
        lr_scheduler: see :class:`~seqtasks.tasks.base.SeqTask`.
        init_from: checkpoint to fine-tune from: weights only; words and characters mapped by their text,
            the head's and CRF's rows by tag name, so a tag set with a new entity type keeps the rest.
        init_from_strict: refuse an ``init_from`` checkpoint of another task or one nothing loads from
            (set false to allow it).
    """

    def __init__(
        self,
        network: Callable[[int, int, list[str], int], TaggerNetwork],
        vocab_size: int,
        char_vocab_size: int,
        labels: list[str],
        pad_index: int = 0,
        word_vectors: str | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
        init_from_strict: bool = True,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, init_from, init_from_strict)
        self.save_hyperparameters()
        self.labels = list(labels)
        self.word_vectors = word_vectors
        self.network = self.build_network(network, vocab_size, char_vocab_size, self.labels, pad_index)
        self.val_f1 = SpanF1(labels)
        self.test_f1 = SpanF1(labels)
        self.train_loss = torchmetrics.MeanMetric()
        # a NaN batch makes the epoch's mean NaN instead of being dropped (nan_strategy NaN keeps the weights;
        # torchmetrics' 'disable' would ignore them)
        self.val_loss = torchmetrics.MeanMetric(nan_strategy=float("nan"))
        self.test_loss = torchmetrics.MeanMetric(nan_strategy=float("nan"))

    def forward(
        self,
        words: Tensor,
        chars: Tensor,
        casing: Tensor,
        lengths: Tensor,
        tokens: Sequence[Sequence[str]] | None = None,
    ) -> Tensor:
        """Per-token tag scores ``(B, T, num_tags)`` (the network's)."""
        return self.network(words, chars, casing, lengths, tokens)

    # ---- steps and metrics -------------------------------------------------------------------------
    def _step(self, batch: dict[str, Tensor], stage: str, log: bool = True) -> Tensor:
        scores = self.network(
            batch["words"], batch["chars"], batch["casing"], batch["lengths"], batch.get("tokens")
        )
        mask = self.network.mask(batch["lengths"], scores.size(1))
        loss = self.network.loss(scores, batch["tags"], mask)
        mean_loss = getattr(self, f"{stage}_loss")
        mean_loss.update(loss.detach(), weight=mask.size(0))
        if log:
            self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            metric = getattr(self, f"{stage}_f1")
            metric.update(self.network.decode(scores, mask), batch["tags"], mask)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train", self.logs_epoch_metrics())

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        """Validation and test count only the batch's real rows (:func:`~seqtasks.data.batching.real_rows`:
        under DDP, rows repeated to keep the ranks in step are left out), so each sentence counts once."""
        rows = real_rows(batch)
        if rows is None:  # nothing but repeated rows: log (every rank logs alike), count nothing
            self.log(
                f"{stage}/loss", getattr(self, f"{stage}_loss"), on_step=False, on_epoch=True, prog_bar=True
            )
            return
        self._step(rows, stage)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _log_f1(self, stage: str) -> dict[str, Tensor]:
        metric = getattr(self, f"{stage}_f1")
        values = metric.compute()  # synced across ranks (sum states)
        metric.reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "f1")
        return values

    def on_validation_epoch_end(self) -> None:
        values = self._log_f1("val")
        if not self.trainer.sanity_checking:
            log_figure(self, "val/f1_per_type", f1_per_type_figure(values))

    def on_test_epoch_end(self) -> None:
        self._log_f1("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """One record per sentence of the batch (:mod:`seqtasks.inference.tagging`'s format, decoded by the
        :class:`~seqtasks.inference.tagging.Tagger`), with ``id`` (the input row number from 1, from the
        batch's ``indices``) and, when the batch carries gold tags, ``gold`` (their names)."""
        from seqtasks.inference.tagging import joined_spans, sentence_record

        tagger = self.tagger()
        scored = tagger.predict_batch_with_confidence(batch)
        lengths = batch["lengths"].tolist()
        if "tokens" in batch:
            sentences = batch["tokens"]
        else:  # a batch collated without the raw tokens: the vocabulary's form of each word
            words = tagger.codec.words.tokens
            rows = batch["words"].tolist()
            sentences = [[words[i] for i in row[:n]] for row, n in zip(rows, lengths, strict=True)]
        indices = batch["indices"].tolist() if "indices" in batch else None
        gold = batch["tags"].tolist() if "tags" in batch else None
        records = []
        for row, (tokens, (tags, confidences)) in enumerate(zip(sentences, scored, strict=True)):
            text, token_spans = joined_spans(tokens)
            number = indices[row] + 1 if indices is not None else batch_idx * len(lengths) + row + 1
            record = {"id": number, **sentence_record(text, token_spans, tags, confidences)}
            if gold is not None:
                record["gold"] = [self.labels[i] for i in gold[row][: lengths[row]]]
            records.append(record)
        return records

    def tagger(self) -> Any:
        """The :class:`~seqtasks.inference.tagging.Tagger` of this task (built once, shares the network)."""
        from seqtasks.inference.tagging import Tagger

        if getattr(self, "_tagger", None) is None:
            self._tagger = Tagger.from_task(self)
        return self._tagger

    def prediction_writer(self, path: str) -> Any:
        """The predict stage's writer: CoNLL columns ``token [gold] predicted`` (or JSONL records when
        ``path`` ends in ``.jsonl``), in input order, one file written by rank 0
        (:class:`~seqtasks.inference.tagging.TaggingPredictionWriter`)."""
        return TaggingPredictionWriter(path)

    # ---- word vectors, artefacts, fine-tuning, legacy checkpoints -------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        vectors = self.word_vectors
        if stage == "fit" and vectors and not self.init_from and not getattr(self, "_vectors_loaded", False):
            self.load_word_vectors(vectors)
            self._vectors_loaded = True

    def load_word_vectors(self, path: str) -> int:
        """Start the embedding of every vocabulary word found in a vectors file from its vector.

        The vectors are rescaled to unit standard deviation, the scale of the embedding's own random
        initialisation, so words with and without a vector start alike in size. Returns the rows set.
        """
        embedding = self.network.embedding
        words, vectors = read_word_vectors(path)
        if vectors.size(1) != embedding.embedding_dim:
            raise ValueError(
                f"{path}: vectors of {vectors.size(1)} values, but word_dim is {embedding.embedding_dim}"
            )
        index = {w: i for i, w in enumerate(words)}
        vocabulary = self.artefacts[CODEC]["words"]
        pairs = [(row, index[w]) for row, w in enumerate(vocabulary) if w in index]
        if pairs:
            rows, sources = (torch.tensor(x) for x in zip(*pairs, strict=True))
            with torch.no_grad():
                embedding.weight[rows] = (vectors / vectors.std())[sources].to(embedding.weight)
        self.artefacts["word_vectors"] = {"file": os.path.basename(path), "words": len(pairs)}
        rank_zero_info(f"word vectors {path}: {len(pairs)} of {embedding.num_embeddings} words set")
        return len(pairs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.artefacts["labels"] = self.labels
        super().on_save_checkpoint(checkpoint)
        record_contextual(checkpoint, self.network)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        align_contextual(checkpoint, self.hparams)
        super().on_load_checkpoint(checkpoint)

    def adapt_state(self, source: dict[str, Tensor], source_artefacts: dict[str, Any]) -> dict[str, Any]:
        own = self.state_dict()
        adapted = super().adapt_state(source, source_artefacts)
        old_codec, new_codec = source_artefacts.get(CODEC), self.artefacts.get(CODEC)
        if old_codec and new_codec:  # embeddings: rows mapped by the word / character they stand for
            for key, vocab in (
                ("network.embedding.weight", "words"),
                ("network.chars.embedding.weight", "chars"),
            ):
                if key in source and key in own and source[key].size(1) == own[key].size(1):
                    adapted[key] = map_rows(own[key], source[key], old_codec[vocab], new_codec[vocab])
        old_labels = source_artefacts.get("labels")
        if old_labels is not None and list(old_labels) != self.labels:  # rows by tag name
            for key in _ROW_KEYS:
                adapted.pop(key, None)
                if key in source and key in own and source[key].shape[1:] == own[key].shape[1:]:
                    adapted[key] = map_rows(own[key], source[key], old_labels, self.labels)
            key = "network.crf.transitions"
            adapted.pop(key, None)
            if key in source and key in own:
                old_index = {t: i for i, t in enumerate(old_labels)}
                shared = [(old_index[t], i) for i, t in enumerate(self.labels) if t in old_index]
                weight = own[key].clone()
                for old_i, new_i in shared:
                    for old_j, new_j in shared:
                        weight[new_i, new_j] = source[key][old_i, old_j]
                adapted[key] = weight
        return adapted

    @classmethod
    def upgrade_legacy(cls, checkpoint: dict[str, Any]) -> None:
        """Format 1 → 2: optimizer settings → ``optimizer``/``lr_scheduler``; layers → ``network``;
        the ``token_encoder`` artefact → ``tagging_codec``."""
        legacy_optimizer(checkpoint["hyper_parameters"])
        legacy_network(checkpoint, NETWORK, NETWORK_SETTINGS)
        artefacts = checkpoint[CHECKPOINT_KEY]["artefacts"]
        if "token_encoder" in artefacts:
            artefacts[CODEC] = artefacts.pop("token_encoder")
