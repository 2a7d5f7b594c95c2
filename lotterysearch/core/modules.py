"""Bring your own network: any ``nn.Module`` made by a factory the run can import back.

A model reference is either a spec string (``models.SPECS``) or a factory's import path
``"package.module:function"``, a function ``seed -> nn.Module``; Ray workers and a later process rebuild the
network from it, so a lambda or a function defined inside another function (which cannot be imported back)
is refused in one line. A factory defined in the running script (``__main__``) resolves in that process
only: enough for a local run, not for Ray workers or for reopening the run from another script.

Prunable weights (``module_weights``): the ``weight`` of every ``nn.Linear`` and ``nn.Conv1d/2d/3d``, in
``named_modules`` order, named by the module's path (``"0"``, ``"layer1.0.conv1"``), unless the model names
its own in a ``prunable`` attribute (module paths whose ``weight`` is pruned). Biases and norms are never
pruned. The last prunable weight is the output layer (IMP prunes it at its own rate).

Inputs: datasets store samples flat (``[N, features]``); a model with an ``input_shape`` attribute, e.g.
``(3, 32, 32)``, is handed them in that shape (a forward pre-hook views them), any other gets them flat.

Chains (``is_chain``): an ``nn.Sequential`` of Linear, convolution, elementwise activation, pooling, dropout
and flatten layers is a chain, whose hidden units are interchangeable: its masks get isomorphism classes as
the built-in MLPs and convnets do. Any other network (residual connections, attention) is registered here
(``register_graph``) under its layers' names and shapes: its masks' class key is then the exact mask, and
their effective subnetwork (weights on some input→output path) is found by ``effective_weights``.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lotterysearch.errors import ModelError

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# what may sit between the prunable layers of a chain: elementwise, per-unit or per-channel maps that
# commute with relabelling hidden units
CHAIN_TYPES = (
    *PRUNABLE_TYPES,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.ELU,
    nn.SiLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)
_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# ---- factory references ----------------------------------------------------------------------------
def is_reference(text: str) -> bool:
    """Whether ``text`` has the form of a factory's import path ``package.module:function``."""
    return bool(_REFERENCE.match(text))


def reference_of(factory: Callable[[int], nn.Module] | str) -> str:
    """The import path a run stores for ``factory``: a reference string as given, or a function's
    ``__module__:__qualname__``, checked to import back to the same function."""
    if isinstance(factory, str):
        resolve(factory)
        return factory
    module, name = getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)
    if not callable(factory) or not module or not name:
        raise ModelError(f"a model factory must be a function seed -> nn.Module, got {factory!r}")
    ref = f"{module}:{name}"
    if "<" in name or not is_reference(ref):  # <lambda>, <locals>
        raise ModelError(
            f"model factory {ref} cannot be imported back by a run: define it at the top level of a module"
        )
    if resolve(ref) is not factory:
        raise ModelError(f"model factory {ref} imports back as another object: pass its import path")
    return ref


def import_root(ref: str) -> str | None:
    """The folder this process imports factory ``ref``'s top-level module or package from (None: a module
    without a file, or one that does not import here), so that Ray workers can import it too."""
    module_name = ref.partition(":")[0]
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
    except Exception:  # the user's module: ``resolve`` says why, where it is needed
        return None
    file = getattr(module, "__file__", None)
    if not file:
        return None
    folder = Path(file).resolve().parent
    if Path(file).name == "__init__.py":
        folder = folder.parent
    for _ in range(module_name.count(".")):
        folder = folder.parent
    return str(folder)


def resolve(ref: str) -> Callable[[int], nn.Module]:
    """The factory a reference names; a module that does not import or a missing name is one line."""
    module_name, _, name = ref.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # the user's module: any error it raises on import
            raise ModelError(f"model '{ref}': cannot import module '{module_name}' ({e})") from None
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ModelError(f"model '{ref}': module '{module_name}' has no '{name}'")
    if not callable(obj):
        raise ModelError(f"model '{ref}': '{name}' is not a function seed -> nn.Module")
    return obj


def build_factory(ref: str, seed: int) -> nn.Module:
    """The network ``ref``'s factory makes from ``seed``, with torch's global RNG also seeded by ``seed`` (and
    restored after), so a factory that draws from it is seeded too."""
    factory = resolve(ref)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = factory(seed)
        except Exception as e:  # the user's code
            raise ModelError(
                f"model '{ref}': the factory failed on seed {seed} ({type(e).__name__}: {e})"
            ) from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model '{ref}': the factory returned {type(model).__name__}, not an nn.Module")
    prepare(model, ref)
    return model


class ViewInput:
    """A forward pre-hook viewing flat ``[N, features]`` inputs as ``[N, *shape]`` (picklable, for Ray)."""

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = tuple(int(s) for s in shape)

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        if x.dim() == 2 and len(self.shape) > 1:
            x = x.reshape(-1, *self.shape)
        return (x, *args[1:])


def prepare(model: nn.Module, label: str) -> nn.Module:
    """Check a user's network has prunable weights, hook its input view, register it when not a chain."""
    names = module_weights(model, label)
    shape = getattr(model, "input_shape", None)
    if shape is not None and not any(isinstance(h, ViewInput) for h in model._forward_pre_hooks.values()):
        model.register_forward_pre_hook(ViewInput(shape))
    if not is_chain(model):
        register_graph(model, names)
    return model


# ---- prunable weights, chains, fingerprints ----------------------------------------------------------
def module_weights(model: nn.Module, label: str = "") -> dict[str, nn.Module]:
    """Module path → module whose ``weight`` is pruned (see the module docstring), in model order."""
    label = label or type(model).__name__
    named = getattr(model, "prunable", None)
    if named is not None:
        modules = dict(model.named_modules())
        out = {}
        for name in named:
            module = modules.get(name)
            if module is None or not isinstance(getattr(module, "weight", None), torch.Tensor):
                raise ModelError(f"model {label}: prunable '{name}' is not a module with a weight")
            out[name] = module
        return out
    out = {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}
    if not out:
        raise ModelError(f"model {label} has no nn.Linear or convolution to prune")
    return out


def is_chain(model: nn.Module) -> bool:
    """An ``nn.Sequential`` of ``CHAIN_TYPES`` layers (ungrouped convolutions), pruning its Linear and
    convolution weights: hidden units are then interchangeable and isomorphism classes apply."""
    if not isinstance(model, nn.Sequential) or getattr(model, "prunable", None) is not None:
        return False
    return all(type(layer) in CHAIN_TYPES and getattr(layer, "groups", 1) == 1 for layer in model.children())


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of every parameter's and buffer's name and shape, cut to 16 hex digits: a resume against a
    network of another architecture differs here."""
    parts = [f"{n}:{list(t.shape)}" for n, t in (*model.named_parameters(), *model.named_buffers())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# ---- networks that are not chains: the effective subnetwork by path counting ---------------------------
Signature = tuple[tuple[str, tuple[int, ...]], ...]
_GRAPHS: dict[Signature, nn.Module] = {}


def signature(shapes: Mapping[str, Sequence[int]]) -> Signature:
    return tuple((n, tuple(int(d) for d in s)) for n, s in shapes.items())


def register_graph(model: nn.Module, layers: Mapping[str, nn.Module] | None = None) -> None:
    """Remember ``model``'s wiring for its masks: a float64 copy in eval mode, biases 0, normalizations
    the identity and every weight it does not prune at |w|, so that with weights ≥ 0 and an all-ones input every activation is a (scaled) count of
    input→unit paths."""
    layers = module_weights(model) if layers is None else layers
    key = signature({n: tuple(m.weight.shape) for n, m in layers.items()})
    if key in _GRAPHS:
        return
    net = copy.deepcopy(model).to("cpu", torch.float64).eval().requires_grad_(False)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase):
                if module.running_mean is not None:
                    module.running_mean.zero_()
                    module.running_var.fill_(1.0)
                if module.affine:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
        for p in net.parameters():  # weights the model does not prune carry paths where they are nonzero
            p.abs_()
    _GRAPHS[key] = net


def graph_of(shapes: Mapping[str, Sequence[int]]) -> nn.Module | None:
    """The registered wiring of a network with these prunable layers (None: a chain, or never built here)."""
    return _GRAPHS.get(signature(shapes)) if _GRAPHS else None


def effective_weights(graph: nn.Module, mask: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Kept weights on some input→output path of a registered network (its ``graph``).

    Every kept weight is set to 1/fan-in (> 0, scaled so that deep products neither overflow nor vanish),
    the input is all ones, R = the sum of the outputs. With biases 0, normalizations the identity and ReLU
    (or pooling, sums, averages) between, every activation is a positive multiple of the number of paths
    reaching it, and ∂R/∂w > 0 exactly when w lies on an input→output path: SynFlow's flow (Tanaka et al.
    2020, Eq. 6) with a binary network. Exact for networks of nonnegatively homogeneous layers (ReLU,
    max/avg pooling, residual sums, batch norm); others (GELU, layer norm, attention) get an approximation.
    """
    net = copy.deepcopy(graph)
    layers = module_weights(net)
    leaves = {}
    for name, module in layers.items():
        m = mask[name].to(torch.float64)
        fan_in = max(1, math.prod(m.shape[1:]))
        leaves[name] = (m / fan_in).requires_grad_()
        del module.weight
        module.weight = leaves[name]
    shape = getattr(graph, "input_shape", None)
    first = next(iter(layers.values()))
    width = math.prod(shape) if shape is not None else getattr(first, "in_features", None)
    if width is None:
        raise ModelError(
            f"{type(graph).__name__} starts with a convolution: give it an input_shape, e.g. (3, 32, 32)"
        )
    r = net(torch.ones(1, width, dtype=torch.float64)).sum()
    if not r.requires_grad:  # no kept weight reaches the output at all
        return {n: torch.zeros_like(mask[n], dtype=torch.bool) for n in layers}
    grads = torch.autograd.grad(r, list(leaves.values()), allow_unused=True)
    return {
        n: (mask[n].bool() & (g > 0)) if g is not None else torch.zeros_like(mask[n], dtype=torch.bool)
        for n, g in zip(leaves, grads, strict=True)
    }
