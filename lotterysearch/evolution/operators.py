"""Genetic operators on masks: crossover, mutation, repair, and DEAP's varAnd over a list of parents.

Masks are :class:`~lotterysearch.core.masks.Mask` objects of an MLP chain ``fc1 .. fcL`` (weights ``[out, in]``)
or of a convnet. Hidden neuron ``j`` of layer ``l`` is row ``j`` of ``fc_l`` (its incoming weights) together
with column ``j`` of ``fc_{l+1}`` (its outgoing weights); inputs and outputs are fixed. In a convnet the
neuron-level operators treat each conv channel as a hidden unit: its kernels in and out (and, for the last
convolution, its block of HW ``fc1`` columns) move, vanish or grow together (``alignment.unit_blocks``).

Operators are small pure functions in DEAP's style: they take masks and a ``numpy.random.Generator`` and
return new masks, never mutating or aliasing their inputs. All randomness comes from that generator (never
Python's ``random`` nor numpy's global RNG), so a search is reproducible and resumes from a stored generator
state.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lotterysearch import settings
from lotterysearch.core.alignment import align, alignment, check_units, permute_arrays, unit_blocks
from lotterysearch.core.masks import Mask, chain_arrays, check_same_shapes, mask_from_arrays
from lotterysearch.errors import ConfigError, MaskError
from lotterysearch.settings import STRENGTH_MUTATIONS, WEIGHTED_MUTATIONS, GAConfig


def _check_probability(value: float, what: str) -> float:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{what} must be a number in [0, 1], got {value!r}")
    return float(value)


def _how_many(rate: float, kept: int, room: int) -> int:
    """round(rate * kept) (half up), at least 1 when rate > 0, at most ``room``."""
    if rate == 0 or room == 0:
        return 0
    return min(room, max(1, math.floor(rate * kept + 0.5)))


# ---- crossover --------------------------------------------------------------------------------------


def layer_crossover(a: Mask, b: Mask, rng: np.random.Generator) -> tuple[Mask, Mask]:
    """Layerwise uniform crossover: each layer of child 1 comes whole from ``a`` or ``b`` (p = 1/2), child 2
    gets the other parent's layer. A layer's connectivity pattern is inherited intact."""
    check_same_shapes(a, b)
    from_b = rng.random(len(a)) < 0.5
    xs, ys = chain_arrays(a), chain_arrays(b)
    c1 = [y if swap else x for x, y, swap in zip(xs, ys, from_b, strict=True)]
    c2 = [x if swap else y for x, y, swap in zip(xs, ys, from_b, strict=True)]
    return mask_from_arrays(a.names, c1), mask_from_arrays(a.names, c2)


def neuron_crossover(a: Mask, b: Mask, rng: np.random.Generator, p: float = 0.5) -> tuple[Mask, Mask]:
    """Swap whole hidden neurons: each hidden neuron of child 1 is, with probability ``p``, taken from ``b``
    with its incoming row in ``fc_l`` and its outgoing column in ``fc_{l+1}``.

    A weight joins two neurons; it comes from ``b`` when either end is swapped:
    S_l = s_l ⊗ 1 ∨ 1 ⊗ s_{l-1}, with s = 0 on inputs and outputs. Child 1 = where(S, b, a) and child 2 =
    where(S, a, b), so the children are complementary. Use on aligned parents (see ``align``).
    """
    check_same_shapes(a, b)
    check_units(a)
    p = _check_probability(p, "neuron swap probability p")
    xs, ys = chain_arrays(a), chain_arrays(b)
    blocks = unit_blocks(xs)
    swapped = [np.zeros(blocks[0].shape[1], dtype=bool)]
    swapped += [rng.random(x.shape[0]) < p for x in xs[:-1]]
    swapped.append(np.zeros(xs[-1].shape[0], dtype=bool))
    c1, c2 = [], []
    for layer, (x, y, block) in enumerate(zip(xs, ys, blocks, strict=True)):
        take = swapped[layer + 1][:, None] | swapped[layer][None, :]  # per pair of units
        take = np.broadcast_to(take[:, :, None], block.shape).reshape(x.shape)
        c1.append(np.where(take, y, x))
        c2.append(np.where(take, x, y))
    return mask_from_arrays(a.names, c1), mask_from_arrays(a.names, c2)


# ---- mutation ---------------------------------------------------------------------------------------


def move_mutation(mask: Mask, rng: np.random.Generator, rate: float) -> Mask:
    """Density-preserving mutation: in each layer move round(rate · kept) live weights (at least 1 when
    ``rate`` > 0 and the layer has both live and dead positions) to dead positions. Every layer keeps its
    exact kept count, so the search explores topologies at fixed per-layer density."""
    rate = _check_probability(rate, "mutation rate")
    xs = chain_arrays(mask)
    for x in xs:
        flat = x.reshape(-1)  # a view: x is our own copy
        live, dead = np.flatnonzero(flat), np.flatnonzero(~flat)
        m = _how_many(rate, live.size, min(live.size, dead.size))
        if m:
            off = rng.choice(live, size=m, replace=False)
            on = rng.choice(dead, size=m, replace=False)
            flat[off] = False
            flat[on] = True
    return mask_from_arrays(mask.names, xs)


def _switch_positions(flat: np.ndarray, rng: np.random.Generator, rate: float, grow: bool) -> None:
    """Switch on (``grow``) or off round(rate · kept) random positions of ``flat`` in place."""
    live = np.flatnonzero(flat)
    candidates = np.flatnonzero(~flat) if grow else live
    m = _how_many(rate, live.size, candidates.size)
    if m:
        flat[rng.choice(candidates, size=m, replace=False)] = grow


def _switch(mask: Mask, rng: np.random.Generator, rate: float, grow: bool) -> Mask:
    rate = _check_probability(rate, "mutation rate")
    xs = chain_arrays(mask)
    for x in xs:
        _switch_positions(x.reshape(-1), rng, rate, grow)
    return mask_from_arrays(mask.names, xs)


def grow_mutation(mask: Mask, rng: np.random.Generator, rate: float) -> Mask:
    """Switch on round(rate · kept) dead positions per layer (at least 1 when possible): density rises."""
    return _switch(mask, rng, rate, grow=True)


def prune_mutation(mask: Mask, rng: np.random.Generator, rate: float) -> Mask:
    """Switch off round(rate · kept) live weights per layer (at least 1 when possible): density falls."""
    return _switch(mask, rng, rate, grow=False)


def grow_prune_mutation(mask: Mask, rng: np.random.Generator, rate: float) -> Mask:
    """With p = 1/2 ``grow_mutation``, else ``prune_mutation``: lets the GA move along the density axis."""
    grow = bool(rng.random() < 0.5)
    return _switch(mask, rng, rate, grow=grow)


def layer_density_mutation(mask: Mask, rng: np.random.Generator, rate: float) -> Mask:
    """Change the density of one layer only (drawn uniformly): with p = 1/2 grow, else prune,
    round(rate · kept) positions of it (at least 1 when possible). The other layers are returned intact, so
    the search can move the per-layer densities SynFlow chose one layer at a time."""
    rate = _check_probability(rate, "mutation rate")
    xs = chain_arrays(mask)
    flat = xs[int(rng.integers(len(xs)))].reshape(-1)
    _switch_positions(flat, rng, rate, grow=bool(rng.random() < 0.5))
    return mask_from_arrays(mask.names, xs)


def _live_neurons(blocks: list[np.ndarray], h: int) -> np.ndarray:
    """Hidden units of hidden layer ``h`` with an incoming and an outgoing live weight (``unit_blocks``)."""
    return blocks[h].any(axis=(1, 2)) & blocks[h + 1].any(axis=(0, 2))


def _draw_hidden_layer(
    mask: Mask, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray], int | None]:
    """Fresh arrays of ``mask``, their ``unit_blocks`` (views: writing to them writes the arrays) and one
    hidden layer drawn uniformly (None when there is none)."""
    check_units(mask)
    xs = chain_arrays(mask)
    if len(xs) < 2:
        return xs, [], None
    return xs, unit_blocks(xs), int(rng.integers(len(xs) - 1))


def neuron_prune_mutation(mask: Mask, rng: np.random.Generator, rate: float) -> Mask:
    """Remove whole hidden neurons from one hidden layer (drawn uniformly): round(rate · live neurons) of its
    live neurons (at least 1) lose their incoming row and outgoing column. One live neuron is always left,
    so the layer never collapses. Structured pruning: the subnetwork gets narrower, not just sparser."""
    rate = _check_probability(rate, "mutation rate")
    xs, blocks, h = _draw_hidden_layer(mask, rng)
    if h is None:
        return mask_from_arrays(mask.names, xs)
    live = np.flatnonzero(_live_neurons(blocks, h))
    m = _how_many(rate, live.size, max(live.size - 1, 0))  # a layer without live units stays as it is
    if m:
        gone = rng.choice(live, size=m, replace=False)
        blocks[h][gone] = False
        blocks[h + 1][:, gone] = False
    return mask_from_arrays(mask.names, xs)


def neuron_grow_mutation(mask: Mask, rng: np.random.Generator, rate: float) -> Mask:
    """Add hidden neurons to one hidden layer (drawn uniformly): round(rate · live neurons) dead neurons (at
    least 1 when one is dead) get random incoming and outgoing weights, as many as a live neuron of that
    layer has on average (at least 1 each way), so the layer widens at its current per-neuron density."""
    rate = _check_probability(rate, "mutation rate")
    xs, blocks, h = _draw_hidden_layer(mask, rng)
    if h is None:
        return mask_from_arrays(mask.names, xs)
    alive = _live_neurons(blocks, h)
    live, dead = np.flatnonzero(alive), np.flatnonzero(~alive)
    m = _how_many(rate, live.size, dead.size)
    if not m:
        return mask_from_arrays(mask.names, xs)
    into, out_of = blocks[h], blocks[h + 1]
    n_in, n_out = into[0].size, out_of.shape[0] * out_of.shape[2]  # positions (kernel entries) each way
    fan_in = max(1, round(into[live].sum() / live.size)) if live.size else 1
    fan_out = max(1, round(out_of[:, live].sum() / live.size)) if live.size else 1
    for j in rng.choice(dead, size=m, replace=False):
        into[j].reshape(-1)[rng.choice(n_in, size=min(fan_in, n_in), replace=False)] = True
        unit, entry = np.divmod(rng.choice(n_out, size=min(fan_out, n_out), replace=False), out_of.shape[2])
        out_of[unit, j, entry] = True
    return mask_from_arrays(mask.names, xs)


def _to_count(flat: np.ndarray, target: int, rng: np.random.Generator) -> None:
    """Grow or prune random positions of ``flat`` in place until it keeps exactly ``target``."""
    live = np.flatnonzero(flat)
    if target < live.size:
        flat[rng.choice(live, size=live.size - target, replace=False)] = False
    elif target > live.size:
        dead = np.flatnonzero(~flat)
        flat[rng.choice(dead, size=target - live.size, replace=False)] = True


def layer_density_crossover(a: Mask, b: Mask, rng: np.random.Generator) -> tuple[Mask, Mask]:
    """Recombine per-layer densities, keep topologies: child 1 is ``a``'s connectivity with, in each layer
    independently (p = 1/2), ``b``'s kept count for that layer, reached by growing or pruning random
    positions of ``a``'s layer; child 2 is the same from ``b`` with the complementary choice. Per-layer
    density is what SynFlow gets right (Tanaka et al. 2020 and the random-mask controls of the report), so
    the GA can mix one parent's density profile with the other's wiring."""
    check_same_shapes(a, b)
    from_b = rng.random(len(a)) < 0.5
    xs, ys = chain_arrays(a), chain_arrays(b)
    counts_a, counts_b = [int(x.sum()) for x in xs], [int(y.sum()) for y in ys]
    for x, y, ca, cb, swap in zip(xs, ys, counts_a, counts_b, from_b, strict=True):
        _to_count(x.reshape(-1), cb if swap else ca, rng)
        _to_count(y.reshape(-1), ca if swap else cb, rng)
    return mask_from_arrays(a.names, xs), mask_from_arrays(a.names, ys)


def _weakest(flat: np.ndarray, w: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` live positions of ``flat`` with the smallest |w|; ties go to the lower flat index."""
    live = np.flatnonzero(flat)
    return live[np.argsort(w.reshape(-1)[live], kind="stable")[:m]]


def _magnitudes(mask: Mask, weights: Mapping[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, a fresh copy of the mask's bits and |w| of the trained weights, checked in shape."""
    out = []
    for name, x in zip(mask.names, chain_arrays(mask), strict=True):
        w = np.abs(np.asarray(weights[name], dtype=np.float64))
        if w.shape != x.shape:
            raise MaskError(f"trained weights of '{name}' have shape {w.shape}, the mask {x.shape}")
        out.append((x, w))
    return out


def magnitude_mutation(
    mask: Mask, rng: np.random.Generator, rate: float, weights: Mapping[str, np.ndarray]
) -> Mask:
    """Lamarckian mutation: in each layer switch off the round(rate · kept) live weights with the smallest
    trained magnitude |w| and switch on as many dead positions drawn at random. Density is kept per layer.

    Without the regrowth this is one round of IMP (``magnitude_prune_mutation``); with it the search keeps
    exploring at a fixed density. ``weights`` are the trained weights of ``mask``'s network
    (``trained_weights_for`` maps them from an isomorph); ties in |w| go to the lower flat index, so the
    result is a function of the inputs and the generator.
    """
    rate = _check_probability(rate, "mutation rate")
    layers = _magnitudes(mask, weights)
    for x, w in layers:
        flat = x.reshape(-1)  # a view: writing to it writes x
        live, dead = int(flat.sum()), np.flatnonzero(~flat)
        m = _how_many(rate, live, min(live, dead.size))
        if m:
            weakest = _weakest(flat, w, m)
            flat[rng.choice(dead, size=m, replace=False)] = True
            flat[weakest] = False
    return mask_from_arrays(mask.names, [x for x, _ in layers])


def magnitude_prune_mutation(
    mask: Mask, rng: np.random.Generator, rate: float, weights: Mapping[str, np.ndarray]
) -> Mask:
    """One round of IMP as a mutation (Frankle & Carbin 2019, Alg. 1, step 3): in each layer switch off the
    round(p · kept) live weights with the smallest trained magnitude |w|, at least one, never the last, with
    p = ``rate`` and p = rate/2 for the output layer (IMP's rates, ``pruning.imp``). Density falls by about
    ``rate`` and nothing regrows: the search's density objective decides whether the accuracy lost was worth
    it. ``rng`` is not drawn from; ties go to the lower flat index."""
    rate = _check_probability(rate, "mutation rate")
    layers = _magnitudes(mask, weights)
    for k, (x, w) in enumerate(layers):
        flat = x.reshape(-1)
        p = rate / 2 if k == len(layers) - 1 else rate
        kept = int(flat.sum())
        m = _how_many(p, kept, kept - 1)
        if m > 0:
            flat[_weakest(flat, w, m)] = False
    return mask_from_arrays(mask.names, [x for x, _ in layers])


# ---- strength mutations: a child's own prune strength, regrowth by gradient -----------------------------


def adapt_strength(
    gene: Sequence[float], rng: np.random.Generator, tau: float, low: float, high: float
) -> tuple[float, ...]:
    """A child's strength gene from its parent's: σ'_i = σ_i · exp(τ · N_i(0, 1)), clipped to [low, high].

    The log-normal self-adaptation of an evolution strategy's step size (Schwefel 1977; Beyer & Schwefel 2002,
    Sect. 4): log σ' = log σ + τ·N(0, 1), so the parent's σ is the median of σ' and no direction is favoured
    on the log scale; selection keeps the strengths whose children survive. ``tau`` 0 means 1/√n for a gene
    of n strengths. One draw per entry, all from ``rng``."""
    sigma = np.asarray(gene, dtype=np.float64)
    if sigma.ndim != 1 or sigma.size == 0 or not np.all(sigma > 0):
        raise ConfigError(f"a strength gene must be positive numbers, got {np.atleast_1d(sigma).tolist()}")
    tau = tau or 1.0 / math.sqrt(sigma.size)
    out = sigma * np.exp(tau * rng.standard_normal(sigma.size))
    return tuple(float(v) for v in np.clip(out, low, high))


def draw_strength(rng: np.random.Generator, n: int, low: float, high: float) -> tuple[float, ...]:
    """``n`` strengths drawn uniformly on [low, high] (the drawn_prune mutation: no inheritance)."""
    return tuple(float(v) for v in rng.uniform(low, high, size=n))


def layer_shares(gene: Sequence[float], layers: int) -> list[float]:
    """The share of each layer's kept weights a strength gene prunes: one strength for every layer, or one per
    layer; the output layer at half of its strength (IMP's rates, ``pruning.imp``)."""
    gene = tuple(float(g) for g in gene)
    if len(gene) not in (1, layers):
        raise ConfigError(f"a strength gene has 1 or {layers} entries (one per layer), got {len(gene)}")
    shares = list(gene) * layers if len(gene) == 1 else list(gene)
    shares[-1] /= 2
    return shares


def magnitude_prune_at(mask: Mask, weights: Mapping[str, np.ndarray], shares: Sequence[float]) -> Mask:
    """In layer l switch off the round(shares[l] · kept_l) live weights with the smallest trained |w| (at
    least one when the share is > 0, never the last): ``magnitude_prune_mutation`` with a share per layer.
    Ties go to the lower flat index; nothing is drawn."""
    layers = _magnitudes(mask, weights)
    if len(shares) != len(layers):
        raise ConfigError(f"{len(shares)} prune shares for a mask of {len(layers)} layers")
    for (x, w), p in zip(layers, shares, strict=True):
        flat = x.reshape(-1)
        kept = int(flat.sum())
        m = _how_many(_check_probability(p, "prune share"), kept, kept - 1)
        if m > 0:
            flat[_weakest(flat, w, m)] = False
    return mask_from_arrays(mask.names, [x for x, _ in layers])


def land_on_target(
    mask: Mask, weights: Mapping[str, np.ndarray], shares: Sequence[float], targets: Sequence[float]
) -> Mask:
    """``magnitude_prune_at(mask, weights, shares)``, unless that passes below a target density that ``mask``
    is above: then the shares are scaled by one factor c in (0, 1], the largest whose child keeps at most
    target · |θ| weights, so the child lands on the highest target it would have passed.

    A user asks for tickets at given densities (IMP's rounds reach them by construction); a strength drawn
    for one child would otherwise step over them, and the search's mask at a target would be sparser than
    the target. The kept count only falls as c grows, so c is found by bisection; at c → 0 each layer still
    drops one weight, so a parent within a few weights of a target lands a few weights below it."""
    pruned = magnitude_prune_at(mask, weights, shares)
    total, before, after = mask.total(), mask.density(), pruned.density()
    passed = [t for t in targets if after < t < before]
    if not passed:
        return pruned
    limit = math.floor(max(passed) * total)
    lo, hi, best = 0.0, 1.0, pruned  # hi: a factor whose child keeps <= limit
    for _ in range(40):
        mid = (lo + hi) / 2
        child = magnitude_prune_at(mask, weights, [mid * p for p in shares])
        if child.kept() <= limit:
            hi, best = mid, child
        else:
            lo = mid
        if best.kept() == limit:
            break
    return best


def gradient_regrow(mask: Mask, gradients: Mapping[str, np.ndarray], counts: Sequence[int]) -> Mask:
    """RigL's grow step (Evci et al. 2020, Alg. 1: I_grow = ArgTopK over inactive positions of |∇L|): in
    layer l switch on the ``counts[l]`` dead positions of ``mask`` with the largest |gradient|. A NaN
    gradient marks a position that is no candidate (a weight the parent kept: its gradient is not stored);
    ties go to the lower flat index, so the result is a function of the inputs. In ticket mode a grown weight
    starts, like every weight of the child, at its value in θ₀ (the child is trained from θ₀), not at 0 as
    in RigL's dense-to-sparse training."""
    xs = chain_arrays(mask)
    if len(counts) != len(xs):
        raise ConfigError(f"{len(counts)} regrowth counts for a mask of {len(xs)} layers")
    for name, x, k in zip(mask.names, xs, counts, strict=True):
        g = np.abs(np.asarray(gradients[name], dtype=np.float64))
        if g.shape != x.shape:
            raise MaskError(f"gradients of '{name}' have shape {g.shape}, the mask {x.shape}")
        flat, score = x.reshape(-1), g.reshape(-1)
        candidates = np.flatnonzero(~flat & ~np.isnan(score))
        if k > 0 and candidates.size:
            order = np.argsort(-score[candidates], kind="stable")[: int(k)]
            flat[candidates[order]] = True
    return mask_from_arrays(mask.names, xs)


def strength_prune_mutation(
    mask: Mask,
    gene: Sequence[float],
    weights: Mapping[str, np.ndarray],
    gradients: Mapping[str, np.ndarray] | None = None,
    regrow: float = 0.0,
    targets: Sequence[float] = (),
) -> Mask:
    """Drop by magnitude at the child's own strengths (``layer_shares`` of ``gene``), landing on a target
    density it would pass (``land_on_target``), then, with ``regrow`` > 0, grow round(regrow · dropped)
    positions per layer by the parent's gradient (``gradient_regrow``): RigL's drop-and-grow with a drop
    share that varies from child to child. The adaptive_prune and drawn_prune mutations differ only in where
    ``gene`` comes from (``child_strengths``)."""
    if targets and regrow > 0:
        raise ConfigError(
            "density targets and regrowth exclude each other: a regrown child leaves its target"
        )
    pruned = land_on_target(mask, weights, layer_shares(gene, len(mask)), targets)
    regrow = _check_probability(regrow, "regrow")
    if regrow == 0:
        return pruned
    if gradients is None:
        raise ConfigError("regrowth by gradient needs the parent's gradients (fitness.keep_gradients)")
    dropped = [
        int(a.sum()) - int(b.sum()) for a, b in zip(chain_arrays(mask), chain_arrays(pruned), strict=True)
    ]
    return gradient_regrow(pruned, gradients, [math.floor(regrow * d + 0.5) for d in dropped])


def trained_weights_for(
    mask: Mask, trained: Mask, weights: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The trained weights of ``trained``'s network relabelled onto ``mask``'s hidden neurons.

    A class is trained once, on its representative; a parent isomorphic to it numbers its hidden neurons
    otherwise, so its weight at position (j, i) is the representative's at (π(j), π(i)). The permutations
    come from ``alignment`` (exact when the two are permuted copies); positions live in ``mask`` but not in
    ``trained`` get weight 0, so a magnitude mutation removes them first.
    """
    perms = alignment(mask, trained)
    arrays = [
        np.asarray(weights[n], dtype=np.float64) * chain_arrays(trained)[k] for k, n in enumerate(mask.names)
    ]
    moved = permute_arrays(arrays, perms)
    return {n: w * x for n, w, x in zip(mask.names, moved, chain_arrays(mask), strict=True)}


def repair(mask: Mask, rng: np.random.Generator) -> Mask:
    """Keep every layer alive: a collapsed mask (Tanaka et al. 2020) computes a constant, so add live
    weights along one random input→output path (one weight per layer, chained units; in a convnet one
    random entry of each kernel or fc block on the path). A mask that is not collapsed comes back as an
    equal copy."""
    if not mask.is_collapsed():
        return mask.copy()
    check_units(mask)
    xs = chain_arrays(mask)
    blocks = unit_blocks(xs)  # views: writing to them writes xs
    widths = [blocks[0].shape[1]] + [b.shape[0] for b in blocks]
    path = [int(rng.integers(w)) for w in widths]
    for layer, block in enumerate(blocks):
        entry = int(rng.integers(block.shape[2])) if block.shape[2] > 1 else 0
        block[path[layer + 1], path[layer], entry] = True
    return mask_from_arrays(mask.names, xs)


# ---- variation (DEAP's varAnd on masks) --------------------------------------------------------------


CROSSOVERS: dict[str, Callable[[Mask, Mask, np.random.Generator, VariationConfig], tuple[Mask, Mask]]] = {
    "layer_crossover": lambda a, b, rng, cfg: layer_crossover(a, b, rng),
    "layer_density_crossover": lambda a, b, rng, cfg: layer_density_crossover(a, b, rng),
    "neuron_crossover": lambda a, b, rng, cfg: neuron_crossover(a, b, rng, p=cfg.neuron_swap_prob),
}
MUTATIONS: dict[str, Callable[..., Mask]] = {
    "move_mutation": move_mutation,
    "grow_prune_mutation": grow_prune_mutation,
    "grow_mutation": grow_mutation,
    "prune_mutation": prune_mutation,
    "layer_density_mutation": layer_density_mutation,
    "neuron_grow_mutation": neuron_grow_mutation,
    "neuron_prune_mutation": neuron_prune_mutation,
    "magnitude_mutation": magnitude_mutation,
    "magnitude_prune_mutation": magnitude_prune_mutation,
    "adaptive_prune_mutation": strength_prune_mutation,  # the gene: ``adapt_strength`` of the parent's
    "drawn_prune_mutation": strength_prune_mutation,  # the gene: ``draw_strength``
}
assert tuple(CROSSOVERS) == settings.CROSSOVERS, "settings.CROSSOVERS names the crossovers"
assert tuple(MUTATIONS) == settings.MUTATIONS, "settings.MUTATIONS names the mutations"


def _operators(names: Sequence[str], known: dict, suffix: str, field: str) -> tuple[str, ...]:
    """Full operator names; a short name ('neuron') stands for its full one ('neuron_crossover')."""
    names = (names,) if isinstance(names, str) else tuple(names)
    full = tuple(n if n in known or f"{n}_{suffix}" not in known else f"{n}_{suffix}" for n in names)
    if not full:
        raise ConfigError(f"{field} must name at least one operator (known: {', '.join(known)})")
    for name in full:
        if name not in known:
            raise ConfigError(f"unknown operator '{name}' in {field} (known: {', '.join(known)})")
    return full


def _weights(weights: Sequence[float] | None, names: tuple[str, ...], field: str) -> tuple[float, ...]:
    if weights is None:
        return (1.0,) * len(names)
    weights = tuple(weights)
    if len(weights) != len(names):
        raise ConfigError(f"{field} has {len(weights)} entries for {len(names)} operators")
    if any(not (isinstance(w, int | float) and w >= 0) for w in weights) or not sum(weights) > 0:
        raise ConfigError(f"{field} must be non-negative numbers with a positive sum, got {list(weights)}")
    return tuple(float(w) for w in weights)


@dataclass(frozen=True)
class VariationConfig:
    """How offspring are made: DEAP's varAnd rates, the operators and their relative weights (None: equal)."""

    cx_rate: float = 0.7  # probability that a pair of parents is crossed
    mut_rate: float = 0.3  # probability that a child is mutated
    mutation_strength: float = 0.05  # share of a layer's kept weights one mutation moves, grows or prunes
    crossovers: tuple[str, ...] = ("layer_crossover", "neuron_crossover")
    crossover_weights: tuple[float, ...] | None = None
    mutations: tuple[str, ...] = ("move_mutation", "grow_prune_mutation")
    mutation_weights: tuple[float, ...] | None = None
    neuron_swap_prob: float = 0.5  # per-neuron swap probability of neuron_crossover
    align: bool = True  # align the second parent to the first before crossover
    # the strength mutations' settings (``GAConfig``'s fields of the same names; ``child_strengths``)
    strength_min: float = 0.05
    strength_max: float = 0.9
    strength_tau: float = 0.0
    strength_per_layer: bool = False
    regrow: float = 0.0
    density_targets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("cx_rate", "mut_rate", "mutation_strength", "neuron_swap_prob", "regrow"):
            _check_probability(getattr(self, name), name)
        if not 0 < self.strength_min <= self.strength_max < 1:
            raise ConfigError(
                f"strengths need 0 < strength_min <= strength_max < 1, got {self.strength_min!r} and"
                f" {self.strength_max!r}"
            )
        if not (isinstance(self.strength_tau, int | float) and self.strength_tau >= 0):
            raise ConfigError(f"strength_tau must be a number >= 0, got {self.strength_tau!r}")
        if not isinstance(self.align, bool):
            raise ConfigError(f"align must be true or false, got {self.align!r}")
        crossovers = _operators(self.crossovers, CROSSOVERS, "crossover", "crossovers")
        mutations = _operators(self.mutations, MUTATIONS, "mutation", "mutations")
        object.__setattr__(self, "crossovers", crossovers)
        object.__setattr__(self, "mutations", mutations)
        object.__setattr__(
            self, "crossover_weights", _weights(self.crossover_weights, crossovers, "crossover_weights")
        )
        object.__setattr__(
            self, "mutation_weights", _weights(self.mutation_weights, mutations, "mutation_weights")
        )

    @classmethod
    def of(cls, ga: GAConfig) -> VariationConfig:
        """The variation a search's ``[ga]`` section describes: every field of this class that ``GAConfig``
        has, by name (the rest at their defaults), so a new setting is added in one place."""
        names = {f.name for f in dataclasses.fields(GAConfig)}
        same = {f.name: getattr(ga, f.name) for f in dataclasses.fields(cls) if f.name in names}
        return cls(cx_rate=ga.crossover_rate, mut_rate=ga.mutation_rate, **same)


Gene = tuple[float, ...]  # a strength gene: one strength for the network, or one per layer


def child_strengths(
    name: str, parent: Gene | None, layers: int, rng: np.random.Generator, cfg: VariationConfig
) -> Gene:
    """The strength gene of a child mutated by ``name``: adaptive_prune adapts its parent's gene (seeds and
    children of other operators hold ``cfg.mutation_strength``), drawn_prune draws a fresh one."""
    n = layers if cfg.strength_per_layer else 1
    if name == "drawn_prune_mutation":
        return draw_strength(rng, n, cfg.strength_min, cfg.strength_max)
    start = parent if parent is not None and len(parent) == n else (cfg.mutation_strength,) * n
    return adapt_strength(start, rng, cfg.strength_tau, cfg.strength_min, cfg.strength_max)


@dataclass(frozen=True)
class Child:
    """One offspring: its mask, the indices of its parents in the list given to ``vary``, the operators
    that made it, joined by '+' (e.g. 'neuron_crossover+move_mutation'; 'clone' when none applied), and its
    strength gene (made by a strength mutation, else its first parent's; None when neither has one)."""

    mask: Mask
    parents: tuple[int, ...]
    operator: str
    strength: Gene | None = None


def _pick(names: tuple[str, ...], weights: tuple[float, ...], rng: np.random.Generator) -> str:
    p = np.asarray(weights, dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


Trained = Callable[[int, Mask], Mapping[str, np.ndarray]]  # (parent index, child) -> weights on the child


def vary(
    parents: Sequence[Mask],
    rng: np.random.Generator,
    cfg: VariationConfig | None = None,
    trained: Trained | None = None,
    genes: Sequence[Gene | None] | None = None,
    gradients: Trained | None = None,
) -> list[Child]:
    """Offspring as DEAP's ``varAnd`` makes them: consecutive pairs (0, 1), (2, 3), ... are crossed with
    probability ``cx_rate`` by an operator drawn from ``cfg.crossovers`` (the second parent aligned to the
    first unless ``align=False``); then each child is mutated with probability ``mut_rate``; then repaired.

    One child per parent, in order. ``parents`` is usually ``select_parents``'s pick; ``Child.parents``
    indexes this list. ``magnitude_mutation`` ranks child i's live weights by ``trained(i, child)``: parent
    i's trained weights on the child's neurons (child i of a crossed pair is mostly parent i). The strength
    mutations read parent i's strength gene (``genes[i]``) and, to regrow, ``gradients(i, child)``: parent
    i's gradient at the positions it pruned (NaN where it kept a weight).
    """
    cfg = cfg or VariationConfig()
    masks = list(parents)
    origins: list[tuple[int, ...]] = [(i,) for i in range(len(masks))]
    applied: list[list[str]] = [[] for _ in masks]
    for i in range(1, len(masks), 2):
        if rng.random() < cfg.cx_rate:
            name = _pick(cfg.crossovers, cfg.crossover_weights, rng)
            a, b = masks[i - 1], masks[i]
            if cfg.align:
                b = align(a, b)
            masks[i - 1], masks[i] = CROSSOVERS[name](a, b, rng, cfg)
            origins[i - 1] = origins[i] = (i - 1, i)
            applied[i - 1].append(name)
            applied[i].append(name)
    children = []
    for i, mask in enumerate(masks):
        gene = genes[i] if genes is not None else None
        if rng.random() < cfg.mut_rate:
            name = _pick(cfg.mutations, cfg.mutation_weights, rng)
            if name in WEIGHTED_MUTATIONS and trained is None:
                raise ConfigError(f"{name} needs the parents' trained weights")
            if name in STRENGTH_MUTATIONS:
                assert trained is not None
                gene = child_strengths(name, gene, len(mask), rng, cfg)
                grads = gradients(i, mask) if gradients is not None and cfg.regrow > 0 else None
                mask = MUTATIONS[name](mask, gene, trained(i, mask), grads, cfg.regrow, cfg.density_targets)
            elif name in WEIGHTED_MUTATIONS:
                assert trained is not None
                mask = MUTATIONS[name](mask, rng, cfg.mutation_strength, trained(i, mask))
            else:
                mask = MUTATIONS[name](mask, rng, cfg.mutation_strength)
            applied[i].append(name)
        repaired = repair(mask, rng)  # always a fresh copy: no child aliases a parent
        if repaired != mask:
            applied[i].append("repair")
        children.append(Child(repaired, origins[i], "+".join(applied[i]) or "clone", gene))
    return children
