"""Greedy decoding and batched beam search over any step function.

The model supplies ``step(tokens (N,), state) -> (logits (N, V), state, attention (N, S))`` and
``reorder(state, index)`` (select rows of every state tensor). Each sentence has its own maximum length
(from its own source length), so a sentence decodes the same alone as in any batch; beam search with one
beam returns exactly what greedy decoding does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any, Tensor]]
ReorderFn = Callable[[Any, Tensor], Any]


@torch.no_grad()
def greedy_search(
    step: StepFn, state: Any, bos: int, eos: int, max_lengths: Sequence[int]
) -> tuple[list[list[int]], list[Tensor]]:
    """The most likely next token at each step, until ``eos`` or the sentence's maximum length.

    Returns the token ids of each sentence (without ``eos``) and its attention ``(len + 1, S)`` (the last
    row is the step that chose ``eos``, or the last step when the length ran out).
    """
    batch = len(max_lengths)
    device = _device_of(state)
    limits = torch.tensor(list(max_lengths), device=device)
    tokens = torch.full((batch,), bos, dtype=torch.long, device=device)
    finished = limits <= 0
    outputs: list[list[int]] = [[] for _ in range(batch)]
    attention: list[list[Tensor]] = [[] for _ in range(batch)]
    for t in range(int(limits.max()) if batch else 0):
        logits, state, weights = step(tokens, state)
        chosen = logits.argmax(dim=-1)
        active = (~finished).tolist()
        for row, token in enumerate(chosen.tolist()):
            if not active[row]:
                continue
            attention[row].append(weights[row])
            if token == eos:
                finished[row] = True
            else:
                outputs[row].append(token)
                if t + 1 >= max_lengths[row]:
                    finished[row] = True
        if bool(finished.all()):
            break
        tokens = chosen
    maps = [torch.stack(a) if a else torch.zeros(0, 0) for a in attention]
    return outputs, maps


@torch.no_grad()
def beam_search(
    step: StepFn,
    reorder: ReorderFn,
    state: Any,
    bos: int,
    eos: int,
    max_lengths: Sequence[int],
    beam_size: int = 5,
    length_penalty: float = 1.0,
) -> tuple[list[list[int]], list[float]]:
    """Beam search for a batch of sentences at once (``B × beam_size`` rows per step).

    A hypothesis ends when it chooses ``eos`` among the ``beam_size`` best candidates of a step, or reaches
    the sentence's maximum length; a sentence is done once it has ``beam_size`` ended hypotheses. The
    answer is the ended hypothesis with the best length-normalised score ``log p / len ** length_penalty``
    (``len`` counts ``eos``; 0 disables normalisation).

    Returns the token ids of each sentence (without ``eos``) and their normalised scores.
    """
    nbest = beam_search_nbest(step, reorder, state, bos, eos, max_lengths, beam_size, length_penalty, 1)
    return [hyps[0][0] if hyps else [] for hyps in nbest], [hyps[0][1] if hyps else 0.0 for hyps in nbest]


@torch.no_grad()
def beam_search_nbest(
    step: StepFn,
    reorder: ReorderFn,
    state: Any,
    bos: int,
    eos: int,
    max_lengths: Sequence[int],
    beam_size: int = 5,
    length_penalty: float = 1.0,
    nbest: int = 1,
) -> list[list[tuple[list[int], float]]]:
    """The ``nbest`` best ended hypotheses of each sentence, best first: ``(token ids, normalised score)``.

    The search is :func:`beam_search`'s (whose answer is the first of these); the score is the one it ranks
    by, ``log p(hypothesis + eos) / len ** length_penalty`` (OpenNMT's ``-n_best``). A hypothesis cut at
    the sentence's maximum length has no ``eos``: its length is its token count. Equal scores keep the
    order in which the hypotheses ended. A sentence may have fewer than ``nbest`` (a tiny vocabulary);
    one whose maximum length is 0 has none.
    """
    if not 1 <= nbest <= beam_size:
        raise ValueError(f"nbest must be between 1 and the beam size {beam_size}, got {nbest}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be positive, got {beam_size}")
    batch, k = len(max_lengths), beam_size
    device = _device_of(state)
    state = reorder(state, torch.arange(batch, device=device).repeat_interleave(k))
    tokens = torch.full((batch * k,), bos, dtype=torch.long, device=device)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    hyps: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(batch)]
    ended: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [limit <= 0 for limit in max_lengths]

    def normalised(score: float, length: int) -> float:
        return score / max(length, 1) ** length_penalty if length_penalty else score

    for t in range(max(max_lengths, default=0)):
        if all(done):
            break
        logits, state, _ = step(tokens, state)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        vocab = log_probs.size(-1)
        candidates = (scores.unsqueeze(-1) + log_probs.view(batch, k, vocab)).view(batch, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=-1)
        top_scores_l, top_index_l = top_scores.tolist(), top_index.tolist()
        origin = torch.arange(batch * k, device=device).tolist()
        next_tokens = [eos] * (batch * k)
        next_scores = [[float("-inf")] * k for _ in range(batch)]
        for b in range(batch):
            if done[b]:
                continue
            alive: list[tuple[float, int, int]] = []
            for rank, (score, index) in enumerate(zip(top_scores_l[b], top_index_l[b], strict=True)):
                beam, token = divmod(index, vocab)
                if score == float("-inf"):
                    break
                if token == eos:
                    if rank < k:
                        prefix = hyps[b][beam]
                        ended[b].append((normalised(score, len(prefix) + 1), prefix))
                    continue
                alive.append((score, beam, token))
                if len(alive) == k:
                    break
            new_hyps = [hyps[b][beam] + [token] for _, beam, token in alive]
            if len(ended[b]) >= k or t + 1 >= max_lengths[b] or not alive:
                if len(ended[b]) < k:
                    for (score, _, _), hyp in zip(alive, new_hyps, strict=True):
                        ended[b].append((normalised(score, len(hyp)), hyp))
                done[b] = True
                continue
            for j, (score, beam, token) in enumerate(alive):
                origin[b * k + j] = b * k + beam
                next_tokens[b * k + j] = token
                next_scores[b][j] = score
            hyps[b] = new_hyps + [[] for _ in range(k - len(new_hyps))]
        state = reorder(state, torch.tensor(origin, device=device))
        tokens = torch.tensor(next_tokens, dtype=torch.long, device=device)
        scores = torch.tensor(next_scores, device=device)
    results = []
    for b in range(batch):  # sorted is stable: of equal scores, the earliest ended comes first
        ranked = sorted(ended[b], key=lambda item: -item[0])[:nbest]
        results.append([(tokens_b, score) for score, tokens_b in ranked])
    return results


def _device_of(state: Any) -> torch.device:
    if isinstance(state, Tensor):
        return state.device
    values = state.values() if isinstance(state, dict) else state
    for value in values:
        if isinstance(value, Tensor):
            return value.device
        if isinstance(value, tuple | list | dict):
            return _device_of(value)
    return torch.device("cpu")
