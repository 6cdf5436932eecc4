"""LanguageModelDataModule's ``reverse``: each text's characters reversed before the stream is built (the
backward LM of contextual string embeddings), the same texts held out, the same vocabulary; off by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.language_model import make_tiny_texts, make_tiny_tokens

from seqtasks.data.language_model import EOS, LanguageModelDataModule, StreamCodec
from seqtasks.data.text import PAD, UNK, Vocabulary


def texts_of(module: LanguageModelDataModule, split: str) -> list[str]:
    """The split's stream cut at ``<eos>`` back into texts."""
    text = module.codec.decode(module.stream(split).tolist())
    return [t for t in text.split(EOS) if t]


def test_codec_reverses_each_text() -> None:
    vocabulary = Vocabulary([PAD, UNK, EOS, *"EUcejrst "])
    codec = StreamCodec("char", lowercase=False, vocabulary=vocabulary, reverse=True)
    assert codec.symbols(["EU", "rejects"]) == list("stcejer UE")
    assert codec.symbols("Hi  you<br />x") == list("x uoy iH")
    assert StreamCodec("word", lowercase=True, reverse=True).symbols("The fan works") == [
        "works",
        "fan",
        "the",
    ]
    assert StreamCodec.from_state(codec.state_dict()).reverse
    assert codec.decode(codec.encode(["EU", "rejects"])[:-1]) == "stcejer UE"
    plain = StreamCodec("char", lowercase=False, vocabulary=vocabulary)
    assert "reverse" not in plain.state_dict() and not StreamCodec.from_state(plain.state_dict()).reverse


@pytest.mark.parametrize("make", [make_tiny_texts, make_tiny_tokens])
def test_reversed_streams_hold_the_same_texts_reversed(tmp_path: Path, make) -> None:
    column = "tokens" if make is make_tiny_tokens else "text"
    spec = f"{make(tmp_path / 'texts')}:{column}"
    settings = {"texts": [spec], "level": "char", "lowercase": False, "min_freq": 1, "batch_size": 2,
                "validation_fraction": 0.2}  # fmt: skip
    forward = LanguageModelDataModule(**settings)
    backward = LanguageModelDataModule(**settings, reverse=True)
    forward.prepare_data()
    backward.prepare_data()
    assert forward.prepared_dir() != backward.prepared_dir()
    assert sorted(forward.vocabulary.tokens) == sorted(backward.vocabulary.tokens)
    for split in ("train", "validation"):
        reversed_texts = [t[::-1] for t in texts_of(forward, split)]
        assert texts_of(backward, split) == reversed_texts and reversed_texts, split
    assert backward.artefacts()["codec"]["reverse"] is True
    assert "reverse" not in forward.artefacts()["codec"]
