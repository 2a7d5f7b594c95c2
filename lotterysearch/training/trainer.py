"""One short, seeded training run of a masked network, in any of the three masking modes.

The batch order comes from ``batch_indices`` alone (a seeded ``torch.Generator``), so any other trainer
(e.g. the population-batched one) that uses it sees exactly the same batches for the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core.data import Dataset
from lotterysearch.core.masks import Mask, check_mode, masked_call
from lotterysearch.settings import OPTIMIZERS as OPTIMIZER_NAMES
from lotterysearch.settings import TrainingConfig

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, **kernel: torch.optim.Adam(params, lr=lr, **kernel),
    "sgd": lambda params, lr, **kernel: torch.optim.SGD(params, lr=lr, momentum=0.9, **kernel),
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
class EarlyStop:
    """The early-stopping iteration of Frankle & Carbin (2019): the evaluation with the lowest validation
    loss (the first such), and the accuracies there. Test accuracy is read, never used to choose."""

    step: int
    val_loss: float
    val_accuracy: float
    test_accuracy: float | None = None


@dataclass
class TrainResult:
    """Accuracy and loss on validation (always) and test (when asked) after the last step; with
    ``eval_every`` the curve of evaluations and the early-stopping iteration among them."""

    val_accuracy: float
    val_loss: float
    steps: int
    test_accuracy: float | None = None
    test_loss: float | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    early_stop: EarlyStop | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers (JSON), the form stored for IMP rounds and confirmations."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        es = d.get("early_stop")
        return cls(**{**d, "early_stop": EarlyStop(**es) if es else None})


# A convnet's activations are channels × pixels per sample (Conv-2 on CIFAR-10: 0.5 MB in each of its first
# layers), so it is evaluated this many samples at a time; an MLP's split is evaluated in one batch.
CONV_EVAL_BATCH = 500


@torch.no_grad()
def evaluate(
    model: nn.Module, mask: Mask | None, x: torch.Tensor, y: torch.Tensor, mode: str = "forward"
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the masked model over the whole split."""
    if getattr(model, "input_shape", None) is None:
        logits = masked_call(model, mask, x, mode)
    else:
        logits = torch.cat([masked_call(model, mask, part, mode) for part in x.split(CONV_EVAL_BATCH)])
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
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``model`` in place as ``training`` says (default: ``TrainingConfig()``, 115 steps of Adam) with
    ``mask`` applied in ``mode``.

    ``seed`` fixes the batch order; the initial weights are the model's own (see ``build_model``).
    With ``training.eval_every = k > 0`` the network is evaluated after every k steps (and the last) on the
    validation split, and with ``evaluate_test`` on the test split too wherever the validation loss reaches a
    new low and at the end: the curve, and the early-stopping iteration (lowest validation loss) with its
    accuracies, as Frankle & Carbin report. ``training.fused`` takes torch's fused optimizer kernel. The work
    runs on ``device`` (default: CUDA where there is one); the trained model is handed back on the device it
    came on, so the caller's tensors (masks, saved weights) still meet it there.
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
        kernel = {"fused": True} if training.fused else {}  # unset otherwise: torch's default kernel
        opt = OPTIMIZERS[training.optimizer](list(model.parameters()), training.lr, **kernel)
        curve: list[dict[str, float]] = []
        best: dict[str, float] | None = None  # the first point with the lowest validation loss so far
        every = training.eval_every
        xt, yt = (data.x_test.to(device), data.y_test.to(device)) if evaluate_test else (None, None)
        model.train()
        for step, idx in enumerate(batch_indices(len(y), batch_size, steps, seed), start=1):
            idx = idx.to(device)
            loss = F.cross_entropy(masked_call(model, mask, x[idx], mode), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if every and (step % every == 0 or step == steps):
                model.eval()
                acc, vloss = evaluate(model, mask, xv, yv, mode)
                point = {
                    "step": step,
                    "train_loss": float(loss.detach()),
                    "val_accuracy": acc,
                    "val_loss": vloss,
                }
                new_low = best is None or vloss < best["val_loss"]
                # the test split is read where it is reported: at each new low (the early stop is the
                # last of them) and at the end
                if xt is not None and (new_low or step == steps):
                    point["test_accuracy"], point["test_loss"] = evaluate(model, mask, xt, yt, mode)
                curve.append(point)
                if new_low:
                    best = point
                model.train()
        model.eval()
        if best is not None:  # the curve ends at the last step: its last point is this very network's
            last = curve[-1]
            early_stop = EarlyStop(
                int(best["step"]), best["val_loss"], best["val_accuracy"], best.get("test_accuracy")
            )
            result = TrainResult(
                last["val_accuracy"],
                last["val_loss"],
                steps,
                last.get("test_accuracy"),
                last.get("test_loss"),
                curve,
                early_stop,
            )
        else:
            val_acc, val_loss = evaluate(model, mask, xv, yv, mode)
            result = TrainResult(val_acc, val_loss, steps, curve=curve)
            if xt is not None:
                result.test_accuracy, result.test_loss = evaluate(model, mask, xt, yt, mode)
        return result
    finally:
        model.to(home)
