"""The predict stage's writer: what ``predict_step`` returns (records) → one file, in input order.

``seqtasks predict --config RECIPE --ckpt_path CKPT --predictions OUT`` appends
``model.prediction_writer(OUT)`` to the trainer's callbacks. Each task's ``predict_step`` returns a list
of records (one JSON object per input, ``{"id": row number from 1, ...}``, the format of ``--format
jsonl`` and of the server). The writer keeps them as batches end; when the epoch ends, **rank 0 gathers
every rank's records**, drops the duplicates a distributed sampler adds to even out the ranks (same id),
sorts them by id and writes the one file ``OUT`` (through a temporary file renamed when complete); the
other ranks write nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from seqtasks.inference.io import open_output, write_records
from seqtasks.inference.tagging import conll_lines
from seqtasks.music.midi import save_piece


class RecordWriter(BasePredictionWriter):
    """Writes the records of the predict stage to ``path``, as JSONL or one ``text_line(record)`` per line.

    Args:
        path: the output file (its folder is created).
        fmt: ``jsonl`` or ``text``.
        text_line: record → line (no newline), for ``text``.
    """

    def __init__(
        self, path: str, fmt: str = "jsonl", text_line: Callable[[dict[str, Any]], str] | None = None
    ) -> None:
        super().__init__(write_interval="batch")
        if fmt == "text" and text_line is None:
            raise ValueError("the text format needs text_line(record) -> str")
        self.path = path
        self.fmt = fmt
        self.text_line = text_line
        self.records: list[dict[str, Any]] = []
        self.written = 0  # records in the last file written (rank 0)

    def on_predict_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.records = []

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.records.extend(prediction)

    def on_predict_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        records = self.records
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            shares: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(shares, records)
            records = [record for share in shares for record in share]
        if not trainer.is_global_zero:
            return
        unique = {record["id"]: record for record in records}
        ordered = [unique[key] for key in sorted(unique)]
        with open_output(self.path) as handle:
            write_records(handle, ordered, self.fmt, self.text_line)
        self.written = len(ordered)


class TaggingPredictionWriter(RecordWriter):
    """Writes the predict stage's records (:meth:`TokenTagger.predict_step`) to ``path``, in input order.

    ``*.jsonl``: one record per sentence (with ``id``: the input row number from 1, and ``gold`` when the
    inputs carry tags). Otherwise CoNLL columns, a blank line after each sentence: ``token predicted`` or,
    when the inputs carry gold tags, ``token gold predicted`` (IOB2), which conlleval reads as it is.
    As every task's :class:`~seqtasks.inference.writers.RecordWriter`: rank 0 gathers every rank's
    records, drops duplicates by id, and alone writes the one file (through a temporary file).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = str(path)
        if path.endswith(".jsonl"):
            super().__init__(path, "jsonl")
        else:
            super().__init__(path, "text", conll_lines)


class MidiWriter(BasePredictionWriter):
    """The music predict stage's writer: ``sample-<seed>.mid`` and its ``.png`` per sample, in ``folder``.

    ``predict_step`` of a composer returns ``[(seed, notes), ...]``; each rank writes its own seeds (seeds
    are distinct, so ranks never write the same file). The folder is created if missing.

    Args:
        folder: where the files go.
        steps_per_quarter: the model's time grid.
        tempo: tempo of the MIDI files, quarter notes per minute.
    """

    def __init__(self, folder: str | os.PathLike, steps_per_quarter: int, tempo: float = 90.0) -> None:
        super().__init__(write_interval="batch")
        self.folder = os.fspath(folder)
        self.steps_per_quarter = steps_per_quarter
        self.tempo = tempo
        self.paths: list[str] = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ) -> None:
        os.makedirs(self.folder, exist_ok=True)
        for seed, notes in prediction:
            path = os.path.join(self.folder, f"sample-{seed}.mid")
            title = f"seqtasks sample (seed {seed})"
            midi, _ = save_piece(path, notes, self.steps_per_quarter, self.tempo, title=title)
            self.paths.append(midi)
