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
from lotterysearch.errors import MaskError

Colouring = tuple[list[np.ndarray], list[np.ndarray]]  # neuron colours per layer: reference, other


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
    if any(len(s) > 2 for s in mask.shapes.values()):
        unit_links(mask)
    else:
        check_chain(mask)


def _link_labels(rb: list[np.ndarray], ob: list[np.ndarray]) -> tuple[Colouring, Colouring]:
    """Unit-level matrices of two convnet masks for ``_isomorphism``: per layer, a hashed weight in
    [1, 2^10) of each link's pattern (for refinement: products with colour weights < 2^30 stay exact in
    float64 sums), and the link's exact pattern id in one table shared by both masks (0: no link)."""
    hashed: Colouring = ([], [])
    ids: Colouring = ([], [])
    for r, o in zip(rb, ob, strict=True):
        both = np.concatenate([r, o]).reshape(-1, r.shape[2])
        packed = np.ascontiguousarray(np.packbits(both, axis=1))
        rows = packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
        link_ids = (np.unique(rows, return_inverse=True)[1].reshape(-1) + 1) * both.any(axis=1)
        weights = np.random.default_rng(0x5EED).integers(1, 2**10, size=int(link_ids.max()) + 1)
        weights[0] = 0
        for side, part in enumerate(np.split(link_ids, [r.shape[0] * r.shape[1]])):
            ids[side].append(part.reshape(-1, r.shape[1]).astype(np.float64))
            hashed[side].append(weights[part].reshape(-1, r.shape[1]).astype(np.float64))
    return hashed, ids


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


def _colour_weights(n: int) -> np.ndarray:
    """A fixed pseudo-random integer weight in [1, 2^30) per colour (SplitMix64 finaliser), so that
    Σ weight over a neighbourhood names its colour multiset; sums stay exact in float64 (< 2^53)."""
    with np.errstate(over="ignore"):
        x = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(34)).astype(np.float64) + 1


def _refine(rs: list[np.ndarray], os_: list[np.ndarray], cr: list[np.ndarray], co: list[np.ndarray]) -> bool:
    """Colour refinement (1-WL) on the disjoint union of two masks, in place, to the stable colouring;
    False as soon as the two masks' colour histograms differ (then they are not isomorphic).

    ``cr[t]``/``co[t]`` are the colours of the neurons of layer ``t`` (0 = inputs, L = outputs) in the
    reference and the other mask, from one shared id space per layer. Inputs and outputs keep their
    distinct colours (they are fixed); a hidden neuron's new colour is its colour with (a hash of) the
    multisets of its in- and out-neighbours' colours. A hash collision only merges colours: coarser, never
    wrong, since a found bijection is verified.
    """
    depth = len(rs)
    while True:
        split = False
        new_r, new_o = list(cr), list(co)
        for t in range(1, depth):
            below = _colour_weights(int(max(cr[t - 1].max(), co[t - 1].max())) + 1)
            above = _colour_weights(int(max(cr[t + 1].max(), co[t + 1].max())) + 1)
            feats = np.vstack(
                [
                    np.column_stack([cs[t], ms[t - 1] @ below[cs[t - 1]], ms[t].T @ above[cs[t + 1]]])
                    for ms, cs in ((rs, cr), (os_, co))
                ]
            )
            ids = np.unique(feats, axis=0, return_inverse=True)[1].reshape(-1)
            n = len(cr[t])
            new_r[t], new_o[t] = ids[:n], ids[n:]
            if not np.array_equal(np.sort(new_r[t]), np.sort(new_o[t])):
                return False
            split |= int(ids.max()) + 1 > len(np.unique(cr[t]))
        cr[:], co[:] = new_r, new_o
        if not split:
            return True


def _twins(m_in: np.ndarray, m_out: np.ndarray, cell: np.ndarray) -> bool:
    """All neurons of ``cell`` have the same incoming row and outgoing column: interchangeable."""
    return bool((m_in[cell] == m_in[cell[0]]).all() and (m_out[:, cell] == m_out[:, cell[:1]]).all())


def _isomorphism(
    rs: list[np.ndarray], os_: list[np.ndarray], budget: int, exact: Colouring | None = None
) -> list[np.ndarray] | None:
    """Hidden-neuron permutations that map ``os_`` exactly onto ``rs``, or None if there is none (or the
    search spent ``budget`` refinements). In a convnet ``rs``/``os_`` weigh each unit link by a hash of its
    pattern (for refinement) and ``exact`` holds the links' exact pattern ids (for twins and the final
    check); an MLP's masks serve as both. Individualization-refinement, the idea of nauty: refine colours;
    while a colour class has several neurons, give one reference neuron and one candidate of the other
    mask a fresh shared colour and refine again, backtracking when the histograms part. Classes of twins
    are paired all at once (any pairing is an isomorphism there)."""
    ex_r, ex_o = exact if exact is not None else (rs, os_)
    depth = len(rs)
    start = [np.arange(rs[0].shape[1])] + [np.zeros(m.shape[0], dtype=np.int64) for m in rs[:-1]]
    start.append(np.arange(rs[-1].shape[0]))

    def children(cr: list[np.ndarray], co: list[np.ndarray], t: int, colour: int) -> Iterator[Colouring]:
        ref_cell, other_cell = np.flatnonzero(cr[t] == colour), np.flatnonzero(co[t] == colour)
        fresh = int(max(cr[t].max(), co[t].max())) + 1
        twins = _twins(ex_r[t - 1], ex_r[t], ref_cell) and _twins(ex_o[t - 1], ex_o[t], other_cell)
        for candidate in other_cell[:1] if twins else other_cell:
            cr2, co2 = [c.copy() for c in cr], [c.copy() for c in co]
            if twins:
                cr2[t][ref_cell] = fresh + np.arange(len(ref_cell))
                co2[t][other_cell] = fresh + np.arange(len(other_cell))
            else:
                cr2[t][ref_cell[0]] = fresh
                co2[t][candidate] = fresh
            yield cr2, co2

    stack: list[Iterator[Colouring]] = [iter([(start, [c.copy() for c in start])])]
    spent = 0
    while stack:  # depth-first, without recursion (one level per individualized neuron)
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        if spent == budget:
            return None
        spent += 1
        cr, co = node
        if not _refine(rs, os_, cr, co):
            continue
        cell = next(
            (
                (t, c)
                for t in range(1, depth)
                for c, n in zip(*np.unique(cr[t], return_counts=True), strict=True)
                if n > 1
            ),
            None,
        )
        if cell is not None:
            stack.append(children(cr, co, *cell))
            continue
        # discrete: equal colours name the bijection
        perms = [np.argsort(co[t])[np.argsort(np.argsort(cr[t]))] for t in range(1, depth)]
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
    rb, ob = unit_blocks(rs), unit_blocks(os_)
    if [int(x.sum()) for x in rs] == [int(x.sum()) for x in os_]:
        budget = 64 + 4 * sum(x.shape[0] for x in rs[:-1])
        if any(x.ndim > 2 for x in rs):
            hashed, ids = _link_labels(rb, ob)
            exact = _isomorphism(*hashed, budget=budget, exact=ids)
        else:
            rs_f, os_f = (
                [x.astype(np.float64) for x in rs],
                [x.astype(np.float64) for x in os_],
            )  # BLAS, exact
            exact = _isomorphism(rs_f, os_f, budget=budget)
        if exact is not None:
            return exact
    return _weight_matching(rb, ob, max_sweeps)


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
