"""Aligning hidden neurons of two masks: the answer to the "competing conventions" problem.

Two masks pruned from different initializations number their hidden neurons arbitrarily; before they are
crossed, or compared position by position (the stability study), one is relabelled to match the other.
Hidden neuron ``j`` of layer ``l`` is row ``j`` of ``fc_l`` together with column ``j`` of ``fc_{l+1}``;
inputs and outputs are fixed. In a convnet the hidden units are also the channels of each convolution:
channel ``j`` is output channel ``j`` of its convolution with input channel ``j`` of the next one (or,
after the flatten, its block of HW columns of ``fc1``), and a link's kernel pattern must match too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from lotterysearch.core.masks import (
    Mask,
    chain_arrays,
    check_chain,
    check_same_shapes,
    mask_from_arrays,
    unit_links,
)
from lotterysearch.core.refinement import Digraph, individualize, rank, refine, row_bytes
from lotterysearch.errors import MaskError

PerLayer = tuple[list[np.ndarray], list[np.ndarray]]  # one array per layer of the reference, of the other


def unit_blocks(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per layer, the ``[out units, in units, P]`` view of its array: P = 1 for a fully connected layer,
    a kernel's kh·kw (or k) entries for a convolution, the HW columns of channel c for the layer after the
    flatten. Block ``[j, i]`` holds everything between units i and j, so it moves when either is permuted."""
    out = []
    for k, x in enumerate(xs):
        flatten = k > 0 and xs[k - 1].ndim > 2 and x.ndim == 2
        out.append(x.reshape(x.shape[0], xs[k - 1].shape[0] if flatten else x.shape[1], -1))
    return out


def _rows_of(block: np.ndarray) -> np.ndarray:
    """A unit's incoming entries as one row."""
    return block.reshape(block.shape[0], -1)


def _columns_of(block: np.ndarray) -> np.ndarray:
    """A unit's outgoing entries (into the next layer) as one row."""
    return block.transpose(1, 0, 2).reshape(block.shape[1], -1)


def check_units(mask: Mask) -> None:
    """Unit-level operations need an MLP chain (``check_chain``) or convnet layers that join (``unit_links``)."""
    if mask.is_convnet():
        unit_links(mask)
    else:
        check_chain(mask)


def _link_ids(rs: list[np.ndarray], os_: list[np.ndarray], convnet: bool) -> PerLayer:
    """Per layer, the ``[out units, in units]`` id of each unit link of the two masks, from one table of
    distinct patterns per layer shared by both (0: no link). Equal ids are equal kernel patterns (or fc
    blocks); an MLP's ids are its mask."""
    if not convnet:
        return [x.astype(np.int64) for x in rs], [x.astype(np.int64) for x in os_]
    ids: PerLayer = ([], [])
    for r, o in zip(unit_blocks(rs), unit_blocks(os_), strict=True):
        both = np.concatenate([r, o]).reshape(-1, r.shape[2])
        link_ids = np.unique(row_bytes(np.packbits(both, axis=1)), return_inverse=True)[1].reshape(-1) + 1
        link_ids *= both.any(axis=1)
        for side, part in enumerate(np.split(link_ids, [r.shape[0] * r.shape[1]])):
            ids[side].append(part.reshape(-1, r.shape[1]))
    return ids


def permute_hidden(mask: Mask, perms: Sequence[np.ndarray]) -> Mask:
    """Relabel hidden units: new unit ``i`` of hidden layer ``h`` is old unit ``perms[h][i]``.

    Rows of ``fc_{h+1}`` and columns of ``fc_{h+2}`` move together, so the result is isomorphic to ``mask``.
    In a convnet the hidden units of a convolution are its output channels (dim 0 of its weight, dim 1 of
    the next convolution's); the last convolution's channel c also carries its block of fc inputs
    [c·HW, (c+1)·HW) along (``permute_arrays``).
    """
    check_units(mask)
    xs = chain_arrays(mask)
    if len(perms) != len(xs) - 1:
        raise MaskError(f"need {len(xs) - 1} hidden-layer permutations, got {len(perms)}")
    for h, perm in enumerate(perms):
        if not np.array_equal(np.sort(np.asarray(perm)), np.arange(xs[h].shape[0])):
            units = "channels" if xs[h].ndim > 2 else "neurons"
            raise MaskError(
                f"perms[{h}] is not a permutation of the {xs[h].shape[0]} {units} of hidden layer {h + 1}"
            )
    return mask_from_arrays(mask.names, permute_arrays(xs, [np.asarray(p) for p in perms]))


class _UnionGraph:
    """The unit graphs of two masks side by side, for refinement of their disjoint union: the reference's
    units of layers 0..L, then the other's. Inputs and outputs start with one colour each, shared by the
    two masks (they are fixed); the hidden units of a layer share one colour. Links are edges labelled by
    their pattern id (``_link_ids``), so equal colours on the two sides name a candidate bijection."""

    def __init__(self, ids: PerLayer) -> None:
        ex_r, ex_o = ids
        widths = [ex_r[0].shape[1], *(x.shape[0] for x in ex_r)]
        self.offsets = np.cumsum([0, *widths])
        self.half = int(self.offsets[-1])  # units of one mask
        layer = np.repeat(np.arange(len(widths)), widths)
        index = np.concatenate([np.arange(w) for w in widths])
        fixed = (layer == 0) | (layer == len(widths) - 1)
        self.layer = np.concatenate([layer, layer])
        self.start = rank(self.layer, np.concatenate([np.where(fixed, index, 0)] * 2))
        top = [int(max(x.max(initial=0), y.max(initial=0))) for x, y in zip(ex_r, ex_o, strict=True)]
        seen = np.cumsum([0, *top])  # label ids of layer t start at seen[t]: distinct across layers
        srcs, dsts, labs = [], [], []
        for side, xs in enumerate(ids):
            for t, x in enumerate(xs):
                r, c = np.nonzero(x)
                base = side * self.half
                srcs.append(c + base + self.offsets[t])
                dsts.append(r + base + self.offsets[t + 1])
                labs.append(x[r, c] - 1 + seen[t])
        labelled = max(top, default=0) > 1  # one pattern per layer (any MLP) needs no labels
        self.g = Digraph(
            2 * self.half,
            np.concatenate(srcs).astype(np.int64),
            np.concatenate(dsts).astype(np.int64),
            np.concatenate(labs).astype(np.int64),
            labelled,
        )

    def refine(self, colour: np.ndarray) -> np.ndarray | None:
        """The stable colouring, or None when the two masks' colour histograms differ (not isomorphic)."""
        colour = refine(colour, self.g)
        k = int(colour.max()) + 1
        ref, other = colour[: self.half], colour[self.half :]
        if not np.array_equal(np.bincount(ref, minlength=k), np.bincount(other, minlength=k)):
            return None
        return colour

    def units(self, colour: np.ndarray, side: int, t: int) -> np.ndarray:
        """The colours of layer ``t``'s units of one mask (0: the reference)."""
        base = side * self.half
        return colour[base + self.offsets[t] : base + self.offsets[t + 1]]


def _twins(m_in: np.ndarray, m_out: np.ndarray, cell: np.ndarray) -> bool:
    """All neurons of ``cell`` have the same incoming row and outgoing column: interchangeable."""
    return bool((m_in[cell] == m_in[cell[0]]).all() and (m_out[:, cell] == m_out[:, cell[:1]]).all())


def _isomorphism(ids: PerLayer, budget: int) -> list[np.ndarray] | None:
    """Hidden-unit permutations that map the other mask exactly onto the reference, or None if there is
    none (or the search spent ``budget`` refinements). ``ids``: both masks' link ids (``_link_ids``).
    Individualization-refinement, the idea of nauty, on the disjoint union (``refinement.refine``):
    refine colours; while a colour class has several units, give one reference unit and one candidate of
    the other mask a fresh shared colour and refine again, backtracking when the histograms part. Classes
    of twins are paired all at once (any pairing is an isomorphism there)."""
    ex_r, ex_o = ids
    u = _UnionGraph(ids)
    depth = len(ex_r)

    def children(colour: np.ndarray, cell: int) -> Iterator[np.ndarray]:
        ref_cell = np.flatnonzero(colour[: u.half] == cell)
        other_cell = np.flatnonzero(colour[u.half :] == cell)
        t = int(u.layer[ref_cell[0]])
        ref_units, other_units = ref_cell - u.offsets[t], other_cell - u.offsets[t]
        twins = _twins(ex_r[t - 1], ex_r[t], ref_units) and _twins(ex_o[t - 1], ex_o[t], other_units)
        if twins:
            yield individualize(colour, *np.stack([ref_cell, other_cell + u.half], axis=1))
            return
        for candidate in other_cell:
            yield individualize(colour, [ref_cell[0], candidate + u.half])

    stack: list[Iterator[np.ndarray]] = [iter([u.start])]
    spent = 0
    while stack:  # depth-first, without recursion (one level per individualized unit)
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        if spent == budget:
            return None
        spent += 1
        colour = u.refine(node)
        if colour is None:
            continue
        sizes = np.bincount(colour[: u.half])
        multi = np.flatnonzero(sizes > 1)
        if multi.size:  # the first cell of several units: of the lowest layer, then the lowest colour
            stack.append(children(colour, int(multi[0])))
            continue
        # discrete: equal colours name the bijection
        perms = []
        for t in range(1, depth):
            cr, co = u.units(colour, 0, t), u.units(colour, 1, t)
            perms.append(np.argsort(co)[np.argsort(np.argsort(cr))])
        if all(np.array_equal(r, o) for r, o in zip(ex_r, permute_arrays(ex_o, perms), strict=True)):
            return perms
    return None


def permute_arrays(xs: Sequence[np.ndarray], perms: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``permute_hidden`` on plain per-layer arrays (masks, trained weights): rows (output channels) of layer
    ``h`` and columns (input channels) of layer ``h + 1`` take ``perms[h]``; after a flatten, layer
    ``h + 1``'s columns move in blocks of HW, one block per channel."""
    out = list(xs)
    for h, perm in enumerate(perms):
        out[h] = out[h][perm]
        after = out[h + 1]
        if out[h].ndim > 2 and after.ndim == 2:  # the flatten: channel-major blocks of columns
            after = after.reshape(after.shape[0], perm.size, -1)[:, perm].reshape(after.shape)
        else:
            after = after[:, perm]
        out[h + 1] = after
    return out


def _weight_matching(rs: list[np.ndarray], os_: list[np.ndarray], max_sweeps: int) -> list[np.ndarray]:
    """Coordinate ascent on the agreement Σ_l ⟨R_l, P_l O_l P_{l-1}ᵀ⟩ (Git Re-Basin weight matching).

    ``rs``/``os_`` are per layer ``[out units, in units, P]`` blocks (``unit_blocks``: P = 1 in an MLP, a
    kernel's entries or a channel's HW fc columns in a convnet); the agreement counts equal entries."""
    hidden = len(rs) - 1
    perms = [np.arange(rs[h].shape[0]) for h in range(hidden)]
    # Agreements are counts of at most a layer's fan-in, exact in float32 (sgemm, half of dgemm's work),
    # then widened so the tie bonus below is added as before. The inputs never move, so the first layer's
    # incoming agreement is one product for the whole ascent.
    r32, o32 = [x.astype(np.float32) for x in rs], [x.astype(np.float32) for x in os_]
    first = (_rows_of(r32[0]) @ _rows_of(o32[0]).T).astype(np.float64)
    r_out = [_columns_of(x) for x in r32]

    def solve(h: int, outgoing: bool, keep_ties: bool) -> bool:
        if h == 0:
            g = first.copy()
        else:  # [reference, other] neuron
            g = (_rows_of(r32[h]) @ _rows_of(o32[h][:, perms[h - 1]]).T).astype(np.float64)
        if outgoing:
            nxt = o32[h + 1] if h + 1 == hidden else o32[h + 1][perms[h + 1]]
            g += (r_out[h + 1] @ _columns_of(nxt).T).astype(np.float64)
        n = g.shape[0]
        if keep_ties:  # bonus < 1 in total: changes only on a strict integer gain
            g[np.arange(n), perms[h]] += 0.5 / n
        cols = linear_sum_assignment(g, maximize=True)[1]
        changed = not np.array_equal(cols, perms[h])
        perms[h] = cols
        return changed

    for h in range(hidden):
        solve(h, outgoing=False, keep_ties=False)
    for sweep in range(max_sweeps):
        layers = range(hidden - 1, -1, -1) if sweep % 2 == 0 else range(hidden)
        if not any([solve(h, outgoing=True, keep_ties=True) for h in layers]):
            break
    return perms


def alignment(reference: Mask, other: Mask, *, max_sweeps: int = 10) -> list[np.ndarray]:
    """Permutations of ``other``'s hidden neurons that best match ``reference`` (``permute_hidden`` applies
    them).

    Weight matching (Ainsworth et al. 2023, Git Re-Basin, Alg. 1) on connection patterns: for binary masks,
    minimising the Hamming distance Σ_l ‖R_l − P_l O_l P_{l-1}ᵀ‖₁ is maximising the agreement
    Σ_l ⟨R_l, P_l O_l P_{l-1}ᵀ⟩, which is linear in one P_l when its neighbours are fixed: a linear
    assignment over incoming rows and outgoing columns (``linear_sum_assignment``). A first forward sweep
    matches incoming rows only (the previous layer already aligned, the next not yet); then backward and
    forward sweeps over both terms until no permutation changes (ties keep the current match, so the
    agreement rises until it stops).

    Coordinate ascent can stop short of a perfect match when neurons share incoming rows, so when colour
    refinement cannot tell the two masks apart an exact isomorphism is searched first: a permuted copy of
    ``reference`` is always mapped back onto it exactly.
    """
    check_same_shapes(reference, other)
    check_units(reference)
    rs, os_ = chain_arrays(reference), chain_arrays(other)
    if [int(x.sum()) for x in rs] == [int(x.sum()) for x in os_]:
        budget = 64 + 4 * sum(x.shape[0] for x in rs[:-1])
        exact = _isomorphism(_link_ids(rs, os_, reference.is_convnet()), budget)
        if exact is not None:
            return exact
    return _weight_matching(unit_blocks(rs), unit_blocks(os_), max_sweeps)


def align(reference: Mask, other: Mask, *, max_sweeps: int = 10) -> Mask:
    """``other`` with its hidden neurons relabelled to best match ``reference``.

    Parents seeded from different initializations number their hidden neurons differently (the
    "competing conventions" problem of neuroevolution); crossing them unaligned mixes unrelated neurons.
    The result is isomorphic to ``other`` and equals ``reference`` when ``other`` is a permuted copy of it.
    """
    return permute_hidden(other, alignment(reference, other, max_sweeps=max_sweeps))


def agreement(a: Mask, b: Mask) -> int:
    """Number of positions where the two masks agree (total size minus Hamming distance)."""
    check_same_shapes(a, b)
    return sum(int((x == y).sum()) for x, y in zip(chain_arrays(a), chain_arrays(b), strict=True))
