"""Networks with named prunable layers in a fixed order.

A model is given by a spec string, e.g. ``mlp:784-300-100-10`` (LeNet-300-100) or ``mlp:40-100-100-10``,
optionally followed by its initialization: ``mlp:784-300-100-10:glorot`` draws the weights from the Gaussian
Glorot distribution N(0, 2/(fan_in + fan_out)) with zero biases, as Frankle & Carbin (2019) do; the default
(``:torch``, or nothing) is PyTorch's Kaiming-uniform.
The prunable layers are the weights of the fully connected layers, named ``fc1``, ``fc2``, ... from input to
output; a :class:`~lotterysearch.masks.Mask` maps these names to boolean tensors of the weights' shapes.
The ``MODELS`` registry leaves room for other families (small conv nets) under their own prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lotterysearch.errors import ModelError


@dataclass(frozen=True)
class MLPSpec:
    """Widths from input to output, e.g. (40, 100, 100, 10)."""

    widths: tuple[int, ...]

    @property
    def layer_names(self) -> list[str]:
        return [f"fc{i}" for i in range(1, len(self.widths))]


class MLP(nn.Module):
    """ReLU multilayer perceptron; hidden layers use ReLU, the output layer gives logits."""

    def __init__(self, widths: tuple[int, ...], bias: bool = True) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.layers = nn.ModuleDict(
            {f"fc{i}": nn.Linear(widths[i - 1], widths[i], bias=bias) for i in range(1, len(widths))}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers.values()):
            h = layer(h)
            if i < last:
                h = torch.relu(h)
        return h


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The prunable layers of a model by name, in forward order (input to output)."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleDict):
        raise ModelError(f"{type(model).__name__} has no named prunable layers (expected .layers)")
    return dict(layers.items())


def weight_names(model: nn.Module) -> dict[str, str]:
    """Layer name → the parameter name of its weight (for ``torch.func.functional_call``)."""
    return {name: f"layers.{name}.weight" for name in prunable_layers(model)}


def parse_mlp(body: str) -> MLPSpec:
    parts = body.split("-")
    try:
        widths = tuple(int(p) for p in parts)
    except ValueError:
        raise ModelError(f"model spec 'mlp:{body}': widths must be integers joined by '-'") from None
    if len(widths) < 2 or min(widths) < 1:
        raise ModelError(f"model spec 'mlp:{body}': need at least input and output widths, all >= 1")
    return MLPSpec(widths)


def _build_mlp(body: str, bias: bool) -> nn.Module:
    return MLP(parse_mlp(body).widths, bias=bias)


# family prefix → builder(body, bias); a conv family is one more entry.
MODELS: dict[str, Callable[[str, bool], nn.Module]] = {"mlp": _build_mlp}


def _glorot_normal(model: nn.Module) -> None:
    for layer in prunable_layers(model).values():
        nn.init.xavier_normal_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


# initialization name → what it does to a freshly built model (``torch``: leave PyTorch's own)
INITS: dict[str, Callable[[nn.Module], None]] = {"torch": lambda model: None, "glorot": _glorot_normal}


def build_model(spec: str, seed: int, *, bias: bool = True) -> nn.Module:
    """Build the model of ``spec`` with weights drawn from ``seed`` (the spec's initialization, ``INITS``).

    The global torch RNG is left as it was, so building a model never perturbs other seeded work.
    """
    family, sep, body = spec.partition(":")
    if not sep or family not in MODELS:
        known = ", ".join(f"'{k}:...'" for k in MODELS)
        raise ModelError(f"unknown model spec '{spec}' (known: {known}, e.g. 'mlp:40-100-100-10')")
    body, _, init = body.partition(":")
    init = init or "torch"
    if init not in INITS:
        raise ModelError(f"model spec '{spec}': unknown initialization '{init}' (known: {', '.join(INITS)})")
    builder = MODELS[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(body, bias)
        with torch.no_grad():
            INITS[init](model)
        return model


def input_width(model: nn.Module) -> int:
    """Number of input features of an MLP."""
    first = next(iter(prunable_layers(model).values()))
    return int(first.weight.shape[1])
