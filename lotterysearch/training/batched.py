"""Batched training: K masked copies of one MLP trained at once on the same minibatches.

Why: a search trains many small networks of one architecture, and one at a time a step of a small MLP costs
more in per-operation overhead (Python, dispatch, autograd) than in arithmetic. Stacking the K networks'
weights as ``[K, out, in]`` and running one batched matmul (``torch.bmm``) per layer pays that overhead once
for all K. Large networks gain nothing (the matmuls already dominate): ``networks_per_batch`` picks K from the
network's size.

The step is the single-network trainer's (``training.train``) written out by hand, with the same seeded batch
order (``batch_indices``) and the same optimizer arithmetic (``torch.optim.Adam``'s and ``SGD``'s update
formulas), so the weights agree with ``train`` to float rounding. Backpropagation through the MLP is explicit
(z_l = W_l h_{l-1} + b_l, h_l = relu(z_l); ∂L/∂W_l = δ_l h_{l-1}ᵀ, δ_{l-1} = W_lᵀ δ_l ⊙ [z_{l-1} > 0]), which
applies each masking mode's gradient rule directly (masks.py):

* ``forward``: forward with M⊙W, gradient M ⊙ δhᵀ;
* ``gradient``: forward with W, gradient M ⊙ δhᵀ;
* ``straight_through``: forward with M⊙W, gradient δhᵀ.

A network's numbers do not depend on K or on which other networks share its batch (checked bit for bit
in the tests, under one torch thread as in the evaluators): every matmul is a per-network gemm of the same
shape inside ``bmm``, each matrix in memory that starts at a multiple of ``ALIGN`` floats (MKL rounds by
alignment, see ``_bmm``); every reduction runs within one network; and all elementwise work (masking,
optimizer) runs on flat buffers in which every network's block, and every layer inside it, starts at a
multiple of ``ALIGN`` floats, so SIMD lanes and scalar tails fall on the same elements whatever K is. On this
machine the weights also equal ``train``'s bit for bit (tests assert 1e-6).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, check_mode
from lotterysearch.core.models import prunable_layers
from lotterysearch.errors import ConfigError, ModelError
from lotterysearch.settings import TrainingConfig
from lotterysearch.training.trainer import OPTIMIZERS, TrainResult, batch_indices, default_device

ALIGN = 64  # floats: each layer's block in the flat buffers starts at a multiple of this (256 bytes)

# torch says so once per process, on the first CSR tensor; the kernels used here are tested (test_batched).
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

# A single network's layer is trained in CSR form when at most this share of it is live and it is large
# enough for the sparse kernels' overhead to pay (benchmarks/fitness.py, LeNet-300-100 kernels).
CSR_BELOW = 0.1
CSR_MIN_SIZE = 20_000

# A batch grows until one step of it does about this much arithmetic (see ``networks_per_batch``).
BATCH_STEP_FLOPS = 128_000_000
MAX_NETWORKS_PER_BATCH = 16


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _aligned_empty(k: int, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``[k, rows, cols]`` tensor whose every matrix starts on ``ALIGN`` floats."""
    flat = torch.empty(k, _round_up(rows * cols), dtype=like.dtype, device=like.device)
    return flat[:, : rows * cols].view(k, rows, cols)


def _bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.bmm`` into ``out``, by default a fresh tensor whose every matrix starts on ``ALIGN`` floats.

    MKL's result for one matrix depends on where in memory its output starts (found here: an output
    block at an offset of 35 floats rounds differently from one at 0), so a packed ``[K, r, c]`` result
    would give network j different bits for different K. With aligned blocks it does not.
    """
    if out is None:
        out = _aligned_empty(a.shape[0], a.shape[1], b.shape[2], a)
    return torch.bmm(a, b, out=out)


@dataclass(frozen=True)
class Layout:
    """Where each layer's weight ``[out, in]`` and bias ``[out]`` live in a network's flat block.

    A sparse layer (``nnz[l]`` not None) keeps only its ``nnz`` live weights, in row-major (CSR) order.
    """

    widths: tuple[int, ...]
    bias: bool
    weight_offsets: tuple[int, ...]
    bias_offsets: tuple[int, ...]
    size: int  # floats per network, a multiple of ALIGN
    nnz: tuple[int | None, ...] = ()

    @classmethod
    def of(cls, widths: Sequence[int], bias: bool, nnz: Sequence[int | None] | None = None) -> Layout:
        widths = tuple(int(w) for w in widths)
        nnz = tuple(nnz) if nnz is not None else (None,) * (len(widths) - 1)
        w_off, b_off, at = [], [], 0
        for fan_in, fan_out, n in zip(widths[:-1], widths[1:], nnz, strict=True):
            w_off.append(at)
            at += _round_up(fan_out * fan_in if n is None else n)
            b_off.append(at)
            at += _round_up(fan_out) if bias else 0
        return cls(widths, bias, tuple(w_off), tuple(b_off), at, nnz)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [(o, i) for i, o in zip(self.widths, self.widths[1:], strict=False)]

    def weights(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views ``[K, out, in]`` of each layer's weights in ``flat`` ``[K, size]`` (``[K, nnz]`` if sparse)."""
        k = flat.shape[0]
        return [
            flat[:, o : o + out * fan_in].view(k, out, fan_in) if n is None else flat[:, o : o + n]
            for o, (out, fan_in), n in zip(self.weight_offsets, self.shapes, self.nnz, strict=True)
        ]

    def biases(self, flat: torch.Tensor) -> list[torch.Tensor | None]:
        """Views ``[K, out]`` of each layer's biases in ``flat`` (``None`` for a bias-free network)."""
        if not self.bias:
            return [None] * len(self.shapes)
        return [flat[:, o : o + out] for o, (out, _) in zip(self.bias_offsets, self.shapes, strict=True)]


def mlp_widths(model: nn.Module) -> tuple[tuple[int, ...], bool]:
    """Widths from input to output and whether the layers have biases (checks the layers chain and that
    the model is an MLP: a convnet is a one-line ``ModelError``, batching is written for matmuls)."""
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


def step_flops(widths: Sequence[int], batch_size: int) -> int:
    """Arithmetic of one training step of one network: 6·B·Σ in·out (forward 2, backward 4 per weight)."""
    return 6 * batch_size * sum(a * b for a, b in zip(widths, widths[1:], strict=False))


def networks_per_batch(widths: Sequence[int], batch_size: int) -> int:
    """How many networks of ``widths`` to train at once: batching pays while a step's arithmetic is small.

    A step of a small network costs more in per-operation overhead than in arithmetic; a batch of K
    pays that overhead once. So K grows until a step does about ``BATCH_STEP_FLOPS`` (a few ms on one
    core), at most ``MAX_NETWORKS_PER_BATCH``. Measured here (one thread per process, benchmarks/fitness.py):
    ``mlp:40-100-100-10`` at B = 128 (1.2e7 flops a step, K = 11) trains 1.5-2× the networks per second of
    K = 1, saturating from K ≈ 8; LeNet-300-100 (2e8 flops, K = 1) gains 10-20% from K = 2-4, within noise.
    """
    return int(
        max(1, min(MAX_NETWORKS_PER_BATCH, BATCH_STEP_FLOPS // max(1, step_flops(widths, batch_size))))
    )


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


# ---- optimizers on flat buffers ------------------------------------------------------------------
_TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


class _Adam:
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


class _SGD:
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


FLAT_OPTIMIZERS = {"adam": _Adam, "sgd": _SGD}
assert set(FLAT_OPTIMIZERS) == set(OPTIMIZERS), "every optimizer of training.OPTIMIZERS needs a flat twin"


# ---- the batch of networks ------------------------------------------------------------------------------
class NetworkBatch:
    """K networks of one MLP architecture as flat buffers: parameters, masks, gradients.

    ``theta`` is ``[K, layout.size]``; ``mask`` holds 1.0 for kept and 0.0 for pruned weights (1.0 on biases,
    which are never pruned, and 0.0 on padding).

    ``sparse`` (one network, ``forward`` mode) trains the chosen layers as CSR matrices of their live weights
    (``sparse_layers``): same function and gradients, fewer flops at low density, rounding differs.

    ``pad_to`` adds copies of the first network up to that many (trained, never reported): on CUDA, cuBLAS
    picks its batched-gemm algorithm by the batch count, so a network's bits depend on K there, but not on
    the other networks once K is fixed (measured on an H100). ``fitness`` pads to ``networks_per_batch`` on CUDA.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        masks: Sequence[Mask | None],
        mode: str = "forward",
        device: torch.device | str | None = None,
        sparse: Sequence[bool] | None = None,
        pad_to: int | None = None,
    ) -> None:
        check_mode(mode)
        if not models:
            raise ConfigError("a batch needs at least one network")
        if len(models) != len(masks):
            raise ConfigError(f"got {len(models)} networks but {len(masks)} masks")
        widths, bias = mlp_widths(models[0])
        for m in models[1:]:
            if mlp_widths(m) != (widths, bias):
                raise ModelError(f"batched networks differ: {mlp_widths(m)[0]} and {widths}")
        self.csr: list[_CSR | None] = [None] * (len(widths) - 1)
        if sparse is not None and any(sparse):
            if len(models) != 1 or masks[0] is None or mode != "forward":
                raise ConfigError("sparse layers need one network with a mask, trained in forward mode")
            self.csr = [_CSR(masks[0][n]) if s else None for n, s in zip(masks[0].names, sparse, strict=True)]
        nnz = [c.nnz if c is not None else None for c in self.csr]
        self.layout, self.mode = Layout.of(widths, bias, nnz), mode
        self.device = torch.device(device) if device is not None else default_device()
        k, size = len(models), self.layout.size
        self.theta = torch.zeros(k, size)
        self.mask = torch.zeros(k, size)
        for j, (model, mask) in enumerate(zip(models, masks, strict=True)):
            if mask is not None:
                mask.check_fits(model)
            layers = list(prunable_layers(model).values())
            w_views = self.layout.weights(self.theta[j : j + 1])
            m_views = self.layout.weights(self.mask[j : j + 1])
            for i, (layer, w, m) in enumerate(zip(layers, w_views, m_views, strict=True)):
                if self.csr[i] is not None:  # live values only: all kept
                    w[0].copy_(layer.weight.detach().reshape(-1)[self.csr[i].positions])
                    m[0].fill_(1.0)
                    continue
                w[0].copy_(layer.weight.detach())
                m[0].copy_(mask[mask.names[i]] if mask is not None else torch.ones_like(m[0]))
            for layer, b, mb in zip(
                layers,
                self.layout.biases(self.theta[j : j + 1]),
                self.layout.biases(self.mask[j : j + 1]),
                strict=True,
            ):
                if b is not None:
                    b[0].copy_(layer.bias.detach())
                    mb[0].fill_(1.0)
        self.networks = k  # the first ``networks`` rows are reported; the rest pad to ``pad_to``
        if pad_to is not None and pad_to > k:
            self.theta = torch.cat([self.theta, self.theta[:1].expand(pad_to - k, size)])
            self.mask = torch.cat([self.mask, self.mask[:1].expand(pad_to - k, size)])
        self.theta, self.mask = self.theta.to(self.device), self.mask.to(self.device)
        self.csr = [c.to(self.device) if c is not None else None for c in self.csr]
        self.grad = torch.zeros_like(self.theta)
        self.optimizer: _Adam | _SGD | None = None  # set by ``run``
        # the weights the forward pass uses: M⊙W, except in gradient mode (W)
        self._used = torch.zeros_like(self.theta) if mode != "gradient" else self.theta

    @property
    def k(self) -> int:
        return int(self.theta.shape[0])

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
        """One minibatch step of every network: forward, explicit backward, the optimizer ``run`` set."""
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
        delta = _aligned_empty(*z.shape, z).copy_(delta)
        g_weights, g_biases = self.layout.weights(self.grad), self.layout.biases(self.grad)
        masked_grad = self.mode != "straight_through"
        m_weights = self.layout.weights(self.mask)
        for i in range(last, -1, -1):
            csr = self.csr[i]
            if csr is None:
                _bmm(delta.transpose(1, 2), hs[i], out=g_weights[i])  # blocks of the flat buffer: aligned
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
                    delta = _bmm(delta, weights[i])
                else:
                    dh = _aligned_empty(1, delta.shape[1], csr.shape[1], delta)
                    dh[0].copy_(torch.sparse.mm(csr.transposed(weights[i][0]), delta[0].t()).t())
                    delta = dh
                delta.mul_(hs[i] > 0)
        self.optimizer.step(self.theta, self.grad)

    def _layer(self, i: int, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """h Wᵀ for layer ``i``: a batched matmul, or a CSR product for a sparse layer."""
        csr = self.csr[i]
        if csr is None:
            return _bmm(h, w.transpose(1, 2))
        z = _aligned_empty(1, h.shape[1], csr.shape[0], h)
        z[0].copy_(torch.sparse.mm(csr.matrix(w[0]), h[0].t()).t())
        return z

    def write_back(self, models: Sequence[nn.Module]) -> None:
        """Copy each network's trained weights and biases into ``models`` (in place, as ``train`` leaves them)."""
        theta = self.theta.detach()
        for j, model in enumerate(models):
            layers = list(prunable_layers(model).values())
            for layer, w, b, csr in zip(
                layers,
                self.layout.weights(theta[j : j + 1]),
                self.layout.biases(theta[j : j + 1]),
                self.csr,
                strict=True,
            ):
                with torch.no_grad():
                    if csr is None:
                        layer.weight.copy_(w[0])
                    else:  # the live weights; the pruned ones keep their values, as in forward-mode ``train``
                        layer.weight.view(-1)[csr.positions] = w[0].to(layer.weight.device)
                    if b is not None:
                        layer.bias.copy_(b[0])

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        """Full-batch (accuracy, mean cross-entropy) of each network, as ``training.evaluate`` computes them."""
        logits = self.logits(x)
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
) -> list[TrainResult]:
    """Train every network of ``pop`` for ``training.steps`` minibatches of ``batch_indices(.., seed)``, then
    score each on the validation split. ``inputs`` (feature indices) makes the networks read only those
    columns."""
    steps, batch_size = training.steps, training.batch_size
    device = pop.device
    x, y = data.x_train.to(device), data.y_train.to(device)
    xv, yv = data.x_val.to(device), data.y_val.to(device)
    if inputs is not None:
        inputs = inputs.to(device)
        xv = xv[:, inputs]
    pop.optimizer = FLAT_OPTIMIZERS[training.optimizer](pop.theta, training.lr)
    for idx in batch_indices(len(y), batch_size, steps, seed):
        idx = idx.to(device)
        pop.train_step(x[idx] if inputs is None else x[idx[:, None], inputs], y[idx])
    return [TrainResult(acc, loss, steps) for acc, loss in pop.evaluate(xv, yv)]


def train_networks(
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
    """Train ``models[j]`` with ``masks[j]`` for every j at once, in place: what ``train`` does one by one.
    (``pad_to``: see ``NetworkBatch``.)"""
    pop = NetworkBatch(models, masks, mode, device, pad_to=pad_to)
    results = train_batch(pop, data, training, seed=seed)
    pop.write_back(models)
    return results
