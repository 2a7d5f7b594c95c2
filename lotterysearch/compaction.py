"""Exact compaction: the smaller dense network that a masked MLP trains exactly like.

At low density most of a masked layer's matmul multiplies zeros. Where the forward pass is masked
(``forward`` and ``straight_through`` modes), a hidden neuron with no live path to the output contributes
nothing to the loss: its output meets only pruned weights. Dropping such neurons (and the input features
that feed none of the kept neurons) shrinks every matrix without changing the function or the gradients of
the weights that remain, so training the compacted network gives the same losses and accuracies as training
the dense masked one, up to float rounding (the sums have fewer zero terms, in another order).

Dropping neurons with no *incoming* live weight is not exact with biases: such a neuron still outputs
relu(b_j), a learnable constant that reaches the output through its live outgoing weights. These neurons are
kept (as rows of zeros plus their bias); only in a bias-free network, where they output relu(0) = 0, are
they dropped too. This is why the compaction is not the effective subnetwork (``Mask.effective``).

``gradient`` mode trains with a dense forward pass (pruned weights still act), so it is never compacted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lotterysearch.masks import Mask, check_chain
from lotterysearch.models import MLP, prunable_layers


@dataclass(frozen=True)
class Compaction:
    """Which input features and hidden neurons of each layer the compacted network keeps (sorted indices)."""

    inputs: torch.Tensor  # int64 indices of the input features read
    hidden: tuple[torch.Tensor, ...]  # per hidden layer, int64 indices of the neurons kept
    outputs: int  # output width (all outputs are kept)

    @property
    def widths(self) -> tuple[int, ...]:
        return (len(self.inputs), *(len(h) for h in self.hidden), self.outputs)

    def rows_and_columns(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the (rows, columns) of the full ``[out, in]`` weight that the compacted one keeps."""
        sides = [self.inputs, *self.hidden, torch.arange(self.outputs)]
        return list(zip(sides[1:], sides[:-1], strict=True))


def compaction(mask: Mask, bias: bool = True) -> Compaction:
    """Keep a neuron iff some live path leads from it to an output (and, without biases, some live path
    leads to it from an input): one boolean sweep from the outputs back, one from the inputs forward."""
    check_chain(mask)
    ms = [t.numpy() for _, t in mask.items()]
    to_output = [np.ones(ms[-1].shape[0], dtype=bool)]
    for m in reversed(ms):
        to_output.append((m & to_output[-1][:, None]).any(axis=0))
    to_output.reverse()  # to_output[l]: neurons of layer l (0 = inputs) with a live path to an output
    keep = [k.copy() for k in to_output]
    if not bias:
        from_input = [np.ones(ms[0].shape[1], dtype=bool)]
        for m in ms:
            from_input.append((m & from_input[-1][None, :]).any(axis=1))
        keep = [a & b for a, b in zip(to_output, from_input, strict=True)]
    for k in keep:  # a layer left empty keeps one neuron: keeping more than needed is always exact
        if not k.any():
            k[0] = True

    def idx(b: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.flatnonzero(b).astype(np.int64))

    return Compaction(idx(keep[0]), tuple(idx(k) for k in keep[1:-1]), int(ms[-1].shape[0]))


def compact_mask(mask: Mask, comp: Compaction) -> Mask:
    return Mask(
        {
            name: mask[name][rows][:, cols]
            for name, (rows, cols) in zip(mask.names, comp.rows_and_columns(), strict=True)
        }
    )


def compact_model(model: nn.Module, comp: Compaction) -> MLP:
    """A new MLP of ``comp.widths`` holding the kept weights and biases of ``model``."""
    layers = list(prunable_layers(model).values())
    bias = layers[0].bias is not None
    small = MLP(comp.widths, bias=bias)
    with torch.no_grad():
        for layer, new, (rows, cols) in zip(
            layers, prunable_layers(small).values(), comp.rows_and_columns(), strict=True
        ):
            new.weight.copy_(layer.weight[rows][:, cols])
            if bias:
                new.bias.copy_(layer.bias[rows])
    return small


def expand_into(model: nn.Module, small: nn.Module, comp: Compaction) -> None:
    """Write the compacted network's weights back into their places in ``model`` (the rest is left alone)."""
    with torch.no_grad():
        for layer, new, (rows, cols) in zip(
            prunable_layers(model).values(),
            prunable_layers(small).values(),
            comp.rows_and_columns(),
            strict=True,
        ):
            layer.weight[rows[:, None], cols[None, :]] = new.weight
            if layer.bias is not None:
                layer.bias[rows] = new.bias


def work(widths: tuple[int, ...]) -> int:
    """Multiply-adds of one sample through an MLP of ``widths`` (Σ in·out): a step's cost is proportional."""
    return sum(a * b for a, b in zip(widths, widths[1:], strict=False))
