"""Greedy and beam search over the seq2seq network: beam 1 is greedy, a batch decodes as its sentences."""

from __future__ import annotations

import pytest
import torch

from seqtasks.data.translation import EOS_INDEX
from seqtasks.encoders import GRUEncoder, LSTMEncoder
from seqtasks.networks.seq2seq import Seq2SeqNetwork
from seqtasks.nn.decoding import beam_search


def make_model(
    attention: str = "general", cell=GRUEncoder, vocab: int = 23, eos_bias: float = 1.0
) -> Seq2SeqNetwork:
    torch.manual_seed(0)
    model = Seq2SeqNetwork(
        vocab,
        vocab,
        0,
        encoder=lambda size: cell(size, hidden_size=8, bidirectional=True),
        decoder=lambda size: cell(size, hidden_size=16, bidirectional=False),
        attention=attention,
        embedding_dim=12,
        attention_hidden_size=10,
        attentional_size=14,
    )
    with torch.no_grad():  # sharpen the random output layer, so hypotheses differ and some end early
        model.output.weight.mul_(8.0)
        model.output.bias[EOS_INDEX] += eos_bias
    return model.eval()


def random_batch(rows: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (rows,), generator=generator)
    lengths[0] = 9
    source = torch.zeros(rows, int(lengths.max()), dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        source[row, :n] = torch.randint(4, 23, (n,), generator=generator)
    return source, lengths


@pytest.mark.parametrize(("attention", "cell"), [("general", GRUEncoder), ("additive", LSTMEncoder)])
def test_beam_of_one_is_greedy(attention: str, cell) -> None:
    model = make_model(attention, cell)
    source, lengths = random_batch()
    greedy = model.generate(source, lengths, beam=1)
    state = model.encode(source, lengths)
    limits = model.max_lengths(lengths.tolist())
    beam, _ = beam_search(model.decode_step, model.reorder, state, 2, EOS_INDEX, limits, beam_size=1)
    assert beam == greedy
    assert len({len(g) for g in greedy}) > 1, "the test should see sentences of different lengths"


@pytest.mark.parametrize("beam_size", [1, 5])
def test_batch_decodes_as_its_sentences_one_by_one(beam_size: int) -> None:
    model = make_model("general", eos_bias=1.0)
    source, lengths = random_batch()
    batched = model.generate(source, lengths, beam=beam_size)
    limits = model.max_lengths(lengths.tolist())
    assert any(len(b) < n for b, n in zip(batched, limits, strict=True)), "some sentence should end early"
    alone = [
        model.generate(source[i : i + 1, : int(lengths[i])], lengths[i : i + 1], beam=beam_size)[0]
        for i in range(source.size(0))
    ]
    assert batched == alone


def test_beam_search_finds_a_likelier_sequence_than_greedy() -> None:
    """Beam 5 without length normalisation never scores below greedy under the model (sum of log-probs)."""
    model = make_model("general")
    source, lengths = random_batch(rows=4, seed=3)

    def score(ids: list[int], row: int) -> float:
        state = model.encode(source[row : row + 1], lengths[row : row + 1])
        tokens, total = torch.tensor([2]), 0.0
        for token in [*ids, EOS_INDEX]:
            logits, state, _ = model.decode_step(tokens, state)
            total += float(torch.log_softmax(logits, -1)[0, token])
            tokens = torch.tensor([token])
        return total

    greedy = model.generate(source, lengths, beam=1)
    beam = model.generate(source, lengths, beam=5, length_penalty=0.0)
    for row in range(4):
        if len(greedy[row]) < model.max_lengths([int(lengths[row])])[0]:  # greedy ended with </s>
            assert score(beam[row], row) >= score(greedy[row], row) - 1e-4
