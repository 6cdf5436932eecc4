"""Contextual string embeddings (Akbik et al. 2018, "Contextual String Embeddings for Sequence Labeling").

A sentence's tokens, joined by single spaces, are read character by character by a forward character
language model; the reversed string is read by a backward one (a
:class:`~seqtasks.networks.language_model.LanguageModelNetwork` trained on reversed text:
``recipes/lm-news-char-backward.yaml``). A token's embedding is the forward LM's top-layer output right
after the token's last character, concatenated with the backward LM's output right after the token's first
character (in the reversed reading, the last of the token's characters it sees). Each LM reads ``<eos>``
first, as in training, where a text follows the previous text's end.

A batch's character streams are right-padded and each LM runs once per batch: the LMs are unidirectional,
so padding after a row's last character changes none of its outputs.

Frozen (``fine_tune`` false): the LMs take no gradient, stay in evaluation mode and run without autograd;
each sentence's embeddings are computed once and cached (CPU tensors, keyed by the token tuple). The cache
is cleared whenever the LMs' weights change (a fingerprint of their parameters' storage and in-place
version counters: an optimizer step, ``load_state_dict``, ``.to()``). Fine-tuned: no cache, gradients flow
into the LMs.

The LMs come from two ``LanguageModel`` checkpoints (``forward_lm``, ``backward_lm``) or, as a tagger's
checkpoint records them, from their architecture and codec (``forward_network`` / ``forward_codec``,
...): their weights are then the enclosing model's, so a tagger checkpoint loads with no LM file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from seqtasks.networks.language_model import LanguageModelNetwork, embedding_dropout, locked_dropout

DIRECTIONS = ("forward", "backward")
_PAD, _UNK, _EOS = "<pad>", "<unk>", "<eos>"  # the language model vocabulary's specials


def _load_language_model(path: str) -> tuple[LanguageModelNetwork, dict[str, Any], dict[str, Any] | None]:
    """The network, codec state and network setting (``class_path`` / ``init_args``) of an LM checkpoint."""
    from seqtasks.checkpoints import load_trained

    trained = load_trained(path)
    if not trained.task_name.endswith("LanguageModel") or "codec" not in trained.artefacts:
        raise ValueError(f"{path}: not a LanguageModel checkpoint (it holds a {trained.task_name})")
    spec = trained.hparams.get("network")
    return trained.network, dict(trained.artefacts["codec"]), spec if isinstance(spec, dict) else None


class ContextualStringEmbeddings(nn.Module):
    """Per-token embeddings of sentences from a forward and a backward character language model.

    Args:
        forward_lm: checkpoint of the forward character ``LanguageModel`` (read only when
            ``forward_network`` is None).
        backward_lm: checkpoint of the backward one, trained with ``reverse: true`` (read only when
            ``backward_network`` is None).
        fine_tune: train the LMs with the tagger (no cache); false freezes them and caches each sentence.
        forward_network: the forward LM's architecture (its checkpoint's ``network`` setting), built with its
            vocabulary size; its weights come from the enclosing model's state dict. A tagger's checkpoint
            records it (and the codec) so that it loads without the LM checkpoint.
        forward_codec: the forward LM's codec (``level``, ``lowercase``, ``vocabulary``), with
            ``forward_network``.
        backward_network: as ``forward_network``, for the backward LM.
        backward_codec: as ``forward_codec``, for the backward LM (``reverse`` true).
    """

    def __init__(
        self,
        forward_lm: str | None = None,
        backward_lm: str | None = None,
        fine_tune: bool = False,
        forward_network: Callable[[int], LanguageModelNetwork] | None = None,
        forward_codec: dict[str, Any] | None = None,
        backward_network: Callable[[int], LanguageModelNetwork] | None = None,
        backward_codec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.fine_tune = fine_tune
        given = {
            "forward": (forward_lm, forward_network, forward_codec),
            "backward": (backward_lm, backward_network, backward_codec),
        }
        networks: dict[str, nn.Module] = {}
        self.codecs: dict[str, dict[str, Any]] = {}
        self._specs: dict[str, dict[str, Any] | None] = {}
        for direction, (path, network, codec) in given.items():
            if network is not None:
                if codec is None:
                    raise ValueError(f"{direction}_network needs {direction}_codec (the LM's vocabulary)")
                networks[direction] = network(len(codec["vocabulary"]))
                self._specs[direction] = None  # already recorded by whoever gave it
            elif path is not None:
                networks[direction], codec, self._specs[direction] = _load_language_model(path)
            else:
                raise ValueError(f"give {direction}_lm (a LanguageModel checkpoint) or {direction}_network")
            self._check_codec(direction, codec, path)
            self.codecs[direction] = {
                "level": codec["level"],
                "lowercase": bool(codec["lowercase"]),
                "vocabulary": list(codec["vocabulary"]),
                **({"reverse": True} if codec.get("reverse") else {}),
            }
        self.lms = nn.ModuleDict({f"{d}_lm": network for d, network in networks.items()})
        self._index = {d: {s: i for i, s in enumerate(c["vocabulary"])} for d, c in self.codecs.items()}
        self.output_size = sum(self.lm(d).encoder.output_size for d in DIRECTIONS)
        self._cache: dict[tuple[str, ...], Tensor] = {}
        self._fingerprint: tuple[Any, ...] | None = None
        if not fine_tune:
            for parameter in self.lms.parameters():
                parameter.requires_grad_(False)
            self.lms.eval()

    def lm(self, direction: str) -> LanguageModelNetwork:
        """The ``forward`` or ``backward`` language model."""
        return self.lms[f"{direction}_lm"]

    @staticmethod
    def _check_codec(direction: str, codec: dict[str, Any], path: str | None) -> None:
        where = f"{direction} language model" + (f" ({path})" if path else "")
        if codec.get("level") != "char":
            raise ValueError(
                f"{where}: contextual string embeddings need a char-level LM, got {codec.get('level')}"
            )
        reverse = bool(codec.get("reverse", False))
        if reverse != (direction == "backward"):
            needed = "reversed text (reverse: true)" if direction == "backward" else "text in reading order"
            raise ValueError(f"{where}: the {direction} LM must be trained on {needed}")
        missing = [s for s in (_PAD, _UNK, _EOS) if s not in codec.get("vocabulary", [])]
        if missing:
            raise ValueError(f"{where}: its vocabulary lacks {missing}")

    @classmethod
    def from_checkpoints(
        cls, forward_lm: str, backward_lm: str, fine_tune: bool = False
    ) -> ContextualStringEmbeddings:
        """Build from a forward and a backward ``LanguageModel`` checkpoint."""
        return cls(forward_lm=forward_lm, backward_lm=backward_lm, fine_tune=fine_tune)

    def portable_settings(self) -> dict[str, Any]:
        """The settings that rebuild these LMs without their checkpoint files (``{direction}_network`` and
        ``{direction}_codec``), for the directions read from a checkpoint here; empty when there are none."""
        settings: dict[str, Any] = {}
        for direction in DIRECTIONS:
            spec = self._specs[direction]
            if spec is not None:
                settings[f"{direction}_network"] = spec
                settings[f"{direction}_codec"] = self.codecs[direction]
        return settings

    def train(self, mode: bool = True) -> ContextualStringEmbeddings:
        super().train(mode)
        if not self.fine_tune:
            self.lms.eval()  # frozen: no dropout, ever
        return self

    # ---- characters and positions ------------------------------------------------------------------
    def encode(self, tokens: Sequence[str], direction: str) -> tuple[list[int], list[int]]:
        """The LM's input ids (``<eos>``, then the characters) and each token's position among them."""
        codec, index = self.codecs[direction], self._index[direction]
        words = [t.lower() for t in tokens] if codec["lowercase"] else list(tokens)
        starts, ends, position = [], [], 0
        for number, word in enumerate(words):
            position += 1 if number else 0
            starts.append(position)
            position += len(word)
            ends.append(position)
        text = " ".join(words)
        unk = index[_UNK]
        if direction == "forward":
            characters, positions = text, ends  # <eos> at 0: the last character of a token is at its end
        else:
            characters, positions = text[::-1], [len(text) - s for s in starts]
        return [index[_EOS], *(index.get(c, unk) for c in characters)], positions

    def hidden(self, direction: str, ids: Tensor) -> Tensor:
        """The LM's top-layer outputs ``(B, L, H)`` of right-padded ids ``(B, L)``."""
        lm = self.lm(direction)
        embedded = embedding_dropout(lm.embedding, ids, lm.embedding_dropout, lm.training)
        embedded = locked_dropout(embedded, lm.input_dropout, lm.training)
        return lm.encoder(embedded).outputs

    def embed(self, sentences: Sequence[Sequence[str]]) -> list[Tensor]:
        """Each sentence's ``(tokens, output_size)`` embeddings, both LMs run once over the batch."""
        device = next(self.lms.parameters()).device
        parts = []
        for direction in DIRECTIONS:
            encoded = [self.encode(tokens, direction) for tokens in sentences]
            pad = self._index[direction][_PAD]
            ids = pad_sequence(
                [torch.tensor(i, dtype=torch.long) for i, _ in encoded], batch_first=True, padding_value=pad
            ).to(device)
            outputs = self.hidden(direction, ids)
            rows = torch.tensor([r for r, (_, p) in enumerate(encoded) for _ in p], device=device)
            columns = torch.tensor([c for _, p in encoded for c in p], dtype=torch.long, device=device)
            parts.append(outputs[rows, columns])
        lengths = [len(tokens) for tokens in sentences]
        return list(torch.cat(parts, dim=-1).split(lengths))

    # ---- the cache -----------------------------------------------------------------------------------
    def weights_fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever any LM parameter is replaced, moved or modified in place."""
        return tuple((p.data_ptr(), p._version, p.dtype) for p in self.lms.parameters())

    def _cached(self, sentences: Sequence[Sequence[str]]) -> list[Tensor]:
        fingerprint = self.weights_fingerprint()
        if fingerprint != self._fingerprint:
            self._cache.clear()
            self._fingerprint = fingerprint
        keys = [tuple(tokens) for tokens in sentences]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            with torch.no_grad():
                for key, rows in zip(missing, self.embed(missing), strict=True):
                    self._cache[key] = rows.cpu()
        return [self._cache[k] for k in keys]

    def clear_cache(self) -> None:
        self._cache.clear()

    @property
    def cache_size(self) -> int:
        """Sentences in the cache."""
        return len(self._cache)

    def forward(self, sentences: Sequence[Sequence[str]], length: int | None = None) -> Tensor:
        """Embeddings ``(B, T, output_size)`` of a batch of token lists, zeros after each sentence's end.

        Args:
            sentences: the raw tokens of each sentence.
            length: ``T`` (at least the longest sentence); None: the longest sentence's length.
        """
        rows = self.embed(sentences) if self.fine_tune else self._cached(sentences)
        device = next(self.lms.parameters()).device
        longest = max((len(r) for r in rows), default=0)
        total = longest if length is None else length
        if total < longest:
            raise ValueError(f"length {total} is shorter than the longest sentence ({longest} tokens)")
        out = pad_sequence(rows, batch_first=True) if rows else torch.zeros(0, 0, self.output_size)
        out = out.to(device)
        if out.size(1) < total:
            out = nn.functional.pad(out, (0, 0, 0, total - out.size(1)))
        return out


__all__ = ["ContextualStringEmbeddings"]
