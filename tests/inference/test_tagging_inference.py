"""The tagging inference API: legacy (format-1) checkpoints give bit-identical outputs, and bad input is
refused the way training refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqtasks.checkpoints import load_task
from seqtasks.inference.tagging import Tagger, entity_tuples
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.tasks import TokenTagger

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(LEGACY / "expected.pt", weights_only=True)


@pytest.mark.parametrize("name", ["tagger", "tagger_softmax"])
def test_legacy_checkpoint_reproduces_its_recorded_outputs(name: str, expected: dict) -> None:
    """Format 1 (layers on the task, optimizer as flat settings) loads weights_only and tags as recorded."""
    record = expected[name]
    task = load_task(LEGACY / f"{name}.ckpt")
    assert isinstance(task, TokenTagger) and not task.training
    assert isinstance(task.network, TaggerNetwork) and (task.network.crf is None) == (
        name == "tagger_softmax"
    )
    optimizer = task.configure_optimizers()  # format 1's adam, lr 0.02, no step decay
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["lr"] == 0.02
    tagger = Tagger.from_task(task)
    assert tagger.tag_tokens(record["sentences"]) == record["tags"]
    results = tagger.tag(record["texts"])  # the records, mapped back to the recorded (format-1) outputs
    assert [[t["text"] for t in r["tokens"]] for r in results] == record["tag_tokens"]
    assert [[t["tag"] for t in r["tokens"]] for r in results] == record["tag_tags"]
    assert [[list(e) for e in entity_tuples(r)] for r in results] == record["tag_entities"]
    for text, result in zip(record["texts"], results, strict=True):  # offsets into the original text
        assert result["text"] == text
        assert all(text[t["start"] : t["end"]] == t["text"] for t in result["tokens"])
        assert all(text[e["start"] : e["end"]] == e["text"] for e in result["entities"])
    batch = tagger.encode(record["sentences"])
    for key in ("words", "chars", "casing", "lengths"):
        assert torch.equal(batch[key], record[key]), key
    with torch.no_grad():
        scores = tagger.network(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
    # to float rounding, not bit for bit: the recording's CPU (Intel, AMX) and another (AMD Zen 4) differ in
    # the last bits of oneDNN's products (9.5e-7 here); the tags above and below are compared exactly
    torch.testing.assert_close(scores, record["scores"], rtol=1e-5, atol=1e-5)
    predicted = task.predict_step(batch, 0)  # records, decoded as the inference API decodes them
    assert [[t["tag"] for t in r["tokens"]] for r in predicted] == record["tags"]
    assert [r["id"] for r in predicted] == [1, 2, 3, 4, 5]


def test_from_checkpoint_and_bad_input(expected: dict) -> None:
    tagger = Tagger.from_checkpoint(LEGACY / "tagger.ckpt", batch_size=2)
    sentences = expected["tagger"]["sentences"]
    assert tagger.tag_tokens(sentences) == expected["tagger"]["tags"]  # batches of 2: same tags
    with pytest.raises(ValueError, match="sentence 2: an empty sentence"):
        tagger.tag_tokens([["Paris"], []])
    with pytest.raises(ValueError, match="text 1: no tokens to tag"):
        tagger.tag(["   "])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        Tagger(tagger.network, tagger.codec, tagger.labels, batch_size=0)


def test_a_classifier_is_not_a_tagger() -> None:
    with pytest.raises(TypeError, match="does not tag tokens"):
        Tagger.from_task(load_task(LEGACY / "classifier.ckpt"))
