"""Contextual string embeddings: what a token's vector is, that padding and batching leave it alone, the
cache (used, and cleared when the LMs change), frozen vs fine-tuned LMs, and a tagger that uses them, whose
checkpoint loads and tags with no LM checkpoint file present."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from fixtures.contextual import write_tiny_lm_checkpoint, write_tiny_lm_pair
from fixtures.ner import make_tiny_ner, tiny_args

from seqtasks.checkpoints import load_trained
from seqtasks.inference.tagging import Tagger
from seqtasks.nn.contextual import ContextualStringEmbeddings
from seqtasks.tasks import load_task
from seqtasks.training import run_lightning

SHORT = ["EU", "rejects", "German", "call"]
LONG = ["Peter", "Blackburn", "visited", "Cape", "Town", "on", "Monday", "."]


@pytest.fixture
def lms(tmp_path: Path) -> tuple[Path, Path]:
    return write_tiny_lm_pair(tmp_path / "lm")


def embeddings(lms: tuple[Path, Path], fine_tune: bool = False) -> ContextualStringEmbeddings:
    return ContextualStringEmbeddings.from_checkpoints(str(lms[0]), str(lms[1]), fine_tune=fine_tune)


def lm_outputs(module: ContextualStringEmbeddings, direction: str, text: str) -> torch.Tensor:
    """The LM's top-layer outputs reading ``<eos>`` then ``text``, by hand: one row, no padding."""
    lm, index = module.lm(direction), module._index[direction]
    ids = torch.tensor([[index["<eos>"], *(index.get(c, index["<unk>"]) for c in text)]])
    with torch.no_grad():
        return lm.encoder(lm.embedding(ids)).outputs[0]


def test_output_size_is_both_hidden_widths(tmp_path: Path) -> None:
    forward = write_tiny_lm_checkpoint(tmp_path / "f.ckpt", hidden=12)
    backward = write_tiny_lm_checkpoint(tmp_path / "b.ckpt", reverse=True, hidden=7)
    module = ContextualStringEmbeddings(str(forward), str(backward))
    assert module.output_size == 19
    assert module([SHORT]).shape == (1, 4, 19)
    assert module([SHORT], length=6).shape == (1, 6, 19)


def test_embedding_is_the_lm_state_at_the_token_boundary(lms: tuple[Path, Path]) -> None:
    """Forward: after the token's last character of the sentence read from its start; backward: after the
    token's first character of the sentence read from its end."""
    module = embeddings(lms)
    hidden = module.lm("forward").encoder.output_size
    vectors = module([LONG])[0]
    text = " ".join(LONG)
    start = 0
    for i, token in enumerate(LONG):
        end = start + len(token)
        forward = lm_outputs(module, "forward", text[:end])[-1]  # the prefix up to the token's last char
        backward = lm_outputs(module, "backward", text[start:][::-1])[-1]  # the suffix, reversed
        torch.testing.assert_close(vectors[i, :hidden], forward, msg=f"forward, token {i}")
        torch.testing.assert_close(vectors[i, hidden:], backward, msg=f"backward, token {i}")
        start = end + 1


@pytest.mark.parametrize("fine_tune", [False, True])
def test_padding_and_batch_leave_a_token_alone(lms: tuple[Path, Path], fine_tune: bool) -> None:
    module = embeddings(lms, fine_tune).eval()
    alone = module([SHORT])[0]
    module.clear_cache()
    batched = module([LONG, SHORT, LONG[:2]])
    assert batched.shape[:2] == (3, len(LONG))
    torch.testing.assert_close(batched[1, : len(SHORT)], alone, rtol=1e-6, atol=1e-6)
    assert batched[1, len(SHORT) :].abs().sum() == 0  # padded positions are zeros
    assert batched[2, 2:].abs().sum() == 0


def count_calls(module: ContextualStringEmbeddings) -> dict[str, int]:
    calls = {"forward": 0, "backward": 0}
    for direction in calls:

        def hook(*_: object, direction: str = direction) -> None:
            calls[direction] += 1

        module.lm(direction).encoder.register_forward_hook(hook)
    return calls


def test_cache_is_used_for_a_repeated_sentence(lms: tuple[Path, Path]) -> None:
    module = embeddings(lms)
    calls = count_calls(module)
    first = module([SHORT, LONG])
    assert calls == {"forward": 1, "backward": 1} and module.cache_size == 2
    again = module([LONG, SHORT])  # both cached: no LM runs
    assert calls == {"forward": 1, "backward": 1}
    torch.testing.assert_close(again[1, :4], first[0, :4])
    module([SHORT, ["new", "one"]])  # only the new sentence is computed
    assert calls == {"forward": 2, "backward": 2} and module.cache_size == 3


def test_cache_is_cleared_when_the_lm_changes(lms: tuple[Path, Path]) -> None:
    module = embeddings(lms)
    calls = count_calls(module)
    before = module([SHORT])
    with torch.no_grad():  # an in-place change, as an optimizer step makes
        module.lm("backward").encoder.rnn.weight_hh_l0.add_(0.5)
    after = module([SHORT])
    assert calls == {"forward": 2, "backward": 2} and module.cache_size == 1
    hidden = module.lm("forward").encoder.output_size
    torch.testing.assert_close(after[..., :hidden], before[..., :hidden])  # the forward LM is unchanged
    assert not torch.allclose(after[..., hidden:], before[..., hidden:])
    state = {k: v.clone() for k, v in embeddings(lms).state_dict().items()}
    module.load_state_dict(state)  # back to the checkpoint's weights (load_state_dict copies in place)
    torch.testing.assert_close(module([SHORT]), before)
    assert calls == {"forward": 3, "backward": 3}


def test_frozen_lms_take_no_gradient_and_stay_in_eval_mode(lms: tuple[Path, Path]) -> None:
    module = embeddings(lms).train()
    assert not module.lms.training and all(not p.requires_grad for p in module.lms.parameters())
    probe = torch.nn.Linear(module.output_size, 1)
    probe(module([SHORT, LONG])).sum().backward()
    assert all(p.grad is None for p in module.lms.parameters())
    assert probe.weight.grad is not None


def test_fine_tuned_lms_take_gradient_and_are_not_cached(lms: tuple[Path, Path]) -> None:
    module = embeddings(lms, fine_tune=True).train()
    assert module.lms.training and all(p.requires_grad for p in module.lms.parameters())
    calls = count_calls(module)
    module([SHORT])
    module([SHORT]).sum().backward()
    assert calls == {"forward": 2, "backward": 2} and module.cache_size == 0
    for direction in ("forward", "backward"):
        grad = module.lm(direction).encoder.rnn.weight_ih_l0.grad
        assert grad is not None and grad.abs().sum() > 0, direction


def test_wrong_lms_are_refused_by_name(tmp_path: Path) -> None:
    forward = write_tiny_lm_checkpoint(tmp_path / "f.ckpt")
    backward = write_tiny_lm_checkpoint(tmp_path / "b.ckpt", reverse=True)
    with pytest.raises(ValueError, match=r"backward language model .*f\.ckpt.*reversed text"):
        ContextualStringEmbeddings(str(forward), str(forward))
    with pytest.raises(ValueError, match=r"forward language model .*reading order"):
        ContextualStringEmbeddings(str(backward), str(backward))


def test_lowercasing_lm_reads_lowercased_tokens(tmp_path: Path) -> None:
    forward = write_tiny_lm_checkpoint(tmp_path / "f.ckpt", lowercase=True)
    backward = write_tiny_lm_checkpoint(tmp_path / "b.ckpt", reverse=True, lowercase=True)
    module = ContextualStringEmbeddings(str(forward), str(backward))
    torch.testing.assert_close(module([["EU", "Rejects"]]), module([["eu", "rejects"]]))


def test_tagger_with_contextual_embeddings_trains_and_loads_without_lm_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    forward, backward = write_tiny_lm_pair(tmp_path / "lm")
    contextual = {
        "class_path": "seqtasks.nn.contextual.ContextualStringEmbeddings",
        "init_args": {"forward_lm": str(forward), "backward_lm": str(backward), "fine_tune": False},
    }
    dataset = make_tiny_ner(tmp_path / "data")
    args = tiny_args(tmp_path / "run", dataset, max_epochs=8, network={"contextual": contextual})
    try:
        cli = run_lightning(["fit", *args, "--test_after_fit", "false"])
    finally:
        os.environ.pop("PL_GLOBAL_SEED", None)
    assert float(cli.trainer.checkpoint_callback.best_model_score) > 80  # val/f1 on the tiny set
    network = cli.model.network
    assert network.contextual is not None and network.contextual.cache_size > 0
    frozen = {k: v for k, v in network.state_dict().items() if k.startswith("contextual.")}
    original = embeddings((forward, backward)).state_dict()
    assert frozen and all(torch.equal(v, original[k.removeprefix("contextual.")]) for k, v in frozen.items())
    sentences = [["Peter", "Blackburn", "visited", "Paris"], ["Yoda", "met", "Anna", "Karenina", "."]]
    expected = Tagger.from_task(cli.model).tag_tokens(sentences)
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    forward.unlink()
    backward.unlink()  # the tagger's checkpoint must be enough
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert any(k.startswith("network.contextual.lms.forward_lm.") for k in checkpoint["state_dict"])
    trained = load_trained(ckpt)
    assert Tagger.from_task(trained).tag_tokens(sentences) == expected
    model = load_task(ckpt)
    assert Tagger.from_task(model).tag_tokens(sentences) == expected
    with pytest.raises(ValueError, match="raw tokens"):
        batch = Tagger.from_task(trained).encode(sentences)
        trained.network(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
