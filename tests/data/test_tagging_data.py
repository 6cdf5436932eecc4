"""TokenTaggingDataModule: the prepare step, batches, raw CoNLL files as a source, and bad rows named."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.ner import make_tiny_ner

from seqtasks.data import DataError, TokenTaggingDataModule
from seqtasks.data.conll import ConllFormatError
from seqtasks.data.tagging import TaggingCodec, tokenize
from seqtasks.nn.chars import CASINGS, casing


def test_prepare_batches_and_linked_sizes(tmp_path: Path) -> None:
    dm = TokenTaggingDataModule(str(make_tiny_ner(tmp_path / "d")), batch_size=4)
    assert dm.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    words = dm.prepared["words"]
    assert words[:2] == ["<pad>", "<unk>"] and "paris" in words and "Paris" not in words  # lower-cased
    assert "P" in dm.prepared["chars"]  # characters keep the case
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    b, t = batch["words"].shape
    assert (
        batch["tags"].shape == (b, t)
        and batch["casing"].shape == (b, t)
        and batch["chars"].shape[:2] == (b, t)
    )
    assert int(batch["lengths"].max()) == t
    assert dm.vocab_size == len(words) and dm.char_vocab_size == len(dm.prepared["chars"])


def test_casing_and_tokenize() -> None:
    assert [CASINGS[casing(w)] for w in ["1996", "1996-08-22", "paris", "EU", "Paris", "a1B", "-"]] == [
        "numeric", "mainly_numeric", "lower", "upper", "title", "has_digit", "other",
    ]  # fmt: skip
    text = "Dhaval loves baby yoda, U.S. too. 3.5 on 1996-08-22 in Winston-Salem."
    assert tokenize(text) == [
        "Dhaval", "loves", "baby", "yoda", ",", "U.S.", "too", ".", "3.5", "on", "1996-08-22", "in",
        "Winston-Salem", ".",
    ]  # fmt: skip


def test_raw_conll_files_as_the_source(tmp_path: Path) -> None:
    """conll_files (IOB1, any label column) give the same batches as the equivalent Parquet."""
    raw = tmp_path / "raw"
    raw.mkdir()
    text = "-DOCSTART- -X- O\n\nPeter NNP I-PER\nBlackburn NNP I-PER\nmet VBD O\nParis NNP I-LOC\n\n"
    for name in ("train.txt", "dev.txt"):
        (raw / name).write_text(text * 3)
    dm = TokenTaggingDataModule(
        str(tmp_path), conll_files={"train": "raw/train.txt", "validation": "raw/dev.txt"}, test_split=None
    )
    assert dm.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    tags = [[dm.labels[i] for i in row] for row in batch["tags"].tolist()]
    assert tags == [["B-PER", "I-PER", "O", "B-LOC"]] * 3


def test_malformed_raw_file_stops_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("Peter I-PER\nBlackburn\n")
    dm = TokenTaggingDataModule(str(tmp_path), conll_files={"train": "train.txt"}, test_split=None)
    with pytest.raises(ConllFormatError, match=r"train.txt, line 2: expected 2 columns"):
        dm.prepared  # noqa: B018


def test_tag_count_mismatch_names_the_row(tmp_path: Path) -> None:
    tokens = [["a", "b"], ["c"]]
    tags = [["O", "O"], ["O", "B-PER"]]
    tmp_path.mkdir(exist_ok=True)
    pq.write_table(pa.table({"tokens": tokens, "ner_tags": tags}), tmp_path / "train.parquet")
    dm = TokenTaggingDataModule(str(tmp_path), test_split=None, validation_fraction=0.0)
    with pytest.raises(DataError, match=r"row 1, field 'ner_tags': expected 1 tags"):
        dm.prepared  # noqa: B018


def test_artefacts_are_the_codec_state_and_the_tags(tmp_path: Path) -> None:
    """What a checkpoint carries: plain data that rebuilds the very codec training encoded with."""
    dm = TokenTaggingDataModule(str(make_tiny_ner(tmp_path / "d")), batch_size=4)
    artefacts = dm.artefacts()
    assert set(artefacts) == {"tagging_codec", "labels"} and artefacts["labels"] == dm.labels
    codec = TaggingCodec.from_state(artefacts["tagging_codec"])
    assert codec.state_dict() == dm.codec.state_dict()
    tokens = ["Paris", "Zorblaxia", "1996", ""]
    encoded = codec.encode(tokens)
    assert encoded["words"][1] == 1 and encoded["chars"][3] == [1] and encoded["length"] == 4
    assert codec.encode(["a" * 50])["chars"][0] == codec.encode(["a" * 20])["chars"][0]  # max_word_length
    with pytest.raises(ValueError, match="empty sentence"):
        codec.encode([])
