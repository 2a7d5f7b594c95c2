"""K networks of one architecture trained at once on the same minibatches: what every family's batch shares.

Why: a search trains many small networks of one architecture, and one at a time a step of a small network
costs more in per-operation overhead (Python, dispatch, autograd) than in arithmetic. Stacking the K
networks' weights and running one batched matmul (``torch.bmm``) per layer pays that overhead once for all K.
How a family writes its layers as batched matmuls is its own (``batched_mlp.py``: explicit backpropagation,
CSR layers; ``batched_conv.py``: im2col); this module holds the rest: the flat buffers, the optimizers on
them, the training loop, the write-back and the evaluation.

A network's numbers do not depend on K or on which other networks share its batch (checked bit for bit in
the tests, under one torch thread as in the evaluators): every matmul is a per-network gemm of the same
shape inside ``bmm``, each matrix in memory that starts at a multiple of ``ALIGN`` floats (MKL rounds by
alignment, see ``bmm_aligned``); every reduction runs within one network; and all elementwise work (masking,
optimizer) runs on flat buffers in which every network's block, and every layer inside it, starts at a
multiple of ``ALIGN`` floats, so SIMD lanes and scalar tails fall on the same elements whatever K is.

The batch order is ``training.batch_indices``'s and the optimizers are ``torch.optim.Adam``'s and ``SGD``'s
update formulas, so a batch trains each network as ``training.train`` does, to float rounding.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, check_mode
from lotterysearch.core.models import prunable_layers
from lotterysearch.errors import ConfigError
from lotterysearch.settings import TrainingConfig
from lotterysearch.training.early_bird import EarlyBird, EarlyBirdWatch, magnitude_mask
from lotterysearch.training.trainer import OPTIMIZERS, TrainResult, batch_indices, default_device

ALIGN = 64  # floats: each layer's block in the flat buffers starts at a multiple of this (256 bytes)


def round_up(n: int) -> int:
    """``n`` rounded up to a multiple of ``ALIGN``."""
    return -(-n // ALIGN) * ALIGN


def aligned_empty(k: int, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``[k, rows, cols]`` tensor whose every matrix starts on ``ALIGN`` floats."""
    flat = torch.empty(k, round_up(rows * cols), dtype=like.dtype, device=like.device)
    return flat[:, : rows * cols].view(k, rows, cols)


def bmm_aligned(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.bmm`` into ``out``, by default a fresh tensor whose every matrix starts on ``ALIGN`` floats.

    MKL's result for one matrix depends on where in memory its output starts (found here: an output
    block at an offset of 35 floats rounds differently from one at 0), so a packed ``[K, r, c]`` result
    would give network j different bits for different K. With aligned blocks it does not.
    """
    if out is None:
        out = aligned_empty(a.shape[0], a.shape[1], b.shape[2], a)
    return torch.bmm(a, b, out=out)


@dataclass(frozen=True)
class Layout:
    """Where each layer's weight (``shapes[l]``: ``[out, in, *kernel]``) and bias ``[out]`` live in a network's
    flat block. A layer is viewed as the matrix ``[out, in·kernel]``; a sparse one (``nnz[l]`` not None)
    keeps only its ``nnz`` live weights, in row-major order."""

    shapes: tuple[tuple[int, ...], ...]
    bias: bool
    weight_offsets: tuple[int, ...]
    bias_offsets: tuple[int, ...]
    size: int  # floats per network, a multiple of ALIGN
    nnz: tuple[int | None, ...] = ()

    @classmethod
    def of(
        cls, shapes: Sequence[Sequence[int]], bias: bool, nnz: Sequence[int | None] | None = None
    ) -> Layout:
        shapes = tuple(tuple(int(s) for s in shape) for shape in shapes)
        nnz = tuple(nnz) if nnz is not None else (None,) * len(shapes)
        w_off, b_off, at = [], [], 0
        for shape, n in zip(shapes, nnz, strict=True):
            w_off.append(at)
            at += round_up(math.prod(shape) if n is None else n)
            b_off.append(at)
            at += round_up(shape[0]) if bias else 0
        return cls(shapes, bias, tuple(w_off), tuple(b_off), at, nnz)

    def weights(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views ``[K, out, in·kernel]`` of each layer's weights in ``flat`` ``[K, size]`` (``[K, nnz]`` if
        sparse)."""
        k = flat.shape[0]
        views = []
        for o, shape, n in zip(self.weight_offsets, self.shapes, self.nnz, strict=True):
            rows, cols = shape[0], math.prod(shape[1:])
            views.append(
                flat[:, o : o + rows * cols].view(k, rows, cols) if n is None else flat[:, o : o + n]
            )
        return views

    def biases(self, flat: torch.Tensor) -> list[torch.Tensor | None]:
        """Views ``[K, out]`` of each layer's biases in ``flat`` (``None`` for a bias-free network)."""
        if not self.bias:
            return [None] * len(self.shapes)
        return [flat[:, o : o + shape[0]] for o, shape in zip(self.bias_offsets, self.shapes, strict=True)]


# ---- optimizers on flat buffers ------------------------------------------------------------------
_TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


class FlatAdam:
    """``torch.optim.Adam(lr)`` (betas 0.9, 0.999, eps 1e-8), the single-tensor update applied to a buffer."""

    def __init__(self, theta: torch.Tensor, lr: float) -> None:
        self.lr, self.beta1, self.beta2, self.eps, self.step_count = lr, 0.9, 0.999, 1e-8, 0
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(theta), torch.zeros_like(theta)

    def step(self, theta: torch.Tensor, grad: torch.Tensor) -> None:
        self.step_count += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1**self.step_count
        bias_correction2 = 1 - self.beta2**self.step_count
        step_size = self.lr / bias_correction1
        # (√v / √bc2) + eps, with subnormal v replaced by 0 first: their square roots (< 1.1e-19, over
        # √bc2 >= √0.001, < 4e-18) are below half an ulp of eps (4.4e-16), so the sum is eps either way, bit
        # for bit; but a square root of a subnormal is several times slower, and Adam's v is full of them.
        v = torch.where(self.exp_avg_sq < _TINY, 0.0, self.exp_avg_sq)
        denom = v.sqrt_().div_(bias_correction2**0.5).add_(self.eps)
        theta.addcdiv_(self.exp_avg, denom, value=-step_size)


class FlatSGD:
    """``torch.optim.SGD(lr, momentum=0.9)``: the first step copies the gradient into the buffer."""

    def __init__(self, theta: torch.Tensor, lr: float) -> None:
        self.lr, self.momentum = lr, 0.9
        self.buf: torch.Tensor | None = None

    def step(self, theta: torch.Tensor, grad: torch.Tensor) -> None:
        if self.buf is None:
            self.buf = grad.clone()
        else:
            self.buf.mul_(self.momentum).add_(grad)
        theta.add_(self.buf, alpha=-self.lr)


FLAT_OPTIMIZERS = {"adam": FlatAdam, "sgd": FlatSGD}
assert set(FLAT_OPTIMIZERS) == set(OPTIMIZERS), "every optimizer of training.OPTIMIZERS needs a flat twin"


# ---- the batch of networks ------------------------------------------------------------------------------
class NetworkBatch(ABC):
    """K networks of one architecture as flat buffers: ``theta`` ``[K, layout.size]`` holds the parameters and
    ``mask`` 1.0 for kept and 0.0 for pruned weights (1.0 on biases, which are never pruned, and 0.0 on
    padding). A family's batch (``MLPBatch``, ``ConvBatch``) checks its architecture (``architecture``) and
    adds ``logits`` and ``train_step``; ``optimizer`` is set by ``train_batch``.

    ``sparse`` (one network, ``forward`` mode; MLPs) keeps the chosen layers as their live values only
    (``stored_positions``). ``pad_to`` adds copies of the first network up to that many (trained, never reported): on
    CUDA, cuBLAS picks its batched-gemm algorithm by the batch count, so a network's bits depend on K there,
    but not on the other networks once K is fixed (measured on an H100). ``fitness`` pads to the family's K
    on CUDA.
    """

    eval_batch: int | None = None  # samples per forward pass in ``evaluate`` (None: the whole split)

    def __init__(
        self,
        models: Sequence[nn.Module],
        masks: Sequence[Mask | None],
        mode: str = "forward",
        device: torch.device | str | None = None,
        pad_to: int | None = None,
        sparse: Sequence[bool] | None = None,
    ) -> None:
        check_mode(mode)
        if not models:
            raise ConfigError("a batch needs at least one network")
        if len(models) != len(masks):
            raise ConfigError(f"got {len(models)} networks but {len(masks)} masks")
        shapes, bias = self.architecture(models)
        stored = self.stored_positions(masks, mode, sparse) if sparse is not None and any(sparse) else None
        stored = stored or [None] * len(shapes)
        self.layout = Layout.of(shapes, bias, [None if s is None else len(s) for s in stored])
        self.mode = mode
        self.device = torch.device(device) if device is not None else default_device()
        k, size = len(models), self.layout.size
        theta, mask = torch.zeros(k, size), torch.zeros(k, size)
        for j, (model, m) in enumerate(zip(models, masks, strict=True)):
            if m is not None:
                m.check_fits(model)
            layers = list(prunable_layers(model).values())
            w_views = self.layout.weights(theta[j : j + 1])
            m_views = self.layout.weights(mask[j : j + 1])
            for name, layer, w, mw, positions in zip(
                prunable_layers(model), layers, w_views, m_views, stored, strict=True
            ):
                if positions is not None:  # live values only: all kept
                    w[0].copy_(layer.weight.detach().reshape(-1)[positions])
                    mw[0].fill_(1.0)
                    continue
                w[0].copy_(layer.weight.detach().reshape(w[0].shape))
                mw[0].copy_(m[name].reshape(mw[0].shape) if m is not None else torch.ones_like(mw[0]))
            biases = zip(
                layers,
                self.layout.biases(theta[j : j + 1]),
                self.layout.biases(mask[j : j + 1]),
                strict=True,
            )
            for layer, b, mb in biases:
                if b is not None:
                    b[0].copy_(layer.bias.detach())
                    mb[0].fill_(1.0)
        self.networks = k  # the first ``networks`` rows are reported; the rest pad to ``pad_to``
        if pad_to is not None and pad_to > k:
            theta = torch.cat([theta, theta[:1].expand(pad_to - k, size)])
            mask = torch.cat([mask, mask[:1].expand(pad_to - k, size)])
        self.theta, self.mask = theta.to(self.device), mask.to(self.device)
        self.stored = [s.to(self.device) if s is not None else None for s in stored]
        self.optimizer: FlatAdam | FlatSGD | None = None
        self.ready()

    @abstractmethod
    def architecture(self, models: Sequence[nn.Module]) -> tuple[list[tuple[int, ...]], bool]:
        """The weight shapes of the networks' prunable layers and whether they have biases; a one-line
        ``ModelError`` when the models are not of this batch's family or differ."""

    def stored_positions(
        self, masks: Sequence[Mask | None], mode: str, sparse: Sequence[bool]
    ) -> list[torch.Tensor | None]:
        """Per layer, the flat positions of the weights to store where ``sparse`` says (None: all)."""
        raise ConfigError(f"{type(self).__name__} has no sparse layers")

    @abstractmethod
    def ready(self) -> None:
        """What the family's batch needs once the buffers are on ``device``."""

    @property
    def k(self) -> int:
        return int(self.theta.shape[0])

    @abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[K, N, classes]`` logits of every network on the shared flat inputs ``x`` ``[N, features]``."""

    @abstractmethod
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One minibatch step of every network: gradients, then ``optimizer``'s update of ``theta``."""

    def write_back(self, models: Sequence[nn.Module]) -> None:
        """Copy each network's trained weights and biases into ``models`` (in place, as ``train`` leaves them)."""
        theta = self.theta.detach()
        for j, model in enumerate(models):
            layers = zip(
                prunable_layers(model).values(),
                self.layout.weights(theta[j : j + 1]),
                self.layout.biases(theta[j : j + 1]),
                self.stored,
                strict=True,
            )
            for layer, w, b, positions in layers:
                with torch.no_grad():
                    if positions is None:
                        layer.weight.copy_(w[0].view_as(layer.weight))
                    else:  # the live weights; the pruned ones keep their values, as in forward-mode ``train``
                        layer.weight.view(-1)[positions] = w[0].to(layer.weight.device)
                    if b is not None:
                        layer.bias.copy_(b[0])

    def trained_copies(self, models: Sequence[nn.Module]) -> list[nn.Module]:
        """Copies of ``models`` (one per network) holding the trained parameters; ``models`` are left alone."""
        copies = [copy.deepcopy(m) for m in models]
        self.write_back(copies)
        return copies

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        """(accuracy, mean cross-entropy) of each network over the split, ``eval_batch`` samples at a time, as
        ``training.evaluate`` computes them."""
        if self.eval_batch is None:
            logits = self.logits(x)
        else:
            logits = torch.cat([self.logits(part) for part in x.split(self.eval_batch)], dim=1)
        return [
            (float((logits[j].argmax(1) == y).float().mean()), float(F.cross_entropy(logits[j], y)))
            for j in range(self.networks)
        ]


def train_batch(
    pop: NetworkBatch,
    data: Dataset,
    training: TrainingConfig,
    *,
    seed: int = 0,
    inputs: torch.Tensor | None = None,
    early_bird: EarlyBird | None = None,
) -> list[TrainResult]:
    """Train every network of ``pop`` for ``training.steps`` minibatches of ``batch_indices(.., seed)``, then
    score each on the validation split. ``inputs`` (feature indices) makes the networks read only those
    columns (a compacted network's).

    With ``early_bird`` each network stops once its magnitude mask settles (``early_bird.py``): it is scored
    with its weights at that step and its ``TrainResult.steps`` is that step. The batch trains on while any
    of its networks does (a stopped network's later updates are discarded), and stops when all have."""
    steps, batch_size = training.steps, training.batch_size
    device = pop.device
    x, y = data.x_train.to(device), data.y_train.to(device)
    xv, yv = data.x_val.to(device), data.y_val.to(device)
    if inputs is not None:
        inputs = inputs.to(device)
        xv = xv[:, inputs]
    pop.optimizer = FLAT_OPTIMIZERS[training.optimizer](pop.theta.detach(), training.lr)
    watches = [EarlyBirdWatch(early_bird) for _ in range(pop.networks)] if early_bird else []
    stopped: dict[int, tuple[int, torch.Tensor]] = {}  # network → (its last step, its weights there)
    for step, idx in enumerate(batch_indices(len(y), batch_size, steps, seed), start=1):
        idx = idx.to(device)
        pop.train_step(x[idx] if inputs is None else x[idx[:, None], inputs], y[idx])
        if early_bird is not None and step % early_bird.every == 0 and step < steps:
            _watch(pop, watches, stopped, step, early_bird.strength)
            if len(stopped) == pop.networks:
                break
    if stopped:
        with torch.no_grad():
            for j, (_, theta) in stopped.items():
                pop.theta[j].copy_(theta)
    return [
        TrainResult(acc, loss, stopped[j][0] if j in stopped else steps)
        for j, (acc, loss) in enumerate(pop.evaluate(xv, yv))
    ]


def _watch(
    pop: NetworkBatch,
    watches: list[EarlyBirdWatch],
    stopped: dict[int, tuple[int, torch.Tensor]],
    step: int,
    strength: float,
) -> None:
    """One Early-Bird check of every network still training: those whose mask settled stop at ``step``."""
    theta, mask = pop.theta.detach(), pop.mask
    for j, watch in enumerate(watches):
        if j in stopped:
            continue
        weights = pop.layout.weights(theta[j : j + 1])
        kept = [m[0] > 0 for m in pop.layout.weights(mask[j : j + 1])]
        if watch.stop(magnitude_mask([w[0] for w in weights], kept, strength)):
            stopped[j] = (step, theta[j].clone())
