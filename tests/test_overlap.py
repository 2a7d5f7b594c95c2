"""Overlap metrics of masks on hand-made cases; the chance level against exact enumeration and simulation."""

import itertools
import math

import numpy as np
import pytest
from masktools import random_mask, random_perms

from lotterysearch.core.alignment import permute_hidden
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.overlap import (
    aligned_jaccard,
    bootstrap_pair_mean,
    chance_intersection,
    chance_jaccard,
    class_count,
    density_stats,
    excess_overlap,
    expected_jaccard,
    intersection_pmf,
    jaccard,
    layer_chance_jaccard,
    layer_jaccard,
)
from lotterysearch.errors import MaskError


def one_layer(bits: str, shape: tuple[int, int] = (2, 4)) -> Mask:
    return Mask({"fc1": np.array([c == "1" for c in bits]).reshape(shape)})


# ---- Jaccard ------------------------------------------------------------------------------------------
def test_jaccard_hand_cases() -> None:
    a, b = one_layer("11100000"), one_layer("01110000")
    assert jaccard(a, b) == 2 / 4
    assert jaccard(a, a) == 1.0
    assert jaccard(a, one_layer("00011111")) == 0.0  # disjoint
    assert jaccard(one_layer("00000000"), one_layer("00000000")) == 1.0  # two empty masks are identical
    assert jaccard(a, one_layer("00000000")) == 0.0


def test_layer_jaccard_and_total() -> None:
    a = Mask({"fc1": [[1, 1], [0, 0]], "fc2": [[1, 0]]})
    b = Mask({"fc1": [[1, 0], [0, 1]], "fc2": [[0, 1]]})
    assert layer_jaccard(a, b) == {"fc1": 1 / 3, "fc2": 0.0}
    assert jaccard(a, b) == 1 / 5  # pooled: |A∩B| = 1, |A∪B| = 5, not the mean of the layers


def test_jaccard_rejects_different_shapes() -> None:
    with pytest.raises(MaskError, match="different layers or shapes"):
        jaccard(one_layer("11100000"), one_layer("11100000", (4, 2)))


def test_permuted_copy_has_raw_jaccard_below_one_and_aligned_jaccard_one() -> None:
    rng = np.random.default_rng(1)
    mask = random_mask(rng, (12, 20, 15, 4), density=0.3)
    copy = permute_hidden(mask, random_perms(rng, mask))
    assert copy != mask
    assert jaccard(mask, copy) < 0.7
    assert aligned_jaccard(mask, copy) == 1.0
    assert class_count([mask, copy]) == 1


def test_aligned_jaccard_is_at_least_raw_for_a_mutated_relabelled_copy() -> None:
    rng = np.random.default_rng(2)
    mask = random_mask(rng, (12, 20, 15, 4), density=0.3)
    arrays = mask.to_numpy()
    arrays["fc3"][0, :] = ~arrays["fc3"][0, :]  # output 0 rewired: not isomorphic any more
    near = permute_hidden(Mask(arrays), random_perms(rng, mask))
    assert class_count([mask, near]) == 2
    assert jaccard(mask, near) < aligned_jaccard(mask, near) < 1.0
    assert aligned_jaccard(mask, near) >= jaccard(mask, Mask(arrays))


# ---- chance overlap -----------------------------------------------------------------------------------
def test_expected_jaccard_hand_value() -> None:
    """n = 4, two kept each: P(I=0, 1, 2) = 1/6, 4/6, 1/6 and J = I/(4 − I), so E[J] = 4/6·1/3 + 1/6 = 7/18."""
    assert expected_jaccard({"a": 2}, {"a": 2}, {"a": 4}) == pytest.approx(7 / 18, abs=1e-15)
    assert expected_jaccard({"a": 0}, {"a": 0}, {"a": 4}) == 1.0
    assert expected_jaccard({"a": 4}, {"a": 1}, {"a": 4}) == pytest.approx(1 / 4)  # B ⊂ A always


def test_expected_jaccard_equals_enumeration_over_all_mask_pairs() -> None:
    totals, ka, kb = {"x": 5, "y": 4}, {"x": 2, "y": 3}, {"x": 3, "y": 1}

    def subsets(n: int, k: int) -> list[set[int]]:
        return [set(c) for c in itertools.combinations(range(n), k)]

    values = []
    for ax, bx in itertools.product(subsets(5, 2), subsets(5, 3)):
        for ay, by in itertools.product(subsets(4, 3), subsets(4, 1)):
            inter = len(ax & bx) + len(ay & by)
            values.append(inter / (2 + 3 + 3 + 1 - inter))
    assert expected_jaccard(ka, kb, totals) == pytest.approx(float(np.mean(values)), abs=1e-12)


def test_intersection_pmf_is_hypergeometric_with_mean_k1_k2_over_n() -> None:
    lo, pmf = intersection_pmf(20, 7, 12)
    assert lo == 0 and pmf.size == 8
    assert pmf.sum() == pytest.approx(1.0)
    assert float(np.dot(np.arange(lo, lo + pmf.size), pmf)) == pytest.approx(7 * 12 / 20)
    assert pmf[0] == pytest.approx(math.comb(8, 7) / math.comb(20, 7))  # A inside the 8 positions B left out
    lo, pmf = intersection_pmf(235200, 23520, 2352)  # LeNet's fc1 at 10% and 1%: cut to the bulk
    assert pmf.size < 2000 and pmf.sum() == pytest.approx(1.0)
    assert float(np.dot(np.arange(lo, lo + pmf.size), pmf)) == pytest.approx(235.2, rel=1e-9)


def test_chance_overlap_matches_simulation() -> None:
    """2000 pairs of independent masks with fixed per-layer counts: the simulated mean intersection and
    Jaccard lie within 4 standard errors of the exact values."""
    rng = np.random.default_rng(0)
    a = Mask(
        {"fc1": np.zeros((20, 30), bool), "fc2": np.zeros((10, 20), bool), "fc3": np.zeros((5, 10), bool)}
    )
    counts_a, counts_b = {"fc1": 50, "fc2": 30, "fc3": 45}, {"fc1": 120, "fc2": 30, "fc3": 20}
    template_a = Mask({n: np.arange(a[n].numel()).reshape(a[n].shape) < counts_a[n] for n in a})
    template_b = Mask({n: np.arange(a[n].numel()).reshape(a[n].shape) < counts_b[n] for n in a})
    inter, jac = [], []
    for _ in range(2000):
        x, y = layerwise_shuffle(template_a, rng), layerwise_shuffle(template_b, rng)
        inter.append(sum(int((x[n] & y[n]).sum()) for n in x))
        jac.append(jaccard(x, y))
    totals = template_a.layer_total()
    mu = chance_intersection(counts_a, counts_b, totals)
    assert mu == 50 * 120 / 600 + 30 * 30 / 200 + 45 * 20 / 50
    assert abs(np.mean(inter) - mu) < 4 * np.std(inter) / math.sqrt(2000)
    exact = chance_jaccard(template_a, template_b)
    assert abs(np.mean(jac) - exact) < 4 * np.std(jac) / math.sqrt(2000)
    plug_in = mu / (sum(counts_a.values()) + sum(counts_b.values()) - mu)
    assert 0 < exact - plug_in < 0.01  # Jensen: E[J] exceeds the ratio at E[I], by a second-order term
    per_layer = layer_chance_jaccard(template_a, template_b)
    assert per_layer["fc1"] == pytest.approx(expected_jaccard({"a": 50}, {"a": 120}, {"a": 600}))


def test_excess_overlap_is_zero_at_chance_and_one_when_identical() -> None:
    assert excess_overlap(0.2, 0.2) == 0.0
    assert excess_overlap(1.0, 0.2) == 1.0
    assert excess_overlap(0.1, 0.2) == pytest.approx(-0.125)
    assert math.isnan(excess_overlap(1.0, 1.0))


# ---- controls and summaries ---------------------------------------------------------------------------
def test_layerwise_shuffle_keeps_counts_and_moves_positions() -> None:
    rng = np.random.default_rng(3)
    mask = random_mask(rng, (30, 20, 10), density=0.2)
    shuffled = layerwise_shuffle(mask, np.random.default_rng(7))
    assert shuffled.layer_kept() == mask.layer_kept()
    assert shuffled != mask
    assert shuffled == layerwise_shuffle(mask, np.random.default_rng(7))


def test_density_stats_by_hand() -> None:
    a = Mask({"fc1": [[1, 1, 0, 0]], "fc2": [[1, 0]]})
    b = Mask({"fc1": [[1, 1, 1, 1]], "fc2": [[0, 0]]})
    stats = density_stats([a, b])
    assert stats["fc1"] == {"mean": 0.75, "std": pytest.approx(math.sqrt(0.125)), "n": 2}
    assert stats["fc2"] == {"mean": 0.25, "std": pytest.approx(math.sqrt(0.125)), "n": 2}


def test_class_count_counts_effective_subnetworks() -> None:
    rng = np.random.default_rng(4)
    mask = random_mask(rng, (8, 10, 6, 3), density=0.5)
    dangling = mask.to_numpy()
    dangling["fc1"][:, 0] = False
    dangling["fc1"][0, 0] = True  # a weight from input 0 into neuron 0 ...
    dangling["fc2"][:, 0] = False  # ... which reaches no output: off every path
    other = random_mask(rng, (8, 10, 6, 3), density=0.5)
    without = dict(dangling)
    without["fc1"] = dangling["fc1"].copy()
    without["fc1"][0, 0] = False
    assert class_count([Mask(dangling), Mask(without)]) == 1
    assert class_count([mask, permute_hidden(mask, random_perms(rng, mask)), other]) == 2


def test_bootstrap_over_inits_by_hand() -> None:
    """Equal pair values give a point interval; with one odd init out of four, a replicate's mean is the
    share of its pairs that involve that init, so the interval lies in [0, 1] around the plug-in 0.5."""
    rng = np.random.default_rng(0)
    assert bootstrap_pair_mean(np.full((5, 5), 0.25), rng) == (0.25, 0.25)
    odd = np.zeros((4, 4))
    odd[0, 1:] = odd[1:, 0] = 1.0  # 3 of the 6 pairs involve init 0
    lo, hi = bootstrap_pair_mean(odd, rng, reps=4000)
    assert 0.0 <= lo < 0.5 < hi <= 1.0
