"""Exact compaction: the smaller dense network that a masked network trains exactly like.

At low density most of a masked layer's matmul multiplies zeros. Where the forward pass is masked
(``forward`` and ``straight_through`` modes), a hidden unit with no live path to the output contributes
nothing to the loss: its output meets only pruned weights. Dropping such units (and the input features
that feed none of the kept units) shrinks every matrix without changing the function or the gradients of
the weights that remain, so training the compacted network gives the same losses and accuracies as training
the dense masked one, up to float rounding (the sums have fewer zero terms, in another order).

The units are an MLP's neurons and a convnet's channels, linked where a kernel keeps any entry
(``masks.unit_links``). The reasoning holds channel by channel: ReLU and max-pooling act on each channel
alone, so a channel whose every outgoing kernel (or, at the flatten, its whole block of fully connected
inputs [c·HW, (c+1)·HW)) is pruned or leads to a dropped unit contributes nothing and is dropped, with its
block. A convnet's input channels are all kept (keeping more is always exact): it reads whole images.

Dropping units with no *incoming* live weight is not exact with biases: such a unit still outputs relu(b_j)
(a constant map for a channel: padding touches only the input), a learnable constant that reaches the
output through its live outgoing weights. These units are kept (as rows of zeros plus their bias); only in a
bias-free network, where they output relu(0) = 0, are they dropped too. This is why the compaction is not
the effective subnetwork (``Mask.effective``).

``gradient`` mode trains with a dense forward pass (pruned weights still act), so it is never compacted.
Building the compacted architecture is the model family's (``family.py``); the rest is here, for any family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lotterysearch.core.masks import Mask, unit_links
from lotterysearch.core.models import input_shape, prunable_layers
from lotterysearch.errors import ModelError


@dataclass(frozen=True)
class Compaction:
    """Which units the compacted network keeps (sorted int64 indices): ``inputs`` the input units it reads
    (an MLP's features; a convnet's channels, all kept), ``kept[l]`` the output units of layer l (neurons or
    channels; the last layer's are the classes, all kept). ``flatten``: the first fully connected layer after
    convolutions, which reads ``block`` (H·W) inputs per channel."""

    inputs: torch.Tensor
    kept: tuple[torch.Tensor, ...]
    input_units: int  # input units of the full network
    flatten: int | None = None
    block: int = 1

    @property
    def widths(self) -> tuple[int, ...]:
        """Units at each layer boundary, from the inputs to the outputs."""
        return (len(self.inputs), *(len(k) for k in self.kept))

    @property
    def reads_every_input(self) -> bool:
        return len(self.inputs) == self.input_units

    def rows_and_columns(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the (rows, columns) of the full ``[out, in, ...]`` weight that the compacted one keeps;
        at the flatten the columns are the kept channels' blocks of fully connected inputs."""
        sides = [self.inputs, *self.kept]
        pairs = list(zip(sides[1:], sides[:-1], strict=True))
        if self.flatten is not None:
            rows, channels = pairs[self.flatten]
            blocks = channels[:, None] * self.block + torch.arange(self.block)[None, :]
            pairs[self.flatten] = (rows, blocks.reshape(-1))
        return pairs


def compaction(mask: Mask, bias: bool = True) -> Compaction:
    """Keep a unit iff some live path leads from it to an output (and, without biases, some live path leads
    to it from an input): one boolean sweep over ``unit_links`` from the outputs back, one from the inputs
    forward, channel blocks at the flatten."""
    links = unit_links(mask)
    convolutions = sum(1 for shape in mask.shapes.values() if len(shape) > 2)
    if convolutions == len(links):
        raise ModelError("compaction needs fully connected layers after the convolutions")
    flatten = convolutions or None
    block = links[convolutions].shape[1] // links[convolutions - 1].shape[0] if convolutions else 1

    def per_unit(reach: np.ndarray, layer: int) -> np.ndarray:
        """Inputs of ``layer`` reached, as units of the layer before (channels at the flatten)."""
        return reach.reshape(-1, block).any(axis=1) if layer == flatten else reach

    to_output = [np.ones(links[-1].shape[0], dtype=bool)]
    for layer in range(len(links) - 1, -1, -1):
        to_output.insert(0, per_unit((links[layer] & to_output[0][:, None]).any(axis=0), layer))
    keep = (
        to_output  # keep[0]: input units, keep[l + 1]: output units of layer l, with a live path to an output
    )
    if not bias:
        from_input = [np.ones(links[0].shape[1], dtype=bool)]
        for layer in range(len(links)):
            fed = np.repeat(from_input[-1], block) if layer == flatten else from_input[-1]
            from_input.append((links[layer] & fed[None, :]).any(axis=1))
        keep = [a & b for a, b in zip(to_output, from_input, strict=True)]
    keep[-1] = np.ones(links[-1].shape[0], dtype=bool)  # every class is an output
    if convolutions:
        keep[0] = np.ones(links[0].shape[1], dtype=bool)
    for k in keep:  # a layer left empty keeps one unit: keeping more than needed is always exact
        if not k.any():
            k[0] = True
    kept = [torch.from_numpy(np.flatnonzero(k).astype(np.int64)) for k in keep]
    return Compaction(kept[0], tuple(kept[1:]), int(links[0].shape[1]), flatten, int(block))


def compact_mask(mask: Mask, comp: Compaction) -> Mask:
    """The mask of the compacted network: ``mask``'s entries at the kept rows and columns."""
    pairs = comp.rows_and_columns()
    return Mask(
        {name: mask[name][rows][:, cols] for name, (rows, cols) in zip(mask.names, pairs, strict=True)}
    )


def _kept_layers(
    model: nn.Module, small: nn.Module, comp: Compaction
) -> list[tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]]:
    """Per prunable layer: the full layer, its compacted copy, and the rows and columns it keeps."""
    return [
        (layer, new, rows, cols)
        for layer, new, (rows, cols) in zip(
            prunable_layers(model).values(),
            prunable_layers(small).values(),
            comp.rows_and_columns(),
            strict=True,
        )
    ]


def copy_kept(model: nn.Module, small: nn.Module, comp: Compaction) -> nn.Module:
    """Fill ``small`` (the compacted architecture) with the kept weights and biases of ``model``; returns it."""
    with torch.no_grad():
        for layer, new, rows, cols in _kept_layers(model, small, comp):
            new.weight.copy_(layer.weight[rows][:, cols])
            if layer.bias is not None:
                new.bias.copy_(layer.bias[rows])
    return small


def expand_into(model: nn.Module, small: nn.Module, comp: Compaction) -> None:
    """Write the compacted network's weights back into their places in ``model`` (the rest is left alone)."""
    with torch.no_grad():
        for layer, new, rows, cols in _kept_layers(model, small, comp):
            layer.weight[rows[:, None], cols[None, :]] = new.weight
            if layer.bias is not None:
                layer.bias[rows] = new.bias


def output_positions(model: nn.Module) -> dict[str, int]:
    """Output positions of each prunable layer for one sample: 1 for a fully connected layer, the spatial
    size of its output for a convolution (each kernel weight is used once per output position)."""
    out, size = {}, list(input_shape(model)[1:])
    for name, layer in prunable_layers(model).items():
        if isinstance(layer, nn.Linear):
            out[name] = 1
            continue
        size = [
            (s + 2 * p - k) // st + 1
            for s, p, k, st in zip(size, layer.padding, layer.kernel_size, layer.stride, strict=True)
        ]
        out[name] = int(np.prod(size))
        if name in model.pooled:
            size = [s // 2 for s in size]
    return out


def work(model: nn.Module, comp: Compaction | None = None) -> int:
    """Multiply-adds of one sample through ``model`` (a fully connected layer: in·out; a convolution: its
    weights times its output positions), or through its compaction ``comp``: a training step costs about
    6·B times this."""
    pairs = comp.rows_and_columns() if comp is not None else None
    total = 0
    for i, (layer, positions) in enumerate(
        zip(prunable_layers(model).values(), output_positions(model).values(), strict=True)
    ):
        shape = tuple(layer.weight.shape)
        if pairs is not None:
            shape = (len(pairs[i][0]), len(pairs[i][1]), *shape[2:])
        total += int(np.prod(shape)) * positions
    return total
