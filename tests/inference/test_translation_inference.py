"""The translation inference API: a format-1 checkpoint translates bit-identically to the code that wrote it,
batching and ordering change nothing, empty texts are refused as in training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqtasks.checkpoints import load_task
from seqtasks.inference.translation import Translator, corpus_scores

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(LEGACY / "expected.pt", weights_only=True)["translator"]


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.from_checkpoint(LEGACY / "translator.ckpt")


def test_legacy_checkpoint_translates_as_recorded(translator: Translator, expected: dict) -> None:
    assert translator.translate(expected["texts"], beam=1) == expected["greedy"]
    assert translator.translate(expected["texts"], beam=3) == expected["beam3"]


def test_legacy_checkpoint_network_outputs_are_as_recorded(expected: dict) -> None:
    task = load_task(LEGACY / "translator.ckpt")  # weights_only, upgraded in memory
    translator = Translator.from_task(task)
    source, lengths = translator.codec.source_batch(expected["texts"])
    assert torch.equal(source, expected["source"]) and torch.equal(lengths, expected["source_lengths"])
    with torch.no_grad():
        assert task.network.generate(source, lengths, beam=1) == expected["generate_greedy"]
        assert task.network.generate(source, lengths, beam=3) == expected["generate_beam3"]
        logits = task(expected["source"], expected["source_lengths"], expected["target_in"])
    # logits to float rounding: the recording's CPU (Intel, AMX) and another (AMD Zen 4) differ in the last
    # bits of oneDNN's products; the decoded outputs above are compared exactly
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_batch_size_and_order_change_nothing(translator: Translator, expected: dict, beam: int) -> None:
    texts = expected["texts"]
    together = translator.translate(texts, beam=beam)
    assert translator.translate(texts, beam=beam, batch_size=2) == together
    assert translator.translate(texts[::-1], beam=beam, batch_size=1) == together[::-1]
    assert translator.translate([], beam=beam) == []


def test_max_length_caps_the_output(translator: Translator, expected: dict) -> None:
    source, lengths = translator.codec.source_batch(expected["texts"])
    ids = translator.network.generate(source, lengths, beam=1, max_length=2)
    assert all(len(x) <= 2 for x in ids)


def test_translate_leaves_the_network_in_its_mode(translator: Translator, expected: dict) -> None:
    translator.network.train()
    try:
        assert translator.translate(expected["texts"]) == expected["greedy"]  # decoded in eval mode
        assert translator.network.training
    finally:
        translator.network.eval()


def test_empty_text_is_refused(translator: Translator) -> None:
    with pytest.raises(ValueError, match="non-empty text"):
        translator.translate(["a red cat", "  "])


def test_attention_maps_have_a_row_per_output_subword(translator: Translator, expected: dict) -> None:
    source, lengths = translator.codec.source_batch(expected["texts"][:2])
    maps = translator.attention_maps(source, lengths)
    for (weights, src, tgt), n in zip(maps, lengths.tolist(), strict=True):
        assert weights.shape == (len(tgt), n) and len(src) == n and src[-1] == "</s>"
        assert torch.allclose(weights.sum(-1), torch.ones(len(tgt)))


def test_corpus_scores_carry_the_signatures() -> None:
    sentence = "दो कुत्ते घास पर खेल रहे हैं"
    scores = corpus_scores([sentence], [sentence])
    assert scores["bleu"] == pytest.approx(100.0) and "nrefs:1" in scores["line"]
