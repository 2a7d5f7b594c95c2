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
