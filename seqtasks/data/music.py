"""Music data: the piano-roll benchmark datasets, and Bach chorales from music21's corpus as event tokens.

* :class:`PianoRollDataModule` reads the parquet ``frames`` column of ``jsb_chorales``, ``nottingham``,
  ``musedata`` or ``piano_midi`` (resolved under ``SEQTASKS_DATA_DIR`` like every dataset) with the
  standard train/validation/test splits; a batch is a ``(B, T, 88)`` binary roll.
* :class:`BachChoralesDataModule` converts music21's bundled chorales (no download, no data directory)
  to event tokens once, in its prepare step, and caches the result — with every piece that could not be
  converted and why — as a JSON file under ``SEQTASKS_CACHE_DIR``.

Each encodes through its task's codec (:class:`~seqtasks.music.pianoroll.PianoRollCodec`,
:class:`~seqtasks.music.events.EventCodec`), the one generation uses too, and hands the codec's state to
the checkpoint through :meth:`artefacts`.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import datasets
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from seqtasks.data.batching import pad_sequences
from seqtasks.data.columns import flat_column, int_column
from seqtasks.data.datamodule import SeqDataModule
from seqtasks.data.errors import DataError
from seqtasks.music.events import (
    STEPS_PER_QUARTER,
    ConversionError,
    EventCodec,
    build_vocabulary,
    score_to_notes,
)
from seqtasks.music.pianoroll import HIGHEST_PITCH, LOWEST_PITCH, NUM_KEYS, PianoRollCodec


class SeedsForPredict:
    """The music predict loader: seeds, not data. Generation needs no input; each seed becomes one piece.

    Batches are ``{"seeds": LongTensor, "steps": int}`` (``steps`` 0: the model's default length), ``seeds``
    ``predict_seed … predict_seed + predict_samples - 1`` in order, ``batch_size`` per batch.
    """

    predict_samples: int
    predict_seed: int
    predict_steps: int | None
    batch_size: int

    def check_predict_settings(self) -> None:
        if self.predict_samples < 1:
            raise ValueError(f"predict_samples must be at least 1, got {self.predict_samples}")
        if self.predict_steps is not None and self.predict_steps < 1:
            raise ValueError(f"predict_steps must be at least 1 (or None), got {self.predict_steps}")

    def predict_dataloader(self) -> torch.utils.data.DataLoader:
        seeds = list(range(self.predict_seed, self.predict_seed + self.predict_samples))
        steps = self.predict_steps or 0
        batches = [
            {"seeds": torch.tensor(seeds[i : i + self.batch_size], dtype=torch.long), "steps": steps}
            for i in range(0, len(seeds), self.batch_size)
        ]
        return torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=_as_is)


def _as_is(batch: Any) -> Any:
    return batch


class PianoRollDataModule(SeedsForPredict, SeqDataModule):
    """Pieces as frames of sounding MIDI pitches (the Boulanger-Lewandowski et al. 2012 datasets).

    Args:
        dataset: ``jsb_chorales``, ``nottingham``, ``musedata``, ``piano_midi`` (under
            ``SEQTASKS_DATA_DIR``) or any directory of ``{train,validation,test}.parquet`` with a frames
            column.
        frames_column: the column holding each piece's frames (lists of MIDI pitches 21–108).
        steps_per_quarter: frames per quarter note, used only to time the MIDI files of samples
            (JSB Chorales is at quarter-note resolution: 1).
        batch_size: pieces per batch.
        seed: seed of shuffling (with the epoch).
        pool_batches: batches' worth of pieces sorted by length together.
        num_workers: DataLoader workers; 0 is usually fastest on a 2-core machine.
        predict_samples: pieces the predict stage generates (``seqtasks predict``), one per seed.
        predict_seed: the first of their seeds.
        predict_steps: their length in new steps; None: the model's default.
    """

    def __init__(
        self,
        dataset: str = "jsb_chorales",
        frames_column: str = "frames",
        steps_per_quarter: int = 1,
        batch_size: int = 16,
        seed: int = 42,
        pool_batches: int = 50,
        num_workers: int = 0,
        predict_samples: int = 4,
        predict_seed: int = 0,
        predict_steps: int | None = None,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            validation_fraction=0.0,
            seed=seed,
            pool_batches=pool_batches,
            num_workers=num_workers,
        )
        self.codec = PianoRollCodec(steps_per_quarter)  # refuses a steps_per_quarter below 1
        self.frames_column = frames_column
        self.steps_per_quarter = steps_per_quarter
        self.predict_samples, self.predict_seed, self.predict_steps = (
            predict_samples,
            predict_seed,
            predict_steps,
        )
        self.check_predict_settings()

    def artefacts(self) -> dict[str, Any]:
        return {"steps_per_quarter": self.steps_per_quarter, "dataset": str(self.dataset)}

    def prepare_settings(self) -> dict[str, Any]:
        return {"frames_column": self.frames_column}

    def required_columns(self) -> list[str]:
        return [self.frames_column]

    def _frames_of(self, row: dict[str, Any], index: int, source: str) -> list[list[int]]:
        try:
            return self.codec.check_frames(row.get(self.frames_column))
        except ValueError as error:
            raise DataError(source, str(error), index, self.frames_column) from None

    def build_prepared(self, rows: Iterator[tuple[int, dict[str, Any]]], source: str) -> dict[str, Any]:
        pieces = frames = 0
        low, high = HIGHEST_PITCH, LOWEST_PITCH
        for index, row in rows:
            piece = self._frames_of(row, index, source)
            pieces += 1
            frames += len(piece)
            pitches = [p for frame in piece for p in frame]
            if pitches:
                low, high = min(low, *pitches), max(high, *pitches)
        return {
            "num_keys": NUM_KEYS,
            "lowest_pitch": LOWEST_PITCH,
            "train_pieces": pieces,
            "train_frames": frames,
            "pitch_range": [low, high],
        }

    def encode_row(self, row: dict[str, Any], index: int, source: str) -> dict[str, Any]:
        try:
            encoded = self.codec.encode_frames(row.get(self.frames_column))
        except ValueError as error:
            raise DataError(source, str(error), index, self.frames_column) from None
        return {**encoded, "length": len(encoded["counts"]), "index": index}

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([e["length"] for e in examples], dtype=torch.long)
        rolls = self.codec.collate([e["keys"] for e in examples], [e["counts"] for e in examples])
        indices = torch.tensor([e["index"] for e in examples], dtype=torch.long)
        return {"rolls": rolls, "lengths": lengths, "indices": indices}

    def collate_table(self, table: Any) -> dict[str, torch.Tensor]:
        """:meth:`collate` of a ``pyarrow.Table`` of examples, from its columns: every sounding key's
        position in the flat ``(B, T, 88)`` roll computed at once in numpy (its small calls cost less than
        torch's: JSB 0.53 → 0.32 ms a batch of 8), then one tensor over the result."""
        keys, _ = flat_column(table.column("keys"))
        counts, lengths = flat_column(table.column("counts"))  # lengths: frames per piece
        pieces, width = len(lengths), int(lengths.max())
        # each frame's row in the (B * T) grid: its piece's first row plus its time in the piece
        first_frame = np.cumsum(lengths) - lengths
        row = np.arange(len(counts)) + np.repeat(np.arange(pieces) * width - first_frame, lengths)
        rolls = np.zeros(pieces * width * NUM_KEYS, dtype=np.float32)
        rolls[np.repeat(row, counts) * NUM_KEYS + keys] = 1
        return {
            "rolls": torch.from_numpy(rolls).view(pieces, width, NUM_KEYS),
            "lengths": int_column(table.column("length")),
            "indices": int_column(table.column("index")),
        }


def bach_chorale_names() -> list[tuple[int, str]]:
    """``(Riemenschneider number, corpus name)`` of the chorales music21 bundles, in its order."""
    from music21 import corpus

    # the default numbering is Riemenschneider's, 1 … 371, in order
    names = list(corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename"))
    return list(enumerate(names, start=1))


def convert_bach_chorales(
    codec: EventCodec, max_pieces: int | None = None, log_every: int = 50
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Parse music21's chorales into event tokens: ``(pieces, skipped)``, each skipped piece with its reason.

    A file listed under two Riemenschneider numbers is converted once; its second listing is reported
    as skipped ("same file as ..."), so no piece lands in two splits.
    """
    from music21 import corpus

    pieces: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    listing = bach_chorale_names()
    started = time.perf_counter()
    for position, (number, name) in enumerate(listing):
        if max_pieces is not None and len(pieces) >= max_pieces:
            break
        label = f"riemenschneider {number:03d} ({name})"
        if name in seen:
            skipped.append({"piece": label, "reason": f"same file as riemenschneider {seen[name]:03d}"})
            continue
        seen[name] = number
        try:
            score = corpus.parse(name)
            notes, stats = score_to_notes(score, STEPS_PER_QUARTER)
            tokens = codec.encode(notes)
        except ConversionError as error:
            skipped.append({"piece": label, "reason": str(error)})
            continue
        except Exception as error:  # music21 parse failures: reported with their type, never dropped silently
            skipped.append(
                {"piece": label, "reason": f"music21 could not parse it: {type(error).__name__}: {error}"}
            )
            continue
        pieces.append({"name": name, "number": number, "tokens": tokens, **stats})
        if log_every and (position + 1) % log_every == 0:
            rank_zero_info(
                f"bach chorales: {position + 1}/{len(listing)} read, {len(pieces)} converted "
                f"({time.perf_counter() - started:.0f}s)"
            )
    return pieces, skipped


class BachChoralesDataModule(SeedsForPredict, SeqDataModule):
    """Bach's chorales from music21's bundled corpus as event tokens (fully offline; no data directory).

    The prepare step parses each chorale (about 0.2 s each), converts it to note-on/note-off/time-shift
    tokens on a 16th-note grid (:mod:`seqtasks.music.events`) and caches the tokens, the vocabulary, the
    split and the report of pieces that could not be converted. The split is by piece, seeded.

    Args:
        max_pieces: convert only the first this many chorales (tests, quick runs); None converts all.
        validation_fraction: share of pieces for validation.
        test_fraction: share of pieces for test.
        transpositions: also train on every transposition by ``-n … +n`` semitones (training split only).
        max_length: training sequences longer than this many tokens are cut into windows of this length
            (evaluation always reads whole pieces); None keeps whole pieces.
        batch_size: sequences per batch.
        seed: seed of the split and of shuffling.
        pool_batches: batches' worth of sequences sorted by length together.
        num_workers: DataLoader workers.
        predict_samples: pieces the predict stage generates (``seqtasks predict``), one per seed.
        predict_seed: the first of their seeds.
        predict_steps: their length in new steps; None: the model's default.
    """

    def __init__(
        self,
        max_pieces: int | None = None,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        transpositions: int = 0,
        max_length: int | None = None,
        batch_size: int = 16,
        seed: int = 42,
        pool_batches: int = 50,
        num_workers: int = 0,
        predict_samples: int = 4,
        predict_seed: int = 0,
        predict_steps: int | None = None,
    ) -> None:
        super().__init__(
            "music21-bach-chorales",
            batch_size=batch_size,
            validation_fraction=validation_fraction,
            seed=seed,
            pool_batches=pool_batches,
            num_workers=num_workers,
        )
        if not 0.0 <= test_fraction < 1.0 or validation_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must be "
                "non-negative and leave pieces for training"
            )
        if max_pieces is not None and max_pieces < 3:
            raise ValueError(f"max_pieces must be at least 3 (one piece per split), got {max_pieces}")
        if transpositions < 0 or transpositions > 11:
            raise ValueError(f"transpositions must be in 0..11, got {transpositions}")
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.max_pieces = max_pieces
        self.test_fraction = test_fraction
        if test_fraction == 0:
            self.test_split = None  # nothing held out for test: fit does not test afterwards
        self.transpositions = transpositions
        self.max_length = max_length
        self.steps_per_quarter = STEPS_PER_QUARTER
        self.predict_samples, self.predict_seed, self.predict_steps = (
            predict_samples,
            predict_seed,
            predict_steps,
        )
        self.check_predict_settings()

    # ---- sizes and artefacts the model takes ---------------------------------------------------------
    def artefacts(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "steps_per_quarter": self.steps_per_quarter}

    @property
    def vocabulary(self) -> list[str]:
        return list(self.prepared["vocabulary"])

    @property
    def vocab_size(self) -> int:
        return len(self.prepared["vocabulary"])

    @property
    def codec(self) -> EventCodec:
        if getattr(self, "_codec", None) is None:
            self._codec = EventCodec(self.prepared["vocabulary"])
        return self._codec

    @property
    def pad_index(self) -> int:
        return self.codec.pad_id

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Pieces that could not be converted, with the reason."""
        return list(self.prepared["skipped"])

    # ---- the prepare step: music21 → tokens, cached ------------------------------------------------------
    @property
    def carves_validation(self) -> bool:
        return False

    def prepare_settings(self) -> dict[str, Any]:
        import music21

        return {
            "max_pieces": self.max_pieces,
            "test_fraction": self.test_fraction,
            "music21": music21.__version__,
            "steps_per_quarter": STEPS_PER_QUARTER,
            "format": 1,
        }

    def run_prepare(self) -> dict[str, Any]:
        vocabulary = build_vocabulary()
        pieces, skipped = convert_bach_chorales(EventCodec(vocabulary), self.max_pieces)
        if len(pieces) < 3:
            raise DataError(
                "music21 corpus (bach chorales)", f"only {len(pieces)} piece(s) could be converted"
            )
        order = sorted(range(len(pieces)), key=lambda i: pieces[i]["name"])
        random.Random(self.seed).shuffle(order)
        n_val = max(1, round(len(order) * self.validation_fraction)) if self.validation_fraction else 0
        n_test = max(1, round(len(order) * self.test_fraction)) if self.test_fraction else 0
        splits = {
            "validation": sorted(order[:n_val]),
            "test": sorted(order[n_val : n_val + n_test]),
            "train": sorted(order[n_val + n_test :]),
        }
        report = f"bach chorales: {len(pieces)} converted, {len(skipped)} skipped"
        for entry in skipped:
            report += f"\n  skipped {entry['piece']}: {entry['reason']}"
        print(report, file=sys.stderr, flush=True)
        return {
            "vocabulary": vocabulary,
            "pieces": pieces,
            "skipped": skipped,
            "splits": splits,
            "train_rows": len(splits["train"]),
            "held_out_rows": 0,
            "source": "music21 corpus",
        }

    # ---- splits --------------------------------------------------------------------------------------
    def split_examples(self, split: str) -> datasets.Dataset:
        """One split's token sequences (the training split transposed and windowed as configured)."""
        prepared = self.prepared
        pieces = [prepared["pieces"][i] for i in prepared["splits"][split]]
        sequences = [p["tokens"] for p in pieces]
        if split == "train":
            codec = self.codec
            shifted = []
            for semitones in range(-self.transpositions, self.transpositions + 1):
                for tokens in sequences:
                    moved = tokens if semitones == 0 else codec.transpose(tokens, semitones)
                    if moved is not None:
                        shifted.append(moved)
            sequences = shifted
            if self.max_length is not None:
                sequences = [w for s in sequences for w in _windows(s, self.max_length)]
        return datasets.Dataset.from_dict(
            {
                "tokens": sequences,
                "length": [len(s) - 1 for s in sequences],
                "index": list(range(len(sequences))),
            }
        )

    def setup(self, stage: str | None = None) -> None:
        prepared = self.prepared
        if not getattr(self, "_reported", False):
            self._reported = True
            sizes = ", ".join(
                f"{split} {len(prepared['splits'][split])}" for split in ("train", "validation", "test")
            )
            rank_zero_info(
                f"bach chorales: {len(prepared['pieces'])} pieces ({sizes}); {len(prepared['skipped'])} "
                f"could not be converted, each with its reason under 'skipped' in {self.prepared_path()}"
            )
        wanted = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}
        for split in wanted.get(stage or "", ("train", "validation", "test")):
            if self.examples(split) is None and self.prepared["splits"][split]:
                self.set_examples(split, self.split_examples(split))

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Next-token pairs: ``inputs`` are tokens ``0 … n-2``, ``targets`` tokens ``1 … n-1``."""
        pad = self.pad_index
        inputs, lengths = pad_sequences([e["tokens"][:-1] for e in examples], pad)
        targets, _ = pad_sequences([e["tokens"][1:] for e in examples], pad)
        return {"inputs": inputs, "targets": targets, "lengths": lengths}


def _windows(tokens: list[int], size: int) -> list[list[int]]:
    """Windows of ``size`` tokens overlapping by one, so every next-token pair is trained exactly once."""
    if len(tokens) <= size:
        return [tokens]
    return [
        tokens[i : i + size] for i in range(0, len(tokens) - 1, size - 1) if len(tokens[i : i + size]) > 1
    ]
