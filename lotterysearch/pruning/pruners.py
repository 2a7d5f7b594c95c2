"""Pruning: scorers with one interface, exact thresholds, iterative schedules, and IMP with rewinding.

A *scorer* maps ``(model, mask, data, generator)`` to one float64 score per prunable weight, computed on the
masked model; ``SCORERS`` registers them by name (OpenLTH style: a new pruner is one function and one dict
entry). ``prune`` keeps the highest-scoring weights, globally or per layer, on the exponential schedule of
Tanaka et al. (2020): at step k = 1..n it keeps s_k = ρ^(-k/n) of the weights, so the last step keeps
exactly round(|θ|/ρ) (Eq. 4 of the notes: ρ = |θ| / |θ_pruned|). Ties at the threshold go to the weight
with the lower flat index (layers in forward order, rows then columns), so the kept count is exact where the
reference code's ``score <= threshold`` over-prunes. Pruned weights score -inf and stay pruned.

``imp`` is iterative magnitude pruning with rewinding (Frankle & Carbin 2019): train, prune a fraction of the
remaining weights by magnitude, rewind, repeat; it hands back every round. Its schedule (``imp_plan``) and its
round (``imp_round``) are also those of the durable IMP run (``runs.imp``). ``collapse_sweep`` prunes at each
ρ of a grid and says where layers collapse (its ``critical``: ρ_cr). No function here changes the
model it is given, nor the global torch RNG (randomness comes from a ``torch.Generator`` seeded by ``seed``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lotterysearch import settings
from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model, input_width, prunable_layers, weight_names
from lotterysearch.errors import PruningError
from lotterysearch.pruning import continuous
from lotterysearch.settings import PRUNERS, ROUNDINGS, SCOPES, TrainingConfig
from lotterysearch.training.trainer import TrainResult, train

Scores = dict[str, torch.Tensor]
Scorer = Callable[[nn.Module, Mask, Dataset | None, torch.Generator], Scores]
BoundScorer = Callable[[Mask], Scores]

SNIP_SAMPLES, SNIP_BATCH = 1024, 256


# ---- scorers ------------------------------------------------------------------------------------------
def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class SynFlow:
    """Iterative Synaptic Flow (Tanaka et al. 2020, Algorithm 1), on a copy of the parameters.

    Every parameter is replaced by |θ| in ``dtype`` (float64: deep products overflow or vanish in float32),
    the current mask is applied, an all-ones input gives R = 1ᵀ(∏|θ^(l)|)1 (Eq. 6; plus bias terms when
    the model has biases), and the score is S = ∂R/∂θ ⊙ θ (Eq. 7), nonnegative. The model is only read.
    Convnets take the same path: the input is all ones of the model's input shape (flat, viewed by the
    model), and with |θ| every layer, max-pooling included, is positively homogeneous, so the per-layer
    and per-channel conservation of Tanaka et al. holds there too.
    """

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        self.dtype = dtype

    def __call__(
        self,
        model: nn.Module,
        mask: Mask,
        data: Dataset | None = None,
        generator: torch.Generator | None = None,
    ) -> Scores:
        return self.bind(model, data, generator)(mask)

    def bind(
        self, model: nn.Module, data: Dataset | None = None, generator: torch.Generator | None = None
    ) -> BoundScorer:
        """Linearize once, return mask → scores; iterative pruning calls the result n times.

        The linearized network is a deep copy with every parameter |θ| in ``dtype``; each prunable
        weight becomes a plain tensor attribute |W| ⊙ M, set anew at each call (cheaper per call than
        ``functional_call``, which re-walks the module tree).
        """
        # eval: batch norm (ResNet-20) applies its running statistics, not those of the one all-ones sample
        net = copy.deepcopy(model).to(self.dtype).requires_grad_(False).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        layers = prunable_layers(net)
        leaves = {}
        for name, layer in layers.items():
            leaves[name] = layer.weight.detach().requires_grad_()
            del layer.weight  # now a plain attribute, replaced by |W| ⊙ M at each call
        device = _device(model)
        ones = torch.ones(1, input_width(model), dtype=self.dtype, device=device)

        def scores(mask: Mask) -> Scores:
            for name, layer in layers.items():
                layer.weight = leaves[name] * mask[name].to(device)
            r = net(ones).sum()
            grads = torch.autograd.grad(r, list(leaves.values()))
            return {
                name: (g * w.detach()).to(torch.float64)
                for (name, w), g in zip(leaves.items(), grads, strict=True)
            }

        return scores


synflow_scores = SynFlow(torch.float64)


def snip_scores(model: nn.Module, mask: Mask, data: Dataset | None, generator: torch.Generator) -> Scores:
    """SNIP (Lee et al. 2019): |∂L/∂θ ⊙ θ| of the masked model, cross-entropy summed over minibatches.

    Uses ``SNIP_SAMPLES`` training examples drawn with ``generator``, in minibatches of ``SNIP_BATCH``.
    """
    if data is None:
        raise PruningError("pruner 'snip' needs training data: pass data=load_dataset(...)")
    device = _device(model)
    names = weight_names(model)
    params = {n: p.detach() for n, p in model.named_parameters()}
    leaves = {layer: params[p].clone().requires_grad_() for layer, p in names.items()}
    n = len(data.y_train)
    idx = torch.randperm(n, generator=generator)[: min(SNIP_SAMPLES, n)]
    total = {layer: torch.zeros_like(w) for layer, w in leaves.items()}
    for batch in idx.split(SNIP_BATCH):
        call = dict(params)
        for layer, p in names.items():
            call[p] = leaves[layer] * mask[layer].to(device)
        logits = functional_call(model, call, (data.x_train[batch].to(device),))
        loss = F.cross_entropy(logits, data.y_train[batch].to(device), reduction="sum") / len(idx)
        for layer, g in zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True):
            total[layer] += g
    return {layer: (total[layer] * w.detach()).abs().to(torch.float64) for layer, w in leaves.items()}


def magnitude_scores(
    model: nn.Module, mask: Mask, data: Dataset | None, generator: torch.Generator
) -> Scores:
    """|θ ⊙ M| (Han et al. 2015)."""
    return {
        n: (layer.weight.detach().to(torch.float64).abs() * mask[n].to(layer.weight.device))
        for n, layer in prunable_layers(model).items()
    }


def random_scores(model: nn.Module, mask: Mask, data: Dataset | None, generator: torch.Generator) -> Scores:
    """Uniform [0, 1) scores from ``generator`` (pruned weights 0): random pruning."""
    out = {}
    for n, layer in prunable_layers(model).items():
        u = torch.rand(layer.weight.shape, generator=generator, dtype=torch.float64)
        out[n] = (u * mask[n]).to(layer.weight.device)
    return out


SCORERS: dict[str, Scorer] = {
    "synflow": synflow_scores,
    "snip": snip_scores,
    "magnitude": magnitude_scores,
    "random": random_scores,
}
assert tuple(SCORERS) == settings.SCORERS, "settings.SCORERS names the scorers"
# Iterations when ``prune(iterations=None)``: SynFlow is iterative by design, the others are one-shot.
DEFAULT_ITERATIONS: dict[str, int] = {"synflow": 100}


# ---- counts and thresholds (pure) ---------------------------------------------------------------------
def _check_choice(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise PruningError(f"unknown {what} '{value}' (known: {', '.join(allowed)})")


def _check_compression(compression: float) -> None:
    if not compression >= 1:  # also rejects NaN
        raise PruningError(f"compression must be >= 1 (ρ = |θ| / |θ_pruned|), got {compression:g}")


def kept_schedule(total: int, compression: float, iterations: int = 1, rounding: str = "round") -> list[int]:
    """Weights kept after each step k = 1..n of the exponential schedule s_k = ρ^(-k/n).

    ``round`` keeps round(N·s_k), and exactly round(N/ρ) at the last step; ``reference`` keeps
    N − int((1 − s_k)·N) with s_k = (1/ρ)^(k/n), as the authors' code does; the two differ by one weight at some steps, which moves SynFlow's mask.
    """
    _check_choice(rounding, ROUNDINGS, "rounding rule")
    _check_compression(compression)
    if iterations < 1:
        raise PruningError(f"iterations must be >= 1, got {iterations}")
    n = iterations
    if rounding == "round":
        counts = [round(total * compression ** (-k / n)) for k in range(1, n)] + [round(total / compression)]
    else:
        counts = [total - int((1.0 - (1.0 / compression) ** (k / n)) * total) for k in range(1, n + 1)]
    return counts


def kept_count(total: int, compression: float, rounding: str = "round") -> int:
    """round(N/ρ) (or the reference rule): the one-shot kept count."""
    return kept_schedule(total, compression, 1, rounding)[0]


def _kth_largest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest score (numpy's introselect on CPU is ~10x faster than torch.kthvalue there)."""
    n = scores.numel()
    if scores.device.type == "cpu":
        return torch.as_tensor(np.partition(scores.numpy(), n - k)[n - k])
    return torch.kthvalue(scores, n - k + 1).values


def keep_highest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool vector keeping exactly the ``k`` highest of the 1-D ``scores``; ties go to the lower index.

    Equivalent to a stable descending sort taking the first k, in linear time.
    """
    n = scores.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    if math.isnan(float(scores.sum())) and bool(scores.isnan().any()):  # one cheap pass when clean
        raise PruningError("pruning scores contain NaN (an overflow? SynFlow should run in float64)")
    threshold = _kth_largest(scores, k).to(scores.device)
    at_least = scores >= threshold
    if int(at_least.sum()) == k:  # no tie across the threshold: the usual case
        return at_least
    keep = scores > threshold
    tied = at_least & ~keep
    return keep | (tied & (torch.cumsum(tied, 0) <= k - int(keep.sum())))


# ---- the pruning loop ---------------------------------------------------------------------------------
def _layer_sizes(model: nn.Module) -> dict[str, torch.Size]:
    return {n: layer.weight.shape for n, layer in prunable_layers(model).items()}


def _target_counts(
    sizes: Mapping[str, torch.Size], compression: float, iterations: int, scope: str, rounding: str
) -> list[list[int]]:
    """Kept counts per step: one global count, or one per layer; checks nothing ends empty."""
    if scope == "global":
        total = sum(math.prod(s) for s in sizes.values())
        counts = kept_schedule(total, compression, iterations, rounding)
        if counts[-1] < 1:
            raise PruningError(
                f"compression {compression:g} would keep no weight of the {total} "
                f"(global scope allows at most ρ = {total})"
            )
        return [[c] for c in counts]
    per_layer = []
    for name, shape in sizes.items():
        total = math.prod(shape)
        counts = kept_schedule(total, compression, iterations, rounding)
        if counts[-1] < 1:
            raise PruningError(
                f"compression {compression:g} would keep no weight of layer '{name}' ({total} weights; "
                f"layerwise scope allows at most ρ = {min(math.prod(s) for s in sizes.values())})"
            )
        per_layer.append(counts)
    return [list(step) for step in zip(*per_layer, strict=True)]


def iterative_prune(
    model: nn.Module,
    scorer: Scorer,
    compression: float,
    *,
    iterations: int = 1,
    scope: str = "global",
    data: Dataset | None = None,
    seed: int = 0,
    rounding: str = "round",
) -> Mask:
    """Prune ``model`` with any ``scorer`` in ``iterations`` steps of the exponential schedule.

    Each step scores the currently masked model and keeps the ``kept_schedule`` count of the highest
    scores among the unpruned weights (globally, or per layer for ``scope="layerwise"``): pruned weights
    take no part, as if they scored -inf. A scorer with a ``bind`` method (SynFlow) does its per-prune
    work (|θ| in float64) once, not once per step.
    """
    _check_choice(scope, SCOPES, "scope")
    _check_compression(compression)
    sizes = _layer_sizes(model)
    names = list(sizes)
    counts = _target_counts(sizes, compression, iterations, scope, rounding)
    generator = torch.Generator().manual_seed(seed)
    bind = getattr(scorer, "bind", None)
    score: BoundScorer = (
        bind(model, data, generator) if bind is not None else (lambda m: scorer(model, m, data, generator))
    )
    device = _device(model)
    bounds = np.cumsum([0, *(math.prod(s) for s in sizes.values())]).tolist()
    alive = torch.arange(bounds[-1], device=device)  # flat indices of unpruned weights, ascending

    def as_mask(alive: torch.Tensor) -> Mask:
        flat = torch.zeros(bounds[-1], dtype=torch.bool, device=device).index_fill_(0, alive, True)
        return Mask({n: flat[bounds[i] : bounds[i + 1]].view(sizes[n]) for i, n in enumerate(names)})

    # Selecting among the alive weights alone is also faster: a block of -inf ties slows introselect.
    for step in counts:
        scores = score(as_mask(alive))
        flat = torch.cat([scores[n].reshape(-1).to(device, torch.float64) for n in names])
        values = flat.index_select(0, alive)
        if scope == "global":
            alive = alive[keep_highest(values, step[0])]
        else:
            cuts = torch.searchsorted(alive, torch.tensor(bounds, device=device)).tolist()
            alive = torch.cat(
                [
                    alive[a:b][keep_highest(values[a:b], c)]
                    for a, b, c in zip(cuts[:-1], cuts[1:], step, strict=True)
                ]
            )
    return as_mask(alive)


# ---- iterative magnitude pruning with rewinding --------------------------------------------------------
def _distribute(amount: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """Split ``amount`` in proportion to ``weights``, each part at most its cap (largest remainder method,
    ties to the earlier part); what a capped part cannot take goes to the others."""
    out = [0] * len(weights)
    while (left := amount - sum(out)) > 0:
        open_ = [i for i in range(len(weights)) if out[i] < caps[i]]
        wsum = sum(weights[i] for i in open_)
        share = {i: left * (weights[i] / wsum if wsum > 0 else 1 / len(open_)) for i in open_}
        for i in open_:
            out[i] += min(int(share[i]), caps[i] - out[i])
        rest = amount - sum(out)
        for i in sorted(open_, key=lambda i: (-(share[i] - int(share[i])), i)):
            if rest > 0 and out[i] < caps[i]:
                out[i] += 1
                rest -= 1
    return out


def imp_schedule(
    sizes: Mapping[str, int],
    target: int,
    rates: Mapping[str, float],
    scope: str = "layerwise",
    *,
    rounds: int | None = None,
) -> list[dict[str, int] | int]:
    """Kept counts after each IMP round (per layer for ``layerwise``, the total for ``global``).

    Each round prunes round(p_l · kept_l) weights of layer l (or round(p · kept) globally). When a round
    would reach or pass ``target`` (or would prune nothing), the last round prunes exactly down to
    ``target``, split across layers in proportion to p_l · kept_l. The counts do not depend on training.

    With ``rounds``, exactly that many rounds of the plain rule and no landing (Frankle & Carbin's fixed
    number of rounds; ``target`` is not used): a count may then reach 0, which the caller checks.
    """
    out: list[dict[str, int] | int] = []
    if scope == "global":  # one rate for all weights
        p = next(iter(rates.values()))
        kept_total = sum(sizes.values())
        if rounds is not None:
            for _ in range(rounds):
                kept_total -= round(p * kept_total)
                out.append(kept_total)
            return out
        while kept_total > target:
            cut = round(p * kept_total)
            kept_total = target if cut == 0 or kept_total - cut <= target else kept_total - cut
            out.append(kept_total)
        return out
    kept = dict(sizes)
    if rounds is not None:
        for _ in range(rounds):
            kept = {n: k - round(rates[n] * k) for n, k in kept.items()}
            out.append(dict(kept))
        return out
    while sum(kept.values()) > target:
        cut = {n: round(rates[n] * k) for n, k in kept.items()}
        if sum(cut.values()) == 0 or sum(kept.values()) - sum(cut.values()) <= target:
            split = _distribute(
                sum(kept.values()) - target, [rates[n] * k for n, k in kept.items()], list(kept.values())
            )
            cut = dict(zip(kept, split, strict=True))
        kept = {n: k - cut[n] for n, k in kept.items()}
        out.append(dict(kept))
    return out


# F&C's LeNet setup (Adam, lr 1.2e-3, batch 60) at a CPU-sized 1000 steps per round.
IMP_TRAINING = TrainingConfig(steps=1000, optimizer="adam", lr=1.2e-3, batch_size=60)


@dataclass(frozen=True)
class IMPRound:
    """One round of IMP: the mask it pruned to, and the validation accuracy of the network it trained (under
    the previous round's mask, from the rewind point) whose magnitudes chose that mask."""

    mask: Mask
    kept: int
    density: float
    trained_accuracy: float


@dataclass(frozen=True)
class IMPResult:
    """The ticket: its mask, the rounds it took, kept weights after each round, the rewind weights; every
    round (``history``) and the tickets cut on the way (``tickets``: ρ → mask, ``compression`` included)."""

    mask: Mask
    rounds: int
    kept: tuple[int, ...]
    rewind_state: dict[str, torch.Tensor]
    history: tuple[IMPRound, ...] = ()
    tickets: Mapping[float, Mask] = field(default_factory=dict)


IMP_OPTIONS = ("training", "rate", "output_rate", "rewind_step", "mode")


def imp_plan(
    model: nn.Module,
    compression: float | None = None,
    *,
    rounds: int | None = None,
    rate: float = 0.2,
    output_rate: float | None = None,
    conv_rate: float | None = None,
    scope: str = "layerwise",
    rounding: str = "round",
) -> list[dict[str, int] | int]:
    """The kept counts after each IMP round (``imp_schedule``), known before any training so that a caller
    can budget the rounds first: each round prunes ``rate`` of each layer's remaining weights by |θ| (the
    output layer at ``output_rate``, default rate/2, the convolutions at ``conv_rate``, default rate; a
    convnet's output layer is its last fully connected one), or with ``scope="global"`` ``rate`` of all.

    Give one of ``compression`` (ρ: as many rounds as it takes, the last landing on exactly
    ``kept_count(|θ|, ρ)`` weights: ``imp``'s trajectory) and ``rounds`` (that many rounds of the plain rule,
    Frankle & Carbin's fixed trajectory: the durable IMP run's). A round that would leave a layer (or, global,
    the network) without weights is a one-line ``PruningError``, before any training."""
    if (compression is None) == (rounds is None):
        raise PruningError("an IMP plan needs one of compression and rounds")
    _check_choice(scope, SCOPES, "scope")
    if compression is not None:
        _check_compression(compression)
    output_rate = rate / 2 if output_rate is None else output_rate
    conv_rate = rate if conv_rate is None else conv_rate
    for what, value in (("rate", rate), ("output_rate", output_rate), ("conv_rate", conv_rate)):
        if not 0 < value < 1:
            raise PruningError(f"IMP {what} must be in (0, 1), got {value:g}")
    shapes = _layer_sizes(model)
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    names = list(sizes)
    total = sum(sizes.values())
    rates = {n: conv_rate if scope == "layerwise" and len(shapes[n]) > 2 else rate for n in names}
    if scope == "layerwise":
        rates[names[-1]] = output_rate
    if compression is not None:
        target = kept_count(total, compression, rounding)
        if target < 1:
            raise PruningError(
                f"compression {compression:g} would keep no weight of the {total} (IMP allows at most ρ = {total})"
            )
        return imp_schedule(sizes, target, rates, scope)
    plan = imp_schedule(sizes, 0, rates, scope, rounds=rounds)
    for r, kept in enumerate(plan, start=1):
        empty = [n for n, k in kept.items() if k == 0] if isinstance(kept, dict) else ([] if kept else ["*"])
        if empty:
            what = f"the {total}" if empty == ["*"] else f"layer '{empty[0]}'"
            raise PruningError(
                f"rounds = {rounds} would keep no weight of {what} (none left after round {r})"
            )
    return plan


def imp_rewind_state(
    model: nn.Module,
    data: Dataset,
    training: TrainingConfig,
    rewind_step: int,
    *,
    mode: str = "forward",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The weights every IMP round starts from: ``model``'s own (``rewind_step = 0``), or those after
    ``rewind_step`` dense steps of ``training`` with batches from ``seed`` (no evaluations: they change
    nothing in the weights). A pure function of its arguments; ``model`` is not changed."""
    net = copy.deepcopy(model)
    if rewind_step:
        dense = dataclasses.replace(training, steps=rewind_step, eval_every=0)
        train(net, None, data, dense, mode=mode, seed=seed)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@dataclass(frozen=True)
class TrainedRound:
    """One IMP round: the network trained from the rewind point under the round's mask, the protocol's
    numbers for that training, the mask its magnitudes prune to (None for a round not pruned: the last
    of a trajectory of fixed rounds, or a retraining), and the rewind point's weights it started from (where
    Continuous Sparsification's search round starts too)."""

    net: nn.Module
    result: TrainResult
    pruned: Mask | None
    rewind_state: Mapping[str, torch.Tensor]


def imp_round(
    model: nn.Module,
    rewind_state: Mapping[str, torch.Tensor],
    mask: Mask,
    data: Dataset,
    training: TrainingConfig,
    rewind_step: int = 0,
    *,
    kept: dict[str, int] | int | None = None,
    mode: str = "forward",
    seed: int = 0,
    evaluate_test: bool = False,
) -> TrainedRound:
    """One IMP round, the one both ``imp`` and the durable IMP run train: a copy of ``model`` at
    ``rewind_state`` trained under ``mask`` for the ``training.steps - rewind_step`` steps after the rewind
    point, then pruned to the ``kept`` largest |θ| (``prune_round``; ``kept=None``: not pruned). Batches come
    from ``seed``, or ``seed + 1`` after a rewind phase, so the rounds do not replay its batches."""
    net = copy.deepcopy(model)
    net.load_state_dict(rewind_state)
    rounds_training = training.with_steps(training.steps - rewind_step)
    result = train(
        net,
        mask,
        data,
        rounds_training,
        mode=mode,
        seed=seed + int(rewind_step > 0),
        evaluate_test=evaluate_test,
    )
    return TrainedRound(net, result, None if kept is None else prune_round(net, mask, kept), rewind_state)


def imp_round_from_init(
    model: nn.Module,
    mask: Mask,
    data: Dataset,
    training: TrainingConfig,
    rewind_step: int = 0,
    *,
    rewind: TrainingConfig | None = None,
    kept: dict[str, int] | int | None = None,
    mode: str = "forward",
    seed: int = 0,
) -> TrainedRound:
    """One IMP round trained on its own, to be stored (a round of the durable run, a confirmation's
    retraining), so evaluated on the test split too: its rewind point (``imp_rewind_state`` under the rewind
    phase's training ``rewind``, default ``training``) computed again, then ``imp_round``. The same bits as
    the round inside ``imp``, which computes the rewind point once per trajectory."""
    state = imp_rewind_state(
        model, data, training if rewind is None else rewind, rewind_step, mode=mode, seed=seed
    )
    return imp_round(
        model, state, mask, data, training, rewind_step, kept=kept, mode=mode, seed=seed, evaluate_test=True
    )


def prune_round(trained: nn.Module, mask: Mask, kept: dict[str, int] | int) -> Mask:
    """The mask one IMP round prunes ``mask`` to: the ``kept`` largest |θ| of the ``trained`` network among
    ``mask``'s weights (one count per layer, or one global count). Pure: the network is only read."""
    return _keep_largest(magnitude_scores(trained, mask, None, torch.Generator()), mask, kept)


def _keep_largest(magnitudes: Scores, mask: Mask, kept: dict[str, int] | int) -> Mask:
    """The ``kept`` largest magnitudes among ``mask``'s weights: one global count, or one per layer."""
    names = list(mask)
    sizes = [mask[n].numel() for n in names]
    device = magnitudes[names[0]].device
    flat_alive = torch.cat([mask[n].reshape(-1) for n in names]).to(device)
    flat = torch.cat([magnitudes[n].reshape(-1) for n in names]).masked_fill(~flat_alive, -math.inf)
    if isinstance(kept, int):
        keep = keep_highest(flat, kept)
    else:
        parts = flat.split(sizes)
        keep = torch.cat([keep_highest(part, kept[n]) for n, part in zip(names, parts, strict=True)])
    return Mask({n: part.view(mask[n].shape) for n, part in zip(names, keep.cpu().split(sizes), strict=True)})


def imp(
    model: nn.Module,
    compression: float,
    data: Dataset | None,
    *,
    training: TrainingConfig | None = None,
    rate: float = 0.2,
    output_rate: float | None = None,
    scope: str = "layerwise",
    rewind_step: int = 0,
    mode: str = "forward",
    seed: int = 0,
    rounding: str = "round",
    tickets_at: Sequence[float] = (),
) -> IMPResult:
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; rewinding: Frankle et al. 2020).

    Each round trains a copy of ``model`` from the rewind point for ``training.steps - rewind_step`` steps
    (default ``IMP_TRAINING``) under the current mask, prunes ``rate`` of each layer's remaining weights by
    |θ| (the output layer at ``output_rate``, default rate/2), and rewinds: to the initial weights, or to
    those after ``rewind_step`` dense steps. ``scope="global"`` prunes ``rate`` of all remaining weights by
    one global magnitude threshold instead (OpenLTH's ``sparse_global``; ``output_rate`` does not apply).
    The last round lands on exactly ``kept_count(|θ|, compression)`` weights (see ``imp_schedule``).
    Batches: the rewind phase and every round use ``seed`` (``seed + 1`` for the rounds when
    ``rewind_step > 0``, so they do not replay the rewind phase's batches). ``model`` itself is not changed.

    ``tickets_at`` (each ρ ≤ ``compression``) also cuts, on the way, the ticket ``imp(model, ρ, ...)`` would
    return: the schedules for different targets share every round but their last, so one trajectory trains
    every round any of them needs and each ticket is cut from the round where its own schedule ends.
    """
    if data is None:
        raise PruningError("pruner 'imp' needs training data: pass data=load_dataset(...)")
    training = IMP_TRAINING if training is None else training
    if not isinstance(training, TrainingConfig):
        raise PruningError(f"IMP training must be a TrainingConfig, got {training!r}")
    options = {"rate": rate, "output_rate": output_rate, "scope": scope, "rounding": rounding}
    schedule = imp_plan(model, compression, **options)
    if not 0 <= rewind_step < training.steps:
        raise PruningError(
            f"IMP needs 0 <= rewind_step < steps, got rewind_step={rewind_step}, steps={training.steps}"
        )
    plans = {}
    for c in tickets_at:
        _check_compression(c)
        if c > compression:
            raise PruningError(
                f"IMP ticket at ρ = {c:g} lies past the trajectory's compression {compression:g}"
            )
        plans[float(c)] = imp_plan(model, c, **options)
    # A smaller target lands later on the same rounds: each plan is the trajectory's prefix plus its landing.
    assert all(not p or p[:-1] == schedule[: len(p) - 1] for p in plans.values())

    rewind_state = imp_rewind_state(model, data, training, rewind_step, mode=mode, seed=seed)
    mask = Mask.ones(model)
    tickets = {c: mask for c, p in plans.items() if not p}
    history = []
    for k, kept in enumerate(schedule):
        rnd = imp_round(
            model, rewind_state, mask, data, training, rewind_step, kept=kept, mode=mode, seed=seed
        )
        assert rnd.pruned is not None
        for c, p in plans.items():
            if len(p) == k + 1:
                tickets[c] = rnd.pruned if p[k] == kept else prune_round(rnd.net, mask, p[k])
        mask = rnd.pruned
        history.append(IMPRound(mask, mask.kept(), mask.density(), rnd.result.val_accuracy))
    tickets[float(compression)] = mask
    kept_totals = tuple(k if isinstance(k, int) else sum(k.values()) for k in schedule)
    return IMPResult(mask, len(schedule), kept_totals, rewind_state, tuple(history), tickets)


# ---- Continuous Sparsification at a compression ------------------------------------------------------
CS_OPTIONS = ("training", "penalty", "beta_final", "s_init", "rounds", "steps", "rewind_step")


def cs(
    model: nn.Module,
    compression: float,
    data: Dataset | None,
    *,
    training: TrainingConfig | None = None,
    penalty: float | Sequence[float] = 1e-6,
    beta_final: float = continuous.BETA_FINAL,
    s_init: float = 0.0,
    rounds: int = 5,
    steps: int | None = None,
    rewind_step: int = 0,
    seed: int = 0,
    rounding: str = "round",
) -> Mask:
    """Continuous Sparsification (``continuous.continuous_sparsification``) cut to ρ: rounds of the search
    (λ = ``penalty``, each ``steps`` long, default the ``training`` steps after the rewind point) until the
    hard mask is at most ``kept_count(|θ|, ρ)`` weights or ``rounds`` have run, then exactly that many
    weights, the highest scores of the last round. The search's weights rewind to the init, or to those
    after ``rewind_step`` dense steps (``imp_rewind_state``); batches come from ``seed``, as IMP's."""
    if data is None:
        raise PruningError("pruner 'cs' needs training data: pass data=load_dataset(...)")
    training = IMP_TRAINING if training is None else training
    if not isinstance(training, TrainingConfig):
        raise PruningError(f"CS training must be a TrainingConfig, got {training!r}")
    if not 0 <= rewind_step < training.steps:
        raise PruningError(
            f"CS needs 0 <= rewind_step < steps, got rewind_step={rewind_step}, steps={training.steps}"
        )
    total = sum(math.prod(s) for s in _layer_sizes(model).values())
    kept = kept_count(total, compression, rounding)
    if kept < 1:
        raise PruningError(f"compression {compression:g} would keep no weight of the {total}")
    state = imp_rewind_state(model, data, training, rewind_step, seed=seed)
    return continuous.continuous_sparsification(
        model,
        data,
        training,
        rounds=rounds,
        penalty=penalty,
        beta_final=beta_final,
        s_init=s_init,
        steps=training.steps - rewind_step if steps is None else steps,
        rewind_state=state,
        seed=seed + int(rewind_step > 0),
        target_density=kept / total,
        kept=kept,
    ).mask


# ---- the public entry point --------------------------------------------------------------------------
def prune(
    model: nn.Module,
    pruner: str,
    compression: float,
    *,
    iterations: int | None = None,
    scope: str | None = None,
    data: Dataset | None = None,
    seed: int = 0,
    rounding: str = "round",
    **imp_options: object,
) -> Mask:
    """The mask of ``pruner`` at compression ρ (kept weights: round(|θ|/ρ)); ``model`` is not changed.

    ``iterations=None`` is the pruner's default (100 for synflow, 1 for snip, magnitude and random);
    ``scope=None`` is the pruner's default ("global"; "layerwise" for imp, as Frankle & Carbin).
    ``imp`` needs ``data`` and takes :func:`imp`'s ``IMP_OPTIONS`` (``training=TrainingConfig(...)``, ``rate``, ...)
    as keywords; ``cs`` (Continuous Sparsification, :func:`cs`) needs ``data`` and takes ``CS_OPTIONS``.
    """
    _check_choice(pruner, PRUNERS, "pruner")
    if pruner == "cs":
        if iterations is not None:
            raise PruningError("pruner 'cs' runs rounds of its search; pass rounds=..., not iterations")
        if scope not in (None, "global"):
            raise PruningError(
                f"pruner 'cs' keeps the highest scores of all layers at once (scope 'global'), got scope '{scope}'"
            )
        unknown = sorted(set(imp_options) - set(CS_OPTIONS))
        if unknown:
            raise PruningError(f"unknown CS option(s) {', '.join(unknown)} (known: {', '.join(CS_OPTIONS)})")
        return cs(model, compression, data, seed=seed, rounding=rounding, **imp_options)  # type: ignore[arg-type]
    if pruner == "imp":
        if iterations is not None:
            raise PruningError("pruner 'imp' sets its rounds from rate; pass rate=..., not iterations")
        unknown = sorted(set(imp_options) - set(IMP_OPTIONS))
        if unknown:
            raise PruningError(
                f"unknown IMP option(s) {', '.join(unknown)} (known: {', '.join(IMP_OPTIONS)})"
            )
        return imp(
            model, compression, data, scope=scope or "layerwise", seed=seed, rounding=rounding, **imp_options
        ).mask
    if imp_options:
        raise PruningError(f"option(s) {', '.join(sorted(imp_options))} apply only to pruners 'imp' and 'cs'")
    return iterative_prune(
        model,
        SCORERS[pruner],
        compression,
        iterations=DEFAULT_ITERATIONS.get(pruner, 1) if iterations is None else iterations,
        scope=scope or "global",
        data=data,
        seed=seed,
        rounding=rounding,
    )


# ---- layer collapse ------------------------------------------------------------------------------------
def max_compression(model: nn.Module) -> float:
    """ρ_max = |θ| / L: one weight per layer is the sparsest mask that keeps an input→output path (in a
    convnet one kernel entry per convolution, chaining channels, and fc weights in the right channel's block)."""
    sizes = _layer_sizes(model)
    return sum(math.prod(s) for s in sizes.values()) / len(sizes)


def compression_grid(rho_max: float, step: float = 0.25, *, include_max: bool = False) -> list[float]:
    """Exponents x = 0, step, 2·step, ... ≤ log10 ρ_max (ρ = 10^x), and log10 ρ_max itself with
    ``include_max`` (when it is not on the grid already)."""
    top = math.log10(rho_max)
    xs = [round(k * step, 10) for k in range(int(math.floor(top / step + 1e-9)) + 1)]
    return xs + ([top] if include_max and top - xs[-1] > 1e-9 else [])


@dataclass(frozen=True)
class CollapseSweep:
    """One pruner on one init at ρ = 10^x for each exponent x (ascending): whether each mask collapsed, and
    the share of its kept weights that lie on an input→output path (0 when collapsed)."""

    exponents: tuple[float, ...]
    collapsed: tuple[bool, ...]
    effective_fraction: tuple[float, ...]

    @property
    def critical(self) -> float:
        """ρ_cr of the notes: the largest 10^x with no collapse at or below it (1.0 when the first point
        collapses); a sweep with ``until_collapse`` stops as soon as it knows it. With biases SynFlow's flow
        also runs through |b|, so it can cut the first layers before ρ_max (bias-free it reached ρ_max in
        our tests)."""
        rho = 1.0
        for x, c in zip(self.exponents, self.collapsed, strict=True):
            if c:
                break
            rho = 10.0**x
        return rho


def collapse_sweep(
    model_spec: str,
    pruner: str,
    *,
    grid: Sequence[float] | None = None,
    data: Dataset | None = None,
    seed: int = 0,
    iterations: int | None = None,
    bias: bool = True,
    until_collapse: bool = False,
) -> CollapseSweep:
    """Prune ``build_model(model_spec, seed, bias=bias)`` with ``pruner`` at ρ = 10^x for each x of ``grid``
    (exponents; default ``compression_grid(ρ_max)``: 0, 0.25, ... up to log10 ρ_max). Collapse is
    ``Mask.is_collapsed()`` (a layer with no weight on any input→output path). ``until_collapse`` stops at
    the first collapsed point, enough for ρ_cr."""
    _check_choice(pruner, PRUNERS, "pruner")
    model = build_model(model_spec, seed, bias=bias)
    xs = sorted(compression_grid(max_compression(model)) if grid is None else grid)
    done, collapsed, effective = [], [], []
    for x in xs:
        mask = prune(model, pruner, 10.0**x, iterations=iterations, data=data, seed=seed)
        done.append(x)
        collapsed.append(mask.is_collapsed())
        effective.append(mask.effective().kept() / mask.kept())
        if until_collapse and collapsed[-1]:
            break
    return CollapseSweep(tuple(done), tuple(collapsed), tuple(effective))
