"""Colour refinement (1-dimensional Weisfeiler-Leman) of a digraph whose edges may carry labels.

Both questions about hidden units ask it: the class key (``canon``: one mask's canonical form) and the
alignment of two masks (``alignment``: refinement of their disjoint union). A vertex's colour is refined by
the multiset of its in- and of its out-neighbours' colours (of (colour, edge label) pairs when the edges
are labelled) until no cell splits. Colours are dense ranks 0..k-1 and cells split in place, so the result
is a deterministic function of the structure and the starting colours: isomorphism-equivariant, which is
what makes a canonical form out of it and lets equal colours name a bijection between two masks.

Multisets are summarised by sums of fixed pseudo-random weights, exact in float64. A collision could only
merge colours that should differ: a coarser partition costs search time, never a wrong answer, because
both users verify what they find (a certificate, a permutation checked entry by entry).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp


class Digraph:
    """A digraph with its in- and out-adjacency as sparse matrices, for refinement by matrix products.

    ``src``/``dst`` list the edges, ``lab`` their label ids. With edge labels (``labelled``), a vertex's
    neighbourhood is the multiset of (neighbour colour, edge label) pairs, summarised by sums of a
    pseudo-random mix of the two."""

    def __init__(
        self, n: int, src: np.ndarray, dst: np.ndarray, lab: np.ndarray, labelled: bool, nlab: int = 0
    ) -> None:
        self.n, self.src, self.dst, self.lab = n, src, dst, lab
        self.nlab = max(nlab, int(lab.max(initial=0)) + 1)  # label ids range over 0..nlab-1
        self.labelled = labelled
        if not labelled:
            ones = np.ones(src.size)
            self.into = sp.csr_matrix((ones, (dst, src)), shape=(n, n))  # row v sums over v's in-neighbours
            self.outof = self.into.T.tocsr()
        degree = int(
            max(np.bincount(src, minlength=n).max(initial=0), np.bincount(dst, minlength=n).max(initial=0))
        )
        self.bits = 52 - max(degree, 1).bit_length()
        self.weights = _colour_weights(n, self.bits)
        if labelled:
            self.label_weights = _colour_weights(self.nlab, 63).astype(np.uint64)

    def codes(self, pos: np.ndarray) -> np.ndarray:
        """Sorted edge codes under the vertex order ``pos``: (pos(u)·n + pos(v))·labels + label."""
        return np.sort((pos[self.src] * self.n + pos[self.dst]) * self.nlab + self.lab)

    def neighbour_sums(self, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per vertex, a summary of its in- and of its out-neighbourhood's colours (with edge labels)."""
        w = self.weights[colour]
        if not self.labelled:
            return self.into @ w, self.outof @ w
        lw = self.label_weights[self.lab]
        into = _mix(w[self.src].astype(np.uint64), lw, self.bits)
        outof = _mix(w[self.dst].astype(np.uint64), lw, self.bits)
        return (
            np.bincount(self.dst, weights=into, minlength=self.n),
            np.bincount(self.src, weights=outof, minlength=self.n),
        )


def _mix(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """A pseudo-random integer in [1, 2**bits] of each pair (a, b) (SplitMix64's finaliser), as float64."""
    with np.errstate(over="ignore"):
        x = a * np.uint64(0x9E3779B97F4A7C15) ^ b
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(64 - bits)).astype(np.float64) + 1


@functools.lru_cache(maxsize=64)
def _colour_weights(n: int, bits: int) -> np.ndarray:
    """Fixed pseudo-random weights per colour index: a vertex's multiset of in- (out-) neighbour colours is
    summarised by the sum of their weights. ``bits`` keeps sums below 2**52, so float64 products are exact.
    A collision would only coarsen the partition, costing search time but never exactness."""
    rng = np.random.default_rng(0x5EED_CA40)
    return rng.integers(1, 2**bits, size=max(n, 1)).astype(np.float64)


def rank(primary: np.ndarray, *secondary: np.ndarray) -> np.ndarray:
    """Dense rank of the rows (primary, *secondary), lexicographic; ties share a rank."""
    order = np.lexsort((*reversed(secondary), primary))
    keys = np.stack([primary, *secondary])[:, order]
    new = np.empty(order.size, dtype=bool)
    new[:1] = True
    new[1:] = (keys[:, 1:] != keys[:, :-1]).any(axis=0)
    ranks = np.empty(order.size, dtype=np.int64)
    ranks[order] = np.cumsum(new) - 1
    return ranks


def refine(colour: np.ndarray, g: Digraph) -> np.ndarray:
    """Equitable refinement of an ordered colouring (colours are ranks 0..k-1; cells split in place, so the
    result is a deterministic function of the structure: isomorphism-equivariant)."""
    n = g.n
    if n == 0:
        return colour
    k = int(colour.max()) + 1
    while k < n:
        new = rank(colour, *g.neighbour_sums(colour))
        k_new = int(new.max()) + 1
        if k_new == k:
            break
        colour, k = new, k_new
    return colour


def individualize(colour: np.ndarray, *groups: np.ndarray | list[int]) -> np.ndarray:
    """Give each group of vertices (taken from one cell) a colour of its own, the groups in the order
    given, all just before the rest of their cell: one vertex for a canonical labelling, a vertex of each
    of two masks to pair them."""
    sub = np.full(colour.size, len(groups), dtype=np.int64)
    for k, group in enumerate(groups):
        sub[np.asarray(group, dtype=np.int64)] = k
    return rank(colour, sub)


def row_bytes(packed: np.ndarray) -> np.ndarray:
    """The rows of a 2-D uint8 array (at least one column) as single byte strings (numpy void), so that
    ``np.unique`` compares them with one memcmp each: the order of ``np.unique(axis=0)``, far faster on
    wide rows (edge patterns, neighbourhoods)."""
    packed = np.ascontiguousarray(packed)
    return packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
