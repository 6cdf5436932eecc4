"""What every task's LightningModule does around a training step, for speed, without changing a result:
the batch transfer passes text on untouched, and Lightning's hook bookkeeping skips nn.Module's checks."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from seqtasks.encoders import GRUEncoder
from seqtasks.networks.music import PianoRollNetwork
from seqtasks.tasks.music import PianoRollComposer


def _task() -> PianoRollComposer:
    return PianoRollComposer(
        lambda keys: PianoRollNetwork(keys, lambda n: GRUEncoder(n, hidden_size=8, bidirectional=False))
    )


def test_a_batch_transfer_moves_tensors_and_passes_text_on(monkeypatch: pytest.MonkeyPatch) -> None:
    moved: list[object] = []
    original = pl.LightningModule.transfer_batch_to_device

    def spy(self, value, device, dataloader_idx):
        moved.append(value)
        return original(self, value, device, dataloader_idx)

    monkeypatch.setattr(pl.LightningModule, "transfer_batch_to_device", spy)
    tokens = [["Dhaval", "loves", "baby", "yoda"], ["EU", "rejects"], []]
    words, nested = torch.arange(6).view(3, 2), [torch.ones(2), ("a", torch.zeros(1))]
    batch = {"words": words, "tokens": tokens, "mixed": nested, "title": "x"}
    out = _task().transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert out["tokens"] is tokens and out["title"] == "x"
    assert torch.equal(out["words"], words)
    assert any(value is words for value in moved) and any(value is nested for value in moved)
    assert not any(value is tokens for value in moved)  # text is not walked by Lightning's transfer
    assert torch.equal(out["mixed"][0], nested[0]) and out["mixed"][1][0] == "a"
    whole = (words, tokens)  # not a dict: Lightning's own transfer, as it is
    assert _task().transfer_batch_to_device(whole, torch.device("cpu"), 0)[1] == tokens


def test_lightnings_hook_name_is_plain_bookkeeping() -> None:
    task = _task()
    parameters = len(list(task.parameters()))
    task._current_fx_name = "training_step"
    assert task._current_fx_name == "training_step" and "_current_fx_name" in vars(task)
    task._current_fx_name = None
    assert task._current_fx_name is None
    task.extra = torch.nn.Parameter(torch.ones(1))  # every other attribute: nn.Module's own rules
    assert len(list(task.parameters())) == parameters + 1
