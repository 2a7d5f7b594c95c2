"""Fitness of a mask: validation accuracy after a short training run, and density.

Fitness is a property of the topology: the masked network is trained from i.i.d. initial
weights drawn from the configured ``init_seeds`` (the same seeds for the whole population: common random
numbers), and the accuracy is the mean over those seeds. Isomorphic masks therefore have the same expected
fitness, which is what makes skipping isomorphs sound.

How a mask is trained is chosen per mask, from the mask alone (``fitness_plan``), never from which other
masks are evaluated with it, so a mask's objectives are the same number whatever batch the scheduler put it
in (the search's resume-to-the-same-result guarantee rests on this):

* ``dense``: batched training (``batched.py``) of the masked network, K masks at once, for
  networks small enough that batching pays (``networks_per_batch`` > 1) and in ``gradient`` mode (a dense
  forward pass). A mask's numbers do not depend on K or on its companions, and equal ``training.train``'s
  under one thread.
* otherwise the mask is trained alone, ``compact`` when its exact compaction (``compaction.py``) does at
  most ``COMPACT_BELOW`` of the dense work, with ``csr`` layers where few weights are live
  (``batched.sparse_layers``). Same function and gradients as the dense masked network; the sums
  differ in rounding only, so the objectives agree with ``dense`` training to float rounding, amplified
  by the training's chaos (a few tenths of a percent of accuracy after 115 steps), as between machines.

``straight_through`` is trained as ``forward``: with a fixed mask both give the kept weights the same
gradients and the pruned ones never reach the forward pass, so the objectives are identical (the pruned
weights' final values, which differ, are not an objective).

Convnets (``conv_fitness_plan``), by the same rules with channels as units:

* ``batched``: batched training (``batched_conv.py``: im2col and batched matmuls), K masks at once, for
  convnets small enough that batching pays (``convnets_per_batch`` > 1). A mask's numbers do not depend on
  K or its companions, and equal ``training.train``'s to float rounding;
* otherwise the mask is trained alone by ``training.train``: ``compact`` when its exact compaction of dead
  channels (``compaction.conv_compaction``) does at most ``COMPACT_BELOW`` of the dense work, else
  ``plain``; ``gradient`` mode (a dense forward pass) is never compacted.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from torch import nn

from lotterysearch.core import canon
from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, check_mode
from lotterysearch.core.models import build_model, is_mlp
from lotterysearch.errors import ConfigError
from lotterysearch.settings import FITNESS_MODES, FitnessConfig, TrainingConfig
from lotterysearch.training.batched import (
    NetworkBatch,
    mlp_widths,
    networks_per_batch,
    sparse_layers,
    train_batch,
)
from lotterysearch.training.batched_conv import ConvBatch, convnets_per_batch, train_conv_batch
from lotterysearch.training.compaction import (
    Compaction,
    ConvCompaction,
    compact_conv_mask,
    compact_convnet,
    compact_mask,
    compact_model,
    compaction,
    conv_compaction,
    conv_work,
    expand_conv_into,
    expand_into,
    work,
)
from lotterysearch.training.trained import pack_weights
from lotterysearch.training.trainer import TrainResult, default_device, train

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


# Compact a mask when its compacted network does at most this share of the dense network's work: below it
# the smaller matmuls win over the gather of the input columns (benchmarks/fitness.py, LeNet-300-100).
COMPACT_BELOW = 0.75


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


@dataclass(frozen=True)
class FitnessPlan:
    """How one mask is trained: in a batch of networks (``batched``), or alone, compacted and/or with CSR layers."""

    batched: bool
    compaction: Compaction | ConvCompaction | None = None  # None: the full network
    sparse: tuple[bool, ...] | None = None  # per layer of the (compacted) network: CSR
    conv: bool = False

    @property
    def kernel(self) -> str:
        """``dense``, ``compact``, ``csr`` or ``compact+csr`` (MLPs), ``batched``, ``compact`` or ``plain``
        (convnets), for reports and benchmarks."""
        if self.conv:
            return "batched" if self.batched else "compact" if self.compaction is not None else "plain"
        if self.batched:
            return "dense"
        name = "compact" if self.compaction is not None else "dense"
        if self.sparse is not None and any(self.sparse):
            return "csr" if self.compaction is None else "compact+csr"
        return name


def fitness_plan(mask: Mask, widths: Sequence[int], mode: str, batch_size: int) -> FitnessPlan:
    """How to train ``mask``: a function of the mask and the config only (see the module docstring)."""
    check_mode(mode)
    if mode == "gradient" or networks_per_batch(widths, batch_size) > 1:
        return FitnessPlan(batched=True)
    comp = compaction(mask)
    if work(comp.widths) > COMPACT_BELOW * work(tuple(widths)):
        comp = None
    sparse = tuple(sparse_layers(mask if comp is None else compact_mask(mask, comp)))
    return FitnessPlan(False, comp, sparse if any(sparse) else None)


def conv_fitness_plan(mask: Mask, model: nn.Module, mode: str, batch_size: int) -> FitnessPlan:
    """How to train the convnet mask ``mask`` of ``model``'s architecture (see the module docstring)."""
    check_mode(mode)
    if convnets_per_batch(model, batch_size) > 1:
        return FitnessPlan(batched=True, conv=True)
    if mode == "gradient":
        return FitnessPlan(batched=False, conv=True)
    comp = conv_compaction(mask)
    if conv_work(model, comp) > COMPACT_BELOW * conv_work(model):
        comp = None
    return FitnessPlan(False, comp, conv=True)


def masks_per_call(model_spec: str, batch_size: int) -> int:
    """How many masks one evaluator call trains together: the batched kernel's K (1: one at a time)."""
    model = build_model(model_spec, 0)
    if is_mlp(model_spec):
        return networks_per_batch(mlp_widths(model)[0], batch_size)
    return convnets_per_batch(model, batch_size)


def fitness_kernel(mask: Mask, widths: Sequence[int], mode: str, batch_size: int) -> str:
    """The name of ``fitness_plan``'s kernel for ``mask``."""
    return fitness_plan(mask, widths, mode, batch_size).kernel


Trained = tuple[TrainResult, nn.Module | None]  # a result and, when asked for, the trained network


def _train_alone(
    mask: Mask,
    plan: FitnessPlan,
    model: nn.Module,
    data: Dataset,
    mode: str,
    seed: int,
    training: TrainingConfig,
    keep: bool = False,
) -> Trained:
    """One mask trained alone as ``plan`` says: compacted (reading only the kept input columns) or not;
    with ``keep`` also the trained network in ``model``'s shape (a copy; pruned-away units keep their init)."""
    comp = plan.compaction
    if comp is None:
        pop = NetworkBatch([model], [mask], mode, sparse=plan.sparse)
        (result,) = train_batch(pop, data, training, seed=seed)
        return result, _written_back(pop, [model])[0] if keep else None
    small = compact_model(model, comp)
    pop = NetworkBatch([small], [compact_mask(mask, comp)], mode, sparse=plan.sparse)
    inputs = None if len(comp.inputs) == data.input_dim else comp.inputs
    (result,) = train_batch(pop, data, training, seed=seed, inputs=inputs)
    if not keep:
        return result, None
    full = copy.deepcopy(model)
    expand_into(full, _written_back(pop, [small])[0], comp)
    return result, full


def _written_back(pop: NetworkBatch | ConvBatch, models: Sequence[nn.Module]) -> list[nn.Module]:
    """Copies of ``models`` holding ``pop``'s trained parameters."""
    copies = [copy.deepcopy(m) for m in models]
    pop.write_back(copies)
    return copies


def _paired(
    results: list[TrainResult], pop: NetworkBatch | ConvBatch, model: nn.Module, keep: bool
) -> list[Trained]:
    """Each network's result of a batch of copies of ``model``, with its trained network when ``keep``."""
    nets = _written_back(pop, [model] * len(results)) if keep else [None] * len(results)
    return list(zip(results, nets, strict=True))


def evaluate_masks(
    masks: Sequence[Mask], model_spec: str, data: Dataset, cfg: FitnessConfig, mode: str = "forward"
) -> list[Objectives]:
    """``evaluate_mask`` of every mask, the batched ones ``networks_per_batch`` at a time.

    The result for each mask is the same number, bit for bit under one torch thread, as ``evaluate_mask`` of
    that mask alone. With ``cfg.keep_weights`` each result also carries the network trained from the first
    init seed (``Objectives.weights``), for the magnitude mutation.
    """
    if not masks:
        return []
    check_mode(mode)
    mode = "forward" if mode == "straight_through" else mode
    training = cfg.training()
    if not is_mlp(model_spec):
        return _evaluate_convnets(masks, model_spec, data, cfg, mode)
    widths, _ = mlp_widths(build_model(model_spec, 0))
    plans = [fitness_plan(m, widths, mode, cfg.batch_size) for m in masks]
    k_max = networks_per_batch(widths, cfg.batch_size)
    pad_to = k_max if default_device().type == "cuda" else None  # see ``NetworkBatch``: fixed K on CUDA

    def together(model: nn.Module, chunk: list[Mask], seed: int, keep: bool) -> list[Trained]:
        pop = NetworkBatch([model] * len(chunk), chunk, mode, pad_to=pad_to)
        results = train_batch(pop, data, training, seed=seed)
        return _paired(results, pop, model, keep)

    def alone(mask: Mask, plan: FitnessPlan, model: nn.Module, seed: int, keep: bool) -> Trained:
        return _train_alone(mask, plan, model, data, mode, seed, training, keep)

    return _train_by_plan(masks, plans, k_max, model_spec, cfg, together, alone)


def _train_convnet_alone(
    mask: Mask,
    plan: FitnessPlan,
    model: nn.Module,
    data: Dataset,
    mode: str,
    seed: int,
    training: TrainingConfig,
    keep: bool = False,
) -> Trained:
    """One convnet mask trained alone by ``train`` as ``plan`` says, compacted or not (``model``: the init,
    left untouched); with ``keep`` also the trained network in ``model``'s shape."""
    comp = plan.compaction  # ``train`` trains in place: a copy of the init, or the compacted one
    if comp is None:
        net, m = copy.deepcopy(model), mask
    else:
        net, m = compact_convnet(model, comp), compact_conv_mask(mask, comp)
    result = train(net, m, data, training, mode=mode, seed=seed)
    if not keep or comp is None:
        return result, net if keep else None
    full = copy.deepcopy(model)
    expand_conv_into(full, net, comp)
    return result, full


def _evaluate_convnets(
    masks: Sequence[Mask], model_spec: str, data: Dataset, cfg: FitnessConfig, mode: str
) -> list[Objectives]:
    """``evaluate_masks`` for a convnet: batches of up to ``convnets_per_batch`` networks, or each mask alone
    (compacted where that pays), as ``conv_fitness_plan`` says."""
    training = cfg.training()
    template = build_model(model_spec, 0)
    plans = [conv_fitness_plan(m, template, mode, cfg.batch_size) for m in masks]
    k_max = convnets_per_batch(template, cfg.batch_size)
    pad_to = k_max if default_device().type == "cuda" else None  # see ``NetworkBatch``: fixed K on CUDA

    def together(model: nn.Module, chunk: list[Mask], seed: int, keep: bool) -> list[Trained]:
        pop = ConvBatch([model] * len(chunk), chunk, mode, pad_to=pad_to)
        results = train_conv_batch(pop, data, training, seed=seed)
        return _paired(results, pop, model, keep)

    def alone(mask: Mask, plan: FitnessPlan, model: nn.Module, seed: int, keep: bool) -> Trained:
        return _train_convnet_alone(mask, plan, model, data, mode, seed, training, keep)

    return _train_by_plan(masks, plans, k_max, model_spec, cfg, together, alone)


def _train_by_plan(
    masks: Sequence[Mask],
    plans: Sequence[FitnessPlan],
    k_max: int,
    model_spec: str,
    cfg: FitnessConfig,
    together: Callable[[nn.Module, list[Mask], int, bool], list[Trained]],
    alone: Callable[[Mask, FitnessPlan, nn.Module, int, bool], Trained],
) -> list[Objectives]:
    """From every init seed: the masks whose plan batches them trained ``k_max`` at a time (``together``),
    the others one by one (``alone``); the objectives averaged over the seeds, with ``cfg.keep_weights``
    the networks trained from the first seed packed (``trained.pack_weights``)."""
    accs: list[list[float]] = [[] for _ in masks]
    losses: list[list[float]] = [[] for _ in masks]
    weights: list[bytes | None] = [None] * len(masks)
    batched = [j for j, p in enumerate(plans) if p.batched]
    for s, seed in enumerate(cfg.init_seeds):
        keep = cfg.keep_weights and s == 0
        model = build_model(model_spec, seed)
        results: dict[int, Trained] = {}
        for start in range(0, len(batched), k_max):
            chunk = batched[start : start + k_max]
            results.update(zip(chunk, together(model, [masks[j] for j in chunk], seed, keep), strict=True))
        for j, plan in enumerate(plans):
            if not plan.batched:
                results[j] = alone(masks[j], plan, model, seed, keep)
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
