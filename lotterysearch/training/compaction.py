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

Convnets (``conv_compaction``): the units are channels, linked where a kernel keeps any entry
(``masks.unit_links``), and the same reasoning holds channel by channel: ReLU and max-pooling act on each
channel alone, so a channel whose every outgoing kernel (or, at the flatten, its whole block of fully
connected inputs [c·HW, (c+1)·HW)) is pruned or leads to a dropped unit contributes nothing and is dropped,
with its block. A channel with no live incoming kernel but a bias outputs the constant map relu(b) (padding
touches only the input), which reaches the output through its live kernels: it is kept, and dropped only
without biases. Input channels are all kept (keeping more is always exact); the fully connected head is
compacted as an MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lotterysearch.core.masks import Mask, check_chain, unit_links
from lotterysearch.core.models import MLP, ConvLayer, ConvNet, prunable_layers
from lotterysearch.errors import ModelError


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


# ---- convnets: channels as units ------------------------------------------------------------------
@dataclass(frozen=True)
class ConvCompaction:
    """Which units of each layer a compacted convnet keeps: ``kept[l]`` the output channels (a convolution)
    or neurons (a fully connected layer) of layer l, sorted; input channels are all kept. ``flatten`` is the
    first fully connected layer, which reads ``block`` (H·W) inputs per channel."""

    input_channels: int
    kept: tuple[torch.Tensor, ...]
    flatten: int
    block: int

    def rows_and_columns(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the (rows, columns) of the full ``[out, in, ...]`` weight that the compacted one keeps;
        at the flatten the columns are the kept channels' blocks of fully connected inputs."""
        sides = [torch.arange(self.input_channels), *self.kept]
        pairs = list(zip(sides[1:], sides[:-1], strict=True))
        rows, channels = pairs[self.flatten]
        blocks = channels[:, None] * self.block + torch.arange(self.block)[None, :]
        pairs[self.flatten] = (rows, blocks.reshape(-1))
        return pairs


def conv_compaction(mask: Mask, bias: bool = True) -> ConvCompaction:
    """Keep a channel or neuron iff a live path leads from it to an output (and, without biases, one leads
    to it from an input): ``compaction``'s two sweeps over ``unit_links``, channel blocks at the flatten."""
    links = unit_links(mask)
    flatten = sum(1 for shape in mask.shapes.values() if len(shape) > 2)
    if flatten == 0 or flatten == len(links):
        raise ModelError("conv compaction takes convnets: convolutions, then fully connected layers")
    block = links[flatten].shape[1] // links[flatten - 1].shape[0]

    def per_unit(reach: np.ndarray, layer: int) -> np.ndarray:
        """Inputs of ``layer`` reached, as units of the layer before (channels at the flatten)."""
        return reach.reshape(-1, block).any(axis=1) if layer == flatten else reach

    to_output = [np.ones(links[-1].shape[0], dtype=bool)]
    for layer in range(len(links) - 1, 0, -1):
        to_output.insert(0, per_unit((links[layer] & to_output[0][:, None]).any(axis=0), layer))
    keep = to_output  # keep[l]: output units of layer l with a live path to an output
    if not bias:
        from_input = [links[0].any(axis=1)]
        for layer in range(1, len(links)):
            fed = np.repeat(from_input[-1], block) if layer == flatten else from_input[-1]
            from_input.append((links[layer] & fed[None, :]).any(axis=1))
        keep = [a & b for a, b in zip(to_output, from_input, strict=True)]
    keep[-1] = np.ones(links[-1].shape[0], dtype=bool)  # every class is an output
    for k in keep:  # a layer left empty keeps one unit: keeping more than needed is always exact
        if not k.any():
            k[0] = True
    kept = tuple(torch.from_numpy(np.flatnonzero(k).astype(np.int64)) for k in keep)
    return ConvCompaction(int(links[0].shape[1]), kept, flatten, int(block))


def compact_conv_mask(mask: Mask, comp: ConvCompaction) -> Mask:
    pairs = comp.rows_and_columns()
    return Mask(
        {name: mask[name][rows][:, cols] for name, (rows, cols) in zip(mask.names, pairs, strict=True)}
    )


def compact_convnet(model: ConvNet, comp: ConvCompaction) -> ConvNet:
    """A new convnet with the kept channels and neurons of ``model``, holding their weights and biases."""
    layers = list(prunable_layers(model).values())
    specs = [
        ConvLayer(
            len(comp.kept[i]),
            int(layer.kernel_size[0]),
            int(layer.stride[0]),
            int(layer.padding[0]),
            pool=f"conv{i + 1}" in model.pooled,
        )
        for i, layer in enumerate(layers[: comp.flatten])
    ]
    bias = layers[0].bias is not None
    small = ConvNet(model.input_shape, specs, [len(k) for k in comp.kept[comp.flatten :]], bias=bias)
    with torch.no_grad():
        for layer, new, (rows, cols) in zip(
            layers, prunable_layers(small).values(), comp.rows_and_columns(), strict=True
        ):
            new.weight.copy_(layer.weight[rows][:, cols])
            if bias:
                new.bias.copy_(layer.bias[rows])
    return small


def expand_conv_into(model: ConvNet, small: ConvNet, comp: ConvCompaction) -> None:
    """Write the compacted convnet's weights back into their places in ``model`` (the rest is left alone)."""
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


def conv_work(model: ConvNet, comp: ConvCompaction | None = None) -> int:
    """Multiply-adds of one sample through ``model`` (a convolution: its weights times its output
    positions), or through its compaction ``comp``: a training step costs about 6·B times this."""
    if not isinstance(model, ConvNet):
        raise ModelError(f"{type(model).__name__} is not a convnet")
    pairs = comp.rows_and_columns() if comp is not None else None
    total, size = 0, list(model.input_shape[1:])
    for i, (name, layer) in enumerate(prunable_layers(model).items()):
        shape = tuple(layer.weight.shape)
        if pairs is not None:
            shape = (len(pairs[i][0]), len(pairs[i][1]), *shape[2:])
        if isinstance(layer, nn.Linear):
            total += shape[0] * shape[1]
            continue
        size = [
            (s + 2 * p - k) // st + 1
            for s, p, k, st in zip(size, layer.padding, layer.kernel_size, layer.stride, strict=True)
        ]
        total += int(np.prod(shape)) * int(np.prod(size))
        if name in model.pooled:
            size = [s // 2 for s in size]
    return total
