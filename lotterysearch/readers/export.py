"""Export a ticket as a model that is smaller and faster, and runs without lotterysearch.

A masked network still multiplies every pruned zero, so at 5% of its weights it is neither smaller nor
faster. Exact compaction (``compaction``) removes the hidden neurons and channels that cannot reach an
output, and what is left of each layer is a smaller dense matrix or, where few of its entries live, a CSR
matrix. The exported network is a ``torch.nn.Sequential`` of torch's own layers (plus two small ones of
this module), written in a format whose file carries its code:

* ``compact`` (``.pt``): the compacted network, dense layers, as TorchScript; load it with
  ``torch.jit.load(path)``.
* ``sparse`` (``.pt``): the compacted network with its fully connected layers written as a bitmap of the
  live weights plus their values (``PackedLinear``: the smallest file) and computed, once loaded, as CSR
  matrices (``torch.sparse.mm``) where ``sparse_layers`` says CSR beats dense, else as dense ones.
  TorchScript, because ``torch.export`` can neither carry sparse tensors yet (torch 2.13 raises on
  ``aten._sparse_addmm``) nor run code on load; load it with ``torch.jit.load(path)``.
* ``program`` (``.pt2``): the compacted network as a ``torch.export`` program, the format torch keeps
  developing (TorchScript is deprecated), for ``torch.compile`` and AOTInductor; load it with
  ``torch.export.load(path).module()``, whose checks of every call's inputs cost about a millisecond here
  (``lotterysearch bench``).
* ``onnx`` (``.onnx``): the compacted network for onnxruntime and other ONNX runtimes.
* ``mask`` (``.npz``): the mask alone (``Mask.save``), as ``lotterysearch train --mask`` reads it.

Every model file is read back after writing, as a user would (``torch.export.load``, ``torch.jit.load``,
an ``onnxruntime`` session), and its outputs on a probe batch are compared with the masked network's
(``masks.masked_call``): an export that differs beyond float rounding is an error, not a file.

Weights: ``init`` is the ticket itself, θ₀ of the mask's own init (``confirmation.own_init``; an IMP run
that rewinds to step k: the weights after its k dense steps). The store keeps no exact trained weights (a
search keeps float16 ones of a class's representative, for its magnitude mutation only), so ``trained``
trains the mask from that init under the run's protocol: an IMP run's ``[training]`` (as its rounds do), a
search's fitness training, or the ``protocol`` given. ``gradient`` mode trains with a dense forward pass,
so a ticket of such a run is not a sparse network and is refused.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from lotterysearch.core.masks import Mask, masked_call
from lotterysearch.core.models import build_model, input_shape, input_width, prunable_layers
from lotterysearch.errors import ConfigError, ExportError
from lotterysearch.pruning.pruners import imp_rewind_state, imp_round
from lotterysearch.readers.report import export_mask
from lotterysearch.runs import confirmation
from lotterysearch.settings import ROUND_KINDS, TrainingConfig, config_kind, parse_config, parse_run_config
from lotterysearch.training.batched_mlp import sparse_layers as csr_layers
from lotterysearch.training.compaction import compact_mask, compaction
from lotterysearch.training.family import MODULE_FAMILY, family_of
from lotterysearch.training.trainer import train

if TYPE_CHECKING:
    from lotterysearch.core.data import Dataset
    from lotterysearch.storage.store import Individual, Store
    from lotterysearch.training.trainer import TrainResult

# format → file suffix; ``mask`` is the one that needs no torch export
FORMATS: dict[str, str] = {
    "mask": ".npz",
    "compact": ".pt",
    "sparse": ".pt",
    "program": ".pt2",
    "onnx": ".onnx",
}
MODEL_FORMATS = ("compact", "sparse", "program", "onnx")
WEIGHTS = ("init", "trained")

# An export's outputs may differ from the masked network's by float rounding only (sums of fewer terms, in
# another order): at most this much relative to the largest output.
TOLERANCE = 1e-4
PROBE_BATCHES = (1, 8)  # batch sizes of the probe, so a program that fixed its batch size fails here
PROBE_SEED = 12345

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


# ---- the network ------------------------------------------------------------------------------------
class InputColumns(nn.Module):
    """Read only the input features the compacted first layer uses (the others meet only pruned weights)."""

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.to(torch.int64).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)


Packed = tuple[int, int, bool, torch.Tensor, torch.Tensor, torch.Tensor, bool]


class PackedLinear(nn.Module):
    """``x Wᵀ + b`` for a layer with few live weights, written to disk as a bitmap of the live positions
    plus their float32 values (4 bytes a live weight and 1 bit a position, where CSR with int32 indices
    takes 8 and a dense matrix 4 a position) and rebuilt on load by ``__setstate__`` (TorchScript calls it)
    as a dense matrix, or as a CSR one (``torch.sparse.mm``) where ``csr``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, csr: bool) -> None:
        super().__init__()
        self.rows, self.cols, self.csr = int(weight.shape[0]), int(weight.shape[1]), bool(csr)
        self.weight = weight.detach().clone()
        self.bias = bias.detach().clone()
        self._set(self._pack())

    def dense(self) -> torch.Tensor:
        if self.weight.layout == torch.sparse_csr:
            return self.weight.to_dense()
        return self.weight

    def _pack(self) -> Packed:
        live = (self.dense() != 0).reshape(-1)
        pad = (-live.numel()) % 8
        bits = torch.cat([live, torch.zeros(pad, dtype=torch.bool)]).reshape(-1, 8).to(torch.uint8)
        place = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)
        packed = (bits * place).sum(1).to(torch.uint8)
        values = self.dense().reshape(-1)[live]
        return (self.rows, self.cols, self.csr, packed, values, self.bias, self.training)

    @torch.jit.export
    def __getstate__(self) -> Packed:
        return self._pack()

    @torch.jit.export
    def __setstate__(self, state: Packed) -> None:
        self._set(state)

    @torch.jit.export
    def _set(self, state: Packed) -> None:
        rows, cols, csr, packed, values, bias, training = state
        self.rows, self.cols, self.csr, self.bias, self.training = rows, cols, csr, bias, training
        shifts = torch.arange(8, dtype=torch.uint8)
        live = ((packed.reshape(-1, 1) >> shifts) & 1).reshape(-1)[: rows * cols].to(torch.bool)
        if csr:
            grid = live.reshape(rows, cols)
            crow = torch.zeros(rows + 1, dtype=torch.int32)
            crow[1:] = torch.cumsum(grid.sum(1), 0).to(torch.int32)
            col = grid.nonzero()[:, 1].to(torch.int32)
            self.weight = torch.sparse_csr_tensor(crow, col, values, [rows, cols])
        else:
            w = torch.zeros(rows * cols, dtype=values.dtype)
            w[live] = values
            self.weight = w.reshape(rows, cols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.csr:
            return torch.addmm(self.bias.reshape(-1, 1), self.weight, x.t()).t()
        return torch.addmm(self.bias, x, self.weight.t())


def packed_bytes(rows: int, cols: int, nnz: int) -> int:
    """Bytes of ``PackedLinear``'s file form: float32 values and one bit a position."""
    return 4 * nnz + (rows * cols + 7) // 8


def sparse_layers(mask: Mask) -> list[bool]:
    """Per layer of a compacted mask: whether ``PackedLinear`` computes it as CSR. The trainer's rule
    (``batched_mlp.sparse_layers``: large layers with at most ``batched_mlp.CSR_BELOW`` of their weights live),
    which measures faster than a dense matmul here at inference too (``lotterysearch bench``)."""
    return [t.dim() == 2 and s for (_, t), s in zip(mask.items(), csr_layers(mask), strict=True)]


def _masked_weights(model: nn.Module, mask: Mask) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each prunable layer's M⊙W and bias (zeros where the layer has none), detached copies."""
    out = []
    for (_, m), layer in zip(mask.items(), prunable_layers(model).values(), strict=True):
        w = layer.weight.detach() * m.to(layer.weight.dtype)
        b = layer.bias.detach().clone() if layer.bias is not None else torch.zeros(w.shape[0])
        out.append((w, b))
    return out


def _dense_layer(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A fresh torch layer of ``layer``'s kind and geometry holding ``weight`` and ``bias``."""
    if isinstance(layer, nn.Linear):
        new: nn.Module = nn.Linear(weight.shape[1], weight.shape[0])
    else:
        conv = nn.Conv2d if isinstance(layer, nn.Conv2d) else nn.Conv1d
        new = conv(
            weight.shape[1], weight.shape[0], layer.kernel_size, stride=layer.stride, padding=layer.padding
        )
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(bias)
    return new


def masked_dense(model: nn.Module, mask: Mask) -> nn.Module:
    """A copy of ``model`` with every pruned weight set to 0: the export of a network that is not a chain
    (ResNet-20, the user's modules), which has no compacted form; its ``state_dict`` loads into the user's
    own module."""
    net = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, layer in prunable_layers(net).items():
            layer.weight.mul_(mask[name].to(layer.weight.dtype))
    return net


def compact_network(model: nn.Module, mask: Mask, *, sparse: bool = False) -> nn.Sequential:
    """The masked network ``model`` under ``mask`` (forward mode) as a plain ``nn.Sequential`` of its exact
    compaction: the same function on flat ``[N, features]`` inputs, up to float rounding. With ``sparse``,
    the fully connected layers are ``PackedLinear``, CSR where ``sparse_layers`` picks it."""
    mask.check_fits(model)
    family = family_of(model)
    if family is MODULE_FAMILY:
        return nn.Sequential(masked_dense(model, mask)).eval()
    comp = compaction(mask, bias=next(iter(prunable_layers(model).values())).bias is not None)
    small, small_mask = family.compact_model(model, comp), compact_mask(mask, comp)
    head: list[nn.Module] = [nn.Flatten(1)]
    if not comp.reads_every_input:  # an MLP's dead input features (a convnet reads whole images)
        head.append(InputColumns(comp.inputs))
    if family.convolutional:
        head.append(nn.Unflatten(1, small.input_shape))
    pooled: frozenset[str] = small.pooled if family.convolutional else frozenset()
    csr = sparse_layers(small_mask) if sparse else [False] * len(small_mask.names)
    layers = prunable_layers(small)
    parts = list(head)
    convolved = False  # a convolution came before: the first fully connected layer needs a flatten
    for i, ((name, layer), (w, b), as_csr) in enumerate(
        zip(layers.items(), _masked_weights(small, small_mask), csr, strict=True)
    ):
        if isinstance(layer, nn.Linear) and convolved:
            parts.append(nn.Flatten(1))
            convolved = False
        convolved = convolved or not isinstance(layer, nn.Linear)
        parts.append(PackedLinear(w, b, as_csr) if sparse and w.dim() == 2 else _dense_layer(layer, w, b))
        if i < len(layers) - 1:
            parts.append(nn.ReLU())
        if name in pooled:
            parts.append(nn.MaxPool2d(2) if w.dim() == 4 else nn.MaxPool1d(2))
    return nn.Sequential(*parts).eval()


# ---- writing and reading files ----------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch's deprecation notes on TorchScript and its exporters' chatter: not the user's to act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _example(width: int) -> tuple[torch.Tensor]:
    return (torch.zeros(2, width),)  # batch 2: a batch of 1 would be specialized into the program


def _program(net: nn.Module, width: int) -> Any:
    return torch.export.export(
        net, _example(width), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), strict=False
    )


def encode(net: nn.Sequential, fmt: str, width: int) -> bytes:
    """The file of format ``fmt`` holding ``net`` (which reads flat inputs of ``width`` features)."""
    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        if fmt == "program":
            torch.export.save(_program(net, width), buf)
        elif fmt in ("compact", "sparse"):
            torch.jit.save(torch.jit.script(net), buf)
        elif fmt == "onnx":
            try:
                program = torch.onnx.export(
                    net,
                    _example(width),
                    None,
                    dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
                    input_names=["x"],
                    output_names=["logits"],
                    dynamo=True,
                    verbose=False,
                )
            except ImportError as e:
                raise ExportError(_needs_extra(e)) from None
            return program.model_proto.SerializeToString()
        else:
            raise ConfigError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
    return buf.getvalue()


def _needs_extra(e: ImportError) -> str:
    return f"ONNX export needs the 'export' extra ({e.name} is missing): pip install 'lotterysearch[export]'"


def load(path: str | Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exported network at ``path`` as a function of a flat float32 batch, loaded as a user without
    lotterysearch would: ``torch.export.load``, ``torch.jit.load``, or an onnxruntime session."""
    with _quiet():
        if fmt == "program":
            module = torch.export.load(str(path)).module()
            return lambda x: module(x)
        if fmt in ("compact", "sparse"):
            script = torch.jit.load(str(path))
            return lambda x: script(x)
    if fmt == "onnx":
        session = onnx_session(path)
        return lambda x: torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    raise ConfigError(f"'{fmt}' is not a model format (known: {', '.join(MODEL_FORMATS)})")


def onnx_session(path: str | Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session of the file (``threads`` 0: onnxruntime's default)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError(_needs_extra(e)) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def probe_error(model: nn.Module, mask: Mask, run: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """The largest difference between ``run``'s outputs and the masked network's on seeded normal inputs,
    relative to the largest output (``TOLERANCE`` bounds it)."""
    g = torch.Generator().manual_seed(PROBE_SEED)
    worst = 0.0
    with torch.no_grad():
        for n in PROBE_BATCHES:
            x = torch.randn(n, input_width(model), generator=g)
            want = masked_call(model.eval(), mask, x)
            got = run(x)
            if tuple(got.shape) != tuple(want.shape):
                raise ExportError(
                    f"the exported network gives outputs {list(got.shape)}, expected {list(want.shape)}"
                )
            scale = max(1.0, float(want.abs().max()))
            worst = max(worst, float((got - want).abs().max()) / scale)
    return worst


def writable(path: str | Path) -> Path:
    """``path``, its folder created; an unwritable place is a one-line ``ExportError`` before any work."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write '{path}': {e.strerror or e}") from None
    if path.is_dir():
        raise ExportError(f"cannot write '{path}': it is a directory")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ExportError(f"cannot write '{path}': permission denied")
    return path


def write_network(model: nn.Module, mask: Mask, fmt: str, path: str | Path) -> tuple[Path, float]:
    """Write ``fmt``'s file of the masked network to ``path``, read it back and check it against the
    masked network; returns the path and the probe error (``probe_error``)."""
    if fmt not in MODEL_FORMATS:
        raise ConfigError(f"'{fmt}' is not a model format (known: {', '.join(MODEL_FORMATS)})")
    path = writable(path)
    net = compact_network(model, mask, sparse=fmt == "sparse")
    if family_of(model) is MODULE_FAMILY:  # the user's code: a format its forward cannot be written in
        try:
            data = encode(net, fmt, input_width(model))
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0]
            raise ExportError(
                f"{type(model).__name__} cannot be written as {fmt} ({type(e).__name__}: {first}); try onnx"
            ) from None
    else:
        data = encode(net, fmt, input_width(model))
    try:
        path.write_bytes(data)
    except OSError as e:
        raise ExportError(f"cannot write '{path}': {e.strerror or e}") from None
    error = probe_error(model, mask, load(path, fmt))
    if not error <= TOLERANCE:
        raise ExportError(
            f"the {fmt} export of '{path}' differs from the masked network by {error:.3g} (tolerance"
            f" {TOLERANCE:g}); the file is left for inspection"
        )
    return path, error


# ---- a run's ticket ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ticket:
    """One individual's network, ready to export: the full model with θ₀ or trained weights, its mask,
    and how it was obtained (seed, and for trained weights the training's result)."""

    model: nn.Module
    mask: Mask
    spec: str
    weights: str
    seed: int
    result: TrainResult | None = None

    def describe(self) -> str:
        if self.result is None:
            return f"θ₀ (init seed {self.seed})"
        return (
            f"trained from init seed {self.seed} for {self.result.steps} steps, validation accuracy"
            f" {self.result.val_accuracy:.4f}"
        )


def run_training(store: Store, run_id: str) -> Any:
    """The protocol ``trained`` weights use by default: an IMP (or CS) run's ``[training]``, a search's
    fitness."""
    record = store.run(run_id)
    kind = config_kind(record.config_json)
    if kind in ROUND_KINDS:
        return parse_run_config(record.config_toml, kind, f"run {run_id}").training
    return parse_config(record.config_toml, f"run {run_id}").fitness.training()


def ticket(
    store: Store,
    run_id: str,
    individual_id: int,
    weights: str = "trained",
    *,
    protocol: Any = None,
    data: Dataset | None = None,
) -> Ticket:
    """The network of individual ``individual_id`` with ``weights`` (see the module docstring);
    ``protocol``: a ``TrainingConfig`` or a TOML file with a ``[training]`` table (default: the run's)."""
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown weights '{weights}' (known: {', '.join(WEIGHTS)})")
    inits = confirmation.run_inits(store, run_id)
    if inits.mode == "gradient":
        raise ExportError(
            f"run '{run_id}' trains in gradient mode (a dense forward pass): its networks are not sparse"
        )
    ind: Individual = store.individual(run_id, individual_id)
    if protocol is None:
        training = run_training(store, run_id)
    elif isinstance(protocol, TrainingConfig):
        training = protocol
    else:
        training = confirmation.load_protocol(protocol) if weights == "trained" else None
    own = confirmation.own_init(ind, inits)
    model, mask = build_model(inits.model, own.seed), ind.mask
    if weights == "init" and own.rewind is None:
        return Ticket(model.eval(), mask, inits.model, weights, own.seed)
    data = inits.data(data)
    if own.rewind is not None:  # an IMP run that rewinds: θ₀ is the weights after its dense steps
        state = imp_rewind_state(model, data, own.rewind, own.start_step, mode=inits.mode, seed=own.seed)
        if weights == "init":
            model.load_state_dict(state)
            return Ticket(model.eval(), mask, inits.model, weights, own.seed)
        trained = imp_round(
            model, state, mask, data, training, own.start_step, mode=inits.mode, seed=own.seed
        )
        model, result = trained.net, trained.result
    else:
        result = train(model, mask, data, training, mode=inits.mode, seed=own.seed)
    return Ticket(model.eval(), mask, inits.model, weights, own.seed, result)


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote: the file, its format and size, the weights it holds, and how far its outputs
    are from the masked network's (None for a mask)."""

    path: Path
    format: str
    bytes: int
    weights: str | None
    widths: str | None
    error: float | None
    ticket: Ticket | None = None

    def line(self) -> str:
        if self.ticket is None:
            return f"saved {self.path}"
        return (
            f"saved {self.path} ({self.format}, {self.bytes} bytes): {self.widths}, weights"
            f" {self.ticket.describe()}; outputs equal the masked network's within {self.error:.2g}"
        )


def format_for(path: str | Path, fmt: str | None) -> str:
    """``fmt``, or the format the file's suffix names (``FORMATS``; ``.pt``: compact), else ``mask``."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
        return fmt
    by_suffix: dict[str, str] = {}
    for name, suffix in FORMATS.items():  # ``.pt``: compact, the first format of that suffix
        by_suffix.setdefault(suffix, name)
    return by_suffix.get(Path(path).suffix, "mask")


def widths_text(net: nn.Sequential) -> str:
    """The exported layers' shapes, e.g. ``fc 784→57→100→10``, CSR layers marked ``(csr)``."""
    parts = []
    for layer in net:
        if isinstance(layer, nn.Linear | PackedLinear | nn.Conv1d | nn.Conv2d):
            w = layer.weight
            tag = " csr" if w.layout == torch.sparse_csr else ""
            parts.append(f"{w.shape[1]}→{w.shape[0]}{tag}")
    return ", ".join(parts) or "masked dense (not a chain of layers: nothing to compact)"


def export(
    store: Store,
    run_id: str,
    individual_id: int,
    out: str | Path,
    fmt: str | None = None,
    *,
    weights: str = "trained",
    protocol: Any = None,
    data: Dataset | None = None,
) -> Exported:
    """Write individual ``individual_id`` of run ``run_id`` to ``out`` as ``fmt`` (default: from the suffix,
    see ``format_for``). The place is checked before any training; a model is checked after writing."""
    fmt = format_for(out, fmt)
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown weights '{weights}' (known: {', '.join(WEIGHTS)})")
    if fmt == "mask":
        path = export_mask(store, run_id, individual_id, writable(out))
        return Exported(path, fmt, path.stat().st_size, None, None, None)
    writable(out)
    t = ticket(store, run_id, individual_id, weights, protocol=protocol, data=data)
    path, error = write_network(t.model, t.mask, fmt, out)
    net = compact_network(t.model, t.mask, sparse=fmt == "sparse")
    return Exported(path, fmt, path.stat().st_size, weights, widths_text(net), error, t)


# ---- latency and memory -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    """One way to run the network: its name, what it holds in memory and on disk (bytes)."""

    name: str
    memory: int
    disk: int
    run: Callable[[Any], Any]
    prepare: Callable[[torch.Tensor], Any] = lambda x: x


@dataclass(frozen=True)
class BenchRow:
    """Latency of one form at one batch size: best and median per call over rounds (µs), and the ratios of
    the dense masked network's best to this form's (``speedup``) and of its disk bytes to this form's."""

    form: str
    batch: int
    best_us: float
    median_us: float
    speedup: float
    speedup_zeros: float
    memory: int
    disk: int
    smaller: float


def tensor_bytes(module: nn.Module) -> int:
    """Bytes a module's weights hold in memory: parameters, buffers and ``PackedLinear``'s matrices (a CSR
    matrix: values and indices)."""
    tensors = [*module.parameters(), *module.buffers()]
    tensors += [t for m in module.modules() if isinstance(m, PackedLinear) for t in (m.weight, m.bias)]
    total = 0
    for t in tensors:
        parts = (t.values(), t.crow_indices(), t.col_indices()) if t.layout == torch.sparse_csr else (t,)
        total += sum(p.numel() * p.element_size() for p in parts)
    return total


def _torch_save_bytes(obj: Any) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return len(buf.getvalue())


def bench_forms(model: nn.Module, mask: Mask, folder: str | Path, threads: int = 1) -> list[Form]:
    """The forms ``bench`` times: the dense masked network (M⊙W each call, as ``torch.nn.utils.prune`` and
    this package's trainer compute it), the dense network with the zeros stored, and each export format
    written to ``folder`` and loaded from there as a user would."""
    model = model.eval()
    zeros = copy.deepcopy(model)
    with torch.no_grad():
        for (_, m), layer in zip(mask.items(), prunable_layers(zeros).values(), strict=True):
            layer.weight.mul_(m.to(layer.weight.dtype))
    weights_bytes = tensor_bytes(model)
    dense_disk = _torch_save_bytes(zeros.state_dict())
    forms = [
        Form(
            "dense masked",
            weights_bytes + sum(m.numel() for _, m in mask.items()),
            dense_disk,
            lambda x: masked_call(model, mask, x),
        ),
        Form("dense, zeros stored", weights_bytes, dense_disk, zeros),
    ]
    for fmt in MODEL_FORMATS:
        path, _ = write_network(model, mask, fmt, Path(folder) / f"ticket{FORMATS[fmt]}")
        disk = path.stat().st_size
        if fmt == "onnx":
            import onnx

            proto = onnx.load(str(path))
            memory = sum(int(np.prod(i.dims)) * 4 for i in proto.graph.initializer)
            session = onnx_session(path, threads)
            forms.append(
                Form(fmt, memory, disk, lambda x, s=session: s.run(None, {"x": x}), lambda x: x.numpy())
            )
        else:
            memory = tensor_bytes(compact_network(model, mask, sparse=fmt == "sparse"))
            forms.append(Form(fmt, memory, disk, load(path, fmt)))
    return forms


def _per_call(run: Callable[[Any], Any], x: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run(x)
    return (time.perf_counter() - start) / calls


def time_forms(
    forms: Sequence[Form], batch: int, width: int, rounds: int = 7, block_s: float = 0.02
) -> dict[str, list[float]]:
    """Seconds per call of each form on one seeded batch, ``rounds`` times each, the forms interleaved
    round by round (in a rotated order) so that load from other processes falls on all of them alike."""
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(PROBE_SEED))
    inputs = [f.prepare(x) for f in forms]
    calls = []
    with torch.no_grad():
        for f, xi in zip(forms, inputs, strict=True):
            f.run(xi)  # warm-up: first-call set-up is not latency
            once = _per_call(f.run, xi, 3)
            calls.append(max(1, math.ceil(block_s / max(once, 1e-7))))
        times: dict[str, list[float]] = {f.name: [] for f in forms}
        for r in range(rounds):
            for k in range(len(forms)):
                i = (k + r) % len(forms)
                times[forms[i].name].append(_per_call(forms[i].run, inputs[i], calls[i]))
    return times


def bench(
    model: nn.Module,
    mask: Mask,
    batches: Sequence[int] = (1, 256),
    *,
    rounds: int = 7,
    threads: int = 1,
) -> list[BenchRow]:
    """Latency (best and median over ``rounds``) and memory of every export form against the dense masked
    network, at each batch size, on ``threads`` threads (torch and onnxruntime alike)."""
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if not batches or min(batches) < 1:
        raise ConfigError(f"batch sizes must be >= 1, got {list(batches)}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="lotterysearch-bench-") as folder:
            forms = bench_forms(model, mask, folder, threads)
            rows = []
            for batch in batches:
                times = time_forms(forms, batch, input_width(model), rounds)
                base, zeros = min(times[forms[0].name]), min(times[forms[1].name])
                for f in forms:
                    best = min(times[f.name])
                    rows.append(
                        BenchRow(
                            f.name,
                            batch,
                            best * 1e6,
                            statistics.median(times[f.name]) * 1e6,
                            base / best,
                            zeros / best,
                            f.memory,
                            f.disk,
                            forms[0].disk / f.disk,
                        )
                    )
            return rows
    finally:
        torch.set_num_threads(before)


def format_bench(rows: Sequence[BenchRow]) -> str:
    """``bench``'s rows as a table: latency, speedup over the dense masked network (and over the dense one
    with its zeros stored), bytes in memory and on disk, and how many times smaller on disk."""
    head = (
        f"{'form':<20}{'batch':>6}{'best µs':>11}{'median µs':>11}{'× masked':>10}{'× zeros':>9}"
        f"{'memory B':>11}{'disk B':>10}{'× smaller':>11}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.form:<20}{r.batch:>6}{r.best_us:>11.1f}{r.median_us:>11.1f}{r.speedup:>10.2f}"
            f"{r.speedup_zeros:>9.2f}{r.memory:>11}{r.disk:>10}{r.smaller:>11.2f}"
        )
    return "\n".join(lines)


def describe_network(model: nn.Module, mask: Mask) -> str:
    """One line: the masked network and its compacted export, e.g. for the bench's header."""
    net = compact_network(model, mask, sparse=True)
    shape = "x".join(str(s) for s in input_shape(model))
    return (
        f"input {shape}, {mask.kept()} of {mask.total()} weights ({mask.density():.2%}); compacted:"
        f" {widths_text(net)}"
    )
