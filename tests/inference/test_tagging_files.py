"""Tagger records (character offsets, confidences), CoNLL files, and the predict stage's writer, on the
tiny legacy tagger checkpoints (CRF and softmax heads)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from seqtasks.checkpoints import load_task
from seqtasks.data.conll import read_conll
from seqtasks.data.errors import DataError
from seqtasks.data.tagging import TaggingCodec, TokenTaggingDataModule, collate_tagged
from seqtasks.inference.tagging import (
    Tagger,
    entity_tuples,
    predict_conll,
)
from tests.fixtures.ner import make_tiny_ner

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
TEXTS = ["Peter Blackburn visited New York on Monday.", "Merkel's  party met  Dhaval", "Tokyo"]
SENTENCES = [
    ["Peter", "Blackburn", "visited", "New", "York", "."],
    ["Yoda", "met", "Maria", "Lopez"],
    ["Paris"],
]


@pytest.fixture(scope="module", params=["tagger", "tagger_softmax"])
def tagger(request: pytest.FixtureRequest) -> Tagger:
    return Tagger.from_checkpoint(LEGACY / f"{request.param}.ckpt")


def test_records_carry_offsets_into_the_text_and_confidences(tagger: Tagger) -> None:
    records = tagger.tag(TEXTS)
    assert [[t["text"] for t in r["tokens"]] for r in records][1] == [
        "Merkel",
        "'s",
        "party",
        "met",
        "Dhaval",
    ]
    for text, record in zip(TEXTS, records, strict=True):
        assert record["text"] == text and set(record) == {"text", "tokens", "entities"}
        for token in record["tokens"]:
            assert set(token) == {"text", "start", "end", "tag", "confidence"}
            assert text[token["start"] : token["end"]] == token["text"]
            assert 0.0 < token["confidence"] <= 1.0 + 1e-6
        for entity in record["entities"]:
            members = record["tokens"][entity["first_token"] : entity["last_token"] + 1]
            assert text[entity["start"] : entity["end"]] == entity["text"]
            assert (entity["start"], entity["end"]) == (members[0]["start"], members[-1]["end"])
            assert entity["confidence"] == pytest.approx(sum(t["confidence"] for t in members) / len(members))
            assert members[0]["tag"] == f"B-{entity['type']}"
    first = records[0]
    assert entity_tuples(first) == [("PER", 0, 1, "Peter Blackburn"), ("LOC", 3, 4, "New York")]
    assert [(e["start"], e["end"], e["text"]) for e in first["entities"]] == [
        (0, 15, "Peter Blackburn"),
        (24, 32, "New York"),
    ]
    assert records[1]["entities"][-1]["text"] == "Dhaval" and records[1]["entities"][-1]["start"] == 21
    json.dumps(records)  # plain data


def test_confidence_is_the_crf_marginal_or_the_softmax_probability(tagger: Tagger) -> None:
    network = tagger.network
    batch = tagger.encode(SENTENCES)
    with torch.no_grad():
        scores = network(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
        mask = network.mask(batch["lengths"], scores.size(1))
        if network.crf is not None:
            probabilities = network.crf.marginals(scores, mask)
        else:
            probabilities = torch.softmax(scores, dim=-1)
    records = tagger.tag_sentences(SENTENCES, batch_size=2)
    for row, record in enumerate(records):
        for t, token in enumerate(record["tokens"]):
            tag = tagger.labels.index(token["tag"])
            assert token["confidence"] == pytest.approx(float(probabilities[row, t, tag]), abs=1e-5)
            if network.crf is None:  # the softmax head: the argmax is the most probable tag
                assert token["confidence"] == pytest.approx(float(probabilities[row, t].max()), abs=1e-6)
    assert [[t["tag"] for t in r["tokens"]] for r in records] == tagger.tag_tokens(SENTENCES)
    assert records[0]["text"] == "Peter Blackburn visited New York ."


def test_batching_and_ids_do_not_change_records(tagger: Tagger) -> None:
    texts = TEXTS * 3
    one = tagger.records(texts, batch_size=1)
    many = tagger.records(texts, ids=[f"t{i}" for i in range(len(texts))], batch_size=4)
    assert [r["id"] for r in one] == list(range(1, 10)) and many[4]["id"] == "t4"
    for a, b in zip(one, many, strict=True):
        assert [t["tag"] for t in a["tokens"]] == [t["tag"] for t in b["tokens"]]
        for x, y in zip(a["tokens"], b["tokens"], strict=True):
            assert x["confidence"] == pytest.approx(y["confidence"], abs=1e-5)
    with pytest.raises(ValueError, match="2 ids for 3 texts"):
        tagger.records(TEXTS, ids=[1, 2])
    with pytest.raises(ValueError, match="text 2: no tokens to tag"):
        tagger.tag(["Paris", " \t "])


def test_predict_conll_records_and_an_empty_file(tmp_path: Path) -> None:
    tagger = Tagger.from_checkpoint(LEGACY / "tagger.ckpt")
    source = tmp_path / "in.conll"
    source.write_text("-DOCSTART- O\n\nPeter B-PER\nBlackburn I-PER\nleft O\n\nParis B-LOC\n")
    records: list[dict] = []
    scores = predict_conll(tagger, source, tmp_path / "out.conll", scheme="iob2", records=records)
    assert scores["sentences"] == 2 and [r["id"] for r in records] == [1, 2]
    assert records[0]["line"] == 3 and records[0]["gold"] == ["B-PER", "I-PER", "O"]
    assert records[1]["text"] == "Paris"
    for content in ("", "-DOCSTART- -X- O O\n\n"):
        source.write_text(content)
        with pytest.raises(ValueError, match="holds no sentences"):
            predict_conll(tagger, source, tmp_path / "out.conll")


def predict_with_writer(task: pl.LightningModule, loader: DataLoader, path: Path) -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[task.prediction_writer(str(path))],
    )
    trainer.predict(task, dataloaders=loader, return_predictions=False)


@pytest.mark.parametrize("gold", [True, False])
def test_the_prediction_writer_writes_conll_columns_in_input_order(tmp_path: Path, gold: bool) -> None:
    """Batches out of order (as length-bucketed batches come): the file follows the rows' indices."""
    task = load_task(LEGACY / "tagger.ckpt")
    tagger = Tagger.from_task(task)
    tags = tagger.tag_tokens(SENTENCES)
    examples = []
    for index, tokens in enumerate(SENTENCES):
        example = {**tagger.codec.encode(tokens), "index": index, "tokens": tokens}
        if gold:
            example["tags"] = [task.labels.index(t) for t in tags[index]]
        examples.append(example)
    batches = [[examples[2], examples[0]], [examples[1]]]
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda b: collate_tagged(b, 0))
    out = tmp_path / "predictions.conll"
    predict_with_writer(task, loader, out)
    rows = [line.split() for line in out.read_text().splitlines()]
    width = 3 if gold else 2
    assert all(len(r) == width for r in rows if r)
    sentences = [[]]
    for row in rows:
        sentences[-1].append(row) if row else sentences.append([])
    sentences = [s for s in sentences if s]
    assert [[r[0] for r in s] for s in sentences] == SENTENCES
    assert [[r[-1] for r in s] for s in sentences] == tags
    if gold:  # conlleval's layout: token gold predicted, read back as CoNLL
        assert [s.tags for s in read_conll(out, label_column=2, scheme="iob2")] == tags
        assert [s.tags for s in read_conll(out, label_column=1, scheme="iob2")] == tags
    jsonl = tmp_path / "predictions.jsonl"
    predict_with_writer(task, loader, jsonl)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["id"] for r in records] == [1, 2, 3]
    assert [[t["tag"] for t in r["tokens"]] for r in records] == tags
    assert ("gold" in records[0]) == gold
    assert not list(tmp_path.glob("*.partial"))


def test_the_datamodule_reads_predict_files_of_every_kind(tmp_path: Path) -> None:
    """.txt (raw sentences, CoNLL-tokenised), CoNLL columns with gold, a tokens-only column file; the
    predict stage runs over them in file order with the writer."""
    task = load_task(LEGACY / "tagger.ckpt")
    data = make_tiny_ner(tmp_path / "data")
    raw = tmp_path / "sentences.txt"
    raw.write_text("Merkel's party met Dhaval.\nTokyo\n")
    conll = tmp_path / "gold.conll"
    conll.write_text("-DOCSTART- O\n\nAnna I-PER\nKarenina I-PER\nleft O\n\nParis I-LOC\n")
    column = tmp_path / "tokens.conll"
    column.write_text("Anna\nKarenina\n\nParis\n")
    dm = TokenTaggingDataModule(str(data), batch_size=4)
    assert dm.read_predict_rows(str(raw)) == [
        {"tokens": ["Merkel", "'s", "party", "met", "Dhaval", "."]},
        {"tokens": ["Tokyo"]},
    ]
    assert dm.read_predict_rows(str(conll)) == [
        {"tokens": ["Anna", "Karenina", "left"], "ner_tags": ["B-PER", "I-PER", "O"]},
        {"tokens": ["Paris"], "ner_tags": ["B-LOC"]},
    ]
    assert dm.read_predict_rows(str(column)) == [{"tokens": ["Anna", "Karenina"]}, {"tokens": ["Paris"]}]
    empty = tmp_path / "empty.conll"
    empty.write_text("-DOCSTART- O\n\n")
    with pytest.raises(DataError, match="holds no sentences"):
        dm.read_predict_rows(str(empty))
    for path, width in ((raw, 2), (conll, 3)):
        dm = TokenTaggingDataModule(str(data), batch_size=4, predict_file=str(path))
        dm._codec = TaggingCodec.from_state(task.artefacts["tagging_codec"])  # the checkpoint's own
        dm.setup("predict")
        batch = next(iter(dm.predict_dataloader()))
        assert batch["indices"].tolist() == [0, 1] and batch["tokens"][1] in (["Tokyo"], ["Paris"])
        out = tmp_path / f"{path.stem}.out"
        predict_with_writer(task, dm.predict_dataloader(), out)
        rows = [line.split() for line in out.read_text().splitlines() if line]
        tokens = [r["tokens"] for r in dm.read_predict_rows(str(path))]
        assert [r[0] for r in rows] == [t for s in tokens for t in s] and {len(r) for r in rows} == {width}
        assert [r[-1] for r in rows] == [t for s in Tagger.from_task(task).tag_tokens(tokens) for t in s]
