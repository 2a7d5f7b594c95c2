"""Fitness of a mask: validation accuracy after a short training run, and density.

Fitness is a property of the topology: the masked network is trained from i.i.d. initial
weights drawn from the configured ``init_seeds`` (the same seeds for the whole population: common random
numbers), and the accuracy is the mean over those seeds. Isomorphic masks therefore have the same expected
fitness, which is what makes skipping isomorphs sound.

How a mask is trained is chosen per mask, from the mask alone (the model family's ``plan``, ``family.py``),
never from which other masks are evaluated with it, so a mask's objectives are the same number whatever
batch the scheduler put it in (the search's resume-to-the-same-result guarantee rests on this): K masks at
once in the family's batch where batching pays, else each alone, compacted where that pays.

``straight_through`` is trained as ``forward``: with a fixed mask both give the kept weights the same
gradients and the pruned ones never reach the forward pass, so the objectives are identical (the pruned
weights' final values, which differ, are not an objective).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lotterysearch.core import canon
from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, check_mode
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError
from lotterysearch.settings import FITNESS_MODES, FitnessConfig
from lotterysearch.training.batched import train_batch
from lotterysearch.training.family import Trained, family_of
from lotterysearch.training.trained import pack_weights
from lotterysearch.training.trainer import default_device

TICKET_KEY_VERSION = "mask-v1"


def fitness_key(mask: Mask, mode: str = "topology") -> str:
    """What a mask's fitness is a property of, as a key: masks with equal keys get one training.

    *Topology* (default): the mask is trained from i.i.d. initial weights drawn from the shared init seeds,
    so isomorphic masks (hidden units relabelled) have the same expected fitness and share their class key
    (``canon.class_key``). *Ticket*: the mask is trained from one fixed init θ₀, as IMP does; a mask permuted
    over hidden neurons keeps other initial values of θ₀ and is another network, so the key is the mask
    itself (sha256 of its packed bits) and only an exact repeat is not trained again.
    """
    if mode == "topology":
        return canon.class_key(mask)
    if mode == "ticket":
        return f"{TICKET_KEY_VERSION}:" + hashlib.sha256(mask.pack()).hexdigest()[:32]
    raise ConfigError(f"unknown fitness mode '{mode}' (known: {', '.join(FITNESS_MODES)})")


def key_version(mode: str) -> str:
    """The version stored with a class: a resume trusts stored keys only of the same version."""
    return canon.VERSION if mode == "topology" else TICKET_KEY_VERSION


@dataclass(frozen=True)
class Objectives:
    """What one evaluation returns: plain numbers only, so it crosses Ray without DEAP's classes."""

    accuracy: float  # mean validation accuracy over init seeds (maximised)
    density: float  # direct density kept/total (minimised)
    effective_density: float
    loss: float
    steps: int  # training steps spent, summed over init seeds
    # ``trained.pack_weights`` of the network trained from the first init seed, when asked for (the magnitude
    # mutation's input); not an objective
    weights: bytes | None = None

    def as_dict(self) -> dict[str, float | bytes | None]:
        return asdict(self)


def batch_seed(init_seed: int, batch_order: int) -> int:
    """The seed of the minibatch order of a training from ``init_seed``: the init seed itself at order 0 (so
    every stored result keeps its meaning), else a seed drawn from both by numpy's ``SeedSequence``, which
    keeps the orders of different (seed, order) pairs independent."""
    if batch_order == 0:
        return init_seed
    return int(np.random.SeedSequence([init_seed, batch_order]).generate_state(1, np.uint64)[0] >> 1)


def masks_per_call(model_spec: str, batch_size: int) -> int:
    """How many masks one evaluator call trains together: the family's K (1: one at a time)."""
    return family_of(model_spec).networks_per_batch(build_model(model_spec, 0), batch_size)


def evaluate_masks(
    masks: Sequence[Mask], model_spec: str, data: Dataset, cfg: FitnessConfig, mode: str = "forward"
) -> list[Objectives]:
    """``evaluate_mask`` of every mask: from every init seed, the masks whose plan batches them trained the
    family's K at a time, the others one by one; the objectives averaged over the seeds.

    The result for each mask is the same number, bit for bit under one torch thread, as ``evaluate_mask`` of
    that mask alone. With ``cfg.keep_weights`` each result also carries the network trained from the first
    init seed (``Objectives.weights``, ``trained.pack_weights``), for the magnitude mutation.
    """
    if not masks:
        return []
    check_mode(mode)
    mode = "forward" if mode == "straight_through" else mode
    training = cfg.training()
    family = family_of(model_spec)
    template = build_model(model_spec, 0)
    plans = [family.plan(m, template, mode, cfg.batch_size) for m in masks]
    k_max = family.networks_per_batch(template, cfg.batch_size)
    pad_to = k_max if default_device().type == "cuda" else None  # see ``NetworkBatch``: fixed K on CUDA
    accs: list[list[float]] = [[] for _ in masks]
    losses: list[list[float]] = [[] for _ in masks]
    weights: list[bytes | None] = [None] * len(masks)
    batched = [j for j, p in enumerate(plans) if p.batched]
    for s, seed in enumerate(cfg.init_seeds):
        keep = cfg.keep_weights and s == 0
        model = build_model(model_spec, seed)
        order = batch_seed(seed, cfg.batch_order)
        results: dict[int, Trained] = {}
        for start in range(0, len(batched), k_max):
            chunk = batched[start : start + k_max]
            pop = family.batch_class([model] * len(chunk), [masks[j] for j in chunk], mode, pad_to=pad_to)
            trained = train_batch(pop, data, training, seed=order)
            nets = pop.trained_copies([model] * len(chunk)) if keep else [None] * len(chunk)
            results.update(zip(chunk, zip(trained, nets, strict=True), strict=True))
        for j, plan in enumerate(plans):
            if not plan.batched:
                results[j] = family.train_alone(masks[j], plan, model, data, mode, order, training, keep)
        for j, (r, net) in results.items():
            accs[j].append(r.val_accuracy)
            losses[j].append(r.val_loss)
            if net is not None:
                weights[j] = pack_weights(net, masks[j])
    return _objectives(masks, accs, losses, cfg, weights)


def _objectives(
    masks: Sequence[Mask],
    accs: list[list[float]],
    losses: list[list[float]],
    cfg: FitnessConfig,
    weights: Sequence[bytes | None],
) -> list[Objectives]:
    """Each mask's objectives from its results over the init seeds."""
    return [
        Objectives(
            accuracy=sum(a) / len(a),
            density=m.density(),
            effective_density=m.effective_density(),
            loss=sum(lo) / len(lo),
            steps=cfg.steps * len(cfg.init_seeds),
            weights=w,
        )
        for m, a, lo, w in zip(masks, accs, losses, weights, strict=True)
    ]


def evaluate_mask(
    mask: Mask, model_spec: str, data: Dataset, cfg: FitnessConfig, mode: str = "forward"
) -> Objectives:
    """Train ``mask`` from each init seed and average the validation accuracy (Objective 1)."""
    (objectives,) = evaluate_masks([mask], model_spec, data, cfg, mode)
    return objectives
