"""The frontier view: each method's confirmed ticket per init at each density, and what it cost to find,
against hand counts on a real tiny IMP run and a real tiny search (in this process)."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_config, toml_of

import lotterysearch as ls
from lotterysearch import api
from lotterysearch.cli import main
from lotterysearch.readers import frontier
from lotterysearch.settings import TrainingConfig, parse_imp_config
from lotterysearch.storage.store import Store

STEPS = 40
IMP = {
    "kind": "imp",
    "name": "imp50",
    "dataset": "synthetic",
    "model": "mlp:16-24-24-4",
    "seed": 3,
    "evaluator": "local",
    "imp": {"init_seeds": [0, 1], "rounds": 3, "rate": 0.5},
    "training": {"steps": STEPS, "lr": 0.01, "batch_size": 60, "eval_every": 20},
}
TARGETS = (0.6, 0.3, 0.2)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("frontier")
    cfg = api.check_run(parse_imp_config(toml_of(IMP), "<imp>"))
    with ls.imp(cfg, ws) as run:
        imp_id = run.id
    ls.confirm(ws, imp_id, reinit_seeds=(), local=True)  # an IMP run's tickets, each its own round
    search = tiny_config(evaluator="local", name="ga", ga={"population": 6, "generations": 2})
    with api.search(search, ws, local=True) as run:
        search_id = run.id
    protocol = TrainingConfig(steps=STEPS, lr=0.01, batch_size=60, eval_every=20)
    ls.confirm(ws, search_id, front=True, protocol=protocol, reinit_seeds=(), local=True)
    return ws, imp_id, search_id, protocol


def test_an_imp_ticket_is_its_trajectory_first_round_at_or_below_the_density(workspace) -> None:
    ws, imp_id, _, _ = workspace
    with Store.open(ws) as store:
        got = frontier.run_tickets(store, imp_id, TARGETS)
        rounds = store.imp_rounds(imp_id)
        inds = {i.id: i for i in store.individuals(imp_id)}
    assert {(t.init, t.target) for t in got} == {(s, d) for s in (0, 1) for d in TARGETS}
    for t in got:
        mine = sorted((r for r in rounds if r.trajectory == t.init), key=lambda r: r.round)
        first = next(r for r in mine if r.round > 0 and inds[r.individual_id].density <= t.target)
        assert t.individual_id == first.individual_id and t.method == "imp50"
        # the rounds before the ticket's own, one after another: both step counts are round × steps
        assert t.total_steps == t.critical_path_steps == first.round * STEPS
        assert t.test_accuracy == first.result["early_stop"]["test_accuracy"]
        assert t.density == inds[first.individual_id].density <= t.target


def test_a_search_ticket_is_its_best_by_fitness_and_costs_its_run_up_to_its_generation(workspace) -> None:
    ws, _, search_id, protocol = workspace
    with Store.open(ws) as store:
        got = frontier.run_tickets(store, search_id, [1.0, 0.4], protocol)
        inds = {i.id: i for i in store.individuals(search_id)}
        gens = {g.gen: g for g in store.generations(search_id)}
        confirmed = {c.individual_id: c for c in store.confirmations(search_id) if c.init == "own"}
    assert got, "no search ticket"
    for t in got:
        at = [i for i in confirmed if inds[i].density <= t.target and confirmed[i].seed == t.init]
        best = max(at, key=lambda i: (inds[i].accuracy, inds[i].density))
        assert t.individual_id == best
        g = inds[best].generation
        assert t.total_steps == sum(gens[k].steps for k in gens if k <= g)
        assert t.critical_path_steps == sum(gens[k].critical_path_steps for k in gens if k <= g)
        assert t.critical_path_steps < t.total_steps  # a generation's trainings ran side by side


def test_rows_summarise_each_method_over_its_inits(workspace, tmp_path) -> None:
    ws, imp_id, _, _ = workspace
    with Store.open(ws) as store:
        found = frontier.run_tickets(store, imp_id, TARGETS)
    rows = frontier.rows(found)
    assert [(r.method, r.target) for r in rows] == [("imp50", d) for d in TARGETS]
    for r in rows:
        mine = [t for t in found if t.target == r.target]
        accs = [t.test_accuracy for t in mine]
        assert r.inits == (0, 1) and r.accuracy[0] == pytest.approx(sum(accs) / 2)
        assert r.accuracy[1] <= min(accs) and r.accuracy[2] >= max(accs)
        assert r.total_steps == sum(t.total_steps for t in mine) / 2
    text = frontier.table(rows)
    assert len([line for line in text.splitlines() if line.startswith("| ≤")]) == len(TARGETS)
    parsed = json.loads(frontier.as_json(rows))
    assert [p["density_at_most"] for p in parsed] == list(TARGETS)
    png = frontier.figure(rows, tmp_path / "f.png", 0.2, "imp50")
    assert png.stat().st_size > 10_000


def test_the_command_shows_every_method(workspace, capsys, tmp_path) -> None:
    ws, *_ = workspace
    plot = tmp_path / "frontier.png"
    assert (
        main(
            ["frontier", "--workspace", str(ws), "--density", "0.6", "--density", "0.3", "--plot", str(plot)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| ≤ 60.00% | imp50 | 2 |" in out and "| ≤ 30.00% | imp50 | 2 |" in out
    assert "| ga |" in out and plot.stat().st_size > 10_000


def test_bad_densities_are_one_line_errors() -> None:
    with pytest.raises(ls.LotterySearchError, match="at least one density"):
        frontier.check_targets([])
    with pytest.raises(ls.LotterySearchError, match=r"in \(0, 1\], got 0"):
        frontier.check_targets([0.5, 0.0])
    assert frontier.check_targets([0.1, 0.5, 0.1]) == (0.5, 0.1)
