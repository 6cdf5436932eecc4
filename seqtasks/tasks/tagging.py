"""Many-to-many, aligned: one tag per token (named entities, chunks).

word embedding (+ word dropout) ⊕ character CNN ⊕ casing embedding → recurrent encoder → dropout →
linear → CRF (Viterbi decoding) or softmax. Entity-level precision/recall/F1, as conlleval computes it,
per validation and test epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torchmetrics
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from seqtasks.data.tagging import CASINGS, TokenEncoder, collate_tagged, tokenize
from seqtasks.encoders.base import RecurrentEncoder
from seqtasks.metrics import SpanF1, chunks
from seqtasks.nn.chars import CharCNN
from seqtasks.nn.crf import CRF
from seqtasks.tasks.base import SeqTask

_ROW_KEYS = ("head.weight", "head.bias", "crf.start", "crf.end")


class TokenTagger(SeqTask):
    """Tag every token of a sentence.

    Args:
        vocab_size: size of the word vocabulary (linked from the datamodule).
        char_vocab_size: size of the character vocabulary (linked from the datamodule).
        labels: tag names, IOB2 (linked from the datamodule).
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
        pad_index: padding index of the word and character vocabularies (linked from the datamodule).
        optimizer: ``adam`` (AdamW with ``lr``) or ``sgd`` (momentum, ``lr / (1 + lr_decay · epoch)``).
        lr: learning rate.
        momentum: SGD momentum.
        lr_decay: SGD learning-rate decay per epoch.
        step_decay: with ``adam``, from epoch ``step_decay_start`` on the rate is multiplied by this factor
            each epoch.
        step_decay_start: first epoch (0-based) at a decayed rate; None keeps ``lr`` constant.
        weight_decay: weight decay.
        init_from: checkpoint to fine-tune from: weights only; words and characters mapped by their text,
            the head's and CRF's rows by tag name, so a tag set with a new entity type keeps the rest.
    """

    def __init__(
        self,
        vocab_size: int,
        char_vocab_size: int,
        labels: list[str],
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
        pad_index: int = 0,
        optimizer: Literal["adam", "sgd"] = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        lr_decay: float = 0.05,
        step_decay: float = 0.5,
        step_decay_start: int | None = None,
        weight_decay: float = 0.0,
        init_from: str | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, init_from, step_decay, step_decay_start)
        if "O" not in labels or len(labels) < 2:
            raise ValueError(f"labels must include 'O' and at least one entity tag, got {labels}")
        if not 0.0 <= word_dropout < 1.0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"word_dropout and dropout must be in [0, 1), got {word_dropout}, {dropout}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, got {optimizer!r}")
        if optimizer == "sgd" and step_decay_start is not None:
            raise ValueError("step_decay_start is for adam; sgd decays as lr / (1 + lr_decay · epoch)")
        self.save_hyperparameters()
        self.labels = list(labels)
        self.pad_index = pad_index
        self.word_dropout = word_dropout
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
        self.feature_dropout = nn.Dropout(dropout)
        self.encoder = encoder(width)
        if self.encoder.input_size != width:
            raise ValueError(
                f"encoder input_size {self.encoder.input_size} does not match the feature width {width} "
                f"(word_dim {word_dim} + char_filters + casing_dim)"
            )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.output_size, len(labels))
        self.crf = CRF(len(labels), labels, constrain_bio) if crf else None
        self.val_f1 = SpanF1(labels)
        self.test_f1 = SpanF1(labels)
        self.train_loss = torchmetrics.MeanMetric()
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()

    # ---- model -----------------------------------------------------------------------------------
    def forward(self, words: Tensor, chars: Tensor, casing: Tensor, lengths: Tensor) -> Tensor:
        """Per-token tag scores ``(B, T, num_tags)``."""
        if self.training and self.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.word_dropout
            words = words.masked_fill(drop & (words != self.pad_index), 1)  # 1: the unknown word
        features = [self.embedding(words)]
        if self.chars is not None:
            features.append(self.chars(chars))
        if self.casing is not None:
            features.append(self.casing(casing))
        inputs = self.feature_dropout(torch.cat(features, dim=-1))
        encoded = self.encoder(inputs, lengths=lengths)
        return self.head(self.dropout(encoded.outputs))

    @staticmethod
    def _mask(lengths: Tensor, time: int) -> Tensor:
        return torch.arange(time, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)

    def loss(self, scores: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """CRF negative log-likelihood or token cross-entropy, both per sentence averaged over the batch."""
        if self.crf is not None:
            return self.crf(scores, tags, mask, reduction="mean")
        token_loss = nn.functional.cross_entropy(scores.transpose(1, 2), tags, reduction="none")
        return (token_loss * mask).sum() / mask.size(0)

    def decode(self, scores: Tensor, mask: Tensor) -> Tensor:
        if self.crf is not None:
            return self.crf.decode(scores, mask)
        return scores.argmax(dim=-1).masked_fill(~mask, 0)

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        scores = self(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
        mask = self._mask(batch["lengths"], scores.size(1))
        loss = self.loss(scores, batch["tags"], mask)
        mean_loss = getattr(self, f"{stage}_loss")
        mean_loss.update(loss.detach(), weight=mask.size(0))
        self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            metric = getattr(self, f"{stage}_f1")
            metric.update(self.decode(scores, mask), batch["tags"], mask)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_f1(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_f1")
        values = metric.compute()  # synced across ranks (sum states)
        metric.reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "f1")

    def on_validation_epoch_end(self) -> None:
        self._log_f1("val")

    def on_test_epoch_end(self) -> None:
        self._log_f1("test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        scores = self(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
        return self.decode(scores, self._mask(batch["lengths"], scores.size(1)))

    def configure_optimizers(self) -> Any:
        if self.hparams.optimizer == "adam":
            return super().configure_optimizers()
        optimizer = torch.optim.SGD(
            self.parameters(), lr=self.lr, momentum=self.hparams.momentum, weight_decay=self.weight_decay
        )
        decay = self.hparams.lr_decay
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 / (1.0 + decay * epoch))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

    # ---- artefacts, fine-tuning, inference -----------------------------------------------------------
    def collect_artefacts(self, datamodule: Any) -> dict[str, Any]:
        return {"token_encoder": datamodule.token_encoder.state_dict()}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        path = getattr(datamodule, "word_vectors", None)
        if stage == "fit" and path and not self.init_from and not getattr(self, "_vectors_loaded", False):
            self.load_word_vectors(path)
            self._vectors_loaded = True

    def load_word_vectors(self, path: str) -> int:
        """Start the embedding of every vocabulary word found in a vectors file from its vector.

        The vectors are rescaled to unit standard deviation, the scale of the embedding's own random
        initialisation, so words with and without a vector start alike in size. Returns the rows set.
        """
        from seqtasks.wordvectors import read_word_vectors

        words, vectors = read_word_vectors(path)
        if vectors.size(1) != self.embedding.embedding_dim:
            raise ValueError(
                f"{path}: vectors of {vectors.size(1)} values, but word_dim is {self.embedding.embedding_dim}"
            )
        index = {w: i for i, w in enumerate(words)}
        vocabulary = self.artefacts["token_encoder"]["words"]
        pairs = [(row, index[w]) for row, w in enumerate(vocabulary) if w in index]
        if pairs:
            rows, sources = (torch.tensor(x) for x in zip(*pairs, strict=True))
            with torch.no_grad():
                self.embedding.weight[rows] = (vectors / vectors.std())[sources].to(self.embedding.weight)
        self.artefacts["word_vectors"] = {"file": os.path.basename(path), "words": len(pairs)}
        rank_zero_info(f"word vectors {path}: {len(pairs)} of {self.embedding.num_embeddings} words set")
        return len(pairs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.artefacts["labels"] = self.labels
        super().on_save_checkpoint(checkpoint)

    def adapt_state(self, source: dict[str, Tensor], source_artefacts: dict[str, Any]) -> dict[str, Any]:
        own = self.state_dict()
        adapted = super().adapt_state(source, source_artefacts)
        old_encoder = source_artefacts.get("token_encoder")
        new_encoder = self.artefacts.get("token_encoder")
        if old_encoder and new_encoder:  # embeddings: rows mapped by the word / character they stand for
            for key, vocab in (("embedding.weight", "words"), ("chars.embedding.weight", "chars")):
                if key in source and key in own and source[key].size(1) == own[key].size(1):
                    adapted[key] = _map_rows(own[key], source[key], old_encoder[vocab], new_encoder[vocab])
        old_labels = source_artefacts.get("labels")
        if old_labels is not None and list(old_labels) != self.labels:  # rows by tag name
            for key in _ROW_KEYS:
                adapted.pop(key, None)
                if key in source and key in own and source[key].shape[1:] == own[key].shape[1:]:
                    adapted[key] = _map_rows(own[key], source[key], old_labels, self.labels)
            key = "crf.transitions"
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

    def _token_encoder(self) -> TokenEncoder:
        return TokenEncoder.from_state(self.artefacts["token_encoder"])

    @torch.no_grad()
    def tag_tokens(self, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[list[str]]:
        """IOB2 tags for pre-tokenised sentences, from the checkpoint alone."""
        encoder = self._token_encoder()
        was_training = self.training
        self.eval()
        out: list[list[str]] = []
        try:
            for start in range(0, len(sentences), batch_size):
                chunk = [list(s) for s in sentences[start : start + batch_size]]
                examples = [{**encoder(s), "length": len(s)} if s else None for s in chunk]
                real = [e for e in examples if e is not None]
                decoded: list[list[str]] = []
                if real:
                    batch = {k: v.to(self.device) for k, v in collate_tagged(real, self.pad_index).items()}
                    paths = self.predict_step(batch, 0).cpu().tolist()
                    lengths = batch["lengths"].tolist()
                    decoded = [[self.labels[i] for i in p[:n]] for p, n in zip(paths, lengths, strict=True)]
                it = iter(decoded)
                out.extend(next(it) if e is not None else [] for e in examples)
        finally:
            self.train(was_training)
        return out

    def tag(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Tokens, tags and entity spans ``(type, first token, last token, text)`` of raw texts."""
        token_lists = [tokenize(text) for text in texts]
        results = []
        for tokens, tags in zip(token_lists, self.tag_tokens(token_lists), strict=True):
            spans = sorted(chunks(tags), key=lambda c: c[1])
            results.append(
                {
                    "tokens": tokens,
                    "tags": tags,
                    "entities": [(kind, a, b, " ".join(tokens[a : b + 1])) for kind, a, b in spans],
                }
            )
        return results


def _map_rows(own: Tensor, source: Tensor, old_names: Sequence[str], new_names: Sequence[str]) -> Tensor:
    """``own`` with each row whose name exists in ``old_names`` replaced by the pretrained row."""
    weight = own.clone()
    new_index = {name: i for i, name in enumerate(new_names)}
    pairs = [(i, new_index[n]) for i, n in enumerate(old_names) if n in new_index]
    if pairs:
        old_rows, new_rows = zip(*pairs, strict=True)
        weight[list(new_rows)] = source[list(old_rows)]
    return weight
