"""The trained weights of a mask's network, kept so that variation can use what training learned.

The magnitude (Lamarckian) mutation prunes a parent's smallest trained weights (``operators.magnitude_mutation``;
IMP is that operator in a (1+1) loop). A class is trained once, so what the search keeps of that training is
one vector: the kept weights of the trained network in the mask's order (layer by layer, row-major), as
float16, 2 bytes a kept weight (LeNet-300-100 at 7% density: 37 KB). A weight off the effective subnetwork
(no input→output path through it, ``Mask.effective``) cannot change what the network computes: it is kept
as 0, so the mutation prunes it first, whichever kernel trained the mask (the compacted kernels drop it).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from lotterysearch.core.masks import Mask
from lotterysearch.core.models import prunable_layers
from lotterysearch.errors import MaskError

DTYPE = np.float16


def pack_weights(model: nn.Module, mask: Mask) -> bytes:
    """The kept weights of the trained ``model`` under ``mask``, in mask order, 0 off the effective subnetwork."""
    mask.check_fits(model)
    effective = mask.effective()
    parts = []
    for (name, m), layer in zip(mask.items(), prunable_layers(model).values(), strict=True):
        w = layer.weight.detach().cpu().numpy()
        kept = m.numpy()
        parts.append(np.where(effective[name].numpy(), w, 0.0)[kept].astype(DTYPE))
    return np.concatenate(parts).tobytes() if parts else b""


def unpack_weights(data: bytes, mask: Mask) -> dict[str, np.ndarray]:
    """``pack_weights``'s vector back in the layers' shapes (float32), 0 at the pruned positions."""
    values = np.frombuffer(data, dtype=DTYPE)
    if values.size != mask.kept():
        raise MaskError(f"trained weights hold {values.size} values for a mask that keeps {mask.kept()}")
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
