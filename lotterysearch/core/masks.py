"""The ``Mask`` type and the three masking modes.

A mask maps each prunable layer name (``conv1``, ..., ``fc1``, ``fc2``, ...) to a bool tensor of the
weight's shape (``[out, in]``, or ``[out, in, kh, kw]`` / ``[out, in, k]`` for a convolution: a mask
holds arrays of any rank, and density, packing and saving are rank-blind). Density is kept/total; the compression ratio is ρ = |θ| / |θ_pruned| (Eq. 4 of the notes), so
density = 1/ρ.

Masking modes (``MODES``), each exactly as written in the notes:

* ``forward``: z = (M⊙W)h + b. Autograd gives ∂L/∂W = M ⊙ (∂L/∂z)hᵀ, so pruned weights get exactly zero
  gradient (Eq. 3 follows from Eq. 1).
* ``gradient``: z = Wh + b (dense forward); the gradient reaching W is M ⊙ ∂L/∂W, so pruned weights keep
  their initial values and still act in the forward pass.
* ``straight_through``: z = (M⊙W)h + b forward, but ∂L/∂W is the dense (∂L/∂z)hᵀ.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lotterysearch.core.models import prunable_layers, weight_names
from lotterysearch.errors import MaskError
from lotterysearch.settings import MODES

_ORDER_KEY = "__layer_order__"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise MaskError(f"unknown masking mode '{mode}' (known: {', '.join(MODES)})")
    return mode


def apply_mask(weight: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """The weight a layer uses in the forward pass, with the gradient rule of ``mode``.

    The ``detach`` trick gives each mode's value and gradient without a custom autograd function:
    the detached term contributes to the value but not to the gradient.
    """
    m = mask.to(weight.dtype)
    if mode == "forward":
        return weight * m
    if mode == "gradient":  # value W, gradient M ⊙ g
        return weight * m + (weight * (1 - m)).detach()
    if mode == "straight_through":  # value M⊙W, gradient g
        return weight + (weight * m - weight).detach()
    raise MaskError(f"unknown masking mode '{mode}' (known: {', '.join(MODES)})")


def masked_call(model: nn.Module, mask: Mask | None, x: torch.Tensor, mode: str = "forward") -> torch.Tensor:
    """Run ``model`` on ``x`` with every prunable weight replaced by ``apply_mask(W, M, mode)``."""
    if mask is None:
        return model(x)
    layers = prunable_layers(model)
    names = weight_names(model)
    params = {
        names[n]: apply_mask(layers[n].weight, mask[n].to(layers[n].weight.device), mode) for n in mask.names
    }
    return torch.func.functional_call(model, params, (x,))


class Mask:
    """Layer name → bool tensor, in forward order. Validates itself; knows density, ρ and collapse."""

    def __init__(self, layers: Mapping[str, torch.Tensor | np.ndarray]) -> None:
        if not layers:
            raise MaskError("a mask needs at least one layer")
        self._layers: dict[str, torch.Tensor] = {}
        for name, value in layers.items():
            t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
            if t.dtype != torch.bool:
                if bool((~((t == 0) | (t == 1))).any()):
                    raise MaskError(f"mask layer '{name}' has values other than 0 and 1")
                t = t != 0
            if t.dim() < 1:
                raise MaskError(f"mask layer '{name}' is a scalar, expected a weight-shaped array")
            self._layers[str(name)] = t.detach().to("cpu").contiguous()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def ones(cls, model: nn.Module) -> Mask:
        """The dense mask of ``model``."""
        return cls(
            {
                n: torch.ones_like(layer.weight, dtype=torch.bool)
                for n, layer in prunable_layers(model).items()
            }
        )

    def copy(self) -> Mask:
        return Mask({n: t.clone() for n, t in self._layers.items()})

    # ---- mapping ------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._layers)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(t.shape) for n, t in self._layers.items()}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def items(self):  # noqa: ANN201 - dict view
        return self._layers.items()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return self.shapes == other.shapes and all(torch.equal(self[n], other[n]) for n in self)

    def __repr__(self) -> str:
        return f"Mask({', '.join(f'{n}{list(s)}' for n, s in self.shapes.items())}, density={self.density():.4g})"

    # ---- counts -------------------------------------------------------------------------------
    def layer_kept(self) -> dict[str, int]:
        return {n: int(t.sum()) for n, t in self._layers.items()}

    def layer_total(self) -> dict[str, int]:
        return {n: t.numel() for n, t in self._layers.items()}

    def kept(self) -> int:
        return sum(self.layer_kept().values())

    def total(self) -> int:
        return sum(self.layer_total().values())

    def density(self) -> float:
        return self.kept() / self.total()

    def compression_ratio(self) -> float:
        """ρ = |θ| / |θ_pruned| (Eq. 4); infinite for an empty mask."""
        kept = self.kept()
        return self.total() / kept if kept else float("inf")

    def layer_densities(self) -> dict[str, float]:
        total = self.layer_total()
        return {n: k / total[n] for n, k in self.layer_kept().items()}

    # ---- paths and collapse -------------------------------------------------------------------
    def effective(self) -> Mask:
        """The weights that lie on some input→output path (the effective subnetwork).

        A weight i→j of layer l survives iff input-side reachability f_{l-1}[i] (some input reaches
        unit i through live weights) and output-side reachability b_l[j] (unit j reaches some output).
        Both are one boolean sweep each, which is the fixed point of repeatedly removing weights into
        dead-end units and out of source-less units. In a convnet the units are channels and a kernel
        with any live entry is an edge (``unit_links``): a channel no live kernel enters or leaves is dead,
        and the flatten ties channel c to its block of fully connected inputs [c·HW, (c+1)·HW).
        """
        ts = [t.numpy() for t in self._layers.values()]  # numpy: torch's threads stall under Ray load
        links = unit_links(self)
        forward = [np.ones(links[0].shape[1], dtype=bool)]  # forward[k]: live units feeding layer k
        for k, m in enumerate(links):
            reach = (m & forward[-1][None, :]).any(axis=1)
            forward.append(np.repeat(reach, _fan(links, k + 1) // len(reach)))
        backward = [np.ones(links[-1].shape[0], dtype=bool)]  # backward[k]: layer k's units reaching out
        for k in range(len(links) - 1, 0, -1):
            reach = (links[k] & backward[0][:, None]).any(axis=0)
            backward.insert(0, reach.reshape(links[k - 1].shape[0], -1).any(axis=1))
        return Mask(
            {
                n: m & _expand(backward[i][:, None], m) & _expand(forward[i][None, :], m)
                for i, (n, m) in enumerate(zip(self._layers, ts, strict=True))
            }
        )

    def effective_density(self) -> float:
        return self.effective().density()

    def collapsed_layers(self) -> list[str]:
        """Layers with no weight left on any input→output path (layer collapse, Tanaka et al. 2020).

        Either the layer is empty, or another layer cut every path; in both cases the network computes
        a constant.
        """
        return [n for n, k in self.effective().layer_kept().items() if k == 0]

    def is_collapsed(self) -> bool:
        return bool(self.collapsed_layers())

    def is_convnet(self) -> bool:
        """Whether a layer has kernel dimensions: then the units are channels and links carry kernel
        patterns (``unit_links``); otherwise the mask is an MLP chain of ``[out, in]`` layers."""
        return any(t.dim() > 2 for t in self._layers.values())

    # ---- validation ---------------------------------------------------------------------------
    def check_fits(self, model: nn.Module) -> Mask:
        """Raise ``MaskError`` unless the layer names and shapes equal the model's prunable weights."""
        expected = {n: tuple(layer.weight.shape) for n, layer in prunable_layers(model).items()}
        if list(expected) != self.names:
            raise MaskError(
                f"mask layers {self.names} do not match the model's prunable layers {list(expected)}"
            )
        for n, shape in expected.items():
            if self.shapes[n] != shape:
                raise MaskError(
                    f"mask layer '{n}' has shape {list(self.shapes[n])}, the model's weight {list(shape)}"
                )
        return self

    # ---- serialisation ------------------------------------------------------------------------
    def to_numpy(self) -> dict[str, np.ndarray]:
        return {n: t.numpy().copy() for n, t in self._layers.items()}

    def pack(self) -> bytes:
        """All layers as one bit string (``np.packbits``); shapes travel separately (see ``unpack``)."""
        flat = np.concatenate([t.numpy().ravel() for t in self._layers.values()])
        return np.packbits(flat).tobytes()

    @classmethod
    def unpack(cls, data: bytes, shapes: Mapping[str, tuple[int, ...]]) -> Mask:
        sizes = [int(np.prod(s)) for s in shapes.values()]
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=sum(sizes)).astype(bool)
        if bits.size != sum(sizes):
            raise MaskError(f"packed mask holds {bits.size} bits, the shapes need {sum(sizes)}")
        out, start = {}, 0
        for (name, shape), size in zip(shapes.items(), sizes, strict=True):
            out[name] = bits[start : start + size].reshape(shape)
            start += size
        return cls(out)

    def save(self, path: str | Path) -> Path:
        """Save as ``.npz`` with one bool array per layer and the layer order."""
        path = Path(path)
        arrays = self.to_numpy()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                np.savez_compressed(f, **arrays, **{_ORDER_KEY: np.array(self.names)})
        except OSError as e:  # a directory, a read-only or full disk: the user's path, named
            raise MaskError(f"cannot write mask file '{path}': {e.strerror or e}") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> Mask:
        """Load a mask saved by ``save``; a missing, truncated or foreign file raises ``MaskError``."""
        path = Path(path)
        if not path.is_file():
            raise MaskError(f"mask file '{path}' does not exist")
        try:
            with np.load(path, allow_pickle=False) as npz:
                if _ORDER_KEY not in npz.files:
                    raise MaskError(f"'{path}' is not a lotterysearch mask (no {_ORDER_KEY} entry)")
                order = [str(n) for n in npz[_ORDER_KEY]]
                missing = [n for n in order if n not in npz.files]
                if missing:
                    raise MaskError(f"mask file '{path}' lacks layers {missing}")
                return cls({n: npz[n] for n in order})
        except MaskError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise MaskError(
                f"mask file '{path}' is damaged or not an .npz file ({type(e).__name__})"
            ) from None


# ---- unit-level structure (MLP chains and convnets) ---------------------------------------------
def _fan(links: list[np.ndarray], layer: int) -> int:
    """Units feeding ``layer`` (the output width after the last layer)."""
    return links[layer].shape[1] if layer < len(links) else links[-1].shape[0]


def _expand(units: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A ``[out, 1]`` or ``[1, in]`` unit vector broadcast over a weight's kernel dimensions."""
    return units.reshape(units.shape + (1,) * (weight.ndim - 2))


def unit_links(mask: Mask) -> list[np.ndarray]:
    """Per layer, the bool ``[out units, in units]`` matrix of live connections between units.

    A fully connected layer's units are its rows and columns (the mask itself); a convolution's are its
    output and input channels, linked when the kernel between them keeps any entry. Consecutive layers
    must join: the units feeding a layer are the units of the layer before, or (at a flatten from C
    channels to C·HW features) HW features per channel. Anything else is a one-line ``MaskError``.
    """
    out = []
    for name, t in mask.items():
        m = t.numpy()
        if m.ndim < 2:
            raise MaskError(f"mask layer '{name}' has shape {list(m.shape)}, expected [out, in, ...]")
        out.append(m.reshape(m.shape[0], m.shape[1], -1).any(axis=2) if m.ndim > 2 else m)
    names = mask.names
    for k in range(1, len(out)):
        before, name = names[k - 1], names[k]
        units, fan_in = out[k - 1].shape[0], out[k].shape[1]
        flatten = mask[name].dim() == 2 and mask[before].dim() > 2 and fan_in % units == 0
        if fan_in != units and not flatten:
            raise MaskError(
                f"mask layers '{before}' {list(mask.shapes[before])} and '{name}' "
                f"{list(mask.shapes[name])} do not join ({units} units into {fan_in} inputs)"
            )
    return out


# ---- masks of MLP chains as numpy arrays (operators, alignment) ----------------------------------


def chain_arrays(mask: Mask) -> list[np.ndarray]:
    """Fresh bool copies of the layers (``Mask.to_numpy`` copies), so writing to them is safe."""
    return list(mask.to_numpy().values())


def check_same_shapes(a: Mask, b: Mask) -> None:
    if a.shapes != b.shapes:
        raise MaskError(f"parents have different layers or shapes: {a.shapes} and {b.shapes}")


def check_chain(mask: Mask) -> None:
    """Neuron-level operators need an MLP chain: 2-D layers whose widths join up."""
    shapes = list(mask.shapes.items())
    for name, shape in shapes:
        if len(shape) > 2:
            raise MaskError(
                f"mask layer '{name}' has shape {list(shape)}, a convolution: this takes MLP masks only"
            )
        if len(shape) != 2:
            raise MaskError(f"mask layer '{name}' has shape {list(shape)}, expected a 2-D [out, in] weight")
    for (n1, s1), (n2, s2) in zip(shapes, shapes[1:], strict=False):
        if s1[0] != s2[1]:
            raise MaskError(
                f"mask layers '{n1}' {list(s1)} and '{n2}' {list(s2)} do not chain (out of one != in of next)"
            )


def mask_from_arrays(names: Sequence[str], arrays: Sequence[np.ndarray]) -> Mask:
    return Mask(dict(zip(names, arrays, strict=True)))


def layerwise_shuffle(mask: Mask, rng: np.random.Generator) -> Mask:
    """A uniformly random mask with exactly the per-layer kept counts of ``mask``: the control that
    separates "which positions" from "how many per layer" (random seeds of the search, stability study)."""
    out = {}
    for name, m in mask.items():
        flat = np.zeros(m.numel(), dtype=bool)
        flat[rng.choice(m.numel(), size=int(m.sum()), replace=False)] = True
        out[name] = flat.reshape(tuple(m.shape))
    return Mask(out)
