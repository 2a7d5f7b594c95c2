"""Masks at the level of units (neurons, channels): which are live, how many, and a null that keeps degrees.

A data-free pruner such as SynFlow packs a sparse layer onto few hidden units, so two masks can share no
weight of a layer while both keep the same *number* of units. Weight overlap alone cannot tell "the same
network" from "the same shape of network"; these functions give the unit-level view and the controls:

* **live units**: a unit is live when the effective subnetwork (``Mask.effective``: weights on an
  input→output path) keeps a weight into or out of it. Unit layers are the first layer's inputs, then each
  layer's outputs (rows; a convolution's output channels).
* **unit overlap**: Jaccard of two masks' live-unit sets per unit layer, and its chance level for sets drawn
  uniformly with the same sizes (a hypergeometric intersection, ``overlap.expected_jaccard``). Inputs and
  outputs have fixed identities; hidden units are exchangeable under an i.i.d. init, so their overlap means
  something only after alignment (``alignment.align``).
* **degree-preserving shuffle**: a uniformly random mask with every unit's in- and out-degree kept, by the
  Curveball algorithm (Strona et al. 2014, Nat. Commun. 5:4114) on each layer's ``[out, in·k]`` matrix: each
  trade pools the columns two rows do not share and deals them back at random, keeping every row and column
  sum. It is the null that fits uneven degrees: a layerwise shuffle evens them out, and aligning two uneven
  masks raises their overlap even when which units were picked is random.
* **effective-density-matched layerwise shuffle**: a layerwise shuffle of a SynFlow mask keeps each layer's
  count but strands weights off every input→output path, so it trains a smaller effective network than the
  mask. ``effective_matched_shuffle`` scales every layer's count by one common factor until the random
  mask's effective density reaches the mask's: the layerwise control with the mask's effective size.
"""

from __future__ import annotations

import numpy as np

from lotterysearch.core.masks import Mask, unit_links
from lotterysearch.core.overlap import expected_jaccard

TRADES_PER_ROW = 5  # Curveball trades per row of a layer: Strona et al. find mixing after a few per row
# The matched shuffle's effective kept count lies within this fraction of the mask's (and at least one weight);
# a draw outside it is redrawn, up to MATCH_DRAWS times, and the closest draw is kept.
MATCH_TOLERANCE = 0.02
MATCH_DRAWS = 20
MATCH_BISECTIONS = 30


def live_units(mask: Mask) -> list[np.ndarray]:
    """Per unit layer (inputs of the first layer, then each layer's output units), which units are live."""
    links = unit_links(mask.effective())
    return [links[0].any(axis=0)] + [m.any(axis=1) for m in links]


def live_unit_counts(mask: Mask) -> list[int]:
    """How many units of each unit layer are live (``live_units``)."""
    return [int(u.sum()) for u in live_units(mask)]


def unit_jaccard(a: Mask, b: Mask) -> list[float]:
    """Per unit layer, |A∩B| / |A∪B| of the two masks' live units (1 when neither keeps any)."""
    out = []
    for ua, ub in zip(live_units(a), live_units(b), strict=True):
        union = int((ua | ub).sum())
        out.append(int((ua & ub).sum()) / union if union else 1.0)
    return out


def chance_unit_jaccard(a: Mask, b: Mask) -> list[float]:
    """Per unit layer, the Jaccard expected of live-unit sets drawn uniformly with ``a``'s and ``b``'s sizes."""
    out = []
    for ua, ub in zip(live_units(a), live_units(b), strict=True):
        sizes = ({"u": int(ua.sum())}, {"u": int(ub.sum())}, {"u": ua.size})
        out.append(expected_jaccard(*sizes))
    return out


def curveball(matrix: np.ndarray, rng: np.random.Generator, trades: int) -> np.ndarray:
    """A copy of the bool 2-D ``matrix`` after ``trades`` Curveball trades: the same row and column sums."""
    rows = np.array(matrix, dtype=bool, copy=True)
    if rows.shape[0] < 2:
        return rows
    for _ in range(trades):
        i, j = rng.choice(rows.shape[0], size=2, replace=False)
        only_i, only_j = rows[i] & ~rows[j], rows[j] & ~rows[i]
        pool = np.flatnonzero(only_i | only_j)
        if pool.size == 0:
            continue
        dealt = rng.permutation(pool)
        share = int(only_i.sum())
        both = rows[i] & rows[j]
        rows[i], rows[j] = both, both.copy()
        rows[i, dealt[:share]] = True
        rows[j, dealt[share:]] = True
    return rows


def degree_preserving_shuffle(
    mask: Mask, rng: np.random.Generator, trades_per_row: int = TRADES_PER_ROW
) -> Mask:
    """A random mask with every unit's in- and out-degree (and so every layer's kept count) of ``mask``.

    Each layer is shuffled as an ``[out, in·k]`` matrix: its row sums are the output units' in-degrees, and
    an input unit's out-degree is the sum of its k columns. The effective subnetwork can still change (a
    unit's live weights may now come from units no input reaches), so callers report its density too."""
    out = {}
    for name, t in mask.items():
        m = t.numpy()
        flat = m.reshape(m.shape[0], -1)
        out[name] = curveball(flat, rng, trades_per_row * flat.shape[0]).reshape(m.shape)
    return Mask(out)


def _scaled_counts(kept: dict[str, int], total: dict[str, int], factor: float) -> dict[str, int]:
    """Each layer's kept count times ``factor``, rounded and capped at the layer's size (empty stays empty)."""
    return {n: min(total[n], round(factor * k)) for n, k in kept.items()}


def _first(orders: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], counts: dict[str, int]) -> Mask:
    """The mask that keeps the first ``counts[n]`` positions of each layer's random order."""
    out = {}
    for n, order in orders.items():
        flat = np.zeros(order.size, dtype=bool)
        flat[order[: counts[n]]] = True
        out[n] = flat.reshape(shapes[n])
    return Mask(out)


def effective_matched_shuffle(
    mask: Mask, rng: np.random.Generator, tolerance: float = MATCH_TOLERANCE, draws: int = MATCH_DRAWS
) -> Mask:
    """A layerwise-random mask whose effective density (``Mask.effective``) matches ``mask``'s.

    Each draw orders every layer's positions at random and keeps the first round(f·k_l) of layer l (k_l: the
    mask's count there), with the common factor f found by bisection on [0, max_l n_l/k_l]: the kept sets grow
    with f, and so does their effective subnetwork. A SynFlow mask's shuffle needs f > 1 (it strands weights
    off every path); a mask with dead weights may need f < 1. Of the two factors that bracket the target the
    closer is taken; a draw within ``tolerance``·target weights (at least one) is returned, else the closest
    of ``draws``. A mask with no effective weight (collapsed) has nothing to match: its plain layerwise
    shuffle (f = 1) is returned."""
    target = mask.effective().kept()
    slack = max(1.0, tolerance * target)
    shapes = mask.shapes
    total, kept = mask.layer_total(), mask.layer_kept()
    ceiling = max((total[n] / k for n, k in kept.items() if k), default=1.0)
    best: tuple[float, Mask] | None = None
    for _ in range(draws):
        orders = {n: rng.permutation(m.numel()) for n, m in mask.items()}

        def draw(factor: float, orders: dict[str, np.ndarray] = orders) -> tuple[int, Mask]:
            m = _first(orders, shapes, _scaled_counts(kept, total, factor))
            return m.effective().kept(), m

        if target == 0:
            return draw(1.0)[1]
        lo, hi = 0.0, ceiling
        low, high = draw(lo), draw(hi)
        for _ in range(MATCH_BISECTIONS):
            mid = (lo + hi) / 2
            got = draw(mid)
            if got[0] >= target:
                hi, high = mid, got
            else:
                lo, low = mid, got
        for gap, m in ((abs(low[0] - target), low[1]), (abs(high[0] - target), high[1])):
            if best is None or gap < best[0]:
                best = (gap, m)
        assert best is not None
        if best[0] <= slack:
            break
    assert best is not None
    return best[1]
