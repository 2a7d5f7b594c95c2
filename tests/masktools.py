"""Small random masks shared by the operator, alignment and training tests."""

import numpy as np
import torch

from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model

WIDTHS = (7, 6, 5, 3)


def random_mask(rng: np.random.Generator, widths=WIDTHS, density: float = 0.4) -> Mask:
    return Mask({f"fc{i}": rng.random((widths[i], widths[i - 1])) < density for i in range(1, len(widths))})


def structured_mask(rng: np.random.Generator, widths, density: float, dead_in: float) -> Mask:
    """Random mask whose hidden neurons lose their incoming row with probability ``dead_in`` (shared rows
    and twins, as in SynFlow masks at high compression)."""
    layers = {f"fc{i}": rng.random((widths[i], widths[i - 1])) < density for i in range(1, len(widths))}
    for i in range(1, len(widths) - 1):
        layers[f"fc{i}"][rng.random(widths[i]) < dead_in, :] = False
    return Mask(layers)


def random_perms(rng: np.random.Generator, mask: Mask) -> list[np.ndarray]:
    return [rng.permutation(s[0]) for s in list(mask.shapes.values())[:-1]]


def degree_multisets(mask: Mask) -> list[tuple[list[int], list[int]]]:
    """Per layer, the sorted row sums and column sums: invariant under relabelling hidden neurons."""
    return [(sorted(m.sum(1).tolist()), sorted(m.sum(0).tolist())) for m in mask.to_numpy().values()]


def random_masks(spec: str, densities: list[float], seed: int = 0) -> list[Mask]:
    """One mask of the model ``spec`` per density, every weight kept with that probability (torch's RNG)."""
    shapes = Mask.ones(build_model(spec, 0)).shapes
    g = torch.Generator().manual_seed(seed)
    return [Mask({n: torch.rand(s, generator=g) < d for n, s in shapes.items()}) for d in densities]
