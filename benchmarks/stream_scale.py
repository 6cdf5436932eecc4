"""A streamed corpus larger than memory, through the ``translation-iitb`` model, and 1 vs 2 processes.

Three measurements, each printing a table (``--parts corpus,pipeline,model,processes``):

* **corpus** builds a local Parquet corpus of ``--rows`` English–Hindi pairs (default 2,000,000) in
  ``--shards`` files. No corpus that large is at hand offline (the IITB training set lives on the Hub), so
  it *repeats* the local training sets (``en_hi/hvg``, ``en_hi/tatoeba``, ``en_hi/hindi_english_truncated``:
  35,792 pairs) cyclically; validation/test are the IITB dev/test sets. It is written under the cache
  directory, never into the data directory.
* **pipeline** reads the whole stream through the recipe's input pipeline (prepare step: BPE on every
  row; then encoding, length bucketing and collation of the training loader) and prints rows/s and the
  process's RSS every ``--every`` rows: the memory must stay flat as rows are read.
* **model** trains the ``translation-iitb`` model through the full Lightning pipeline for ``--steps``
  optimizer steps on that stream, timing each step after ``--warmup`` and sampling RSS: model rows/s
  against the pipeline's rows/s.
* **processes** times ``--process-steps`` training steps of ``sentiment-imdb`` (map-style) and of the
  ``translation-iitb`` model on the corpus at 1 process and at 2 DDP processes (gloo) on this CPU: the
  wall time of a run of ``warmup + N`` steps minus that of a run of ``warmup`` steps, so start-up,
  prepare and encoding cancel out.

Usage::

    SEQTASKS_DATA_DIR=... python benchmarks/stream_scale.py             # everything (~40 min, 2 cores)
    python benchmarks/stream_scale.py --quick                            # 60k rows, few steps: a smoke run
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("en_hi/hvg", "en_hi/tatoeba", "en_hi/hindi_english_truncated")
RECIPE = ROOT / "recipes" / "translation-iitb.yaml"


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def data_dir() -> Path:
    root = os.environ.get("SEQTASKS_DATA_DIR")
    if not root:
        raise SystemExit("stream_scale: set SEQTASKS_DATA_DIR to the project's data directory")
    return Path(root)


def build_corpus(out: Path, rows: int, shards: int) -> Path:
    """``out/train-XXXXX-of-NNNNN.parquet`` (``rows`` pairs, cyclic repeats) + IITB dev/test; kept if done."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = out / f".complete-{rows}-{shards}"
    if marker.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.parquet"):
        stale.unlink()
    base = [pq.read_table(data_dir() / name / "train.parquet", columns=["en", "hi"]) for name in SOURCES]
    table = pa.concat_tables([t.cast(pa.schema([("en", pa.string()), ("hi", pa.string())])) for t in base])
    english, hindi = table.column("en").to_pylist(), table.column("hi").to_pylist()
    per_shard = -(-rows // shards)
    for shard in range(shards):
        start, stop = shard * per_shard, min(rows, (shard + 1) * per_shard)
        picks = [i % len(english) for i in range(start, stop)]
        part = pa.table({"en": [english[i] for i in picks], "hi": [hindi[i] for i in picks]})
        pq.write_table(part, out / f"train-{shard:05d}-of-{shards:05d}.parquet", row_group_size=10_000)
    for split in ("validation", "test"):
        source = data_dir() / "en_hi/iitb" / f"{split}.parquet"
        pq.write_table(pq.read_table(source), out / f"{split}.parquet")
    marker.touch()
    print(f"corpus: {rows:,} pairs ({len(english):,} distinct, repeated) in {shards} shards under {out}")
    return out


def recipe_cli(corpus: Path, extra: list[str]):
    from seqtasks.training import run_lightning

    args = ["--config", str(RECIPE), "--data.init_args.dataset", str(corpus), "--trainer.logger=false"]
    sys.argv[1:] = []  # LightningCLI reads ``args``; this script's own options are not its
    return run_lightning(args + extra, run=False)


def measure_pipeline(corpus: Path, every: int) -> dict[str, float]:
    start = time.perf_counter()
    cli = recipe_cli(corpus, [])
    datamodule = cli.datamodule
    datamodule.prepared  # noqa: B018  (the prepare step: a full read and BPE training)
    prepare_s = time.perf_counter() - start
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    print(f"\npipeline: prepare step {prepare_s:.0f} s; RSS by rows read")
    print(f"| rows read | RSS MiB | rows/s so far |\n|---:|---:|---:|\n| 0 | {rss_mib():.0f} | |")
    rows, next_mark, began, samples = 0, every, time.perf_counter(), []
    for batch in loader:
        rows += int(batch["source"].size(0))
        if rows >= next_mark:
            rate = rows / (time.perf_counter() - began)
            samples.append(rss_mib())
            print(f"| {rows:,} | {samples[-1]:.0f} | {rate:,.0f} |", flush=True)
            next_mark += every
    elapsed = time.perf_counter() - began
    print(f"| {rows:,} (end) | {rss_mib():.0f} | {rows / elapsed:,.0f} |")
    return {
        "rows": rows,
        "rows_per_s": rows / elapsed,
        "prepare_s": prepare_s,
        "rss_first": samples[0] if samples else rss_mib(),
        "rss_last": rss_mib(),
        "peak": peak_rss_mib(),
    }


def measure_model(corpus: Path, steps: int, warmup: int, rss_every: int) -> dict[str, float]:
    import lightning.pytorch as pl

    class StepClock(pl.Callback):
        """Step times after the warm-up; RSS every ``rss_every`` steps with the largest batch so far.

        A training process's memory follows the largest batch it has met (activations and logits of
        ``batch × target length × vocabulary``), so each RSS sample is shown next to that batch's shape.
        """

        def __init__(self) -> None:
            self.times: list[float] = []
            self.rows = 0
            self.widest = (0, 0)
            self.rss: list[tuple[int, int, tuple[int, int], float]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.times.append(time.perf_counter())
            step = len(self.times)
            if step > warmup:
                self.rows += int(batch["source"].size(0))
            shape = (int(batch["source"].size(1)), int(batch["target_out"].size(1)))
            self.widest = max(self.widest, shape, key=lambda s: s[0] * s[1])
            if step % rss_every == 0:
                self.rss.append((step, step * int(batch["source"].size(0)), self.widest, rss_mib()))

    clock = StepClock()
    extra = [
        f"--trainer.max_steps={warmup + steps}",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_checkpointing=false",
        "--trainer.callbacks=[]",
        "--test_after_fit=false",
        f"--trainer.default_root_dir={corpus.parent / 'stream-scale-run'}",
    ]
    cli = recipe_cli(corpus, extra)
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    timed = clock.times[warmup:]
    elapsed = timed[-1] - clock.times[warmup - 1] if warmup else timed[-1] - timed[0]
    print(f"\nmodel: {len(timed)} steps after {warmup} warm-up, {elapsed:.1f} s")
    print("| step | rows read (about) | widest batch so far (source × target subwords) | RSS MiB |")
    print("|---:|---:|---|---:|")
    for step, rows, (source, target), rss in clock.rss:
        print(f"| {step} | {rows:,} | {source} × {target} | {rss:.0f} |")
    return {"rows_per_s": clock.rows / elapsed, "s_per_step": elapsed / len(timed), "peak": peak_rss_mib()}


def timed_fit(args: list[str], devices: int, steps: int, log: Path) -> float:
    command = [sys.executable, "-m", "seqtasks.cli", "fit", *args, f"--trainer.max_steps={steps}"]
    command += ["--trainer.limit_val_batches=0", "--test_after_fit=false", "--trainer.logger=false"]
    command += ["--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", "--trainer.accelerator=cpu"]
    command += [f"--trainer.devices={devices}"] + (["--trainer.strategy=ddp"] if devices > 1 else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // devices))}
    start = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True, cwd=ROOT)
    return time.perf_counter() - start


def measure_processes(corpus: Path, steps: int, warmup: int, log: Path) -> list[dict[str, float | str]]:
    runs = {
        "sentiment-imdb (map-style), batch 64": ["--config", str(ROOT / "recipes/sentiment-imdb.yaml")],
        "translation-iitb model (streamed corpus), batch 64": [
            "--config",
            str(RECIPE),
            "--data.init_args.dataset",
            str(corpus),
        ],
    }
    rows_out = []
    for name, args in runs.items():
        for devices in (1, 2):
            short = timed_fit(args, devices, warmup, log)
            long = timed_fit(args, devices, warmup + steps, log)
            per_step = (long - short) / steps
            rows_out.append(
                {
                    "run": name,
                    "processes": devices,
                    "s_per_step": per_step,
                    "rows_per_s": 64 * devices / per_step,
                }
            )
            print(f"{name}, {devices} process(es): {per_step:.3f} s/step", flush=True)
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="pairs in the corpus")
    parser.add_argument("--shards", type=int, default=16, help="Parquet files of the training split")
    parser.add_argument("--every", type=int, default=250_000, help="RSS sample interval (rows read)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps of the model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--rss-every", type=int, default=0, help="model: RSS sample interval (0: steps/5)")
    parser.add_argument("--process-steps", type=int, default=40, help="timed steps per 1-vs-2 run")
    parser.add_argument("--parts", default="corpus,pipeline,model,processes", help="which measurements")
    parser.add_argument("--quick", action="store_true", help="60k rows, 8 steps: a smoke run")
    parser.add_argument("--log", default="runs/stream_scale.log", help="output of the subprocess fits")
    options = parser.parse_args()
    if options.quick:
        options.rows, options.every, options.steps, options.process_steps = 60_000, 20_000, 8, 8
        options.warmup = 2
    parts = set(options.parts.split(","))
    from seqtasks.data.sources import cache_dir

    corpus = build_corpus(cache_dir() / "corpora" / f"en-hi-{options.rows}", options.rows, options.shards)
    log = ROOT / options.log
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPU(s); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    pipeline = measure_pipeline(corpus, options.every) if "pipeline" in parts else None
    rss_every = options.rss_every or max(1, options.steps // 5)
    model = measure_model(corpus, options.steps, options.warmup, rss_every) if "model" in parts else None
    if pipeline and model:
        print("\n| | rows/s | peak RSS MiB |\n|---|---:|---:|")
        print(f"| input pipeline (whole stream) | {pipeline['rows_per_s']:,.0f} | {pipeline['peak']:.0f} |")
        print(f"| model (Lightning fit) | {model['rows_per_s']:,.1f} | {model['peak']:.0f} |")
        print(f"| ratio pipeline / model | {pipeline['rows_per_s'] / model['rows_per_s']:,.0f}× | |")
    if "processes" in parts:
        results = measure_processes(corpus, options.process_steps, options.warmup, log)
        print("\n| run | processes | s/step | rows/s | speed-up |\n|---|---:|---:|---:|---:|")
        for row in results:
            one = next(r for r in results if r["run"] == row["run"] and r["processes"] == 1)
            speedup = row["rows_per_s"] / one["rows_per_s"]
            print(
                f"| {row['run']} | {row['processes']} | {row['s_per_step']:.3f} | "
                f"{row['rows_per_s']:,.1f} | {speedup:.2f}× |"
            )


if __name__ == "__main__":
    main()
