"""What ``seqtasks lab`` draws and tabulates: ``length.png``, ``cost.png``, ``sharing.png``, ``depth.png`` and
``summary.md``. Small PNGs (the gradient lab's 85 dpi) meant for the README."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seqtasks.analysis.report import COLOURS, DPI, NAMES, _plt

MODEL_NAMES = {"plain": "plain network (padded width)", "window": "window network", "rnn": "BiLSTM"}
MODEL_COLOURS = {"plain": "tab:orange", "window": "tab:purple", "rnn": "tab:green"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path


def write_figures(results: dict[str, Any], settings, out: Path) -> list[Path]:
    plt = _plt()
    paths = []
    if "length" in results:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        plot_length(ax, results["length"], settings)
        paths.append(_save(fig, out / "length.png"))
    if "cost" in results:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        plot_cost(axes, results["cost"])
        paths.append(_save(fig, out / "cost.png"))
    if "parameters" in results:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        plot_parameters(axes[0], results["parameters"], settings)
        plot_transfer(axes[1], results["transfer"], settings)
        paths.append(_save(fig, out / "sharing.png"))
    if "depth" in results:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        plot_depth(axes, results["depth"])
        paths.append(_save(fig, out / "depth.png"))
    return paths


def plot_length(ax, rows: list[dict[str, Any]], settings) -> None:
    buckets = [r["bucket"] for r in rows if r["model"] == "plain" and r["bucket"] != "all"]
    x = list(range(len(buckets)))
    for name in MODEL_NAMES:
        mine = {r["bucket"]: r for r in rows if r["model"] == name}
        if not mine:
            continue
        ax.plot(
            x,
            [mine[b]["f1"] if b in mine else math.nan for b in buckets],
            marker="o",
            color=MODEL_COLOURS[name],
            label=f"{MODEL_NAMES[name]} (all: {mine['all']['f1']:.1f})",
        )
    counts = {r["bucket"]: r["sentences"] for r in rows if r["model"] == "plain"}
    ax.set_xticks(x, [f"{b}\n({counts[b]})" for b in buckets])
    beyond = [i for i, b in enumerate(buckets) if int(b.split("-")[0].rstrip("+")) > settings.width]
    if beyond:
        ax.axvspan(beyond[0] - 0.5, x[-1] + 0.5, color="0.9", label="longer than any training input")
    ax.set_xlabel("test sentence length in tokens (sentences)")
    ax.set_ylabel("entity F1 (conlleval)")
    ax.set_ylim(0, 100)
    ax.set_title(f"CoNLL-2003 test F1 by length; trained on sentences ≤ {settings.width} tokens")
    ax.legend(fontsize=8, loc="lower left")


def plot_cost(axes, rows: list[dict[str, Any]]) -> None:
    for layer, colour in (("one-hot", "tab:red"), ("embedding", "tab:blue")):
        mine = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["vocab"])
        vocab = [r["vocab"] for r in mine]
        axes[0].plot(
            vocab, [r["forward_ms"] + r["backward_ms"] for r in mine], "o-", color=colour, label=layer
        )
        axes[1].plot(vocab, [max(r["allocated_mb"], 1e-3) for r in mine], "o-", color=colour, label=layer)
        axes[2].plot(
            vocab,
            [max(r["flops_forward"] + r["flops_backward"], 1) for r in mine],
            "o-",
            color=colour,
            label=layer,
        )
    first = rows[0]
    shape = f"batch {first['batch']}×{first['length']} tokens, E={first['dim']}"
    titles = (f"forward+backward time ({shape})", "memory the step allocates", "FLOPs (fwd+bwd)")
    for ax, title, unit in zip(axes, titles, ("ms", "MB", "FLOPs"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("vocabulary size V")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=9)
        ax.axvline(25000, color="0.6", ls=":", lw=1)
        ax.legend(fontsize=8)


def plot_parameters(ax, rows: list[dict[str, Any]], settings) -> None:
    lengths = [r["max_length"] for r in rows]
    lines = {
        "plain": ("plain network, embedded inputs", "tab:orange", "-"),
        "plain_one_hot_inputs": ("plain network, one-hot inputs", "black", "-"),
        "window": (f"window network (±{settings.window})", "tab:purple", "--"),
        "tanh_rnn": ("tanh RNN", COLOURS["rnn"], "--"),
        "bilstm": ("BiLSTM", COLOURS["lstm"], "--"),
    }
    for key, (text, colour, style) in lines.items():
        ax.plot(lengths, [r[key] for r in rows], ls=style, color=colour, label=text)
    ax.set_yscale("log")
    ax.set_xlabel("maximum sentence length the network takes")
    ax.set_ylabel("parameters (shared embeddings excluded)")
    ax.set_title("parameters vs length: only the plain network grows", fontsize=10)
    ax.legend(fontsize=8)


def plot_transfer(ax, rows: list[dict[str, Any]], settings) -> None:
    groups = list(dict.fromkeys((r["trained_on"], r["test_set"]) for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    width = 0.8 / len(models)
    for m, name in enumerate(models):
        values = [
            next(r["test_f1"] for r in rows if r["model"] == name and (r["trained_on"], r["test_set"]) == g)
            for g in groups
        ]
        offsets = [i + (m - (len(models) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(offsets, values, width, color=MODEL_COLOURS[name], label=MODEL_NAMES[name])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    counts = [
        next(r["test_sentences"] for r in rows if (r["trained_on"], r["test_set"]) == g) for g in groups
    ]
    ticks = [
        f"train: {t.replace(' (reference)', '')}\ntest: {s.split(' (')[0]}\n({c} sentences)"
        for (t, s), c in zip(groups, counts, strict=True)
    ]
    ax.set_xticks(range(len(groups)), ticks, fontsize=7)
    ax.set_ylabel("test entity F1")
    ax.set_ylim(0, 100)
    ax.set_title(f"position transfer: names only in the first {settings.transfer_k} positions", fontsize=10)
    ax.legend(fontsize=8)


def plot_depth(axes, rows: list[dict[str, Any]]) -> None:
    for cell in dict.fromkeys(r["cell"] for r in rows):
        mine = sorted((r for r in rows if r["cell"] == cell), key=lambda r: r["layers"])
        layers = [r["layers"] for r in mine]
        style = {"color": COLOURS[cell], "marker": "o"}
        axes[0].plot(layers, [r["test_f1"] for r in mine], label=NAMES[cell], **style)
        axes[1].plot(layers, [r["train_seconds"] for r in mine], label=NAMES[cell], **style)
        axes[2].plot(
            layers, [r["grad_first_layer_init"] for r in mine], ls="--", label=f"{NAMES[cell]}, init", **style
        )
        axes[2].plot(
            layers, [r["grad_first_layer_trained"] for r in mine], label=f"{NAMES[cell]}, trained", **style
        )
    titles = ("test entity F1 (unidirectional)", "training time (s)", "‖∂L/∂W_ih‖ of the first layer")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xlabel("stacked layers")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(sorted({r["layers"] for r in rows}))
        ax.legend(fontsize=7)
    axes[2].set_yscale("log")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return lines


def summary_markdown(summary: dict[str, Any]) -> str:
    results, settings = summary["results"], summary["settings"]
    lines: list[str] = []
    if "length" in results:
        rows = results["length"]
        buckets = list(dict.fromkeys(r["bucket"] for r in rows))
        lines += [f"### Variable length (trained on sentences ≤ {settings['width']} tokens)", ""]
        table = []
        for bucket in buckets:
            entry = {"test length": bucket}
            for r in rows:
                if r["bucket"] == bucket:
                    entry["sentences"] = r["sentences"]
                    entry[MODEL_NAMES[r["model"]]] = r["f1"]
                    if r["model"] == "plain":
                        cut = (r["longer_than_width"], r["tokens_beyond_width"], r["entities_beyond_width"])
                        entry["truncated sentences / tokens / entities"] = " / ".join(map(str, cut))
            table.append(entry)
        lines += [
            *_table(
                table,
                [
                    "test length",
                    "sentences",
                    *MODEL_NAMES.values(),
                    "truncated sentences / tokens / entities",
                ],
            ),
            "",
        ]
    if "cost" in results:
        lines += ["### One-hot input layer vs embedding lookup (forward + backward per batch)", ""]
        table = []
        for vocab in sorted({r["vocab"] for r in results["cost"]}):
            one, emb = (
                next(r for r in results["cost"] if r["vocab"] == vocab and r["layer"] == n)
                for n in ("one-hot", "embedding")
            )
            table.append(
                {
                    "V": vocab,
                    "one-hot ms": round(one["forward_ms"] + one["backward_ms"], 2),
                    "embedding ms": round(emb["forward_ms"] + emb["backward_ms"], 3),
                    "one-hot MB allocated": one["allocated_mb"],
                    "embedding MB allocated": emb["allocated_mb"],
                    "one-hot GFLOPs": round((one["flops_forward"] + one["flops_backward"]) / 1e9, 2),
                    "embedding MFLOPs": round((emb["flops_forward"] + emb["flops_backward"]) / 1e6, 3),
                }
            )
        lines += [*_table(table, list(table[0])), ""]
    if "parameters" in results:
        lines += ["### Parameters vs maximum sentence length (embeddings excluded)", ""]
        lines += [*_table(results["parameters"], list(results["parameters"][0])), ""]
        lines += [f"Built models counted: {results['parameter_check']} (equal to the closed forms).", ""]
        lines += [f"### Position transfer (k = {settings['transfer_k']})", ""]
        lines += [
            *_table(
                results["transfer"],
                ["model", "trained_on", "train_sentences", "test_set", "test_sentences", "test_f1"],
            ),
            "",
        ]
    if "depth" in results:
        lines += [
            "### Depth (unidirectional, hidden "
            f"{settings['depth_hidden']}, {settings['depth_train_rows']} training sentences)",
            "",
        ]
        lines += [
            *_table(
                results["depth"],
                [
                    "cell",
                    "layers",
                    "test_f1",
                    "test_token_acc",
                    "train_seconds",
                    "encoder_parameters",
                    "grad_per_layer_init",
                    "grad_per_layer_trained",
                ],
            ),
            "",
        ]
    lines.append(
        f"Wall time {summary['wall_seconds']:.0f} s ({summary['machine']}); per part: "
        f"{summary['part_seconds']}."
    )
    return "\n".join(lines) + "\n"
