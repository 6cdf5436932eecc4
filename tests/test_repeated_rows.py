"""Rows repeated only to keep DDP ranks in step are flagged in every batch and never counted in evaluation.

The loaders flag them (``batch["real"]``): a ``DistributedSampler``'s padding in map-style loading, a short
stream's repeated batches. Every task's validation and test steps evaluate only the real rows, so a batch
with repeated rows adds exactly what the batch without them adds. The two-process check of the figures is
``tests/test_ddp.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.utilities.data import _update_dataloader
from lightning.pytorch.utilities.seed import isolate_rng
from torch.utils.data import BatchSampler, DistributedSampler
from torchmetrics import Metric

from seqtasks.checkpoints import load_task
from seqtasks.data.batching import REAL, Repeated, StreamingBatches, bucket_batches, bucket_loader, real_rows

LEGACY = Path(__file__).parent / "fixtures" / "legacy"


# ---- the loaders flag the repeated rows ------------------------------------------------------------------
def _examples(size: int) -> list[dict[str, Any]]:
    return [{"index": i, "length": 1 + (i * 7) % 5} for i in range(size)]


def _collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {"indices": torch.tensor([e["index"] for e in examples])}


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("size", [33, 3])
def test_map_style_loader_flags_the_distributed_samplers_padding(shuffle: bool, size: int) -> None:
    """Lightning rebuilds the loader around a DistributedSampler, which pads the ranks' shares by repeating
    rows (33 rows over 2 ranks: one; 3 rows over 4 ranks: one); the real rows of all ranks together are
    every row once, the flagged ones exactly the sampler's extra ones."""
    data = _examples(size)
    world = 4 if size == 3 else 2
    with (
        _replace_dunder_methods(BatchSampler),
        _replace_dunder_methods(torch.utils.data.DataLoader, "dataset"),
    ):
        sampler = bucket_batches([e["length"] for e in data], batch_size=4, shuffle=shuffle, seed=1)
        loader = bucket_loader(data, sampler, _collate)
    real, repeated = [], []
    for rank in range(world):
        distributed = DistributedSampler(
            loader.dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=0
        )
        rebuilt = _update_dataloader(loader, distributed)
        for batch in rebuilt:
            flags = batch[REAL].tolist()
            real += [i for i, f in zip(batch["indices"].tolist(), flags, strict=True) if f]
            repeated += [i for i, f in zip(batch["indices"].tolist(), flags, strict=True) if not f]
    assert sorted(real) == list(range(size))
    assert len(repeated) == -(-size // world) * world - size


def test_a_single_process_loader_flags_every_row_real() -> None:
    data = _examples(10)
    loader = bucket_loader(
        data, bucket_batches([e["length"] for e in data], 4, shuffle=True, seed=0), _collate
    )
    batches = list(loader)
    assert all(bool(b[REAL].all()) for b in batches)
    assert sorted(i for b in batches for i in b["indices"].tolist()) == list(range(10))


def test_a_short_stream_flags_its_repeated_batches() -> None:
    """A stream padded to a batch count repeats its first examples, flagged; training sees the same rows."""
    stream = StreamingBatches(_examples(7), _collate, batch_size=4, shuffle=False, num_batches=4)
    batches = list(stream)
    assert [b[REAL].tolist() for b in batches] == [[True] * 4, [True] * 3, [False] * 4, [False] * 4]
    assert stream.repeated == 8


def test_real_rows_cuts_every_per_row_value() -> None:
    batch = {
        "tokens": torch.arange(12).view(3, 4),
        "text": ["a", "b", "c"],
        "steps": torch.tensor(5),
        REAL: torch.tensor([True, False, True]),
    }
    rows = real_rows(batch)
    assert rows is not None
    assert rows["tokens"].tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]] and rows["text"] == ["a", "c"]
    assert int(rows["steps"]) == 5
    assert real_rows({**batch, REAL: torch.tensor([False] * 3)}) is None
    plain = {**batch, REAL: torch.ones(3, dtype=torch.bool)}
    assert real_rows(plain) is plain and real_rows({"tokens": batch["tokens"]}) is not None
    assert isinstance(Repeated(3), int) and Repeated(3) == 3


# ---- the tasks count only real rows ----------------------------------------------------------------------
def _lengths(size: int, most: int, generator: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(1, most + 1, (size,), generator=generator)
    lengths[0] = most
    return lengths


def _pad(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    keep = torch.arange(ids.size(1))[None, :] < lengths[:, None]
    return ids * keep.view(*keep.shape, *([1] * (ids.dim() - 2))).to(ids.dtype)


def _batch(task: Any, generator: torch.Generator, size: int = 5) -> dict[str, Any]:
    g = generator
    name = type(task).__name__
    if name == "SequenceClassifier":
        lengths = _lengths(size, 7, g)
        tokens = _pad(torch.randint(1, task.hparams.vocab_size, (size, 7), generator=g), lengths)
        return {"tokens": tokens, "lengths": lengths, "labels": torch.randint(0, 2, (size,), generator=g)}
    if name == "TokenTagger":
        lengths = _lengths(size, 6, g)
        return {
            "words": _pad(torch.randint(1, task.hparams.vocab_size, (size, 6), generator=g), lengths),
            "chars": _pad(torch.randint(1, task.hparams.char_vocab_size, (size, 6, 3), generator=g), lengths),
            "casing": _pad(torch.ones(size, 6, dtype=torch.long), lengths),
            "lengths": lengths,
            "tags": _pad(torch.randint(0, len(task.labels), (size, 6), generator=g), lengths),
            "indices": torch.arange(size),
        }
    if name == "Seq2SeqTranslator":
        source_lengths = _lengths(size, 6, g)
        source = _pad(
            torch.randint(4, task.hparams.source_vocab_size, (size, 6), generator=g), source_lengths
        )
        target = _pad(
            torch.randint(4, task.hparams.target_vocab_size, (size, 6), generator=g), _lengths(size, 6, g)
        )
        return {
            "source": source,
            "source_lengths": source_lengths,
            "target_in": target[:, :-1].clone(),
            "target_out": target[:, 1:].clone(),
            "target_text": [f"वाक्य {i}" for i in range(size)],
            "indices": torch.arange(size),
        }
    if name == "PianoRollComposer":
        lengths = _lengths(size, 8, g)
        rolls = _pad((torch.rand(size, 8, 88, generator=g) < 0.1).float(), lengths)
        return {"rolls": rolls, "lengths": lengths, "indices": torch.arange(size)}
    assert name == "EventComposer", name
    lengths = _lengths(size, 9, g)
    inputs = _pad(torch.randint(1, task.hparams.vocab_size, (size, 9), generator=g), lengths)
    targets = _pad(torch.randint(1, task.hparams.vocab_size, (size, 9), generator=g), lengths)
    return {"inputs": inputs, "targets": targets, "lengths": lengths}


def _rows(batch: dict[str, Any]) -> int:
    return next(v.size(0) for v in batch.values() if isinstance(v, torch.Tensor))


def _with_repeats(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with copies of its rows 1 and 0 before it, flagged as repeated."""
    size = _rows(batch)
    order = [1, 0, *range(size)]
    padded = {}
    for key, value in batch.items():
        padded[key] = value[order] if isinstance(value, torch.Tensor) else [value[i] for i in order]
    padded[REAL] = torch.tensor([False, False] + [True] * size)
    return padded


def _metrics(task: Any, stage: str) -> list[Metric]:
    """The task's evaluation metrics of ``stage`` (those inside a collection too)."""
    return [m for n, m in task.named_modules() if n.startswith(f"{stage}_") and isinstance(m, Metric)]


def _state(task: Any, stage: str) -> dict[str, Any]:
    """Every evaluation metric of ``stage``, computed (and then reset), and the test's gathered pairs."""
    values: dict[str, Any] = {}
    for name, module in task.named_children():
        if name.startswith(f"{stage}_") and hasattr(module, "compute"):
            value = module.compute()
            if isinstance(value, dict):
                values[name] = {k: v.tolist() for k, v in value.items()}
            else:
                values[name] = value.tolist()
            module.reset()
    if stage == "test" and hasattr(task, "_test_pairs"):
        values["pairs"], task._test_pairs = sorted(task._test_pairs), []
    return values


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "checkpoint", ["classifier", "tagger", "tagger_softmax", "translator", "pianoroll", "events"]
)
def test_evaluation_counts_only_real_rows(checkpoint: str) -> None:
    """Validation and test of a batch with two repeated rows add exactly what the batch alone adds; a batch
    of repeated rows alone adds nothing."""
    task = load_task(LEGACY / f"{checkpoint}.ckpt")
    batch = _batch(task, torch.Generator().manual_seed(0))
    with torch.no_grad(), isolate_rng():
        for stage in ("val", "test"):
            step = task.validation_step if stage == "val" else task.test_step
            task._decoded = 0  # the translator's count of validation sentences decoded this epoch
            step(batch, 0)
            alone = _state(task, stage)
            assert alone and all(m._update_count == 0 for m in _metrics(task, stage))
            task._decoded = 0
            step(_with_repeats(batch), 0)
            assert _state(task, stage) == alone, stage
            size = _rows(batch) + 2
            step({**_with_repeats(batch), REAL: torch.zeros(size, dtype=torch.bool)}, 0)
            assert all(m._update_count == 0 for m in _metrics(task, stage)), stage
            assert not getattr(task, "_test_pairs", []), stage
