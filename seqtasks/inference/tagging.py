"""Tagging tokens with a trained tagger: what ``seqtasks tag``, ``seqtasks predict-conll``, the predict stage
and a server call.

    from seqtasks.inference.tagging import Tagger

    tagger = Tagger.from_checkpoint("runs/ner-conll2003/.../best.ckpt")
    tagger.tag_tokens([["Peter", "Blackburn", "visited", "Paris"]])   # [["B-PER", "I-PER", "O", "B-LOC"]]
    record = tagger.tag(["Merkel's party"])[0]
    record["entities"]   # [{"type": "PER", "text": "Merkel", "start": 0, "end": 6, "first_token": 0,
                         #   "last_token": 0, "confidence": 0.97}]

Raw texts are split like CoNLL-2003 (:func:`seqtasks.data.tagging.tokenize_spans`: ``Merkel 's``), encoded
by the checkpoint's :class:`~seqtasks.data.tagging.TaggingCodec` (the one training used), collated as in
training and decoded by the network (Viterbi with a CRF) in batches of ``batch_size``, in evaluation mode.
A sentence with no tokens (also a text the tokenizer finds no token in) is refused, as in training, with
the number of the input that is empty.

**Records** (what :meth:`Tagger.tag` returns, ``--format jsonl`` writes and a server answers)::

    {"text": str,
     "tokens": [{"text", "start", "end", "tag", "confidence"}, ...],
     "entities": [{"type", "text", "start", "end", "first_token", "last_token", "confidence"}, ...]}

``start``/``end`` are character offsets into ``text`` (``text[start:end]`` is the token's or the entity's
surface string; an entity runs from its first token's start to its last token's end, so it keeps the
text's own spacing). A token's ``confidence`` is the probability of its predicted tag: its CRF marginal
``p(y_t = tag | sentence)`` from the forward–backward algorithm (:meth:`seqtasks.nn.crf.CRF.marginals`),
or the softmax probability for a softmax head. An entity's ``confidence`` is the **mean** of its tokens'
confidences. Pre-tokenised sentences (:meth:`Tagger.tag_sentences`) get ``text`` = the tokens joined by
single spaces, offsets into that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from seqtasks.data.conll import read_conll, write_conll
from seqtasks.data.tagging_codec import TaggingCodec, collate_tagged, tokenize_spans
from seqtasks.inference.base import LabelPredictor
from seqtasks.inference.io import length_sorted_batches
from seqtasks.inference.io import progress as progress_bar
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.nn.modes import eval_mode
from seqtasks.tags import Scheme, spans

__all__ = [
    "Tagger",
    "conll_lines",
    "entity_tuples",
    "predict_conll",
    "sentence_record",
]

Span = tuple[int, int]


def joined_spans(tokens: Sequence[str]) -> tuple[str, list[Span]]:
    """The tokens joined by single spaces, and each token's span in that text."""
    result, offset = [], 0
    for token in tokens:
        result.append((offset, offset + len(token)))
        offset += len(token) + 1
    return " ".join(tokens), result


def sentence_record(
    text: str, token_spans: Sequence[Span], tags: Sequence[str], confidences: Sequence[float]
) -> dict[str, Any]:
    """The record of one tagged sentence (see the module's docstring) from its tokens' spans in ``text``."""
    tokens = [
        {"text": text[a:b], "start": a, "end": b, "tag": tag, "confidence": float(p)}
        for (a, b), tag, p in zip(token_spans, tags, confidences, strict=True)
    ]
    entities = []
    for kind, first, last in spans(list(tags)):
        start, end = token_spans[first][0], token_spans[last][1]
        members = confidences[first : last + 1]
        entities.append(
            {
                "type": kind,
                "text": text[start:end],
                "start": start,
                "end": end,
                "first_token": first,
                "last_token": last,
                "confidence": float(sum(members) / len(members)),
            }
        )
    return {"text": text, "tokens": tokens, "entities": entities}


def entity_tuples(record: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """The entities of a record as the former ``tag()`` gave them: ``(type, first token, last token, the
    tokens joined by spaces)``."""
    words = [t["text"] for t in record["tokens"]]
    return [
        (
            e["type"],
            e["first_token"],
            e["last_token"],
            " ".join(words[e["first_token"] : e["last_token"] + 1]),
        )
        for e in record["entities"]
    ]


class Tagger(LabelPredictor):
    """Sentences → IOB2 tags (and their confidences) with a :class:`TaggerNetwork` and its
    :class:`TaggingCodec` (arguments: :class:`~seqtasks.inference.base.LabelPredictor`)."""

    network_type = TaggerNetwork
    does = "tag tokens"
    codec_type = TaggingCodec
    codec_key = "tagging_codec"

    def encode(self, sentences: Sequence[Sequence[str]], first: int = 0) -> dict[str, Tensor]:
        """The collated batch of ``sentences``, as training collates it; ``first`` numbers them in errors."""
        examples = []
        for number, tokens in enumerate(sentences, start=first + 1):
            try:
                examples.append({**self.codec.encode(list(tokens)), "tokens": list(tokens)})
            except ValueError as error:
                raise ValueError(f"sentence {number}: {error}") from None
        return collate_tagged(examples, self.network.pad_index)

    def predict_batch(self, batch: dict[str, Tensor]) -> list[list[str]]:
        """Tag names of each sentence of a collated batch (evaluation mode, no autograd; no confidences,
        so no forward–backward pass)."""
        inputs = {k: batch[k].to(self.device) for k in ("words", "chars", "casing", "lengths")}
        if "tokens" in batch:
            inputs["tokens"] = batch["tokens"]
        with eval_mode(self.network):
            paths = self.network.tag_batch(inputs)
        lengths = batch["lengths"].tolist()
        return [[self.labels[i] for i in path[:n]] for path, n in zip(paths.tolist(), lengths, strict=True)]

    def predict_batch_with_confidence(self, batch: dict[str, Any]) -> list[tuple[list[str], list[float]]]:
        """``(tags, confidences)`` of each sentence of a collated batch: the decoded tags and each one's
        probability (CRF marginal or softmax), in evaluation mode without autograd."""
        inputs = {k: batch[k].to(self.device) for k in ("words", "chars", "casing", "lengths")}
        if "tokens" in batch:
            inputs["tokens"] = batch["tokens"]
        with eval_mode(self.network):
            paths, confidence = self.network.tag_batch_with_confidence(inputs)
        lengths = batch["lengths"].tolist()
        return [
            ([self.labels[i] for i in path[:n]], probabilities[:n])
            for path, probabilities, n in zip(paths.tolist(), confidence.tolist(), lengths, strict=True)
        ]

    def _scored(
        self,
        sentences: Sequence[Sequence[str]],
        batch_size: int | None,
        progress: bool = False,
        confidence: bool = True,
    ) -> list[tuple[list[str], list[float] | None]]:
        """``(tags, confidences)`` per sentence, in input order (confidences None unless ``confidence``);
        batches of similar lengths (longest first) so that each pads little; ``progress`` draws a bar on
        stderr (one step per batch)."""
        size = batch_size or self.batch_size
        if size < 1:
            raise ValueError(f"batch_size must be >= 1, got {size}")
        examples = []
        for number, tokens in enumerate(sentences, start=1):
            try:
                examples.append({**self.codec.encode(list(tokens)), "tokens": list(tokens)})
            except ValueError as error:
                raise ValueError(f"sentence {number}: {error}") from None
        batches = length_sorted_batches([e["length"] for e in examples], size)
        results: list[Any] = [None] * len(examples)
        for rows in progress_bar(batches, total=len(batches), enabled=progress, unit="batch"):
            batch = collate_tagged([examples[i] for i in rows], self.network.pad_index)
            if confidence:
                scored = self.predict_batch_with_confidence(batch)
            else:
                scored = [(tags, None) for tags in self.predict_batch(batch)]
            for i, result in zip(rows, scored, strict=True):
                results[i] = result
        return results

    def tag_tokens(
        self, sentences: Sequence[Sequence[str]], batch_size: int | None = None
    ) -> list[list[str]]:
        """IOB2 tags of pre-tokenised sentences, in order.

        Raises ``ValueError`` naming the sentence number (from 1) of an empty sentence, before anything runs.
        """
        return [tags for tags, _ in self._scored(sentences, batch_size, confidence=False)]

    def tag_sentences(
        self, sentences: Sequence[Sequence[str]], batch_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Records of pre-tokenised sentences (``text``: the tokens joined by spaces, offsets into it)."""
        records = []
        for tokens, (tags, confidences) in zip(sentences, self._scored(sentences, batch_size), strict=True):
            text, token_spans = joined_spans(tokens)
            records.append(sentence_record(text, token_spans, tags, confidences))
        return records

    def tag(
        self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False
    ) -> list[dict[str, Any]]:
        """Records of raw texts, split like CoNLL-2003: tokens with character offsets, tags and confidences,
        and the entities with their offsets and confidence (see the module's docstring).

        Raises ``ValueError`` naming the text number (from 1) of a text with no token, before anything runs.
        """
        split = [tokenize_spans(text) for text in texts]
        for number, found in enumerate(split, start=1):
            if not found:
                raise ValueError(f"text {number}: no tokens to tag in {texts[number - 1]!r}")
        scored = self._scored([[t for t, _, _ in found] for found in split], batch_size, progress)
        return [
            sentence_record(text, [(a, b) for _, a, b in found], tags, confidences)
            for text, found, (tags, confidences) in zip(texts, split, scored, strict=True)
        ]

    __call__ = tag

    def records(
        self,
        texts: Sequence[str],
        ids: Sequence[Any] | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """:meth:`tag`'s records with ``"id"`` first (ids default to 1…n): what ``tag --format jsonl`` and
        the server write."""
        ids = list(range(1, len(texts) + 1)) if ids is None else list(ids)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        tagged = self.tag(texts, batch_size, progress)
        return [{"id": i, **record} for i, record in zip(ids, tagged, strict=True)]


def predict_conll(
    tagger: Tagger,
    source: str | Path,
    output: str | Path,
    label_column: int = -1,
    scheme: Scheme = "iob1",
    batch_size: int | None = None,
    records: list[dict[str, Any]] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Tag a CoNLL column file and write ``token gold predicted`` lines (IOB2) that conlleval reads.

    Returns the span scores of the predictions against the file's labels
    (:func:`seqtasks.metrics.span_scores`, over the model's entity types and the file's), plus
    ``sentences``: how many were tagged. When ``records`` is a list, each sentence's record (with ``id``:
    its number from 1, ``line``: its first line, ``gold``: the file's tags) is appended to it. A file with
    no sentence (empty, or ``-DOCSTART-`` lines only) raises ``ValueError``.
    """
    sentences = list(read_conll(source, label_column, scheme))
    if not sentences:
        raise ValueError(f"{source} holds no sentences (empty, or only -DOCSTART- lines)")
    scored = tagger._scored([s.tokens for s in sentences], batch_size, progress, records is not None)
    predicted = [tags for tags, _ in scored]
    rows = [list(zip(s.tokens, s.tags, p, strict=True)) for s, p in zip(sentences, predicted, strict=True)]
    write_conll(output, rows)
    if records is not None:
        for number, (sentence, (tags, confidences)) in enumerate(zip(sentences, scored, strict=True), 1):
            text, token_spans = joined_spans(sentence.tokens)
            record = sentence_record(text, token_spans, tags, confidences)
            records.append({"id": number, "line": sentence.line, **record, "gold": sentence.tags})
    from seqtasks.metrics import span_scores  # torchmetrics: seconds to import; only predict-conll scores

    scores = span_scores(predicted, [s.tags for s in sentences], tagger.labels)
    return {"sentences": len(sentences), **scores}


def conll_lines(record: dict[str, Any]) -> str:
    """A record as CoNLL columns, ``token [gold] predicted`` per line (gold when the record has ``gold``),
    ending with a newline: written with one more newline, the blank line that ends a sentence."""
    gold = record.get("gold")
    return "".join(
        f"{token['text']} {gold[number]} {token['tag']}\n"
        if gold is not None
        else f"{token['text']} {token['tag']}\n"
        for number, token in enumerate(record["tokens"])
    )
