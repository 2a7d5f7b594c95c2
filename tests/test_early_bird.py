"""Early-Bird stopping: the magnitude mask, its distance, the stopping rule, and training that stops."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from convtools import one_thread  # noqa: F401 - a fixture

from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import FitnessConfig, TrainingConfig
from lotterysearch.training.batched import train_batch
from lotterysearch.training.batched_mlp import MLPBatch
from lotterysearch.training.early_bird import EarlyBird, EarlyBirdWatch, magnitude_mask, mask_distance
from lotterysearch.training.fitness import evaluate_masks

SPEC = "mlp:16-32-4"


def test_magnitude_mask_prunes_the_strength_of_each_layers_kept_weights_by_hand() -> None:
    w1 = torch.tensor([[0.5, -0.1, 0.3, 9.0], [-0.2, 0.1, 7.0, 8.0]])
    m1 = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)  # kept |w|: .5 .1 .3 .2 .1
    w2 = torch.tensor([[5.0, -4.0, 0.5, 3.0]])
    m2 = torch.ones(1, 4, dtype=torch.bool)
    got = magnitude_mask([w1, w2], [m1, m2], 0.4)  # round(0.4 · 5) = 2; the output layer round(0.2 · 4) = 1
    assert got.tolist() == [True, False, True, True, False] + [True, True, False, True]
    assert mask_distance(got, got) == 0.0
    assert mask_distance(got, ~got) == 1.0
    assert mask_distance(got, torch.tensor([True] * 9)) == pytest.approx(3 / 9)


def test_the_watch_stops_after_window_checks_below_epsilon_and_never_at_epsilon_zero() -> None:
    a, b = torch.tensor([True, True, False, False]), torch.tensor([True, False, True, False])
    watch = EarlyBirdWatch(EarlyBird(every=1, epsilon=0.3, window=2, strength=0.5))
    # distances: -, 1/2 (far), 0, 0: the second close check in a row stops
    assert [watch.stop(m) for m in (a, b, b, b)] == [False, False, False, True]
    never = EarlyBirdWatch(EarlyBird(every=1, epsilon=0.0, window=1, strength=0.5))
    assert not any(never.stop(a) for _ in range(10))


def test_fitness_config_checks_the_early_bird_fields_with_one_line_errors() -> None:
    assert EarlyBird.of(FitnessConfig()) is None
    with pytest.raises(ConfigError, match=r"^field 'early_bird_every' must be an integer in \[0, steps\]"):
        FitnessConfig(steps=10, early_bird_every=11)
    with pytest.raises(
        ConfigError, match=r"^field 'early_bird_epsilon' must be a number in \[0, 1\], got 2$"
    ):
        FitnessConfig(early_bird_every=5, early_bird_epsilon=2)
    with pytest.raises(ConfigError, match=r"^field 'early_bird_window' must be an integer >= 1, got 0$"):
        FitnessConfig(early_bird_every=5, early_bird_window=0)


@pytest.mark.usefixtures("one_thread")
def test_training_stops_once_the_mask_settles_and_reports_the_stop_step(synthetic) -> None:
    mask = prune(build_model(SPEC, 0), "magnitude", 2)
    training = TrainingConfig(steps=300, lr=0.02)
    rule = EarlyBird(every=10, epsilon=0.02, window=3, strength=0.5)
    pop = MLPBatch([build_model(SPEC, 1)], [mask])
    (stopped,) = train_batch(pop, synthetic, training, seed=1, early_bird=rule)
    assert 0 < stopped.steps < training.steps and stopped.steps % rule.every == 0
    # the network stopped is the one trained for exactly that many steps: same weights, same numbers
    same = MLPBatch([build_model(SPEC, 1)], [mask])
    (short,) = train_batch(same, synthetic, training.with_steps(stopped.steps), seed=1)
    assert torch.equal(pop.theta, same.theta)
    assert (stopped.val_accuracy, stopped.val_loss) == (short.val_accuracy, short.val_loss)
    # ε = 0 trains the whole budget, to the same network as without the rule
    zero = MLPBatch([build_model(SPEC, 1)], [mask])
    (full,) = train_batch(
        zero, synthetic, training, seed=1, early_bird=dataclasses.replace(rule, epsilon=0.0)
    )
    plain = MLPBatch([build_model(SPEC, 1)], [mask])
    train_batch(plain, synthetic, training, seed=1)
    assert full.steps == training.steps and torch.equal(zero.theta, plain.theta)


@pytest.mark.usefixtures("one_thread")
def test_networks_of_one_batch_stop_each_at_its_own_step(synthetic) -> None:
    masks = [prune(build_model(SPEC, 0), "magnitude", c) for c in (1.5, 4)]
    cfg = FitnessConfig(steps=300, lr=0.02, init_seeds=(1,), early_bird_every=10, early_bird_epsilon=0.02)
    together = evaluate_masks(masks, SPEC, synthetic, cfg)
    alone = [evaluate_masks([m], SPEC, synthetic, cfg)[0] for m in masks]
    assert [o.steps for o in together] == [o.steps for o in alone]  # the ledger's steps: each its own
    assert [o.accuracy for o in together] == [o.accuracy for o in alone]
    assert all(o.steps < 300 for o in together) and together[0].steps != together[1].steps
