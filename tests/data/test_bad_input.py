"""Bad data files are named in the user's terms: their file and line (not the internal cache Parquet), the
tag as written, the byte that is not UTF-8, the split that is empty; integer tag columns read their
ClassLabel names or are refused; and every split is checked before training starts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.ner import SnapshotAtTrainStart, make_tiny_ner, tiny_args

from seqtasks.cli import main
from seqtasks.data.conll import ConllFormatError, read_conll
from seqtasks.data.errors import DataError
from seqtasks.data.tagging import TokenTaggingDataModule
from seqtasks.training import run_lightning

TAGGER = str(Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "tagger.ckpt")
TRAIN = "-DOCSTART- -X- O O\n\nPeter NNP I-NP I-PER\nleft VBD I-VP O\nParis NNP I-NP I-LOC\n\n" * 3
# IOB1 as in the original CoNLL-2003 files: the MISC entity on line 5 is written I-MISC (IOB2: B-MISC)
EVAL = "-DOCSTART- -X- O O\n\nPeter NNP I-NP I-PER\nleft VBD I-VP O\n\nthe DT I-NP O\nEuro NNP I-NP I-MISC\n"


def _conll_module(root: Path, **files: str) -> TokenTaggingDataModule:
    root.mkdir(parents=True, exist_ok=True)
    for split, text in files.items():
        (root / f"eng.{split}").write_text(text)
    return TokenTaggingDataModule(
        str(root), conll_files={split: f"eng.{split}" for split in files}, batch_size=2
    )


@pytest.mark.parametrize("split", ["validation", "test"])
def test_a_conll_tag_unseen_in_training_names_the_users_file_line_and_tag(tmp_path: Path, split: str) -> None:
    """Found at setup("fit") for the test file too (every split is checked before training)."""
    files = {"train": TRAIN, "validation": TRAIN, "test": TRAIN, split: EVAL}
    dm = _conll_module(tmp_path, **files)
    with pytest.raises(ConllFormatError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / f'eng.{split}'}, line 7: tag 'I-MISC' (read as 'B-MISC' in IOB2)")
    assert "parquet" not in message and "cache" not in message


def test_invalid_utf8_in_a_conll_file_names_the_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "eng.train"
    path.write_bytes(b"Peter I-PER\nleft O\n\nM\xfcnchen I-LOC\n")
    with pytest.raises(ConllFormatError, match=rf"^{path}, line 4: not UTF-8 text \(byte 21 of the file"):
        list(read_conll(path))
    dm = _conll_module(tmp_path / "dm", train=TRAIN)
    (tmp_path / "dm" / "eng.validation").write_bytes(b"Peter I-PER\n\xff\xfe O\n")
    dm.conll_files["validation"] = "eng.validation"
    with pytest.raises(ConllFormatError, match=r"eng.validation, line 2: not UTF-8 text \(byte 12"):
        dm.setup("fit")


def test_predict_conll_on_invalid_utf8_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "in.conll"
    path.write_bytes(b"Peter B-PER\n\nM\xfcnchen B-LOC\n")
    with pytest.raises(SystemExit, match=rf"seqtasks predict-conll: {path}, line 3: not UTF-8 text"):
        main(["predict-conll", "--ckpt", TAGGER, "--input", str(path), "--output", str(tmp_path / "o")])


@pytest.mark.parametrize("streaming", [False, True], ids=["map", "streaming"])
def test_an_empty_split_is_named(tmp_path: Path, streaming: bool) -> None:
    dataset = make_tiny_ner(tmp_path / "data", sizes=(16, 4, 4))
    empty = pa.table(
        {"tokens": pa.array([], pa.list_(pa.string())), "ner_tags": pa.array([], pa.list_(pa.string()))}
    )
    pq.write_table(empty, dataset / "validation.parquet")
    dm = TokenTaggingDataModule(str(dataset), batch_size=4, streaming=streaming)
    with pytest.raises(
        DataError, match=rf"^{dataset / 'validation.parquet'}: split 'validation' holds no rows"
    ):
        dm.setup("fit")
    pq.write_table(empty, dataset / "train.parquet")
    with pytest.raises(DataError, match=rf"^{dataset / 'train.parquet'}: split 'train' holds no rows"):
        TokenTaggingDataModule(str(dataset), batch_size=4, streaming=streaming).setup("fit")


def test_an_empty_conll_file_is_named_by_the_users_file(tmp_path: Path) -> None:
    dm = _conll_module(tmp_path, train=TRAIN, validation="-DOCSTART- -X- O O\n\n")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'eng.validation'}: split 'validation' holds no rows"):
        dm.setup("fit")


def _class_label_parquet(root: Path, features: datasets.Features, tags: list[list[int]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tokens = [["Peter", "left", "Paris"], ["Anna", "met", "Yoda"]]
    for split in ("train", "validation"):
        data = datasets.Dataset.from_dict({"tokens": tokens, "ner_tags": tags}, features=features)
        data.to_parquet(str(root / f"{split}.parquet"))  # the HF features travel in the Parquet metadata
    return root


@pytest.mark.parametrize("streaming", [False, True], ids=["map", "streaming"])
def test_class_id_tags_read_their_class_label_names(tmp_path: Path, streaming: bool) -> None:
    """As the Hub's conll2003 stores ner_tags: a Sequence of ClassLabel (ids 0 O, 1 B-PER, ...)."""
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    root = _class_label_parquet(tmp_path / "hub", features, [[1, 0, 3], [1, 0, 1]])
    dm = TokenTaggingDataModule(str(root), batch_size=2, streaming=streaming)
    dm.setup("fit")
    assert dm.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    batch = next(iter(dm.val_dataloader()))
    expected = {dm.labels.index(t) for t in ("O", "B-PER", "B-LOC")}
    assert set(batch["tags"][batch["words"] != 0].tolist()) == expected
    assert dm.split_rows("validation")[0]["tags"] == ["B-PER", "O", "B-LOC"]


def test_class_id_tags_without_names_are_refused(tmp_path: Path) -> None:
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.Value("int64")),
        }
    )
    root = _class_label_parquet(tmp_path / "ids", features, [[1, 0, 3], [1, 0, 1]])
    dm = TokenTaggingDataModule(str(root), batch_size=2)
    with pytest.raises(DataError, match=r"train.parquet, row 0, field 'ner_tags': the tags are integers"):
        dm.setup("fit")


def test_a_bad_row_of_the_test_split_stops_fit_before_the_first_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["seqtasks"])
    dataset = make_tiny_ner(tmp_path / "data", sizes=(16, 4, 4))
    table = pq.read_table(dataset / "test.parquet").to_pylist()
    table[2]["ner_tags"] = table[2]["ner_tags"][:-1]  # one tag short
    pq.write_table(pa.Table.from_pylist(table), dataset / "test.parquet")
    started: list[int] = []
    monkeypatch.setattr(
        SnapshotAtTrainStart,
        "on_train_start",
        lambda self, trainer, module: started.append(trainer.global_step),
    )
    callback = ["--trainer.callbacks+", "fixtures.ner.SnapshotAtTrainStart"]
    args = [*tiny_args(tmp_path / "run", dataset, max_epochs=1), *callback]
    try:
        with pytest.raises(DataError, match=r"test.parquet, row 2, field 'ner_tags': expected \d+ tags"):
            run_lightning(["fit", *args])
    finally:
        os.environ.pop("PL_GLOBAL_SEED", None)
    assert started == []
    assert not (tmp_path / "run" / "checkpoints").exists()
