"""Early-Bird stopping (You et al. 2020): stop a training once the mask its magnitudes imply stops changing.

You et al. find that the magnitude mask a network would be pruned to settles early in training, long
before its accuracy does: the "early-bird ticket". A search that only needs a child's mask from its training
(its magnitudes choose what its children prune) need not train it further than that. At every check
(``EarlyBird.every`` steps) the mask each network would get is computed (``magnitude_mask``: ``strength``
of each layer's kept weights pruned by |w|, the output layer at half, as the magnitude mutations prune), and
compared with the previous check's by the normalized Hamming distance (``mask_distance``); a network stops
once that distance has stayed below ε for ``window`` consecutive checks. The distance is normalized by the
kept weights of the network's own mask, the only positions that can differ, so ε means the same share at
every density (You et al. normalize by all weights of a dense network, where the two agree).

The fitness of a stopped network is measured where it stopped, and the steps it trained are what the
compute ledger counts. ε = 0 never stops (a distance is never below 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lotterysearch.settings import FitnessConfig


@dataclass(frozen=True)
class EarlyBird:
    """When to check (every ``every`` steps), the strength of the mask compared, ε and the window."""

    every: int
    epsilon: float
    window: int
    strength: float

    @classmethod
    def of(cls, cfg: FitnessConfig) -> EarlyBird | None:
        """The rule a fitness config sets (None: ``early_bird_every`` = 0, off)."""
        if not cfg.early_bird_every:
            return None
        return cls(
            cfg.early_bird_every, cfg.early_bird_epsilon, cfg.early_bird_window, cfg.early_bird_strength
        )


def magnitude_mask(
    weights: Sequence[torch.Tensor], kept: Sequence[torch.Tensor], strength: float
) -> torch.Tensor:
    """The mask pruning round(strength · kept) of each layer's kept weights with the smallest |w| (the output
    layer at strength/2) would leave, as one flat bool vector over the kept positions, layer by layer. Ties
    go to the lower index, as ``operators.magnitude_prune_mutation`` breaks them."""
    out = []
    last = len(weights) - 1
    for i, (w, m) in enumerate(zip(weights, kept, strict=True)):
        values = w.detach().reshape(-1)[m.reshape(-1)].abs()
        share = strength / 2 if i == last else strength
        drop = min(int(share * values.numel() + 0.5), max(values.numel() - 1, 0))
        keep = torch.ones(values.numel(), dtype=torch.bool, device=values.device)
        keep[torch.argsort(values, stable=True)[:drop]] = False
        out.append(keep)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def mask_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normalized Hamming distance of two masks over the same positions: the share that differs."""
    return float((a != b).float().mean()) if a.numel() else 0.0


class EarlyBirdWatch:
    """One network's checks: ``stop(mask)`` after each, True once the distance between consecutive masks has
    been below ε at ``window`` checks in a row."""

    def __init__(self, rule: EarlyBird) -> None:
        self.rule = rule
        self.previous: torch.Tensor | None = None
        self.below = 0

    def stop(self, mask: torch.Tensor) -> bool:
        if self.previous is not None:
            close = mask_distance(mask, self.previous) < self.rule.epsilon
            self.below = self.below + 1 if close else 0
        self.previous = mask
        return self.below >= self.rule.window
