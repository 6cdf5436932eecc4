"""The vanishing-gradient lab: train tanh RNN, GRU and LSTM on a long-range task at several distances;
measure and draw accuracy and gradient decay.

seqtasks gradients --encoders rnn,gru,lstm --distances 5,10,20,50,100 --gate-bias torch,3 --out runs/gradients
What it trains and writes: seqtasks/analysis/lab.py.
"""

from __future__ import annotations

import argparse

# The defaults of seqtasks.analysis.settings.LabSettings (a test keeps them equal); written out here so
# that --help imports nothing heavy.
DEFAULTS = {
    "encoders": "rnn,gru,lstm",
    "distances": "5,10,20,50,100",
    "task": "tense",
    "hidden": 32,
    "embedding_dim": 32,
    "epochs": 1,
    "patience": 4,
    "train_size": 20000,
    "validation_size": 500,
    "test_size": 1000,
    "batch_size": 32,
    "validate_every": 5000,
    "lr": 3e-3,
    "optimizer": "adamw",
    "levels": 5,
    "probe_rows": 128,
    "gate_bias": "torch",
    "seed": 0,
    "out": "runs/gradients",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--encoders", default=DEFAULTS["encoders"], help="cells, comma-separated: rnn,gru,lstm")
    add("--distances", default=DEFAULTS["distances"], help="task distances, comma-separated")
    add("--task", default=DEFAULTS["task"], choices=["tense", "adding"], help="the long-range task")
    add("--hidden", type=int, default=DEFAULTS["hidden"], help="hidden size of every cell")
    add("--embedding-dim", type=int, default=DEFAULTS["embedding_dim"], help="token embedding width")
    add(
        "--epochs",
        type=int,
        default=DEFAULTS["epochs"],
        help="passes over the training rows (1: each row is fresh)",
    )
    add(
        "--patience",
        type=int,
        default=DEFAULTS["patience"],
        help="early stopping: validations without a better val/acc",
    )
    add("--train-size", type=int, default=DEFAULTS["train_size"], help="training rows per distance")
    add("--validation-size", type=int, default=DEFAULTS["validation_size"], help="validation rows")
    add("--test-size", type=int, default=DEFAULTS["test_size"], help="test rows (and chance band)")
    add(
        "--validate-every",
        type=int,
        default=DEFAULTS["validate_every"],
        help="validate (and early-stop) after this many training rows, or once per epoch if fewer",
    )
    add("--batch-size", type=int, default=DEFAULTS["batch_size"], help="batch size")
    add(
        "--optimizer",
        default=DEFAULTS["optimizer"],
        choices=["adamw", "sgd"],
        help="sgd shows what exploding gradients and clipping do; adamw rescales steps by itself",
    )
    add("--lr", type=float, default=DEFAULTS["lr"], help="learning rate of the optimizer")
    add("--levels", type=int, default=DEFAULTS["levels"], help="adding problem: value levels")
    add("--probe-rows", type=int, default=DEFAULTS["probe_rows"], help="test rows the probe averages")
    add(
        "--gate-bias",
        default=DEFAULTS["gate_bias"],
        help="initial bias of the LSTM forget gate and GRU update gate; comma-separated values train one "
        "model per value, 'torch' keeps torch's initialisation (about 0): e.g. torch,3",
    )
    add(
        "--explode-scale",
        type=float,
        default=None,
        help="multiply recurrent weights by this at init and train every run without and with clipping",
    )
    add("--clip", type=float, default=None, help="gradient clipping norm (1.0 with --explode-scale)")
    add("--seed", type=int, default=DEFAULTS["seed"], help="seed of data and initialisation")
    add("--out", default=DEFAULTS["out"], help="output directory")
    add("--wandb", action="store_true", help="log runs and the summary to W&B (offline without credentials)")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from seqtasks.analysis.settings import LabSettings

    try:
        settings = LabSettings(
            encoders=[c.strip() for c in options.encoders.split(",") if c.strip()],
            distances=_ints(options.distances),
            task=options.task,
            hidden=options.hidden,
            embedding_dim=options.embedding_dim,
            epochs=options.epochs,
            patience=options.patience,
            train_size=options.train_size,
            validation_size=options.validation_size,
            test_size=options.test_size,
            batch_size=options.batch_size,
            validate_every=options.validate_every,
            lr=options.lr,
            optimizer=options.optimizer,
            levels=options.levels,
            probe_rows=options.probe_rows,
            gate_biases=[None if b.strip() == "torch" else float(b) for b in options.gate_bias.split(",")],
            explode_scale=options.explode_scale,
            clip=options.clip,
            seed=options.seed,
            out=options.out,
            wandb=options.wandb,
        )
    except ValueError as error:
        parser.error(str(error))
    from seqtasks.analysis.lab import quiet_logs, run_lab

    quiet_logs()
    run_lab(settings)
