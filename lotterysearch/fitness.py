"""Fitness of a mask: validation accuracy after a short training run, and density.

Fitness is a property of the topology (DESIGN.md): the masked network is trained from i.i.d. initial
weights drawn from the configured ``init_seeds`` (the same seeds for the whole population: common random
numbers), and the accuracy is the mean over those seeds. Isomorphic masks therefore have the same expected
fitness, which is what makes skipping isomorphs sound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lotterysearch.data import Dataset
from lotterysearch.masks import Mask
from lotterysearch.models import build_model
from lotterysearch.training import train


@dataclass(frozen=True)
class FitnessConfig:
    """The short training run that scores a mask (defaults: ~5 epochs of Adam at lr 1e-2 on MNIST-1D)."""

    steps: int = 115
    optimizer: str = "adam"
    lr: float = 1e-2
    batch_size: int = 128
    init_seeds: tuple[int, ...] = (0,)
    mode: str = "forward"


@dataclass(frozen=True)
class Objectives:
    """What one evaluation returns: plain numbers only, so it crosses Ray without DEAP's classes."""

    accuracy: float  # mean validation accuracy over init seeds (maximised)
    density: float  # direct density kept/total (minimised)
    effective_density: float
    loss: float
    steps: int  # training steps spent, summed over init seeds

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def evaluate_mask(mask: Mask, model_spec: str, data: Dataset, cfg: FitnessConfig) -> Objectives:
    """Train ``mask`` from each init seed and average the validation accuracy (Objective 1)."""
    accs, losses = [], []
    for seed in cfg.init_seeds:
        model = build_model(model_spec, seed)
        r = train(
            model,
            mask,
            data,
            steps=cfg.steps,
            mode=cfg.mode,
            optimizer=cfg.optimizer,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            seed=seed,
        )
        accs.append(r.val_accuracy)
        losses.append(r.val_loss)
    return Objectives(
        accuracy=sum(accs) / len(accs),
        density=mask.density(),
        effective_density=mask.effective_density(),
        loss=sum(losses) / len(losses),
        steps=cfg.steps * len(cfg.init_seeds),
    )
