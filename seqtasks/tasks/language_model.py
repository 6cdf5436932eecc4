"""Many-to-many over unlabeled text: training a recurrent language model with truncated BPTT.

:class:`LanguageModel` trains a :class:`~seqtasks.networks.language_model.LanguageModelNetwork` on the
consecutive windows of :class:`~seqtasks.data.language_model.LanguageModelDataModule`. The hidden state a
window ends with starts the next one (detached: the gradient stops at the window's start); it is reset to
zeros at each epoch's start and at the start of each validation and test pass, which read their own stream
from the beginning. A checkpoint holds the state carried into the next training window (and the loader its
position), so ``fit --ckpt_path`` in the middle of an epoch continues exactly where the run stopped. The
loss is the mean cross-entropy per target token.

Metrics are torchmetrics with summed states (exact over a split, summed across ranks): perplexity
(``val/ppl``, ``exp`` of the mean NLL per token) and, for a character model, bits per character
(``val/bpc``, the mean NLL in bits). The checkpoint carries the codec (level, case, vocabulary).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from seqtasks.checkpoints import CHECKPOINT_KEY
from seqtasks.encoders.base import State
from seqtasks.music.metrics import NLLPerStep
from seqtasks.networks.language_model import LanguageModelNetwork, detach_state
from seqtasks.tasks.base import SeqTask


class Perplexity(NLLPerStep):
    """``exp(summed NLL / summed tokens)``."""

    def compute(self) -> Tensor:
        return super().compute().exp()


class BitsPerCharacter(NLLPerStep):
    """Summed NLL in bits over summed characters."""

    def compute(self) -> Tensor:
        return super().compute() / math.log(2.0)


class LanguageModel(SeqTask):
    """Train a recurrent language model: next-token NLL over a stream, the state carried across batches.

    Args:
        network: the network, built with ``vocab_size``.
        vocab_size: number of token types (linked from the datamodule).
        optimizer: see :class:`~seqtasks.tasks.base.SeqTask`.
        lr_scheduler: see :class:`~seqtasks.tasks.base.SeqTask`; a ``ReduceLROnPlateau`` follows ``val/nll``.
        init_from: checkpoint to fine-tune from (weights only).
        init_from_strict: refuse an ``init_from`` checkpoint of another task or one nothing loads from
            (set false to allow it).
    """

    monitor = "val/nll"

    def __init__(
        self,
        network: Callable[[int], LanguageModelNetwork],
        vocab_size: int,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_from: str | None = None,
        init_from_strict: bool = True,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, init_from, init_from_strict)
        self.save_hyperparameters()
        self.network = self.build_network(network, vocab_size)
        self.train_nll, self.val_nll, self.test_nll = NLLPerStep(), NLLPerStep(), NLLPerStep()
        self.val_ppl, self.test_ppl = Perplexity(), Perplexity()
        self.val_bpc, self.test_bpc = BitsPerCharacter(), BitsPerCharacter()
        self._state: dict[str, State | None] = {"train": None, "val": None, "test": None}
        self._resumed_state: list[Tensor] | None = None

    @property
    def is_char_level(self) -> bool:
        return self.artefacts.get("level") == "char"

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Next-token logits ``(B, T, vocab_size)`` and the state after the window."""
        return self.network(tokens, state)

    def _step(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, int]:
        state = self._state[stage]
        if state is not None and state[0].size(1) != batch["inputs"].size(0):
            state = None  # another stream width (a new loader): start from zeros
        nll_sum, tokens, new_state = self.network.nll(batch["inputs"], batch["targets"], state)
        self._state[stage] = detach_state(new_state)
        return nll_sum, tokens

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._state["train"] = None

    # ---- a mid-epoch resume continues the carried state ------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Besides the base's entries: the training state carried into the next window, every rank's
        (``(world, …)`` per state tensor), so a run resumed mid-epoch continues the stream exactly."""
        super().on_save_checkpoint(checkpoint)
        state = self._state["train"]
        if state is None:
            return
        if self.trainer.world_size > 1:  # every rank saves (rank 0 writes): a collective is safe here
            gathered = [self.all_gather(s) for s in state]
        else:
            gathered = [s.unsqueeze(0) for s in state]
        checkpoint[CHECKPOINT_KEY]["carried_state"] = [g.detach().cpu() for g in gathered]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._resumed_state = checkpoint.get(CHECKPOINT_KEY, {}).get("carried_state")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        resumed, self._resumed_state = self._resumed_state, None
        if resumed is None or batch_idx == 0:  # an epoch's first window starts from zeros
            return
        if resumed[0].size(0) != self.trainer.world_size:
            rank_zero_warn(
                f"the checkpoint carries the LM state of {resumed[0].size(0)} process(es), this run has "
                f"{self.trainer.world_size}: the resumed epoch continues from a zero state"
            )
            return
        self._state["train"] = tuple(s[self.global_rank].to(self.device) for s in resumed)

    def on_validation_epoch_start(self) -> None:
        self._state["val"] = None

    def on_test_epoch_start(self) -> None:
        self._state["test"] = None

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        nll_sum, tokens = self._step(batch, "train")
        loss = nll_sum / tokens
        self.train_nll.update(nll_sum, tokens)
        if self.logs_epoch_metrics():
            self.log("train/nll", self.train_nll, on_step=False, on_epoch=True, prog_bar=True)
        if self.logs_this_step(batch_idx):
            self.log("train/nll_step", loss, on_step=True, on_epoch=False, prog_bar=True)
            self.log("train/ppl", loss.detach().exp(), on_step=True, on_epoch=False)
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        nll_sum, tokens = self._step(batch, stage)
        metrics = [("nll", getattr(self, f"{stage}_nll")), ("ppl", getattr(self, f"{stage}_ppl"))]
        if self.is_char_level:
            metrics.append(("bpc", getattr(self, f"{stage}_bpc")))
        for name, metric in metrics:
            metric.update(nll_sum, tokens)
            self.log(f"{stage}/{name}", metric, on_epoch=True, prog_bar=name != "nll", batch_size=tokens)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")
