"""Alignment of hidden neurons: exact on permuted copies, a relabelling otherwise."""

import numpy as np
import pytest
from convtools import random_conv_mask
from masktools import degree_multisets, random_mask, random_perms, structured_mask

from lotterysearch.core.alignment import agreement, align, alignment, permute_hidden
from lotterysearch.core.canon import class_key
from lotterysearch.core.masks import Mask
from lotterysearch.errors import MaskError
from lotterysearch.evolution.operators import move_mutation


@pytest.mark.parametrize("seed", range(60))
def test_align_recovers_a_permuted_copy_exactly(seed: int) -> None:
    """Random depths, widths and densities, with dead rows and twins: weight matching alone stalls on
    many of these (shared incoming rows); the exact path must map every permuted copy back."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 4))
    widths = (int(rng.integers(3, 30)), *rng.integers(2, 25, size=depth).tolist(), int(rng.integers(2, 8)))
    density = float(rng.choice([0.03, 0.1, 0.3, 0.6, 0.9]))
    reference = structured_mask(rng, widths, density, dead_in=float(rng.choice([0.0, 0.3])))
    other = permute_hidden(reference, random_perms(rng, reference))
    other0 = other.copy()
    assert align(reference, other) == reference
    assert other == other0


def test_align_recovers_lenet_sized_copy() -> None:
    rng = np.random.default_rng(0)
    reference = structured_mask(rng, (784, 300, 100, 10), 0.05, dead_in=0.2)
    assert align(reference, permute_hidden(reference, random_perms(rng, reference))) == reference


def test_align_returns_a_relabelling_of_other() -> None:
    rng = np.random.default_rng(3)
    reference, other = random_mask(rng, (10, 16, 12, 4)), random_mask(rng, (10, 16, 12, 4), density=0.2)
    perms = alignment(reference, other)
    for perm, width in zip(perms, (16, 12), strict=True):
        assert sorted(perm.tolist()) == list(range(width))
    aligned = align(reference, other)
    assert aligned == permute_hidden(other, perms)
    assert degree_multisets(aligned) == degree_multisets(other)
    assert aligned.layer_kept() == other.layer_kept()
    assert class_key(aligned) == class_key(other) != class_key(reference)
    assert agreement(reference, aligned) > agreement(reference, other)


def test_align_undoes_the_relabelling_of_a_mutated_copy() -> None:
    """Crossing a parent with a relabelled near-copy should see the near-copy: alignment gives back at
    least the agreement of the unrelabelled pair (here exactly: the move touched 5% of weights)."""
    rng = np.random.default_rng(4)
    reference = random_mask(rng, (20, 40, 30, 5), density=0.2)
    near = move_mutation(reference, rng, 0.05)
    relabelled = permute_hidden(near, random_perms(rng, near))
    assert agreement(reference, relabelled) < agreement(reference, near)
    assert agreement(reference, align(reference, relabelled)) == agreement(reference, near)


def test_permute_hidden_round_trips_and_validates() -> None:
    rng = np.random.default_rng(0)
    m = random_mask(rng)
    perms = random_perms(rng, m)
    inverse = [np.argsort(p) for p in perms]
    assert permute_hidden(permute_hidden(m, perms), inverse) == m
    with pytest.raises(
        MaskError, match=r"^perms\[1\] is not a permutation of the 5 neurons of hidden layer 2$"
    ):
        permute_hidden(m, [perms[0], np.zeros(5, int)])
    with pytest.raises(MaskError, match=r"^need 2 hidden-layer permutations, got 1$"):
        permute_hidden(m, perms[:1])


def test_permute_hidden_on_a_convnet_moves_channels_with_their_fc_blocks() -> None:
    rng = np.random.default_rng(4)
    mask = random_conv_mask(
        rng, "conv:4x4x1:3-2-M:5-3", 0.5
    )  # conv1 [3,1,3,3], conv2 [2,3,3,3], fc1 [5, 2·4]
    perms = [np.array([2, 0, 1]), np.array([1, 0]), rng.permutation(5)]
    moved = permute_hidden(mask, perms).to_numpy()
    xs = mask.to_numpy()
    assert np.array_equal(moved["conv1"], xs["conv1"][[2, 0, 1]])
    assert np.array_equal(moved["conv2"], xs["conv2"][[1, 0]][:, [2, 0, 1]])
    # channel 1's block of 4 fc inputs (2×2 after the pool) is now first, channel 0's second
    assert np.array_equal(
        moved["fc1"], np.concatenate([xs["fc1"][:, 4:], xs["fc1"][:, :4]], axis=1)[perms[2]]
    )
    assert np.array_equal(moved["fc2"], xs["fc2"][:, perms[2]])
    assert class_key(permute_hidden(mask, perms)) == class_key(mask)
    inverse = [np.argsort(p) for p in perms]
    assert permute_hidden(permute_hidden(mask, perms), inverse) == mask
    with pytest.raises(
        MaskError, match=r"^perms\[1\] is not a permutation of the 2 channels of hidden layer 2$"
    ):
        permute_hidden(mask, [perms[0], np.array([0, 0]), perms[2]])


@pytest.mark.parametrize("spec", ["conv:6x6x1:3-4-M:5-3", "cnn1d:8:3k3-3:4-2", "conv:4x4x2:6:4"])
def test_align_recovers_a_permuted_convnet_copy_exactly(spec: str) -> None:
    rng = np.random.default_rng(11)
    for density in (0.05, 0.2, 0.5, 0.9):
        reference = random_conv_mask(rng, spec, density)
        other = permute_hidden(reference, random_perms(rng, reference))
        assert align(reference, other) == reference
    # channels whose kernels differ only in their patterns (same links everywhere): labels decide
    conv1 = np.zeros((4, 1, 3, 3), dtype=bool)
    for c in range(4):
        conv1[c, 0, c // 3, c % 3] = True
    reference = Mask({"conv1": conv1, "fc1": np.ones((3, 4 * 16), dtype=bool)})
    other = permute_hidden(reference, [rng.permutation(4)])
    assert align(reference, other) == reference


def test_align_on_convnets_raises_the_agreement_of_relabelled_near_copies() -> None:
    rng = np.random.default_rng(12)
    reference = random_conv_mask(rng, "conv:6x6x1:3-4-M:5-3", 0.4)
    near = move_mutation(reference, rng, 0.1)
    relabelled = permute_hidden(near, random_perms(rng, near))
    aligned = align(reference, relabelled)
    assert class_key(aligned) == class_key(relabelled)
    assert agreement(reference, aligned) >= agreement(reference, near) > agreement(reference, relabelled)
