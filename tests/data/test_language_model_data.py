"""LanguageModelDataModule: text sources → one id stream → consecutive windows, every token a target once
per epoch in order per stream; held-out texts, vocabulary with <unk>/<eos>, word and character levels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures.language_model import make_tiny_texts, make_tiny_tokens

from seqtasks.data.language_model import (
    EOS,
    LanguageModelDataModule,
    StreamCodec,
    StreamWindows,
    batchify,
    parse_text_spec,
)
from seqtasks.data.text import PAD, UNK


def test_batchify_cuts_the_stream_into_consecutive_rows() -> None:
    streams = batchify(torch.arange(23), 4)
    assert streams.tolist() == [list(range(r * 5, r * 5 + 5)) for r in range(4)]  # the tail 20..22 dropped
    with pytest.raises(ValueError, match="too short"):
        batchify(torch.arange(5), 4)


@pytest.mark.parametrize("bptt", [1, 3, 7, 50])
def test_every_token_is_a_target_once_in_order(bptt: int) -> None:
    streams = batchify(torch.arange(1000) * 7 % 991, 6)
    windows = list(StreamWindows(streams, bptt))
    assert len(windows) == len(StreamWindows(streams, bptt))
    targets = torch.cat([w["targets"] for w in windows], dim=1)
    inputs = torch.cat([w["inputs"] for w in windows], dim=1)
    assert torch.equal(targets, streams[:, 1:])  # each position after the first, once, in order
    assert torch.equal(inputs, streams[:, :-1])
    assert all(w["inputs"].size(1) <= bptt for w in windows)
    for w in windows:  # the target is the next token of the same stream
        assert torch.equal(w["inputs"][:, 1:], w["targets"][:, :-1])


def test_text_specs() -> None:
    assert parse_text_spec("imdb:text") == ("imdb", "text", ["train"])
    assert parse_text_spec("imdb:text:train,unsupervised") == ("imdb", "text", ["train", "unsupervised"])
    with pytest.raises(ValueError, match="DATASET:COLUMN"):
        parse_text_spec("imdb")


def test_codec_levels() -> None:
    word = StreamCodec("word", lowercase=True)
    assert word.symbols("The fan<br />works.") == ["the", "fan", "works", "."]
    assert word.symbols(["EU", "rejects"]) == ["eu", "rejects"]
    char = StreamCodec("char", lowercase=False)
    assert char.symbols("Hi  you<br />x") == list("Hi you x")
    assert char.symbols(["EU", "rejects"]) == list("EU rejects")


def test_word_stream_vocabulary_and_held_out_texts(tmp_path: Path) -> None:
    reviews = make_tiny_texts(tmp_path / "reviews")
    data = LanguageModelDataModule(
        [f"{reviews}:text"], min_freq=2, max_size=8, batch_size=3, bptt=5, validation_fraction=0.25
    )
    data.setup("fit")
    tokens = data.vocabulary.tokens
    assert tokens[:3] == [PAD, UNK, EOS] and len(tokens) == 8 == data.vocab_size
    train, validation = data.stream("train"), data.stream("validation")
    eos = data.vocabulary.index[EOS]
    assert int((train == eos).sum()) == 30 and int((validation == eos).sum()) == 10  # 40 texts, 1/4 held out
    assert int(validation[-1]) == eos
    assert (train == data.vocabulary.unk_index).any()  # words beyond max_size are <unk>
    again = LanguageModelDataModule(
        [f"{reviews}:text"], min_freq=2, max_size=8, batch_size=3, bptt=5, validation_fraction=0.25
    )
    assert torch.equal(again.stream("validation"), validation)  # the same seed holds out the same texts
    batch = next(iter(data.train_dataloader()))
    assert batch["inputs"].shape == (3, 5) and torch.equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
    assert data.artefacts()["codec"]["vocabulary"] == tokens
    assert data.prepared["train_tokens"] == train.numel() and data.prepared["vocabulary"] == tokens


def test_char_stream_from_tokens_and_text(tmp_path: Path) -> None:
    news = make_tiny_tokens(tmp_path / "news")
    reviews = make_tiny_texts(tmp_path / "reviews")
    data = LanguageModelDataModule(
        [f"{news}:tokens", f"{reviews}:text"],
        level="char",
        lowercase=False,
        min_freq=1,
        batch_size=2,
        bptt=20,
        validation_texts=[f"{reviews}:text:test"],
        test_texts=[f"{reviews}:text:test"],
    )
    data.setup("fit")
    assert " " in data.vocabulary.index and "F" in data.vocabulary.index  # cased characters
    codec = StreamCodec.from_state(data.artefacts()["codec"])
    first = data.stream("train")[:40].tolist()
    text = codec.decode(first)
    assert text.split("<eos>")[0].split(" ")[0][0].isupper()
    assert data.test_split == "test" and torch.equal(data.stream("test"), data.stream("validation"))


def test_a_missing_column_names_the_file(tmp_path: Path) -> None:
    from seqtasks.data.errors import DataError

    reviews = make_tiny_texts(tmp_path / "reviews")
    with pytest.raises(DataError, match="no column 'body'"):
        LanguageModelDataModule([f"{reviews}:body"]).prepare_data()
