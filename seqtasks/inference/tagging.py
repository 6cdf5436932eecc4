"""Tagging tokens with a trained tagger: what ``seqtasks tag``, ``seqtasks predict-conll``, the predict stage
and a server call.

    from seqtasks.inference.tagging import Tagger

    tagger = Tagger.from_checkpoint("runs/ner-conll2003/.../best.ckpt")
    tagger.tag_tokens([["Peter", "Blackburn", "visited", "Paris"]])   # [["B-PER", "I-PER", "O", "B-LOC"]]
    tagger.tag(["Dhaval loves baby yoda"])[0]["entities"]            # [("PER", 0, 0, "Dhaval")]

Sentences are encoded by the checkpoint's :class:`~seqtasks.data.tagging.TaggingCodec` (the one training
used), collated as in training and decoded by the network (Viterbi with a CRF) in batches of
``batch_size``, in evaluation mode. A sentence with no tokens (also a text the tokenizer finds no token in)
is refused, as in training, with the number of the input that is empty.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seqtasks.checkpoints import load_task
from seqtasks.data.conll import read_conll, write_conll
from seqtasks.data.tagging import TaggingCodec, collate_tagged, tokenize
from seqtasks.metrics import span_scores
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.nn.modes import eval_mode
from seqtasks.tags import Scheme, spans

DEFAULT_BATCH_SIZE = 64

__all__ = ["Tagger", "predict_conll"]


class Tagger:
    """Sentences → IOB2 tags with a :class:`TaggerNetwork` and the codec it was trained with.

    Args:
        network: the trained network (kept in its mode; each call runs in evaluation mode).
        codec: the tagging codec of the training data.
        labels: the tag names, in the network's output order.
        batch_size: sentences per forward pass.
    """

    def __init__(
        self,
        network: TaggerNetwork,
        codec: TaggingCodec,
        labels: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.network = network
        self.codec = codec
        self.labels = list(labels)
        self.batch_size = batch_size

    @classmethod
    def from_task(cls, task: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Tagger:
        """The predictor of a :class:`~seqtasks.tasks.tagging.TokenTagger` (loaded or training)."""
        if not isinstance(getattr(task, "network", None), TaggerNetwork):
            raise TypeError(f"{type(task).__name__} does not tag tokens (its network is no TaggerNetwork)")
        codec = TaggingCodec.from_state(task.artefacts["tagging_codec"])
        return cls(task.network, codec, task.labels, batch_size)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, map_location: str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Tagger:
        """The predictor of a tagger checkpoint (any format); no data or config needed."""
        return cls.from_task(load_task(path, map_location), batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def encode(self, sentences: Sequence[Sequence[str]], first: int = 0) -> dict[str, Tensor]:
        """The collated batch of ``sentences``, as training collates it; ``first`` numbers them in errors."""
        examples = []
        for number, tokens in enumerate(sentences, start=first + 1):
            try:
                examples.append(self.codec.encode(list(tokens)))
            except ValueError as error:
                raise ValueError(f"sentence {number}: {error}") from None
        return collate_tagged(examples, self.network.pad_index)

    def predict_batch(self, batch: dict[str, Tensor]) -> list[list[str]]:
        """Tag names of each sentence of a collated batch (evaluation mode, no autograd)."""
        with eval_mode(self.network):
            paths = self.network.tag_batch({k: v.to(self.device) for k, v in batch.items()})
        lengths = batch["lengths"].tolist()
        return [[self.labels[i] for i in path[:n]] for path, n in zip(paths.tolist(), lengths, strict=True)]

    def tag_tokens(
        self, sentences: Sequence[Sequence[str]], batch_size: int | None = None
    ) -> list[list[str]]:
        """IOB2 tags of pre-tokenised sentences, in order.

        Raises ``ValueError`` naming the sentence number (from 1) of an empty sentence, before anything runs.
        """
        size = batch_size or self.batch_size
        batches = [self.encode(sentences[i : i + size], first=i) for i in range(0, len(sentences), size)]
        return [tags for batch in batches for tags in self.predict_batch(batch)]

    def tag(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, Any]]:
        """Tokens, tags and entity spans ``(type, first token, last token, text)`` of raw texts."""
        token_lists = [tokenize(text) for text in texts]
        for number, tokens in enumerate(token_lists, start=1):
            if not tokens:
                raise ValueError(f"text {number}: no tokens to tag in {texts[number - 1]!r}")
        results = []
        for tokens, tags in zip(token_lists, self.tag_tokens(token_lists, batch_size), strict=True):
            entities = [(kind, a, b, " ".join(tokens[a : b + 1])) for kind, a, b in spans(tags)]
            results.append({"tokens": tokens, "tags": tags, "entities": entities})
        return results

    __call__ = tag


def predict_conll(
    tagger: Tagger,
    source: str | Path,
    output: str | Path,
    label_column: int = -1,
    scheme: Scheme = "iob1",
    batch_size: int | None = None,
) -> dict[str, float]:
    """Tag a CoNLL column file and write ``token gold predicted`` lines (IOB2) that conlleval reads.

    Returns the span scores of the predictions against the file's labels
    (:func:`seqtasks.metrics.span_scores`, over the model's entity types and the file's), plus
    ``sentences``: how many were tagged.
    """
    sentences = list(read_conll(source, label_column, scheme))
    predicted = tagger.tag_tokens([s.tokens for s in sentences], batch_size)
    rows = [list(zip(s.tokens, s.tags, p, strict=True)) for s, p in zip(sentences, predicted, strict=True)]
    write_conll(output, rows)
    scores = span_scores(predicted, [s.tags for s in sentences], tagger.labels)
    return {"sentences": len(sentences), **scores}
