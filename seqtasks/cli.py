"""The ``seqtasks`` command: LightningCLI over YAML recipes, plus one inference command per task.

seqtasks fit --config recipes/sentiment-imdb.yaml        # train (then test the best checkpoint)
seqtasks test --config recipes/sentiment-imdb.yaml --ckpt_path runs/.../best.ckpt
seqtasks prepare --config recipes/sentiment-imdb.yaml    # build the vocabulary file only
seqtasks classify --ckpt best.ckpt "a wonderful film" "dull"
seqtasks generate --ckpt best.ckpt --out piece.mid --seed 1   # music: a MIDI file and its piano-roll PNG
seqtasks tag --ckpt best.ckpt "Dhaval loves baby yoda"        # NER: token/tag lines and entity spans
seqtasks predict-conll --ckpt best.ckpt --input eng.testb --output pred.txt   # token gold pred, for conlleval
seqtasks translate --ckpt best.ckpt --beam 5 "how are you?"   # or --input FILE --output FILE
seqtasks gradients --encoders rnn,gru,lstm --distances 5,10,20,50,100   # the vanishing-gradient lab
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

# Sizes only the data knows, linked from the datamodule into the model at instantiation.
DATA_LINKS = (
    "vocab_size",
    "labels",
    "pad_index",
    "char_vocab_size",
    "source_vocab_size",
    "target_vocab_size",
)


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Write the resolved config.yaml to the run directory and send it to the loggers (W&B's config).

    With W&B, a copy also goes into the run's own files folder, so each run keeps the config it ran with.
    """

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        import yaml

        dumped = self.parser.dump(self.config, skip_none=False, format="yaml")
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": yaml.safe_load(dumped)})
            if type(logger).__name__ == "WandbLogger":
                run_dir = getattr(logger.experiment, "dir", None)
                if run_dir and os.path.isdir(run_dir):
                    with open(os.path.join(run_dir, "config.yaml"), "w") as handle:
                        handle.write(dumped)


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
    for entry in datamodule.prepared.get("skipped", []):  # pieces a converter could not use, with why
        print(f"  skipped {entry['piece']}: {entry['reason']}")


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
    parser.add_argument("--min-steps", type=int, default=0, help="event models: no end before N new tokens")
    parser.add_argument("--tempo", type=float, default=90.0, help="tempo of the MIDI file, quarter notes/min")
    options = parser.parse_args(argv)
    from seqtasks.music.midi import midi_to_notes, save_piece
    from seqtasks.tasks.base import load_task
    from seqtasks.tasks.music import sample_title

    model = load_task(options.ckpt)
    if not hasattr(model, "generate"):
        raise SystemExit(f"{options.ckpt} holds a {type(model).__name__}, which does not generate music")
    primer = None
    if options.primer:
        primer, warnings = midi_to_notes(options.primer, model.steps_per_quarter)
        for warning in warnings:
            print(f"primer {options.primer}: {warning}", file=sys.stderr)
    try:
        sampling = {"temperature": options.temperature, "top_k": options.top_k, "top_p": options.top_p}
        notes = model.generate(
            options.steps, **sampling, seed=options.seed, primer=primer, min_steps=options.min_steps
        )
    except ValueError as error:
        raise SystemExit(f"seqtasks generate: {error}") from error
    primer_steps = max((end for _, _, end in primer), default=0) if primer else 0
    title = sample_title(options.seed, options.temperature)
    midi, png = save_piece(
        options.out, notes, model.steps_per_quarter, options.tempo, title=title, primer_steps=primer_steps
    )
    print(f"{midi}\t{len(notes)} notes\n{png}")


def gradients_command(argv: list[str]) -> None:
    """The vanishing-gradient lab (``seqtasks gradients --help``); see seqtasks/analysis/lab.py."""
    from seqtasks.analysis.lab import main as lab_main

    lab_main(argv)


def tag_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="seqtasks tag", description="Tag the tokens of texts (NER).")
    parser.add_argument("--ckpt", required=True, help="a TokenTagger checkpoint")
    parser.add_argument("texts", nargs="+", help="texts to tag (tokenised like CoNLL: words, punctuation)")
    options = parser.parse_args(argv)
    from seqtasks.tasks.base import load_task

    model = load_task(options.ckpt)
    if not hasattr(model, "tag"):
        raise SystemExit(f"{options.ckpt} holds a {type(model).__name__}, which does not tag tokens")
    for number, result in enumerate(model.tag(options.texts)):
        if number:
            print()
        for token, tag in zip(result["tokens"], result["tags"], strict=True):
            print(f"{token}\t{tag}")
        spans = "; ".join(f"{kind}: {text} [{a}-{b}]" for kind, a, b, text in result["entities"])
        print(f"# entities: {spans or '(none)'}")


def predict_conll_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="seqtasks predict-conll",
        description="Tag a CoNLL column file; write 'token gold predicted' lines that conlleval reads.",
    )
    parser.add_argument("--ckpt", required=True, help="a TokenTagger checkpoint")
    parser.add_argument("--input", required=True, help="a CoNLL column file (token first)")
    parser.add_argument("--output", required=True, help="the file to write")
    parser.add_argument("--label-column", type=int, default=-1, help="the gold label column (default: last)")
    parser.add_argument("--scheme", default="iob1", choices=["iob1", "iob2", "bioes"], help="its tag scheme")
    options = parser.parse_args(argv)
    from seqtasks.data.conll import read_conll, write_conll
    from seqtasks.metrics import SpanF1
    from seqtasks.tasks.base import load_task

    model = load_task(options.ckpt)
    if not hasattr(model, "tag_tokens"):
        raise SystemExit(f"{options.ckpt} holds a {type(model).__name__}, which does not tag tokens")
    sentences = list(read_conll(options.input, options.label_column, options.scheme))
    predicted = model.tag_tokens([s.tokens for s in sentences])
    rows = [list(zip(s.tokens, s.tags, p, strict=True)) for s, p in zip(sentences, predicted, strict=True)]
    write_conll(options.output, rows)
    types = sorted(
        {t[2:] for s in sentences for t in s.tags if t != "O"} | {t[2:] for t in model.labels if t != "O"}
    )
    metric = SpanF1(["O"] + [f"B-{t}" for t in types])
    metric.update(predicted, [s.tags for s in sentences])
    values = metric.compute()
    print(
        f"{options.output}: {len(sentences)} sentences; entity precision {float(values['precision']):.2f} "
        f"recall {float(values['recall']):.2f} F1 {float(values['f1']):.2f}"
    )


def translate_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="seqtasks translate", description="Translate texts, or a file line by line, with a checkpoint."
    )
    parser.add_argument("--ckpt", required=True, help="a Seq2SeqTranslator checkpoint")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument("--max-length", type=int, default=None, help="at most this many subwords out")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="beam score / length ** this")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences decoded together")
    parser.add_argument("--input", help="a text file, one sentence per line")
    parser.add_argument("--output", help="where to write one translation per line (default: stdout)")
    parser.add_argument("--reference", help="reference translations, one per line: print sacreBLEU/chrF")
    parser.add_argument("texts", nargs="*", help="texts to translate")
    options = parser.parse_args(argv)
    if bool(options.input) == bool(options.texts):
        parser.error("give either texts or --input FILE")
    from seqtasks.tasks.base import load_task

    model = load_task(options.ckpt)
    if not hasattr(model, "translate"):
        raise SystemExit(f"{options.ckpt} holds a {type(model).__name__}, which does not translate")
    if options.input:
        with open(options.input, encoding="utf-8") as handle:
            texts = [line.rstrip("\n") for line in handle]
    else:
        texts = list(options.texts)
    outputs = model.translate(
        texts, options.beam, options.max_length, options.batch_size, options.length_penalty
    )
    if options.output:
        with open(options.output, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in outputs)
    else:
        for line in outputs:
            print(line)
    if options.reference:
        from seqtasks.tasks.translation import corpus_scores

        with open(options.reference, encoding="utf-8") as handle:
            references = [line.rstrip("\n") for line in handle]
        print(corpus_scores(outputs, references)["line"], file=sys.stderr)


def word_vectors_command(argv: list[str]) -> None:
    from seqtasks.wordvectors import main as word_vectors_main

    word_vectors_main(argv)


COMMANDS = {
    "classify": classify_command,
    "prepare": prepare_command,
    "generate": generate_command,
    "gradients": gradients_command,
    "tag": tag_command,
    "predict-conll": predict_conll_command,
    "translate": translate_command,
    "word-vectors": word_vectors_command,
}


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    _default_wandb_mode()
    if argv and argv[0] in COMMANDS:
        COMMANDS[argv[0]](argv[1:])
        return
    run_lightning(None if from_command_line else argv)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    main()
