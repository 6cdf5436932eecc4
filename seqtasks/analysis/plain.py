"""Why not a plain network? The feed-forward taggers of ``seqtasks lab`` and the experiments they run on NER.

A feed-forward network (the lecture's "ANN") maps a fixed-size input to a fixed-size output. For tagging it
comes in two forms, both here as plain ``nn.Module`` with the recurrent tagger's interface
(``forward(words, chars, casing, lengths) -> (B, T, tags)``):

* :class:`PaddedWidthTagger`: the whole sentence, padded to ``width`` tokens, flattened into one input
  vector; one output block per position. A longer sentence does not fit: it is **truncated** to its first
  ``width`` tokens and every later token is tagged ``O`` (counted in the results). Nothing is shared across
  positions: the weights that read and tag position 3 are not those of position 23.
* :class:`WindowTagger`: the same small network slid over every position, reading ``2·window + 1``
  tokens. It takes any length, but only because it shares its weights across positions (it is a
  convolution), and it sees no further than its window.

The recurrent tagger is the project's :class:`~seqtasks.networks.tagger.TaggerNetwork` (word + casing
features, a BiLSTM, a softmax head). All three read the same features: a lower-cased word embedding (the
vocabulary of the training split, through :class:`~seqtasks.data.tagging_codec.TaggingCodec`) and a casing
embedding. They are trained by one plain loop (:func:`train_tagger`) and scored by entity F1 as the project
scores NER (:func:`seqtasks.metrics.span_scores`, conlleval's span reading).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqtasks.data.tagging_codec import TaggingCodec, normalise_word
from seqtasks.data.text import PAD, UNK
from seqtasks.encoders.rnn import FusedRecurrentEncoder
from seqtasks.metrics import span_scores
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.nn.chars import CASINGS

Sentence = tuple[list[str], list[str]]


# ---- data -----------------------------------------------------------------------------------------------
def conll_dir() -> Path:
    """``SEQTASKS_DATA_DIR/conll2003``: the real CoNLL-2003 splits (Parquet, IOB2 tag strings)."""
    root = os.environ.get("SEQTASKS_DATA_DIR")
    if not root:
        raise FileNotFoundError("seqtasks lab needs SEQTASKS_DATA_DIR (with conll2003/*.parquet) set")
    path = Path(root) / "conll2003"
    if not (path / "train.parquet").exists():
        raise FileNotFoundError(f"no CoNLL-2003 split files in {path} (train.parquet, test.parquet)")
    return path


def read_split(folder: Path, split: str) -> list[Sentence]:
    """``(tokens, tags)`` of every non-empty sentence of one split."""
    import pyarrow.parquet as pq

    rows = pq.read_table(folder / f"{split}.parquet", columns=["tokens", "ner_tags"]).to_pylist()
    return [(list(r["tokens"]), [str(t) for t in r["ner_tags"]]) for r in rows if r["tokens"]]


def build_codec(sentences: Sequence[Sentence]) -> TaggingCodec:
    """Lower-cased word vocabulary of the training sentences (every word), most frequent first."""
    counts: dict[str, int] = {}
    for tokens, _ in sentences:
        for token in tokens:
            word = normalise_word(token, True)
            counts[word] = counts.get(word, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return TaggingCodec([PAD, UNK, *words], [PAD, UNK], lowercase=True)


def tag_set(sentences: Sequence[Sentence]) -> list[str]:
    return ["O", *sorted({t for _, tags in sentences for t in tags} - {"O"})]


@dataclass
class Encoded:
    """A split as tensors-to-be: word ids, casing ids and tag ids per sentence."""

    words: list[list[int]]
    casing: list[list[int]]
    tags: list[list[int]]

    def __len__(self) -> int:
        return len(self.words)


def encode(sentences: Sequence[Sentence], codec: TaggingCodec, labels: Sequence[str]) -> Encoded:
    index = {t: i for i, t in enumerate(labels)}
    out = Encoded([], [], [])
    for tokens, tags in sentences:
        row = codec.encode(tokens)
        out.words.append(row["words"])
        out.casing.append(row["casing"])
        out.tags.append([index[t] for t in tags])
    return out


def batch(data: Encoded, rows: Sequence[int], width: int | None = None) -> dict[str, Tensor]:
    """Padded ``words``, ``casing``, ``tags`` ``(B, T)`` and ``lengths``; ``T`` is ``width`` when given
    (longer rows cut to it), else the longest row."""
    lengths = [len(data.words[i]) if width is None else min(width, len(data.words[i])) for i in rows]
    time_steps = width or max(lengths)
    out = {}
    for name in ("words", "casing", "tags"):
        tensor = torch.zeros(len(rows), time_steps, dtype=torch.long)
        for b, (i, n) in enumerate(zip(rows, lengths, strict=True)):
            tensor[b, :n] = torch.tensor(getattr(data, name)[i][:n])
        out[name] = tensor
    out["lengths"] = torch.tensor(lengths)
    out["chars"] = torch.zeros(len(rows), time_steps, 1, dtype=torch.long)
    return out


# ---- the feed-forward taggers --------------------------------------------------------------------------
class TokenFeatures(nn.Module):
    """Word embedding ⊕ casing embedding per token: the inputs all three taggers read."""

    def __init__(self, vocab_size: int, word_dim: int, casing_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.casing = nn.Embedding(len(CASINGS), casing_dim, padding_idx=0)
        self.output_size = word_dim + casing_dim

    def forward(self, words: Tensor, casing: Tensor) -> Tensor:
        return torch.cat([self.embedding(words), self.casing(casing)], dim=-1)


class PaddedWidthTagger(nn.Module):
    """The plain network: ``width`` tokens' features flattened → hidden → ``width`` × tags.

    Args:
        vocab_size: word vocabulary size.
        num_tags: tags per position.
        width: the fixed input (and output) size in tokens; longer inputs are truncated to it.
        word_dim: word embedding width.
        casing_dim: casing embedding width.
        hidden: hidden units.
        dropout: dropout on the features and the hidden layer.
    """

    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        width: int,
        word_dim: int = 50,
        casing_dim: int = 8,
        hidden: int = 256,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.width, self.num_tags = width, num_tags
        self.features = TokenFeatures(vocab_size, word_dim, casing_dim)
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(width * self.features.output_size, hidden)
        self.out = nn.Linear(hidden, width * num_tags)

    def forward(self, words: Tensor, chars: Tensor, casing: Tensor, lengths: Tensor) -> Tensor:
        batch_size, time_steps = words.shape
        if time_steps > self.width:
            raise ValueError(f"a plain network reads at most {self.width} tokens, got {time_steps}")
        pad = self.width - time_steps
        words, casing = (nn.functional.pad(x, (0, pad)) for x in (words, casing))
        x = self.dropout(self.features(words, casing)).flatten(1)
        h = self.dropout(torch.relu(self.hidden(x)))
        return self.out(h).view(batch_size, self.width, self.num_tags)[:, :time_steps]


class WindowTagger(nn.Module):
    """One small network slid over the sentence: each token is tagged from ``2·window + 1`` tokens.

    Args: as :class:`PaddedWidthTagger`, with ``window`` (tokens each side) in place of ``width``.
    """

    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        window: int = 2,
        word_dim: int = 50,
        casing_dim: int = 8,
        hidden: int = 256,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.window = window
        self.features = TokenFeatures(vocab_size, word_dim, casing_dim)
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear((2 * window + 1) * self.features.output_size, hidden)
        self.out = nn.Linear(hidden, num_tags)

    def forward(self, words: Tensor, chars: Tensor, casing: Tensor, lengths: Tensor) -> Tensor:
        x = self.dropout(self.features(words, casing))  # (B, T, D)
        k = self.window
        x = nn.functional.pad(x, (0, 0, k, k))  # zeros beyond both ends
        windows = x.unfold(1, 2 * k + 1, 1)  # (B, T, D, 2k+1)
        windows = windows.transpose(2, 3).flatten(2)  # (B, T, (2k+1)·D), tokens in order
        return self.out(self.dropout(torch.relu(self.hidden(windows))))


def recurrent_tagger(
    vocab_size: int,
    labels: Sequence[str],
    cell: str = "lstm",
    hidden: int = 64,
    num_layers: int = 1,
    bidirectional: bool = True,
    word_dim: int = 50,
    casing_dim: int = 8,
    dropout: float = 0.3,
) -> TaggerNetwork:
    """The project's tagger network on the same features: no characters, no CRF (a per-token softmax)."""
    return TaggerNetwork(
        vocab_size=vocab_size,
        char_vocab_size=2,
        labels=list(labels),
        pad_index=0,
        encoder=partial(
            FusedRecurrentEncoder,
            hidden_size=hidden,
            cell=cell,
            num_layers=num_layers,
            bidirectional=bidirectional,
        ),
        word_dim=word_dim,
        char_dim=0,
        casing_dim=casing_dim,
        word_dropout=0.0,
        dropout=dropout,
        crf=False,
    )


# ---- parameter counts in closed form -------------------------------------------------------------------
def trainable(module: nn.Module, skip: Sequence[str] = ()) -> int:
    """Parameters of ``module`` outside the submodules named in ``skip`` (e.g. the shared embeddings)."""
    return sum(
        p.numel() for name, p in module.named_parameters() if not any(name.startswith(s) for s in skip)
    )


def padded_width_parameters(width: int, inputs: int, hidden: int, tags: int) -> int:
    """``T·D·H + H + H·T·K + T·K``: grows linearly with the width ``T`` (no sharing across positions).
    With one-hot inputs, ``D`` is the vocabulary size ``V``."""
    return width * inputs * hidden + hidden + hidden * width * tags + width * tags


def window_parameters(window: int, inputs: int, hidden: int, tags: int) -> int:
    """``(2w+1)·D·H + H + H·K + K``: independent of sentence length."""
    return (2 * window + 1) * inputs * hidden + hidden + hidden * tags + tags


def recurrent_parameters(
    cell: str, inputs: int, hidden: int, tags: int, num_layers: int = 1, bidirectional: bool = False
) -> int:
    """torch's RNN/GRU/LSTM (gates g = 1, 3, 4; two bias vectors) + the linear head; independent of length.

    Layer 1 has ``g·(D·H + H·H + 2H)`` per direction; each later layer reads ``dirs·H`` inputs.
    """
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    directions = 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        width = inputs if layer == 0 else directions * hidden
        total += directions * gates * (width * hidden + hidden * hidden + 2 * hidden)
    return total + directions * hidden * tags + tags


# ---- training and scoring ------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-3
    word_dropout: float = 0.05
    seed: int = 0
    max_rows: int | None = None


def token_loss(scores: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
    mask = torch.arange(scores.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    loss = nn.functional.cross_entropy(scores.transpose(1, 2), tags, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def train_tagger(
    network: nn.Module,
    data: Encoded,
    settings: TrainSettings,
    width: int | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> dict[str, float]:
    """A plain AdamW loop over shuffled batches; unknown-word dropout on the inputs. Returns the time."""
    rng = random.Random(settings.seed)
    rows = list(range(len(data)))[: settings.max_rows]
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=0.0)
    network.train()
    steps, start = 0, time.perf_counter()
    for _ in range(settings.epochs):
        rng.shuffle(rows)
        for i in range(0, len(rows), settings.batch_size):
            b = batch(data, rows[i : i + settings.batch_size], width)
            words = b["words"]
            if settings.word_dropout > 0:
                drop = (torch.rand(words.shape) < settings.word_dropout) & (words > 0)
                words = words.masked_fill(drop, 1)
            scores = network(words, b["chars"], b["casing"], b["lengths"])
            loss = token_loss(scores, b["tags"], b["lengths"])
            optimizer.zero_grad()
            loss.backward()
            if on_step is not None:
                on_step(network, steps)
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimizer.step()
            steps += 1
    network.eval()
    return {"seconds": time.perf_counter() - start, "steps": steps}


@torch.no_grad()
def predict(
    network: nn.Module, data: Encoded, width: int | None = None, batch_size: int = 64
) -> list[list[int]]:
    """Tag ids of every sentence, full length; a ``width``-limited network tags its first ``width`` tokens
    and every later token ``O`` (id 0): the truncation a plain network must make."""
    network.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.words[i]))
    out: list[list[int]] = [[] for _ in range(len(data))]
    for i in range(0, len(order), batch_size):
        rows = order[i : i + batch_size]
        b = batch(data, rows, None)
        if width is not None and b["words"].size(1) > width:
            b = batch(data, rows, width)
        scores = network(b["words"], b["chars"], b["casing"], b["lengths"])
        paths = scores.argmax(-1)
        for row, (j, n) in enumerate(zip(rows, b["lengths"].tolist(), strict=True)):
            full = len(data.words[j])
            out[j] = paths[row, :n].tolist() + [0] * (full - n)
    return out


def entity_f1(
    predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], labels: Sequence[str]
) -> float:
    if not gold:
        return math.nan
    return span_scores(predicted, gold, labels)["f1"]


def bucket_name(length: int, edges: Sequence[int]) -> str:
    low = 1
    for edge in edges:
        if length <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}+"


def length_buckets(width: int) -> list[int]:
    """Bucket upper edges: thirds of the width up to it, then ``width + width/3`` and ``2·width``."""
    step = max(1, width // 3)
    edges = list(range(step, width + 1, step))
    if edges[-1] != width:
        edges.append(width)
    return [*edges, width + step, 2 * width]


def score_by_length(
    predicted: Sequence[Sequence[int]],
    data: Encoded,
    labels: Sequence[str],
    width: int,
) -> list[dict[str, Any]]:
    """Entity F1 per test-length bucket (and ``all``), with the sentences, tokens and gold entities beyond
    ``width`` — those a plain network of that width truncates."""
    from seqtasks.tags import spans

    edges = length_buckets(width)
    groups: dict[str, list[int]] = {}
    for i, words in enumerate(data.words):
        groups.setdefault(bucket_name(len(words), edges), []).append(i)
    order = [bucket_name(e, edges) for e in edges] + [bucket_name(2 * width + 1, edges)]
    rows = []
    for name in [*[n for n in order if n in groups], "all"]:
        members = groups[name] if name != "all" else list(range(len(data)))
        gold = [[labels[t] for t in data.tags[i]] for i in members]
        pred = [[labels[t] for t in predicted[i]] for i in members]
        beyond_entities = sum(1 for tags in gold for _, start, _ in spans(tags) if start >= width)
        rows.append(
            {
                "bucket": name,
                "sentences": len(members),
                "entities": sum(len(spans(tags)) for tags in gold),
                "f1": round(entity_f1(pred, gold, labels), 2),
                "longer_than_width": sum(1 for i in members if len(data.words[i]) > width),
                "tokens_beyond_width": sum(max(0, len(data.words[i]) - width) for i in members),
                "entities_beyond_width": beyond_entities,
            }
        )
    return rows


# ---- position transfer ---------------------------------------------------------------------------------
def entity_positions(tags: Sequence[str]) -> list[int]:
    return [i for i, t in enumerate(tags) if t != "O"]


def split_by_position(sentences: Sequence[Sentence], k: int) -> tuple[list[Sentence], list[Sentence]]:
    """Sentences whose entity tokens all lie in the first ``k`` positions (entity-free ones included), and
    sentences with entities whose entity tokens all lie at position ``k`` or later."""
    early, late = [], []
    for sentence in sentences:
        positions = entity_positions(sentence[1])
        if all(p < k for p in positions):
            early.append(sentence)
        elif min(positions) >= k:
            late.append(sentence)
    return early, late
