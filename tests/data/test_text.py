"""Tokenizer, vocabulary and text encoder: deterministic, and stored as plain data."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch

from seqtasks.data.text import PAD, UNK, EmptyTextError, TextCodec, Vocabulary, WordTokenizer


def test_tokenizer_drops_html_breaks_lowercases_and_splits_punctuation() -> None:
    """IMDB keeps ``<br />`` tags; they must not become tokens, and punctuation is its own token."""
    tokens = WordTokenizer()("Great<br />movie!<BR>It's FUN, really...")
    assert tokens == ["great", "movie", "!", "it's", "fun", ",", "really", ".", ".", "."]


def test_tokenizer_options_keep_case_and_html_when_asked() -> None:
    """``lowercase=False`` and ``strip_html=False`` are honoured, not ignored."""
    assert WordTokenizer(lowercase=False)("Great Movie") == ["Great", "Movie"]
    assert WordTokenizer(strip_html=False)("a<br />b") == ["a", "<", "br", "/", ">", "b"]


def test_tokenizer_state_round_trips() -> None:
    """A checkpoint rebuilds the same tokenizer from its plain-data state."""
    tokenizer = WordTokenizer(lowercase=False, strip_html=False)
    rebuilt = WordTokenizer.from_state(json.loads(json.dumps(tokenizer.state_dict())))
    assert rebuilt("A<br/>B") == tokenizer("A<br/>B")


def test_vocabulary_orders_by_frequency_then_alphabetically() -> None:
    """The same data gives the same vocabulary file, whatever the order of the rows."""
    rows = [["b", "a", "c"], ["b", "c", "d"], ["b", "a"], ["e"]]
    expected = [PAD, UNK, "b", "a", "c", "d", "e"]
    assert Vocabulary.build(rows).tokens == expected
    for seed in range(5):
        shuffled = [list(row) for row in rows]
        random.Random(seed).shuffle(shuffled)
        for row in shuffled:
            random.Random(seed).shuffle(row)
        assert Vocabulary.build(shuffled).tokens == expected


def test_vocabulary_min_freq_and_max_size() -> None:
    """``min_freq`` drops rare words; ``max_size`` counts the two special tokens and keeps the most common."""
    rows = [["b", "a", "c"], ["b", "c", "d"], ["b", "a"]]
    assert Vocabulary.build(rows, min_freq=2).tokens == [PAD, UNK, "b", "a", "c"]
    assert Vocabulary.build(rows, max_size=4).tokens == [PAD, UNK, "b", "a"]
    assert Vocabulary.build(rows, max_size=2).tokens == [PAD, UNK]


def test_unknown_words_map_to_index_1_and_padding_is_0() -> None:
    """Out-of-vocabulary words become ``<unk>`` (1); index 0 stays reserved for padding."""
    vocabulary = Vocabulary.build([["good", "film"]])
    assert vocabulary.pad_index == 0 and vocabulary.unk_index == 1
    assert vocabulary.encode(["good", "unseen", "film"]) == [
        vocabulary.index["good"],
        1,
        vocabulary.index["film"],
    ]
    assert 0 not in vocabulary.encode(["good", "film", "zzz"])


def test_vocabulary_refuses_a_bad_token_list() -> None:
    """A stored vocabulary that lost its special tokens or repeats a token is refused, not misread."""
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="must not repeat"):
        Vocabulary([PAD, UNK, "a", "a"])


def _codec() -> TextCodec:
    texts = ["A great film.", "A dull<br />film!", "great acting"]
    tokenizer = WordTokenizer()
    return TextCodec(tokenizer, Vocabulary.build(tokenizer(t) for t in texts), max_length=4)


def test_text_codec_truncates_to_max_length() -> None:
    """``max_length`` keeps the first tokens of a long text."""
    codec = _codec()
    ids = codec("a great film . great great")
    assert len(ids) == 4
    assert ids == codec.vocabulary.encode(["a", "great", "film", "."])


@pytest.mark.parametrize("text", ["", "   \n", "<br /><br/>"], ids=["empty", "blank", "only-html"])
def test_text_codec_refuses_an_empty_text(text: str) -> None:
    """A text with no words is refused (training and inference share the codec, so both refuse it)."""
    with pytest.raises(EmptyTextError, match="empty text"):
        _codec()(text)
    assert issubclass(EmptyTextError, ValueError)


def test_text_codec_maps_unknown_words_to_unk() -> None:
    """A text of unknown words only is not empty: every word becomes <unk>."""
    codec = _codec()
    assert codec("zyzzyva quuxly") == [codec.vocabulary.unk_index] * 2


def test_text_codec_state_is_json_serialisable() -> None:
    """The codec's state is plain data: JSON holds it and it rebuilds an identical codec."""
    codec = _codec()
    rebuilt = TextCodec.from_state(json.loads(json.dumps(codec.state_dict())))
    for text in ("A great film.", "unseen words<br />here"):
        assert rebuilt(text) == codec(text)
    assert rebuilt.vocabulary.tokens == codec.vocabulary.tokens
    assert rebuilt.max_length == codec.max_length


def test_text_codec_state_loads_with_weights_only() -> None:
    """A checkpoint holding the codec state loads with ``torch.load(weights_only=True)``."""
    codec = _codec()
    buffer = io.BytesIO()
    torch.save({"text_codec": codec.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)["text_codec"]
    assert TextCodec.from_state(state)("a dull film") == codec("a dull film")
