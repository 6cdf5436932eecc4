"""What ``seqtasks gradients`` writes: CSV files, the Markdown table, summary.json, figures, W&B.

Figures are small PNGs (85 dpi, under 200 KB) meant to be read in a README. Every gradient axis is
logarithmic, where a geometric decay is a straight line whose slope is the decay per step. Colour is the
cell; a dashed line is a gated cell at torch's initialisation when the same cell also ran with a
memory-gate bias.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from seqtasks.analysis.long_range import LongRangeDataset
from seqtasks.analysis.settings import WANDB_PROJECT, LabSettings, RunResult

COLOURS = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
MARKERS = {"rnn": "o", "gru": "s", "lstm": "^"}
DPI = 85
NAMES = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}


def at_chance(accuracy: float, chance: float, rows: int, sigmas: float = 3.0) -> bool:
    """Whether an accuracy on ``rows`` test rows is within ``sigmas`` standard errors of chance."""
    return accuracy <= chance + sigmas * math.sqrt(chance * (1 - chance) / rows)


def profile_distance(results: list[RunResult], settings: LabSettings, chance: float) -> int:
    """Where the gradient profiles are shown: the longest distance that some model learned (above chance).

    Beyond it every model failed, and "after training" would only show models that learned nothing.
    """
    runs = _main_runs(results, settings)
    learned = [r.distance for r in runs if not at_chance(r.test_acc, chance, settings.test_size)]
    return max(learned) if learned else max(r.distance for r in runs)


# ---- tables --------------------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def label(cell: str, gate_bias: float | None, settings: LabSettings) -> str:
    if gate_bias is not None:
        return f"{NAMES[cell]}, gate bias {gate_bias:g}"
    if cell != "rnn" and settings.gate_biases != [None]:
        return f"{NAMES[cell]}, torch init"
    return NAMES[cell]


def summary_markdown(
    results: list[RunResult], settings: LabSettings, chance: float, rnn_chance: int | None
) -> str:
    """Accuracy per distance; the fitted decay of ‖∂L/∂h‖ per step at init and after training."""
    distances = sorted({r.distance for r in results})
    shown = profile_distance(results, settings, chance)
    lines = [
        "| model | "
        + " | ".join(f"acc. d={d}" for d in distances)
        + f" | slope of ln‖∂L/∂h‖ per step, init (d={shown}) | after training (d={shown}) |",
        "|---|" + "---:|" * (len(distances) + 2),
    ]
    for cell, gate_bias in settings.variants:
        for clip in settings.clips:
            runs = {
                r.distance: r
                for r in results
                if r.cell == cell and r.gate_bias == gate_bias and r.clip == clip
            }
            if not runs:
                continue
            name = label(cell, gate_bias, settings)
            if len(settings.clips) > 1:
                name += f", clip {clip:g}" if clip is not None else ", no clipping"
            accs = " | ".join(f"{runs[d].test_acc:.3f}" if d in runs else "—" for d in distances)
            run = runs.get(shown)
            decays = " | ".join(
                _slope_text(profile.decay_slope()) for profile in ((run.init, run.trained) if run else ())
            )
            lines.append(f"| {name} | {accs} | {decays or '— | —'} |")
    note = f"Chance is {chance:.3f}; test rows: {settings.test_size}; slope s means ×exp(s) per step."
    if "rnn" in settings.encoders:
        note += (
            f" The tanh RNN is at chance (within 3 standard errors) from distance {rnn_chance} on."
            if rnn_chance is not None
            else " The tanh RNN does not fall to chance at these distances."
        )
    return "\n".join(lines) + "\n\n" + note + "\n"


def _slope_text(slope: float) -> str:
    return f"{slope:+.3f} (×{math.exp(slope):.3f})" if math.isfinite(slope) else "—"


def write_report(
    results: list[RunResult],
    settings: LabSettings,
    dataset: LongRangeDataset,
    rnn_chance: int | None,
    started: float,
) -> dict[str, Any]:
    """results.csv, gradients.csv, steps.csv, the figures, summary.md and summary.json; W&B when asked."""
    out = Path(settings.out)
    chance = dataset.chance
    rows = [r.row(settings.task, chance, settings.explode_scale) for r in results]
    write_csv(out / "results.csv", rows)
    gradient_rows, step_rows = [], []
    for r in results:
        key = {
            "task": settings.task,
            "model": r.variant,
            "distance": r.distance,
            "clip": r.clip,
        }
        for stage, profile in (("init", r.init), ("trained", r.trained)):
            gradient_rows.extend({**key, "stage": stage, **record} for record in profile.records())
        step_rows.extend({**key, **step} for step in r.steps)
    write_csv(out / "gradients.csv", gradient_rows)
    write_csv(out / "steps.csv", step_rows)
    paths = write_figures(results, settings, chance, out)
    table = summary_markdown(results, settings, chance, rnn_chance)
    (out / "summary.md").write_text(table)
    wall = time.perf_counter() - started
    summary = {
        "settings": asdict(settings),
        "filler_source": dataset.filler_source,
        "chance": chance,
        "rnn_chance_distance": rnn_chance,
        "results": rows,
        "figures": [str(p) for p in paths],
        "wall_seconds": round(wall, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if settings.wandb:
        log_to_wandb(summary, gradient_rows, paths, out)
    print(table)
    print(f"filler: {dataset.filler_source}")
    print(f"wrote {out}/results.csv, gradients.csv, steps.csv, summary.json, summary.md and")
    for path in paths:
        print(f"  {path}")
    print(f"wall time {wall:.0f} s", flush=True)
    return summary


def log_to_wandb(summary: dict[str, Any], gradient_rows: list[dict], paths: list[Path], out: Path) -> None:
    """One summary run in the command's W&B group: the tables and every figure."""
    import wandb

    run = wandb.init(
        project=WANDB_PROJECT, group=out.name, name=f"{out.name}-summary", dir=str(out), job_type="summary"
    )
    try:
        results = summary["results"]
        run.log(
            {
                "results": wandb.Table(columns=list(results[0]), data=[list(r.values()) for r in results]),
                "gradients": wandb.Table(
                    columns=list(gradient_rows[0]), data=[list(r.values()) for r in gradient_rows]
                ),
                **{f"figures/{p.stem}": wandb.Image(str(p)) for p in paths},
            }
        )
        run.summary.update(
            {"rnn_chance_distance": summary["rnn_chance_distance"], "wall_seconds": summary["wall_seconds"]}
        )
    finally:
        run.finish()


# ---- figures -------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(cell: str, gate_bias: float | None, settings: LabSettings) -> dict[str, Any]:
    dashed = gate_bias is None and cell != "rnn" and settings.gate_biases != [None]
    return {
        "color": COLOURS[cell],
        "ls": "--" if dashed else "-",
        "marker": MARKERS[cell],
        "markersize": 4,
        "label": label(cell, gate_bias, settings),
    }


def _main_runs(results: list[RunResult], settings: LabSettings) -> list[RunResult]:
    """The runs of the main comparison: unclipped when both were trained."""
    return [r for r in results if r.clip == settings.clips[0]]


def _positive(values: list[float]) -> list[float]:
    return [v if v > 0 and math.isfinite(v) else math.nan for v in values]


def _runs_of(runs: list[RunResult], cell: str, gate_bias: float | None) -> list[RunResult]:
    return sorted((r for r in runs if r.cell == cell and r.gate_bias == gate_bias), key=lambda r: r.distance)


def plot_accuracy(ax, results: list[RunResult], settings: LabSettings, chance: float) -> None:
    runs = _main_runs(results, settings)
    variants = settings.variants
    for index, (cell, gate_bias) in enumerate(variants):
        mine = _runs_of(runs, cell, gate_bias)
        nudge = 1.0 + 0.025 * (index - (len(variants) - 1) / 2)  # side by side, not on top of each other
        if mine:
            ax.plot(
                [r.distance * nudge for r in mine],
                [r.test_acc for r in mine],
                **_style(cell, gate_bias, settings),
            )
    band = 3 * math.sqrt(chance * (1 - chance) / settings.test_size)
    ax.axhspan(chance - band, chance + band, color="0.85", label="chance ± 3 s.e.")
    ax.set_xscale("log")
    ax.set_xticks(settings.distances, [str(d) for d in settings.distances])
    ax.minorticks_off()
    ax.set_xlabel("distance: steps from the deciding token to the last token")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(min(chance - 2 * band, 0.4 if chance >= 0.5 else 0.0), 1.02)
    ax.set_title(f"{settings.task} task: accuracy vs distance")
    ax.legend(fontsize=8)


def plot_profiles(
    ax, results: list[RunResult], settings: LabSettings, distance: int, stage: str, which: str = "hidden"
) -> None:
    """Gradient norm vs steps back, per model, at task ``distance``; ``stage`` is init or trained."""
    runs = _main_runs(results, settings)
    for cell, gate_bias in settings.variants:
        run = next((r for r in _runs_of(runs, cell, gate_bias) if r.distance == distance), None)
        if run is None:
            continue
        profile = run.init if stage == "init" else run.trained
        slope = profile.decay_slope(which)
        style = {**_style(cell, gate_bias, settings), "marker": None}
        if math.isfinite(slope):
            style["label"] += f": ×{math.exp(slope):.3f}/step"
        ax.plot(profile.distance.tolist(), _positive(profile.norms(which).tolist()), **style)
    ax.axvline(distance, color="0.6", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the loss (dotted: the deciding token)")
    symbol = "h" if which == "hidden" else "x"
    ax.set_ylabel(f"mean ‖∂L/∂{symbol}⟨T−d⟩‖")
    ax.set_title(f"{'at initialisation' if stage == 'init' else 'after training'}, distance {distance}")
    ax.legend(fontsize=7)


def plot_decay(ax, results: list[RunResult], settings: LabSettings) -> None:
    """Fitted factor per step vs task distance, after training (the same models at init: see the table)."""
    runs = _main_runs(results, settings)
    for cell, gate_bias in settings.variants:
        mine = _runs_of(runs, cell, gate_bias)
        style = _style(cell, gate_bias, settings)
        ax.plot([r.distance for r in mine], [r.trained.decay_per_step() for r in mine], **style)
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(settings.distances, [str(d) for d in settings.distances])
    ax.minorticks_off()
    ax.set_xlabel("distance")
    ax.set_ylabel("fitted ‖∂L/∂h‖ factor per step back")
    ax.set_title("gradient factor per step after training (1 = no decay)")
    ax.legend(fontsize=8)


def write_figures(results: list[RunResult], settings: LabSettings, chance: float, out: Path) -> list[Path]:
    """accuracy.png, gradients.png, summary.png, and exploding.png when clipping was compared."""
    plt = _plt()
    paths = []

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    plot_accuracy(ax, results, settings, chance)
    paths.append(_save(fig, out / "accuracy.png"))

    shown = profile_distance(results, settings, chance)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey="row")
    for column, stage in enumerate(("init", "trained")):
        plot_profiles(axes[0, column], results, settings, shown, stage, "hidden")
        plot_profiles(axes[1, column], results, settings, shown, stage, "inputs")
    paths.append(_save(fig, out / "gradients.png"))

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    plot_accuracy(axes[0, 0], results, settings, chance)
    plot_decay(axes[0, 1], results, settings)
    plot_profiles(axes[1, 0], results, settings, shown, "init", "hidden")
    plot_profiles(axes[1, 1], results, settings, shown, "trained", "hidden")
    low = min(axes[1, 0].get_ylim()[0], axes[1, 1].get_ylim()[0])
    high = max(axes[1, 0].get_ylim()[1], axes[1, 1].get_ylim()[1])
    for ax in axes[1]:
        ax.set_ylim(low, high)
    fig.suptitle(
        f"Why LSTM and GRU: {settings.task} task, hidden {settings.hidden}, "
        f"{settings.train_size} training rows, {settings.optimizer}",
        fontsize=11,
    )
    paths.append(_save(fig, out / "summary.png"))

    if len(settings.clips) > 1:
        paths.append(_save(exploding_figure(results, settings), out / "exploding.png"))
    return paths


def exploding_figure(results: list[RunResult], settings: LabSettings):
    """Per model: gradient norm at init vs steps back; gradient norm and loss per step, clipped or not."""
    plt = _plt()
    longest = max(r.distance for r in results)
    variants = settings.variants
    fig, axes = plt.subplots(len(variants), 3, figsize=(13, 3.2 * len(variants)), squeeze=False)
    for row, (cell, gate_bias) in enumerate(variants):
        runs = {
            r.clip: r
            for r in results
            if r.cell == cell and r.gate_bias == gate_bias and r.distance == longest
        }
        if not runs:
            continue
        name = label(cell, gate_bias, settings)
        first = next(iter(runs.values()))
        ax = axes[row, 0]
        ax.plot(first.init.distance.tolist(), _positive(first.init.hidden.tolist()), color=COLOURS[cell])
        ax.set_yscale("log")
        ax.set_title(
            f"{name}, W_hh ×{settings.explode_scale:g} at init: ×{first.init.decay_per_step():.3f}/step",
            fontsize=9,
        )
        ax.set_xlabel("steps back from the loss")
        ax.set_ylabel("mean ‖∂L/∂h‖")
        for clip, run in sorted(runs.items(), key=lambda kv: kv[0] is not None):
            text = "no clipping" if clip is None else f"clipped at {clip:g}"
            diverged = next((s["step"] for s in run.steps if not math.isfinite(s["loss"])), None)
            if diverged is not None:
                text += f" (loss NaN from step {diverged})"
            style = {"color": "tab:orange" if clip is None else "tab:purple", "lw": 0.8}
            steps = [s["step"] for s in run.steps]
            axes[row, 1].plot(steps, _positive([s["grad_norm"] for s in run.steps]), label=text, **style)
            axes[row, 2].plot(
                steps, [s["loss"] for s in run.steps], label=f"{text}: test acc. {run.test_acc:.3f}", **style
            )
        axes[row, 1].set_yscale("log")
        axes[row, 1].set_title(f"parameter-gradient norm per step (before clipping), d={longest}", fontsize=9)
        axes[row, 2].set_title("training loss per step", fontsize=9)
        for ax in axes[row, 1:]:
            ax.set_xlabel("optimiser step")
            ax.legend(fontsize=8)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path
