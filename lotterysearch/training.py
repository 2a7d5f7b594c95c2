"""One short, seeded training run of a masked network, in any of the three masking modes.

The batch order comes from ``batch_indices`` alone (a seeded ``torch.Generator``), so any other trainer
(e.g. the population-batched one) that uses it sees exactly the same batches for the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.config import OPTIMIZERS as OPTIMIZER_NAMES
from lotterysearch.config import TrainingConfig
from lotterysearch.data import Dataset
from lotterysearch.masks import Mask, check_mode, masked_call

OPTIMIZERS: dict[str, Callable[[Sequence[torch.Tensor], float], torch.optim.Optimizer]] = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
}
assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES, "config.OPTIMIZERS names the trainers' optimizers"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``steps`` minibatches of indices into ``n`` samples: a fresh seeded permutation every epoch."""
    g = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, n)
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            if done == steps:
                return
            yield perm[start : start + batch_size]
            done += 1


@dataclass
class TrainResult:
    """Accuracy and loss on validation (always) and test (when asked), and the curve if recorded."""

    val_accuracy: float
    val_loss: float
    steps: int
    test_accuracy: float | None = None
    test_loss: float | None = None
    curve: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def evaluate(
    model: nn.Module, mask: Mask | None, x: torch.Tensor, y: torch.Tensor, mode: str = "forward"
) -> tuple[float, float]:
    """Full-batch (accuracy, mean cross-entropy) of the masked model."""
    logits = masked_call(model, mask, x, mode)
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def train(
    model: nn.Module,
    mask: Mask | None,
    data: Dataset,
    training: TrainingConfig | None = None,
    *,
    mode: str = "forward",
    seed: int = 0,
    evaluate_test: bool = False,
    record_every: int = 0,
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``model`` in place as ``training`` says (default: ``TrainingConfig()``, 115 steps of Adam) with
    ``mask`` applied in ``mode``.

    ``seed`` fixes the batch order; the initial weights are the model's own (see ``build_model``).
    ``record_every > 0`` records validation accuracy and the training loss along the way. The work runs on
    ``device`` (default: CUDA where there is one); the trained model is handed back on the device it came
    on, so the caller's tensors (masks, saved weights) still meet it there.
    """
    check_mode(mode)
    training = training or TrainingConfig()
    steps, batch_size = training.steps, training.batch_size
    if mask is not None:
        mask.check_fits(model)
    device = torch.device(device) if device is not None else default_device()
    home = next(model.parameters()).device
    try:
        model.to(device)
        x, y = data.x_train.to(device), data.y_train.to(device)
        xv, yv = data.x_val.to(device), data.y_val.to(device)
        opt = OPTIMIZERS[training.optimizer](list(model.parameters()), training.lr)
        curve: list[dict[str, float]] = []
        model.train()
        for step, idx in enumerate(batch_indices(len(y), batch_size, steps, seed), start=1):
            idx = idx.to(device)
            loss = F.cross_entropy(masked_call(model, mask, x[idx], mode), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if record_every and (step % record_every == 0 or step == steps):
                acc, vloss = evaluate(model, mask, xv, yv, mode)
                curve.append(
                    {"step": step, "train_loss": float(loss.detach()), "val_accuracy": acc, "val_loss": vloss}
                )
        model.eval()
        val_acc, val_loss = evaluate(model, mask, xv, yv, mode)
        result = TrainResult(val_acc, val_loss, steps, curve=curve)
        if evaluate_test:
            result.test_accuracy, result.test_loss = evaluate(
                model, mask, data.x_test.to(device), data.y_test.to(device), mode
            )
        return result
    finally:
        model.to(home)
