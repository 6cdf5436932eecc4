"""Streamed training loader: rows/s with 0..N DataLoader workers, and what a mid-epoch resume costs.

Run (the IMDB training split streamed, as ``recipes/sentiment-imdb.yaml`` reads it, but ``streaming``):

    SEQTASKS_DATA_DIR=... OMP_NUM_THREADS=1 python benchmarks/loader_resume.py --workers 0 1 2

For each worker count: one epoch of the training loader alone (no model), timed, in real rows per second
(rows read, encoded, length-bucketed and collated); after ``--resume-after`` batches the loader's
``state_dict()`` is taken, as a checkpoint would, and a fresh datamodule's loader resumes from it: the
time to its first batch (the stream's position reloaded, the current chunk re-read and re-encoded) and
the count of batches it then gives (the epoch's rest). Prints one JSON line per worker count.
"""

from __future__ import annotations

import argparse
import json
import time

from seqtasks.data import TextClassificationDataModule


def module(dataset: str, workers: int, shuffle_buffer: int) -> TextClassificationDataModule:
    data = TextClassificationDataModule(
        dataset,
        labels=["neg", "pos"],
        max_length=400,
        min_freq=2,
        max_vocab_size=30000,
        batch_size=64,
        validation_fraction=0.1,
        test_split=None,
        streaming=True,
        shuffle_buffer=shuffle_buffer,
        num_workers=workers,
    )
    data.setup("fit")
    data.set_epoch(0)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="stanfordnlp/imdb")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--resume-after", type=int, default=150, help="batches before the state is taken")
    parser.add_argument("--shuffle-buffer", type=int, default=10_000)
    args = parser.parse_args()
    for workers in args.workers:
        loader = module(args.dataset, workers, args.shuffle_buffer).train_dataloader()
        start, rows, batches, state = time.perf_counter(), 0, 0, None
        for batch in loader:
            rows += int(batch["real"].sum())
            batches += 1
            if batches == args.resume_after:
                state = loader.state_dict()
        epoch_s = time.perf_counter() - start
        resumed = module(args.dataset, workers, args.shuffle_buffer).train_dataloader()
        resumed.load_state_dict(state)
        start = time.perf_counter()
        iterator = iter(resumed)
        next(iterator)
        first_s = time.perf_counter() - start
        rest = 1 + sum(1 for _ in iterator)
        record = {
            "workers": workers,
            "rows": rows,
            "batches": batches,
            "epoch_s": round(epoch_s, 1),
            "rows_per_s": round(rows / epoch_s),
            "resume_first_batch_s": round(first_s, 2),
            "resumed_batches": rest,
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
