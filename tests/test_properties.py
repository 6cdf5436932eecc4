"""Property tests (hypothesis): arbitrary input to the readers and codecs either parses or raises one of
our own error types (naming where) — never a bare ``UnicodeDecodeError``, ``EOFError``, ``IndexError``...

Readers: raw CoNLL (text and bytes), the MIDI primer reader (bytes, and damaged real files). Codecs: the
CoNLL tokenizer (its offsets slice the text back to each token), the tagging, classification and
translation codecs (ids, or the documented ``ValueError`` subclass for an empty text).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtasks.data.conll import ConllFormatError, read_conll
from seqtasks.data.errors import DataError
from seqtasks.data.tagging_codec import EmptySentenceError, TaggingCodec, tokenize, tokenize_spans
from seqtasks.data.text import EmptyTextError, TextCodec, Vocabulary, WordTokenizer
from seqtasks.data.translation_codec import TranslationCodec, train_subword_tokenizer
from seqtasks.music.midi import midi_to_notes, notes_to_midi

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# CoNLL-ish lines: tokens, tags of every scheme (valid and not), -DOCSTART-, blanks, odd whitespace
TAG = st.sampled_from(["O", "B-PER", "I-PER", "E-LOC", "S-ORG", "I-", "B", "X-Y", "-", "b-per", "O-O"])
WORD = st.one_of(
    st.sampled_from(["Peter", "-DOCSTART-", "-X-", "NNP", "\u00e9t\u00e9", "\U0001f600"]), st.text(max_size=6)
)
LINE = st.one_of(
    st.lists(st.one_of(WORD, TAG), min_size=0, max_size=5).map(" ".join),
    st.just(""),
    st.just("-DOCSTART- -X- O O"),
    st.text(max_size=20),
)
CONLL_TEXT = st.lists(LINE, max_size=25).map("\n".join)


def _write(data: bytes) -> Path:
    with tempfile.NamedTemporaryFile(suffix=".input", delete=False) as handle:
        handle.write(data)
    return Path(handle.name)


@FAST
@given(CONLL_TEXT, st.sampled_from(["iob1", "iob2", "bioes"]), st.sampled_from([-1, 1, 2]))
def test_raw_conll_text_parses_or_raises_a_conll_format_error(text: str, scheme: str, label: int) -> None:
    path = _write(text.encode("utf-8", "surrogatepass"))
    try:
        sentences = list(read_conll(path, label_column=label, scheme=scheme))  # type: ignore[arg-type]
    except ConllFormatError as error:
        assert str(error).startswith(f"{path}, line ")
    else:
        for sentence in sentences:
            assert sentence.tokens and len(sentence.tags) == len(sentence.tokens)
            assert all(t == "O" or t[:2] in ("B-", "I-") for t in sentence.tags)
    finally:
        path.unlink()


@FAST
@given(st.binary(max_size=200))
def test_raw_conll_bytes_parse_or_raise_a_conll_format_error(data: bytes) -> None:
    path = _write(data)
    try:
        list(read_conll(path, scheme="iob2"))
    except ConllFormatError as error:
        assert str(error).startswith(f"{path}, line ")
    finally:
        path.unlink()


@FAST
@given(st.text(max_size=200))
def test_tokenize_spans_slice_the_text_back_to_each_token(text: str) -> None:
    spans = tokenize_spans(text)
    assert [token for token, _, _ in spans] == tokenize(text)
    previous_end = 0
    for token, start, end in spans:
        assert token and text[start:end] == token
        assert previous_end <= start < end
        assert not token.isspace()
        previous_end = end
    assert "".join(text[s:e] for _, s, e in spans) == "".join(token for token, _, _ in spans)


MIDI = notes_to_midi([(60, 0, 4), (64, 2, 6), (67, 4, 8), (72, 8, 9)], 4)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_a_primer_read_or_raise_a_data_error(data: bytes) -> None:
    try:
        notes, warnings = midi_to_notes(data, 4)
    except DataError as error:
        assert str(error).startswith("<bytes>: not a ")
    else:
        assert all(isinstance(w, str) for w in warnings)
        assert all(21 <= pitch <= 108 and 0 <= start < end for pitch, start, end in notes)


@FAST
@given(
    st.integers(0, len(MIDI)),
    st.lists(st.tuples(st.integers(0, len(MIDI) - 1), st.integers(0, 255)), max_size=6),
)
def test_a_damaged_midi_file_reads_or_raises_a_data_error_naming_it(cut: int, flips: list) -> None:
    """Damage close to a real file (truncation, changed bytes) reaches deeper into mido's parser."""
    data = bytearray(MIDI[:cut])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    path = _write(bytes(data))
    try:
        midi_to_notes(path, 4)
    except DataError as error:
        assert str(error).startswith(f"{path}: not a ")
    finally:
        path.unlink()


TAGGING = TaggingCodec(["<pad>", "<unk>", "peter", "paris"], ["<pad>", "<unk>", "P", "e", "a"], True, 5)
TEXT = TextCodec(WordTokenizer(), Vocabulary(["<pad>", "<unk>", "good", "film"]), max_length=8)


@FAST
@given(st.text(max_size=120))
def test_the_tagging_codec_encodes_any_text_or_refuses_an_empty_sentence(text: str) -> None:
    try:
        example = TAGGING.encode(tokenize(text))
    except EmptySentenceError:
        assert not tokenize(text)
    else:
        assert example["length"] == len(tokenize(text)) == len(example["chars"]) > 0
        assert all(0 < i < 4 for i in example["words"])
        assert all(0 < len(c) <= 5 for c in example["chars"])


@FAST
@given(st.text(max_size=120))
def test_the_classification_codec_encodes_any_text_or_refuses_an_empty_one(text: str) -> None:
    try:
        ids = TEXT.encode(text)
    except EmptyTextError:
        return
    assert 0 < len(ids) <= 8 and all(0 < i < 4 for i in ids)


@pytest.fixture(scope="module")
def translation_codec() -> TranslationCodec:
    texts = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song"] * 4
    tokenizer = train_subword_tokenizer(texts, vocab_size=60)
    return TranslationCodec(tokenizer, tokenizer, max_source_length=12, max_target_length=12)


@FAST
@given(text=st.text(max_size=120))
def test_the_translation_codec_encodes_any_text_or_refuses_an_empty_one(
    translation_codec: TranslationCodec, text: str
) -> None:
    try:
        source = translation_codec.encode_source(text)
        target = translation_codec.encode_target(text)
    except ValueError as error:  # require_text's documented refusal of an empty text
        assert not text.strip() and "non-empty text" in str(error)
        return
    size = translation_codec.source_vocab_size
    assert 0 < len(source) <= 12 and all(0 <= i < size for i in source + target)
    assert isinstance(translation_codec.decode(target), str)
