"""Small networks made by factories (``seed -> nn.Module``), imported back by runs as ``netzoo:NAME``
(this folder is on pytest's path): a chain, a residual MLP that is not one, a convnet reading shaped inputs."""

from __future__ import annotations

import torch
from torch import nn


def mlp(seed: int) -> nn.Module:
    """The chain ``mlp:16-8-4`` is: two Linear layers made in the same order, so from the same seed they
    hold the same weights."""
    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))


def wide_mlp(seed: int) -> nn.Module:
    """Another chain on the synthetic data, with other parameter shapes than ``mlp``."""
    return nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))


class ResidualMLP(nn.Module):
    """h = relu(W1 x); h + relu(W2 h); logits W3 h: a skip connection, so not a chain."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 8)
        self.block = nn.Linear(8, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        h = h + torch.relu(self.block(h))
        return self.out(h)


def residual_mlp(seed: int) -> nn.Module:
    return ResidualMLP()


class TinyConv(nn.Module):
    """A 3×8×8 convnet with a residual 1×1 branch; its ``input_shape`` asks for shaped inputs."""

    input_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.skip = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 4, "the pre-hook views flat inputs as [N, 3, 8, 8]"
        h = torch.relu(self.conv(x)) + self.skip(x)
        return self.fc(h.mean(dim=(2, 3)))


def tiny_conv(seed: int) -> nn.Module:
    return TinyConv()


def named_prunable(seed: int) -> nn.Module:
    """The residual MLP pruning only its first two layers (not the output layer): named in ``prunable``."""
    model = ResidualMLP()
    model.prunable = ("inp", "block")
    return model


def misnamed_prunable(seed: int) -> nn.Module:
    model = ResidualMLP()
    model.prunable = ("inp", "nothing")
    return model
