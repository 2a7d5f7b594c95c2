"""Colour refinement, shared by class keys and alignment: its own properties, and keys and alignments
pinned on a fixed set of masks (MLPs with dead units and twins, masks whose automorphisms are not twin
swaps, convnets), so that a change to the refinement that moves any key or any alignment fails here.

Runtime: about 7 s on 2 shared cores.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from convtools import random_conv_mask
from masktools import random_mask, random_perms, structured_mask

from lotterysearch.core.alignment import align, alignment, permute_hidden
from lotterysearch.core.canon import class_key
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.refinement import Digraph, individualize, rank, refine
from lotterysearch.evolution.operators import move_mutation

# sha256 over the keys and the alignment permutations of ``_pinned_pairs`` below, computed with the
# refinement as it was before canon and alignment shared it (each module had its own copy then).
PINNED_KEYS = "651e29d542166b3989dca66b0f66a76c"
PINNED_ALIGNMENTS = "a90f34e5c095154f26a1fc5141834974"


def mirrored_pairs(rng: np.random.Generator, widths: tuple[int, int, int, int]) -> Mask:
    """A random mask rewired so that hidden units 2k and 2k+1 of layer 1 share their inputs and feed only
    units 2k and 2k+1 of layer 2 (one each), which share their outputs: swapping both pairs at once is an
    automorphism, yet no two units are twins, so refinement alone cannot finish and the search branches."""
    m = random_mask(rng, widths, 0.3).to_numpy()
    fc1, fc2, fc3 = m.values()
    for k in range(0, min(widths[1], widths[2]) - 1, 2):
        fc1[k + 1] = fc1[k]
        fc2[:, k : k + 2] = False
        fc2[k : k + 2, :] = False
        fc2[k, k] = fc2[k + 1, k + 1] = True
        fc3[:, k + 1] = fc3[:, k]
    return Mask(m)


def _pinned_pairs() -> list[tuple[Mask, Mask]]:
    """(reference, other) pairs: permuted copies, same-count shuffles and relabelled near copies."""
    pairs = []
    for seed in range(24):
        rng = np.random.default_rng(seed)
        depth = int(rng.integers(1, 4))
        widths = (
            int(rng.integers(3, 30)),
            *rng.integers(2, 25, size=depth).tolist(),
            int(rng.integers(2, 8)),
        )
        density = float(rng.choice([0.03, 0.1, 0.3, 0.6, 0.9]))
        ref = structured_mask(rng, widths, density, dead_in=float(rng.choice([0.0, 0.3])))
        pairs.append((ref, permute_hidden(ref, random_perms(rng, ref))))
        pairs.append((ref, layerwise_shuffle(ref, rng)))
        pairs.append((ref, permute_hidden(move_mutation(ref, rng, 0.05), random_perms(rng, ref))))
        sym = mirrored_pairs(rng, (int(rng.integers(3, 9)), 8, 8, 3))
        pairs.append((sym, permute_hidden(sym, random_perms(rng, sym))))
    for spec in ("conv:6x6x1:3-4-M:5-3", "cnn1d:8:3k3-3:4-2", "conv:4x4x2:6:4"):
        for seed in range(6):
            rng = np.random.default_rng(seed)
            ref = random_conv_mask(rng, spec, float(rng.choice([0.05, 0.2, 0.5, 0.9])))
            pairs.append((ref, permute_hidden(ref, random_perms(rng, ref))))
            pairs.append((ref, layerwise_shuffle(ref, rng)))
            pairs.append((ref, permute_hidden(move_mutation(ref, rng, 0.1), random_perms(rng, ref))))
    return pairs


def _digests(pairs: list[tuple[Mask, Mask]]) -> tuple[str, str]:
    keys, perms = hashlib.sha256(), hashlib.sha256()
    for ref, other in pairs:
        keys.update(f"{class_key(ref)} {class_key(other)}\n".encode())
        for p in alignment(ref, other):
            perms.update(np.asarray(p, dtype=np.int64).tobytes())
    return keys.hexdigest()[:32], perms.hexdigest()[:32]


def test_keys_and_alignments_of_a_fixed_mask_set_are_pinned() -> None:
    assert _digests(_pinned_pairs()) == (PINNED_KEYS, PINNED_ALIGNMENTS)


@pytest.mark.parametrize("seed", range(20))
def test_masks_with_automorphisms_beyond_twins_key_equal_and_align_back(seed: int) -> None:
    """The two theorems on masks where refinement stops short of discrete: every relabelling has the key
    of the original, and aligning it gives back the original exactly (the search branched to find it)."""
    rng = np.random.default_rng(seed)
    mask = mirrored_pairs(rng, (int(rng.integers(3, 9)), 8, 8, 3))
    for _ in range(3):
        other = permute_hidden(mask, random_perms(rng, mask))
        assert class_key(other) == class_key(mask)
        assert align(mask, other) == mask


def test_mirrored_pairs_are_not_discrete_after_refinement() -> None:
    """The automorphism of ``mirrored_pairs`` (units 0 and 1 of both hidden layers swapped) leaves
    refinement with cells of two; individualizing unit 0 of layer 1 splits everything."""
    mask = mirrored_pairs(np.random.default_rng(0), (4, 4, 4, 2))
    xs = list(mask.to_numpy().values())
    offsets = np.cumsum([0, 4, 4, 4, 2])
    src, dst = [], []
    for t, x in enumerate(xs):
        r, c = np.nonzero(x)
        src.append(c + offsets[t])
        dst.append(r + offsets[t + 1])
    g = Digraph(14, np.concatenate(src), np.concatenate(dst), np.zeros(sum(map(len, src)), int), False)
    layer = np.repeat(np.arange(4), [4, 4, 4, 2])
    fixed_index = np.where(
        (layer == 0) | (layer == 3), np.concatenate([np.arange(w) for w in (4, 4, 4, 2)]), 0
    )
    colour = refine(rank(layer, fixed_index), g)
    assert colour[4] == colour[5] and colour[8] == colour[9]
    split = refine(individualize(colour, [4]), g)
    assert len(np.unique(split[[4, 5, 8, 9]])) == 4


def test_rank_and_individualize_by_hand() -> None:
    assert rank(np.array([2, 0, 2, 1]), np.array([5, 9, 4, 9])).tolist() == [3, 0, 2, 1]
    colour = np.array([0, 1, 1, 1, 2])
    # one vertex: its own colour just before the rest of its cell, later cells shift up
    assert individualize(colour, [2]).tolist() == [0, 2, 1, 2, 3]
    # groups in the order given, then the rest of the cell
    assert individualize(colour, [3], [1]).tolist() == [0, 2, 3, 1, 4]


def test_refine_is_equivariant_and_labels_split_cells() -> None:
    """Relabelling the vertices relabels the stable colouring; an edge label alone can split a cell."""
    rng = np.random.default_rng(5)
    n, e = 12, 30
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    lab = rng.integers(0, 3, e)
    start = np.zeros(n, dtype=np.int64)
    for labelled in (False, True):
        colour = refine(start, Digraph(n, src, dst, lab, labelled))
        perm = rng.permutation(n)  # vertex v becomes perm[v]
        moved = refine(start, Digraph(n, perm[src], perm[dst], lab, labelled))
        assert np.array_equal(moved[perm], colour)
    # 0 -> 1 and 0 -> 2 differ only in their labels
    src, dst = np.array([0, 0]), np.array([1, 2])
    start = np.array([0, 1, 1])
    assert refine(start, Digraph(3, src, dst, np.array([0, 0]), True)).tolist() == [0, 1, 1]
    assert refine(start, Digraph(3, src, dst, np.array([0, 1]), True)).tolist() in ([0, 1, 2], [0, 2, 1])
