"""A mask drawn as PNG images: one heatmap per layer, and MNIST's first layer as 28×28 input maps.

Images are exact pixel maps (one weight, or one input pixel, per cell, enlarged by an integer factor),
written with matplotlib's ``imsave`` (no axes, no pyplot state): the page labels them and the browser
draws them with ``image-rendering: pixelated``.
"""

from __future__ import annotations

import io

import numpy as np

from lotterysearch.core.masks import Mask
from lotterysearch.readers.dashboard.views import NotFound

MNIST_SIDE = 28
# A weight's cell: pruned, kept but on no input→output path (it changes nothing), effective.
PRUNED, KEPT_DEAD, EFFECTIVE = (1.0, 1.0, 1.0), (0.98, 0.72, 0.38), (0.12, 0.31, 0.61)
MIN_SIDE = 160  # small layers are enlarged until their shorter side has this many pixels
MAX_SIDE = 2400  # and never beyond this on the longer side


def _png(rgb: np.ndarray) -> bytes:
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, np.ascontiguousarray(rgb), format="png")
    return buf.getvalue()


def _enlarge(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    k = max(1, min(MIN_SIDE // max(1, min(h, w)), MAX_SIDE // max(h, w)))
    return img.repeat(k, axis=0).repeat(k, axis=1)


def layer_cells(mask: Mask, layer: str) -> np.ndarray:
    """[outputs, inputs] of 0 (pruned), 1 (kept, off every path), 2 (effective)."""
    if layer not in mask.names:
        raise NotFound(f"no layer '{layer[:40]}' in this mask (layers: {', '.join(mask.names)})")
    kept, eff = mask[layer].numpy(), mask.effective()[layer].numpy()
    return kept.astype(np.uint8) + eff.astype(np.uint8)


def layer_png(mask: Mask, layer: str) -> bytes:
    """The layer's weight matrix, rows = output neurons, columns = inputs, coloured by ``layer_cells``."""
    palette = np.array([PRUNED, KEPT_DEAD, EFFECTIVE], dtype=np.float64)
    return _png(_enlarge(palette[layer_cells(mask, layer)]))


def first_layer_maps(mask: Mask) -> tuple[np.ndarray, np.ndarray]:
    """For a first layer over 28×28 inputs (MNIST): each live neuron's effective inputs as a 28×28 map
    ([live neurons, 28, 28], bool), and how many neurons each pixel feeds ([28, 28], counts)."""
    first = mask.effective()[mask.names[0]].numpy()
    if first.shape[1] != MNIST_SIDE * MNIST_SIDE:
        raise NotFound(f"the first layer has {first.shape[1]} inputs, not 784 (28×28): no input maps")
    live = first[first.any(axis=1)]
    return live.reshape(-1, MNIST_SIDE, MNIST_SIDE), first.sum(axis=0).reshape(MNIST_SIDE, MNIST_SIDE)


def neuron_maps_png(mask: Mask, columns: int = 20) -> bytes:
    """Every live first-layer neuron's kept inputs as a 28×28 tile (dark = kept), in a grid with 1-pixel
    gaps, in neuron order."""
    maps, _ = first_layer_maps(mask)
    n = max(1, len(maps))
    cols = min(columns, n)
    rows = -(-n // cols)
    step = MNIST_SIDE + 1
    grid = np.full((rows * step + 1, cols * step + 1, 3), 0.85)
    for i, m in enumerate(maps):
        r, c = divmod(i, cols)
        tile = np.where(m[..., None], np.array(EFFECTIVE), np.array(PRUNED))
        grid[1 + r * step : 1 + r * step + MNIST_SIDE, 1 + c * step : 1 + c * step + MNIST_SIDE] = tile
    return _png(grid.repeat(3, axis=0).repeat(3, axis=1))


def input_sum_png(mask: Mask) -> bytes:
    """How many live first-layer neurons each input pixel feeds, 28×28, viridis (dark: none)."""
    from matplotlib import colormaps

    _, total = first_layer_maps(mask)
    scaled = total / total.max() if total.max() > 0 else total.astype(np.float64)
    rgb = colormaps["viridis"](scaled)[..., :3]
    return _png(rgb.repeat(10, axis=0).repeat(10, axis=1))
