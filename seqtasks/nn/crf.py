"""A linear-chain conditional random field over per-token scores, batched and vectorised.

``log p(y | x) = score(x, y) − log Z(x)`` with ``score = start[y_1] + Σ_t emit[t, y_t] + Σ_t trans[y_{t−1},
y_t] + end[y_T]``. The forward algorithm (log Z) and Viterbi run one vectorised step per position over the
whole batch, ``(B, K, K)`` at a time; a row's padded positions leave its state untouched, so results do not
depend on how much padding a batch carries (tested against brute-force enumeration of every tag path).
:meth:`CRF.marginals` runs the forward–backward algorithm for per-token tag probabilities (confidences).

With ``constrain_bio`` and tag names, transitions that no IOB2 sequence contains (``O → I-X``,
``B-X → I-Y``, start → ``I-X``: :func:`seqtasks.tags.iob2_transitions`) get a large negative score, so
training never spends mass on them and decoding never produces them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seqtasks.tags import iob2_transitions

FORBIDDEN = -10_000.0
"""Score of a forbidden transition: large enough to never win, finite so that gradients stay finite."""


def bio_allowed(labels: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Allowed ``(from, to)`` transitions and allowed first tags of IOB2 sequences over ``labels``."""
    allowed, start = iob2_transitions(labels)
    return torch.tensor(allowed, dtype=torch.bool), torch.tensor(start, dtype=torch.bool)


class CRF(nn.Module):
    """Linear-chain CRF with start and end transitions.

    Args:
        num_tags: number of tags ``K``.
        labels: tag names in tag order; needed for ``constrain_bio``.
        constrain_bio: forbid transitions that IOB2 never contains (needs ``labels``).
    """

    def __init__(
        self, num_tags: int, labels: Sequence[str] | None = None, constrain_bio: bool = False
    ) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be positive, got {num_tags}")
        if labels is not None and len(labels) != num_tags:
            raise ValueError(f"labels has {len(labels)} names but num_tags is {num_tags}")
        if constrain_bio and labels is None:
            raise ValueError("constrain_bio needs the tag names (labels)")
        self.num_tags = num_tags
        self.constrain_bio = constrain_bio
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        if constrain_bio:
            allowed, start_allowed = bio_allowed(list(labels or []))
        else:
            allowed = torch.ones(num_tags, num_tags, dtype=torch.bool)
            start_allowed = torch.ones(num_tags, dtype=torch.bool)
        # buffers, not parameters: rebuilt from the labels, so they stay out of the state dict
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("start_allowed", start_allowed, persistent=False)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, constrain_bio={self.constrain_bio}"

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        transitions = self.transitions.masked_fill(~self.allowed, FORBIDDEN)
        start = self.start.masked_fill(~self.start_allowed, FORBIDDEN)
        return transitions, start, self.end

    @staticmethod
    def _check(emissions: Tensor, mask: Tensor | None) -> Tensor:
        if emissions.dim() != 3:
            raise ValueError(f"emissions must be (batch, time, num_tags), got {tuple(emissions.shape)}")
        if mask is None:
            return torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"mask {tuple(mask.shape)} does not match emissions {tuple(emissions.shape)}")
        return mask.bool()

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """``log Z`` per row, ``(B,)``; rows of length 0 give 0."""
        mask = self._check(emissions, mask)
        transitions, start, end = self._scores()
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.size(1)):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], step, alpha)
        log_z = torch.logsumexp(alpha + end, dim=1)
        return log_z.masked_fill(~mask[:, 0], 0.0)

    def marginals(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Posterior probability of each tag at each position, ``(B, T, K)``: ``p(y_t = k | x)``.

        The forward–backward algorithm in log space: ``alpha_t`` (the forward recursion of
        :meth:`log_partition`, kept at every position) and ``beta_t`` (the same recursion run backwards
        from the end scores) give ``log p(y_t = k) = alpha_t[k] + beta_t[k] − log Z``. The transition and
        start constraints apply as in training and decoding (a forbidden tag gets ~0). Real positions sum
        to 1 over tags; padded positions (and rows of length 0) hold 0. ``mask`` must be a prefix mask
        (each row's real positions first), as collated batches are.
        """
        mask = self._check(emissions, mask)
        transitions, start, end = self._scores()
        time = emissions.size(1)
        alpha = start + emissions[:, 0]  # (B, K)
        alphas = [alpha]
        for t in range(1, time):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], step, alpha)
            alphas.append(alpha)
        log_z = torch.logsumexp(alpha + end, dim=1, keepdim=True)  # (B, 1)
        beta = end.expand_as(alpha)  # beta of each row's last real position; padding carries it back
        betas = [beta]
        for t in range(time - 1, 0, -1):
            step = torch.logsumexp(transitions + (emissions[:, t] + beta).unsqueeze(1), dim=2)
            beta = torch.where(mask[:, t : t + 1], step, beta)
            betas.append(beta)
        betas.reverse()
        log_p = torch.stack(alphas, dim=1) + torch.stack(betas, dim=1) - log_z.unsqueeze(1)
        return log_p.exp().masked_fill(~mask.unsqueeze(2), 0.0)

    def path_score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Unnormalised score of the given tag paths, ``(B,)``."""
        mask = self._check(emissions, mask)
        transitions, start, end = self._scores()
        tags = tags.masked_fill(~mask, 0)
        maskf = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        score = (emitted * maskf).sum(dim=1) + start[tags[:, 0]] * maskf[:, 0]
        if tags.size(1) > 1:
            moves = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
            score = score + (moves * maskf[:, 1:]).sum(dim=1)
        last = (mask.long().sum(dim=1) - 1).clamp(min=0)
        last_tags = tags.gather(1, last.unsqueeze(1)).squeeze(1)
        return score + end[last_tags] * maskf[:, 0]

    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "mean"
    ) -> Tensor:
        """Negative log-likelihood of ``tags``: ``mean`` over rows, ``sum``, ``token_mean`` or ``none``."""
        mask = self._check(emissions, mask)
        nll = self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        if reduction == "token_mean":
            return nll.sum() / mask.sum().clamp(min=1)
        raise ValueError(f"reduction must be none, sum, mean or token_mean, got {reduction!r}")

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Viterbi: the best tag path per row, ``(B, T)`` long; padded positions hold 0."""
        mask = self._check(emissions, mask)
        transitions, start, end = self._scores()
        batch, time, size = emissions.shape
        score = start + emissions[:, 0]
        identity = torch.arange(size, device=emissions.device).expand(batch, size)
        backpointers = []
        for t in range(1, time):
            best, index = (score.unsqueeze(2) + transitions).max(dim=1)  # over the previous tag
            real = mask[:, t : t + 1]
            score = torch.where(real, best + emissions[:, t], score)
            backpointers.append(torch.where(real, index, identity))  # padding: keep the tag
        tag = (score + end).argmax(dim=1)
        path = [tag]
        for pointers in reversed(backpointers):
            tag = pointers.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        path.reverse()
        return torch.stack(path, dim=1).masked_fill(~mask, 0)
