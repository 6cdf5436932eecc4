"""Subword tokenizers, the codec and the translation DataModule: reversible on Devanagari, both layouts,
streaming, one rule for empty texts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import datasets
import pytest
import torch
from fixtures.translation import make_tiny_parallel

from seqtasks.data.errors import DataError
from seqtasks.data.translation import (
    BOS_INDEX,
    EOS_INDEX,
    PAD_INDEX,
    TranslationCodec,
    TranslationDataModule,
    load_tokenizer,
    train_subword_tokenizer,
)

HINDI = [
    "यह एक इनडोर दृश्य है।",
    "नारंगी रंग यातायात शंकु",
    "पुस्तक स्टैंड पर पुस्तकों का एक गुच्छा",
    "आपकी कार में ब्लैक बॉक्स?",
    "उन्होंने कहा, “अब हमारे पास 4 महीने उम्र वाले चूहे हैं।”",
]
ENGLISH = ["It is an indoor scene.", "A black box in your car?", "the orange colored traffic cone"]


@pytest.mark.parametrize("model", ["bpe", "unigram"])
def test_tokenizer_round_trip_gives_plain_text(model: str) -> None:
    """Detokenised subwords are the text itself: Devanagari (matras, nukta, danda) and English punctuation."""
    texts = HINDI + ENGLISH
    serialised = train_subword_tokenizer(texts * 3, vocab_size=200, model=model, min_frequency=1)
    assert isinstance(json.loads(serialised), dict)  # plain data, as stored in checkpoints
    tokenizer = load_tokenizer(serialised)
    for text in texts:
        encoding = tokenizer.encode(text)
        assert 1 not in encoding.ids, f"no <unk> expected for {text!r}"
        assert len(encoding.ids) > 1
        assert tokenizer.decode(encoding.ids, skip_special_tokens=True) == text


def test_datamodule_prepares_tokenizers_from_train_only(tmp_path: Path) -> None:
    root = make_tiny_parallel(tmp_path / "mt")
    data = TranslationDataModule(str(root), subword_vocab_size=60, min_frequency=1, batch_size=8)
    prepared = data.prepared
    assert data.prepared_path().exists()
    assert prepared["pairs"] == 160 and prepared["source_tokenizer"] == prepared["target_tokenizer"]
    assert data.source_vocab_size == data.target_vocab_size <= 60
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["source"].shape[0] == 8
    rows = torch.arange(batch["source"].size(1)).unsqueeze(0) < batch["source_lengths"].unsqueeze(1)
    assert torch.all(batch["source"][~rows] == PAD_INDEX)
    last = batch["source"].gather(1, (batch["source_lengths"] - 1).unsqueeze(1)).squeeze(1)
    assert torch.all(last == EOS_INDEX)
    assert torch.all(batch["target_in"][:, 0] == BOS_INDEX)
    assert torch.equal(batch["target_in"][:, 1:], batch["target_out"][:, :-1])
    first = data.codec.decode(batch["target_out"][0].tolist())
    assert first == batch["target_text"][0]


def test_separate_vocabularies(tmp_path: Path) -> None:
    root = make_tiny_parallel(tmp_path / "mt")
    data = TranslationDataModule(str(root), subword_vocab_size=60, min_frequency=1, joint_vocabulary=False)
    source, target = data.codec.source_tokenizer, data.codec.target_tokenizer
    assert "▁बिल्ली" not in source.get_vocab() and "▁cat" not in target.get_vocab()


def test_streaming_hub_layout(tmp_path: Path) -> None:
    """The iitb recipe's path: streaming over the Hub's ``translation`` column, here on local parquet."""
    root = make_tiny_parallel(tmp_path / "iitb", layout="translation")
    data = TranslationDataModule(
        str(root), streaming=True, subword_vocab_size=60, min_frequency=1, batch_size=16
    )
    assert data.prepared["pairs"] == 160
    data.setup("fit")
    batches = list(data.train_dataloader())
    assert sum(b["source"].size(0) for b in batches) == 160
    hindi = {t for b in batches for t in b["target_text"]}
    assert any("बिल्ली" in t for t in hindi)
    assert sum(b["source"].size(0) for b in data.val_dataloader()) == 24


def test_bad_rows_are_named(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "bad"
    root.mkdir()
    pq.write_table(pa.table({"en": ["a cat", "a dog"], "hi": ["एक बिल्ली", " "]}), root / "train.parquet")
    with pytest.raises(DataError, match="row 1"):
        TranslationDataModule(str(root), subword_vocab_size=60, min_frequency=1).prepared  # noqa: B018
    pq.write_table(pa.table({"en": ["a cat"], "text": ["x"]}), root / "train.parquet")
    with pytest.raises(DataError, match="missing column"):
        TranslationDataModule(str(root), subword_vocab_size=60, min_frequency=1).prepared  # noqa: B018


def test_codec_from_artefacts_encodes_as_the_datamodule(tmp_path: Path) -> None:
    """Inference's codec (rebuilt from the checkpoint artefacts) gives the training batches' ids."""
    root = make_tiny_parallel(tmp_path / "mt")
    data = TranslationDataModule(
        str(root), subword_vocab_size=60, min_frequency=1, max_source_length=4, max_target_length=3
    )
    artefacts = data.artefacts()
    assert set(artefacts) == {
        "source_tokenizer", "target_tokenizer", "source_language", "target_language", "max_source_length"
    }  # fmt: skip
    codec = TranslationCodec.from_artefacts(artefacts)
    row = {"en": "the green tree is black.", "hi": "पेड़ हरा काला है।"}
    example = data.encode_row(row, 0, "train")
    assert example["source_ids"] == codec.encode_source(row["en"])
    assert len(example["source_ids"]) == 4 and example["source_ids"][-1] == EOS_INDEX  # cut, then </s>
    assert example["target_ids"][0] == BOS_INDEX and len(example["target_ids"]) == 3 + 2
    source, lengths = codec.source_batch(["a red cat", row["en"]])
    assert lengths.tolist() == [len(codec.encode_source("a red cat")), 4]
    assert torch.all(source[0, int(lengths[0]) :] == PAD_INDEX)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_refused_in_training_and_at_inference(tmp_path: Path, text) -> None:
    root = make_tiny_parallel(tmp_path / "mt")
    data = TranslationDataModule(str(root), subword_vocab_size=60, min_frequency=1)
    with pytest.raises(DataError, match=r"row 5.*non-empty text"):
        data.encode_row({"en": text, "hi": "एक बिल्ली"}, 5, "train")
    with pytest.raises(ValueError, match="non-empty text"):
        data.codec.encode_source(text)


@pytest.mark.parametrize("joint", [True, False])
@pytest.mark.parametrize("streaming", [False, True])
def test_prepare_streams_the_texts_and_trains_the_same_tokenizers(
    tmp_path: Path, joint: bool, streaming: bool
) -> None:
    """The prepare step reads the texts as a stream (no list of the corpus), and its tokenizers equal those
    trained on the lists of all sources and targets: a joint tokenizer does not depend on the texts' order."""
    root = make_tiny_parallel(tmp_path / "mt")
    data = TranslationDataModule(
        str(root), streaming=streaming, joint_vocabulary=joint, subword_vocab_size=60, min_frequency=1
    )
    prepared = data.prepared
    rows = list(datasets.load_dataset(str(root), split="train"))
    sources, targets = [r["en"] for r in rows], [r["hi"] for r in rows]
    train = lambda texts: train_subword_tokenizer(texts, 60, "bpe", 1)  # noqa: E731
    if joint:
        assert prepared["source_tokenizer"] == prepared["target_tokenizer"] == train(sources + targets)
    else:
        assert prepared["source_tokenizer"] == train(sources)
        assert prepared["target_tokenizer"] == train(targets)
    assert prepared["pairs"] == len(rows) == 160


def test_batches_are_bucketed_by_source_then_target_length(tmp_path: Path) -> None:
    """A pool is sorted by (source length, target length) and cut into batches: the keys line up with
    the rows, and the batches' key ranges do not overlap (sorted by source alone, rows of equal source
    length land in batches in random order of their target lengths, so the ranges overlap)."""
    root = make_tiny_parallel(tmp_path / "mt")
    data = TranslationDataModule(
        str(root), subword_vocab_size=60, min_frequency=1, batch_size=8, pool_batches=100
    )
    data.setup("fit")
    train = data.examples("train")
    keys = data.sort_keys(train)
    assert keys == [(len(r["source_ids"]), len(r["target_ids"])) for r in train.with_format(None)]
    batches = list(data.train_dataloader().batch_sampler)  # one pool: the whole training split
    assert sorted(i for batch in batches for i in batch) == list(range(len(keys)))
    ranges = sorted((min(keys[i] for i in batch), max(keys[i] for i in batch)) for batch in batches)
    assert len({k[1] for k in keys}) > 1 and len(batches) > 2
    assert all(high <= low for (_, high), (low, _) in itertools.pairwise(ranges))
