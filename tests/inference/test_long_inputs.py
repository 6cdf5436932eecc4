"""Empty and over-long inference inputs (issue 12, item 4): refused, or cut *with* a warning, never silently.

* ``classify``: an empty text is refused; a text longer than the codec's ``max_length`` tokens (32 in the
  legacy classifier) is classified by its first tokens, with one warning naming the inputs and how many
  tokens were cut, and ``"truncated"`` (tokens cut) in its JSONL record.
* ``translate``: an empty or blank text, or one with no subword the model knows (emoji only), is refused;
  a text longer than ``max_source_length - 1`` subwords (99) is cut the same way, with the same warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqtasks.cli import main
from seqtasks.errors import TruncationWarning
from seqtasks.inference.classification import Classifier
from seqtasks.inference.io import InputError
from seqtasks.inference.translation import Translator

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
CLASSIFIER, TRANSLATOR = str(LEGACY / "classifier.ckpt"), str(LEGACY / "translator.ckpt")
LONG_REVIEW = " ".join(["a good film"] * 300)  # 900 tokens
LONG_SENTENCE = " ".join(["the red house"] * 100)  # 800 subwords


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_checkpoint(CLASSIFIER)


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.from_checkpoint(TRANSLATOR)


def test_a_long_text_is_classified_with_a_warning_and_a_truncated_field(classifier: Classifier) -> None:
    with pytest.warns(TruncationWarning, match=r"32 tokens .*: input 7 \(900 tokens, 868 cut\)$"):
        records = classifier.records(["ok film", LONG_REVIEW], ids=[6, 7])
    assert "truncated" not in records[0] and records[1]["truncated"] == 868
    first_32 = " ".join(LONG_REVIEW.split()[:32])
    assert records[1]["probabilities"] == classifier.records([first_32])[0]["probabilities"]


def test_a_text_within_the_limit_gives_no_warning(classifier: Classifier, recwarn) -> None:
    exactly = " ".join(LONG_REVIEW.split()[:32])
    assert "truncated" not in classifier.records([exactly])[0]
    assert not [w for w in recwarn if issubclass(w.category, TruncationWarning)]


def test_many_long_texts_make_one_warning(classifier: Classifier) -> None:
    with pytest.warns(TruncationWarning) as caught:
        classifier.classify([LONG_REVIEW] * 8)
    assert len(caught) == 1
    assert str(caught[0].message).startswith("8 inputs were longer") and "and 3 more" in str(
        caught[0].message
    )


def test_an_empty_text_is_not_classified(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="seqtasks classify: input 1: empty text"):
        main(["classify", "--ckpt", CLASSIFIER, ""])
    assert capsys.readouterr().out == ""


def test_classify_prints_the_warning_and_writes_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "reviews.txt"
    path.write_text(f"ok film\n{LONG_REVIEW}\n")
    main(["classify", "--ckpt", CLASSIFIER, "--input", str(path), "--format", "jsonl"])
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r.get("truncated") for r in records] == [None, 868]
    assert captured.err == (
        f"seqtasks classify: warning: {path}: an input was longer than the 32 tokens the model reads, "
        "and cut to its first 32: input 2 (900 tokens, 868 cut)\n"
    )


def test_a_long_sentence_is_translated_with_a_warning(translator: Translator) -> None:
    with pytest.warns(TruncationWarning, match=r"99 subwords .*: input 2 \(800 subwords, 701 cut\)$"):
        records = translator.records(["hello", LONG_SENTENCE], beam=2)
    assert "truncated" not in records[0] and records[1]["truncated"] == 701
    with pytest.warns(TruncationWarning):
        translator.translate([LONG_SENTENCE])


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_an_empty_sentence_is_refused_by_the_api(translator: Translator, text: str) -> None:
    with pytest.raises(InputError, match="input 1: expected a non-empty text"):
        translator.translate([text])


@pytest.mark.parametrize("text", ["😀", "😀 😀🎉", "\u2603\u2603"])
def test_a_sentence_of_unknown_characters_only_is_refused(translator: Translator, text: str) -> None:
    with pytest.raises(InputError, match=r"input 2: .* has no subword the model knows"):
        translator.translate(["hello", text])


def test_unknown_characters_among_words_still_translate(translator: Translator) -> None:
    assert len(translator.translate(["the red house 😀"])) == 1


def test_translate_refuses_an_emoji_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "en.txt"
    path.write_text("hello\n😀\n")
    with pytest.raises(
        SystemExit, match=rf"seqtasks translate: {path}: input 2: .* no subword the model knows"
    ):
        main(["translate", "--ckpt", TRANSLATOR, "--input", str(path)])


@pytest.mark.parametrize("format", ["text", "jsonl"])
def test_translate_prints_the_warning(format: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["translate", "--ckpt", TRANSLATOR, "--format", format, "hello", LONG_SENTENCE])
    captured = capsys.readouterr()
    assert captured.err.startswith("seqtasks translate: warning: an input was longer than the 99 subwords")
    assert captured.err.endswith("input 2 (800 subwords, 701 cut)\n")
    if format == "jsonl":
        assert json.loads(captured.out.splitlines()[1])["truncated"] == 701
