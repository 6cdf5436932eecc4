"""CRF marginals (forward–backward) against brute-force enumeration of every tag path, with padding."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqtasks.nn.crf import CRF

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def brute_force_marginals(crf: CRF, emissions: torch.Tensor, length: int) -> torch.Tensor:
    """``(length, K)`` tag probabilities of one row: every path scored, probabilities summed per tag."""
    paths = list(itertools.product(range(crf.num_tags), repeat=length))
    tags = torch.tensor(paths)
    scores = crf.path_score(emissions[None, :length].expand(len(paths), -1, -1), tags)
    probabilities = torch.softmax(scores, dim=0)
    out = torch.zeros(length, crf.num_tags, dtype=emissions.dtype)
    for t in range(length):
        out[t].index_add_(0, tags[:, t], probabilities)
    return out


def spread(crf: CRF, seed: int) -> CRF:
    torch.manual_seed(seed)
    with torch.no_grad():  # transitions that matter
        crf.transitions.normal_(0, 1)
        crf.start.normal_(0, 1)
        crf.end.normal_(0, 1)
    return crf.double()


@pytest.mark.parametrize(
    ("num_tags", "labels"), [(3, None), (4, None), (5, LABELS)], ids=["K3", "K4", "K5-bio-constrained"]
)
def test_marginals_match_brute_force_on_a_padded_batch(num_tags: int, labels: list[str] | None) -> None:
    """Rows of lengths 4, 1, 3, 2 and 0 in one batch: each real position equals enumeration (1e-5)."""
    crf = spread(CRF(num_tags, labels, constrain_bio=labels is not None), num_tags)
    lengths = torch.tensor([4, 1, 3, 2, 0])
    emissions = torch.randn(5, 4, num_tags, dtype=torch.float64) * 2
    mask = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)
    marginals = crf.marginals(emissions, mask)
    assert marginals.shape == (5, 4, num_tags)
    for row, length in enumerate(lengths.tolist()):
        if length:
            expected = brute_force_marginals(crf, emissions[row], length)
            torch.testing.assert_close(marginals[row, :length], expected, atol=1e-5, rtol=0)
        assert torch.all(marginals[row, length:] == 0)  # padding (and the empty row) hold 0
    real = marginals.sum(dim=-1)[mask]
    torch.testing.assert_close(real, torch.ones_like(real), atol=1e-6, rtol=0)


def test_marginals_sum_to_one_and_respect_the_bio_constraints_in_float32() -> None:
    crf = spread(CRF(5, LABELS, constrain_bio=True), 0).float()
    emissions = torch.randn(3, 7, 5)
    mask = torch.arange(7).unsqueeze(0) < torch.tensor([[7], [5], [1]])
    marginals = crf.marginals(emissions, mask)
    torch.testing.assert_close(marginals.sum(-1)[mask], torch.ones(int(mask.sum())), atol=1e-5, rtol=0)
    assert marginals[:, 0, [2, 4]].max() < 1e-6  # no sentence starts with I-X
    # padding does not change a row's marginals
    alone = crf.marginals(emissions[1:2, :5], mask[1:2, :5])
    torch.testing.assert_close(alone[0], marginals[1, :5], atol=1e-6, rtol=0)


def test_the_viterbi_tag_of_a_confident_model_has_a_high_marginal() -> None:
    crf = CRF(3)
    emissions = torch.zeros(1, 3, 3)
    emissions[0, torch.arange(3), torch.tensor([2, 0, 1])] = 20.0
    marginals = crf.marginals(emissions)
    best = crf.decode(emissions)
    assert best.tolist() == [[2, 0, 1]]
    assert marginals[0].gather(1, best[0].unsqueeze(1)).min() > 0.999
