"""Figures for runs: sent to W&B when it is the logger, else saved as PNG beside the run's logs."""

from __future__ import annotations

import functools
import os
from typing import Any


def log_figure(module: Any, key: str, figure: Any) -> None:
    """Log a matplotlib figure from a LightningModule under ``key`` (rank 0 only), then close it."""
    import matplotlib.pyplot as plt

    try:
        trainer = module.trainer
        if trainer.global_rank != 0:
            return
        logged = False
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                import wandb

                logger.experiment.log({key: wandb.Image(figure), "trainer/global_step": trainer.global_step})
                logged = True
        # not trainer.log_dir: under DDP it is a collective (a broadcast from rank 0), and only rank 0 is
        # here, so it would wait forever for the other ranks
        log_dir = _local_log_dir(trainer)
        if not logged and log_dir:
            folder = os.path.join(log_dir, "figures")
            os.makedirs(folder, exist_ok=True)
            name = f"{key.replace('/', '_')}_epoch{trainer.current_epoch:03d}.png"
            figure.savefig(os.path.join(folder, name), dpi=100)
    finally:
        plt.close(figure)


def _local_log_dir(trainer: Any) -> str | None:
    """``trainer.log_dir`` as rank 0 sees it, without its broadcast."""
    if not trainer.loggers:
        return trainer.default_root_dir
    logger = trainer.loggers[0]
    return getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)


# ---- labels in scripts the plotting font may lack ------------------------------------------------------
_VOWEL_LATIN = ["a", "ā", "i", "ī", "u", "ū", "r̥", "e", "ai", "o", "au", "ô"]
_VOWELS = dict(zip("अआइईउऊऋएऐओऔऑ", _VOWEL_LATIN, strict=True))
_SIGNS = dict(zip("ािीुूृेैोौॉ", _VOWEL_LATIN[1:], strict=True))
_CONSONANT_LATIN = [
    "k", "kh", "g", "gh", "ṅ", "c", "ch", "j", "jh", "ñ", "ṭ", "ṭh", "ḍ", "ḍh", "ṇ", "t", "th",
    "d", "dh", "n", "p", "ph", "b", "bh", "m", "y", "r", "l", "v", "ś", "ṣ", "s", "h",
]  # fmt: skip
_CONSONANTS = dict(zip("कखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह", _CONSONANT_LATIN, strict=True))
_NUKTA_FORMS = {"क": "q", "ख": "k͟h", "ग": "ġ", "ज": "z", "ड": "ṛ", "ढ": "ṛh", "फ": "f", "य": "ẏ"}
# the precomposed nukta letters U+0958–U+095F, as consonant + nukta
_PRECOMPOSED = {chr(0x958 + i): base + "\u093c" for i, base in enumerate("कखगजडढफय")}
_OTHERS = {"ं": "ṁ", "ँ": "m̐", "ः": "ḥ", "।": ".", "॥": "..", "ॐ": "oṁ"}
_OTHERS.update({chr(0x966 + d): str(d) for d in range(10)})  # Devanagari digits
_NUKTA, _VIRAMA = "़", "्"


def transliterate_devanagari(text: str) -> str:
    """Devanagari → Latin (ISO 15919, simplified): for figure labels when no font has the glyphs.

    Consonants carry the inherent ``a`` unless a vowel sign or the virama follows; other characters pass
    through unchanged.
    """
    for composed, decomposed in _PRECOMPOSED.items():
        text = text.replace(composed, decomposed)
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _CONSONANTS:
            base = _CONSONANTS[char]
            if i + 1 < len(text) and text[i + 1] == _NUKTA:
                base = _NUKTA_FORMS.get(char, base)
                i += 1
            following = text[i + 1] if i + 1 < len(text) else ""
            if following in _SIGNS:
                out.append(base + _SIGNS[following])
                i += 1
            elif following == _VIRAMA:
                out.append(base)
                i += 1
            else:
                out.append(base + "a")
        elif char in _VOWELS:
            out.append(_VOWELS[char])
        elif char in _OTHERS:
            out.append(_OTHERS[char])
        elif char != _NUKTA:
            out.append(char)
        i += 1
    return "".join(out)


def font_has(char: str) -> bool:
    """Whether matplotlib's font for text (with its fallbacks) draws ``char``; cached per character."""
    return _font_coverage(char)


@functools.lru_cache(maxsize=64)
def _font_coverage(char: str) -> bool:
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager, rcParams

    for family in rcParams["font.sans-serif"] if rcParams["font.family"] == ["sans-serif"] else []:
        try:
            path = font_manager.findfont(family, fallback_to_default=False)
        except ValueError:
            continue
        try:
            cmap = TTFont(path, fontNumber=0, lazy=True).getBestCmap() or {}
        except Exception:  # an unreadable font file: it draws nothing for us
            continue
        if ord(char) in cmap:
            return True
    return False


def plot_label(text: str) -> str:
    """``text`` as a figure label: Devanagari transliterated when the plotting fonts lack it."""
    if any("\u0900" <= c <= "\u097f" for c in text) and not font_has("क"):
        return transliterate_devanagari(text)
    return text


def f1_per_type_figure(values: dict[str, Any]) -> Any:
    """Bars of the span F1 per entity type, the micro F1 as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [name.split("/", 1)[1] for name in values if name.startswith("f1/")]
    scores = [float(values[f"f1/{kind}"]) for kind in types]
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(types), 3.0))
    bars = ax.bar(types, scores, color="tab:blue")
    ax.bar_label(bars, fmt="%.1f")
    ax.axhline(float(values["f1"]), color="tab:red", linestyle="--", label=f"all: {float(values['f1']):.1f}")
    ax.set_ylim(0, 105)
    ax.set_ylabel("span F1")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
