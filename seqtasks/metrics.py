"""Sequence metrics as torchmetrics Metrics: sum states, so the values are exact across ranks.

:class:`SpanF1` is the entity-level precision/recall/F1 of the CoNLL shared tasks. Spans are read exactly
as the official ``conlleval`` script reads them (:func:`seqtasks.tags.spans`; seqeval in its default
mode): an ``I-X`` after ``O`` or after another type starts a span, and a predicted span counts only when
its type, start and end all match a gold span. :func:`span_scores` scores whole tagged corpora with it.

:class:`CorpusBLEU` and :class:`CorpusChrF` are translation's corpus scores as sacreBLEU computes them, on
its 0–100 scale, for validation and test logging (the printed reports use sacreBLEU itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.text import CHRFScore, SacreBLEUScore

from seqtasks.tags import span_types, spans


class SpanF1(Metric):
    """Entity-level micro precision, recall and F1 (percent), and F1 per entity type.

    ``update`` takes tag-id tensors ``(B, T)`` and a mask, or lists of tag-name sequences. ``compute``
    returns ``{"precision", "recall", "f1"}`` plus ``"f1/<TYPE>"`` per type.

    Args:
        labels: tag names in tag-id order; the entity types are read from them.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, labels: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.labels = list(labels)
        self.types = span_types(self.labels)
        self._type_index = {t: i for i, t in enumerate(self.types)}
        size = len(self.types)
        self.add_state("tp", default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("pred", default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("gold", default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")

    def _to_names(self, ids: Tensor, mask: Tensor | None) -> list[list[str]]:
        lengths = mask.long().sum(dim=1).tolist() if mask is not None else [ids.size(1)] * ids.size(0)
        rows = ids.tolist()
        return [[self.labels[i] for i in row[:n]] for row, n in zip(rows, lengths, strict=True)]

    def update(
        self,
        preds: Tensor | Sequence[Sequence[str]],
        target: Tensor | Sequence[Sequence[str]],
        mask: Tensor | None = None,
    ) -> None:
        if isinstance(preds, Tensor):
            preds = self._to_names(preds, mask)
        if isinstance(target, Tensor):
            target = self._to_names(target, mask)
        if len(preds) != len(target):
            raise ValueError(f"{len(preds)} predicted sentences but {len(target)} gold ones")
        tp = [0] * len(self.types)
        pred = [0] * len(self.types)
        gold = [0] * len(self.types)
        for p_tags, g_tags in zip(preds, target, strict=True):
            if len(p_tags) != len(g_tags):
                raise ValueError(f"a sentence has {len(p_tags)} predicted tags but {len(g_tags)} gold tags")
            p_chunks, g_chunks = set(spans(p_tags)), set(spans(g_tags))
            for counts, found in ((pred, p_chunks), (gold, g_chunks), (tp, p_chunks & g_chunks)):
                for kind, _, _ in found:
                    if kind not in self._type_index:
                        raise ValueError(f"entity type {kind!r} is not among {self.types}")
                    counts[self._type_index[kind]] += 1
        device = self.tp.device
        self.tp = self.tp + torch.tensor(tp, device=device)
        self.pred = self.pred + torch.tensor(pred, device=device)
        self.gold = self.gold + torch.tensor(gold, device=device)

    def compute(self) -> dict[str, Tensor]:
        def prf(tp: Tensor, pred: Tensor, gold: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            tp, pred, gold = tp.double(), pred.double(), gold.double()
            precision = torch.where(pred > 0, tp / pred.clamp(min=1), torch.zeros_like(tp))
            recall = torch.where(gold > 0, tp / gold.clamp(min=1), torch.zeros_like(tp))
            total = precision + recall
            f1 = torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-12), torch.zeros_like(tp))
            return 100 * precision.float(), 100 * recall.float(), 100 * f1.float()

        precision, recall, f1 = prf(self.tp.sum(), self.pred.sum(), self.gold.sum())
        out = {"precision": precision, "recall": recall, "f1": f1}
        _, _, per_type = prf(self.tp, self.pred, self.gold)
        for kind, value in zip(self.types, per_type, strict=True):
            out[f"f1/{kind}"] = value
        return out


def span_scores(
    predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], labels: Sequence[str] = ()
) -> dict[str, float]:
    """Span precision, recall and F1 (percent, and ``f1/<TYPE>``) of tagged sentences against gold ones.

    The types are those of ``labels`` (e.g. the model's tag set) and of the gold tags together, so a
    corpus with a type the model never predicts scores it as missed rather than failing.
    """
    types = sorted(set(span_types(labels)) | {kind for tags in gold for kind, _, _ in spans(tags)})
    metric = SpanF1(["O"] + [f"B-{kind}" for kind in types])
    metric.update(predicted, gold)
    return {name: float(value) for name, value in metric.compute().items()}


class CorpusBLEU(SacreBLEUScore):
    """Corpus BLEU as sacreBLEU computes it (13a tokenisation, one reference), on sacreBLEU's 0–100 scale.

    torchmetrics' states are n-gram counts, summed across ranks, so the score is the corpus score of
    every rank's sentences together; the translation task updates it with real rows only (not the rows
    repeated under DDP to keep the ranks in step), so each sentence counts once.
    """

    def compute(self) -> Tensor:
        return super().compute() * 100


class CorpusChrF(CHRFScore):
    """chrF as sacreBLEU's default computes it (character 6-grams, no word n-grams: ``nw:0``), 0–100.

    torchmetrics' own default adds word bigrams (chrF++); this one agrees with sacreBLEU's chrF to about
    0.01 on real output (float32 statistics).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(n_char_order=6, n_word_order=0, **kwargs)

    def compute(self) -> Tensor:
        return super().compute() * 100
