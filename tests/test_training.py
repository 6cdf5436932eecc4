"""The training entry point: recipes built on base recipes, and the predict stage's plumbing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqtasks.data.classification import TextClassificationDataModule
from seqtasks.data.errors import DataError
from seqtasks.training import expand_bases, recipe_chain

ROOT = Path(__file__).resolve().parents[1]


def test_a_recipe_is_preceded_by_the_recipes_it_builds_on() -> None:
    chain = recipe_chain(ROOT / "recipes" / "ner-conll2003-gru.yaml")
    assert [Path(p).name for p in chain] == ["base.yaml", "ner-conll2003.yaml", "ner-conll2003-gru.yaml"]
    args = expand_bases(["fit", "--config", str(ROOT / "recipes" / "ner-conll2003-gru.yaml"), "--x", "1"])
    configs = [Path(a).name for a in args if a.endswith(".yaml")]
    assert configs == ["base.yaml", "ner-conll2003.yaml", "ner-conll2003-gru.yaml"]
    assert args[0] == "fit" and args[-2:] == ["--x", "1"]


def test_recipes_that_build_on_each_other_in_a_circle_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(SystemExit, match="in a circle"):
        recipe_chain(tmp_path / "a.yaml")


def test_a_missing_base_recipe_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(SystemExit, match=r"nowhere\.yaml: cannot read the recipe"):
        recipe_chain(tmp_path / "a.yaml")


def predict_module(path: Path) -> TextClassificationDataModule:
    return TextClassificationDataModule(dataset="unused", labels=["neg", "pos"], predict_file=str(path))


def test_a_text_file_to_predict_has_one_row_per_line_blank_lines_included(tmp_path: Path) -> None:
    path = tmp_path / "reviews.txt"
    path.write_text("a fine film\n\nawful\n", encoding="utf-8")
    rows = predict_module(path).read_predict_rows(str(path))
    assert rows == [{"text": "a fine film"}, {"text": ""}, {"text": "awful"}]


def test_a_jsonl_file_to_predict_keeps_its_columns_and_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(["good", "bad"])) + "\n")
    rows = predict_module(path).read_predict_rows(str(path))
    assert [r["text"] for r in rows] == ["good", "bad"] and [r["id"] for r in rows] == [0, 1]
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"review": "good"}) + "\n")
    with pytest.raises(DataError, match=r"wrong.jsonl.*missing column\(s\) \['text'\]"):
        predict_module(wrong).read_predict_rows(str(wrong))


def test_a_file_to_predict_that_is_missing_unreadable_or_of_unknown_kind_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        predict_module(tmp_path / "none.txt").read_predict_rows(str(tmp_path / "none.txt"))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.txt.*not UTF-8"):
        predict_module(latin).read_predict_rows(str(latin))
    odd = tmp_path / "reviews.docx"
    odd.write_text("x")
    with pytest.raises(DataError, match="unknown input kind"):
        predict_module(odd).read_predict_rows(str(odd))
