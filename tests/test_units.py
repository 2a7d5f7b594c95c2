"""Unit-level views of masks: live units, their overlap and its chance level, the degree-preserving shuffle, the
layerwise shuffle at the mask's effective density."""

from collections import Counter
from itertools import permutations

import numpy as np
import pytest
import torch

from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model
from lotterysearch.core.units import (
    chance_unit_jaccard,
    curveball,
    degree_preserving_shuffle,
    effective_matched_shuffle,
    live_unit_counts,
    live_units,
    unit_jaccard,
)
from lotterysearch.pruning.pruners import prune


def chain(*arrays: list[list[int]]) -> Mask:
    return Mask({f"fc{i + 1}": np.array(a, dtype=bool) for i, a in enumerate(arrays)})


def test_live_units_follow_the_effective_subnetwork() -> None:
    """Input 2 feeds hidden unit 1, which reaches no output: neither is live; hidden 0 carries both paths."""
    mask = chain([[1, 1, 0], [0, 0, 1]], [[1, 0], [1, 0]])
    assert [u.tolist() for u in live_units(mask)] == [[True, True, False], [True, False], [True, True]]
    assert live_unit_counts(mask) == [2, 1, 2]


def test_unit_jaccard_and_its_chance_level_by_hand() -> None:
    a = chain([[1, 1, 0], [0, 0, 0]], [[1, 0], [1, 0]])  # live inputs {0, 1}
    b = chain([[0, 1, 1], [0, 0, 0]], [[1, 0], [0, 0]])  # live inputs {1, 2}, one output
    assert unit_jaccard(a, b) == [1 / 3, 1.0, 1 / 2]
    # two live inputs of three on each side: |A∩B| is 1 (prob 2/3) or 2 (prob 1/3), J = 1/3 or 1
    chance = chance_unit_jaccard(a, b)
    assert chance[0] == pytest.approx(2 / 3 * 1 / 3 + 1 / 3 * 1)
    assert chance[1] == pytest.approx(
        1 / 2
    )  # one hidden unit of two on each side: the same one half the time
    assert chance[2] == pytest.approx(1 / 2)  # two and one of two outputs: always one shared of two


def test_curveball_keeps_row_and_column_sums() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((30, 50)) < 0.2
    out = curveball(m, rng, 500)
    assert (out.sum(axis=1) == m.sum(axis=1)).all() and (out.sum(axis=0) == m.sum(axis=0)).all()
    assert (out != m).any()  # it moved something


def test_a_staircase_matrix_is_the_only_one_with_its_margins() -> None:
    """A Ferrers (staircase) matrix is the unique 0-1 matrix with its row and column sums (Gale-Ryser)."""
    stairs = np.tril(np.ones((6, 6), dtype=bool))
    assert (curveball(stairs, np.random.default_rng(1), 200) == stairs).all()


def test_curveball_draws_the_permutation_matrices_uniformly() -> None:
    """Margins all 1 on 3x3: the six permutation matrices, each about 1/6 of the draws."""
    rng = np.random.default_rng(2)
    seen = Counter(tuple(np.argmax(curveball(np.eye(3, dtype=bool), rng, 15), axis=1)) for _ in range(3000))
    assert set(seen) == set(permutations(range(3)))
    assert max(seen.values()) - min(seen.values()) < 150  # 500 expected each; sd about 20


def test_degree_preserving_shuffle_keeps_every_units_degrees_where_a_layerwise_shuffle_does_not() -> None:
    model = build_model("mlp:40-100-100-10", 0)
    mask = prune(model, "synflow", 100.0, data=None, seed=0)
    rng = np.random.default_rng(3)
    kept = degree_preserving_shuffle(mask, rng)
    even = layerwise_shuffle(mask, rng)
    for name in mask:
        m, k, e = (x[name].numpy() for x in (mask, kept, even))
        assert (k.sum(axis=1) == m.sum(axis=1)).all() and (k.sum(axis=0) == m.sum(axis=0)).all()
        assert k.sum() == m.sum() == e.sum()
    # SynFlow's uneven in-degrees of fc1's units are kept by one and evened out by the other
    fc1 = mask["fc1"].numpy().sum(axis=1)
    assert (kept["fc1"].numpy().sum(axis=1) == fc1).all()
    assert (even["fc1"].numpy().sum(axis=1) > 0).sum() > (fc1 > 0).sum()


def test_degree_preserving_shuffle_of_a_convolution_keeps_channel_degrees() -> None:
    rng = np.random.default_rng(4)
    conv = torch.from_numpy(rng.random((8, 3, 3, 3)) < 0.3)
    mask = Mask({"conv1": conv, "fc1": torch.from_numpy(rng.random((10, 8 * 4)) < 0.5)})
    out = degree_preserving_shuffle(mask, rng)["conv1"].numpy()
    c = conv.numpy()
    assert (out.sum(axis=(1, 2, 3)) == c.sum(axis=(1, 2, 3))).all()  # each output channel's kept weights
    assert (out.sum(axis=(0, 2, 3)) == c.sum(axis=(0, 2, 3))).all()  # each input channel's


def test_the_matched_shuffle_has_the_masks_effective_density_where_a_layerwise_shuffle_loses_it() -> None:
    """An 8-8-8-2 chain whose 24 kept weights all lie on paths: inputs 0-7 into hidden units 0 and 1, those
    into the next layer's 0 and 1, those into both outputs. A layerwise shuffle of its 4 weights of fc2 and
    of fc3 strands most of them; the matched shuffle scales every layer's count by one common factor until
    its effective kept count is 24 again, within the tolerance (2% of 24, so one weight)."""
    hidden = [[1] * 8 if i < 2 else [0] * 8 for i in range(8)]
    middle = [[1, 1, 0, 0, 0, 0, 0, 0] if i < 2 else [0] * 8 for i in range(8)]
    mask = chain(hidden, middle, [[1, 1, 0, 0, 0, 0, 0, 0]] * 2)
    assert mask.effective().kept() == mask.kept() == 24
    for seed in range(10):
        rng = np.random.default_rng(seed)
        plain = [layerwise_shuffle(mask, rng).effective().kept() for _ in range(20)]
        matched = effective_matched_shuffle(mask, rng)
        assert abs(matched.effective().kept() - 24) <= 1
        assert np.mean(plain) < 20  # the plain shuffle loses effective weights
        # one common factor f > 1 behind the counts (16, 4, 4): round(f·k) = k' for every layer
        k = matched.layer_kept()
        lo = max((k[n] - 0.5) / c for n, c in (("fc1", 16), ("fc2", 4), ("fc3", 4)))
        hi = min((k[n] + 0.5) / c for n, c in (("fc1", 16), ("fc2", 4), ("fc3", 4)))
        assert 1 < hi and lo <= hi


def test_the_matched_shuffle_of_a_synflow_mask_and_of_a_collapsed_one() -> None:
    """On SynFlow's ρ = 100 mask of the 1-D CNN (51 weights, all effective) the matched shuffle's effective
    count is within one weight of the mask's; a collapsed mask has nothing to match and keeps its counts."""
    mask = prune(build_model("cnn1d:40:25k5-25-25:10", 0), "synflow", 100.0, data=None, seed=0)
    rng = np.random.default_rng(5)
    matched = effective_matched_shuffle(mask, rng)
    assert abs(matched.effective().kept() - mask.effective().kept()) <= 1
    assert (
        matched.kept() > mask.kept() and layerwise_shuffle(mask, rng).effective().kept() < 0.5 * mask.kept()
    )
    collapsed = chain([[1, 0], [0, 0]], [[0, 1]])  # input 0 feeds hidden 0, only hidden 1 feeds the output
    assert collapsed.effective().kept() == 0
    assert effective_matched_shuffle(collapsed, rng).layer_kept() == collapsed.layer_kept()
