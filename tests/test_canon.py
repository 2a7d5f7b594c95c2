"""Canonical class keys: invariance, sensitivity, hard cases for refinement, and an exact oracle (VF2++).

Runtime: about 12 s on 2 idle cores (torch's thread contention on a loaded machine can double it).
"""

from __future__ import annotations

import io
import itertools
import re

import networkx as nx
import numpy as np
import pytest
from convtools import conv_shapes, random_conv_mask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lotterysearch.core import alignment
from lotterysearch.core.canon import (
    VERSION,
    ClassArchive,
    canon_report,
    class_key,
    describe,
    effective_mask,
    is_isomorphic,
    mask_graph,
    twin_count,
)
from lotterysearch.core.masks import Mask, unit_links
from lotterysearch.errors import ConfigError, MaskError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- helpers --------------------------------------------------------------------------------------
def make_mask(*layers: np.ndarray | list) -> Mask:
    return Mask({f"fc{i}": np.asarray(a, dtype=bool) for i, a in enumerate(layers, start=1)})


def arrays(mask: Mask) -> list[np.ndarray]:
    return [mask[n].numpy().copy() for n in mask.names]


def random_mask(rng: np.random.Generator, widths: tuple[int, ...], density: float) -> Mask:
    return make_mask(*(rng.random((widths[i], widths[i - 1])) < density for i in range(1, len(widths))))


def permute_hidden(mask: Mask, rng: np.random.Generator) -> Mask:
    """Permute the neurons of every hidden layer: rows of W_l and columns of W_{l+1} together."""
    a = arrays(mask)
    for layer in range(len(a) - 1):
        p = rng.permutation(a[layer].shape[0])
        a[layer], a[layer + 1] = a[layer][p], a[layer + 1][:, p]
    return make_mask(*a)


def permute_io(mask: Mask, inputs: np.ndarray | None = None, outputs: np.ndarray | None = None) -> Mask:
    a = arrays(mask)
    if inputs is not None:
        a[0] = a[0][:, inputs]
    if outputs is not None:
        a[-1] = a[-1][outputs]
    return make_mask(*a)


def reachability(mask: Mask) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """forward[l][j]: some input reaches neuron j of layer l; backward[l][j]: neuron j reaches an output."""
    a = arrays(mask)
    forward = [np.ones(a[0].shape[1], dtype=bool)]
    for m in a:
        forward.append((m & forward[-1][None, :]).any(axis=1))
    backward = [np.ones(a[-1].shape[0], dtype=bool)]
    for m in reversed(a):
        backward.append((m & backward[-1][:, None]).any(axis=0))
    return forward, backward[::-1]


def removal_fixed_point(mask: Mask) -> Mask:
    """The definition of the effective subnetwork, literally: remove weights into hidden neurons without
    outgoing weights and out of hidden neurons without incoming weights, until nothing changes."""
    a = arrays(mask)
    changed = True
    while changed:
        changed = False
        for layer in range(len(a) - 1):  # hidden layer fed by a[layer], feeding a[layer + 1]
            has_in = a[layer].any(axis=1)
            has_out = a[layer + 1].any(axis=0)
            dead_end = ~has_out & a[layer].any(axis=1)
            sourceless = ~has_in & a[layer + 1].any(axis=0)
            if dead_end.any() or sourceless.any():
                a[layer][dead_end] = False
                a[layer + 1][:, sourceless] = False
                changed = True
    return make_mask(*a)


def cycles_mask(k: int, parts: int) -> Mask:
    """Input → k hidden → k hidden → output, the two hidden layers joined by ``parts`` disjoint cycles of
    length 2k/parts; every hidden neuron has degree 2 between the hidden layers (WL cannot tell them apart)."""
    a = np.zeros((k, k), dtype=bool)
    size = k // parts
    for p in range(parts):
        for i in range(size):
            a[p * size + i, p * size + i] = True
            a[p * size + (i + 1) % size, p * size + i] = True
    return make_mask(np.ones((k, 1)), a, np.ones((1, k)))


masks_strategy = st.builds(
    lambda seed, widths, density: random_mask(np.random.default_rng(seed), widths, density),
    st.integers(0, 2**32 - 1),
    st.sampled_from([(3, 4, 4, 2), (5, 6, 2), (2, 3, 3, 3, 2), (8, 10, 10, 3), (4, 5, 5, 5, 4)]),
    st.floats(0.15, 0.9),
)


# ---- effective subnetwork -------------------------------------------------------------------------
def test_effective_mask_hand_example() -> None:
    # Hidden neuron 0 feeds nothing, hidden neuron 1 is fed by nothing, hidden neuron 2 lies on a path.
    m = make_mask([[1, 1], [0, 0], [0, 1]], [[0, 1, 1]])
    assert effective_mask(m) == make_mask([[0, 0], [0, 0], [0, 1]], [[0, 0, 1]])


@SETTINGS
@given(masks_strategy)
def test_effective_mask_is_the_fixed_point_of_repeated_removal(mask: Mask) -> None:
    eff = effective_mask(mask)
    assert eff == mask.effective()
    assert eff == removal_fixed_point(mask)
    assert effective_mask(eff) == eff  # idempotent: a fixed point
    assert class_key(eff) == class_key(mask) == class_key(mask, eff)  # the sweep given or done, one key


# ---- graph ----------------------------------------------------------------------------------------
def test_mask_graph_nodes_labels_and_edges() -> None:
    m = make_mask([[1, 1], [0, 0], [0, 1]], [[0, 1, 1], [1, 0, 0]])
    g = mask_graph(m)
    assert sorted(g.nodes) == ["h1:0", "h1:2", "in:0", "in:1", "out:0", "out:1"]
    assert g.nodes["h1:2"] == {"label": "h:1", "layer": 1, "index": 2}
    assert g.nodes["in:1"] == {"label": "in:1", "layer": 0, "index": 1}
    assert g.nodes["out:1"]["label"] == "out:1"
    assert sorted(g.edges) == [
        ("h1:0", "out:1"),
        ("h1:2", "out:0"),
        ("in:0", "h1:0"),
        ("in:1", "h1:0"),
        ("in:1", "h1:2"),
    ]
    assert g.edges["h1:0", "out:1"] == {"layer": "fc2"}
    assert g.graph == {"widths": "2-3-2", "layers": "fc1,fc2"}


@SETTINGS
@given(masks_strategy)
def test_mask_graph_has_one_edge_per_effective_weight_and_round_trips_graphml(mask: Mask) -> None:
    g = mask_graph(mask)
    assert g.number_of_edges() == effective_mask(mask).kept()
    buf = io.BytesIO()
    nx.write_graphml(g, buf)
    back = nx.read_graphml(io.BytesIO(buf.getvalue()))
    assert dict(back.nodes(data=True)) == dict(g.nodes(data=True))
    assert sorted(back.edges(data=True)) == sorted(g.edges(data=True))
    assert {k: back.graph[k] for k in g.graph} == g.graph


def test_collapsed_masks_have_empty_graph_and_share_one_key_per_architecture() -> None:
    a = make_mask([[1, 0], [0, 0]], [[0, 0]])  # layer fc2 cut
    b = make_mask([[0, 0], [0, 0]], [[1, 1]])  # layer fc1 empty
    c = make_mask([[0, 0], [0, 0], [0, 0]], [[1, 1, 1]])  # another hidden width
    assert mask_graph(a).number_of_nodes() == 0
    assert class_key(a) == class_key(b) != class_key(c)


def test_masks_that_do_not_chain_are_rejected() -> None:
    m = Mask({"fc1": np.ones((3, 2), dtype=bool), "fc2": np.ones((1, 4), dtype=bool)})
    with pytest.raises(
        MaskError, match="^mask layers do not chain: 'fc2' has 4 inputs, the layer before has 3 outputs$"
    ):
        class_key(m)


# ---- key: invariance and sensitivity --------------------------------------------------------------
def test_key_format_and_a_pinned_value() -> None:
    """A changed canonical form must come with a new VERSION: stored keys would silently stop matching."""
    m = make_mask([[1, 1, 0], [0, 1, 1]], [[1, 0], [1, 1]], [[1, 1]])
    key = class_key(m)
    assert re.fullmatch(r"canon-v1:[0-9a-f]{32}", key)
    assert key.startswith(VERSION + ":")
    assert key == PINNED_KEY


PINNED_KEY = "canon-v1:9db5e2c76f7d10cbfeaf3c6b79087fe1"

# The v1 keys of these MLP masks, computed by canon-v1 before class keys were defined for convnets. Stored
# runs hold such keys: any change here needs a new VERSION. They cover the discrete path (random masks),
# the component path (parallel chains), twins, the search (K_{5,5} minus a matching), collapse and no
# hidden layer.
V1_KEYS = {
    "random 3-4-4-2": "canon-v1:e59a6fbe50c7c70d4f3ddad4e8d62001",
    "random 8-10-10-3": "canon-v1:998a22605a0d64b9573742ab4b393859",
    "random 5-6-2": "canon-v1:bc0cba9284aa206f2c59493adfcb192d",
    "random 4-5-5-5-4": "canon-v1:08180874052d8f9141cdd4f59591290a",
    "chains": "canon-v1:f9814a5f24deccf6480e8d5854ab16de",
    "twins": "canon-v1:17fad2365391489d02f3661261996e99",
    "k55 minus matching": "canon-v1:84323e9f9bfae4931969f863398724b1",
    "collapsed": "canon-v1:559443b502e3fdb477f125638bc17b2d",
    "no hidden layer": "canon-v1:4d2f79280818d3785176f6571e080e3f",
}


def v1_masks() -> dict[str, Mask]:
    rng = np.random.default_rng(13)
    out = {}
    for widths, density in [
        ((3, 4, 4, 2), 0.5),
        ((8, 10, 10, 3), 0.3),
        ((5, 6, 2), 0.6),
        ((4, 5, 5, 5, 4), 0.4),
    ]:
        name = "random " + "-".join(map(str, widths))
        out[name] = make_mask(
            *(rng.random((widths[i], widths[i - 1])) < density for i in range(1, len(widths)))
        )
    middle = np.eye(12, dtype=bool)
    middle[1, 0] = middle[3, 2] = True
    out["chains"] = make_mask(np.ones((12, 1)), middle, np.ones((1, 12)))
    out["twins"] = make_mask([[1, 0], [1, 0], [0, 1], [1, 0]], [[1, 1, 1, 1]])
    out["k55 minus matching"] = make_mask(np.ones((5, 2)), ~np.eye(5, dtype=bool), np.ones((2, 5)))
    out["collapsed"] = make_mask([[1, 0], [0, 0]], [[0, 0]])
    out["no hidden layer"] = make_mask([[1, 0, 1], [0, 1, 0]])
    return out


def test_mlp_keys_are_the_v1_keys() -> None:
    assert VERSION == "canon-v1"
    assert {name: class_key(m) for name, m in v1_masks().items()} == V1_KEYS
    assert {name: class_key(m, effective_mask(m)) for name, m in v1_masks().items()} == V1_KEYS


@SETTINGS
@given(masks_strategy, st.integers(0, 2**32 - 1))
def test_permuting_hidden_neurons_keeps_the_key(mask: Mask, seed: int) -> None:
    assert class_key(permute_hidden(mask, np.random.default_rng(seed))) == class_key(mask)


@SETTINGS
@given(masks_strategy, st.integers(0, 2**32 - 1))
def test_turning_a_live_weight_off_changes_the_key(mask: Mask, seed: int) -> None:
    """The effective subnetwork loses that edge, so the edge counts differ: never isomorphic."""
    eff = arrays(effective_mask(mask))
    live = [(layer, i, j) for layer, a in enumerate(eff) for i, j in zip(*np.nonzero(a), strict=True)]
    if not live:
        return
    layer, i, j = live[np.random.default_rng(seed).integers(len(live))]
    a = arrays(mask)
    a[layer][i, j] = False
    assert class_key(make_mask(*a)) != class_key(mask)


@SETTINGS
@given(masks_strategy, st.integers(0, 2**32 - 1))
def test_turning_on_a_dead_position_that_joins_a_path_changes_the_key(mask: Mask, seed: int) -> None:
    forward, backward = reachability(mask)
    a = arrays(mask)
    joining = [
        (layer, i, j)
        for layer, m in enumerate(a)
        for i, j in zip(*np.nonzero(~m & backward[layer + 1][:, None] & forward[layer][None, :]), strict=True)
    ]
    if not joining:
        return
    layer, i, j = joining[np.random.default_rng(seed).integers(len(joining))]
    a[layer][i, j] = True
    grown = make_mask(*a)
    assert effective_mask(grown).kept() > effective_mask(mask).kept()
    assert class_key(grown) != class_key(mask)


@SETTINGS
@given(masks_strategy, st.integers(0, 2**32 - 1), st.booleans())
def test_adding_weights_off_every_path_keeps_the_key(mask: Mask, seed: int, from_unreached: bool) -> None:
    """Weights out of neurons no input reaches (or into neurons that reach no output) join no path, however
    many are added at once."""
    rng = np.random.default_rng(seed)
    forward, backward = reachability(mask)
    a = arrays(mask)
    for layer, m in enumerate(a):
        off_path = ~forward[layer][None, :] if from_unreached else ~backward[layer + 1][:, None]
        m |= off_path & (rng.random(m.shape) < 0.5)
    grown = make_mask(*a)
    assert effective_mask(grown) == effective_mask(mask)
    assert class_key(grown) == class_key(mask)


@SETTINGS
@given(masks_strategy, st.data())
def test_swapping_inputs_or_outputs_of_different_degree_changes_the_key(
    mask: Mask, data: st.DataObject
) -> None:
    """Inputs and outputs are fixed vertices: the effective degree of input i is an isomorphism invariant,
    so swapping two inputs (outputs) of different degree gives another class."""
    eff = arrays(effective_mask(mask))
    in_deg, out_deg = eff[0].sum(axis=0), eff[-1].sum(axis=1)
    for deg, side in ((in_deg, "inputs"), (out_deg, "outputs")):
        pairs = [(i, j) for i, j in itertools.combinations(range(deg.size), 2) if deg[i] != deg[j]]
        if not pairs:
            continue
        i, j = data.draw(st.sampled_from(pairs))
        p = np.arange(deg.size)
        p[[i, j]] = p[[j, i]]
        swapped = permute_io(mask, **{side: p})
        assert class_key(swapped) != class_key(mask)


def test_swapping_inputs_keeps_the_key_exactly_when_the_mask_is_symmetric_under_it() -> None:
    # inputs 0 and 1 feed hidden neurons 0 and 1, which both feed output 0: swapping the inputs is undone by
    # swapping the hidden neurons. Input 2 feeds both hidden neurons, so swapping 0 and 2 is not.
    m = make_mask([[1, 0, 1], [0, 1, 1]], [[1, 1]])
    assert class_key(permute_io(m, inputs=np.array([1, 0, 2]))) == class_key(m)
    assert class_key(permute_io(m, inputs=np.array([2, 1, 0]))) != class_key(m)
    # outputs: hidden 0 → output 0, hidden 1 → output 1, both fed by input 0 (symmetric); add input 1 → h0.
    n = make_mask([[1, 0], [1, 0]], [[1, 0], [0, 1]])
    assert class_key(permute_io(n, outputs=np.array([1, 0]))) == class_key(n)
    n2 = make_mask([[1, 1], [1, 0]], [[1, 0], [0, 1]])
    assert class_key(permute_io(n2, outputs=np.array([1, 0]))) != class_key(n2)


def test_architectures_are_part_of_the_key() -> None:
    small = make_mask([[1]], [[1]])
    wider = make_mask([[1], [0]], [[1, 0]])  # same effective subnetwork, hidden width 2
    assert effective_mask(wider).kept() == 2
    assert class_key(small) != class_key(wider)


def test_networks_without_hidden_layers_key_the_mask_itself() -> None:
    a = make_mask([[1, 0, 1], [0, 1, 0]])
    b = make_mask([[0, 1, 1], [1, 0, 0]])
    assert class_key(a) != class_key(b)
    assert class_key(a) == class_key(a.copy())


# ---- twins and hard cases for refinement ----------------------------------------------------------
def test_twins_are_merged_and_counted() -> None:
    # Hidden neurons 0, 1, 3 have in-set {input 0} and out-set {output 0}: three twins → two merged away.
    m = make_mask([[1, 0], [1, 0], [0, 1], [1, 0]], [[1, 1, 1, 1]])
    assert twin_count(m) == 2
    assert twin_count(effective_mask(m)) == 2
    # Multiplicity is part of the class: three twins and a loner differ from two pairs of twins.
    other = make_mask([[1, 0], [1, 0], [0, 1], [0, 1]], [[1, 1, 1, 1]])
    assert twin_count(other) == 2
    assert class_key(m) != class_key(other)


@pytest.mark.filterwarnings("ignore:The hashes produced for directed graphs changed")
@pytest.mark.parametrize("k", [6, 8, 16])
def test_one_long_cycle_and_two_short_cycles_share_a_wl_hash_but_not_a_key(k: int) -> None:
    one, two = cycles_mask(k, 1), cycles_mask(k, 2)
    g1, g2 = mask_graph(one), mask_graph(two)
    assert nx.weisfeiler_lehman_graph_hash(g1, node_attr="label") == nx.weisfeiler_lehman_graph_hash(
        g2, node_attr="label"
    )
    hidden = [[v for v, d in g.nodes(data=True) if d["label"].startswith("h:")] for g in (g1, g2)]
    components = [
        nx.number_weakly_connected_components(g.subgraph(h)) for g, h in zip((g1, g2), hidden, strict=True)
    ]
    assert components == [1, 2]  # an isomorphism invariant: the masks are not isomorphic
    assert twin_count(one) == twin_count(two) == 0
    assert class_key(one) != class_key(two)
    rng = np.random.default_rng(k)
    for _ in range(5):
        assert class_key(permute_hidden(one, rng)) == class_key(one)
        assert class_key(permute_hidden(two, rng)) == class_key(two)


@pytest.mark.parametrize("n", [3, 7, 12])
def test_complete_bipartite_minus_a_matching_is_found_isomorphic_to_its_relabellings(n: int) -> None:
    """Between the hidden layers K_{n,n} minus a perfect matching: automorphism group S_n, no twins, and
    refinement splits nothing, so only the search can order the neurons."""
    m = make_mask(np.ones((n, 2)), ~np.eye(n, dtype=bool), np.ones((2, n)))
    rng = np.random.default_rng(n)
    assert twin_count(m) == 0
    for _ in range(3):
        assert is_isomorphic(permute_hidden(m, rng), m)
    a = arrays(m)
    a[1][0, 0] = True  # one matching edge back: another class
    assert not is_isomorphic(make_mask(*a), m)


def test_interchangeable_components_are_canonized_apart() -> None:
    """Forty parallel chains input → h1 → h2 → output plus a few crossings: the refined colouring is not
    discrete, and the keys must still see a relabelled copy as equal and a rewired one as different."""
    n = 40
    middle = np.eye(n, dtype=bool)
    middle[1, 0] = middle[3, 2] = True  # two chains joined into a Z
    m = make_mask(np.ones((n, 1)), middle, np.ones((1, n)))
    rng = np.random.default_rng(0)
    assert class_key(permute_hidden(m, rng)) == class_key(m)
    rewired = middle.copy()
    rewired[3, 2] = False
    rewired[5, 4] = rewired[4, 5] = True  # another shape: a 4-cycle plus a Z
    assert class_key(make_mask(np.ones((n, 1)), rewired, np.ones((1, n)))) != class_key(m)


# ---- the oracle -----------------------------------------------------------------------------------
def vf2pp(a: Mask, b: Mask) -> bool:
    return graphs_isomorphic(mask_graph(a), mask_graph(b))


def graphs_isomorphic(g: nx.DiGraph, h: nx.DiGraph) -> bool:
    """VF2++ with node labels; it answers False for two empty graphs (networkx 3.6), which are isomorphic."""
    if g.number_of_nodes() == h.number_of_nodes() == 0:
        return True
    return nx.vf2pp_is_isomorphic(g, h, node_label="label")


def regular_bipartite(rng: np.random.Generator, n: int, degree: int) -> np.ndarray:
    """Union of ``degree`` random perfect matchings: (nearly) regular, so refinement splits little."""
    a = np.zeros((n, n), dtype=bool)
    for _ in range(degree):
        a[np.arange(n), rng.permutation(n)] = True
    return a


def oracle_pair(rng: np.random.Generator, trial: int) -> tuple[Mask, Mask]:
    """A random mask and a partner: a relabelled copy, a relabelled copy with one flip, or a reshuffle."""
    if trial % 2:
        widths = [(3, 4, 4, 2), (2, 3, 3, 3, 2), (4, 5, 3), (2, 4, 4, 1), (3, 3, 3, 3)][trial // 2 % 5]
        a = random_mask(rng, widths, rng.uniform(0.2, 0.8))
    else:  # symmetric: shared inputs and outputs, nearly regular middle layers (the search must order them)
        n = int(rng.integers(3, 7))
        middle = [regular_bipartite(rng, n, int(rng.integers(1, 4))) for _ in range(1 + trial // 2 % 2)]
        a = make_mask(np.ones((n, 1 + trial % 3)), *middle, np.ones((1 + trial // 3 % 2, n)))
    kind = trial // 5 % 3
    if kind == 2:  # an independent mask with the same kept count per layer
        return a, make_mask(*(rng.permutation(x.ravel()).reshape(x.shape) for x in arrays(a)))
    b = arrays(permute_hidden(a, rng))
    if kind == 1:
        layer = rng.integers(len(b))
        i, j = rng.integers(b[layer].shape[0]), rng.integers(b[layer].shape[1])
        b[layer][i, j] = ~b[layer][i, j]
    return a, make_mask(*b)


def test_keys_agree_with_vf2pp_on_random_pairs() -> None:
    rng = np.random.default_rng(2024)
    outcomes = {True: 0, False: 0}
    for trial in range(400):
        a, b = oracle_pair(rng, trial)
        truth = vf2pp(a, b)
        assert (class_key(a) == class_key(b)) == truth, (arrays(a), arrays(b))
        outcomes[truth] += 1
    assert min(outcomes.values()) >= 100, outcomes


def test_keys_partition_every_mask_of_a_tiny_architecture_like_vf2pp() -> None:
    """All 1024 masks of a 2-2-2-1 network: the classes by key are exactly the classes by VF2++."""
    widths = (2, 2, 2, 1)
    shapes = [(widths[i], widths[i - 1]) for i in range(1, len(widths))]
    sizes = [r * c for r, c in shapes]
    reps: list[tuple[Mask, nx.DiGraph, str]] = []  # one per VF2++ class
    key_to_class: dict[str, int] = {}
    for bits in range(2 ** sum(sizes)):
        flat = np.array([(bits >> b) & 1 for b in range(sum(sizes))], dtype=bool)
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        mask = make_mask(*(p.reshape(s) for p, s in zip(parts, shapes, strict=True)))
        g = mask_graph(mask)
        cls = next(
            (
                c
                for c, (_, h, _) in enumerate(reps)
                if h.number_of_edges() == g.number_of_edges() and graphs_isomorphic(g, h)
            ),
            None,
        )
        key = class_key(mask)
        if cls is None:
            reps.append((mask, g, key))
            cls = len(reps) - 1
        assert key_to_class.setdefault(key, cls) == cls
    assert len(key_to_class) == len(reps)
    assert len(reps) >= 30


# ---- describe, report, archive --------------------------------------------------------------------
def test_describe_reports_direct_and_effective_density() -> None:
    m = make_mask([[1, 1], [0, 0], [0, 1]], [[0, 1, 1]])
    info = describe(m)
    assert info["density"] == pytest.approx(5 / 9)
    assert info["effective_density"] == pytest.approx(2 / 9)
    assert (info["kept"], info["effective_kept"], info["total"]) == (5, 2, 9)
    assert info["twin_count"] == 0
    assert info["collapsed_layers"] == []
    assert info["class_key"] == class_key(m)


def test_canon_report_for_one_and_two_masks(tmp_path) -> None:
    m = make_mask([[1, 1], [0, 0], [0, 1]], [[0, 1, 1]])
    a = str(m.save(tmp_path / "a.npz"))
    b = str(permute_hidden(m, np.random.default_rng(1)).save(tmp_path / "b.npz"))
    c = str(make_mask([[1, 1], [0, 0], [1, 1]], [[0, 1, 1]]).save(tmp_path / "c.npz"))
    one = canon_report([a])
    assert one.splitlines() == [
        f"mask               {a}",
        "layers             fc1 [3, 2], fc2 [1, 3]",
        "density            0.555556 (5 of 9 weights)",
        "effective density  0.222222 (2 weights on paths)",
        "collapsed layers   none",
        "twins merged       0",
        f"class key          {class_key(m)}",
    ]
    assert "isomorphic" not in one
    assert canon_report([a, b]).splitlines()[-1] == "isomorphic: yes"
    assert canon_report([a, c]).splitlines()[-1] == "isomorphic: no"
    with pytest.raises(ConfigError, match="^canon takes one or two mask files, got 3$"):
        canon_report([a, b, c])
    with pytest.raises(MaskError, match="does not exist"):
        canon_report([str(tmp_path / "missing.npz")])


def test_archive_adds_finds_and_round_trips_through_records() -> None:
    rng = np.random.default_rng(7)
    base = [random_mask(rng, (6, 8, 8, 3), 0.4) for _ in range(5)]
    archive = ClassArchive()
    assert archive.version == VERSION
    keys = []
    for i, m in enumerate(base):
        key, new = archive.add(m, payload={"accuracy": 0.5 + i / 100})
        keys.append(key)
        assert new
    for m, key in zip(base, keys, strict=True):
        assert archive.add(permute_hidden(m, rng), payload={"accuracy": 0.0}) == (key, False)
    assert len(archive) == 5
    assert keys[2] in archive and "canon-v1:0" not in archive
    assert archive.representative(keys[2]) == base[2]
    assert archive.get(keys[2]) == {"accuracy": 0.52}
    assert archive.get("canon-v1:unknown") is None
    assert archive.get("canon-v1:unknown", "absent") == "absent"
    archive.set_payload(keys[0], {"accuracy": 0.9})

    records = archive.to_records()
    assert {type(v) for r in records for v in (r["key"], r["version"], r["representative"])} == {str, bytes}
    back = ClassArchive.from_records(records)
    assert list(back) == list(archive)
    for key in archive:
        assert back.representative(key) == archive.representative(key)
        assert back.get(key) == archive.get(key)
    assert back.get(keys[0]) == {"accuracy": 0.9}

    # Records written by another algorithm version are re-keyed from their representative.
    old = [dict(r, key="canon-v0:stale", version="canon-v0") for r in records[:1]]
    assert list(ClassArchive.from_records(old)) == [keys[0]]


# ---- convnets: channels are units, kernel patterns are edge labels --------------------------------
CONV_SPECS = ("conv:6x6x1:3-4-M:5-3", "cnn1d:8:3k3-3:4-2", "conv:4x4x2:3:4")


def random_unit_perms(rng: np.random.Generator, mask: Mask) -> list[np.ndarray]:
    return [rng.permutation(s[0]) for s in list(mask.shapes.values())[:-1]]


def permute_units(mask: Mask, rng: np.random.Generator) -> Mask:
    return alignment.permute_hidden(mask, random_unit_perms(rng, mask))


def symmetric_conv_mask(rng: np.random.Generator, spec: str) -> Mask:
    """The first and last layers dense with one pattern for all links, the middle ones unions of random
    perfect matchings (nearly regular) with each link's pattern one of two: refinement splits little, so
    the search must order the channels, by the labels too."""
    out = {}
    shapes = conv_shapes(spec)
    for k, (name, shape) in enumerate(shapes.items()):
        rows, fan = shape[0], shape[1] if k == 0 else list(shapes.values())[k - 1][0]
        block = int(np.prod(shape[1:])) // fan  # entries per link (kernel, or HW columns after a flatten)
        patterns = rng.random((2, block)) < 0.5
        patterns[:, 0] = True
        if k in (0, len(shapes) - 1):
            links, choice = np.ones((rows, fan), dtype=bool), np.zeros((rows, fan), dtype=int)
        else:
            n = max(rows, fan)
            square = np.zeros((n, n), dtype=bool)
            for _ in range(int(rng.integers(1, 3))):
                square[np.arange(n), rng.permutation(n)] = True
            links, choice = square[:rows, :fan], rng.integers(0, 2, size=(rows, fan))
        out[name] = (links[:, :, None] & patterns[choice]).reshape(shape)
    return Mask(out)


def vf2(a: Mask, b: Mask) -> bool:
    """networkx's VF2 with node labels and edge patterns: the independent oracle."""
    return nx.is_isomorphic(
        mask_graph(a),
        mask_graph(b),
        node_match=lambda x, y: x["label"] == y["label"],
        edge_match=lambda x, y: x["pattern"] == y["pattern"],
    )


def flip_one_kernel_entry(mask: Mask, rng: np.random.Generator) -> Mask:
    """One entry of one live kernel (or fc block after the flatten) with two or more live entries turned
    off: the link stays, only its label changes."""
    xs = effective_mask(mask).to_numpy()
    candidates = []
    before = None
    for name, m in xs.items():
        flatten = before is not None and before.ndim > 2 and m.ndim == 2
        if m.ndim > 2 or flatten:
            blocks = m.reshape(m.shape[0], before.shape[0] if flatten else m.shape[1], -1)
            candidates += [(name, r, c, blocks.shape[2]) for r, c in np.argwhere(blocks.sum(axis=2) >= 2)]
        before = m
    if not candidates:
        return mask
    name, r, c, size = candidates[int(rng.integers(len(candidates)))]
    out = mask.to_numpy()
    block = out[name].reshape(out[name].shape[0], -1, size)[r, c]  # a view into out[name]
    block[rng.choice(np.flatnonzero(block))] = False
    return Mask(out)


def test_conv_mask_graph_nodes_patterns_and_graphml() -> None:
    conv1 = np.zeros((2, 1, 3, 3), dtype=bool)
    conv1[0, 0, 1, 1] = True  # channel 0: the centre tap
    conv1[1, 0, 0] = True  # channel 1: the top row
    fc1 = np.zeros((3, 2 * 4), dtype=bool)  # 2 channels of 2x2 after the flatten
    fc1[0, [0, 3]] = True  # neuron 0 reads channel 0's positions 0 and 3
    fc1[2, 4:8] = True  # neuron 2 reads all of channel 1
    fc2 = np.ones((2, 3), dtype=bool)
    g = mask_graph(Mask({"conv1": conv1, "fc1": fc1, "fc2": fc2}))
    assert sorted(g.nodes) == ["h1:0", "h1:1", "h2:0", "h2:2", "in:0", "out:0", "out:1"]
    assert g.nodes["h1:1"] == {"label": "h:1", "layer": 1, "index": 1}
    assert g.edges["in:0", "h1:0"] == {"layer": "conv1", "pattern": "000010000"}
    assert g.edges["in:0", "h1:1"]["pattern"] == "111000000"
    assert g.edges["h1:0", "h2:0"] == {"layer": "fc1", "pattern": "1001"}
    assert g.edges["h1:1", "h2:2"]["pattern"] == "1111"
    assert g.edges["h2:2", "out:1"] == {"layer": "fc2", "pattern": "1"}
    assert g.number_of_edges() == 2 + 2 + 4
    assert g.graph == {"widths": "1-2-3-2", "layers": "conv1,fc1,fc2"}
    buf = io.BytesIO()
    nx.write_graphml(g, buf)
    back = nx.read_graphml(io.BytesIO(buf.getvalue()))
    assert sorted(back.edges(data=True)) == sorted(g.edges(data=True))


@pytest.mark.parametrize("spec", CONV_SPECS)
def test_permuting_conv_channels_and_hidden_neurons_keeps_the_key(spec: str) -> None:
    rng = np.random.default_rng(5)
    for _ in range(15):
        mask = random_conv_mask(rng, spec, rng.uniform(0.1, 0.7))
        key = class_key(mask)
        assert key.startswith(VERSION + ":")
        for _ in range(2):
            copy = permute_units(mask, rng)
            assert class_key(copy) == key
            assert vf2(copy, mask)


def test_a_permuted_channel_takes_its_block_of_fc_inputs_along() -> None:
    """Moving channel 0's kernels to position 1 without its fc block is another network."""
    rng = np.random.default_rng(3)
    mask = random_conv_mask(rng, "conv:4x4x2:3:4", 0.5)
    perm = np.array([1, 0, 2])
    moved = alignment.permute_hidden(mask, [perm])
    arrays_ = mask.to_numpy()
    arrays_["conv1"] = arrays_["conv1"][perm]  # channels moved, fc columns left in place
    half = Mask(arrays_)
    assert class_key(moved) == class_key(mask)
    assert vf2(half, mask) == (class_key(half) == class_key(mask))
    assert not vf2(half, mask)


def test_masks_differing_in_one_kernel_pattern_are_different_classes() -> None:
    conv1 = np.zeros((2, 1, 3, 3), dtype=bool)
    conv1[:, 0, 1, 1] = True
    fc1 = np.ones((2, 2 * 16), dtype=bool)
    a = Mask({"conv1": conv1, "fc1": fc1})
    b_arrays = a.to_numpy()
    b_arrays["conv1"][1, 0, 0, 0] = True  # channel 1's kernel gains a corner: same links, another pattern
    b = Mask(b_arrays)
    assert [m.sum() for m in unit_links(a)] == [m.sum() for m in unit_links(b)]
    assert not vf2(a, b)
    assert class_key(a) != class_key(b)
    # the same corner on channel 0 instead: the channels swap roles, an isomorph of b
    c_arrays = a.to_numpy()
    c_arrays["conv1"][0, 0, 0, 0] = True
    assert vf2(Mask(c_arrays), b) and class_key(Mask(c_arrays)) == class_key(b)


def test_conv_keys_agree_with_vf2_on_random_pairs() -> None:
    """Equal keys exactly when VF2 says isomorphic: permuted copies, copies with one kernel entry flipped
    (only a label changes), copies with one position flipped, and independent reshuffles."""
    rng = np.random.default_rng(2026)
    outcomes = {True: 0, False: 0}
    for trial in range(240):
        spec = CONV_SPECS[trial % len(CONV_SPECS)]
        if trial // 3 % 2:
            a = random_conv_mask(rng, spec, rng.uniform(0.1, 0.6))
        else:
            a = symmetric_conv_mask(rng, spec)
        kind = trial // 6 % 4
        if kind == 3:
            b = Mask({n: rng.permutation(x.ravel()).reshape(x.shape) for n, x in a.to_numpy().items()})
        else:
            b = permute_units(a, rng)
            if kind == 1:
                b = flip_one_kernel_entry(b, rng)
            elif kind == 2:
                xs = b.to_numpy()
                name = a.names[int(rng.integers(len(a)))]
                flat = xs[name].reshape(-1)
                flat[int(rng.integers(flat.size))] ^= True
                b = Mask(xs)
        truth = vf2(a, b)
        assert (class_key(a) == class_key(b)) == truth, (spec, trial)
        outcomes[truth] += 1
    assert min(outcomes.values()) >= 60, outcomes


def test_conv_twins_need_equal_kernel_patterns() -> None:
    conv1 = np.zeros((3, 1, 3, 3), dtype=bool)
    conv1[:, 0, 1, 1] = True  # three channels with the centre tap
    fc1 = np.zeros((2, 3 * 4), dtype=bool)
    fc1[0, :] = True  # neuron 0 reads every position of every channel
    fc1[1, 8:12] = True  # neuron 1 reads channel 2 only
    mask = Mask({"conv1": conv1, "fc1": fc1})
    assert twin_count(mask) == 1  # channels 0 and 1
    xs = mask.to_numpy()
    xs["fc1"][0, 1] = False  # channel 0's block into neuron 0 changes: no twins left
    assert twin_count(Mask(xs)) == 0
    xs = mask.to_numpy()
    xs["conv1"][1, 0, 0, 0] = True  # channel 1's kernel changes: no twins left
    assert twin_count(Mask(xs)) == 0


def test_conv_keys_differ_from_mlp_keys_and_between_architectures() -> None:
    rng = np.random.default_rng(0)
    a = random_conv_mask(rng, "conv:4x4x2:3:4", 1.0)
    b = random_conv_mask(rng, "conv:4x4x1:3:4", 1.0)
    assert len({class_key(a), class_key(b)}) == 2
    mlp = make_mask(np.ones((3, 2)), np.ones((4, 3)))
    assert class_key(mlp) not in {class_key(a), class_key(b)}


def test_conv_masks_that_do_not_join_are_rejected() -> None:
    m = Mask({"conv1": np.ones((3, 1, 3, 3), dtype=bool), "fc1": np.ones((2, 10), dtype=bool)})
    with pytest.raises(
        MaskError, match=r"^mask layers 'conv1' \[3, 1, 3, 3\] and 'fc1' \[2, 10\] do not join"
    ):
        class_key(m)


def conv_cycles_mask(k: int, parts: int) -> Mask:
    """1 input channel → k channels → k channels → 1 class, the two conv layers joined by ``parts`` disjoint
    cycles; on every cycle a channel's kernel from its own partner is the centre tap and from the next
    one the top row. Labelled colour refinement cannot tell one cycle from two."""
    centre, top = np.zeros((3, 3), dtype=bool), np.zeros((3, 3), dtype=bool)
    centre[1, 1] = True
    top[0] = True
    conv2 = np.zeros((k, k, 3, 3), dtype=bool)
    size = k // parts
    for p in range(parts):
        for i in range(size):
            conv2[p * size + i, p * size + i] = centre
            conv2[p * size + (i + 1) % size, p * size + i] = top
    conv1 = np.zeros((k, 1, 3, 3), dtype=bool)
    conv1[:, 0] = centre
    return Mask({"conv1": conv1, "conv2": conv2, "fc1": np.ones((1, k * 16), dtype=bool)})


@pytest.mark.filterwarnings("ignore:The hashes produced for directed graphs changed")
@pytest.mark.parametrize("k", [6, 8])
def test_one_labelled_cycle_and_two_share_a_wl_hash_but_not_a_key(k: int) -> None:
    one, two = conv_cycles_mask(k, 1), conv_cycles_mask(k, 2)
    g1, g2 = mask_graph(one), mask_graph(two)
    wl = [nx.weisfeiler_lehman_graph_hash(g, node_attr="label", edge_attr="pattern") for g in (g1, g2)]
    assert wl[0] == wl[1]
    assert not vf2(one, two)
    assert class_key(one) != class_key(two)
    rng = np.random.default_rng(k)
    for _ in range(3):
        assert class_key(permute_units(one, rng)) == class_key(one)
        assert class_key(permute_units(two, rng)) == class_key(two)


def test_canon_report_and_archive_take_convnet_masks(tmp_path) -> None:
    rng = np.random.default_rng(8)
    m = random_conv_mask(rng, "conv:6x6x1:3-4-M:5-3", 0.3)
    a = str(m.save(tmp_path / "a.npz"))
    b = str(permute_units(m, rng).save(tmp_path / "b.npz"))
    report = canon_report([a, b]).splitlines()
    assert report[1] == "layers             conv1 [3, 1, 3, 3], conv2 [4, 3, 3, 3], fc1 [5, 36], fc2 [3, 5]"
    assert report[-1] == "isomorphic: yes"
    archive = ClassArchive()
    key, new = archive.add(m, payload={"accuracy": 0.4})
    assert new and archive.add(permute_units(m, rng)) == (key, False)
    old = [dict(r, key="canon-v0:stale", version="canon-v0") for r in archive.to_records()]
    back = ClassArchive.from_records(old)
    assert list(back) == [key] and back.representative(key) == m
