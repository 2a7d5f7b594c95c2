"""The seeded trainer: determinism, batch order, masking during training."""

import json

import pytest
import torch

from lotterysearch.config import TrainingConfig
from lotterysearch.errors import ConfigError, MaskError
from lotterysearch.masks import Mask
from lotterysearch.models import build_model
from lotterysearch.training import TrainResult, batch_indices, train


@pytest.fixture
def data(synthetic):
    """The session's synthetic dataset (split seed 0, as ``load_dataset("synthetic")`` was); read only."""
    return synthetic


def test_batch_indices_cover_each_epoch_once() -> None:
    batches = list(batch_indices(10, 3, steps=7, seed=0))
    assert len(batches) == 7  # 3 full batches per epoch (the remainder is dropped)
    first_epoch = torch.cat(batches[:3])
    assert len(set(first_epoch.tolist())) == 9
    assert [b.tolist() for b in batches] == [b.tolist() for b in batch_indices(10, 3, steps=7, seed=0)]


def test_training_is_deterministic_and_learns(data) -> None:
    results = []
    for _ in range(2):
        model = build_model("mlp:16-32-4", 3)
        results.append(
            (train(model, None, data, TrainingConfig(steps=60), seed=1), model.layers.fc1.weight.clone())
        )
    (r1, w1), (r2, w2) = results
    assert torch.equal(w1, w2) and r1.val_accuracy == r2.val_accuracy
    assert r1.val_accuracy > 0.85  # the synthetic task is linearly separable; chance is ~0.25


@pytest.mark.parametrize(
    ("mode", "pruned_moves"), [("forward", False), ("gradient", False), ("straight_through", True)]
)
def test_pruned_weights_move_only_under_straight_through(data, mode: str, pruned_moves: bool) -> None:
    model = build_model("mlp:16-32-4", 0)
    mask = Mask(
        {
            n: torch.rand(p.shape, generator=torch.Generator().manual_seed(0)) < 0.3
            for n, p in (("fc1", model.layers.fc1.weight), ("fc2", model.layers.fc2.weight))
        }
    )
    before = model.layers.fc1.weight.detach().clone()
    train(model, mask, data, TrainingConfig(steps=20), mode=mode)
    after = model.layers.fc1.weight.detach()
    pruned = ~mask["fc1"]
    assert torch.equal(after[pruned], before[pruned]) != pruned_moves
    assert not torch.equal(after[mask["fc1"]], before[mask["fc1"]])


def test_curve_and_test_evaluation(data) -> None:
    r = train(
        build_model("mlp:16-8-4", 0), None, data, TrainingConfig(steps=10, eval_every=4), evaluate_test=True
    )
    assert [c["step"] for c in r.curve] == [4, 8, 10]  # every 4 steps, and the last
    assert r.test_accuracy is not None and 0 <= r.test_accuracy <= 1
    last = r.curve[-1]  # the last evaluation is the final model's
    assert (last["val_accuracy"], last["val_loss"], last["test_accuracy"]) == (
        r.val_accuracy,
        r.val_loss,
        r.test_accuracy,
    )


def test_early_stop_is_the_first_evaluation_with_the_lowest_validation_loss(data) -> None:
    """A learning rate that overshoots after a while: the validation loss is not monotone, so the early-stop
    iteration is a real minimum, and its accuracies are the curve's at that step."""
    r = train(
        build_model("mlp:16-8-4", 0),
        None,
        data,
        TrainingConfig(steps=60, lr=0.2, eval_every=5),
        evaluate_test=True,
    )
    losses = [c["val_loss"] for c in r.curve]
    first_min = losses.index(min(losses))
    point = r.curve[first_min]
    assert r.early_stop.step == point["step"] == 5 * (first_min + 1)
    assert (r.early_stop.val_loss, r.early_stop.val_accuracy, r.early_stop.test_accuracy) == (
        point["val_loss"],
        point["val_accuracy"],
        point["test_accuracy"],
    )
    assert TrainResult.from_dict(json.loads(json.dumps(r.as_dict()))) == r  # the stored form round-trips
    plain = train(
        build_model("mlp:16-8-4", 0), None, data, TrainingConfig(steps=60, lr=0.2), evaluate_test=True
    )
    assert plain.early_stop is None and plain.curve == []
    assert (plain.val_loss, plain.test_accuracy) == (
        r.val_loss,
        r.test_accuracy,
    )  # evaluating changes nothing


def test_default_settings_are_the_training_config_defaults(data) -> None:
    """``train(.., None)`` is ``TrainingConfig()``: 115 steps of Adam at lr 0.01, batches of 128."""
    a, b = build_model("mlp:16-8-4", 0), build_model("mlp:16-8-4", 0)
    ra, rb = train(a, None, data, seed=2), train(b, None, data, TrainingConfig(), seed=2)
    assert ra.steps == rb.steps == 115
    assert torch.equal(a.layers.fc1.weight, b.layers.fc1.weight) and ra.val_loss == rb.val_loss


def test_bad_arguments(data) -> None:
    with pytest.raises(ConfigError, match=r"^field 'optimizer' must be one of adam, sgd, got 'lbfgs'$"):
        train(build_model("mlp:16-8-4", 0), None, data, TrainingConfig(steps=1, optimizer="lbfgs"))
    with pytest.raises(ConfigError, match=r"^field 'lr' must be a number > 0, got -1.0$"):
        train(build_model("mlp:16-8-4", 0), None, data, TrainingConfig(steps=1, lr=-1.0))
    with pytest.raises(
        MaskError, match=r"^unknown masking mode 'both' \(known: forward, gradient, straight_through\)$"
    ):
        train(build_model("mlp:16-8-4", 0), None, data, TrainingConfig(steps=1), mode="both")
