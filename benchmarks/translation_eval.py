"""Score a translation checkpoint with sacreBLEU/chrF on English→Hindi test sets, greedy vs beam search.

Run:  SEQTASKS_DATA_DIR=/path/to/data python benchmarks/translation_eval.py --ckpt runs/.../best.ckpt \
          --set hvg/test --set hvg/challenge --set flores200/test --set iitb/test --beams 1,5

Each set is ``<folder under en_hi>/<parquet file stem>`` (columns ``en``, ``hi``). Prints a Markdown table
(BLEU, chrF, decoding wall time) and the sacreBLEU signatures; the hypotheses go to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from seqtasks.inference.translation import Translator, corpus_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--set", action="append", dest="sets", required=True, help="e.g. hvg/test")
    parser.add_argument("--beams", default="1,5", help="comma-separated beam sizes (1: greedy)")
    parser.add_argument("--limit", type=int, default=None, help="first N sentences of each set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="a folder for the hypotheses, one file per set and beam")
    options = parser.parse_args()
    data_dir = os.environ.get("SEQTASKS_DATA_DIR")
    if not data_dir:
        raise SystemExit("set SEQTASKS_DATA_DIR to the folder holding en_hi/")
    translator = Translator.from_checkpoint(options.ckpt)
    print(f"checkpoint {options.ckpt}; torch threads {torch.get_num_threads()}")
    rows, signatures = [], set()
    for name in options.sets:
        folder, _, stem = name.rpartition("/")
        table = pq.read_table(Path(data_dir) / "en_hi" / folder / f"{stem}.parquet", columns=["en", "hi"])
        sources, references = table.column("en").to_pylist(), table.column("hi").to_pylist()
        if options.limit:
            sources, references = sources[: options.limit], references[: options.limit]
        for beam in [int(b) for b in options.beams.split(",")]:
            start = time.perf_counter()
            hypotheses = translator.translate(sources, beam=beam, batch_size=options.batch_size)
            seconds = time.perf_counter() - start
            scores = corpus_scores(hypotheses, references)
            signatures.add(scores["line"].split(" | ", 1)[1])
            decoding = "greedy" if beam == 1 else f"beam {beam}"
            rows.append((name, len(sources), decoding, scores["bleu"], scores["chrf"], seconds))
            print(f"{name} {decoding}: {scores['line']} ({seconds:.1f} s)", flush=True)
            if options.out:
                os.makedirs(options.out, exist_ok=True)
                path = Path(options.out) / f"{name.replace('/', '_')}.beam{beam}.txt"
                path.write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
    print("\n| set | sentences | decoding | BLEU | chrF | wall time |\n|---|---:|---|---:|---:|---:|")
    for name, n, decoding, bleu, chrf, seconds in rows:
        print(f"| {name} | {n} | {decoding} | {bleu:.2f} | {chrf:.2f} | {seconds:.1f} s |")
    for signature in sorted(signatures):
        print(f"\nsignatures: {signature}")


if __name__ == "__main__":
    main()
