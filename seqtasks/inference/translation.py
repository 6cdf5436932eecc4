"""Translating with a trained seq2seq network: the API ``seqtasks translate``, the task's validation, test and
predict steps, the benchmarks and a server all call.

    translator = Translator.from_checkpoint("best.ckpt")
    translator.translate(["How are you?"], beam=5)                   # ["आप कैसे हैं?"]
    translator.translate_nbest(["How are you?"], beam=5, nbest=3)    # [[Hypothesis(translation, score), ...]]
    translator.records(["How are you?"], beam=5, nbest=3)            # [{"id": 1, "translation", "score",
                                                                     #   "nbest": [{"translation", "score"}]}]

The keyword names are the command's option names (``--beam``, ``--nbest``, ``--max-length``,
``--batch-size``, ``--length-penalty``). :meth:`Translator.translate` returns strings;
:meth:`Translator.translate_nbest` the ``nbest`` best hypotheses with their scores, the length-normalised
log-probabilities ``log p(y + </s> | x) / len ** length_penalty`` that beam search ranks by (OpenNMT's
``-n_best``), best first.

Texts are encoded by the same :class:`~seqtasks.data.translation.TranslationCodec` as
the training batches, so an empty text is refused here as it is in training. A text with no known subword
(only characters the tokenizer has never seen, e.g. emoji) is refused too (:class:`InputError`), never
"translated" into an invented sentence. A text longer than the codec's ``max_source_length`` is translated
from its first subwords, never silently: one :class:`~seqtasks.errors.TruncationWarning` per call names the
inputs and how many subwords were cut, and their records carry ``"truncated"`` (subwords cut).
:func:`corpus_scores` gives sacreBLEU's BLEU and chrF of the output, with their signatures.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor

from seqtasks.data.translation_codec import TranslationCodec, require_text
from seqtasks.errors import TruncationWarning, cut_summary
from seqtasks.inference.base import Predictor, load_for
from seqtasks.inference.io import InputError
from seqtasks.inference.io import progress as progress_bar
from seqtasks.networks.seq2seq import Seq2SeqNetwork
from seqtasks.nn.modes import eval_mode


class Hypothesis(NamedTuple):
    """One translation and its score (length-normalised log-probability; higher is better)."""

    translation: str
    score: float


def check_nbest(beam: int, nbest: int) -> None:
    """``beam`` ≥ 1 and 1 ≤ ``nbest`` ≤ ``beam``, else a ``ValueError`` naming both."""
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    if not 1 <= nbest <= beam:
        raise ValueError(
            f"nbest must be between 1 and beam ({beam}), got nbest={nbest}; raise beam to {nbest}"
        )


def translation_record(id: Any, hypotheses: Sequence[Hypothesis]) -> dict[str, Any]:
    """The JSONL / server record of one text: ``{"id", "translation", "score", "nbest": [...]}``."""
    best = hypotheses[0] if hypotheses else Hypothesis("", 0.0)
    return {
        "id": id,
        "translation": best.translation,
        "score": best.score,
        "nbest": [{"translation": h.translation, "score": h.score} for h in hypotheses],
    }


class Translator(Predictor):
    """A seq2seq network with the codec of its checkpoint.

    Args:
        network: the trained network (its device is where batches go).
        codec: the tokenizers and lengths the network was trained with.
    """

    network_type = Seq2SeqNetwork
    does = "translate"

    def __init__(self, network: Seq2SeqNetwork, codec: TranslationCodec) -> None:
        self.network = network
        self.codec = codec

    @classmethod
    def from_task(cls, task: Any) -> Translator:
        """The translator of a ``Seq2SeqTranslator`` (its network and the codec in its artefacts)."""
        return cls(task.network, TranslationCodec.from_artefacts(task.artefacts))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str = "cpu") -> Translator:
        """Load a translator checkpoint (any format); a checkpoint of another task is refused by name."""
        return cls.from_task(load_for(path, Seq2SeqNetwork, cls.does, map_location))

    def translate(
        self,
        texts: Sequence[str],
        beam: int = 1,
        max_length: int | None = None,
        batch_size: int = 64,
        length_penalty: float = 1.0,
        progress: bool = False,
        ids: Sequence[Any] | None = None,
    ) -> list[str]:
        """Translate plain texts, ``batch_size`` at a time (texts of similar length decode together).

        ``beam`` 1 is greedy decoding; ``max_length`` caps the output subwords; beam scores are divided by
        ``length ** length_penalty``. A sentence translates the same alone as in any batch. ``progress``
        draws a bar on stderr. ``ids`` name the inputs in errors and warnings (default: 1…n); see
        :meth:`check_sources` for what is refused and what is cut.
        """
        return self._batched_with_cuts(
            texts,
            batch_size,
            progress,
            lambda s, n: self.translate_batch(s, n, beam, max_length, length_penalty),
            ids,
        )[0]

    def translate_nbest(
        self,
        texts: Sequence[str],
        beam: int = 1,
        nbest: int = 1,
        max_length: int | None = None,
        batch_size: int = 64,
        length_penalty: float = 1.0,
        progress: bool = False,
    ) -> list[list[Hypothesis]]:
        """The ``nbest`` best hypotheses of each text with their scores, best first (``nbest`` ≤ ``beam``).

        Always beam search (``beam`` 1 finds the greedy translation, with its score); the first hypothesis
        is what :meth:`translate` returns for the same ``beam`` (for ``beam`` > 1).
        """
        check_nbest(beam, nbest)
        return self._batched(
            texts,
            batch_size,
            progress,
            lambda s, n: self.translate_batch_nbest(s, n, beam, nbest, max_length, length_penalty),
        )

    def records(
        self,
        texts: Sequence[str],
        ids: Sequence[Any] | None = None,
        beam: int = 1,
        nbest: int = 1,
        max_length: int | None = None,
        batch_size: int = 64,
        length_penalty: float = 1.0,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """One record per text (``translate --format jsonl``, the predict stage, the server); ids 1…n."""
        ids = list(range(1, len(texts) + 1)) if ids is None else list(ids)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        check_nbest(beam, nbest)
        hyps, cuts = self._batched_with_cuts(
            texts,
            batch_size,
            progress,
            lambda s, n: self.translate_batch_nbest(s, n, beam, nbest, max_length, length_penalty),
            ids,
        )
        records = [translation_record(i, h) for i, h in zip(ids, hyps, strict=True)]
        for record, cut in zip(records, cuts, strict=True):
            if cut:
                record["truncated"] = cut
        return records

    def check_sources(self, texts: Sequence[str], names: Sequence[Any] | None = None) -> list[int]:
        """The subwords the codec will cut from each text (0: none), after refusing a text that is empty
        (``ValueError``) or has no known subword (:class:`InputError`), naming the input (default: its
        number from 1); warns once (:class:`~seqtasks.errors.TruncationWarning`) about the cut ones."""
        names = list(range(1, len(texts) + 1)) if names is None else list(names)
        tokenizer, limit = self.codec.source_tokenizer, self.codec.max_source_length - 1
        unknown = tokenizer.token_to_id("<unk>")
        cuts, long = [], []
        for name, text in zip(names, texts, strict=True):
            try:
                ids = tokenizer.encode(require_text(text)).ids
            except ValueError as error:
                raise InputError(f"input {name}: {error}") from None
            if not tokenizer.decode([i for i in ids if i != unknown]).strip():
                raise InputError(
                    f"input {name}: {text[:40]!r} has no subword the model knows (only unknown characters); "
                    "there is nothing to translate"
                )
            cuts.append(max(0, len(ids) - limit))
            if cuts[-1]:
                long.append((name, len(ids), cuts[-1]))
        if long:
            warnings.warn(cut_summary(long, "subwords", limit, "reads"), TruncationWarning, stacklevel=4)
        return cuts

    def _batched(self, texts: Sequence[str], batch_size: int, progress: bool, run: Any) -> list[Any]:
        return self._batched_with_cuts(texts, batch_size, progress, run)[0]

    def _batched_with_cuts(
        self, texts: Sequence[str], batch_size: int, progress: bool, run: Any, names: Any = None
    ) -> tuple[list[Any], list[int]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        cuts = self.check_sources(texts, names)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Any] = [None] * len(texts)
        starts = range(0, len(order), batch_size)
        for start in progress_bar(starts, total=len(starts), enabled=progress, unit="batch"):
            rows = order[start : start + batch_size]
            source, lengths = self.codec.source_batch([texts[i] for i in rows])
            for i, output in zip(rows, run(source, lengths), strict=True):
                results[i] = output
        return results, cuts

    def translate_batch(
        self,
        source: Tensor,
        source_lengths: Tensor,
        beam: int = 1,
        max_length: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[str]:
        """Translate an encoded batch (``source`` ``(B, S)`` ids, ``source_lengths`` ``(B,)``)."""
        device = self.device
        with eval_mode(self.network):
            ids = self.network.generate(
                source.to(device), source_lengths.to(device), beam, max_length, length_penalty
            )
        return [self.codec.decode(x) for x in ids]

    def translate_batch_nbest(
        self,
        source: Tensor,
        source_lengths: Tensor,
        beam: int = 1,
        nbest: int = 1,
        max_length: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[Hypothesis]]:
        """The ``nbest`` best hypotheses of each sentence of an encoded batch, best first."""
        check_nbest(beam, nbest)
        device = self.device
        with eval_mode(self.network):
            found = self.network.generate_nbest(
                source.to(device), source_lengths.to(device), beam, nbest, max_length, length_penalty
            )
        return [[Hypothesis(self.codec.decode(ids), score) for ids, score in row] for row in found]

    def attention_maps(
        self, source: Tensor, source_lengths: Tensor
    ) -> list[tuple[Tensor, list[str], list[str]]]:
        """Greedy attention of each sentence: ``(weights (T, S), source subwords, output subwords)``.

        The output subwords end with ``</s>`` when the sentence ended within its length limit.
        """
        device = self.device
        with eval_mode(self.network):
            ids, maps = self.network.generate_with_attention(source.to(device), source_lengths.to(device))
        result = []
        for row, (out, weights) in enumerate(zip(ids, maps, strict=True)):
            n = int(source_lengths[row])
            target = [*self.codec.target_tokens(out), "</s>"][: weights.size(0)]
            result.append((weights[:, :n].cpu(), self.codec.source_tokens(source[row, :n].tolist()), target))
        return result


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """sacreBLEU BLEU and chrF of detokenised text, with their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    line = f"BLEU {b.score:.2f} chrF {c.score:.2f} | {bleu.get_signature()} | {chrf.get_signature()}"
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()), "line": line}
