"""The MLP family's batch: K masked copies of one MLP, every layer one batched matmul (``batched.py``).

The step is the single-network trainer's (``training.train``) written out by hand, with the same seeded batch
order and the same optimizer arithmetic, so the weights agree with ``train`` to float rounding (on this
machine bit for bit; the tests assert 1e-6). Backpropagation through the MLP is explicit
(z_l = W_l h_{l-1} + b_l, h_l = relu(z_l); ∂L/∂W_l = δ_l h_{l-1}ᵀ, δ_{l-1} = W_lᵀ δ_l ⊙ [z_{l-1} > 0]), which
applies each masking mode's gradient rule directly (masks.py):

* ``forward``: forward with M⊙W, gradient M ⊙ δhᵀ;
* ``gradient``: forward with W, gradient M ⊙ δhᵀ;
* ``straight_through``: forward with M⊙W, gradient δhᵀ.

A network trained alone may keep its sparsest large layers as CSR matrices of their live weights
(``sparse_layers``): the same function and gradients with fewer flops at low density, another rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from lotterysearch.core.masks import Mask
from lotterysearch.core.models import prunable_layers
from lotterysearch.errors import ConfigError, ModelError
from lotterysearch.training.batched import NetworkBatch, aligned_empty, bmm_aligned

# torch says so once per process, on the first CSR tensor; the kernels used here are tested (test_batched).
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

# A single network's layer is trained in CSR form when at most this share of it is live and it is large
# enough for the sparse kernels' overhead to pay (benchmarks/fitness.py, LeNet-300-100 kernels).
CSR_BELOW = 0.1
CSR_MIN_SIZE = 20_000


def mlp_widths(model: nn.Module) -> tuple[tuple[int, ...], bool]:
    """Widths from input to output and whether the layers have biases (checks the layers chain and that
    the model is an MLP: a convnet is a one-line ``ModelError``, this batch is written for matmuls)."""
    named = prunable_layers(model)
    for name, layer in named.items():
        if layer.weight.dim() != 2:
            raise ModelError(
                f"batched training takes MLPs only; layer '{name}' is a convolution "
                f"(weight {list(layer.weight.shape)})"
            )
    layers = list(named.values())
    widths = [int(layers[0].weight.shape[1])]
    for layer in layers:
        out, fan_in = layer.weight.shape
        if fan_in != widths[-1]:
            raise ModelError(f"layer widths do not chain: {widths[-1]} features into a layer taking {fan_in}")
        widths.append(int(out))
    biases = {layer.bias is not None for layer in layers}
    if len(biases) != 1:
        raise ModelError("batched training needs every layer with a bias or none")
    return tuple(widths), biases.pop()


def sparse_layers(mask: Mask) -> list[bool]:
    """Which layers of ``mask`` to train as CSR matrices (``torch.sparse.mm``) rather than dense masked ones."""
    return [t.numel() >= CSR_MIN_SIZE and int(t.sum()) <= CSR_BELOW * t.numel() for _, t in mask.items()]


def _crow(rows: torch.Tensor, n: int) -> torch.Tensor:
    """CSR row pointers of sorted row indices: where each of the ``n`` rows starts, and the end."""
    return torch.cat([torch.zeros(1, dtype=torch.int64), torch.bincount(rows, minlength=n).cumsum(0)])


class _CSR:
    """The fixed sparsity pattern of one layer: CSR indices of W and of Wᵀ, and where each value sits."""

    def __init__(self, mask: torch.Tensor) -> None:
        out, fan_in = mask.shape
        rows, cols = mask.nonzero(as_tuple=True)  # row-major: the CSR order
        self.shape, self.nnz = (out, fan_in), len(rows)
        self.positions = rows * fan_in + cols
        self.crow = _crow(rows, out)
        self.col = cols
        self.perm = torch.argsort(cols * out + rows)  # Wᵀ's values in its row-major order
        self.crow_t = _crow(cols[self.perm], fan_in)
        self.col_t = rows[self.perm]

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.crow, self.col, values, self.shape, check_invariants=False)

    def transposed(self, values: torch.Tensor) -> torch.Tensor:
        shape = (self.shape[1], self.shape[0])
        return torch.sparse_csr_tensor(
            self.crow_t, self.col_t, values[self.perm], shape, check_invariants=False
        )

    def to(self, device: torch.device) -> _CSR:
        for name in ("positions", "crow", "col", "perm", "crow_t", "col_t"):
            setattr(self, name, getattr(self, name).to(device))
        return self


class MLPBatch(NetworkBatch):
    """K networks of one MLP architecture as flat buffers (``NetworkBatch``), with an explicit backward.

    ``sparse`` (one network, ``forward`` mode) trains the chosen layers as CSR matrices of their live weights
    (``sparse_layers``): same function and gradients, fewer flops at low density, rounding differs.
    """

    csr: list[_CSR | None]

    def architecture(self, models: Sequence[nn.Module]) -> tuple[list[tuple[int, ...]], bool]:
        widths, bias = mlp_widths(models[0])
        for m in models[1:]:
            if mlp_widths(m) != (widths, bias):
                raise ModelError(f"batched networks differ: {mlp_widths(m)[0]} and {widths}")
        self.csr = [None] * (len(widths) - 1)
        return [(o, i) for i, o in zip(widths, widths[1:], strict=False)], bias

    def stored_positions(
        self, masks: Sequence[Mask | None], mode: str, sparse: Sequence[bool]
    ) -> list[torch.Tensor | None]:
        if len(masks) != 1 or masks[0] is None or mode != "forward":
            raise ConfigError("sparse layers need one network with a mask, trained in forward mode")
        self.csr = [_CSR(masks[0][n]) if s else None for n, s in zip(masks[0].names, sparse, strict=True)]
        return [c.positions if c is not None else None for c in self.csr]

    def ready(self) -> None:
        self.csr = [c.to(self.device) if c is not None else None for c in self.csr]
        self.grad = torch.zeros_like(self.theta)
        # the weights the forward pass uses: M⊙W, except in gradient mode (W)
        self._used = torch.zeros_like(self.theta) if self.mode != "gradient" else self.theta

    def _forward_weights(self) -> list[torch.Tensor]:
        if self.mode != "gradient":
            torch.mul(self.theta, self.mask, out=self._used)
        return self.layout.weights(self._used)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[K, N, classes]`` logits of every network on the shared inputs ``x`` ``[N, features]``."""
        weights = self._forward_weights()
        h = x.expand(self.k, *x.shape)
        for i, (w, b) in enumerate(zip(weights, self.layout.biases(self.theta), strict=True)):
            h = self._layer(i, h, w)
            if b is not None:
                h.add_(b.unsqueeze(1))
            if i < len(weights) - 1:
                h.relu_()
        return h

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One minibatch step of every network: forward, explicit backward, the optimizer ``train_batch`` set."""
        weights = self._forward_weights()
        biases = self.layout.biases(self.theta)
        hs = [x.expand(self.k, *x.shape)]  # activations h_0 .. h_{L-1}
        last = len(weights) - 1
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            z = self._layer(i, hs[-1], w)
            if b is not None:
                z.add_(b.unsqueeze(1))
            if i < last:
                hs.append(z.relu_())  # z is not needed again: [z > 0] == [relu(z) > 0]
        # δ_L of the mean cross-entropy, (softmax(z) - onehot(y)) / B, by autograd's own two kernels (the
        # backward of nll_loss, then of log_softmax) so that it equals ``train``'s bit for bit.
        nll_grad = torch.zeros_like(z)
        nll_grad[:, torch.arange(len(y), device=y.device), y] = -1.0 / len(y)
        delta = torch.ops.aten._log_softmax_backward_data(nll_grad, torch.log_softmax(z, -1), -1, z.dtype)
        delta = aligned_empty(*z.shape, z).copy_(delta)
        g_weights, g_biases = self.layout.weights(self.grad), self.layout.biases(self.grad)
        masked_grad = self.mode != "straight_through"
        m_weights = self.layout.weights(self.mask)
        for i in range(last, -1, -1):
            csr = self.csr[i]
            if csr is None:
                bmm_aligned(delta.transpose(1, 2), hs[i], out=g_weights[i])  # blocks of the flat buffer
                if masked_grad:
                    g_weights[i].mul_(m_weights[i])
            else:  # the gradient at the live weights only: (δ hᵀ) sampled at the pattern
                at = torch.sparse.sampled_addmm(
                    csr.matrix(weights[i][0]), delta[0].t().contiguous(), hs[i][0], beta=0.0
                )
                g_weights[i][0].copy_(at.values())
            if g_biases[i] is not None:
                g_biases[i].copy_(delta.sum(dim=1))
            if i > 0:
                if csr is None:
                    delta = bmm_aligned(delta, weights[i])
                else:
                    dh = aligned_empty(1, delta.shape[1], csr.shape[1], delta)
                    dh[0].copy_(torch.sparse.mm(csr.transposed(weights[i][0]), delta[0].t()).t())
                    delta = dh
                delta.mul_(hs[i] > 0)
        self.optimizer.step(self.theta, self.grad)

    def _layer(self, i: int, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """h Wᵀ for layer ``i``: a batched matmul, or a CSR product for a sparse layer."""
        csr = self.csr[i]
        if csr is None:
            return bmm_aligned(h, w.transpose(1, 2))
        z = aligned_empty(1, h.shape[1], csr.shape[0], h)
        z[0].copy_(torch.sparse.mm(csr.matrix(w[0]), h[0].t()).t())
        return z
