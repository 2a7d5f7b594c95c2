"""What the search keeps of a training: the kept weights, the same whichever kernel trained the mask."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from convtools import one_thread  # noqa: F401 - a fixture
from masktools import random_mask, random_masks

from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model, prunable_layers
from lotterysearch.errors import MaskError
from lotterysearch.evolution.operators import vary
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import FitnessConfig, TrainingConfig
from lotterysearch.training.compaction import compaction
from lotterysearch.training.family import CONV_FAMILY, MLP_FAMILY, FitnessPlan
from lotterysearch.training.fitness import evaluate_masks
from lotterysearch.training.trained import pack_weights, unpack_weights
from lotterysearch.training.trainer import train


def _expected(model: torch.nn.Module, mask: Mask) -> dict[str, np.ndarray]:
    """The trained weights on the effective subnetwork, 0 elsewhere (float32)."""
    eff = mask.effective()
    return {
        n: np.where(eff[n].numpy(), layer.weight.detach().numpy(), 0.0)
        for n, layer in prunable_layers(model).items()
    }


def _close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], tol: float) -> None:
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=tol, rtol=2e-3, err_msg=name)


def test_packed_weights_round_trip_at_half_precision_with_zeros_off_the_effective_subnetwork() -> None:
    model = build_model("mlp:16-12-4", 3)
    mask = Mask({"fc1": np.eye(12, 16, dtype=bool), "fc2": np.eye(4, 12, dtype=bool)})
    mask["fc2"][:, 3] = False  # hidden neuron 3 now reaches no output: its incoming weight is not effective
    data = pack_weights(model, mask)
    assert len(data) == 2 * mask.kept()
    got = unpack_weights(data, mask)
    want = _expected(model, mask)
    assert got["fc1"][3, 3] == 0 and want["fc1"][3, 3] == 0 and model.layers["fc1"].weight[3, 3] != 0
    _close(got, want, 1e-3)
    assert not got["fc1"][~mask["fc1"].numpy()].any()  # pruned positions are 0
    with pytest.raises(MaskError, match=r"^trained weights hold 16 values for a mask that keeps 15$"):
        unpack_weights(data + b"\0\0", mask)


@pytest.mark.usefixtures("one_thread")
def test_evaluate_masks_keeps_the_first_init_seeds_network_and_the_same_objectives(synthetic) -> None:
    spec = "mlp:16-64-64-4"
    masks = random_masks(spec, [0.3, 0.05], seed=2)
    cfg = FitnessConfig(steps=20, init_seeds=(4, 5), lr=0.02)
    plain = evaluate_masks(masks, spec, synthetic, cfg)
    kept = evaluate_masks(masks, spec, synthetic, dataclasses.replace(cfg, keep_weights=True))
    assert [o.weights for o in plain] == [None, None]
    assert [o.accuracy for o in kept] == [o.accuracy for o in plain]
    for mask, o in zip(masks, kept, strict=True):
        model = build_model(spec, 4)
        train(model, mask, synthetic, cfg.training(), seed=4)
        _close(unpack_weights(o.weights, mask), _expected(model, mask), 2e-3)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kernel", ["plain", "compact", "csr", "compact+csr"])
def test_a_mask_trained_alone_keeps_its_weights_in_the_full_networks_places(synthetic, kernel: str) -> None:
    spec = "mlp:16-64-64-4"
    (mask,) = random_masks(spec, [0.08], seed=7)
    comp = compaction(mask) if "compact" in kernel else None
    if comp is not None:
        assert comp.widths != (16, 64, 64, 4)  # the compacted network is smaller
    sparse = (True, True, False) if "csr" in kernel else None
    plan = FitnessPlan(False, comp, sparse)
    assert plan.kernel == kernel
    training = TrainingConfig(steps=25, lr=0.02)
    init = build_model(spec, 1)
    result, net = MLP_FAMILY.train_alone(mask, plan, init, synthetic, "forward", 1, training, keep=True)
    reference = build_model(spec, 1)
    ref = train(reference, mask, synthetic, training, seed=1)
    assert result.val_accuracy == ref.val_accuracy
    _close(unpack_weights(pack_weights(net, mask), mask), _expected(reference, mask), 2e-3)
    assert torch.equal(
        init.layers["fc1"].weight, build_model(spec, 1).layers["fc1"].weight
    )  # the init is left alone
    assert MLP_FAMILY.train_alone(mask, plan, init, synthetic, "forward", 1, training)[1] is None


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("compacted", [False, True])
def test_a_convnet_keeps_its_weights_batched_or_alone(compacted: bool) -> None:
    spec = "cnn1d:40:25k5-25-25:10"
    data = load_dataset("mnist1d", 0)
    mask = prune(build_model(spec, 0), "synflow", 30, iterations=5)
    training = TrainingConfig(steps=10, lr=0.01)
    reference = build_model(spec, 2)
    train(reference, mask, data, training, seed=2)
    plan = FitnessPlan(False, compaction(mask) if compacted else None)
    init = build_model(spec, 2)
    _, net = CONV_FAMILY.train_alone(mask, plan, init, data, "forward", 2, training, keep=True)
    _close(unpack_weights(pack_weights(net, mask), mask), _expected(reference, mask), 2e-3)
    cfg = FitnessConfig(steps=10, lr=0.01, init_seeds=(2,), keep_weights=True)
    assert CONV_FAMILY.plan(mask, build_model(spec, 0), "forward", cfg.batch_size).batched
    (o,) = evaluate_masks([mask], spec, data, cfg)
    _close(unpack_weights(o.weights, mask), _expected(reference, mask), 2e-3)


# ---- the magnitude (Lamarckian) mutation in a search ------------------------------------------------------
def _magnitude_config(mode: str, generations: int = 2, mutation: str = "magnitude", **ga):  # noqa: ANN202
    from helpers import tiny_config

    seeds = [0] if mode == "ticket" else [0, 1]
    return tiny_config(
        evaluator="local",
        fitness={"mode": mode, "init_seeds": seeds},
        ga={
            "mutations": [mutation],
            "mutation_rate": 1.0,
            "crossover_rate": 0.0,
            "generations": generations,
            "align": mode != "ticket",
            **ga,
        },
    )


@pytest.mark.parametrize("mode", ["ticket", "topology"])
def test_a_magnitude_mutation_prunes_the_parents_smallest_trained_weights(tmp_path, mode: str) -> None:
    import lotterysearch as ls
    from lotterysearch.evolution.operators import trained_weights_for

    with ls.search(_magnitude_config(mode), tmp_path) as run:
        store, everyone = run.store, run.individuals()
        classes = store.classes(run.id)
        for key, rec in classes.items():  # every training kept its weights: 2 bytes a kept weight
            rep = Mask.unpack(rec.representative, run.record.shapes)
            assert len(store.trained_weights(run.id, key)) == 2 * rep.kept()
        by_id = {i.id: i for i in everyone}
        children = [i for i in everyone if i.origin == "child" and i.operator == "magnitude_mutation"]
        assert len(children) >= 8
        for child in children:
            parent = by_id[child.parents[0]]
            rep = Mask.unpack(classes[parent.class_key].representative, run.record.shapes)
            w = unpack_weights(store.trained_weights(run.id, parent.class_key), rep)
            if parent.mask != rep:  # an isomorph of the class's trained mask: its weights relabelled
                w = trained_weights_for(parent.mask, rep, w)
            for name in rep.names:
                had, has = parent.mask[name].numpy(), child.mask[name].numpy()
                removed, stayed = np.abs(w[name][had & ~has]), np.abs(w[name][had & has])
                m = max(1, math.floor(0.05 * had.sum() + 0.5))  # mutation_strength of the live weights
                assert removed.size == m
                assert (has & ~had).sum() == removed.size  # as many regrown: the layer keeps its density
                assert removed.max() <= stayed.min()  # the smallest trained magnitudes go


def test_a_magnitude_prune_child_is_one_imp_round_of_its_parent_in_ticket_mode(tmp_path) -> None:
    import lotterysearch as ls

    with ls.search(_magnitude_config("ticket", mutation="magnitude_prune"), tmp_path) as run:
        store, everyone = run.store, run.individuals()
        by_id = {i.id: i for i in everyone}
        children = [i for i in everyone if i.operator == "magnitude_prune_mutation"]
        assert len(children) >= 8
        for child in children:
            parent = by_id[child.parents[0]]
            w = unpack_weights(store.trained_weights(run.id, parent.class_key), parent.mask)
            for name in parent.mask.names:
                had, has = parent.mask[name].numpy(), child.mask[name].numpy()
                assert not (has & ~had).any()  # pruned only
                removed, stayed = np.abs(w[name][had & ~has]), np.abs(w[name][had & has])
                p = 0.025 if name == parent.mask.names[-1] else 0.05  # the output layer at half the rate
                assert removed.size == min(max(1, math.floor(p * had.sum() + 0.5)), had.sum() - 1)
                assert stayed.size == 0 or removed.max() <= stayed.min()


def test_ticket_mode_crossover_children_read_their_parents_weights_unpermuted() -> None:
    """Under θ₀ a position is a weight of θ₀: a crossed child's weights are parent i's on the same
    positions, 0 where parent i had none, never relabelled by an alignment."""
    from lotterysearch.evolution.problem import MaskProblem

    cfg = _magnitude_config("ticket", mutation="magnitude_prune", crossover_rate=1.0, crossovers=["neuron"])
    rng = np.random.default_rng(0)
    a, b = (random_mask(rng, widths=(16, 12, 4), density=0.5) for _ in range(2))
    weights = {
        i: {n: rng.normal(size=s) * m[n].numpy() for n, s in m.shapes.items()} for i, m in enumerate((a, b))
    }

    def trained(i: int):  # noqa: ANN202
        return (a, b)[i], weights[i]

    problem = MaskProblem(cfg)
    kids = problem.children([(0, a), (1, b)], np.random.default_rng(3), trained)

    def unpermuted(i: int, child: Mask) -> dict[str, np.ndarray]:
        return {n: weights[i][n] * child[n].numpy() for n in child.names}

    expected = vary([a, b], np.random.default_rng(3), problem.variation(), unpermuted)
    assert [k.operator for k in kids] == ["neuron_crossover+magnitude_prune_mutation"] * 2
    assert [k.mask for k in kids] == [c.mask for c in expected]
    assert kids[0].mask != a and kids[1].mask != b


def test_a_magnitude_search_resumes_to_the_same_children(tmp_path) -> None:
    import lotterysearch as ls

    cfg = _magnitude_config("ticket", generations=3)
    with ls.search(cfg, tmp_path / "once") as run:
        once = [(i.id, i.packed, i.operator) for i in run.individuals()]
    run = ls.create_run(cfg, tmp_path / "twice")
    run.optimize(1)
    run.close()
    with ls.open_run(tmp_path / "twice", run.id) as again:
        again.resume()
        assert [(i.id, i.packed, i.operator) for i in again.individuals()] == once


def test_a_magnitude_mutation_is_refused_where_workers_breed() -> None:
    from helpers import tiny_config

    from lotterysearch.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        tiny_config(ga={"mutations": ["move", "magnitude"], "mode": "steady_state"})
    assert str(e.value) == (
        "field 'ga.mutations': magnitude reads the parents' trained weights, which the steady_state workers"
        ' that breed do not hold; drop it or set ga.mode = "generational"'
    )
