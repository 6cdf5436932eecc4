"""Translating with a trained seq2seq network: the API ``seqtasks translate``, the task's validation, test and
predict steps, the benchmarks and a server all call.

    translator = Translator.from_checkpoint("best.ckpt")
    translator.translate(["How are you?"], beam=5)

The keyword names are the command's option names (``--beam``, ``--max-length``, ``--batch-size``,
``--length-penalty``). Texts are encoded by the same :class:`~seqtasks.data.translation.TranslationCodec` as
the training batches, so an empty text is refused here as it is in training. :func:`corpus_scores` gives
sacreBLEU's BLEU and chrF of the output, with their signatures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from seqtasks.checkpoints import CheckpointError, load_task
from seqtasks.data.translation import TranslationCodec
from seqtasks.networks.seq2seq import Seq2SeqNetwork
from seqtasks.nn.modes import eval_mode


class Translator:
    """A seq2seq network with the codec of its checkpoint.

    Args:
        network: the trained network (its device is where batches go).
        codec: the tokenizers and lengths the network was trained with.
    """

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
        task = load_task(path, map_location)
        if not isinstance(getattr(task, "network", None), Seq2SeqNetwork):
            raise CheckpointError(f"{path} holds a {type(task).__name__}, which does not translate")
        return cls.from_task(task)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def translate(
        self,
        texts: Sequence[str],
        beam: int = 1,
        max_length: int | None = None,
        batch_size: int = 64,
        length_penalty: float = 1.0,
    ) -> list[str]:
        """Translate plain texts, ``batch_size`` at a time (texts of similar length decode together).

        ``beam`` 1 is greedy decoding; ``max_length`` caps the output subwords; beam scores are divided by
        ``length ** length_penalty``. A sentence translates the same alone as in any batch.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[str] = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            source, lengths = self.codec.source_batch([texts[i] for i in rows])
            outputs = self.translate_batch(source, lengths, beam, max_length, length_penalty)
            for i, text in zip(rows, outputs, strict=True):
                results[i] = text
        return results

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
