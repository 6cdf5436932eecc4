"""The CRF against brute-force enumeration of every tag path, padding invariance and IOB2 constraints."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqtasks.nn.crf import CRF, bio_allowed

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[torch.Tensor, list[int]]:
    """log Z and the best path of one row by scoring every one of K^length paths."""
    scores, paths = [], []
    for path in itertools.product(range(crf.num_tags), repeat=length):
        tags = torch.tensor([path])
        scores.append(crf.path_score(emissions[None, :length], tags).squeeze(0))
        paths.append(list(path))
    stacked = torch.stack(scores)
    return torch.logsumexp(stacked, dim=0), paths[int(stacked.argmax())]


@pytest.mark.parametrize(("num_tags", "constrain"), [(2, False), (5, False), (5, True)])
def test_log_partition_and_viterbi_match_brute_force(num_tags: int, constrain: bool) -> None:
    """Rows of lengths 1..4 in one padded batch: log Z and the Viterbi path equal exhaustive enumeration."""
    torch.manual_seed(num_tags)
    crf = CRF(num_tags, LABELS if constrain else None, constrain_bio=constrain)
    with torch.no_grad():  # spread the parameters so that transitions matter
        crf.transitions.normal_(0, 1)
        crf.start.normal_(0, 1)
        crf.end.normal_(0, 1)
    lengths = torch.tensor([4, 1, 3, 2])
    emissions = torch.randn(4, 4, num_tags)
    mask = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)
    log_z = crf.log_partition(emissions, mask)
    decoded = crf.decode(emissions, mask)
    for row, length in enumerate(lengths.tolist()):
        expected_z, expected_path = brute_force(crf, emissions[row], length)
        torch.testing.assert_close(log_z[row], expected_z, atol=1e-4, rtol=1e-5)
        assert decoded[row, :length].tolist() == expected_path
        assert decoded[row, length:].eq(0).all()


def test_nll_is_nonnegative_and_gradients_flow() -> None:
    torch.manual_seed(0)
    crf = CRF(len(LABELS), LABELS, constrain_bio=True)
    emissions = torch.randn(3, 5, len(LABELS), requires_grad=True)
    tags = torch.tensor([[1, 2, 0, 3, 4], [0, 0, 1, 0, 0], [3, 4, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    nll = crf(emissions, tags, mask, reduction="none")
    assert (nll >= -1e-5).all()
    nll.sum().backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()
    assert emissions.grad[1, 3:].abs().sum() == 0  # padding receives no gradient


def test_padding_invariance() -> None:
    """A row's likelihood and best path do not change with the padding its batch adds."""
    torch.manual_seed(1)
    crf = CRF(len(LABELS), LABELS, constrain_bio=True)
    emissions = torch.randn(1, 3, len(LABELS))
    tags = torch.tensor([[1, 2, 0]])
    alone_nll = crf(emissions, tags, reduction="none")
    alone_path = crf.decode(emissions)
    padded = torch.cat([emissions, torch.randn(1, 6, len(LABELS)) * 100], dim=1)
    padded_tags = torch.cat([tags, torch.randint(0, len(LABELS), (1, 6))], dim=1)
    mask = torch.arange(9).unsqueeze(0) < 3
    torch.testing.assert_close(crf(padded, padded_tags, mask, reduction="none"), alone_nll)
    assert crf.decode(padded, mask)[:, :3].tolist() == alone_path.tolist()


def test_bio_constraints_forbid_o_to_inside() -> None:
    """O → I-X, B-X → I-Y and a sentence opening with I-X are never decoded, whatever the emissions say."""
    allowed, start = bio_allowed(LABELS)
    index = {t: i for i, t in enumerate(LABELS)}
    assert not allowed[index["O"], index["I-PER"]]
    assert not allowed[index["B-LOC"], index["I-PER"]]
    assert not allowed[index["I-LOC"], index["I-PER"]]
    assert allowed[index["B-PER"], index["I-PER"]] and allowed[index["I-PER"], index["I-PER"]]
    assert not start[index["I-LOC"]] and start[index["B-LOC"]]
    crf = CRF(len(LABELS), LABELS, constrain_bio=True)
    emissions = torch.full((2, 4, len(LABELS)), -5.0)
    emissions[0, :, index["I-PER"]] = 5.0  # wants I-PER everywhere, from the first token
    emissions[1, 0, index["O"]] = 5.0
    emissions[1, 1:, index["I-LOC"]] = 5.0  # wants O then I-LOC
    for path in crf.decode(emissions).tolist():
        tags = [LABELS[i] for i in path]
        assert not tags[0].startswith("I-")
        for prev, tag in itertools.pairwise(tags):
            assert not tag.startswith("I-") or (prev[2:] == tag[2:] and prev != "O"), tags
    unconstrained = CRF(len(LABELS))
    with torch.no_grad():
        unconstrained.transitions.zero_()
    assert LABELS[unconstrained.decode(emissions)[0, 0]] == "I-PER"  # the constraint made the difference


def test_constraints_need_labels() -> None:
    with pytest.raises(ValueError, match="labels"):
        CRF(3, constrain_bio=True)
