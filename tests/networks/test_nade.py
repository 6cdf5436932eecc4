"""The NADE output layer and the RNN-NADE piano-roll network: a normalised, exact, seeded distribution."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqtasks.encoders import GRUEncoder, LSTMEncoder, RNNEncoder
from seqtasks.inference.music import Composer
from seqtasks.networks.music import PianoRollNADENetwork
from seqtasks.nn.nade import ConditionalNADE


def all_configurations(k: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=k)))


def brute_force_log_prob(nade: ConditionalNADE, condition: torch.Tensor, v: torch.Tensor) -> float:
    """The chain rule written out key by key, with no cumulative sum."""
    b_v, b_h = nade.biases(condition)
    total = 0.0
    for i in range(nade.num_visible):
        h = torch.sigmoid(b_h + nade.W[:, :i] @ v[:i])
        p = torch.sigmoid(b_v[i] + nade.V[i] @ h)
        total += float(torch.log(p if v[i] == 1 else 1 - p))
    return total


def test_probabilities_of_all_configurations_sum_to_one_and_match_the_chain_rule() -> None:
    torch.manual_seed(0)
    k = 6
    nade = ConditionalNADE(k, num_hidden=5, condition_size=3).double()
    with torch.no_grad():  # larger weights than the initialisation, so keys depend on each other strongly
        nade.W.mul_(3.0)
        nade.V.mul_(3.0)
    configs = all_configurations(k).double()
    for _ in range(3):
        condition = torch.randn(3, dtype=torch.float64)
        log_probs = nade.log_prob(condition.expand(len(configs), 3), configs).detach()
        assert float(log_probs.exp().sum()) == pytest.approx(1.0, abs=1e-10)
        for index in (0, 5, 37, 63):
            assert float(log_probs[index]) == pytest.approx(
                brute_force_log_prob(nade, condition, configs[index]), abs=1e-10
            )
    # the keys are not independent: the joint differs from the product of its marginals
    probs = log_probs.exp()
    marginals = torch.stack([probs[configs[:, i] == 1].sum() for i in range(k)])
    independent = torch.where(configs == 1, marginals, 1 - marginals).prod(-1)
    assert float((probs - independent).abs().max()) > 1e-3


def test_sampling_follows_the_distribution() -> None:
    torch.manual_seed(1)
    k = 3
    nade = ConditionalNADE(k, num_hidden=4, condition_size=2)
    with torch.no_grad():
        nade.W.mul_(4.0)
    condition = torch.randn(1, 2)
    configs = all_configurations(k)
    exact = nade.log_prob(condition.expand(len(configs), 2), configs).exp()
    draws = nade.sample(condition.expand(20000, 2), generator=torch.Generator().manual_seed(0))
    index = (draws * torch.tensor([4.0, 2.0, 1.0])).sum(-1).long()
    empirical = torch.bincount(index, minlength=8).float() / len(draws)
    assert torch.allclose(empirical, exact.detach(), atol=0.015)


@pytest.mark.parametrize("cell", [RNNEncoder, GRUEncoder, LSTMEncoder])
def test_network_nll_is_the_exact_frame_log_likelihood_over_any_encoder(cell) -> None:
    torch.manual_seed(2)
    k = 5

    def encoder(size: int):
        return cell(size, hidden_size=7, bidirectional=False)

    network = PianoRollNADENetwork(k, encoder=encoder, nade_hidden=4, input_dim=6).double().eval()
    rolls = (torch.rand(2, 4, k) < 0.4).double()
    lengths = torch.tensor([4, 3])
    nll_sum, frames, _, _ = network.nll(rolls, lengths)
    conditions = network.conditions(rolls, lengths)
    by_hand = 0.0
    for row, length in enumerate(lengths.tolist()):
        for t in range(length):
            by_hand -= brute_force_log_prob(network.head, conditions[row, t], rolls[row, t])
    assert int(frames) == 7
    assert float(nll_sum) == pytest.approx(by_hand, rel=1e-9)


def test_sampling_is_seeded_and_steps_agree_with_the_teacher_forced_pass() -> None:
    torch.manual_seed(3)

    def lstm(size: int) -> LSTMEncoder:
        return LSTMEncoder(size, hidden_size=16, bidirectional=False)

    network = PianoRollNADENetwork(88, encoder=lstm, nade_hidden=12).eval()
    first = network.generate(torch.zeros(0, 88), 10, generator=torch.Generator().manual_seed(5))
    again = network.generate(torch.zeros(0, 88), 10, generator=torch.Generator().manual_seed(5))
    other = network.generate(torch.zeros(0, 88), 10, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert int((network.generate(torch.zeros(0, 88), 10, top_k=2, generator=None).sum(-1) > 2).sum()) == 0
    # the stepping path conditions each frame like the batched pass does
    rolls = first.unsqueeze(0)
    conditions = network.conditions(rolls, torch.tensor([10]))
    state, frame, stepped = None, torch.zeros(1, 88), []
    for t in range(10):
        out, state = network.encoder.step(network.inputs(frame), state)
        stepped.append(out)
        frame = rolls[:, t]
    assert torch.allclose(torch.cat(stepped), conditions[0], atol=1e-5)


class _Task:
    def __init__(self, network) -> None:
        self.network = network
        self.artefacts = {"steps_per_quarter": 1}


def test_composer_generates_the_same_midi_bytes_from_the_same_seed() -> None:
    torch.manual_seed(4)

    def gru(size: int) -> GRUEncoder:
        return GRUEncoder(size, hidden_size=16, bidirectional=False)

    composer = Composer(_Task(PianoRollNADENetwork(88, encoder=gru, nade_hidden=8)))
    first = composer.midi_bytes(composer.generate(16, seed=1))
    assert first == composer.midi_bytes(composer.generate(16, seed=1))
    assert first != composer.midi_bytes(composer.generate(16, seed=2))
