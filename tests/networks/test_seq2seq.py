"""The seq2seq network on its own: no Lightning, a plain training step, its settings checked."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from seqtasks.encoders import GRUEncoder, LSTMEncoder
from seqtasks.networks.seq2seq import Seq2SeqNetwork


def small_network(cell=GRUEncoder, **settings) -> Seq2SeqNetwork:
    torch.manual_seed(0)
    return Seq2SeqNetwork(
        30,
        25,
        0,
        encoder=lambda size: cell(size, hidden_size=8, bidirectional=True),
        decoder=lambda size: cell(size, hidden_size=12, bidirectional=False),
        embedding_dim=10,
        attentional_size=14,
        **settings,
    )


def test_network_module_imports_no_lightning() -> None:
    code = "import sys, seqtasks.networks.seq2seq; print(any(m.startswith('lightning') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("cell", "settings"),
    [
        (GRUEncoder, {"attention": "general", "scheduled_sampling": 0.5}),
        (LSTMEncoder, {"attention": "additive", "bridge": "zero", "input_feeding": False}),
    ],
)
def test_plain_training_step_lowers_the_loss(cell, settings: dict) -> None:
    """Forward, cross-entropy, backward and an optimizer step in a plain loop: every parameter learns."""
    network = small_network(cell, **settings)
    source = torch.randint(4, 30, (3, 7))
    lengths = torch.tensor([7, 5, 2])
    source[1, 5:], source[2, 2:] = 0, 0
    target = torch.randint(4, 25, (3, 6))
    target_in = torch.cat([torch.full((3, 1), 2), target[:, :-1]], dim=1)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        logits = network(source, lengths, target_in)
        assert logits.shape == (3, 6, 25)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 25), target.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        if not losses:
            assert all(p.grad is not None for p in network.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    network.eval()
    ids = network.generate(source, lengths, beam=2, max_length=4)
    assert len(ids) == 3 and all(len(x) <= 4 for x in ids)


def test_bidirectional_decoder_is_refused() -> None:
    with pytest.raises(ValueError, match="unidirectional"):
        Seq2SeqNetwork(
            10,
            10,
            0,
            encoder=lambda s: GRUEncoder(s, 8),
            decoder=lambda s: GRUEncoder(s, 8, bidirectional=True),
        )


@pytest.mark.parametrize(("setting", "value"), [("scheduled_sampling", 1.5), ("bridge", "mean")])
def test_bad_settings_are_refused(setting: str, value) -> None:
    with pytest.raises(ValueError, match=setting):
        small_network(**{setting: value})


def test_state_dict_keys_are_the_legacy_layout() -> None:
    """Format-1 checkpoints name the layers as the task did: the network keeps those names."""
    keys = {key.split(".")[0] for key in small_network().state_dict()}
    assert keys == {"source_embedding", "target_embedding", "encoder", "decoder", "attention", "bridge",
                    "combine", "output"}  # fmt: skip
