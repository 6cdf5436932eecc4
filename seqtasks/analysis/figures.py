"""Figures of the vanishing-gradient lab: accuracy vs distance, gradient norm vs steps back, clipping.

Small PNGs (100 dpi) meant to be read in a README; every gradient axis is logarithmic, where a geometric
decay is a straight line whose slope is the decay per step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqtasks.analysis.lab import LabSettings, RunResult

COLOURS = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
NAMES = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _main_runs(results: list[RunResult], settings: LabSettings) -> list[RunResult]:
    """The runs of the main comparison: unclipped when both were trained."""
    clip = settings.clips[0]
    return [r for r in results if r.clip == clip]


def _positive(values: list[float]) -> list[float]:
    return [v if v > 0 and math.isfinite(v) else math.nan for v in values]


def plot_accuracy(ax, results: list[RunResult], settings: LabSettings, chance: float) -> None:
    runs = _main_runs(results, settings)
    for cell in settings.encoders:
        points = sorted((r.distance, r.test_acc) for r in runs if r.cell == cell)
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, "o-", color=COLOURS[cell], label=NAMES[cell])
    band = 3 * math.sqrt(chance * (1 - chance) / settings.test_size)
    ax.axhspan(chance - band, chance + band, color="0.85", label="chance ± 3 s.e.")
    ax.axhline(chance, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(settings.distances, [str(d) for d in settings.distances])
    ax.set_xlabel("distance: steps from the deciding token to the last token")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(min(chance - 2 * band, 0.4 if chance >= 0.5 else 0.0), 1.02)
    ax.set_title(f"{settings.task} task: accuracy vs distance")
    ax.legend(fontsize=8)


def plot_profiles(ax, results: list[RunResult], settings: LabSettings, stage: str, which: str = "hidden") -> None:
    """Gradient norm vs steps back, per cell, for the longest distance; ``stage`` is init or trained."""
    runs = _main_runs(results, settings)
    longest = max(r.distance for r in runs)
    for cell in settings.encoders:
        run = next((r for r in runs if r.cell == cell and r.distance == longest), None)
        if run is None:
            continue
        profile = run.init if stage == "init" else run.trained
        norms = profile.norms(which)
        slope = profile.decay_slope(which)
        ax.plot(
            profile.distance.tolist(),
            _positive(norms.tolist()),
            color=COLOURS[cell],
            label=f"{NAMES[cell]}: ×{math.exp(slope):.3f}/step" if math.isfinite(slope) else NAMES[cell],
        )
    ax.axvline(longest, color="0.6", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the loss (the cue is at the dotted line)")
    symbol = "h" if which == "hidden" else "x"
    ax.set_ylabel(f"mean ‖∂L/∂{symbol}⟨T−d⟩‖")
    ax.set_title(f"{'at initialisation' if stage == 'init' else 'after training'}, distance {longest}")
    ax.legend(fontsize=8)


def plot_decay(ax, results: list[RunResult], settings: LabSettings) -> None:
    """Fitted decay factor per step vs task distance, at init (dashed) and after training (solid)."""
    runs = _main_runs(results, settings)
    for cell in settings.encoders:
        cell_runs = sorted((r for r in runs if r.cell == cell), key=lambda r: r.distance)
        xs = [r.distance for r in cell_runs]
        ax.plot(xs, [r.init.decay_per_step() for r in cell_runs], "s--", color=COLOURS[cell], alpha=0.6)
        ax.plot(xs, [r.trained.decay_per_step() for r in cell_runs], "o-", color=COLOURS[cell], label=NAMES[cell])
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(settings.distances, [str(d) for d in settings.distances])
    ax.set_xlabel("distance")
    ax.set_ylabel("‖∂L/∂h‖ factor per step back (fitted)")
    ax.set_title("gradient decay per step: init (dashed), trained (solid)")
    ax.legend(fontsize=8)


def write_figures(results: list[RunResult], settings: LabSettings, chance: float, out: Path) -> list[Path]:
    """accuracy.png, gradients.png, summary.png, and exploding.png when clipping was compared."""
    plt = _plt()
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    plot_accuracy(ax, results, settings, chance)
    paths.append(_save(fig, out / "accuracy.png"))

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey="row")
    for column, stage in enumerate(("init", "trained")):
        plot_profiles(axes[0, column], results, settings, stage, "hidden")
        plot_profiles(axes[1, column], results, settings, stage, "inputs")
    paths.append(_save(fig, out / "gradients.png"))

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    plot_accuracy(axes[0, 0], results, settings, chance)
    plot_decay(axes[0, 1], results, settings)
    plot_profiles(axes[1, 0], results, settings, "init", "hidden")
    plot_profiles(axes[1, 1], results, settings, "trained", "hidden")
    fig.suptitle(
        f"Why LSTM and GRU: {settings.task} task, hidden {settings.hidden}, {settings.train_size} training rows",
        fontsize=11,
    )
    paths.append(_save(fig, out / "summary.png"))

    if len(settings.clips) > 1:
        paths.append(_save(exploding_figure(results, settings), out / "exploding.png"))
    return paths


def exploding_figure(results: list[RunResult], settings: LabSettings):
    """Per cell: gradient norm at init vs steps back; gradient norm and loss per step, unclipped vs clipped."""
    plt = _plt()
    longest = max(r.distance for r in results)
    fig, axes = plt.subplots(len(settings.encoders), 3, figsize=(13, 3.2 * len(settings.encoders)), squeeze=False)
    for row, cell in enumerate(settings.encoders):
        runs = {r.clip: r for r in results if r.cell == cell and r.distance == longest}
        ax = axes[row, 0]
        any_run = next(iter(runs.values()))
        ax.plot(any_run.init.distance.tolist(), _positive(any_run.init.hidden.tolist()), color=COLOURS[cell])
        ax.set_yscale("log")
        ax.set_title(
            f"{NAMES[cell]}, W_hh ×{settings.explode_scale:g} at init: "
            f"×{any_run.init.decay_per_step():.3f}/step",
            fontsize=9,
        )
        ax.set_xlabel("steps back from the loss")
        ax.set_ylabel("mean ‖∂L/∂h‖")
        for clip, run in sorted(runs.items(), key=lambda kv: kv[0] is not None):
            label = "no clipping" if clip is None else f"clip at {clip:g}"
            style = {"color": "tab:orange" if clip is None else "tab:purple", "lw": 0.8, "label": label}
            steps = [s["step"] for s in run.steps]
            axes[row, 1].plot(steps, _positive([s["grad_norm"] for s in run.steps]), **style)
            axes[row, 2].plot(
                steps, [s["loss"] for s in run.steps], **{**style, "label": f"{label}: test acc {run.test_acc:.2f}"}
            )
        axes[row, 1].set_yscale("log")
        axes[row, 1].set_title(f"parameter gradient norm per step (before clipping), d={longest}", fontsize=9)
        axes[row, 1].set_xlabel("optimiser step")
        axes[row, 2].set_title("training loss per step", fontsize=9)
        axes[row, 2].set_xlabel("optimiser step")
        axes[row, 1].legend(fontsize=8)
        axes[row, 2].legend(fontsize=8)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path
