"""Batched training of convnets: K masked copies of one convnet trained at once on the same minibatches.

Why: a search trains many small convnets of one architecture (the MNIST-1D CNN has 5 210 weights), and
one at a time a step costs more in per-operation overhead (Python, dispatch, autograd) than in arithmetic.
Stacking the networks as grouped convolutions (``groups = K``) does not help on CPU: oneDNN's grouped
kernels cost as much per network as K separate convolutions (measured here: 85 ms a step for K = 8
MNIST-1D CNNs, 8.9 ms for one). So each convolution is written as a matrix product, as in ``batched.py``:

* im2col: the patches of the activations ``[K, C, N, *positions]`` (channel-major across the batch) become
  columns ``[K, C·kernel, N·positions]``, one strided copy per kernel offset (the first layer's once for all
  K: the input is shared), and the convolution is one batched matmul ``[K, out, C·kernel] @ columns`` for
  all K networks (``torch.bmm``); its backward (col2im) is one strided accumulation per offset;
* max-pooling and ReLU act on the ``[K·C, N, *positions]`` view; the flatten gives each network its
  ``[N, C·HW]`` features channel-major, as ``ConvNet`` flattens, and the fully connected head is one batched
  matmul per layer.

The loss is the sum of the K networks' mean cross-entropies, so autograd gives each network exactly its own
loss's gradients. Masking is ``masks.apply_mask`` on the stacked weights (each mode's value and gradient
rule, elementwise), and the optimizer is the flat-buffer Adam/SGD of ``batched.py``, the single-tensor
update of ``torch.optim`` applied elementwise.

A network's numbers do not depend on K or on which other networks share its batch (checked bit for bit in
the tests, under one torch thread as in the evaluators), for ``batched.py``'s reasons: every product is a
per-network gemm inside ``bmm`` written to a block that starts on ``ALIGN`` floats (``batched._bmm``), the
networks share no sums, and every layer of every network starts on ``ALIGN`` floats in the flat buffers, so
SIMD lanes and scalar tails fall on the same elements whatever K is (on CUDA, as there, K is fixed with
``pad_to``). They equal ``training.train``'s to float rounding (a convolution kernel sums in another order):
within 1e-6 on all but a few weights after 15 steps in the tests, within 1e-4 on all (a gradient below
Adam's ε turns a rounding difference into one lr/ε times larger).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, apply_mask, check_mode
from lotterysearch.core.models import ConvNet, prunable_layers
from lotterysearch.errors import ConfigError, ModelError
from lotterysearch.settings import TrainingConfig
from lotterysearch.training.batched import ALIGN, FLAT_OPTIMIZERS, _aligned_empty, _bmm, _round_up
from lotterysearch.training.compaction import conv_work
from lotterysearch.training.trainer import CONV_EVAL_BATCH, TrainResult, batch_indices, default_device

# A batch of convnets grows until one step does about this much arithmetic, to at most this many networks;
# below the least, the networks train alone. Measured on one thread, networks per CPU-second against a loop
# over ``train`` (40 steps, 10% masks): the MNIST-1D CNN (2.4e7 flops a step) 1.05x at K = 1, 1.8x at K = 4,
# 2.4x at K = 8 (benchmarks/fitness.py: no better at 12-16); conv:8x8x1:8-8-M:32-10 (3.5e7) 0.5x, 0.8x,
# 1.07x; Conv-2 on 8x8 inputs (2e9) 0.4-0.5x at K = 1-4 (torch's own convolutions win there).
CONV_BATCH_STEP_FLOPS = 256_000_000
MAX_CONVNETS_PER_BATCH = 8
MIN_CONVNETS_PER_BATCH = 8


def convnets_per_batch(model: nn.Module, batch_size: int) -> int:
    """How many convnets like ``model`` to train at once: K grows until a step does about
    ``CONV_BATCH_STEP_FLOPS``, at most ``MAX_CONVNETS_PER_BATCH``; 1 (train alone, by ``training.train``) when
    that is below ``MIN_CONVNETS_PER_BATCH``."""
    flops = 6 * batch_size * conv_work(model)
    k = int(min(MAX_CONVNETS_PER_BATCH, CONV_BATCH_STEP_FLOPS // max(1, flops)))
    return k if k >= MIN_CONVNETS_PER_BATCH else 1


class ConvBatch:
    """K networks of one convnet architecture: parameters and masks as flat ``[K, size]`` buffers.

    ``pad_to`` adds copies of the first network up to that many (trained, never reported), as
    ``batched.NetworkBatch`` does.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        masks: Sequence[Mask | None],
        mode: str = "forward",
        device: torch.device | str | None = None,
        pad_to: int | None = None,
    ) -> None:
        check_mode(mode)
        if not models:
            raise ConfigError("a batch needs at least one network")
        if len(models) != len(masks):
            raise ConfigError(f"got {len(models)} networks but {len(masks)} masks")
        first = models[0]
        if not isinstance(first, ConvNet):
            raise ModelError(f"convnet batches take convnets; got {type(first).__name__}")
        self.template = first
        layers = prunable_layers(first)
        self.names = list(layers)
        self.shapes = [tuple(layer.weight.shape) for layer in layers.values()]
        self.bias = layers[self.names[0]].bias is not None
        for m in models[1:]:
            if [tuple(layer.weight.shape) for layer in prunable_layers(m).values()] != self.shapes or (
                getattr(m, "input_shape", None) != first.input_shape or m.pooled != first.pooled
            ):
                raise ModelError("batched convnets differ in architecture")
        offsets, at = [], 0
        for shape in self.shapes:
            w_at = at
            at += _round_up(math.prod(shape))
            b_at = at
            at += _round_up(shape[0]) if self.bias else 0
            offsets.append((w_at, b_at))
        self.offsets, self.size, self.mode = offsets, at, mode
        self.geometry = [  # (stride, padding) of each convolution
            (layer.stride, layer.padding) for layer in layers.values() if not isinstance(layer, nn.Linear)
        ]
        k = len(models)
        theta, mask = torch.zeros(k, at), torch.zeros(k, at)
        for j, (model, m) in enumerate(zip(models, masks, strict=True)):
            if m is not None:
                m.check_fits(model)
            for name, layer, (w_at, b_at) in zip(
                self.names, prunable_layers(model).values(), offsets, strict=True
            ):
                n = layer.weight.numel()
                theta[j, w_at : w_at + n] = layer.weight.detach().reshape(-1)
                mask[j, w_at : w_at + n] = m[name].reshape(-1).float() if m is not None else 1.0
                if self.bias:
                    theta[j, b_at : b_at + layer.bias.numel()] = layer.bias.detach()
                    mask[j, b_at : b_at + layer.bias.numel()] = 1.0
        self.networks = k  # the first ``networks`` rows are reported; the rest pad to ``pad_to``
        if pad_to is not None and pad_to > k:
            theta = torch.cat([theta, theta[:1].expand(pad_to - k, at)])
            mask = torch.cat([mask, mask[:1].expand(pad_to - k, at)])
        self.device = torch.device(device) if device is not None else default_device()
        self.theta = theta.to(self.device).requires_grad_(True)
        self.mask = mask.to(self.device)
        self.optimizer = None  # set by ``train_conv_batch``

    @property
    def k(self) -> int:
        return int(self.theta.shape[0])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[K, N, classes]`` logits of every network on the shared flat inputs ``x`` ``[N, C·H·W]``."""
        k, net = self.k, self.template
        used = apply_mask(self.theta, self.mask, self.mode)
        # activations channel-major across the batch: [K, C, N, *spatial] (the input: one copy for all K)
        h = x.reshape(len(x), *net.input_shape).transpose(0, 1).unsqueeze(0)
        flat: torch.Tensor | None = None  # [K, N, features] once past the flatten
        last = len(self.names) - 1
        for i, (name, shape, (w_at, b_at)) in enumerate(
            zip(self.names, self.shapes, self.offsets, strict=True)
        ):
            out, fan_in = shape[0], math.prod(shape[1:])
            w = used[:, w_at : w_at + out * fan_in].view(k, out, fan_in)  # aligned blocks of the flat buffer
            b = used[:, b_at : b_at + out].unsqueeze(2) if self.bias else None
            if len(shape) > 2:
                stride, padding = self.geometry[i]
                cols, spatial = _im2col(h, shape[2:], stride, padding)
                z = _Bmm.apply(w, cols.expand(k, *cols.shape[1:]))  # [K, out, N·positions]
                z = (torch.relu(z) if b is None else (z + b).relu_()).view(k, out, len(x), *spatial)
                if name in net.pooled:
                    pool = F.max_pool2d if len(spatial) == 2 else F.max_pool1d
                    z = pool(z.view(k * out, len(x), *spatial), 2)
                    z = z.view(k, out, *z.shape[1:])
                h = z
                continue
            if flat is None:  # the flatten: each sample's features channel-major, as ``ConvNet`` flattens
                flat = _aligned(h.transpose(1, 2).reshape(k, len(x), -1))
            flat = _Bmm.apply(flat, w.transpose(1, 2))
            if b is not None:
                flat = flat + b.transpose(1, 2)
            if i < last:
                flat = flat.relu_() if b is not None else torch.relu(flat)
        return flat

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One minibatch step of every network: the summed losses' gradients, then the optimizer."""
        z = self.logits(x)
        loss = F.cross_entropy(z.reshape(-1, z.shape[-1]), y.repeat(self.k), reduction="sum") / len(y)
        self.theta.grad = None
        loss.backward()
        with torch.no_grad():
            self.optimizer.step(self.theta.data, self.theta.grad)

    def write_back(self, models: Sequence[nn.Module]) -> None:
        """Copy each network's trained weights and biases into ``models`` (in place, as ``train`` leaves them)."""
        theta = self.theta.detach()
        for j, model in enumerate(models):
            for layer, shape, (w_at, b_at) in zip(
                prunable_layers(model).values(), self.shapes, self.offsets, strict=True
            ):
                with torch.no_grad():
                    layer.weight.copy_(theta[j, w_at : w_at + math.prod(shape)].reshape(shape))
                    if self.bias:
                        layer.bias.copy_(theta[j, b_at : b_at + shape[0]])

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        """(accuracy, mean cross-entropy) of each network over the split, ``CONV_EVAL_BATCH`` samples at a time
        as ``training.evaluate`` does."""
        logits = torch.cat([self.logits(part) for part in x.split(CONV_EVAL_BATCH)], dim=1)
        return [
            (float((logits[j].argmax(1) == y).float().mean()), float(F.cross_entropy(logits[j], y)))
            for j in range(self.networks)
        ]


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """``[K, r, c]`` ``t`` with every matrix starting on ``ALIGN`` floats (see ``batched._bmm``): ``t`` itself
    when it is contiguous with blocks of a multiple of ``ALIGN`` (torch aligns its allocations), else a copy."""
    if t.is_contiguous() and t.shape[1] * t.shape[2] % ALIGN == 0 and t.storage_offset() % ALIGN == 0:
        return t
    return _aligned_empty(*t.shape, t).copy_(t)


def _im2col(
    h: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> tuple[torch.Tensor, list[int]]:
    """The patches of ``h`` ``[K, C, N, *spatial]`` as ``[K, C·kernel, N·positions]`` columns (the column
    index runs over C, then the kernel offsets, as a weight ``[out, C, *kernel]`` flattens), and the output
    positions per spatial dimension."""
    spatial = [
        (s + 2 * p - k) // st + 1 for s, k, st, p in zip(h.shape[3:], kernel, stride, padding, strict=True)
    ]
    return _Im2col.apply(h, tuple(kernel), tuple(stride), tuple(padding), tuple(spatial)), spatial


def _offsets(kernel: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every kernel offset, in the order a weight's kernel dimensions flatten (the last fastest)."""
    grid = torch.cartesian_prod(*(torch.arange(k) for k in kernel)).reshape(-1, len(kernel))
    return [tuple(int(v) for v in row) for row in grid]


def _window(offset: tuple[int, ...], stride: tuple[int, ...], spatial: tuple[int, ...]) -> tuple[slice, ...]:
    """The padded input's positions that kernel ``offset`` reads, one per output position."""
    return tuple(slice(o, o + st * (n - 1) + 1, st) for o, st, n in zip(offset, stride, spatial, strict=True))


class _Im2col(torch.autograd.Function):
    """im2col, with a backward (col2im) of one strided accumulation per kernel offset: torch's generic
    ``unfold`` backward is several times slower here."""

    @staticmethod
    def forward(ctx, h, kernel, stride, padding, spatial):  # noqa: ANN001, ANN205
        dims = len(kernel)
        pad = [p for d in reversed(range(dims)) for p in (padding[d], padding[d])]
        padded = F.pad(h, pad) if any(pad) else h
        k, c, n = h.shape[:3]
        cols = _aligned_empty(k, c * math.prod(kernel), n * math.prod(spatial), h)
        view = cols.view(k, c, -1, n, *spatial)
        for j, offset in enumerate(_offsets(kernel)):
            view[:, :, j].copy_(padded[(slice(None),) * 3 + _window(offset, stride, spatial)])
        ctx.geometry = (tuple(h.shape), tuple(padded.shape), kernel, stride, padding, spatial)
        return cols

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        shape, padded_shape, kernel, stride, padding, spatial = ctx.geometry
        k, c, n = shape[:3]
        padded = grad.new_zeros(padded_shape)
        view = grad.reshape(k, c, -1, n, *spatial)
        for j, offset in enumerate(_offsets(kernel)):
            padded[(slice(None),) * 3 + _window(offset, stride, spatial)] += view[:, :, j]
        inner = tuple(slice(p, p + s) for p, s in zip(padding, shape[3:], strict=True))
        return padded[(slice(None),) * 3 + inner], None, None, None, None


class _Bmm(torch.autograd.Function):
    """a @ b per network, every product written to aligned blocks (``batched._bmm``), in backward too."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(a, b)
        return _bmm(a, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # noqa: ANN001
        a, b = ctx.saved_tensors
        grad = _aligned(grad)
        grad_a = _bmm(grad, b.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_b = _bmm(a.transpose(1, 2), grad) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def train_conv_batch(
    pop: ConvBatch, data: Dataset, training: TrainingConfig, *, seed: int = 0
) -> list[TrainResult]:
    """Train every network of ``pop`` for ``training.steps`` minibatches of ``batch_indices(.., seed)``, then
    score each on the validation split."""
    device = pop.device
    x, y = data.x_train.to(device), data.y_train.to(device)
    xv, yv = data.x_val.to(device), data.y_val.to(device)
    pop.optimizer = FLAT_OPTIMIZERS[training.optimizer](pop.theta.detach(), training.lr)
    for idx in batch_indices(len(y), training.batch_size, training.steps, seed):
        idx = idx.to(device)
        pop.train_step(x[idx], y[idx])
    return [TrainResult(acc, loss, training.steps) for acc, loss in pop.evaluate(xv, yv)]


def train_convnets(
    models: Sequence[nn.Module],
    masks: Sequence[Mask | None],
    data: Dataset,
    training: TrainingConfig,
    *,
    mode: str = "forward",
    seed: int = 0,
    device: torch.device | str | None = None,
    pad_to: int | None = None,
) -> list[TrainResult]:
    """Train ``models[j]`` with ``masks[j]`` for every j at once, in place: what ``train`` does one by one."""
    pop = ConvBatch(models, masks, mode, device, pad_to=pad_to)
    results = train_conv_batch(pop, data, training, seed=seed)
    pop.write_back(models)
    return results
