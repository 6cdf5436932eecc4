"""The music metrics: exact NLL per time step, frame accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from seqtasks.music.metrics import FrameAccuracy, NLLPerStep


def test_nll_metric_equals_a_hand_computation() -> None:
    # two pieces of 2 and 1 frames over 2 keys; probabilities given directly
    probs = [[[0.9, 0.2], [0.5, 0.5]], [[0.1, 0.7]]]
    targets = [[[1, 0], [1, 1]], [[0, 0]]]
    by_hand = 0.0
    for piece_p, piece_t in zip(probs, targets, strict=True):
        for frame_p, frame_t in zip(piece_p, piece_t, strict=True):
            by_hand -= sum(math.log(p if t else 1 - p) for p, t in zip(frame_p, frame_t, strict=True))
    by_hand /= 3  # three time steps, each counted once
    metric = NLLPerStep()
    for piece_p, piece_t in zip(probs, targets, strict=True):  # one batch per piece: sums, not means of means
        p, t = torch.tensor(piece_p), torch.tensor(piece_t, dtype=torch.float)
        nll = torch.nn.functional.binary_cross_entropy(p, t, reduction="sum")
        metric.update(nll, len(piece_p))
    assert metric.compute().item() == pytest.approx(by_hand, rel=1e-6)


def test_frame_accuracy_is_tp_over_tp_fp_fn() -> None:
    metric = FrameAccuracy()
    probs = torch.tensor([[[0.9, 0.6, 0.1], [0.2, 0.8, 0.7]]])
    targets = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])
    metric.update(probs, targets, mask=torch.tensor([[True, True]]))
    metric.update(torch.ones(1, 1, 3), torch.zeros(1, 1, 3), mask=torch.tensor([[False]]))  # padding: ignored
    # TP = 3 (k0 f0, k1 f1, k2 f1), FP = 1 (k1 f0), FN = 1 (k2 f0)
    assert metric.compute().item() == pytest.approx(3 / 5)
