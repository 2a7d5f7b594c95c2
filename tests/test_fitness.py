"""Fitness: the demo budget ranks masks, and the objectives are what the trainer measures."""

from pathlib import Path

import numpy as np
import pytest
from convtools import one_thread  # noqa: F401 - a fixture

from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import FitnessConfig, TrainingConfig, load_config
from lotterysearch.training.fitness import evaluate_mask, evaluate_masks
from lotterysearch.training.trainer import train

DEMO = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "demo.toml"


def test_demo_fitness_ranks_synflow_10_percent_above_random_1_percent() -> None:
    """One epoch leaves 10%-density masks at chance; the demo's budget must separate them."""
    cfg = load_config(DEMO)
    data = load_dataset(cfg.dataset, cfg.seed)
    fit = cfg.fitness
    synflow = prune(build_model(cfg.model, 0), "synflow", 10)
    sparse_random = layerwise_shuffle(
        prune(build_model(cfg.model, 0), "synflow", 100), np.random.default_rng(0)
    )
    good, bad = (
        evaluate_mask(synflow, cfg.model, data, fit, cfg.mode),
        evaluate_mask(sparse_random, cfg.model, data, fit, cfg.mode),
    )
    assert good.density == pytest.approx(0.1) and bad.density == pytest.approx(0.01)
    assert good.accuracy > bad.accuracy + 0.1
    assert good.accuracy > 0.3  # chance is 0.1


def test_objectives_average_the_trainer_over_init_seeds(synthetic) -> None:
    data = synthetic
    mask = prune(build_model("mlp:16-12-4", 0), "magnitude", 4)
    cfg = FitnessConfig(steps=15, init_seeds=(1, 2), lr=0.02)
    got = evaluate_mask(mask, "mlp:16-12-4", data, cfg, "forward")
    training = TrainingConfig(steps=15, lr=0.02)
    assert cfg.training() == training
    runs = [train(build_model("mlp:16-12-4", s), mask, data, training, seed=s) for s in (1, 2)]
    assert got.accuracy == pytest.approx(sum(r.val_accuracy for r in runs) / 2, abs=1e-12)
    assert got.steps == 30 and got.density == pytest.approx(0.25)
    assert got.effective_density == mask.effective_density()


def test_layerwise_shuffle_keeps_every_layer_count() -> None:
    mask = Mask({"fc1": np.eye(6, 8), "fc2": np.ones((3, 6))})
    other = layerwise_shuffle(mask, np.random.default_rng(1))
    assert other.layer_kept() == mask.layer_kept() and other != mask


@pytest.mark.usefixtures("one_thread")
def test_convnet_objectives_are_the_trainers_mean_over_init_seeds() -> None:
    """A convnet's masks are trained in grouped batches (``batched_conv``): the trainer's numbers to float
    rounding."""
    spec = "cnn1d:40:25k5-25-25:10"
    data = load_dataset("mnist1d", 0)
    masks = [
        prune(build_model(spec, 0), "synflow", 10, iterations=5),
        prune(build_model(spec, 0), "random", 4),
    ]
    cfg = FitnessConfig(steps=12, init_seeds=(1, 2), lr=0.01)
    got = evaluate_masks(masks, spec, data, cfg, "straight_through")  # trained as forward
    for mask, objectives in zip(masks, got, strict=True):
        runs = [train(build_model(spec, s), mask, data, cfg.training(), seed=s) for s in (1, 2)]
        assert objectives.accuracy == pytest.approx(sum(r.val_accuracy for r in runs) / 2, abs=1e-12)
        assert objectives.loss == pytest.approx(sum(r.val_loss for r in runs) / 2, abs=1e-5)
        assert objectives.density == mask.density() and objectives.steps == 24
        assert objectives.effective_density == mask.effective_density()


# ---- fitness modes: what a mask's fitness is a property of ---------------------------------------


def test_fitness_key_is_the_class_in_topology_mode_and_the_mask_in_ticket_mode() -> None:
    from masktools import random_mask, random_perms

    from lotterysearch.core import canon
    from lotterysearch.core.alignment import permute_hidden
    from lotterysearch.errors import ConfigError
    from lotterysearch.training.fitness import fitness_key, key_version

    rng = np.random.default_rng(4)
    mask = random_mask(rng, widths=(9, 8, 7, 4), density=0.5)
    permuted = permute_hidden(mask, random_perms(rng, mask))
    assert permuted != mask
    assert fitness_key(mask) == fitness_key(permuted) == canon.class_key(mask)  # isomorphs: one class
    ticket = fitness_key(mask, "ticket")
    assert ticket.startswith("mask-v1:") and len(ticket) == len("mask-v1:") + 32
    assert ticket == fitness_key(mask.copy(), "ticket")  # an exact repeat
    assert ticket != fitness_key(permuted, "ticket")  # under a fixed θ₀ a permuted mask is another network
    assert (key_version("topology"), key_version("ticket")) == (canon.VERSION, "mask-v1")
    with pytest.raises(ConfigError, match=r"^unknown fitness mode 'lucky' \(known: topology, ticket\)$"):
        fitness_key(mask, "lucky")


def test_a_ticket_mode_search_keys_masks_exactly_and_resumes(tmp_path) -> None:
    from helpers import tiny_config

    import lotterysearch as ls
    from lotterysearch.training.fitness import fitness_key

    cfg = tiny_config(evaluator="local", fitness={"mode": "ticket"}, ga={"align": False, "generations": 2})
    run = ls.create_run(cfg, tmp_path)
    run.optimize(2)
    run.close()
    with ls.open_run(tmp_path, "tiny-001") as again:
        again.resume()
        everyone = again.individuals()
        assert all(i.class_key.startswith("mask-v1:") for i in everyone)
        for i in everyone:  # the key is the mask's own bits
            assert i.class_key == fitness_key(i.mask, "ticket")
        by_key: dict[str, set[bytes]] = {}
        for i in everyone:
            by_key.setdefault(i.class_key, set()).add(i.packed)
        assert all(len(v) == 1 for v in by_key.values())  # one mask per key: only repeats are skipped
        versions = {c.algo_version for c in again.store.classes(again.id).values()}
        assert versions == {"mask-v1"}
