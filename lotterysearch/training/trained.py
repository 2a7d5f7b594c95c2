"""The trained weights of a mask's network, kept so that variation can use what training learned.

The magnitude (Lamarckian) mutation prunes a parent's smallest trained weights (``operators.magnitude_mutation``;
IMP is that operator in a (1+1) loop). A class is trained once, so what the search keeps of that training is
one vector: the kept weights of the trained network in the mask's order (layer by layer, row-major), as
float16, 2 bytes a kept weight (LeNet-300-100 at 7% density: 37 KB). A weight off the effective subnetwork
(no input→output path through it, ``Mask.effective``) cannot change what the network computes: it is kept
as 0, so the mutation prunes it first, whichever kernel trained the mask (the compacted kernels drop it).

RigL's regrowth (``operators.gradient_regrow``) also needs the gradient of the loss at the positions the
mask prunes: ``dense_gradients`` computes it once, after training, and ``pack_weights`` appends it to the
weights as float32 (4 bytes a pruned position; a float16 would flush the smallest gradients, which still
rank, to 0), so one blob travels and is stored as before.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import prunable_layers
from lotterysearch.errors import MaskError
from lotterysearch.training.trainer import batch_indices

DTYPE = np.float16
GRADIENT_DTYPE = np.float32


def pack_weights(model: nn.Module, mask: Mask, gradients: Mapping[str, torch.Tensor] | None = None) -> bytes:
    """The kept weights of the trained ``model`` under ``mask``, in mask order, 0 off the effective subnetwork;
    with ``gradients`` (``dense_gradients``) then their values at the pruned positions, in mask order."""
    mask.check_fits(model)
    effective = mask.effective()
    parts, grads = [], []
    for (name, m), layer in zip(mask.items(), prunable_layers(model).values(), strict=True):
        w = layer.weight.detach().cpu().numpy()
        kept = m.numpy()
        parts.append(np.where(effective[name].numpy(), w, 0.0)[kept].astype(DTYPE))
        if gradients is not None:
            grads.append(gradients[name].detach().cpu().numpy()[~kept].astype(GRADIENT_DTYPE))
    out = np.concatenate(parts).tobytes() if parts else b""
    return out + (np.concatenate(grads).tobytes() if grads else b"")


def _split(data: bytes, mask: Mask) -> tuple[np.ndarray, np.ndarray | None]:
    """The weights and (when packed) the gradients of ``pack_weights``'s bytes: the sizes tell them apart."""
    kept, total = mask.kept(), sum(m.numel() for _, m in mask.items())
    size = np.dtype(DTYPE).itemsize
    with_grads = kept * size + (total - kept) * np.dtype(GRADIENT_DTYPE).itemsize
    if len(data) not in (kept * size, with_grads):
        raise MaskError(
            f"trained weights hold {len(data) // size} values for a mask that keeps {mask.kept()}"
        )
    values = np.frombuffer(data, dtype=DTYPE, count=kept)
    if len(data) == with_grads:  # a dense mask's gradients are no values: the two sizes agree, no candidate
        return values, np.frombuffer(data, dtype=GRADIENT_DTYPE, offset=kept * size)
    return values, None


def unpack_gradients(data: bytes, mask: Mask) -> dict[str, np.ndarray] | None:
    """The gradients ``pack_weights`` appended, in the layers' shapes (float32), NaN at the kept positions
    (``operators.gradient_regrow``'s "no candidate"); None when the bytes hold weights only."""
    _, grads = _split(data, mask)
    if grads is None:
        return None
    out: dict[str, np.ndarray] = {}
    at = 0
    for name, m in mask.items():
        kept = m.numpy()
        full = np.full(kept.shape, np.nan, dtype=np.float32)
        n = int((~kept).sum())
        full[~kept] = grads[at : at + n]
        out[name] = full
        at += n
    return out


def dense_gradients(
    model: nn.Module, mask: Mask, data: Dataset, batch_size: int, steps: int, seed: int
) -> dict[str, torch.Tensor]:
    """∂L/∂(M⊙W) of the trained ``model``: the gradient of the loss with respect to every position of every
    prunable layer, the pruned ones included (where ∂L/∂W itself is 0 in ``forward`` mode), as RigL's grow
    step reads it (Evci et al. 2020, Sect. 3: the dense gradient, computed at the update).

    One backward on one minibatch: the next batch of the run's own order (``batch_indices(.., seed)``, step
    ``steps + 1``), which training did not see yet, as RigL takes the gradient of the batch at hand. One batch
    is what RigL uses and costs a step; averaging the last few batches would smooth it at a few steps' cost.
    Works for any family: it runs the network itself (a copy), with the masked weights in place."""
    net = copy.deepcopy(model).cpu()
    layers = prunable_layers(net)
    for name, m in mask.items():
        with torch.no_grad():
            layers[name].weight.mul_(m.to(layers[name].weight.dtype))
    net.zero_grad(set_to_none=True)
    *_, idx = batch_indices(len(data.y_train), batch_size, steps + 1, seed)
    loss = F.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
    loss.backward()
    return {name: layers[name].weight.grad.detach().clone() for name in mask.names}


def unpack_weights(data: bytes, mask: Mask) -> dict[str, np.ndarray]:
    """``pack_weights``'s vector back in the layers' shapes (float32), 0 at the pruned positions."""
    values, _ = _split(data, mask)
    out: dict[str, np.ndarray] = {}
    at = 0
    for name, m in mask.items():
        kept = m.numpy()
        full = np.zeros(kept.shape, dtype=np.float32)
        n = int(kept.sum())
        full[kept] = values[at : at + n]
        out[name] = full
        at += n
    return out
