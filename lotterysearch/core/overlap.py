"""How alike two pruning masks are: raw overlap, the overlap expected by chance, overlap up to relabelling
hidden neurons, isomorphism classes and per-layer density spread. Pure functions of masks.

* **raw overlap**: Jaccard J(A, B) = |A∩B| / |A∪B| of the kept weights;
* **chance overlap**: the expected Jaccard of two *independent* masks drawn uniformly among the masks with
  the same per-layer kept counts as A and B (``chance_jaccard``). Per layer l with n_l positions and kept
  counts a_l, b_l the intersection is hypergeometric with E|A_l∩B_l| = a_l·b_l/n_l; the total
  intersection I is their (independent) sum and the chance Jaccard is E[I / (|A| + |B| − I)], computed
  exactly from the distribution of I (the plug-in ratio at E[I] is only a first-order approximation);
* **aligned overlap**: J(A, align(A, B)) after relabelling B's hidden neurons to best match A (Hungarian
  weight matching plus exact isomorphism recovery, ``lotterysearch.core.alignment``). For fixed kept counts,
  maximising agreement (what ``align`` does) is maximising |A∩B| and hence J;
* the number of distinct isomorphism classes (``canon.class_key``) and per-layer density statistics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import hypergeom

from lotterysearch.core.alignment import align
from lotterysearch.core.canon import class_key
from lotterysearch.core.masks import Mask, check_same_shapes
from lotterysearch.stats import mean_std


def _ratio(inter: int, union: int) -> float:
    return inter / union if union else 1.0  # two empty sets are identical


def jaccard(a: Mask, b: Mask) -> float:
    """|A∩B| / |A∪B| of the kept weights over all layers; 1 when both masks are empty."""
    check_same_shapes(a, b)
    inter = sum(int((a[n] & b[n]).sum()) for n in a)
    return _ratio(inter, a.kept() + b.kept() - inter)


def layer_jaccard(a: Mask, b: Mask) -> dict[str, float]:
    """Jaccard of each layer on its own."""
    check_same_shapes(a, b)
    out = {}
    for n in a:
        inter = int((a[n] & b[n]).sum())
        out[n] = _ratio(inter, int(a[n].sum()) + int(b[n].sum()) - inter)
    return out


def chance_intersection(
    kept_a: Mapping[str, int], kept_b: Mapping[str, int], totals: Mapping[str, int]
) -> float:
    """E|A∩B| = Σ_l a_l·b_l / n_l for independent masks, uniform given their per-layer kept counts."""
    return float(sum(kept_a[n] * kept_b[n] / totals[n] for n in totals))


def intersection_pmf(total: int, kept_a: int, kept_b: int) -> tuple[int, np.ndarray]:
    """Distribution of |A∩B| for independent uniform subsets of sizes ``kept_a``, ``kept_b`` of ``total``
    positions (hypergeometric). Returns (smallest value, probabilities), cut to mean ± (12 sd + 20), where
    the tails left out weigh less than 1e-30, then renormalised."""
    if not (0 <= kept_a <= total and 0 <= kept_b <= total):
        raise ValueError(f"kept counts {kept_a}, {kept_b} must lie in [0, {total}]")
    lo, hi = max(0, kept_a + kept_b - total), min(kept_a, kept_b)
    mean = kept_a * kept_b / total if total else 0.0
    var = mean * (1 - kept_a / total) * (total - kept_b) / (total - 1) if total > 1 else 0.0
    reach = 12 * math.sqrt(max(var, 0.0)) + 20
    lo, hi = max(lo, math.floor(mean - reach)), min(hi, math.ceil(mean + reach))
    pmf = hypergeom.pmf(np.arange(lo, hi + 1), total, kept_a, kept_b)
    return lo, pmf / pmf.sum()


def expected_jaccard(
    kept_a: Mapping[str, int], kept_b: Mapping[str, int], totals: Mapping[str, int]
) -> float:
    """E[I / (|A| + |B| − I)] with I = Σ_l |A_l∩B_l|, the layers independent hypergeometrics (module doc)."""
    ka, kb = sum(kept_a[n] for n in totals), sum(kept_b[n] for n in totals)
    if ka + kb == 0:
        return 1.0
    start, pmf = 0, np.ones(1)
    for n in totals:
        lo, p = intersection_pmf(totals[n], kept_a[n], kept_b[n])
        start, pmf = start + lo, np.convolve(pmf, p)
    inter = start + np.arange(pmf.size, dtype=np.float64)
    return float(np.sum(pmf * inter / (ka + kb - inter)))


def chance_jaccard(a: Mask, b: Mask) -> float:
    """The Jaccard expected by chance for masks with the per-layer kept counts of ``a`` and ``b``."""
    check_same_shapes(a, b)
    return expected_jaccard(a.layer_kept(), b.layer_kept(), a.layer_total())


def layer_chance_jaccard(a: Mask, b: Mask) -> dict[str, float]:
    check_same_shapes(a, b)
    ka, kb, tot = a.layer_kept(), b.layer_kept(), a.layer_total()
    return {n: expected_jaccard({n: ka[n]}, {n: kb[n]}, {n: tot[n]}) for n in a}


def excess_overlap(observed: float, chance: float) -> float:
    """(J − J_chance) / (1 − J_chance): 0 at chance, 1 for identical masks (Cohen's kappa form)."""
    return (observed - chance) / (1 - chance) if chance < 1 else math.nan


def aligned_jaccard(reference: Mask, other: Mask) -> float:
    """Jaccard after relabelling ``other``'s hidden neurons to best match ``reference``; 1 for a permuted
    copy. Weight matching is a local search, so elsewhere this is a lower bound on the best relabelling."""
    return jaccard(reference, align(reference, other))


def random_hidden_perms(mask: Mask, rng: np.random.Generator) -> list[np.ndarray]:
    """One random permutation per hidden layer (for ``alignment.permute_hidden``)."""
    return [rng.permutation(s[0]) for s in list(mask.shapes.values())[:-1]]


def density_stats(masks: Sequence[Mask]) -> dict[str, dict[str, float]]:
    """Per-layer density across masks: ``{layer: {"mean", "std", "n"}}``."""
    return {n: mean_std(m.layer_densities()[n] for m in masks) for n in masks[0]}


def class_count(masks: Iterable[Mask]) -> int:
    """Distinct isomorphism classes of the effective subnetworks (``canon.class_key``)."""
    return len({class_key(m) for m in masks})


def bootstrap_pair_mean(
    values: np.ndarray, rng: np.random.Generator, reps: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean over pairs of inits, resampling *inits*, not pairs.

    ``values[i, j]`` is a statistic of the pair of inits (i, j) (symmetric; the diagonal is ignored). Pairs
    share inits and are not independent, so each replicate draws n inits with replacement and averages the
    pairs of drawn inits that are different inits (the pairs bootstrap of a U-statistic)."""
    v = np.array(values, dtype=np.float64)
    n = v.shape[0]
    np.fill_diagonal(v, np.nan)
    means = np.empty(reps)
    for r in range(reps):
        idx = rng.integers(0, n, size=n)
        sub = v[np.ix_(idx, idx)][np.triu_indices(n, k=1)]
        means[r] = np.nanmean(sub) if np.isfinite(sub).any() else np.nan
    lo, hi = np.nanquantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
