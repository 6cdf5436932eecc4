"""The classifier on many texts: length-sorted batches change no probability and keep the input order;
records carry every class probability; the predict stage writes them as JSONL in row order; a predict
file needs no label column."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from seqtasks.checkpoints import load_task
from seqtasks.data.classification import TextClassificationDataModule
from seqtasks.data.text import EmptyTextError
from seqtasks.inference.classification import Classifier

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(LEGACY / "expected.pt", weights_only=True)["classifier"]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_checkpoint(LEGACY / "classifier.ckpt")


def test_batches_sorted_by_length_change_nothing(classifier: Classifier, expected: dict) -> None:
    texts = expected["texts"] * 3 + ["a short one", "a much longer text " * 20]
    alone = [classifier.classify([t])[0] for t in texts]
    for size in (1, 2, 5, 64):
        batched = classifier.classify(texts, batch_size=size)
        assert [p.label for p in batched] == [p.label for p in alone]
        for a, b in zip(batched, alone, strict=True):
            assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    recorded = classifier.classify(expected["texts"])
    assert [p.label for p in recorded] == expected["labels"]
    assert (
        torch.tensor([p.probabilities for p in recorded], dtype=torch.float64)
        .sub(expected["probs"])
        .abs()
        .max()
        < 1e-6
    )


def test_records_have_every_class_probability(classifier: Classifier, expected: dict) -> None:
    records = classifier.records(expected["texts"], ids=["a", "b", "c", "d", "e"], batch_size=2)
    assert [r["id"] for r in records] == ["a", "b", "c", "d", "e"]
    for record, label in zip(records, expected["labels"], strict=True):
        assert set(record) == {"id", "label", "probability", "probabilities"}
        assert list(record["probabilities"]) == ["neg", "pos"]
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert record["label"] == label == max(record["probabilities"], key=record["probabilities"].get)
        assert record["probability"] == record["probabilities"][label]
    json.dumps(records)  # plain JSON data
    with pytest.raises(EmptyTextError, match="input 2"):
        classifier.records(["fine", "   "])


def test_predict_stage_writes_jsonl_in_row_order(tmp_path: Path, expected: dict) -> None:
    task = load_task(LEGACY / "classifier.ckpt")
    tokens, lengths = expected["tokens"], expected["lengths"]
    rows = [3, 1, 0, 2]  # batches arrive out of row order (as from several ranks)
    batches = [
        {
            "tokens": tokens[rows[i : i + 2]],
            "lengths": lengths[rows[i : i + 2]],
            "indices": torch.tensor(rows[i : i + 2]),
        }
        for i in (0, 2)
    ]
    out = tmp_path / "predictions" / "labels.jsonl"
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[task.prediction_writer(str(out))],
    )  # fmt: skip
    trainer.predict(task, dataloaders=DataLoader(batches, batch_size=None), return_predictions=False)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [1, 2, 3, 4]
    probabilities = torch.softmax(expected["logits"], dim=-1)
    for record, row in zip(records, probabilities, strict=True):
        assert [record["probabilities"][k] for k in ("neg", "pos")] == pytest.approx(row.tolist(), abs=1e-6)
        assert record["label"] == ["neg", "pos"][int(row.argmax())]


def test_a_predict_file_needs_no_label(tiny_reviews: Path, tmp_path: Path) -> None:
    module = TextClassificationDataModule(str(tiny_reviews), test_split="test", batch_size=2)
    rows_file = tmp_path / "reviews.jsonl"
    rows_file.write_text('{"text": "a wonderful film"}\n{"text": "dull", "label": 0}\n', encoding="utf-8")
    module.predict_file = str(rows_file)
    rows = module.read_predict_rows(str(rows_file))
    assert [r["text"] for r in rows] == ["a wonderful film", "dull"]
    example = module.encode_row({"text": "a wonderful film"}, 0, str(rows_file))
    assert example["label"] == -1 and example["index"] == 0 and example["length"] == 3
    with pytest.raises(Exception, match="missing label"):  # in training, a label stays required
        module.encode_row({"text": "a wonderful film"}, 0, "train")
    assert module.required_columns() == ["text", "label"]
