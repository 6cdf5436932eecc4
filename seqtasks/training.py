"""LightningCLI for seqtasks recipes: data sizes linked into the model, base recipes, configs kept with runs.

A recipe may build on another one: a top-level ``base: other.yaml`` (relative to the recipe) loads that
file first, and the recipe then says only what differs (lists such as ``trainer.callbacks+:`` append).

``fit --ckpt_path CKPT`` continues the run the checkpoint came from: the logger gets the run id stored in it
(``seqtasks.callbacks.RunIdentity``), so the W&B run, the run directory and ModelCheckpoint's best stay.
"""

from __future__ import annotations

import os
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

DATA_LINKS = (
    "vocab_size",
    "labels",
    "pad_index",
    "char_vocab_size",
    "source_vocab_size",
    "target_vocab_size",
    "word_vectors",
)
"""Sizes and files only the data knows: a datamodule attribute of that name, when the model's constructor
takes an argument of that name, is linked into it at instantiation (never written in a recipe)."""


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Write the resolved config.yaml to the run directory and send it to the loggers (W&B's config).

    With W&B, a copy also goes into the run's own files folder, so each run keeps the config it ran with.
    """

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":  # validate/test/predict of a run's checkpoint must not overwrite its config
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
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
        parser.add_argument(
            "--base", type=str | None, default=None, help="The recipe this one builds on (loaded first)."
        )
        parser.add_argument(
            "--distributed_timeout",
            type=float | None,
            default=None,
            help="Seconds a process waits in a collective (all-reduce, barrier) for the others before it "
            "stops with an error: a rank that died or hangs stops the run instead of blocking it forever. "
            "Applies to the ddp strategies (None: Lightning's default, 30 minutes).",
        )
        parser.add_argument(
            "--predictions",
            type=str | None,
            default=None,
            help="predict: where the task's prediction writer writes (a file; a folder for music).",
        )

    def before_instantiate_classes(self) -> None:
        if self.subcommand == "fit":
            resume_run(self.config.fit)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        """The trainer; its checkpoints are written atomically unless the recipe names a ``CheckpointIO``."""
        from lightning.fabric.plugins import CheckpointIO

        from seqtasks.callbacks import AtomicCheckpointIO

        plugins = config.get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        timeout = self.config.get(self.subcommand, self.config).get("distributed_timeout")
        if timeout is not None:
            config["strategy"] = with_timeout(config.get("strategy", "auto"), timeout)
        return super()._instantiate_trainer(config, callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except Exception as error:
            if self.trainer.world_size > 1 and is_collective_failure(error):
                raise DistributedRunError(self._failure_message(error)) from error
            raise

    def _failure_message(self, error: BaseException) -> str:
        last = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or ""
        resume = f"resume with `--ckpt_path {last}`" if last else "no last.ckpt was written to resume from"
        where = f"process {self.trainer.global_rank} of {self.trainer.world_size}"
        return (
            f"{where}: a collective operation failed, so another process of this run died, hung or was "
            f"killed (out of memory, a node lost). The run stops; {resume}. "
            f"The error: {type(error).__name__}: {str(error).strip()[:400]}"
        )

    def before_predict(self) -> None:
        path = self.config.get("predict", {}).get("predictions")
        if not path:
            raise SystemExit(
                "seqtasks predict: give --predictions PATH, where the predictions are written "
                "(a file; a folder for music)"
            )
        self.trainer.callbacks.append(self.model.prediction_writer(path))

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


class DistributedRunError(RuntimeError):
    """A collective of a multi-process run failed or timed out: another process is gone or stuck."""


def is_collective_failure(error: BaseException) -> bool:
    """Whether ``error`` is a failed or timed-out collective (gloo/NCCL: a peer closed, died or hung)."""
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error).lower()
    markers = ("gloo", "nccl", "connection closed by peer", "connection reset", "timed out", "broken pipe")
    return isinstance(error, RuntimeError) and any(marker in text for marker in markers)


def with_timeout(strategy: Any, seconds: float) -> Any:
    """``strategy`` (a ``ddp*`` name or a ``DDPStrategy``) whose collectives give up after ``seconds``."""
    from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

    if seconds <= 0:
        raise ValueError(f"distributed_timeout must be a positive number of seconds, not {seconds}")
    timeout = timedelta(seconds=seconds)
    if isinstance(strategy, str) and strategy in StrategyRegistry:
        entry = StrategyRegistry[strategy]
        if issubclass(entry["strategy"], DDPStrategy):  # "ddp", "ddp_spawn", "ddp_find_unused_...", ...
            return entry["strategy"](**{**entry["init_params"], "timeout": timeout})
    if isinstance(strategy, DDPStrategy):
        strategy._timeout = timeout  # a recipe's own DDPStrategy: the setting wins over its timeout
    return strategy  # one process (auto, a single device): there is no collective to time out


def resume_run(config: Any) -> None:
    """Before ``fit --ckpt_path CKPT`` builds its logger: give it the run id ``CKPT`` was written under.

    A logger that names its own id/version keeps it; a checkpoint without ``RunIdentity``'s record, or
    written under another logger class, changes nothing.
    """
    from seqtasks.callbacks import RUN_KEY

    path = config.get("ckpt_path")
    if not path or path in ("last", "best", "hpc", "registry") or not os.path.isfile(path):
        return
    import torch

    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(RUN_KEY)
    except (OSError, RuntimeError, pickle.UnpicklingError):
        return  # not this function's to report: Lightning's restore names the unreadable checkpoint
    logger = config.get("trainer", {}).get("logger")
    if not record or logger is None or isinstance(logger, bool):
        return
    first = logger[0] if isinstance(logger, list) else logger
    class_path = str(first.get("class_path") or "")
    if class_path.rsplit(".", 1)[-1] != record["logger"].rsplit(".", 1)[-1]:  # a re-export names it too
        return
    init_args = first.get("init_args")
    if init_args is None:
        return
    if class_path.endswith("WandbLogger"):
        if not (init_args.get("id") or init_args.get("version")):
            init_args["id"] = str(record["version"])
    elif "version" in init_args and init_args.get("version") is None:
        init_args["version"] = record["version"]


def default_wandb_mode() -> None:
    """Log offline when there are no W&B credentials (sync later with ``wandb sync``)."""
    if "WANDB_MODE" in os.environ or os.environ.get("WANDB_API_KEY"):
        return
    netrc = os.path.join(os.path.expanduser("~"), ".netrc")
    if os.path.exists(netrc):
        with open(netrc) as handle:
            if "api.wandb.ai" in handle.read():
                return
    os.environ["WANDB_MODE"] = "offline"


def recipe_chain(path: str | os.PathLike) -> list[str]:
    """``path`` preceded by the recipes it builds on (``base:``), the most basic first."""
    chain: list[str] = []
    current: Path | None = Path(path)
    while current is not None:
        if str(current) in chain:
            raise SystemExit(f"{path}: recipes build on each other in a circle ({' → '.join(chain)})")
        chain.insert(0, str(current))
        try:
            content = yaml.safe_load(current.read_text()) or {}
        except OSError as error:
            raise SystemExit(f"{current}: cannot read the recipe ({error.strerror})") from None
        base = content.get("base") if isinstance(content, dict) else None
        current = (current.parent / base) if base else None
    return chain


def expand_bases(argv: list[str]) -> list[str]:
    """Every ``--config RECIPE`` of ``argv`` preceded by ``--config BASE`` for each recipe it builds on."""
    out: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--config" and index + 1 < len(argv):
            path, index = argv[index + 1], index + 2
        elif arg.startswith("--config="):
            path, index = arg.split("=", 1)[1], index + 1
        else:
            out.append(arg)
            index += 1
            continue
        for file in recipe_chain(path) if os.path.isfile(path) else [path]:
            out += ["--config", file]
    return out


def run_lightning(args: list[str] | None = None, run: bool = True) -> SeqtasksCLI:
    """LightningCLI over ``args`` (None: ``sys.argv``), with base recipes expanded."""
    import sys

    default_wandb_mode()
    expanded = expand_bases(list(sys.argv[1:] if args is None else args))
    if expanded[:1] == ["predict"] and not any(a.startswith("--trainer.logger") for a in expanded):
        expanded.append("--trainer.logger=false")  # predicting starts no new W&B run
    return SeqtasksCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        args=expanded,
        run=run,
        auto_configure_optimizers=False,
    )
