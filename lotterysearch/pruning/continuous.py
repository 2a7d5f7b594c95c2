"""Continuous Sparsification (Savarese, Silva & Maire 2020, "Winning the Lottery with Continuous
Sparsification"): a ticket search that learns the mask instead of reading it off magnitudes.

Every prunable weight w has a mask score s. Within a round the network computes with w ⊙ σ(β·s) (the
soft mask, Eq. 5 of the paper with the sigmoid as its smooth step) and trains w and s together on

    L(w ⊙ σ(β·s)) + λ·‖σ(β·s)‖₁                                          (Eq. 6: the L1 of the soft mask)

while the temperature β grows exponentially from 1 to β_T over the round's T steps (β ← β·β_T^(1/T) after
each step, so σ(β·s) tends to the step function 1[s > 0]). At the end of a round (Algorithm 1):

* the hard mask is 1[s > 0] (``hard_mask``);
* the scores are reset to min(β_T·s, s₀) (``reset_scores``): positive scores restart at the init s₀, so the
  kept weights can be pruned in a later round, negative ones keep their sign scaled by β_T, so the pruned
  stay pruned in practice (their σ(β·s) starts near 0 and its gradient is near 0);
* β is reset to 1 and the weights are rewound to θ₀ (or to the weights after ``rewind_step`` dense steps).

The density reached depends on λ and s₀ (and the training), not on a preset rate. Two ways to hit a target
density are offered, neither of them the paper's (which tunes λ and s₀): stop the rounds once the hard mask
is at or below the target (``target_density``), and keep exactly the top-k scores of the last round
(``kept``; ties to the lower flat index). The pruner ``prune(model, "cs", ρ)`` does both.

Choices where the paper and its code leave room: s₀ = 0 by default (the code's default is -0.01 for its
ResNets); the soft mask is σ(β·s) as in the paper, without the code's 1/σ(s₀) rescaling; each round starts a
fresh optimizer (the protocol's, on w and s with one learning rate) over the same seeded batches, so a
round is a pure function of (θ₀, s at its start, λ, the seed); the hard mask is 1[s > 0] with no memory
of earlier rounds' masks, as in the paper. Nothing here changes the model it is given or the global RNG.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import prunable_layers, weight_names
from lotterysearch.errors import PruningError
from lotterysearch.settings import TrainingConfig
from lotterysearch.training.trainer import OPTIMIZERS, batch_indices, default_device

Scores = dict[str, torch.Tensor]
# (round, step, β, the network, the scores): called before a round's first step (step 0) and after its last
Observer = Callable[[int, int, float, nn.Module, Scores], None]

BETA_FINAL = 200.0  # the paper's final temperature β_T


# ---- pure pieces --------------------------------------------------------------------------------------
def init_scores(model: nn.Module, s_init: float) -> Scores:
    """s = s₀ for every prunable weight (float32, on the CPU)."""
    return {
        n: torch.full(layer.weight.shape, float(s_init), dtype=torch.float32)
        for n, layer in prunable_layers(model).items()
    }


def beta_at(step: int, steps: int, beta_final: float) -> float:
    """β after ``step`` of ``steps`` updates: β_T^(step/T), the closed form of β ← β·β_T^(1/T) from β = 1."""
    return float(beta_final) ** (step / steps) if steps else 1.0


def soft_mask(scores: Mapping[str, torch.Tensor], beta: float) -> Scores:
    """σ(β·s): the soft mask a round computes with (Eq. 5)."""
    return {n: torch.sigmoid(beta * s) for n, s in scores.items()}


def hard_mask(scores: Mapping[str, torch.Tensor]) -> Mask:
    """1[s > 0]: the mask a round ends with (the limit of σ(β·s) as β → ∞)."""
    return Mask({n: s.detach().cpu() > 0 for n, s in scores.items()})


def reset_scores(scores: Mapping[str, torch.Tensor], beta_final: float, s_init: float) -> Scores:
    """min(β_T·s, s₀): Algorithm 1's reset of the scores between rounds."""
    return {n: torch.clamp(beta_final * s.detach(), max=float(s_init)) for n, s in scores.items()}


def top_scores(scores: Mapping[str, torch.Tensor], kept: int) -> Mask:
    """Exactly the ``kept`` highest scores over all layers (ties to the lower flat index, layers in forward
    order): a hard mask at an exact density, where the paper's 1[s > 0] lands where λ takes it."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().cpu().reshape(-1).to(torch.float64) for n in names])
    if not 0 <= kept <= flat.numel():
        raise PruningError(f"cannot keep {kept} of {flat.numel()} weights")
    order = torch.sort(flat, descending=True, stable=True).indices[:kept]
    keep = torch.zeros(flat.numel(), dtype=torch.bool).index_fill_(0, order, True)
    sizes = [scores[n].numel() for n in names]
    return Mask({n: part.view(scores[n].shape) for n, part in zip(names, keep.split(sizes), strict=True)})


def mask_penalty(soft: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """‖σ(β·s)‖₁ (the soft mask is positive, so its L1 norm is its sum)."""
    return sum(m.sum() for m in soft.values())


# ---- one round ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CSRound:
    """One round of the search: the scores at its end (before the reset), its hard mask 1[s > 0] and the
    network's weights at its end."""

    scores: Scores
    mask: Mask
    net: nn.Module

    @property
    def density(self) -> float:
        return self.mask.density()


def cs_round(
    model: nn.Module,
    rewind_state: Mapping[str, torch.Tensor] | None,
    scores: Mapping[str, torch.Tensor],
    data: Dataset,
    training: TrainingConfig,
    *,
    penalty: float,
    beta_final: float = BETA_FINAL,
    steps: int | None = None,
    seed: int = 0,
    round_index: int = 0,
    observe: Observer | None = None,
    device: torch.device | str | None = None,
) -> CSRound:
    """One round of Continuous Sparsification: a copy of ``model`` at ``rewind_state`` (None: its own
    weights) and the scores ``scores`` trained together for ``steps`` (default ``training.steps``) on
    L(w ⊙ σ(β·s)) + λ·‖σ(β·s)‖₁ with β = β_T^(t/T) at step t (Eq. 6), with the protocol's optimizer and
    learning rate for w and s and batches from ``seed``. ``model`` and ``scores`` are only read."""
    if not penalty >= 0:
        raise PruningError(f"the mask penalty λ must be >= 0, got {penalty!r}")
    if not beta_final >= 1:
        raise PruningError(f"the final temperature β_T must be >= 1, got {beta_final!r}")
    steps = training.steps if steps is None else int(steps)
    device = torch.device(device) if device is not None else default_device()
    net = copy.deepcopy(model)
    if rewind_state is not None:
        net.load_state_dict(rewind_state)
    net.to(device)
    layers = prunable_layers(net)
    names = weight_names(net)
    s = {n: scores[n].detach().clone().to(device).requires_grad_() for n in layers}
    x, y = data.x_train.to(device), data.y_train.to(device)
    kernel = {"fused": True} if training.fused else {}
    opt = OPTIMIZERS[training.optimizer]([*net.parameters(), *s.values()], training.lr, **kernel)
    beta = 1.0
    if observe is not None:
        observe(round_index, 0, beta, net, s)
    net.train()
    for step, idx in enumerate(batch_indices(len(y), training.batch_size, steps, seed), start=1):
        idx = idx.to(device)
        soft = soft_mask(s, beta)
        params = {names[n]: layers[n].weight * soft[n] for n in layers}
        logits = torch.func.functional_call(net, params, (x[idx],))
        loss = F.cross_entropy(logits, y[idx]) + penalty * mask_penalty(soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        beta = beta_at(step, steps, beta_final)
    net.eval()
    if observe is not None:
        observe(round_index, steps, beta, net, s)
    end = {n: t.detach().cpu() for n, t in s.items()}
    return CSRound(end, hard_mask(end), net.cpu())


# ---- the search ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CSResult:
    """The search's ticket (its mask), every round's hard mask and density, the last round's scores (before
    the reset) and the round it stopped at."""

    mask: Mask
    masks: tuple[Mask, ...]
    densities: tuple[float, ...]
    scores: Scores

    @property
    def rounds(self) -> int:
        return len(self.masks)


def penalties(penalty: float | Sequence[float], rounds: int) -> list[float]:
    """λ of each round: one value for all rounds, or one per round."""
    values = [float(penalty)] * rounds if isinstance(penalty, int | float) else [float(p) for p in penalty]
    if len(values) != rounds:
        raise PruningError(f"give one penalty λ, or one per round ({rounds}), got {len(values)}")
    return values


def continuous_sparsification(
    model: nn.Module,
    data: Dataset,
    training: TrainingConfig,
    *,
    rounds: int,
    penalty: float | Sequence[float],
    beta_final: float = BETA_FINAL,
    s_init: float = 0.0,
    steps: int | None = None,
    rewind_state: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    target_density: float | None = None,
    kept: int | None = None,
    observe: Observer | None = None,
) -> CSResult:
    """Algorithm 1 of Savarese et al. (2020) for ``rounds`` rounds (``cs_round``), each from the rewind
    point (``rewind_state``; None: ``model``'s own weights θ₀) with β reset to 1 and the scores reset to
    min(β_T·s, s₀). ``penalty``: λ, or one λ per round.

    ``target_density`` stops the rounds once the hard mask's density is at most the target; ``kept`` makes
    the ticket exactly that many weights, the highest scores of the last round (``top_scores``). Neither is
    the paper's, whose density follows from λ and s₀."""
    if rounds < 1:
        raise PruningError(f"Continuous Sparsification needs rounds >= 1, got {rounds}")
    if target_density is not None and not 0 < target_density <= 1:
        raise PruningError(f"the target density must be in (0, 1], got {target_density!r}")
    lambdas = penalties(penalty, rounds)
    state = dict(model.state_dict()) if rewind_state is None else rewind_state
    scores = init_scores(model, s_init)
    masks: list[Mask] = []
    end: Scores = scores
    for r, lam in enumerate(lambdas):
        if r:
            scores = reset_scores(end, beta_final, s_init)
        rnd = cs_round(
            model,
            state,
            scores,
            data,
            training,
            penalty=lam,
            beta_final=beta_final,
            steps=steps,
            seed=seed,
            round_index=r,
            observe=observe,
        )
        end = rnd.scores
        masks.append(rnd.mask)
        if target_density is not None and rnd.density <= target_density:
            break
    mask = masks[-1] if kept is None else top_scores(end, kept)
    return CSResult(mask, tuple(masks), tuple(m.density() for m in masks), end)


def scores_bytes(scores: Mapping[str, torch.Tensor]) -> bytes:
    """The scores as float32 bytes, layers in order: what a durable run stores to resume a trajectory."""
    return b"".join(
        s.detach().cpu().to(torch.float32).contiguous().numpy().tobytes() for s in scores.values()
    )


def scores_from_bytes(blob: bytes, shapes: Mapping[str, Sequence[int]]) -> Scores:
    """``scores_bytes`` read back, bit for bit."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    if len(blob) != 4 * sum(sizes.values()):
        raise PruningError(f"stored scores hold {len(blob)} bytes, expected {4 * sum(sizes.values())}")
    flat = torch.frombuffer(bytearray(blob), dtype=torch.float32)
    parts = flat.split(list(sizes.values()))
    return {n: p.view(*shapes[n]).clone() for n, p in zip(shapes, parts, strict=True)}
