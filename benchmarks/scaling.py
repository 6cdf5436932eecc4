"""Scaling curves of the encoders' train step, and of one training epoch against corpus size.

Run on an otherwise idle machine (the corpus axis needs the data directory that holds ``reviews/imdb``):

    export SEQTASKS_DATA_DIR=/path/to/data
    OMP_NUM_THREADS=1 python benchmarks/scaling.py --json scaling.json     # full grid, about 7 minutes
    python benchmarks/scaling.py --quick                                   # a smoke run, under a minute
    python benchmarks/scaling.py --from-json scaling.json                  # tables and figure again

**Encoder axes.** For each cell (RNNEncoder, GRUEncoder, LSTMEncoder: torch's fused kernels; ElmanEncoder:
the from-scratch Python loop per time step), bidirectional, one layer, a train step is forward + backward of
``outputs.sum()`` with inputs that require grad (as behind an embedding), on lengths drawn uniformly in
[T/2, T] with one row of full length T. The fused cells run both variable-length paths, ``pack`` and
``padded``; ElmanEncoder has one (a masked loop over the padded width). Tokens/s counts real tokens (the
sum of the lengths), so padding is work the padded path pays for. One axis moves at a time away from the
base point (batch 32, T 64, hidden 128, input 64): sequence length, batch size, hidden size. Each model
takes a warm-up step at each shape, the order of the variants alternates between repeats, and each
figure is the median over repeats.

**Peak memory** is the peak growth of the process's resident set (``VmHWM`` − ``VmRSS`` before the step,
from ``/proc/self/status``, the high-water mark reset through ``/proc/self/clear_refs``) over one train
step, with glibc's mmap threshold pinned at 128 KiB so freed tensors go back to the system and a step
cannot hide in memory a previous one left resident. It is what the operating system sees: activations
saved for backward, gradients and the kernels' own workspaces. ``tracemalloc`` would not do: torch's
CPU allocator does not go through Python's allocator, so it sees none of the tensors; and torch keeps
no peak statistics for CPU memory. Linux only; elsewhere the memory columns are empty.

**Corpus axis.** The first N rows of the real IMDB train split are written to a temporary dataset folder
and go through the project's own ``TextClassificationDataModule`` (prepare step with its vocabulary,
encoding, length-bucketed batches, collation); one epoch of a fixed ClassifierNetwork (BiLSTM, padded
path) with AdamW is timed in a plain loop over the datamodule's training loader, so the epoch's time
includes fetching and collating its batches. The vocabulary grows with N (min_freq 2), and so does the
embedding's dense AdamW update per step: the table reports it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

import seqtasks.encoders as encoders

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_paths import machine_line, train_step_rate

CELLS = ("RNNEncoder", "GRUEncoder", "LSTMEncoder", "ElmanEncoder")
FUSED_PATHS = ("pack", "padded")
AXES = ("time", "batch", "hidden")
AXIS_LABELS = {"time": "sequence length T", "batch": "batch size B", "hidden": "hidden size H"}


@dataclass(frozen=True)
class Shape:
    """One grid point of the encoder axes."""

    batch: int = 32
    time: int = 64
    hidden: int = 128
    input_size: int = 64


@dataclass(frozen=True)
class Variant:
    cell: str
    path: str  # "pack", "padded" or "loop" (ElmanEncoder)

    @property
    def label(self) -> str:
        return f"{self.cell.removesuffix('Encoder')} {self.path}"


VARIANTS = (
    *(Variant(cell, path) for cell in CELLS[:3] for path in FUSED_PATHS),
    Variant("ElmanEncoder", "loop"),
)


# ---- memory --------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


class RssPeak:
    """Peak resident-set growth of a callable, in MiB; None where /proc does not allow it."""

    def __init__(self) -> None:
        self.libc = None
        try:
            self.libc = ctypes.CDLL("libc.so.6")
            self.libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed, so large frees return memory
            self.libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
        except OSError:
            pass
        self.available = self._reset() and _status_kib("VmHWM") is not None

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        except OSError:
            return False
        return True

    def measure(self, fn: Callable[[], None]) -> float | None:
        if not self.available:
            fn()
            return None
        gc.collect()
        if self.libc is not None:
            self.libc.malloc_trim(0)
        base = _status_kib("VmRSS")
        self._reset()
        fn()
        peak = _status_kib("VmHWM")
        return (peak - base) / 1024 if base is not None and peak is not None else None


# ---- encoder axes ----------------------------------------------------------------------------------------
def make_batch(shape: Shape, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(B, T, D)`` and lengths in [T/2, T], one row of length T so every path sees width T."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(shape.batch, shape.time, shape.input_size, generator=generator)
    lengths = torch.randint(shape.time // 2, shape.time + 1, (shape.batch,), generator=generator)
    lengths[0] = shape.time
    return inputs, lengths


def build(variant: Variant, shape: Shape, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    factory = getattr(encoders, variant.cell)
    kwargs = {} if variant.path == "loop" else {"variable_length": variant.path}
    return factory(shape.input_size, shape.hidden, num_layers=1, bidirectional=True, **kwargs)


def train_step(encoder: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor) -> None:
    encoder.zero_grad(set_to_none=True)
    encoder(inputs.detach().requires_grad_(True), lengths=lengths).outputs.sum().backward()


def measure_point(shape: Shape, args: argparse.Namespace, rss: RssPeak) -> list[dict]:
    """Median tokens/s and peak RSS growth of every variant at one shape.

    The ``pack`` path is skipped above ``--pack-max-time``: torch's packed RNN backward on CPU grows with
    T² (measured: LSTM, batch 32, hidden 128, one step takes 0.6 s at T=128, 7.8 s at T=512), so a
    T=1024 point would cost minutes for a number the T ≤ 512 points already predict.
    """
    inputs, lengths = make_batch(shape, args.seed)
    variants = tuple(v for v in VARIANTS if v.path != "pack" or shape.time <= args.pack_max_time)
    models = {variant: build(variant, shape, args.seed) for variant in variants}
    memory = {}
    for variant, model in models.items():
        model.train()
        train_step(model, inputs, lengths)  # warm-up: first calls at this shape, one-time caches
        memory[variant] = rss.measure(lambda model=model: train_step(model, inputs, lengths))
    rates: dict[Variant, list[float]] = {variant: [] for variant in variants}
    for repeat in range(args.repeats):
        for variant in variants if repeat % 2 == 0 else variants[::-1]:
            rates[variant].append(train_step_rate(models[variant], inputs, lengths, args.steps, 0))
    return [
        {
            **asdict(shape),
            "cell": variant.cell,
            "path": variant.path,
            "tokens_per_s": statistics.median(rates[variant]),
            "peak_rss_mib": memory[variant],
            "real_tokens": int(lengths.sum()),
            "padded_tokens": shape.batch * shape.time,
        }
        for variant in variants
    ]


def encoder_axes(args: argparse.Namespace, grid: dict[str, list[int]], base: Shape) -> dict[str, list]:
    rss = RssPeak()
    results: dict[str, list] = {}
    for axis in AXES:
        rows = []
        for value in grid[axis]:
            started = time.perf_counter()
            rows.extend(measure_point(replace(base, **{axis: value}), args, rss))
            print(f"  {axis}={value}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        results[axis] = rows
    results["memory_method"] = "peak RSS growth (VmHWM)" if rss.available else "unavailable"
    return results


# ---- corpus axis ----------------------------------------------------------------------------------------
def corpus_axis(args: argparse.Namespace, sizes: list[int]) -> list[dict]:
    """Wall time of one epoch of a fixed classifier on the first N IMDB train rows, median over repeats."""
    import datasets
    import pyarrow.parquet as pq

    from seqtasks.data import TextClassificationDataModule
    from seqtasks.data.sources import DATA_DIR_ENV, resolve
    from seqtasks.networks import ClassifierNetwork

    datasets.disable_progress_bars()

    source = resolve("stanfordnlp/imdb")
    if source.kind != "local":
        raise SystemExit(
            f"the corpus axis reads reviews/imdb from {DATA_DIR_ENV}; set it (or pass --no-corpus)"
        )
    table = pq.read_table(os.path.join(source.location, "train.parquet"), columns=["text", "label"])
    if max(sizes) > table.num_rows:
        raise SystemExit(f"--corpus-sizes go up to {max(sizes)} rows; IMDB train has {table.num_rows}")
    workdir = tempfile.mkdtemp(prefix="seqtasks-scaling-")
    os.environ["SEQTASKS_CACHE_DIR"] = os.path.join(workdir, "cache")
    setups = {}
    for size in sizes:
        folder = os.path.join(workdir, f"imdb-{size}")
        os.makedirs(folder)
        pq.write_table(table.slice(0, size), os.path.join(folder, "train.parquet"))
        started = time.perf_counter()
        datamodule = TextClassificationDataModule(
            dataset=folder,
            labels=["neg", "pos"],
            max_length=args.corpus_max_length,
            batch_size=64,
            validation_fraction=0.0,
            test_split=None,
        )
        datamodule.setup("fit")
        setups[size] = (datamodule, time.perf_counter() - started)

    def epoch(size: int) -> tuple[float, int, int]:
        datamodule = setups[size][0]
        torch.manual_seed(args.seed)
        network = ClassifierNetwork(
            datamodule.vocab_size,
            len(datamodule.labels),
            datamodule.pad_index,
            encoder=lambda dim: encoders.LSTMEncoder(dim, 64, bidirectional=True, variable_length="padded"),
            embedding_dim=64,
        )
        network.train()
        optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=0.0)
        tokens = steps = 0
        start = time.perf_counter()
        for batch in datamodule.train_dataloader():
            loss = network.loss(network(batch["tokens"], batch["lengths"]), batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            tokens += int(batch["lengths"].sum())
            steps += 1
        return time.perf_counter() - start, tokens, steps

    epoch(sizes[0])  # warm-up: first calls of the kernels and the loader
    seconds: dict[int, list[float]] = {size: [] for size in sizes}
    counts = {}
    for repeat in range(args.repeats):
        for size in sizes if repeat % 2 == 0 else sizes[::-1]:
            wall, tokens, steps = epoch(size)
            seconds[size].append(wall)
            counts[size] = (tokens, steps)
            print(f"  corpus N={size} repeat {repeat}: {wall:.2f} s", file=sys.stderr, flush=True)
    return [
        {
            "rows": size,
            "epoch_s": statistics.median(seconds[size]),
            "setup_s": setups[size][1],
            "tokens": counts[size][0],
            "steps": counts[size][1],
            "vocab_size": setups[size][0].vocab_size,
        }
        for size in sizes
    ]


# ---- report --------------------------------------------------------------------------------------------
def _fmt_mem(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def axis_table(axis: str, rows: list[dict]) -> str:
    """One row per grid value; each cell is ``tokens/s · peak MiB`` of one variant."""
    values = sorted({row[axis] for row in rows})
    by_key = {(row[axis], row["cell"], row["path"]): row for row in rows}
    header = [AXIS_LABELS[axis]] + [v.label for v in VARIANTS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for value in values:
        cells = [str(value)]
        for v in VARIANTS:
            row = by_key.get((value, v.cell, v.path))
            if row is None:
                cells.append("not run")
                continue
            cells.append(f"{row['tokens_per_s']:,.0f} · {_fmt_mem(row['peak_rss_mib'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def corpus_table(rows: list[dict]) -> str:
    lines = [
        "| rows N | epoch s | s per 1k rows | tokens/s | steps | vocabulary | setup s (prepare + encode) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['rows']:,} | {row['epoch_s']:.2f} | {1000 * row['epoch_s'] / row['rows']:.3f} "
            f"| {row['tokens'] / row['epoch_s']:,.0f} | {row['steps']} | {row['vocab_size']:,} "
            f"| {row['setup_s']:.2f} |"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        grows, more = last["epoch_s"] / first["epoch_s"], last["rows"] / first["rows"]
        lines.append(
            f"\nEpoch time grows {grows:.2f}× for {more:.0f}× the rows "
            f"(time per row, last / first: {grows / more:.2f}; 1.00 is exactly linear)."
        )
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [axis for axis in AXES if results.get(axis)] + (["corpus"] if results.get("corpus") else [])
    fig, grid = plt.subplots(2, len(panels), figsize=(3.6 * len(panels), 6.2), squeeze=False)
    colours = {"RNNEncoder": "tab:blue", "GRUEncoder": "tab:green", "LSTMEncoder": "tab:red"}
    for column, axis in enumerate(panels):
        top, bottom = grid[0][column], grid[1][column]
        if axis == "corpus":
            rows = results["corpus"]
            n = [row["rows"] for row in rows]
            top.loglog(n, [row["epoch_s"] for row in rows], "o-", color="black", label="measured")
            top.loglog(n, [rows[0]["epoch_s"] * x / n[0] for x in n], ":", color="grey", label="linear")
            top.set(
                title="one epoch vs corpus size", xlabel="IMDB train rows N", ylabel="epoch wall time (s)"
            )
            top.legend(fontsize=7)
            bottom.semilogx(n, [1000 * row["epoch_s"] / row["rows"] for row in rows], "o-", color="black")
            bottom.set(xlabel="IMDB train rows N", ylabel="s per 1k rows")
            bottom.set_ylim(bottom=0)
            continue
        rows = results[axis]
        for variant in VARIANTS:
            points = sorted(
                (row[axis], row["tokens_per_s"], row["peak_rss_mib"])
                for row in rows
                if (row["cell"], row["path"]) == (variant.cell, variant.path)
            )
            style = dict(
                color=colours.get(variant.cell, "black"),
                linestyle={"pack": "--", "padded": "-", "loop": ":"}[variant.path],
                marker="o",
                markersize=3,
                label=variant.label,
            )
            xs = [p[0] for p in points]
            top.loglog(xs, [p[1] for p in points], **style)
            memory = [(x, p[2]) for x, p in zip(xs, points, strict=True) if p[2] is not None and p[2] > 0]
            if memory:
                bottom.loglog([m[0] for m in memory], [m[1] for m in memory], **style)
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
        top.set(title=f"train step vs {AXIS_LABELS[axis]}", ylabel="real tokens/s")
        bottom.set(xlabel=AXIS_LABELS[axis], ylabel="peak RSS growth per step (MiB)")
    grid[0][0].legend(fontsize=6, ncol=2)
    fig.suptitle(results.get("machine", ""), fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80)
    plt.close(fig)
    # A 256-colour palette keeps the line plot exact to the eye and the PNG small (matplotlib needs Pillow).
    from PIL import Image

    Image.open(buffer).convert("RGB").quantize(colors=256).save(path, optimize=True)


def report(results: dict) -> str:
    base = results["base"]
    parts = [
        f"Scaling — {results['machine']}",
        f"Encoders: bidirectional, 1 layer, train step = forward + backward of outputs.sum(); lengths in "
        f"[T/2, T]; base point batch {base['batch']}, T {base['time']}, hidden {base['hidden']}, input "
        f"{base['input_size']}; median of {results['repeats']} repeats × {results['steps']} steps; memory: "
        f"{results.get('memory_method', '—')}.",
    ]
    for axis in AXES:
        if results.get(axis):
            title = f"\n### Train step against {AXIS_LABELS[axis]} (real tokens/s · peak RSS growth MiB)\n"
            parts += [title, axis_table(axis, results[axis])]
    if results.get("corpus"):
        parts += [
            f"\n### One training epoch against corpus size (IMDB train, first N rows; BiLSTM H=64, E=64, "
            f"max_length {results['corpus_max_length']}, batch 64, AdamW)\n",
            corpus_table(results["corpus"]),
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: two points per axis, one repeat")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per variant (median reported)")
    parser.add_argument("--steps", type=int, default=1, help="timed train steps per measurement")
    parser.add_argument("--times", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--hiddens", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    parser.add_argument("--corpus-sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000])
    parser.add_argument("--corpus-max-length", type=int, default=64, help="tokens kept per review")
    parser.add_argument(
        "--pack-max-time", type=int, default=512, help="longest T timed on the pack path (its backward is T²)"
    )
    parser.add_argument("--no-corpus", action="store_true", help="skip the corpus axis (needs no data)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument(
        "--figure",
        help="where the PNG goes ('' for none; default docs/figures/scaling.png, --quick: a temp file)",
    )
    parser.add_argument(
        "--from-json", help="print tables and draw the figure from a --json file; no measuring"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be positive")

    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        base = Shape()
        grid = {"time": args.times, "batch": args.batches, "hidden": args.hiddens}
        sizes = args.corpus_sizes
        if args.quick:
            args.repeats = 1
            base = Shape(batch=8, time=32, hidden=32, input_size=32)
            grid = {"time": [16, 64], "batch": [1, 16], "hidden": [16, 64]}
            sizes = [200, 400]
        results = {
            "machine": machine_line(),
            "base": asdict(base),
            "repeats": args.repeats,
            "steps": args.steps,
            "corpus_max_length": args.corpus_max_length,
        }
        if not args.no_corpus:  # fail before the encoder axes, not minutes into the run
            from seqtasks.data.sources import DATA_DIR_ENV, resolve

            if resolve("stanfordnlp/imdb").kind != "local":
                parser.error(
                    f"the corpus axis reads reviews/imdb from {DATA_DIR_ENV}; set it or pass --no-corpus"
                )
        results.update(encoder_axes(args, grid, base))
        if not args.no_corpus:
            results["corpus"] = corpus_axis(args, sizes)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    print(report(results))
    if args.figure is None:
        quick_figure = os.path.join(tempfile.gettempdir(), "seqtasks-scaling-quick.png")
        args.figure = quick_figure if args.quick else "docs/figures/scaling.png"
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        plot(results, args.figure)
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
