"""What a run of the vanishing-gradient lab depends on and what it gives: shared by the lab and its report.

:class:`LabSettings` are the ``seqtasks gradients`` flags; :class:`RunResult` is one trained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from seqtasks.analysis.gradients import GradientProfile
from seqtasks.analysis.long_range import MIN_TENSE_DISTANCE

CELLS = ("rnn", "gru", "lstm")
WANDB_PROJECT = "seqtasks-gradients"


@dataclass
class LabSettings:
    """Everything a lab run depends on (the command's flags); stored in ``summary.json``."""

    encoders: list[str] = field(default_factory=lambda: list(CELLS))
    distances: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 100])
    task: str = "tense"
    hidden: int = 32
    embedding_dim: int = 32
    epochs: int = 1
    patience: int = 4
    train_size: int = 20000
    validation_size: int = 500
    test_size: int = 1000
    batch_size: int = 32
    validate_every: int = 5000
    lr: float = 3e-3
    optimizer: str = "adamw"
    levels: int = 5
    probe_rows: int = 128
    gate_biases: list[float | None] = field(default_factory=lambda: [None])
    explode_scale: float | None = None
    clip: float | None = None
    seed: int = 0
    out: str = "runs/gradients"
    wandb: bool = False

    def __post_init__(self) -> None:
        unknown = [cell for cell in self.encoders if cell not in CELLS]
        if unknown or not self.encoders:
            raise ValueError(f"--encoders must name cells among {list(CELLS)}, got {self.encoders}")
        if not self.distances or min(self.distances) < 1:
            raise ValueError(f"--distances must be positive integers, got {self.distances}")
        if self.task not in ("tense", "adding"):
            raise ValueError(f"--task must be tense or adding, got {self.task!r}")
        if self.task == "tense" and min(self.distances) < MIN_TENSE_DISTANCE:
            raise ValueError(
                f"--distances: the tense task needs distances >= {MIN_TENSE_DISTANCE}, got {self.distances}"
            )
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"--optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.clip is not None and self.clip <= 0:
            raise ValueError(f"--clip must be positive, got {self.clip}")
        if self.explode_scale is not None and self.explode_scale <= 0:
            raise ValueError(f"--explode-scale must be positive, got {self.explode_scale}")

    @property
    def variants(self) -> list[tuple[str, float | None]]:
        """``(cell, gate bias)`` of every model compared: gated cells once per gate bias, the RNN once."""
        return [
            (cell, bias) for cell in self.encoders for bias in ([None] if cell == "rnn" else self.gate_biases)
        ]

    @property
    def clips(self) -> list[float | None]:
        """Clipping settings each run is trained with: both when showing exploding gradients."""
        if self.explode_scale is not None:
            return [None, self.clip or 1.0]
        return [self.clip]


@dataclass
class RunResult:
    """One trained model: its accuracy, its gradient profiles, its per-step training record."""

    cell: str
    gate_bias: float | None
    distance: int
    clip: float | None
    test_acc: float
    best_val_acc: float
    rows_seen: int
    seconds: float
    init: GradientProfile
    trained: GradientProfile
    steps: list[dict[str, float]]

    @property
    def variant(self) -> str:
        """``lstm``, or ``lstm-b3`` when the memory-gate bias was set to 3."""
        return variant_name(self.cell, self.gate_bias)

    def row(self, task: str, chance: float, explode_scale: float | None) -> dict[str, Any]:
        return {
            "task": task,
            "model": self.variant,
            "cell": self.cell,
            "gate_bias": self.gate_bias,  # None: torch init (empty in the CSV)
            "distance": self.distance,
            "clip": self.clip,
            "explode_scale": explode_scale,
            "test_acc": round(self.test_acc, 4),
            "best_val_acc": round(self.best_val_acc, 4),
            "chance": round(chance, 4),
            "train_rows_seen": self.rows_seen,
            "train_seconds": round(self.seconds, 1),
            "decay_slope_init": rounded(self.init.decay_slope()),
            "decay_slope_trained": rounded(self.trained.decay_slope()),
            "decay_per_step_init": rounded(math.exp(self.init.decay_slope())),
            "decay_per_step_trained": rounded(math.exp(self.trained.decay_slope())),
        }


def variant_name(cell: str, gate_bias: float | None) -> str:
    return cell if gate_bias is None else f"{cell}-b{gate_bias:g}"


def rounded(value: float, digits: int = 4) -> float:
    return value if not math.isfinite(value) else round(value, digits)
