"""Train on your own MIDI: any folder of MIDI files as a piano-roll dataset, nothing dropped silently.

:class:`MidiFolderDataModule` reads every MIDI file under a folder once, in its prepare step
(:mod:`seqtasks.music.collection`: quantised to a grid, the track rule and drums policy as settings), and
caches the pieces, the split and the report of every file and track dropped or changed, with the reason,
as a JSON file under ``SEQTASKS_CACHE_DIR`` (a new prepare step runs when a file is added or edited). The
split is by file and reproducible: files are ordered by a seeded hash of their path, so adding a file
moves no other file between splits unless the split sizes change. At setup the report's counts are
printed, and logged to the trainer's logger (W&B: the counts as metrics and the report as a table).
Batches are the ``(B, T, 88)`` rolls of :class:`~seqtasks.data.music.PianoRollDataModule`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import datasets

from seqtasks.data.errors import DataError
from seqtasks.data.music import PianoRollDataModule
from seqtasks.music.collection import ReadSettings, midi_files, read_folder, summarise


class MidiFolderDataModule(PianoRollDataModule):
    """A folder of MIDI files (searched recursively) as piano rolls for a piano-roll model.

    Args:
        folder: the folder of ``.mid`` / ``.midi`` files.
        steps_per_quarter: grid of the piano roll, steps per quarter note (4: sixteenth notes).
        programs: General MIDI programs (0–127) whose notes are kept; None keeps every program.
        drums: ``drop`` leaves drum notes (channel 10) out; ``keep`` keeps them as pitches.
        off_grid: ``quantise`` moves notes off the grid onto it (reported); ``drop`` leaves such files out.
        grid_tolerance: how far (in steps) an onset or end may lie from the grid before it counts as off it.
        out_of_range: ``drop`` leaves notes outside the 88 keys out; ``octave`` moves them by octaves.
        validation_fraction: share of files for validation (at least one file when positive).
        test_fraction: share of files for test (at least one file when positive).
        batch_size: pieces per batch.
        seed: seed of the split and of shuffling.
        pool_batches: batches' worth of pieces sorted by length together.
        num_workers: DataLoader workers.
        predict_samples: pieces the predict stage generates, one per seed.
        predict_seed: the first of their seeds.
        predict_steps: their length in new steps; None: the model's default.
    """

    def __init__(
        self,
        folder: str,
        steps_per_quarter: int = 4,
        programs: list[int] | None = None,
        drums: str = "drop",
        off_grid: str = "quantise",
        grid_tolerance: float = 0.25,
        out_of_range: str = "drop",
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 8,
        seed: int = 42,
        pool_batches: int = 50,
        num_workers: int = 0,
        predict_samples: int = 4,
        predict_seed: int = 0,
        predict_steps: int | None = None,
    ) -> None:
        self.settings = ReadSettings(  # validates every policy before anything is read
            steps_per_quarter,
            tuple(programs) if programs is not None else None,
            drums,
            off_grid,
            grid_tolerance,
            out_of_range,
        )
        if not 0.0 <= validation_fraction < 1.0 or not 0.0 <= test_fraction < 1.0:
            raise ValueError("validation_fraction and test_fraction must be in [0, 1)")
        if validation_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"validation_fraction ({validation_fraction}) + test_fraction ({test_fraction}) leaves no "
                "files for training"
            )
        super().__init__(
            folder,
            steps_per_quarter=steps_per_quarter,
            batch_size=batch_size,
            seed=seed,
            pool_batches=pool_batches,
            num_workers=num_workers,
            predict_samples=predict_samples,
            predict_seed=predict_seed,
            predict_steps=predict_steps,
        )
        self.folder = folder
        self.split_fractions = (validation_fraction, test_fraction)
        if test_fraction == 0:
            self.test_split = None

    # ---- the prepare step: MIDI files → frames, with the report --------------------------------------
    @property
    def carves_validation(self) -> bool:
        return False

    def artefacts(self) -> dict[str, Any]:
        return {"steps_per_quarter": self.steps_per_quarter, "dataset": os.path.basename(self.folder)}

    def prepare_settings(self) -> dict[str, Any]:
        return {**self.settings.__dict__, "split": list(self.split_fractions), "format": 1}

    def _train_file_stamps(self) -> list[tuple[str, int, int]]:
        """Every MIDI file's name, size and mtime: an added or edited file gets a fresh prepare step."""
        try:
            names = midi_files(self.folder)
        except FileNotFoundError as error:
            raise DataError(self.folder, str(error).split(": ", 1)[-1]) from None
        stamps = []
        for name in names:
            stat = os.stat(os.path.join(self.folder, name))
            stamps.append((name, stat.st_size, int(stat.st_mtime)))
        return stamps

    def split_of_files(self, names: list[str]) -> dict[str, list[int]]:
        """Indices of ``names`` per split: ordered by a seeded hash of each path, then cut by fraction."""
        order = sorted(
            range(len(names)), key=lambda i: hashlib.sha1(f"{self.seed}/{names[i]}".encode()).hexdigest()
        )
        fraction_val, fraction_test = self.split_fractions
        n_val = max(1, round(len(order) * fraction_val)) if fraction_val else 0
        n_test = max(1, round(len(order) * fraction_test)) if fraction_test else 0
        return {
            "validation": sorted(order[:n_val]),
            "test": sorted(order[n_val : n_val + n_test]),
            "train": sorted(order[n_val + n_test :]),
        }

    def run_prepare(self) -> dict[str, Any]:
        pieces, report = read_folder(self.folder, self.settings)
        needed = 1 + (self.split_fractions[0] > 0) + (self.split_fractions[1] > 0)
        if len(pieces) < needed:
            reasons = "; ".join(f"{e['file']}: {e['reason']} ({e['detail']})" for e in report[:10])
            raise DataError(
                self.folder,
                f"only {len(pieces)} usable MIDI file(s), {needed} needed for the splits"
                + (f"; {reasons}" if reasons else ""),
            )
        splits = self.split_of_files([p["file"] for p in pieces])
        return {
            "pieces": pieces,
            "report": report,
            "counts": summarise(report),
            "files": len(midi_files(self.folder)),
            "splits": splits,
            "train_rows": len(splits["train"]),
            "held_out_rows": 0,
            "source": f"midi folder:{os.path.abspath(self.folder)}",
        }

    @property
    def report(self) -> list[dict[str, Any]]:
        """Every file and track dropped and every change made, each with its reason."""
        return list(self.prepared["report"])

    def report_text(self) -> str:
        prepared = self.prepared
        sizes = ", ".join(f"{s} {len(prepared['splits'][s])}" for s in ("train", "validation", "test"))
        lines = [
            f"midi folder {self.folder}: {prepared['files']} MIDI file(s), {len(prepared['pieces'])} used "
            f"({sizes})"
        ]
        lines += [f"  {key}: {count}" for key, count in prepared["counts"].items()]
        for entry in prepared["report"]:
            where = entry["file"] + (f" {entry['track']}" if "track" in entry else "")
            lines.append(
                f"  {entry['action']} {where}: {entry['reason']} — {entry['detail']} ({entry['count']})"
            )
        return "\n".join(lines)

    def _log_report(self) -> None:
        trainer = self.trainer
        logger = trainer.logger if trainer is not None else None
        if logger is None or trainer.global_rank != 0:
            return
        prepared = self.prepared
        metrics = {f"data/{key}": float(count) for key, count in prepared["counts"].items()}
        metrics["data/files"] = float(prepared["files"])
        metrics["data/files used"] = float(len(prepared["pieces"]))
        logger.log_metrics(metrics, step=0)
        if hasattr(logger, "log_table"):  # W&B: the whole report as a table
            columns = ["file", "track", "action", "reason", "detail", "count"]
            rows = [[str(e.get(c, "")) for c in columns] for e in prepared["report"]]
            logger.log_table("data/report", columns=columns, data=rows)

    # ---- splits --------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        prepared = self.prepared
        if not getattr(self, "_reported", False):
            self._reported = True
            print(self.report_text(), file=sys.stderr, flush=True)
            self._log_report()
        wanted = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}
        for split in wanted.get(stage or "", ("train", "validation", "test")):
            if self.examples(split) is None and prepared["splits"][split]:
                pieces = [prepared["pieces"][i] for i in prepared["splits"][split]]
                rows = [
                    self.encode_row({self.frames_column: p["frames"]}, i, p["file"])
                    for i, p in enumerate(pieces)
                ]
                self.set_examples(split, datasets.Dataset.from_list(rows))
