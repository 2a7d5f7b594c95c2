"""Isomorphism classes of masks: the effective subnetwork, its graph, and an exact canonical class key.

Two masks of one MLP describe *the same subnetwork* when a permutation of the hidden neurons within each
hidden layer maps the effective subnetwork of one onto the other. Inputs and outputs stay fixed (input pixel
3 is not output class 3), and weights on no input→output path do not count. Fitness is a property of the
topology, so the search trains one mask per class and reuses the result for its isomorphs.

In a convnet the units are the input channels (fixed), the channels of each hidden convolution and the
hidden neurons of each fully connected layer (interchangeable within their layer), and the classes (fixed).
Units i → j are linked when the weights between them keep any entry, and the link carries those entries'
mask pattern as its *label*: a kernel's kh×kw (or k) bits, at the flatten the HW columns of channel i in
row j of ``fc1`` (permuting channel i moves that block), one bit between fully connected units. Two convnet
masks are the same subnetwork when a permutation of the hidden units maps links onto links of equal label.
Below, an MLP is the case with one label; its keys are those of ``canon-v1`` before convnets were added.

``class_key`` is a canonical form built the nauty/Traces way on the layered structure, in numpy:

1. *Twins*: hidden units of one layer with identical (labelled) incoming and outgoing neighbourhoods are
   merged into one vertex with a multiplicity. The quotient is a complete invariant (an isomorphism maps twin classes to
   twin classes of equal size, and edges between classes are all-or-nothing), and twins are what would make
   the search below explode.
2. *Colour refinement* from the fixed labels: each input and each output its own colour, hidden vertices by
   (layer, multiplicity), refined by the multiset of in- and out-neighbour colours (of (colour, edge
   label) pairs in a convnet) until stable (``refinement.refine``, which the alignment of two masks shares).
3. *Individualization-refinement* where cells stay non-singleton: branch on a cell, refine, keep the leaf
   with the smallest (path invariants, certificate); automorphisms found between leaves prune branches in the
   same orbit. When the refined colouring is not discrete, the hidden part is first split into connected
   components that are canonized one by one, so interchangeable components (e.g. parallel chains through the
   same input and output) never enter a joint search.
4. The key is ``"canon-v1:"`` + sha256 of the certificate (layer widths, canonically ordered vertex labels
   and adjacency; for a convnet first a tag, the layer shapes and each layer's sorted distinct edge
   patterns, and every edge code carries its pattern's index), truncated to 32 hex digits. Convnet keys
   keep the ``canon-v1`` prefix: their certificates start with a byte no MLP certificate starts with, so
   the two families never share a key, and one version still says when an archive must re-key.

Why the key is exact: every step is isomorphism-equivariant (refinement and target-cell choice depend only
on colours, which depend only on structure and fixed labels), so isomorphic masks have the same search tree
up to relabelling and the same set of leaf (invariant, certificate) pairs; the minimum is therefore equal.
Conversely a certificate lists every vertex label and every edge under the leaf's ordering, so two equal
certificates define a label-preserving bijection that maps edges onto edges: an isomorphism. Automorphism
pruning only skips subtrees that are images of explored ones, and invariant pruning only subtrees whose
leaves all compare greater. Hash collisions in refinement can only coarsen a partition, which costs search
time, never exactness; the only hash the key trusts is sha256 of the full certificate, cut to 128 bits
(among 10^9 classes the chance of any collision is below 10^-20).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from lotterysearch.core.alignment import unit_blocks
from lotterysearch.core.masks import Mask, unit_links
from lotterysearch.core.refinement import Digraph, individualize, rank, refine, row_bytes
from lotterysearch.errors import ConfigError, MaskError

VERSION = "canon-v1"
_KEY_HEX = 32
_LEAF_MEMORY = 4096  # leaf certificates remembered for automorphism detection


# ---- effective subnetwork and its graph ------------------------------------------------------------
def effective_mask(mask: Mask) -> Mask:
    """The weights on some input→output path: the fixed point of repeatedly removing weights into dead-end
    neurons and out of source-less neurons (computed by ``Mask.effective`` in one sweep each way)."""
    return mask.effective()


def _chain_widths(mask: Mask) -> tuple[int, ...]:
    """Widths (input, hidden..., output) of an MLP mask; raises if the layers do not chain."""
    shapes = mask.shapes
    names = mask.names
    for n in names:
        if len(shapes[n]) != 2:
            raise MaskError(f"mask layer '{n}' has shape {list(shapes[n])}; class keys need [out, in] layers")
    widths = [shapes[names[0]][1]]
    for n in names:
        out, inp = shapes[n]
        if inp != widths[-1]:
            raise MaskError(
                f"mask layers do not chain: '{n}' has {inp} inputs, the layer before has {widths[-1]} outputs"
            )
        widths.append(out)
    return tuple(widths)


def _unit_widths(mask: Mask) -> tuple[int, ...]:
    """Units per layer (input features or channels, hidden neurons or channels, classes); raises unless the
    layers chain (MLPs) or join (convnets, ``unit_links``)."""
    if not mask.is_convnet():
        return _chain_widths(mask)
    links = unit_links(mask)
    return (links[0].shape[1], *(m.shape[0] for m in links))


def _blocks(eff: Mask) -> list[np.ndarray]:
    """Per layer, the bool ``[out units, in units, P]`` view of its weights (``unit_blocks``). Block
    ``[j, i]`` is the edge label between units i and j: a kernel's mask pattern, or the block of fc inputs
    that moves with channel i when the channels are permuted; P = 1 between fully connected units."""
    return unit_blocks([t.numpy() for _, t in eff.items()])


def _node_id(layer: int, index: int, depth: int) -> str:
    if layer == 0:
        return f"in:{index}"
    if layer == depth:
        return f"out:{index}"
    return f"h{layer}:{index}"


def _bits(pattern: np.ndarray) -> str:
    return "".join("1" if b else "0" for b in pattern.tolist())


def mask_graph(mask: Mask) -> nx.DiGraph:
    """The effective subnetwork as a directed graph: the interchange format (e.g. ``nx.write_graphml``).

    Nodes are the input, hidden and output units on some input→output path: features and neurons of an
    MLP; input channels, conv channels, hidden neurons and classes of a convnet. Node ids are unique
    strings: ``in:i``, ``h{l}:{k}`` (unit k of hidden layer l, counted from 1) and ``out:j``. Node
    attributes: ``label`` (``in:i``, ``h:l`` or ``out:j``; hidden units carry only their layer, so they are
    interchangeable), ``layer`` (0 for inputs, L for outputs) and ``index`` (position in its layer). One edge
    per live link, with attribute ``layer`` (the mask layer name); in a convnet's graph every edge also has
    ``pattern``, its label as a string of bits: the kernel's mask (row-major), the fc row's block of the
    channel's HW inputs after the flatten, ``"1"`` between fully connected units. Graph attributes
    ``widths`` (units per layer, e.g. ``"784-300-100-10"``) and ``layers`` (e.g. ``"fc1,fc2,fc3"``). All
    attributes are strings or ints.
    """
    widths = _unit_widths(mask)
    conv = mask.is_convnet()
    depth = len(widths) - 1
    g = nx.DiGraph(widths="-".join(map(str, widths)), layers=",".join(mask.names))
    for layer, (name, block) in enumerate(zip(mask.names, _blocks(effective_mask(mask)), strict=True), 1):
        rows, cols = np.nonzero(block.any(axis=2))
        for layer_of, idx in ((layer - 1, np.unique(cols)), (layer, np.unique(rows))):
            for i in idx.tolist():
                nid = _node_id(layer_of, i, depth)
                if nid not in g:
                    label = f"h:{layer_of}" if 0 < layer_of < depth else nid
                    g.add_node(nid, label=label, layer=layer_of, index=i)
        g.add_edges_from(
            (
                _node_id(layer - 1, c, depth),
                _node_id(layer, r, depth),
                {"layer": name, "pattern": _bits(block[r, c])} if conv else {"layer": name},
            )
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        )
    return g


# ---- the layered quotient graph -------------------------------------------------------------------
@dataclass(frozen=True)
class _Quotient:
    """Effective subnetwork with twins merged. Vertex v has ``labels[v] = (layer, x)``: x is the unit index
    for inputs (layer 0) and outputs (layer L), the twin multiplicity for hidden units. A convnet's edges
    carry labels: ``lab[e]`` indexes its pattern in ``table`` (sorted per layer, so the index is canonical);
    an MLP's edges are unlabelled (``lab`` all 0, ``table`` None)."""

    widths: tuple[int, ...]
    labels: np.ndarray  # [n, 2] int64
    src: np.ndarray  # [E] int64, edges go from layer l-1 to layer l
    dst: np.ndarray
    twins: int
    lab: np.ndarray  # [E] int64
    table: bytes | None = None  # convnets: layer shapes and the distinct edge patterns of each layer


def _quotient(mask: Mask, eff: Mask | None = None) -> _Quotient:
    """Twin quotient of the effective subnetwork (``eff``: ``effective_mask(mask)`` if already known).

    Twins are hidden units of one layer with identical labelled in- and out-neighbourhoods: identical
    rows of the incoming blocks and columns of the outgoing ones (``_blocks``)."""
    widths = _unit_widths(mask)
    depth = len(widths) - 1
    eff = effective_mask(mask) if eff is None else eff
    blocks = _blocks(eff)
    mats = [b.any(axis=2) for b in blocks]
    # vertices of each layer: original indices of the kept units (one representative per twin class)
    nodes: list[np.ndarray] = [np.flatnonzero(mats[0].any(axis=0))]
    mults: list[np.ndarray] = [np.zeros(nodes[0].size, dtype=np.int64)]
    twins = 0
    for layer in range(1, depth):
        live = np.flatnonzero(mats[layer - 1].any(axis=1))
        incoming = blocks[layer - 1][live].reshape(live.size, -1 if live.size else 0)
        outgoing = blocks[layer][:, live].transpose(1, 0, 2).reshape(live.size, -1 if live.size else 0)
        packed = np.packbits(np.concatenate([incoming, outgoing], axis=1), axis=1)
        if live.size:
            _, first, counts = np.unique(row_bytes(packed), return_index=True, return_counts=True)
        else:
            first, counts = live, live
        order = np.argsort(first, kind="stable")  # representatives in unit order (any order would do)
        nodes.append(live[first[order]])
        mults.append(counts[order].astype(np.int64))
        twins += int(live.size - first.size)
    nodes.append(np.flatnonzero(mats[-1].any(axis=1)))
    mults.append(np.zeros(nodes[-1].size, dtype=np.int64))

    offsets = np.cumsum([0] + [v.size for v in nodes])
    labels = np.zeros((int(offsets[-1]), 2), dtype=np.int64)
    for layer, (v, mult) in enumerate(zip(nodes, mults, strict=True)):
        labels[offsets[layer] : offsets[layer + 1], 0] = layer
        fixed = layer in (0, depth)
        labels[offsets[layer] : offsets[layer + 1], 1] = v if fixed else mult
    srcs, dsts, labs = [], [], []
    conv, seen = mask.is_convnet(), 0
    table = [np.array([len(mask.shapes)], dtype=np.int64).tobytes()]
    for shape in mask.shapes.values():
        table.append(np.array([len(shape), *shape], dtype=np.int64).tobytes())
    for layer in range(1, depth + 1):
        sub = mats[layer - 1][np.ix_(nodes[layer], nodes[layer - 1])]
        r, c = np.nonzero(sub)
        srcs.append(c + offsets[layer - 1])
        dsts.append(r + offsets[layer])
        if conv:
            patterns = np.packbits(blocks[layer - 1][nodes[layer][r], nodes[layer - 1][c]], axis=1)
            distinct, ids = np.unique(row_bytes(patterns), return_inverse=True)
            labs.append(ids.reshape(-1) + seen)
            seen += distinct.shape[0]
            table.append(
                np.array([distinct.size, patterns.shape[1]], dtype=np.int64).tobytes() + distinct.tobytes()
            )
    src = np.concatenate(srcs).astype(np.int64)
    dst = np.concatenate(dsts).astype(np.int64)
    if not conv:
        return _Quotient(widths, labels, src, dst, twins, np.zeros(src.size, dtype=np.int64))
    lab = np.concatenate(labs).astype(np.int64)
    return _Quotient(widths, labels, src, dst, twins, lab, b"".join(table))


# ---- individualization-refinement search ----------------------------------------------------------
def _invariant(colour: np.ndarray) -> int:
    """An isomorphism invariant of a tree node: the ordered cell sizes."""
    sizes = np.bincount(colour).astype(np.int64)
    return int.from_bytes(hashlib.blake2b(sizes.tobytes(), digest_size=8).digest(), "big") >> 1


def _lex_less(a: np.ndarray, b: np.ndarray) -> bool:
    diff = np.flatnonzero(a != b)
    return bool(diff.size) and bool(a[diff[0]] < b[diff[0]])


class _Search:
    """Canonical labelling of one vertex-coloured digraph (nauty-style, see the module docstring).

    A leaf's key is (path invariants + (-1,), certificate), the certificate being the sorted edge codes
    ``Digraph.codes`` (``pos(u) * n + pos(v)`` without edge labels); the canonical leaf is the smallest key.
    """

    def __init__(self, colour0: np.ndarray, g: Digraph) -> None:
        self.n = colour0.size
        self.g = g
        self.edges = g.codes(np.arange(self.n))
        self.colour0 = colour0
        self.best: tuple[tuple[int, ...], np.ndarray, np.ndarray] | None = None
        self.leaves: dict[bytes, np.ndarray] = {}
        self.gens: list[np.ndarray] = []
        self.path: list[int] = []
        self.explored: list[list[int]] = []
        self.orbit_cache: list[tuple[int, np.ndarray | None]] = []

    def run(self) -> np.ndarray:
        """Vertex → canonical position."""
        self._explore(refine(self.colour0, self.g), ())
        assert self.best is not None
        return self.best[2]

    def _explore(self, colour: np.ndarray, inv: tuple[int, ...]) -> int | None:
        """Search below one tree node; returns a tree level whose current child is to be abandoned."""
        depth = len(self.path)
        sizes = np.bincount(colour)
        if sizes.size == self.n:
            return self._leaf(colour, inv)
        multi = np.flatnonzero(sizes > 1)
        cell = multi[np.argmin(sizes[multi])]  # first smallest non-singleton cell: an invariant choice
        self.explored.append([])
        self.orbit_cache.append((-1, None))
        try:
            for v in np.flatnonzero(colour == cell).tolist():
                if self._same_orbit_as_explored(depth, v):
                    continue
                child = refine(individualize(colour, [v]), self.g)
                child_inv = (*inv, _invariant(child))
                if self.best is not None and child_inv > self.best[0][: len(child_inv)]:
                    self.explored[depth].append(v)  # every leaf below is worse; so is its orbit
                    continue
                self.path.append(v)
                back = self._explore(child, child_inv)
                self.path.pop()
                self.explored[depth].append(v)
                if back is not None and back < depth:
                    return back
        finally:
            self.explored.pop()
            self.orbit_cache.pop()
        return None

    def _leaf(self, colour: np.ndarray, inv: tuple[int, ...]) -> int | None:
        key_inv = (*inv, -1)
        cert = self.g.codes(colour)
        if (
            self.best is None
            or key_inv < self.best[0]
            or (key_inv == self.best[0] and _lex_less(cert, self.best[1]))
        ):
            self.best = (key_inv, cert, colour)
        digest = hashlib.sha256(repr(key_inv).encode() + cert.tobytes()).digest()
        other = self.leaves.get(digest)
        if other is None:
            if len(self.leaves) < _LEAF_MEMORY:
                self.leaves[digest] = colour
            return None
        gamma = np.empty(self.n, dtype=np.int64)
        gamma[np.argsort(other)] = np.argsort(colour)  # other's vertex at position p ↦ this leaf's
        if np.array_equal(gamma, np.arange(self.n)) or not self._is_automorphism(gamma):
            return None
        self.gens.append(gamma)
        for level in range(len(self.path)):
            if self._same_orbit_as_explored(level, self.path[level]):
                return level  # this subtree is an automorphic image of an explored sibling's
        return None

    def _is_automorphism(self, gamma: np.ndarray) -> bool:
        if not np.array_equal(self.colour0[gamma], self.colour0):
            return False
        return np.array_equal(self.g.codes(gamma), self.edges)

    def _same_orbit_as_explored(self, level: int, v: int) -> bool:
        """Is v in the orbit of an explored sibling under the known automorphisms fixing the path prefix?"""
        done = self.explored[level]
        if not done or not self.gens:
            return False
        cached_count, orbits = self.orbit_cache[level]
        if cached_count != len(self.gens):
            prefix = np.asarray(self.path[:level], dtype=np.int64)
            fixing = [g for g in self.gens if np.array_equal(g[prefix], prefix)]
            orbits = None
            if fixing:
                rows = np.concatenate([np.arange(self.n)] * len(fixing))
                cols = np.concatenate(fixing)
                adj = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(self.n, self.n))
                orbits = connected_components(adj, directed=False)[1]
            self.orbit_cache[level] = (len(self.gens), orbits)
        if orbits is None:
            return False
        return bool(np.isin(orbits[done], orbits[v]).any())


def _canonical_part(labels: np.ndarray, g: Digraph) -> bytes:
    """Certificate of one vertex-labelled digraph: labels in canonical order, then sorted edge codes."""
    colour0 = rank(labels[:, 0], labels[:, 1])
    pos = _Search(colour0, g).run()
    order = np.argsort(pos)
    codes = g.codes(pos)
    head = np.array([g.n, g.src.size], dtype=np.int64)
    return head.tobytes() + np.ascontiguousarray(labels[order]).tobytes() + codes.tobytes()


def _certificate(q: _Quotient) -> bytes:
    n = q.labels.shape[0]
    widths = np.asarray(q.widths, dtype=np.int64)
    head = np.array([len(q.widths)], dtype=np.int64).tobytes() + widths.tobytes()
    labelled = q.table is not None
    # A convnet's certificate starts with "K" and its layer shapes and edge patterns; an MLP's starts with
    # "D" or "C", so no convnet shares a key with an MLP.
    tag = b"K" + q.table if labelled else b""
    g = Digraph(n, q.src, q.dst, q.lab, labelled)
    colour = refine(rank(q.labels[:, 0], q.labels[:, 1]), g)
    if n == 0 or int(colour.max()) + 1 == n:
        # Discrete after refinement (the usual case): the refined order is the canonical order.
        order = np.argsort(colour)
        codes = g.codes(colour)
        body = np.array([n, q.src.size], dtype=np.int64).tobytes()
        return tag + b"D" + head + body + np.ascontiguousarray(q.labels[order]).tobytes() + codes.tobytes()
    # Not discrete: canonize each connected component of the hidden part (with the inputs and outputs it
    # touches) on its own and sort the component certificates. An isomorphism fixes inputs and outputs and
    # maps hidden components onto hidden components, so the sorted list is a complete invariant.
    depth = len(q.widths) - 1
    hidden = (q.labels[:, 0] > 0) & (q.labels[:, 0] < depth)
    hh = hidden[q.src] & hidden[q.dst]
    adj = sp.coo_matrix((np.ones(int(hh.sum())), (q.src[hh], q.dst[hh])), shape=(n, n))
    comp = connected_components(adj, directed=False)[1]
    touches = hidden[q.src] | hidden[q.dst]
    edge_comp = np.where(hidden[q.src], comp[q.src], comp[q.dst])[touches]
    esrc, edst, elab = q.src[touches], q.dst[touches], q.lab[touches]
    order = np.argsort(edge_comp, kind="stable")
    esrc, edst, elab, edge_comp = esrc[order], edst[order], elab[order], edge_comp[order]
    bounds = np.flatnonzero(np.diff(edge_comp)) + 1
    parts = []
    for s, d, e in zip(*(np.split(x, bounds) for x in (esrc, edst, elab)), strict=True):
        verts, inverse = np.unique(np.concatenate([s, d]), return_inverse=True)
        # label ids stay global (canonical), so the parts' codes share one encoding
        part = Digraph(verts.size, inverse[: s.size], inverse[s.size :], e, labelled, g.nlab)
        parts.append(_canonical_part(q.labels[verts], part))
    parts.sort()
    fixed_edges = ~touches  # input→output edges (only in networks without hidden layers)
    fixed = np.sort(q.labels[q.src[fixed_edges], 1] * q.widths[-1] + q.labels[q.dst[fixed_edges], 1])
    out = [tag, b"C", head, np.array([len(parts)], dtype=np.int64).tobytes()]
    for p in parts:
        out += [np.array([len(p)], dtype=np.int64).tobytes(), p]
    out.append(fixed.tobytes())
    return b"".join(out)


# ---- public API -----------------------------------------------------------------------------------
def class_key(mask: Mask, effective: Mask | None = None) -> str:
    """Exact canonical key of the mask's effective subnetwork up to permutations of hidden units (neurons,
    conv channels) within each layer, kernel patterns included; masks of different layer shapes never
    share a key. Collapsed masks (no input→output path) share one key per architecture. ``effective``:
    ``effective_mask(mask)`` when the caller has it already (the key is then the canonization alone)."""
    return _key(_quotient(mask, effective))


def _key(q: _Quotient) -> str:
    return f"{VERSION}:{hashlib.sha256(_certificate(q)).hexdigest()[:_KEY_HEX]}"


def is_isomorphic(a: Mask, b: Mask) -> bool:
    """Same subnetwork up to hidden-unit permutations (equality of canonical keys)."""
    return class_key(a) == class_key(b)


def twin_count(mask: Mask) -> int:
    """Hidden units of the effective subnetwork merged away as twins (same labelled in- and out-neighbours)."""
    return _quotient(mask).twins


def describe(mask: Mask) -> dict[str, Any]:
    """Direct and effective density, twin count and class key of one mask (for the CLI and reports)."""
    eff = effective_mask(mask)
    q = _quotient(mask, eff)
    return {
        "layers": {n: list(s) for n, s in mask.shapes.items()},
        "kept": mask.kept(),
        "total": mask.total(),
        "density": mask.density(),
        "effective_kept": eff.kept(),
        "effective_density": eff.density(),
        "collapsed_layers": [n for n, k in eff.layer_kept().items() if k == 0],
        "twin_count": q.twins,
        "class_key": _key(q),
    }


def canon_report(paths: list[str]) -> str:
    """Text for ``lotterysearch canon MASK.npz [MASK2.npz]``: densities, twins, key, and isomorphism."""
    if not 1 <= len(paths) <= 2:
        raise ConfigError(f"canon takes one or two mask files, got {len(paths)}")
    infos = [describe(Mask.load(p)) for p in paths]
    lines = []
    for path, info in zip(paths, infos, strict=True):
        layers = ", ".join(f"{n} {s}" for n, s in info["layers"].items())
        collapsed = ", ".join(info["collapsed_layers"]) or "none"
        lines += [
            f"mask               {path}",
            f"layers             {layers}",
            f"density            {info['density']:.6g} ({info['kept']} of {info['total']} weights)",
            f"effective density  {info['effective_density']:.6g} ({info['effective_kept']} weights on paths)",
            f"collapsed layers   {collapsed}",
            f"twins merged       {info['twin_count']}",
            f"class key          {info['class_key']}",
            "",
        ]
    if len(infos) == 2:
        same = infos[0]["class_key"] == infos[1]["class_key"]
        lines.append(f"isomorphic: {'yes' if same else 'no'}")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- archive --------------------------------------------------------------------------------------
@dataclass
class _Entry:
    """One isomorphism class: its key, the first mask seen of it (packed, with its layer shapes: an eighth
    of a boolean mask's memory) and what the search stored (e.g. fitness)."""

    key: str
    packed: bytes
    shapes: dict[str, tuple[int, ...]]
    payload: Any = None


class ClassArchive:
    """Classes seen so far, by exact key: a plain dict lookup decides whether a mask needs training."""

    version = VERSION

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def add(self, mask: Mask, payload: Any = None, key: str | None = None) -> tuple[str, bool]:
        """Key of ``mask`` and whether its class is new. A new class stores ``mask`` (packed) as its
        representative; a known class is left unchanged (use ``set_payload`` to update). ``key``: the
        mask's ``class_key`` when the caller has it already (computed by an evaluator, or stored)."""
        key = class_key(mask) if key is None else key
        if key in self._entries:
            return key, False
        self._entries[key] = _Entry(key, mask.pack(), mask.shapes, payload)
        return key, True

    def add_packed(
        self, key: str, packed: bytes, shapes: Mapping[str, tuple[int, ...]], payload: Any = None
    ) -> bool:
        """``add`` of a packed mask whose key the caller knows: nothing is unpacked. Whether it is new."""
        if key in self._entries:
            return False
        self._entries[key] = _Entry(key, bytes(packed), dict(shapes), payload)
        return True

    def get(self, key: str, default: Any = None) -> Any:
        """The payload stored for class ``key`` (``default`` if the class is unknown)."""
        entry = self._entries.get(key)
        return default if entry is None else entry.payload

    def representative(self, key: str) -> Mask:
        """The first mask seen of class ``key`` (a fresh copy)."""
        entry = self._entries[key]
        return Mask.unpack(entry.packed, entry.shapes)

    def set_payload(self, key: str, payload: Any) -> None:
        if key not in self._entries:
            raise KeyError(key)
        self._entries[key].payload = payload

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def to_records(self) -> list[dict[str, Any]]:
        """Plain records for a store: key, algorithm version, layer shapes, packed representative, payload."""
        return [
            {
                "key": e.key,
                "version": self.version,
                "shapes": {n: list(s) for n, s in e.shapes.items()},
                "representative": e.packed,
                "payload": e.payload,
            }
            for e in self._entries.values()
        ]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> ClassArchive:
        """Rebuild an archive. Records of another algorithm version get their keys recomputed from the
        representative, so an old store keeps working after the canonical form changes."""
        archive = cls()
        for r in records:
            shapes = {str(n): tuple(int(d) for d in s) for n, s in r["shapes"].items()}
            packed = bytes(r["representative"])
            key = str(r["key"]) if r.get("version") == cls.version else class_key(Mask.unpack(packed, shapes))
            archive.add_packed(key, packed, shapes, r.get("payload"))
        return archive
