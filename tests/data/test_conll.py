"""The raw CoNLL reader: schemes to IOB2, documents and blank lines, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REAL_DATA_DIR, requires_real_data

from seqtasks.data.conll import ConllFormatError, read_conll
from seqtasks.tags import iob2_to_bioes, to_iob2


def test_iob1_to_iob2() -> None:
    """IOB1 marks B- only between adjacent same-type entities; IOB2 opens every entity with B-."""
    iob1 = ["I-ORG", "O", "I-PER", "I-PER", "B-PER", "I-LOC", "I-MISC", "O", "I-LOC"]
    assert to_iob2(iob1, "iob1") == ["B-ORG", "O", "B-PER", "I-PER", "B-PER", "B-LOC", "B-MISC", "O", "B-LOC"]


def test_bioes_to_iob2_and_back() -> None:
    bioes = ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "B-ORG", "E-ORG", "S-ORG"]
    iob2 = ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC", "B-ORG", "I-ORG", "B-ORG"]
    assert to_iob2(bioes, "bioes") == iob2
    assert iob2_to_bioes(iob2) == bioes
    assert to_iob2(iob2, "iob2") == iob2


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_documents_blank_lines_and_label_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "eng.small",
        "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n\n"
        "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n"
        "-DOCSTART- -X- O O\n\nBRUSSELS NNP I-NP I-LOC\n",
    )
    sentences = list(read_conll(path))
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert [s.document_id for s in sentences] == [0, 0, 1]
    assert [s.line for s in sentences] == [3, 7, 11]
    chunks = list(read_conll(path, label_column=2, scheme="iob1"))  # the chunk column as the label
    assert chunks[0].tags == ["B-NP", "B-VP"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("EU NNP I-NP I-ORG\nrejects VBZ O\n", 2, "expected 4 columns"),
        ("EU NNP I-NP I-ORG\n\nPeter NNP I-NP X-PER\n", 3, "prefix 'X'"),
        ("EU NNP I-NP I-ORG\nrejects VBZ I-VP PER\n", 2, "neither O nor PREFIX-TYPE"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path / "bad.conll", text)
    with pytest.raises(ConllFormatError, match=message) as error:
        list(read_conll(path))
    assert error.value.line == line
    assert str(error.value).startswith(f"{path}, line {line}:")


def test_bioes_tags_refused_as_iob1(tmp_path: Path) -> None:
    path = write(tmp_path / "x.conll", "Paris S-LOC\n")
    with pytest.raises(ConllFormatError, match="line 1"):
        list(read_conll(path, scheme="iob1"))
    assert next(read_conll(path, scheme="bioes")).tags == ["B-LOC"]


@pytest.mark.realdata
@requires_real_data
@pytest.mark.parametrize(
    ("raw", "split"), [("eng.train", "train"), ("eng.testa", "validation"), ("eng.testb", "test")]
)
def test_raw_files_parse_to_the_parquet_rows(raw: str, split: str) -> None:
    """The original IOB1 files, read and converted, give exactly the Parquet rows (tokens, NER, chunks)."""
    root = Path(REAL_DATA_DIR) / "conll2003"
    sentences = list(read_conll(root / "raw" / raw, label_column=3, scheme="iob1", convert_columns=(2,)))
    table = pq.read_table(
        root / f"{split}.parquet", columns=["tokens", "ner_tags", "chunk_tags", "document_id"]
    )
    rows = table.to_pydict()
    assert len(sentences) == len(rows["tokens"])
    assert [s.tokens for s in sentences] == rows["tokens"]
    assert [s.tags for s in sentences] == rows["ner_tags"]
    assert [s.columns[2] for s in sentences] == rows["chunk_tags"]
    assert [s.document_id for s in sentences] == rows["document_id"]
