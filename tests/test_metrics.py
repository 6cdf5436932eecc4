"""SpanF1 equals conlleval (seqeval's default mode reproduces it) on random and on model-made tags."""

from __future__ import annotations

import random

import pytest
import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from seqtasks.metrics import SpanF1, span_scores
from seqtasks.tags import spans

LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def seqeval_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    scores = {
        "precision": 100 * precision_score(gold, pred),
        "recall": 100 * recall_score(gold, pred),
        "f1": 100 * f1_score(gold, pred),
    }
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    for kind in ("LOC", "MISC", "ORG", "PER"):
        if kind in report:
            scores[f"f1/{kind}"] = 100 * report[kind]["f1-score"]
    return scores


def assert_same_as_seqeval(gold: list[list[str]], pred: list[list[str]]) -> None:
    metric = SpanF1(LABELS)
    half = len(gold) // 2  # two updates: the state accumulates like it does over batches
    metric.update(pred[:half], gold[:half])
    metric.update(pred[half:], gold[half:])
    ours = {k: float(v) for k, v in metric.compute().items()}
    for name, value in seqeval_scores(gold, pred).items():
        assert ours[name] == pytest.approx(value, abs=1e-4), name


def test_spans_read_ill_formed_sequences_like_conlleval() -> None:
    """An I-X after O or after another type opens a chunk; a B-X right after I-X closes one."""
    tags = ["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "I-ORG", "B-ORG", "B-ORG", "I-ORG"]
    assert set(spans(tags)) == {("PER", 0, 1), ("LOC", 3, 3), ("ORG", 4, 5), ("ORG", 6, 6), ("ORG", 7, 8)}


@pytest.mark.parametrize("seed", range(5))
def test_equals_seqeval_on_random_tags(seed: int) -> None:
    """Random sequences, ill-formed ones included (I- after O, type switches), with partial overlaps."""
    rng = random.Random(seed)
    gold, pred = [], []
    for _ in range(60):
        length = rng.randint(1, 12)
        g = [rng.choice(LABELS) for _ in range(length)]
        p = [t if rng.random() < 0.7 else rng.choice(LABELS) for t in g]
        gold.append(g)
        pred.append(p)
    assert_same_as_seqeval(gold, pred)


def test_tensor_updates_with_a_mask_match_lists() -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, len(LABELS), (4, 6))
    target = torch.randint(0, len(LABELS), (4, 6))
    lengths = torch.tensor([6, 3, 1, 5])
    mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    metric = SpanF1(LABELS)
    metric.update(ids, target, mask)
    by_list = SpanF1(LABELS)

    def names(t):
        return [[LABELS[i] for i in row[:n]] for row, n in zip(t.tolist(), lengths.tolist(), strict=True)]

    by_list.update(names(ids), names(target))
    assert metric.tp.tolist() == by_list.tp.tolist() and metric.pred.tolist() == by_list.pred.tolist()


def test_states_are_counts_summed_across_ranks() -> None:
    """tp/pred/gold are integer counts reduced by sum, so the synced value is the global F1, not a mean."""
    metric = SpanF1(LABELS)
    assert set(metric._defaults) == {"tp", "pred", "gold"}
    for name in ("tp", "pred", "gold"):
        assert metric._reductions[name].__name__ == "dim_zero_sum"
    # two "ranks" merged by summing states give the F1 of all sentences together
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"], ["O", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O"], ["O"], ["O", "B-ORG"]]
    a, b, whole = SpanF1(LABELS), SpanF1(LABELS), SpanF1(LABELS)
    a.update(pred[:1], gold[:1])
    b.update(pred[1:], gold[1:])
    whole.update(pred, gold)
    a.merge_state(b)
    assert float(a.compute()["f1"]) == pytest.approx(float(whole.compute()["f1"]))
    assert float(whole.compute()["f1"]) == pytest.approx(100 * 2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))


def test_span_scores_count_gold_types_the_model_does_not_know() -> None:
    """predict-conll's scores: a gold type outside the model's tag set counts as missed, not as an error."""
    gold = [["B-PER", "I-PER", "O", "B-ORG"], ["B-LOC"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-LOC"]]
    scores = span_scores(predicted, gold, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    assert scores["precision"] == pytest.approx(100.0) and scores["recall"] == pytest.approx(200 / 3)
    assert scores["f1/ORG"] == 0.0 and scores["f1/PER"] == pytest.approx(100.0)
