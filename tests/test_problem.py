"""The search problem: its variation carries the GA section's operators to the children."""

from __future__ import annotations

import numpy as np
from helpers import tiny_config

from lotterysearch.evolution.problem import MaskProblem


def test_children_are_made_by_the_configured_operators_only() -> None:
    cfg = tiny_config(
        ga={
            "crossovers": ["layer_density"],
            "mutations": ["neuron_prune", "layer_density"],
            "crossover_rate": 1.0,
            "mutation_rate": 1.0,
        }  # fmt: skip
    )
    problem = MaskProblem(cfg)
    v = problem.variation()
    assert v.crossovers == ("layer_density_crossover",)
    assert v.mutations == ("neuron_prune_mutation", "layer_density_mutation")
    seeds = problem.seeds(np.random.default_rng(0))
    kids = problem.children([(i, c.mask) for i, c in enumerate(seeds)], np.random.default_rng(1))
    assert len(kids) == len(seeds)
    for kid in kids:
        ops = kid.operator.split("+")
        assert ops[0] == "layer_density_crossover" and ops[1] in (
            "neuron_prune_mutation",
            "layer_density_mutation",
        )
        assert kid.origin == "child" and len(kid.parents) == 2


def test_default_operators_are_those_of_earlier_runs() -> None:
    v = MaskProblem(tiny_config()).variation()
    assert v.crossovers == ("layer_crossover", "neuron_crossover")
    assert v.mutations == ("move_mutation", "grow_prune_mutation")


def test_variation_takes_every_ga_field_it_shares_by_name() -> None:
    cfg = tiny_config(
        fitness={"mode": "ticket"},
        ga={
            "align": False,
            "mutations": ["drawn_prune"],
            "mutation_strength": 0.3,
            "strength_min": 0.2,
            "strength_max": 0.4,
            "strength_tau": 0.5,
            "strength_per_layer": True,
            "regrow": 0.25,
            "crossover_rate": 0.1,
            "mutation_rate": 0.9,
        },
    )
    v = MaskProblem(cfg).variation()
    assert (v.cx_rate, v.mut_rate, v.mutation_strength, v.align) == (0.1, 0.9, 0.3, False)
    assert (v.strength_min, v.strength_max, v.strength_tau, v.strength_per_layer, v.regrow) == (
        0.2,
        0.4,
        0.5,
        True,
        0.25,
    )
    assert v.mutations == ("drawn_prune_mutation",)


def test_children_draw_their_own_batch_order_and_a_clone_keeps_its_parents() -> None:
    cfg = tiny_config(
        fitness={"mode": "ticket"},
        ga={"align": False, "order_seeds": True, "crossover_rate": 0.0, "mutation_rate": 0.5},
    )
    problem = MaskProblem(cfg)
    seeds = problem.seeds(np.random.default_rng(0))[:6]
    parents = [(i, c.mask) for i, c in enumerate(seeds)]
    genes = [{"order": 100 + i} for i in range(6)]
    kids = problem.children(parents, np.random.default_rng(1), genes=genes)
    again = problem.children(parents, np.random.default_rng(1), genes=genes)
    assert [k.order for k in kids] == [k.order for k in again]  # drawn from the run's generator
    for kid in kids:
        if kid.operator == "clone":
            assert kid.order == 100 + kid.parents[0]
        else:
            assert kid.order is not None and kid.order not in range(100, 106)
    assert {k.operator == "clone" for k in kids} == {True, False}
