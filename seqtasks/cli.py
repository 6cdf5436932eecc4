"""The ``seqtasks`` command: LightningCLI over YAML recipes, plus one inference command per task.

seqtasks fit --config recipes/sentiment-imdb.yaml        # train (then test the best checkpoint)
seqtasks test --config recipes/sentiment-imdb.yaml --ckpt_path runs/.../best.ckpt
seqtasks prepare --config recipes/sentiment-imdb.yaml    # build the vocabulary file only
seqtasks classify --ckpt best.ckpt "a wonderful film" "dull"
seqtasks generate --ckpt best.ckpt --out piece.mid --seed 1   # music: a MIDI file and its piano-roll PNG
seqtasks gradients --encoders rnn,gru,lstm --distances 5,10,20,50,100   # the vanishing-gradient lab
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

# Sizes only the data knows, linked from the datamodule into the model at instantiation.
DATA_LINKS = ("vocab_size", "labels", "pad_index")


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Write the resolved config.yaml to the run directory and send it to the loggers (W&B's config)."""

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        for logger in trainer.loggers:
            config = self.parser.dump(self.config, skip_none=False, format="yaml")
            import yaml

            logger.log_hyperparams({"config": yaml.safe_load(config)})


class SeqtasksCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        for name in DATA_LINKS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="After fit, test the best checkpoint."
        )

    def after_fit(self) -> None:
        test_after = self.config.get(self.subcommand, {}).get("test_after_fit", True)
        datamodule = self.datamodule
        if test_after and datamodule is not None and getattr(datamodule, "test_split", None):
            if self.trainer.interrupted:
                return
            has_best = self.trainer.checkpoint_callback is not None and getattr(
                self.trainer.checkpoint_callback, "best_model_path", ""
            )
            self.trainer.test(self.model, datamodule=datamodule, ckpt_path="best" if has_best else None)


def _default_wandb_mode() -> None:
    """Log offline when there are no W&B credentials (sync later with ``wandb sync``)."""
    if "WANDB_MODE" in os.environ or os.environ.get("WANDB_API_KEY"):
        return
    netrc = os.path.join(os.path.expanduser("~"), ".netrc")
    if os.path.exists(netrc):
        with open(netrc) as handle:
            if "api.wandb.ai" in handle.read():
                return
    os.environ["WANDB_MODE"] = "offline"


def run_lightning(args: list[str] | None = None, run: bool = True) -> SeqtasksCLI:
    return SeqtasksCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def classify_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="seqtasks classify", description="Classify texts with a checkpoint."
    )
    parser.add_argument("--ckpt", required=True, help="a SequenceClassifier checkpoint")
    parser.add_argument("texts", nargs="+", help="texts to classify")
    options = parser.parse_args(argv)
    from seqtasks.tasks.base import load_task

    model = load_task(options.ckpt)
    if not hasattr(model, "classify"):
        raise SystemExit(f"{options.ckpt} holds a {type(model).__name__}, which does not classify")
    for text, (label, prob, _) in zip(options.texts, model.classify(options.texts), strict=True):
        print(f"{label}\t{prob:.4f}\t{text}")


def prepare_command(argv: list[str]) -> None:
    cli = run_lightning(argv, run=False)
    datamodule = cli.datamodule
    print(f"prepared: {datamodule.prepared_path()}")
    for key, value in datamodule.prepared.items():
        size = f"{len(value)} entries" if isinstance(value, list | dict) else value
        print(f"  {key}: {size}")


def generate_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="seqtasks generate",
        description="Sample a piece from a music checkpoint: a MIDI file, and its piano-roll PNG beside it.",
    )
    parser.add_argument("--ckpt", required=True, help="a PianoRollModel or EventLanguageModel checkpoint")
    parser.add_argument("--out", required=True, help="the MIDI file to write (the PNG gets the same name)")
    parser.add_argument("--primer", help="a MIDI file to continue")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0: greedy)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens/keys")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling (event models)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same file")
    parser.add_argument("--steps", type=int, default=None, help="new tokens (event model) or frames at most")
    parser.add_argument("--tempo", type=float, default=90.0, help="tempo of the MIDI file, quarter notes/min")
    options = parser.parse_args(argv)
    from seqtasks.music.midi import midi_to_notes, save_piece
    from seqtasks.tasks.base import load_task

    model = load_task(options.ckpt)
    if not hasattr(model, "generate"):
        raise SystemExit(f"{options.ckpt} holds a {type(model).__name__}, which does not generate music")
    primer = None
    if options.primer:
        primer, warnings = midi_to_notes(options.primer, model.steps_per_quarter)
        for warning in warnings:
            print(f"primer {options.primer}: {warning}", file=sys.stderr)
    try:
        notes = model.generate(
            options.steps, options.temperature, options.top_k, options.top_p, options.seed, primer
        )
    except ValueError as error:
        raise SystemExit(f"seqtasks generate: {error}") from error
    primer_steps = max((end for _, _, end in primer), default=0) if primer else 0
    title = f"seqtasks sample (seed {options.seed}, temperature {options.temperature})"  # no path: same bytes
    midi, png = save_piece(
        options.out, notes, model.steps_per_quarter, options.tempo, title=title, primer_steps=primer_steps
    )
    print(f"{midi}\t{len(notes)} notes\n{png}")


def gradients_command(argv: list[str]) -> None:
    """The vanishing-gradient lab (``seqtasks gradients --help``); see seqtasks/analysis/lab.py."""
    from seqtasks.analysis.lab import main as lab_main

    lab_main(argv)


COMMANDS = {
    "classify": classify_command,
    "prepare": prepare_command,
    "generate": generate_command,
    "gradients": gradients_command,
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    _default_wandb_mode()
    if argv and argv[0] in COMMANDS:
        COMMANDS[argv[0]](argv[1:])
        return
    run_lightning(argv)


if __name__ == "__main__":
    main()
