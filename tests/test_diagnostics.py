"""Search diagnostics (``evolution.diagnostics``): lineages, founders, overlap and ancestry on hand-built
individuals, and the same read from a stored run through the API and the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from helpers import tiny_config

from lotterysearch import api
from lotterysearch.cli import main
from lotterysearch.core.masks import Mask
from lotterysearch.evolution.diagnostics import (
    ancestry,
    founders_of,
    generation_diagnostics,
    mean_pairwise_overlap,
)


@dataclass
class Ind:
    id: int
    generation: int
    parents: tuple[int, ...] = ()
    operator: str = ""
    origin: str = "seed"
    accuracy: float = 0.5
    density: float = 0.1


@dataclass
class Strong(Ind):
    strength: float = 0.05


def family() -> dict[int, Ind]:
    """Seeds 0, 1, 2; 3 = mutant of 0; 4 = cross of 0 and 1; 5 = mutant of 3; 6 = cross of 4 and 5."""
    rows = [
        Ind(0, 0),
        Ind(1, 0),
        Ind(2, 0),
        Ind(3, 1, (0,), "move", "child"),
        Ind(4, 1, (0, 1), "layer_crossover", "child"),
        Strong(5, 2, (3,), "grow_prune", "child", strength=0.125),
        Ind(6, 2, (4, 5), "neuron_crossover+move", "child"),
    ]
    return {r.id: r for r in rows}


def test_lineage_is_the_set_of_generation_zero_ancestors() -> None:
    f = founders_of(family())
    assert f == {
        0: {0},
        1: {1},
        2: {2},
        3: {0},
        4: {0, 1},
        5: {0},
        6: {0, 1},
    }


def test_distinct_lineages_and_founders_per_generation() -> None:
    inds = family()
    pops = [(0, [0, 1, 2]), (1, [3, 4, 2]), (2, [5, 6, 3]), (3, [5, 3])]
    d = generation_diagnostics(pops, inds)
    # gen 1: {0}, {0,1}, {2} are three lineages of three founders; gen 2: {0}, {0,1}, {0}: two of two;
    # gen 3: one lineage, one founder
    assert [(x.gen, x.size, x.lineages, x.founders) for x in d] == [
        (0, 3, 3, 3),
        (1, 3, 3, 3),
        (2, 3, 2, 2),
        (3, 2, 1, 1),
    ]
    assert all(np.isnan(x.overlap) for x in d)


def test_mean_pairwise_overlap_by_hand() -> None:
    a = Mask({"fc1": np.array([[1, 1, 0, 0]], bool)})
    b = Mask({"fc1": np.array([[1, 0, 1, 0]], bool)})
    c = Mask({"fc1": np.array([[1, 1, 0, 0]], bool)})
    # J(a,b) = 1/3, J(a,c) = 1, J(b,c) = 1/3
    assert mean_pairwise_overlap([a, b, c]) == pytest.approx((1 / 3 + 1 + 1 / 3) / 3)
    assert mean_pairwise_overlap([a]) == 1.0
    d = generation_diagnostics([(0, [0, 1, 2])], family(), {0: a, 1: b, 2: c})
    assert d[0].overlap == pytest.approx(5 / 9)


def test_ancestry_walks_every_parent_once_and_reads_a_strength() -> None:
    chain = ancestry(6, family())
    assert [a.id for a in chain] == [6, 4, 5, 0, 1, 3]  # breadth first; 0 met twice, listed once
    assert [a.operator for a in chain[:3]] == ["neuron_crossover+move", "layer_crossover", "grow_prune"]
    assert [a.strength for a in chain] == [None, None, 0.125, None, None, None]
    assert chain[0].parents == (4, 5)
    assert "neuron_crossover+move of 4+5" in chain[0].line() and "strength 0.125" in chain[2].line()
    assert chain[3].line().split("  ")[-1] == "(seed)"


def test_a_stored_run_through_the_api_and_the_cli(tmp_path, capsys) -> None:
    cfg = tiny_config(evaluator="local", ga={"generations": 2})
    with api.create_run(cfg, tmp_path, local=True) as run:
        run.optimize()
        diag = run.diagnostics()
        front = run.front()
        tree = run.ancestry(front[-1].id)
        history = run.history()
        everyone = {i.id: i for i in run.individuals()}
        rid = run.id
    assert [d.gen for d in diag] == [0, 1, 2]
    assert all(d.size == cfg.ga.population for d in diag)
    assert diag[0].lineages == diag[0].founders == cfg.ga.population  # every seed is its own founder
    expected = founders_of(everyone)
    for d, g in zip(diag, history, strict=True):
        assert d.lineages == len({expected[i] for i in g.population})
        masks = [everyone[i].mask for i in g.population]
        assert d.overlap == pytest.approx(mean_pairwise_overlap(masks))
    assert tree[0].id == front[-1].id and all(a.generation <= tree[0].generation for a in tree)
    assert all(everyone[a.id].parents == a.parents for a in tree)
    assert main(["lineage", rid, "--workspace", str(tmp_path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [g["lineages"] for g in out["generations"]] == [d.lineages for d in diag]
    assert sorted(map(int, out["ancestry"])) == sorted(i.id for i in front)
    assert main(["lineage", rid, str(front[-1].id), "--workspace", str(tmp_path)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f"ancestry of {front[-1].id}:" and len(text) == 1 + len(tree)
    assert main(["lineage", rid, "99999", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lotterysearch: error: no individual 99999 in run '{rid}' (its ids run from 0 to 23)"


def test_lineage_of_an_unknown_run_or_format_is_one_line(tmp_path, capsys) -> None:
    with api.create_run(tiny_config(evaluator="local", ga={"generations": 0}), tmp_path, local=True) as run:
        run.optimize()
        rid = run.id
    assert main(["lineage", "zzz-001", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lotterysearch: error: ") and "zzz-001" in err[0]
    assert main(["lineage", rid, "--workspace", str(tmp_path), "--format", "xml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lotterysearch: error: --format must be table or json, got 'xml'"
