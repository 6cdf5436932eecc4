"""Sampling: top-k / top-p filtering and seeded reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from seqtasks.nn.sampling import filter_logits, sample_bernoulli, sample_categorical


def test_top_k_keeps_the_k_largest() -> None:
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0, 0.0]])
    out = filter_logits(logits, top_k=2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False, False]]
    assert out[0, 1] == 4.0  # kept values are unchanged


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15]])
    logits = probs.log()
    kept = lambda p: torch.isfinite(filter_logits(logits, top_p=p)).tolist()[0]  # noqa: E731
    assert kept(0.5) == [True, False, False, False]
    assert kept(0.6) == [True, False, True, False]
    assert kept(0.81) == [True, False, True, True]
    assert kept(1.0) == [True, True, True, True]
    assert kept(0.01) == [True, False, False, False]  # the most probable always survives


def test_filtered_sampling_never_leaves_the_kept_set() -> None:
    logits = torch.tensor([[0.0, 0.0, 5.0, 4.9, -1.0]]).repeat(500, 1)
    draws = sample_categorical(logits, temperature=2.0, top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {2, 3}


def test_same_seed_same_draws_different_seed_different() -> None:
    logits = torch.randn(64, 30, generator=torch.Generator().manual_seed(3))

    def draw(seed: int) -> list[int]:
        return sample_categorical(
            logits, 1.0, top_p=0.95, generator=torch.Generator().manual_seed(seed)
        ).tolist()

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    assert sample_categorical(logits, temperature=0).tolist() == logits.argmax(-1).tolist()


def test_bernoulli_top_k_and_rate() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.full((2000, 88), math.log(0.3 / 0.7))
    rate = sample_bernoulli(logits, generator=generator).mean().item()
    assert abs(rate - 0.3) < 0.01
    logits = torch.full((50, 88), 5.0)
    logits[:, :3] = 6.0
    assert sample_bernoulli(logits, top_k=3, generator=generator).sum(-1).max() <= 3


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="temperature"):
        sample_categorical(torch.zeros(1, 3), temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        sample_categorical(torch.zeros(1, 3), top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        sample_bernoulli(torch.zeros(1, 3), top_k=0)
