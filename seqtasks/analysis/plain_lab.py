"""``seqtasks lab``: why not a plain network? Four measured reasons, on real CoNLL-2003, in one command.

    seqtasks lab all --out runs/plain-lab            # the README's run (real data, minutes on 2 CPU cores)
    seqtasks lab all --quick --out runs/plain-quick  # smaller settings, about a minute
    seqtasks lab length | cost | sharing | depth     # one part

* ``length`` (variable length): a plain network over a fixed padded width, a window network and the
  BiLSTM tagger trained on the training sentences of at most ``--width`` tokens; test entity F1 by
  sentence length, including the sentences longer than any training input (the plain network truncates
  them: tags beyond the width are ``O``, counted). → ``length.csv``, ``length.png``.
* ``cost`` (computation): one-hot input layer vs embedding lookup, forward + backward time, memory
  allocated and FLOPs for ``--vocabs``. → ``cost.csv``, ``cost.png``.
* ``sharing`` (parameter sharing): parameters vs maximum sentence length in closed form (checked against
  the built models), and a position-transfer test: train on sentences whose entities all lie in the first
  ``--transfer-k`` positions, test on sentences whose entities all lie later. → ``parameters.csv``,
  ``transfer.csv``, ``sharing.png``.
* ``depth``: 1–4 stacked layers of tanh RNN, GRU and LSTM on NER: F1, time, gradient reaching the first
  layer. → ``depth.csv``, ``depth.png``.

Every run also writes ``summary.md`` and ``summary.json`` (settings, results, wall time) in ``--out``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqtasks.analysis import costs, depth
from seqtasks.analysis.plain import (
    PaddedWidthTagger,
    TrainSettings,
    WindowTagger,
    build_codec,
    conll_dir,
    encode,
    entity_f1,
    padded_width_parameters,
    predict,
    read_split,
    recurrent_parameters,
    recurrent_tagger,
    score_by_length,
    split_by_position,
    tag_set,
    train_tagger,
    trainable,
    window_parameters,
)
from seqtasks.analysis.report import write_csv

PARTS = ("length", "cost", "sharing", "depth")


@dataclass
class PlainLabSettings:
    """The ``seqtasks lab`` flags; stored in ``summary.json``."""

    parts: list[str] = field(default_factory=lambda: list(PARTS))
    width: int = 30
    window: int = 2
    word_dim: int = 50
    casing_dim: int = 8
    ff_hidden: int = 256
    rnn_hidden: int = 64
    epochs: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    train_rows: int | None = None
    test_rows: int | None = None
    vocabs: list[int] = field(default_factory=lambda: [1000, 2000, 5000, 10000, 25000])
    cost_length: int = 30
    transfer_k: int = 5
    depth_cells: list[str] = field(default_factory=lambda: ["rnn", "gru", "lstm"])
    depths: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    depth_hidden: int = 64
    depth_epochs: int = 2
    depth_train_rows: int | None = 6000
    seed: int = 0
    out: str = "runs/plain-lab"

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts must be among {list(PARTS)}, got {self.parts}")
        if self.width < 3 or self.window < 0 or self.transfer_k < 1:
            raise ValueError("--width must be >= 3, --window >= 0 and --transfer-k >= 1")
        if self.transfer_k >= self.width:
            raise ValueError(f"--transfer-k ({self.transfer_k}) must be below --width ({self.width})")
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"--depths must be positive, got {self.depths}")
        if any(c not in ("rnn", "gru", "lstm") for c in self.depth_cells):
            raise ValueError(f"--depth-cells must be among rnn, gru, lstm, got {self.depth_cells}")

    @classmethod
    def quick(cls, **overrides: Any) -> PlainLabSettings:
        """A minute-scale run: fewer rows, one epoch, small vocabularies, two depths."""
        values: dict[str, Any] = {
            "epochs": 1,
            "train_rows": 3000,
            "test_rows": 1000,
            "vocabs": [1000, 5000, 25000],
            "depths": [1, 2],
            "depth_train_rows": 1500,
        }
        values.update(overrides)
        return cls(**values)

    def train_settings(self, epochs: int | None = None, rows: int | None = None) -> TrainSettings:
        return TrainSettings(
            epochs=epochs or self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            max_rows=rows,
        )


class Context:
    """The CoNLL-2003 splits, vocabulary and tags, read once."""

    def __init__(self, settings: PlainLabSettings) -> None:
        folder = conll_dir()
        self.train_all = read_split(folder, "train")
        self.test_all = read_split(folder, "test")[: settings.test_rows]
        self.codec = build_codec(self.train_all)
        self.labels = tag_set(self.train_all)
        fits = [s for s in self.train_all if len(s[0]) <= settings.width]
        self.train_fit = fits[: settings.train_rows]
        self.vocab_size = len(self.codec.words)
        self.trained_all: dict[str, torch.nn.Module] | None = None  # the length part's models

    def encode(self, sentences):
        return encode(sentences, self.codec, self.labels)


def build_models(
    settings: PlainLabSettings, vocab_size: int, labels: list[str]
) -> dict[str, torch.nn.Module]:
    torch.manual_seed(settings.seed)
    common = {"word_dim": settings.word_dim, "casing_dim": settings.casing_dim}
    return {
        "plain": PaddedWidthTagger(
            vocab_size, len(labels), settings.width, hidden=settings.ff_hidden, **common
        ),
        "window": WindowTagger(vocab_size, len(labels), settings.window, hidden=settings.ff_hidden, **common),
        "rnn": recurrent_tagger(vocab_size, labels, "lstm", settings.rnn_hidden, **common),
    }


def _fit(name: str, model, data, settings: PlainLabSettings, log) -> dict[str, float]:
    width = settings.width if name == "plain" else None
    timing = train_tagger(model, data, settings.train_settings(), width=width)
    log(f"  trained {name} on {len(data)} sentences in {timing['seconds']:.0f} s")
    return timing


def run_length(context: Context, settings: PlainLabSettings, log=print) -> list[dict[str, Any]]:
    train = context.encode(context.train_fit)
    test = context.encode(context.test_all)
    rows = []
    context.trained_all = build_models(settings, context.vocab_size, context.labels)
    for name, model in context.trained_all.items():
        timing = _fit(name, model, train, settings, log)
        predicted = predict(model, test, width=settings.width if name == "plain" else None)
        for row in score_by_length(predicted, test, context.labels, settings.width):
            if name != "plain":
                row["tokens_beyond_width"] = row["entities_beyond_width"] = 0  # nothing is cut
                row["longer_than_width"] = 0
            rows.append(
                {
                    "model": name,
                    "train_sentences": len(train),
                    "widest_training_input": max(len(w) for w in train.words),
                    "train_seconds": round(timing["seconds"], 1),
                    **row,
                }
            )
        log(f"  {name}: test F1 {rows[-1]['f1']:.1f}")
    return rows


def run_cost(settings: PlainLabSettings, log=print) -> list[dict[str, Any]]:
    torch.manual_seed(settings.seed)
    rows = []
    for vocab in settings.vocabs:
        measured = costs.measure(vocab, settings.batch_size, settings.cost_length, dim=100)
        for row in measured:
            log(
                f"  V={vocab} {row['layer']}: {row['forward_ms'] + row['backward_ms']:.2f} ms, "
                f"{row['allocated_mb']:.1f} MB allocated"
            )
        rows.extend(measured)
    return rows


def parameter_rows(settings: PlainLabSettings, vocab_size: int, labels: list[str]) -> list[dict[str, Any]]:
    """Parameters (embeddings excluded: every model has the same ones) vs maximum sentence length."""
    inputs, tags = settings.word_dim + settings.casing_dim, len(labels)
    rows = []
    for length in sorted({5, 10, 20, 30, 40, 60, 80, 100, 125, settings.width}):
        rows.append(
            {
                "max_length": length,
                "plain": padded_width_parameters(length, inputs, settings.ff_hidden, tags),
                "plain_one_hot_inputs": padded_width_parameters(length, vocab_size, settings.ff_hidden, tags),
                "window": window_parameters(settings.window, inputs, settings.ff_hidden, tags),
                "tanh_rnn": recurrent_parameters("rnn", inputs, settings.rnn_hidden, tags),
                "bilstm": recurrent_parameters("lstm", inputs, settings.rnn_hidden, tags, bidirectional=True),
            }
        )
    return rows


def check_parameter_counts(settings: PlainLabSettings, vocab_size: int, labels: list[str]) -> dict[str, int]:
    """The built models' counts (embeddings excluded), asserted equal to the closed forms."""
    models = build_models(settings, vocab_size, labels)
    skip = ("features", "embedding", "casing")
    counted = {name: trainable(model, skip) for name, model in models.items()}
    inputs, tags = settings.word_dim + settings.casing_dim, len(labels)
    closed = {
        "plain": padded_width_parameters(settings.width, inputs, settings.ff_hidden, tags),
        "window": window_parameters(settings.window, inputs, settings.ff_hidden, tags),
        "rnn": recurrent_parameters("lstm", inputs, settings.rnn_hidden, tags, bidirectional=True),
    }
    if counted != closed:
        raise AssertionError(f"parameter counts {counted} differ from their closed forms {closed}")
    return counted


def run_transfer(context: Context, settings: PlainLabSettings, log=print) -> list[dict[str, Any]]:
    k = settings.transfer_k
    early_train, _ = split_by_position(context.train_fit, k)
    early_test, late_test = split_by_position([s for s in context.test_all if len(s[0]) <= settings.width], k)
    early_test = [s for s in early_test if any(t != "O" for t in s[1])]
    train = context.encode(early_train)
    late = "entities at k or later (unseen)"
    sets = {"entities before k (seen positions)": early_test, late: late_test}
    reference = context.trained_all
    if reference is None:  # the length part did not run: train the reference models here
        reference = build_models(settings, context.vocab_size, context.labels)
        for name, model in reference.items():
            _fit(name, model, context.encode(context.train_fit), settings, log)
    rows = []
    for name, model in build_models(settings, context.vocab_size, context.labels).items():
        timing = _fit(name, model, train, settings, log)
        runs = [
            (model, f"entities only before k={k}", test_name, sentences)
            for test_name, sentences in sets.items()
        ]
        runs.append((reference[name], "entities anywhere (reference)", late, late_test))
        for trained_model, trained_on, test_name, sentences in runs:
            test = context.encode(sentences)
            predicted = predict(trained_model, test, width=settings.width if name == "plain" else None)
            gold = [[context.labels[t] for t in tags] for tags in test.tags]
            pred = [[context.labels[t] for t in p] for p in predicted]
            f1 = entity_f1(pred, gold, context.labels)
            rows.append(
                {
                    "model": name,
                    "k": k,
                    "trained_on": trained_on,
                    "train_sentences": len(train) if trained_model is model else len(context.train_fit),
                    "test_set": test_name,
                    "test_sentences": len(test),
                    "test_f1": round(f1, 2),
                    "train_seconds": round(timing["seconds"], 1) if trained_model is model else "",
                }
            )
            log(f"  transfer {name}, trained on {trained_on}, tested on {test_name}: F1 {f1:.1f}")
    return rows


def run_plain_lab(settings: PlainLabSettings, log=print) -> dict[str, Any]:
    """Run the chosen parts; write their CSVs and figures, ``summary.md`` and ``summary.json``."""
    from seqtasks.analysis import plain_report

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    context = Context(settings) if set(settings.parts) - {"cost"} else None
    for part in settings.parts:
        log(f"== {part}")
        begun = time.perf_counter()
        if part == "length":
            results["length"] = run_length(context, settings, log)
            write_csv(out / "length.csv", results["length"])
        elif part == "cost":
            results["cost"] = run_cost(settings, log)
            write_csv(out / "cost.csv", results["cost"])
        elif part == "sharing":
            results["parameter_check"] = check_parameter_counts(settings, context.vocab_size, context.labels)
            results["parameters"] = parameter_rows(settings, context.vocab_size, context.labels)
            results["transfer"] = run_transfer(context, settings, log)
            write_csv(out / "parameters.csv", results["parameters"])
            write_csv(out / "transfer.csv", results["transfer"])
        elif part == "depth":
            results["depth"] = depth.run_depth(
                context.encode(context.train_fit),
                context.encode(context.test_all),
                context.labels,
                context.vocab_size,
                settings.depth_cells,
                settings.depths,
                settings.depth_hidden,
                settings.train_settings(settings.depth_epochs, settings.depth_train_rows),
                log,
            )
            write_csv(out / "depth.csv", results["depth"])
        seconds[part] = round(time.perf_counter() - begun, 1)
    figures = plain_report.write_figures(results, settings, out)
    wall = time.perf_counter() - started
    summary = {
        "settings": asdict(settings),
        "data": None
        if context is None
        else {
            "train_sentences": len(context.train_all),
            "train_sentences_fitting_width": len(context.train_fit),
            "test_sentences": len(context.test_all),
            "vocabulary": context.vocab_size,
            "tags": context.labels,
        },
        "results": results,
        "part_seconds": seconds,
        "figures": [str(p) for p in figures],
        "wall_seconds": round(wall, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    text = plain_report.summary_markdown(summary)
    (out / "summary.md").write_text(text)
    log(text)
    log(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir() if p.is_file())))
    log(f"wall time {wall:.0f} s")
    return summary
