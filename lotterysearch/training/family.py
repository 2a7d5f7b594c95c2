"""Model families: what differs between training MLPs and convnets, in one object per family.

Everything above this module (fitness, the evaluators, IMP's checks) asks a ``ModelFamily`` for what a
network's family decides, and ``family_of`` is the one place that picks the family, from the model spec:

* how many networks to train at once (``networks_per_batch``) and the batch that trains them
  (``batch_class``: ``MLPBatch`` or ``ConvBatch``, which share ``batched.NetworkBatch``);
* the compacted architecture (``narrow``; the compaction itself is ``compaction.py``'s, for any family);
* how one mask is trained (``plan``, a function of the mask and the settings only), and how a mask that is
  not batched is trained alone (``train_alone``).

The fitness plan, the same rules for every family:

* ``batched``: K masks at once in the family's batch, where batching pays (``networks_per_batch`` > 1). A
  mask's numbers do not depend on K or its companions.
* otherwise the mask is trained alone: ``compact`` when its exact compaction does at most ``COMPACT_BELOW``
  of the dense work, with ``csr`` layers where few weights are live (MLPs only: ``batched_mlp.sparse_layers``),
  else ``plain``; ``gradient`` mode (a dense forward pass) is never compacted. The compacted network has the
  same function and gradients as the dense masked one; the sums differ in rounding only.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, check_mode
from lotterysearch.core.models import MLP, ConvLayer, ConvNet, ConvSpec, MLPSpec, parse_spec, prunable_layers
from lotterysearch.errors import ModelError
from lotterysearch.settings import TrainingConfig
from lotterysearch.training.batched import NetworkBatch, train_batch
from lotterysearch.training.batched_conv import ConvBatch
from lotterysearch.training.batched_mlp import MLPBatch, sparse_layers
from lotterysearch.training.compaction import (
    Compaction,
    compact_mask,
    compaction,
    copy_kept,
    expand_into,
    output_positions,
    work,
)
from lotterysearch.training.trainer import TrainResult, train

# Compact a mask when its compacted network does at most this share of the dense network's work: below it
# the smaller matmuls win over the gather of the input columns (benchmarks/fitness.py, LeNet-300-100).
COMPACT_BELOW = 0.75

Trained = tuple[TrainResult, nn.Module | None]  # a result and, when asked for, the trained network


@dataclass(frozen=True)
class FitnessPlan:
    """How one mask is trained: in a batch of networks (``batched``), or alone, compacted and/or with CSR
    layers."""

    batched: bool
    compaction: Compaction | None = None  # None: the full network
    sparse: tuple[bool, ...] | None = None  # per layer of the (compacted) network: CSR

    @property
    def kernel(self) -> str:
        """``batched``, ``plain``, ``compact``, ``csr`` or ``compact+csr``, for reports and benchmarks."""
        if self.batched:
            return "batched"
        name = "compact" if self.compaction is not None else "plain"
        if self.sparse is not None and any(self.sparse):
            return "csr" if self.compaction is None else "compact+csr"
        return name


def _kept(mask: Mask) -> dict[str, int]:
    """Kept weights per layer, counted by numpy (the search's driver counts every class it trains: torch's
    reductions over a boolean tensor took 1-30 ms for LeNet-300-100's first layer on a loaded 2-core
    machine, numpy's ``count_nonzero`` 13 µs)."""
    return {name: int(np.count_nonzero(t.cpu().numpy())) for name, t in mask.items()}


class ModelFamily(ABC):
    """What training needs to know of a family of networks (see the module docstring)."""

    convolutional: bool  # the family's networks have convolutions
    batch_class: type[NetworkBatch]  # trains K networks of the family at once (``MLPBatch``, ``ConvBatch``)
    # a network trained alone: by a batch of one (with CSR layers where ``sparse_layers`` says), or by
    # ``training.train`` where the batch is slower alone
    alone_in_batch: bool
    # K grows until one step of the batch does about ``step_flops`` of arithmetic, at most ``max_networks``;
    # below ``min_networks`` the networks train alone (K = 1)
    step_flops: int
    max_networks: int
    min_networks: int

    def networks_per_batch(self, model: nn.Module, batch_size: int) -> int:
        """How many networks like ``model`` to train at once: a step of a small network costs more in
        per-operation overhead than in arithmetic, and a batch of K pays that overhead once."""
        flops = 6 * batch_size * work(model)  # forward 2, backward 4 per weight and sample
        k = int(min(self.max_networks, self.step_flops // max(1, flops)))
        return k if k >= self.min_networks else 1

    def training_flops(self, mask: Mask, model: nn.Module, batch_size: int) -> int:
        """Floating-point operations of one training step of ``model`` under ``mask``, counted on the kept
        weights: 6 per kept weight use and sample (2 forward, 4 backward: the convention of Kaplan et al.
        2020, §2.1, and of RigL, Evci et al. 2020, App. H). Here each kept weight is used once per sample:
        6 × kept × batch, an MLP's count (fully connected layers); a family whose weights are shared across positions overrides it. Biases
        and the optimizer's update are left out; evaluation forwards are not training and are not counted."""
        return 6 * sum(_kept(mask).values()) * int(batch_size)

    @abstractmethod
    def narrow(self, model: nn.Module, comp: Compaction) -> nn.Module:
        """A new network of ``model``'s kind with the units ``comp`` keeps (its weights not yet set)."""

    def sparse_layers(self, mask: Mask) -> tuple[bool, ...] | None:
        """Which layers of a mask trained alone to keep as CSR matrices (None: none)."""
        return None

    def compact_model(self, model: nn.Module, comp: Compaction) -> nn.Module:
        """The compacted network: ``narrow``'s architecture holding the kept weights and biases of ``model``."""
        return copy_kept(model, self.narrow(model, comp), comp)

    def plan(self, mask: Mask, model: nn.Module, mode: str, batch_size: int) -> FitnessPlan:
        """How to train ``mask`` of ``model``'s architecture: a function of the mask and the settings only,
        never of the other masks evaluated with it (see the module docstring)."""
        check_mode(mode)
        if self.networks_per_batch(model, batch_size) > 1:
            return FitnessPlan(batched=True)
        if mode == "gradient":
            return FitnessPlan(batched=False)
        comp: Compaction | None = compaction(mask)
        if work(model, comp) > COMPACT_BELOW * work(model):
            comp = None
        sparse = self.sparse_layers(mask if comp is None else compact_mask(mask, comp))
        return FitnessPlan(False, comp, sparse)

    def train_alone(
        self,
        mask: Mask,
        plan: FitnessPlan,
        model: nn.Module,
        data: Dataset,
        mode: str,
        seed: int,
        training: TrainingConfig,
        keep: bool = False,
    ) -> Trained:
        """One mask trained alone as ``plan`` says, compacted (reading only the kept inputs) or not;
        ``model``, the init, is left untouched. With ``keep`` also the trained network in ``model``'s shape
        (a copy; pruned-away units keep their init)."""
        comp = plan.compaction
        inputs = None if comp is None or comp.reads_every_input else comp.inputs
        net, m = (
            (model, mask) if comp is None else (self.compact_model(model, comp), compact_mask(mask, comp))
        )
        if self.alone_in_batch:
            pop = self.batch_class([net], [m], mode, sparse=plan.sparse)
            (result,) = train_batch(pop, data, training, seed=seed, inputs=inputs)
            trained = pop.trained_copies([net])[0] if keep else None
        else:
            if inputs is not None:
                raise ModelError(f"{type(self).__name__} trains a network alone on every input feature")
            trained = copy.deepcopy(net)  # ``train`` trains in place
            result = train(trained, m, data, training, mode=mode, seed=seed)
        if not keep or comp is None:
            return result, trained if keep else None
        full = copy.deepcopy(model)
        expand_into(full, trained, comp)
        return result, full

    def train_networks(
        self,
        models: Sequence[nn.Module],
        masks: Sequence[Mask | None],
        data: Dataset,
        training: TrainingConfig,
        *,
        mode: str = "forward",
        seed: int = 0,
        device: torch.device | str | None = None,
        pad_to: int | None = None,
    ) -> list[TrainResult]:
        """Train ``models[j]`` with ``masks[j]`` for every j at once, in place: what ``train`` does one by one."""
        pop = self.batch_class(models, masks, mode, device, pad_to)
        results = train_batch(pop, data, training, seed=seed)
        pop.write_back(models)
        return results


class MLPFamily(ModelFamily):
    """ReLU MLPs: batched by ``MLPBatch``; trained alone by it too (one network, CSR layers where they pay).

    K: measured here (one thread per process, benchmarks/fitness.py), ``mlp:40-100-100-10`` at B = 128
    (1.2e7 flops a step, K = 11) trains 1.5-2× the networks per second of K = 1, saturating from K ≈ 8;
    LeNet-300-100 (2e8 flops, K = 1) gains 10-20% from K = 2-4, within noise.
    """

    convolutional = False
    batch_class = MLPBatch
    alone_in_batch = True
    step_flops = 128_000_000
    max_networks = 16
    min_networks = 1

    def narrow(self, model: nn.Module, comp: Compaction) -> MLP:
        bias = next(iter(prunable_layers(model).values())).bias is not None
        return MLP(comp.widths, bias=bias)

    def sparse_layers(self, mask: Mask) -> tuple[bool, ...] | None:
        sparse = tuple(sparse_layers(mask))
        return sparse if any(sparse) else None


class ConvFamily(ModelFamily):
    """Convnets (2-D and 1-D): batched by ``ConvBatch`` where that pays; trained alone by ``training.train``.

    K: measured on one thread, networks per CPU-second against a loop over ``train`` (40 steps, 10% masks):
    the MNIST-1D CNN (2.4e7 flops a step) 1.05x at K = 1, 1.8x at K = 4, 2.4x at K = 8 (benchmarks/fitness.py:
    no better at 12-16); conv:8x8x1:8-8-M:32-10 (3.5e7) 0.5x, 0.8x, 1.07x; Conv-2 on 8x8 inputs (2e9)
    0.4-0.5x at K = 1-4 (torch's own convolutions win there).
    """

    convolutional = True
    batch_class = ConvBatch
    alone_in_batch = False
    step_flops = 256_000_000
    max_networks = 8
    min_networks = 8

    def training_flops(self, mask: Mask, model: nn.Module, batch_size: int) -> int:
        """6 × batch × Σ over layers of kept weights × output positions: a kept kernel weight is used once
        per output position of its convolution, a fully connected one once (``ModelFamily``)."""
        positions = output_positions(model)
        kept = _kept(mask)
        return 6 * int(batch_size) * sum(kept[name] * positions[name] for name in positions)

    def narrow(self, model: ConvNet, comp: Compaction) -> ConvNet:
        layers = list(prunable_layers(model).values())
        convs = [
            ConvLayer(
                len(comp.kept[i]),
                int(layer.kernel_size[0]),
                int(layer.stride[0]),
                int(layer.padding[0]),
                pool=f"conv{i + 1}" in model.pooled,
            )
            for i, layer in enumerate(layers[: comp.flatten])
        ]
        classifier = [len(k) for k in comp.kept[comp.flatten :]]
        return ConvNet(model.input_shape, convs, classifier, bias=layers[0].bias is not None)


MLP_FAMILY = MLPFamily()
CONV_FAMILY = ConvFamily()
# architecture (a spec's, ``models.parse_spec``, or a built network's class) → its family
FAMILIES: dict[type, ModelFamily] = {
    MLPSpec: MLP_FAMILY,
    MLP: MLP_FAMILY,
    ConvSpec: CONV_FAMILY,
    ConvNet: CONV_FAMILY,
}


def family_of(model: str | nn.Module) -> ModelFamily:
    """The family of a model spec's networks, or of a built network: the one place that tells MLPs from
    convnets. Another ``nn.Module`` is a one-line ``ModelError``."""
    arch = parse_spec(model) if isinstance(model, str) else model
    family = FAMILIES.get(type(arch))
    if family is None:
        raise ModelError(
            f"{type(arch).__name__} has no model family (the built-in MLPs and convnets have one)"
        )
    return family
