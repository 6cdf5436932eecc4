"""Attention maps as figures: which source subwords each output subword attended to."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from seqtasks.plots import plot_label


def attention_figure(weights: Tensor, source: list[str], target: list[str]) -> Any:
    """A heat map of ``weights`` ``(len(target), len(source))``, labelled by subwords.

    Labels in a script no installed font draws (Devanagari) are transliterated, and the axis says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source_labels, target_labels = [plot_label(t) for t in source], [plot_label(t) for t in target]
    fig, ax = plt.subplots(figsize=(1.5 + 0.4 * len(source), 1.2 + 0.35 * len(target)))
    ax.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source)), source_labels, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target_labels)
    ax.set_xlabel("source" + (" (transliterated)" if source_labels != list(source) else ""))
    ax.set_ylabel("output" + (" (transliterated)" if target_labels != list(target) else ""))
    with warnings.catch_warnings():  # glyphs of other scripts may still be missing
        warnings.simplefilter("ignore")
        fig.tight_layout()
    return fig
