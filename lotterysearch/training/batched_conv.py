"""The convnet family's batch: K masked copies of one convnet trained at once on the same minibatches.

Stacking the networks as grouped convolutions (``groups = K``) does not help on CPU: oneDNN's grouped
kernels cost as much per network as K separate convolutions (measured here: 85 ms a step for K = 8
MNIST-1D CNNs, 8.9 ms for one). So each convolution is written as a matrix product, as the MLP family's
layers are (``batched.py`` holds what the families share):

* im2col: the patches of the activations ``[K, C, N, *positions]`` (channel-major across the batch) become
  columns ``[K, C·kernel, N·positions]``, one strided copy per kernel offset (the first layer's once for all
  K: the input is shared), and the convolution is one batched matmul ``[K, out, C·kernel] @ columns`` for
  all K networks (``torch.bmm``); its backward (col2im) is one strided accumulation per offset;
* max-pooling and ReLU act on the ``[K·C, N, *positions]`` view; the flatten gives each network its
  ``[N, C·HW]`` features channel-major, as ``ConvNet`` flattens, and the fully connected head is one batched
  matmul per layer.

The loss is the sum of the K networks' mean cross-entropies, so autograd gives each network exactly its own
loss's gradients. Masking is ``masks.apply_mask`` on the stacked weights (each mode's value and gradient
rule, elementwise), and the optimizer is ``batched.py``'s flat-buffer Adam/SGD.

A network's numbers do not depend on K or on which other networks share its batch (checked bit for bit in
the tests), for ``batched.py``'s reasons: every product goes through ``bmm_aligned``, in backward too. They
equal ``training.train``'s to float rounding (a convolution kernel sums in another order): within 1e-6 on
all but a few weights after 15 steps in the tests, within 1e-4 on all (a gradient below Adam's ε turns a
rounding difference into one lr/ε times larger).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core.masks import apply_mask
from lotterysearch.core.models import ConvNet, prunable_layers
from lotterysearch.errors import ModelError
from lotterysearch.training.batched import ALIGN, NetworkBatch, aligned_empty, bmm_aligned
from lotterysearch.training.trainer import CONV_EVAL_BATCH


class ConvBatch(NetworkBatch):
    """K networks of one convnet architecture as flat buffers (``NetworkBatch``), trained by autograd
    through im2col and batched matmuls; evaluated ``CONV_EVAL_BATCH`` samples at a time, as
    ``training.evaluate`` does."""

    eval_batch = CONV_EVAL_BATCH

    def architecture(self, models: Sequence[nn.Module]) -> tuple[list[tuple[int, ...]], bool]:
        first = models[0]
        if not isinstance(first, ConvNet):
            raise ModelError(f"convnet batches take convnets; got {type(first).__name__}")
        self.template = first
        layers = prunable_layers(first)
        self.names = list(layers)
        shapes = [tuple(layer.weight.shape) for layer in layers.values()]
        for m in models[1:]:
            if [tuple(layer.weight.shape) for layer in prunable_layers(m).values()] != shapes or (
                getattr(m, "input_shape", None) != first.input_shape or m.pooled != first.pooled
            ):
                raise ModelError("batched convnets differ in architecture")
        self.geometry = [  # (stride, padding) of each convolution
            (layer.stride, layer.padding) for layer in layers.values() if not isinstance(layer, nn.Linear)
        ]
        return shapes, layers[self.names[0]].bias is not None

    def ready(self) -> None:
        self.theta.requires_grad_(True)  # trained by autograd

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[K, N, classes]`` logits of every network on the shared flat inputs ``x`` ``[N, C·H·W]``."""
        k, net = self.k, self.template
        used = apply_mask(self.theta, self.mask, self.mode)
        # activations channel-major across the batch: [K, C, N, *spatial] (the input: one copy for all K)
        h = x.reshape(len(x), *net.input_shape).transpose(0, 1).unsqueeze(0)
        flat: torch.Tensor | None = None  # [K, N, features] once past the flatten
        last = len(self.names) - 1
        layers = zip(
            self.names, self.layout.shapes, self.layout.weights(used), self.layout.biases(used), strict=True
        )
        for i, (name, shape, w, b) in enumerate(layers):
            out = shape[0]
            b = (
                b.unsqueeze(2) if b is not None else None
            )  # w: [K, out, in·kernel], aligned blocks of the buffer
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


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """``[K, r, c]`` ``t`` with every matrix starting on ``ALIGN`` floats (see ``batched.bmm_aligned``): ``t`` itself
    when it is contiguous with blocks of a multiple of ``ALIGN`` (torch aligns its allocations), else a copy."""
    if t.is_contiguous() and t.shape[1] * t.shape[2] % ALIGN == 0 and t.storage_offset() % ALIGN == 0:
        return t
    return aligned_empty(*t.shape, t).copy_(t)


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
        cols = aligned_empty(k, c * math.prod(kernel), n * math.prod(spatial), h)
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
    """a @ b per network, every product written to aligned blocks (``batched.bmm_aligned``), in backward too."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(a, b)
        return bmm_aligned(a, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # noqa: ANN001
        a, b = ctx.saved_tensors
        grad = _aligned(grad)
        grad_a = bmm_aligned(grad, b.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_b = bmm_aligned(a.transpose(1, 2), grad) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b
