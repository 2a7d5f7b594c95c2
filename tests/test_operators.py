"""Genetic operators on masks: crossover, mutation, repair and vary; invariants and hand computations."""

import dataclasses
import math
import random

import numpy as np
import pytest
import torch
from convtools import random_conv_mask
from masktools import random_mask, random_perms

from lotterysearch.core.alignment import permute_arrays, permute_hidden
from lotterysearch.core.masks import Mask
from lotterysearch.errors import ConfigError, MaskError
from lotterysearch.evolution.operators import (
    Child,
    VariationConfig,
    adapt_strength,
    draw_strength,
    gradient_regrow,
    grow_mutation,
    grow_prune_mutation,
    land_on_target,
    layer_crossover,
    layer_density_crossover,
    layer_density_mutation,
    layer_shares,
    magnitude_mutation,
    magnitude_prune_at,
    magnitude_prune_mutation,
    move_mutation,
    neuron_crossover,
    neuron_grow_mutation,
    neuron_prune_mutation,
    prune_mutation,
    repair,
    strength_prune_mutation,
    trained_weights_for,
    vary,
)
from lotterysearch.evolution.selection import select_parents


def storages(mask: Mask) -> set[int]:
    return {t.untyped_storage().data_ptr() for _, t in mask.items()}


def assert_no_alias(children: list[Mask], parents: list[Mask]) -> None:
    """Children own their storage (the cxTwoPoint-on-numpy pitfall: slices are views)."""
    parent_ptrs = set().union(*(storages(p) for p in parents))
    seen: set[int] = set()
    for c in children:
        ptrs = storages(c)
        assert not ptrs & parent_ptrs
        assert not ptrs & seen
        seen |= ptrs
    before = [p.copy() for p in parents]
    for c in children:
        for _, t in c.items():
            t.logical_not_()  # writing to a child ...
    assert parents == before  # ... never reaches a parent
    for c in children:
        for _, t in c.items():
            t.logical_not_()


@pytest.fixture
def pair() -> tuple[Mask, Mask]:
    rng = np.random.default_rng(0)
    return random_mask(rng), random_mask(rng)


# ---- crossover --------------------------------------------------------------------------------------


def test_layer_crossover_takes_whole_layers_complementarily(pair) -> None:
    a, b = pair
    a0, b0 = a.copy(), b.copy()
    seen = set()
    for seed in range(64):
        c1, c2 = layer_crossover(a, b, np.random.default_rng(seed))
        assert c1.shapes == c2.shapes == a.shapes
        pattern = []
        for n in a:
            assert (torch.equal(c1[n], a[n]) and torch.equal(c2[n], b[n])) or (
                torch.equal(c1[n], b[n]) and torch.equal(c2[n], a[n])
            )
            pattern.append(torch.equal(c1[n], b[n]))
        seen.add(tuple(pattern))
        assert_no_alias([c1, c2], [a, b])
    assert len(seen) == 2 ** len(a)  # all 8 layerwise choices occur
    assert (a, b) == (a0, b0)
    assert layer_crossover(a, b, np.random.default_rng(3)) == layer_crossover(a, b, np.random.default_rng(3))


def test_neuron_crossover_children_are_complementary(pair) -> None:
    a, b = pair
    a0, b0 = a.copy(), b.copy()
    c1, c2 = neuron_crossover(a, b, np.random.default_rng(1))
    for n in a:
        from_a = c1[n] == a[n]
        assert torch.all(from_a | (c1[n] == b[n]))
        assert torch.equal(c1[n].int() + c2[n].int(), a[n].int() + b[n].int())  # child 2 has the rest
    assert (a, b) == (a0, b0)
    assert_no_alias([c1, c2], [a, b])
    assert neuron_crossover(a, b, np.random.default_rng(1)) == (c1, c2)
    assert neuron_crossover(a, b, np.random.default_rng(2), p=0.0) == (a, b)
    assert neuron_crossover(a, b, np.random.default_rng(2), p=1.0) == (b, a)  # every hidden neuron swapped


def test_neuron_crossover_moves_a_neuron_with_its_row_and_column() -> None:
    """One hidden layer, b = ¬a: each neuron's (row in fc1, column in fc2) comes whole from one parent."""
    rng = np.random.default_rng(5)
    a = Mask({"fc1": rng.random((12, 4)) < 0.5, "fc2": rng.random((3, 12)) < 0.5})
    b = Mask({n: ~t for n, t in a.items()})
    c1, _ = neuron_crossover(a, b, rng)
    swapped = [torch.equal(c1["fc1"][j], b["fc1"][j]) for j in range(12)]
    for j in range(12):
        source = b if swapped[j] else a
        assert torch.equal(c1["fc1"][j], source["fc1"][j])
        assert torch.equal(c1["fc2"][:, j], source["fc2"][:, j])
    assert 0 < sum(swapped) < 12


def test_neuron_crossover_takes_a_weight_from_b_when_either_end_is_swapped() -> None:
    """a = 0, b = 1 makes child 1 the selector: S_l[j, k] = s_l[j] ∨ s_{l-1}[k] (inputs, outputs never)."""
    widths = (5, 8, 8, 4)
    a = Mask({f"fc{i}": np.zeros((widths[i], widths[i - 1]), bool) for i in range(1, 4)})
    b = Mask({n: ~t for n, t in a.items()})
    rng = np.random.default_rng(11)
    c1, c2 = neuron_crossover(a, b, rng)
    replay = np.random.default_rng(11)
    s = [np.zeros(5, bool), replay.random(8) < 0.5, replay.random(8) < 0.5, np.zeros(4, bool)]
    for i in range(1, 4):
        expected = s[i][:, None] | s[i - 1][None, :]
        assert np.array_equal(c1[f"fc{i}"].numpy(), expected)
        assert np.array_equal(c2[f"fc{i}"].numpy(), ~expected)
    assert 0 < s[1].sum() < 8 and 0 < s[2].sum() < 8


def test_crossover_rejects_mismatched_parents_and_bad_p(pair) -> None:
    a, _ = pair
    other = random_mask(np.random.default_rng(0), widths=(7, 4, 5, 3))
    with pytest.raises(MaskError, match=r"^parents have different layers or shapes: "):
        layer_crossover(a, other, np.random.default_rng(0))
    with pytest.raises(
        ConfigError, match=r"^neuron swap probability p must be a number in \[0, 1\], got 1\.5$"
    ):
        neuron_crossover(a, a, np.random.default_rng(0), p=1.5)
    broken = Mask({"fc1": np.ones((3, 2), bool), "fc2": np.ones((2, 4), bool)})
    with pytest.raises(MaskError, match=r"^mask layers 'fc1' \[3, 2\] and 'fc2' \[2, 4\] do not chain"):
        neuron_crossover(broken, broken, np.random.default_rng(0))


# ---- mutation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_move_mutation_keeps_every_layer_count_and_moves_round_rate_kept(rate: float) -> None:
    rng = np.random.default_rng(2)
    m = random_mask(rng, (20, 15, 10, 4), density=0.3)
    full = Mask({**m.to_numpy(), "fc3": np.ones((4, 10), bool)})  # no dead position: nothing can move
    m0 = full.copy()
    out = move_mutation(full, rng, rate)
    assert out.layer_kept() == full.layer_kept()
    assert full == m0
    for n, kept in full.layer_kept().items():
        dead = full.layer_total()[n] - kept
        moved = 0 if rate == 0 or dead == 0 else min(kept, dead, max(1, math.floor(rate * kept + 0.5)))
        assert int((out[n] != full[n]).sum()) == 2 * moved, n
    assert_no_alias([out], [full])


def test_mutation_counts_round_half_up() -> None:
    """kept = 5, rate = 0.5: 2.5 rounds to 3 (half up, not Python's half-to-even 2)."""
    m = Mask({"fc1": np.array([[1] * 5, [0] * 5], dtype=bool)})
    assert int((move_mutation(m, np.random.default_rng(0), 0.5)["fc1"] != m["fc1"]).sum()) == 6
    assert prune_mutation(m, np.random.default_rng(0), 0.5).kept() == 2
    assert grow_mutation(m, np.random.default_rng(0), 0.5).kept() == 8


def test_move_mutation_is_deterministic_and_uses_only_the_given_generator() -> None:
    m = random_mask(np.random.default_rng(0))
    np.random.seed(123)
    random.seed(123)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    a = move_mutation(m, np.random.default_rng(9), 0.2)
    b = grow_prune_mutation(m, np.random.default_rng(9), 0.2)
    vary([m, m, m], np.random.default_rng(9), VariationConfig(cx_rate=1.0, mut_rate=1.0))
    select_parents([(0.5, 0.1), (0.4, 0.2), (0.3, 0.3)], 3, np.random.default_rng(9))
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state
    assert a == move_mutation(m, np.random.default_rng(9), 0.2)
    assert b == grow_prune_mutation(m, np.random.default_rng(9), 0.2)
    assert a != move_mutation(m, np.random.default_rng(10), 0.2)


def test_grow_and_prune_change_each_layer_by_round_rate_kept() -> None:
    rng = np.random.default_rng(1)
    m = random_mask(rng, (20, 15, 10, 4), density=0.3)
    grown, pruned = grow_mutation(m, rng, 0.1), prune_mutation(m, rng, 0.1)
    for n, kept in m.layer_kept().items():
        step = max(1, math.floor(0.1 * kept + 0.5))
        assert grown.layer_kept()[n] == kept + step
        assert pruned.layer_kept()[n] == kept - step
        assert torch.all(grown[n] >= m[n]) and torch.all(pruned[n] <= m[n])  # only switched on / off
    empty = Mask({"fc1": np.zeros((2, 3), bool)})
    assert grow_mutation(empty, rng, 0.5).kept() == 1  # at least one even from nothing
    assert prune_mutation(empty, rng, 0.5) == empty
    with pytest.raises(ConfigError, match=r"^mutation rate must be a number in \[0, 1\], got -0\.1$"):
        prune_mutation(m, rng, -0.1)


def test_grow_prune_mutation_moves_both_ways_along_density() -> None:
    m = random_mask(np.random.default_rng(0), density=0.5)
    directions = {
        np.sign(grow_prune_mutation(m, np.random.default_rng(s), 0.2).kept() - m.kept()) for s in range(10)
    }
    assert directions == {-1, 1}


def test_repair_uncollapses_with_one_path_and_leaves_live_masks_alone() -> None:
    rng = np.random.default_rng(0)
    live = random_mask(rng, density=0.6)
    assert not live.is_collapsed()
    fixed = repair(live, rng)
    assert fixed == live and fixed is not live
    assert_no_alias([fixed], [live])

    cut = Mask({**live.to_numpy(), "fc2": np.zeros((5, 6), bool)})  # empty middle layer
    sparse = Mask(
        {"fc1": np.eye(6, 7, dtype=bool), "fc2": np.eye(5, 6, k=1, dtype=bool), "fc3": np.zeros((3, 5), bool)}
    )
    for broken in (cut, sparse):
        assert broken.is_collapsed()
        fixed = repair(broken, np.random.default_rng(1))
        assert not fixed.is_collapsed()
        added = {n: int(fixed[n].sum() - broken[n].sum()) for n in broken}
        assert all(0 <= k <= 1 for k in added.values()) and sum(added.values()) >= 1
        assert all(torch.all(fixed[n] >= broken[n]) for n in broken)  # only adds
        assert repair(broken, np.random.default_rng(1)) == fixed


# ---- vary -------------------------------------------------------------------------------------------


def test_vary_without_operators_clones_the_parents() -> None:
    rng = np.random.default_rng(0)
    parents = [random_mask(rng, density=0.6) for _ in range(5)]
    children = vary(parents, rng, VariationConfig(cx_rate=0.0, mut_rate=0.0))
    assert [c.mask for c in children] == parents
    assert [c.parents for c in children] == [(i,) for i in range(5)]
    assert {c.operator for c in children} == {"clone"}
    assert_no_alias([c.mask for c in children], parents)


def test_vary_crosses_pairs_then_mutates_then_repairs() -> None:
    rng = np.random.default_rng(1)
    parents = [random_mask(rng, density=0.6) for _ in range(5)]
    snapshot = [p.copy() for p in parents]
    cfg = VariationConfig(cx_rate=1.0, mut_rate=1.0, crossovers=("neuron",), mutations=("move_mutation",))
    children = vary(parents, np.random.default_rng(7), cfg)
    assert len(children) == 5 and all(isinstance(c, Child) for c in children)
    assert [c.parents for c in children] == [(0, 1), (0, 1), (2, 3), (2, 3), (4,)]
    assert [c.operator for c in children] == ["neuron_crossover+move_mutation"] * 4 + ["move_mutation"]
    assert all(c.mask != p for c, p in zip(children, parents, strict=True))
    assert children[4].mask.layer_kept() == parents[4].layer_kept()  # move mutation keeps the counts
    assert parents == snapshot
    assert_no_alias([c.mask for c in children], parents)
    again = vary(parents, np.random.default_rng(7), cfg)
    assert [(c.mask, c.parents, c.operator) for c in again] == [
        (c.mask, c.parents, c.operator) for c in children
    ]


def test_vary_names_repair_when_it_had_to_add_a_path() -> None:
    collapsed = Mask(
        {"fc1": np.ones((6, 7), bool), "fc2": np.zeros((5, 6), bool), "fc3": np.ones((3, 5), bool)}
    )
    (child,) = vary([collapsed], np.random.default_rng(0), VariationConfig(cx_rate=0.0, mut_rate=0.0))
    assert child.operator == "repair" and not child.mask.is_collapsed()


def test_aligned_crossover_of_a_relabelled_copy_gives_back_the_parent() -> None:
    """Competing conventions: a parent and its relabelled copy are the same network. Aligned, any
    crossover returns that network; unaligned, neuron crossover mixes unrelated neurons."""
    rng = np.random.default_rng(2)
    a = random_mask(rng, (10, 12, 12, 4), density=0.4)
    b = permute_hidden(a, random_perms(rng, a))
    aligned = VariationConfig(cx_rate=1.0, mut_rate=0.0, crossovers=("neuron_crossover",))
    unaligned = VariationConfig(cx_rate=1.0, mut_rate=0.0, crossovers=("neuron_crossover",), align=False)
    assert all(c.mask == a for c in vary([a, b], np.random.default_rng(0), aligned))
    mixed = vary([a, b], np.random.default_rng(0), unaligned)
    assert all(c.mask != a and c.mask != b for c in mixed)


def test_variation_config_validates_with_one_line_errors() -> None:
    cfg = VariationConfig(crossovers=["layer", "neuron_crossover"], crossover_weights=[1, 3])
    assert cfg.crossovers == ("layer_crossover", "neuron_crossover") and cfg.crossover_weights == (1.0, 3.0)
    assert VariationConfig().mutation_weights == (1.0, 1.0)
    with pytest.raises(
        ConfigError,
        match=r"^unknown operator 'uniform' in crossovers \(known: layer_crossover, layer_density_crossover, neuron_crossover\)$",
    ):
        VariationConfig(crossovers=("uniform",))
    with pytest.raises(ConfigError, match=r"^mutation_weights has 1 entries for 2 operators$"):
        VariationConfig(mutation_weights=(1.0,))
    with pytest.raises(ConfigError, match=r"^cx_rate must be a number in \[0, 1\], got 1\.2$"):
        VariationConfig(cx_rate=1.2)
    with pytest.raises(
        ConfigError, match=r"^crossover_weights must be non-negative numbers with a positive sum"
    ):
        VariationConfig(crossover_weights=(0, 0))
    with pytest.raises(ConfigError, match=r"^mutations must name at least one operator"):
        VariationConfig(mutations=())


# ---- layer-density, neuron-level and magnitude-informed operators -----------------------------------


def changed_layers(a: Mask, b: Mask) -> list[str]:
    return [n for n in a if not torch.equal(a[n], b[n])]


def live_neurons(mask: Mask) -> list[np.ndarray]:
    xs = list(mask.to_numpy().values())
    return [xs[h].any(axis=1) & xs[h + 1].any(axis=0) for h in range(len(xs) - 1)]


def test_layer_density_mutation_changes_one_layer_by_round_rate_kept() -> None:
    rng = np.random.default_rng(5)
    mask = random_mask(rng, widths=(30, 20, 20, 10), density=0.5)
    directions = set()
    for seed in range(40):
        child = layer_density_mutation(mask, np.random.default_rng(seed), 0.1)
        (name,) = changed_layers(mask, child)  # exactly one layer moves
        kept, now = int(mask[name].sum()), int(child[name].sum())
        assert abs(now - kept) == math.floor(0.1 * kept + 0.5)
        grew = now > kept
        directions.add(grew)
        old, new = mask[name], child[name]
        assert bool((old & ~new).any()) != grew and bool((new & ~old).any()) == grew  # one way only
        assert_no_alias([child], [mask])
    assert directions == {True, False}


def test_neuron_prune_mutation_removes_whole_neurons_of_one_layer() -> None:
    mask = Mask({"fc1": np.ones((10, 4), bool), "fc2": np.ones((6, 10), bool), "fc3": np.ones((3, 6), bool)})
    for seed in range(20):
        child = neuron_prune_mutation(mask, np.random.default_rng(seed), 0.25)
        before, after = live_neurons(mask), live_neurons(child)
        lost = [int(b.sum() - a.sum()) for b, a in zip(before, after, strict=True)]
        # one hidden layer loses round(0.25 · live) neurons: 3 of 10 or 2 of 6 (half up: 1.5 → 2)
        assert sorted(lost) in ([0, 3], [0, 2])
        h = lost.index(max(lost))
        xs = list(child.to_numpy().values())
        gone = np.flatnonzero(~after[h])
        assert not xs[h][gone].any() and not xs[h + 1][:, gone].any()  # row and column both off
        assert int(child.kept()) == int(mask.kept()) - lost[h] * (xs[h].shape[1] + xs[h + 1].shape[0])
    one = Mask(
        {"fc1": np.eye(3, 2, dtype=bool)[:, :2] * [[1, 1], [0, 0], [0, 0]], "fc2": np.ones((2, 3), bool)}
    )
    assert neuron_prune_mutation(one, np.random.default_rng(0), 1.0) == one  # the last live neuron stays


def test_neuron_grow_mutation_revives_dead_neurons_at_the_layer_fan() -> None:
    fc1 = np.zeros((5, 8), bool)
    fc1[0, :4] = fc1[1, 2:6] = True  # two live neurons, fan-in 4 each
    fc2 = np.zeros((3, 5), bool)
    fc2[:2, 0] = fc2[1:, 1] = True  # fan-out 2 each
    mask = Mask({"fc1": fc1, "fc2": fc2})
    child = neuron_grow_mutation(mask, np.random.default_rng(1), 0.5)  # round(0.5 · 2) = 1 neuron
    xs = list(child.to_numpy().values())
    born = np.flatnonzero(live_neurons(child)[0] & ~live_neurons(mask)[0])
    assert born.size == 1
    (j,) = born
    assert xs[0][j].sum() == 4 and xs[1][:, j].sum() == 2
    assert np.array_equal(xs[0][:2], fc1[:2]) and np.array_equal(xs[1][:, :2], fc2[:, :2])
    full = Mask({"fc1": np.ones((3, 2), bool), "fc2": np.ones((2, 3), bool)})
    assert neuron_grow_mutation(full, np.random.default_rng(0), 1.0) == full  # no dead neuron to revive


def test_layer_density_crossover_swaps_kept_counts_and_keeps_wiring(pair) -> None:
    a, b = pair
    seen = set()
    for seed in range(32):
        c1, c2 = layer_density_crossover(a, b, np.random.default_rng(seed))
        pattern = []
        for n in a:
            ka, kb = int(a[n].sum()), int(b[n].sum())
            k1, k2 = int(c1[n].sum()), int(c2[n].sum())
            assert {k1, k2} == {ka, kb} and (k1, k2) in ((ka, kb), (kb, ka))
            # child 1 is a's layer grown or pruned, never rewired: one contains the other
            assert bool((c1[n] <= a[n]).all()) or bool((a[n] <= c1[n]).all())
            assert bool((c2[n] <= b[n]).all()) or bool((b[n] <= c2[n]).all())
            if ka != kb:
                pattern.append(k1 == kb)
        seen.add(tuple(pattern))
        assert_no_alias([c1, c2], [a, b])
    assert len(seen) == 2 ** len(pattern) and len(pattern) >= 2  # every layerwise choice occurs
    same, _ = layer_density_crossover(a, a.copy(), np.random.default_rng(0))
    assert same == a


def test_magnitude_mutation_prunes_the_smallest_trained_weights_by_hand() -> None:
    x = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)  # 5 live, 3 dead
    w = np.array([[0.5, -0.1, 0.3, 9.0], [-0.2, 0.1, 7.0, 8.0]])  # |w| of the live: .5 .1 .3 .2 .1
    mask = Mask({"fc1": x})
    child = magnitude_mutation(mask, np.random.default_rng(0), 0.4, {"fc1": w})  # round(0.4 · 5) = 2
    c = child["fc1"].numpy()
    off = x & ~c
    assert off.tolist() == [[False, True, False, False], [False, True, False, False]]  # the two 0.1s
    assert int(c.sum()) == 5 and int((c & ~x).sum()) == 2  # as many regrown at dead positions
    with pytest.raises(MaskError, match=r"^trained weights of 'fc1' have shape \(2, 3\), the mask \(2, 4\)$"):
        magnitude_mutation(mask, np.random.default_rng(0), 0.4, {"fc1": w[:, :3]})


def test_magnitude_prune_mutation_is_one_round_of_imp_by_hand() -> None:
    x = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)  # 5 live
    w = np.array([[0.5, -0.1, 0.3, 9.0], [-0.2, 0.1, 7.0, 8.0]])  # |w| of the live: .5 .1 .3 .2 .1
    out = np.array([[1, 1, 1, 1, 1, 0]], bool)  # the output layer, pruned at half the rate
    mask = Mask({"fc1": x, "fc2": np.ones((1, 2), bool), "fc3": out})
    weights = {"fc1": w, "fc2": np.array([[3.0, 0.0]]), "fc3": np.array([[5.0, 4.0, -0.5, 3.0, 2.0, 0.0]])}
    child = magnitude_prune_mutation(mask, np.random.default_rng(0), 0.4, weights)  # round(0.4 · 5) = 2
    assert (x & ~child["fc1"].numpy()).tolist() == [[False, True, False, False], [False, True, False, False]]
    assert not (child["fc1"].numpy() & ~x).any()  # nothing regrows
    assert child["fc2"].numpy().tolist() == [[True, False]]  # round(0.4 · 2) = 1
    assert child["fc3"].numpy().tolist() == [[True, True, False, True, True, False]]  # round(0.2 · 5) = 1
    last = Mask({"fc1": x, "fc2": np.array([[1, 0]], bool), "fc3": out})
    assert magnitude_prune_mutation(last, np.random.default_rng(0), 0.4, weights)["fc2"].numpy().tolist() == [
        [True, False]
    ]  # a layer's last live weight stays
    assert magnitude_prune_mutation(mask, np.random.default_rng(1), 0.4, weights) == child  # rng unused
    with pytest.raises(MaskError, match=r"^trained weights of 'fc1' have shape \(2, 3\), the mask \(2, 4\)$"):
        magnitude_prune_mutation(mask, np.random.default_rng(0), 0.4, {**weights, "fc1": w[:, :3]})


def check_weights_follow_a_permuted_copy(
    trained: Mask, rng: np.random.Generator
) -> tuple[Mask, list[np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random weights on ``trained`` mapped onto a permuted copy land where the permutation puts them."""
    weights = {n: rng.normal(size=s) for n, s in trained.shapes.items()}
    perms = random_perms(rng, trained)
    parent = permute_hidden(trained, perms)
    mapped = trained_weights_for(parent, trained, weights)
    expect = permute_arrays([weights[n] * trained[n].numpy() for n in trained.names], perms)
    for n, e in zip(trained.names, expect, strict=True):
        assert np.array_equal(mapped[n], e)
    return parent, perms, weights, mapped


def test_trained_weights_follow_an_isomorph_onto_the_parent() -> None:
    rng = np.random.default_rng(2)
    trained = random_mask(rng, widths=(9, 8, 7, 4), density=0.5)
    parent, perms, weights, mapped = check_weights_follow_a_permuted_copy(trained, rng)
    # the same weights are pruned whichever isomorph the class was trained on
    off_parent = [
        parent[n].numpy() & ~m.numpy()
        for n, m in magnitude_mutation(parent, np.random.default_rng(0), 0.2, mapped).items()
    ]
    off_trained = [
        trained[n].numpy() & ~m.numpy()
        for n, m in magnitude_mutation(trained, np.random.default_rng(0), 0.2, weights).items()
    ]
    for got, want in zip(off_parent, permute_arrays(off_trained, perms), strict=True):
        assert np.array_equal(got, want)


def test_new_operators_are_reachable_by_short_name_in_vary(pair) -> None:
    cfg = VariationConfig(
        cx_rate=1.0,
        mut_rate=1.0,
        crossovers=("layer_density",),
        mutations=("layer_density", "neuron_grow", "neuron_prune"),
    )
    kids = vary(list(pair), np.random.default_rng(0), cfg)
    assert all(k.operator.startswith("layer_density_crossover+") for k in kids)
    assert {k.operator.split("+")[1] for k in kids} <= set(cfg.mutations)


# ---- convnets: channels are the hidden units ------------------------------------------------------
def test_neuron_crossover_on_a_convnet_swaps_channels_with_their_fc_blocks() -> None:
    rng = np.random.default_rng(1)
    a, b = random_conv_mask(rng, "conv:4x4x1:6:2", 0.5), random_conv_mask(rng, "conv:4x4x1:6:2", 0.5)
    c1, c2 = neuron_crossover(a, b, np.random.default_rng(3))
    xa, xb, x1, x2 = (m.to_numpy() for m in (a, b, c1, c2))
    swapped = [np.array_equal(x1["conv1"][j], xb["conv1"][j]) for j in range(6)]
    assert 0 < sum(swapped) < 6
    for j, s in enumerate(swapped):
        block = slice(16 * j, 16 * (j + 1))  # channel j's 4x4 fc inputs
        source, other = (xb, xa) if s else (xa, xb)
        assert np.array_equal(x1["conv1"][j], source["conv1"][j])
        assert np.array_equal(x1["fc1"][:, block], source["fc1"][:, block])
        assert np.array_equal(x2["conv1"][j], other["conv1"][j])
        assert np.array_equal(x2["fc1"][:, block], other["fc1"][:, block])


def test_neuron_prune_and_grow_mutations_on_a_convnet_act_on_whole_channels() -> None:
    rng = np.random.default_rng(2)
    mask = random_conv_mask(rng, "conv:4x4x1:6-4:3", 0.6)  # conv1 [6,1,3,3], conv2 [4,6,3,3], fc1 [3, 64]
    for seed in range(6):
        pruned = neuron_prune_mutation(mask, np.random.default_rng(seed), 0.5).to_numpy()
        x = mask.to_numpy()
        if not np.array_equal(pruned["conv1"], x["conv1"]):  # hidden layer 1: conv1's channels
            gone = [j for j in range(6) if x["conv1"][j].any() and not pruned["conv1"][j].any()]
            assert gone == [j for j in range(6) if x["conv2"][:, j].any() and not pruned["conv2"][:, j].any()]
            assert len(gone) == 3 and np.array_equal(pruned["fc1"], x["fc1"])
        else:  # hidden layer 2: conv2's channels with their fc1 blocks
            gone = [j for j in range(4) if x["conv2"][j].any() and not pruned["conv2"][j].any()]
            assert len(gone) == 2
            for j in gone:
                assert not pruned["fc1"][:, 16 * j : 16 * (j + 1)].any()
    xs = mask.to_numpy()
    xs["conv2"][[1, 3]] = False  # channels 1 and 3 of conv2 dead
    grew_layer_2 = 0
    for seed in range(8):
        grown = neuron_grow_mutation(Mask(xs), np.random.default_rng(seed), 0.5).to_numpy()
        changed = [j for j in (1, 3) if grown["conv2"][j].any()]
        if changed:  # the mutation drew hidden layer 2: one dead channel (round(0.5 · 2 live)) comes alive
            (j,) = changed
            assert grown["fc1"][:, 16 * j : 16 * (j + 1)].any()
            assert int(grown["conv2"][j].sum()) == round(xs["conv2"][[0, 2]].sum() / 2)
            grew_layer_2 += 1
    assert grew_layer_2 > 0


def test_repair_of_a_collapsed_convnet_mask_adds_one_entry_per_layer() -> None:
    xs = random_conv_mask(np.random.default_rng(4), "conv:6x6x1:3-4-M:5-3", 0.3).to_numpy()
    xs["conv2"][:] = False
    collapsed = Mask(xs)
    assert collapsed.is_collapsed()
    fixed = repair(collapsed, np.random.default_rng(0))
    assert not fixed.is_collapsed()
    assert [int((fixed[n].numpy() & ~collapsed[n].numpy()).sum()) <= 1 for n in fixed.names] == [True] * 4
    assert int(fixed["conv2"].sum()) == 1


def test_vary_and_trained_weights_on_convnet_masks() -> None:
    rng = np.random.default_rng(5)
    spec = "cnn1d:8:3k3-3:4-2"
    parents = [random_conv_mask(rng, spec, 0.4) for _ in range(4)]
    cfg = VariationConfig(
        cx_rate=1.0,
        mut_rate=1.0,
        crossovers=("neuron_crossover", "layer_crossover"),
        mutations=("neuron_grow_mutation", "neuron_prune_mutation", "move_mutation"),
    )
    children = vary(parents, np.random.default_rng(0), cfg)
    assert [c.mask.shapes for c in children] == [p.shapes for p in parents]
    assert all(not c.mask.is_collapsed() for c in children)
    check_weights_follow_a_permuted_copy(parents[0], rng)


def test_neuron_prune_mutation_leaves_a_layer_without_live_neurons_as_it_is() -> None:
    mask = Mask({"fc1": np.zeros((4, 3), dtype=bool), "fc2": np.ones((2, 4), dtype=bool)})
    assert neuron_prune_mutation(mask, np.random.default_rng(0), 0.5) == mask


# ---- strength mutations: a child's own prune strength, regrowth by gradient -----------------------------


def test_adapt_strength_is_log_normal_around_the_parent_with_variance_tau_squared() -> None:
    rng = np.random.default_rng(5)
    n, sigma, tau = 20_000, 0.3, 0.2
    logs = np.array([math.log(adapt_strength((sigma,), rng, tau, 1e-6, 0.999)[0] / sigma) for _ in range(n)])
    # log σ' − log σ ~ N(0, τ²): mean within 4 standard errors of 0, variance within 4 of τ²
    assert abs(logs.mean()) < 4 * tau / math.sqrt(n)
    assert abs(logs.var(ddof=1) - tau**2) < 4 * tau**2 * math.sqrt(2 / (n - 1))
    # τ = 0 stands for 1/√n: a gene of 4 strengths has log-variance 1/4 in every entry
    genes = np.array([adapt_strength((0.3,) * 4, rng, 0.0, 1e-6, 0.999) for _ in range(n // 4)])
    per_entry = np.log(genes / 0.3).var(axis=0, ddof=1)
    assert np.all(np.abs(per_entry - 0.25) < 4 * 0.25 * math.sqrt(2 / (n // 4 - 1)))


def test_strength_draws_come_from_the_given_generator_only_and_are_clipped() -> None:
    random.seed(0)
    np.random.seed(0)
    before = (random.getstate(), np.random.get_state()[1].copy())
    a = [adapt_strength((0.5, 0.5), np.random.default_rng(3), 2.0, 0.1, 0.6) for _ in range(2)]
    assert a[0] == a[1] and all(0.1 <= v <= 0.6 for v in a[0])
    many = [adapt_strength((0.5,), np.random.default_rng(s), 2.0, 0.1, 0.6)[0] for s in range(200)]
    assert min(many) == 0.1 and max(many) == 0.6  # τ = 2 reaches both bounds, which clip
    drawn = draw_strength(np.random.default_rng(4), 1000, 0.2, 0.7)
    assert drawn == draw_strength(np.random.default_rng(4), 1000, 0.2, 0.7)
    assert 0.2 <= min(drawn) < 0.21 and 0.69 < max(drawn) <= 0.7
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])
    with pytest.raises(ConfigError, match=r"^a strength gene must be positive numbers, got \[0\.2, 0\.0\]$"):
        adapt_strength((0.2, 0.0), np.random.default_rng(0), 0.1, 0.1, 0.6)


def test_strength_prune_removes_exactly_the_share_of_each_layer_by_magnitude() -> None:
    rng = np.random.default_rng(8)
    mask = random_mask(rng, (30, 20, 12, 5), density=0.7)
    weights = {n: rng.normal(size=s) for n, s in mask.shapes.items()}
    gene = (0.45, 0.3, 0.6)  # per layer; the output layer prunes at half: 0.3
    child = strength_prune_mutation(mask, gene, weights)
    for name, share in zip(mask.names, (0.45, 0.3, 0.3), strict=True):
        x, c = mask[name].numpy(), child[name].numpy()
        kept = int(x.sum())
        assert int((x & ~c).sum()) == math.floor(share * kept + 0.5)  # exactly round(σ'·kept)
        assert not (c & ~x).any()
        # every weight pruned is no larger than every weight kept
        assert np.abs(weights[name][x & ~c]).max() <= np.abs(weights[name][c]).min()
    one = strength_prune_mutation(mask, (0.4,), weights)  # one strength for the network
    assert one == magnitude_prune_mutation(mask, rng, 0.4, weights)  # IMP's round at 0.4, output at 0.2
    assert layer_shares((0.4,), 3) == [0.4, 0.4, 0.2]
    with pytest.raises(ConfigError, match=r"^a strength gene has 1 or 3 entries \(one per layer\), got 2$"):
        layer_shares((0.4, 0.5), 3)


def test_a_child_that_would_pass_a_target_density_lands_on_it_by_hand() -> None:
    mask = Mask({"fc1": np.ones((10, 10), bool)})
    weights = {"fc1": np.arange(100.0).reshape(10, 10) - 30}  # |w| smallest at 30, then 29 and 31, ...
    # share 0.9 keeps 10 of 100; the target 0.35 lies between: c = 65/90 prunes 65, keeping the 35 largest |w|
    child = land_on_target(mask, weights, [0.9], [0.35])
    order = np.argsort(np.abs(weights["fc1"]).reshape(-1), kind="stable")
    assert child.kept() == 35
    assert np.flatnonzero(child["fc1"].numpy().reshape(-1)).tolist() == sorted(order[65:].tolist())
    # two targets passed: the highest; a target above the parent or not reached changes nothing
    assert land_on_target(mask, weights, [0.9], [0.2, 0.35]) == child
    for targets in ([], [0.05], [1.0]):
        assert land_on_target(mask, weights, [0.9], targets) == magnitude_prune_at(mask, weights, [0.9])


def test_landing_scales_every_layer_by_one_factor_and_stays_inside_the_full_prune() -> None:
    rng = np.random.default_rng(5)
    mask = random_mask(rng, (30, 20, 12, 5), density=0.6)
    weights = {n: rng.normal(size=s) for n, s in mask.shapes.items()}
    shares = layer_shares((0.7,), 3)
    full = magnitude_prune_at(mask, weights, shares)
    target = (mask.density() + full.density()) / 2
    child = strength_prune_mutation(mask, (0.7,), weights, targets=[target])
    assert full.density() < child.density() <= target
    assert child.kept() >= math.floor(target * mask.total()) - 3  # one weight per layer of rounding at most
    for (
        name
    ) in mask.names:  # magnitude order: the full prune's child inside the landed one, inside the parent
        f, c, x = (m[name].numpy() for m in (full, child, mask))
        assert not (f & ~c).any() and not (c & ~x).any()
    with pytest.raises(ConfigError, match=r"^density targets and regrowth exclude each other"):
        strength_prune_mutation(mask, (0.7,), weights, {}, 0.5, [target])


def test_gradient_regrow_grows_the_top_k_absolute_gradients_among_candidates_by_hand() -> None:
    x = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], bool)
    g = np.array([[np.nan, 0.3, -0.9, 0.1], [-0.5, 0.5, np.nan, 2.0]])  # NaN: no candidate
    out = np.array([[1, 0]], bool)
    mask = Mask({"fc1": x, "fc2": out})
    grads = {"fc1": g, "fc2": np.array([[np.nan, -1.0]])}
    grown = gradient_regrow(mask, grads, [3, 0])
    # |g| among the dead: 2.0, 0.9, then 0.5 twice (a tie: the lower flat index, (1, 0)), then 0.3, 0.1
    assert grown["fc1"].numpy().tolist() == [[True, False, True, False], [True, False, True, True]]
    assert grown["fc2"].numpy().tolist() == [[True, False]]
    assert gradient_regrow(mask, {**grads, "fc1": np.where(np.isnan(g), np.nan, 0 * g)}, [1, 1]) == Mask(
        {"fc1": np.array([[1, 1, 0, 0], [0, 0, 1, 0]], bool), "fc2": np.array([[1, 1]], bool)}
    )  # all |g| equal: the lowest dead index with a gradient
    with pytest.raises(MaskError, match=r"^gradients of 'fc1' have shape \(2, 3\), the mask \(2, 4\)$"):
        gradient_regrow(mask, {**grads, "fc1": g[:, :3]}, [1, 0])


def test_drop_and_grow_leaves_the_density_it_is_set_to() -> None:
    rng = np.random.default_rng(11)
    mask = random_mask(rng, (40, 30, 20, 10), density=0.5)
    weights = {n: rng.normal(size=s) * mask[n].numpy() for n, s in mask.shapes.items()}
    # the parent's gradient at its pruned positions only (NaN where it kept a weight)
    grads = {n: np.where(mask[n].numpy(), np.nan, rng.normal(size=s)) for n, s in mask.shapes.items()}
    for regrow in (0.0, 0.5, 1.0):
        child = strength_prune_mutation(mask, (0.4,), weights, grads, regrow)
        for name, share in zip(mask.names, (0.4, 0.4, 0.2), strict=True):
            kept = int(mask[name].sum())
            dropped = math.floor(share * kept + 0.5)
            assert int(child[name].sum()) == kept - dropped + math.floor(regrow * dropped + 0.5)
            grown = child[name].numpy() & ~mask[name].numpy()
            if grown.any():  # the grown ones are the largest |g| among the parent's pruned positions
                dead = ~mask[name].numpy() & ~grown
                assert np.abs(grads[name][grown]).min() >= np.abs(grads[name][dead]).max()
    with pytest.raises(ConfigError, match=r"^regrowth by gradient needs the parent's gradients"):
        strength_prune_mutation(mask, (0.4,), weights, None, 0.5)


def test_adaptive_strength_gives_one_parent_many_different_children() -> None:
    rng = np.random.default_rng(2)
    parent = random_mask(rng, (30, 20, 12, 5), density=0.8)
    weights = {n: rng.normal(size=s) for n, s in parent.shapes.items()}
    cfg = VariationConfig(
        cx_rate=0.0, mut_rate=1.0, mutations=("adaptive_prune",), mutation_strength=0.4, strength_tau=0.3
    )
    kids = vary([parent] * 8, np.random.default_rng(0), cfg, lambda i, m: weights, genes=[(0.4,)] * 8)
    assert len({k.mask.pack() for k in kids}) == 8  # magnitude_prune_mutation gives one child, eight times
    assert len({k.strength for k in kids}) == 8 and all(k.operator == "adaptive_prune_mutation" for k in kids)
    for k in kids:
        assert int((parent["fc1"].numpy() & ~k.mask["fc1"].numpy()).sum()) == math.floor(
            k.strength[0] * int(parent["fc1"].sum()) + 0.5
        )
    again = vary([parent] * 8, np.random.default_rng(0), cfg, lambda i, m: weights, genes=[(0.4,)] * 8)
    assert [k.strength for k in again] == [k.strength for k in kids]
    clones = vary([parent], rng, VariationConfig(cx_rate=0.0, mut_rate=0.0), genes=[(0.3,)])
    assert clones[0].strength == (0.3,)  # a gene is inherited where no strength mutation applied
    per_layer = dataclasses.replace(cfg, strength_per_layer=True, mutations=("drawn_prune",))
    (drawn,) = vary([parent], rng, per_layer, lambda i, m: weights)
    assert len(drawn.strength) == 3 and all(0.05 <= s <= 0.9 for s in drawn.strength)
