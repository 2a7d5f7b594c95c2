"""The lottery-ticket-regime section: its budgets and verdicts by hand, then end to end on a small MLP."""

from __future__ import annotations

import dataclasses
import math

import pytest

import lotterysearch as ls
from experiments import ga
from experiments import lenet_ticket as lt
from experiments.common import Context
from lotterysearch.settings import TrainingConfig


def test_every_baseline_is_paired_with_the_search_by_init() -> None:
    d = lt.paired({0: 0.98, 1: 0.97, 2: 0.99}, {0: 0.97, 1: 0.965, 2: 0.98, 7: 0.5})
    diffs = [0.01, 0.005, 0.01]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    assert d["n"] == 3 and d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(sd)
    assert ga.verdict(d) == "better"  # 0.00833 > 2 · 0.00167
    assert ga.verdict(lt.paired({0: 0.9, 1: 0.9}, {0: 0.905, 1: 0.896})) == "indistinguishable"
    assert ga.verdict(lt.paired({0: 0.9}, {1: 0.8})) == "no data"  # no θ₀ in common


def _by_hand(ga: dict[int, float], shifts: dict[str, list[float]], densities=(0.0703, 0.0361)) -> dict:
    """Section results for 3 inits with the GA's confirmed accuracies ``ga`` and every other method's the
    GA's minus ``shifts[method]`` points, init by init (the same at every density)."""
    minus = {m: {t: ga[t] - x / 100 for t, x in zip(ga, xs, strict=True)} for m, xs in shifts.items()}
    rows = []
    for t in ga:
        at = {}
        for d in densities:
            at[f"{d:g}"] = {
                "test": {
                    "ga": ga[t],
                    **{m: minus[m][t] for m in ("imp_short", "imp_rate", "synflow", "random")},
                },
                "density": {"ga": d},
                "stopped": {"generations": 4, "steps": 10000, "density": d, "test": ga[t]},
                "fresh_init": minus["fresh"][t],
            }
        rows.append({"theta0": t, "steps": {"ga": 24000}, "at": at})
    full = {
        f"{d:g}": {"test": {str(t): a for t, a in minus["imp_full"].items()}, "steps": 36000}
        for d in densities
    }
    return {
        "densities": list(densities),
        "rows": rows,
        "imp_full": {"at": full},
        "held_out": None,
        "settings": {"variants": ["ga"]},
    }


def test_targets_are_decided_by_the_familys_verdicts_and_say_where_the_screen_differed() -> None:
    res = _by_hand(
        {0: 0.980, 1: 0.981, 2: 0.982},
        {
            "synflow": [1.50, 1.51, 1.49],  # t(2) = 260: better after any correction
            "random": [1.0, 1.6, 1.3],  # t(2) = 7.5, p = 0.017: beyond 2 SE, not beyond Holm's 28 tests
            "imp_short": [0.3, -0.2, 0.1],
            "imp_rate": [0.3, -0.2, 0.1],
            "imp_full": [-0.01, 0.01, 0.0],  # level: TOST's t(2) = 0.2 / (0.01/√3) = 34.6, p = 0.0004
            "fresh": [1.2, 1.3, 1.1],
        },
    )
    assert lt.margin(res) == (0.2, False)  # these results did not store it: the settings' own, declared after
    decided = lt.verdicts(res)
    assert len(decided) == 2 * 7 and {v.family_size for v in decided.values()} == {28}
    d = 0.0703
    assert decided[("table", d, "random")].difference.differences == pytest.approx((1.0, 1.6, 1.3))
    assert decided[("table", d, "synflow")].kind == "better"
    assert lt.screen(*lt.compared(res)[("table", d, "random")]) == "better"
    assert decided[("table", d, "random")].kind == "inconclusive"
    assert decided[("stopped", d)].kind == "equivalent"
    t = lt.targets(res)
    assert (t["first"], t["screened_first"]) == (False, True)  # random search is not shown beaten
    assert (t["second"], t["screened_second"]) == (True, True)  # within 0.2 points at 10000/36000 steps
    assert t["close"][d]["steps_ratio"] == pytest.approx(10000 / 36000)
    assert (t["stretch"], t["screened_stretch"]) == (False, False)
    assert lt._outcome(t["first"], t["screened_first"], no="not shown") == (
        "**not shown**, changed from reached under the 2-SE screen"
    )
    assert lt._said(res, ("table", d, "random")) == "inconclusive (was better)"
    assert lt._said(res, ("stopped", d)) == "equivalent within ±0.20"


def test_imp_takes_eighteen_rounds_to_the_papers_sparsest_ticket() -> None:
    # layerwise 20% (output layer 10%) of LeNet-300-100: 0.8^18 = 1.8% of the hidden layers' weights
    assert lt.imp_rounds(lt.MODEL, [1 / d for d in lt.DENSITIES]) == 18


def test_the_seeds_sit_on_the_dense_lineages_ladder_just_below_each_density() -> None:
    # k magnitude prunes of 49% keep 0.51^k of a layer: the seed at 0.51^1, and every lineage's rungs 4, 5, 6
    # at 6.8, 3.5, 1.8% (hidden layers), each just below a bound of 7.03, 3.61, 1.89%
    s = lt.SETTINGS["small"]
    assert lt.seed_compressions(s.strength, s.seed_rungs) == tuple(
        round((1 - s.strength) ** -k, 3) for k in s.seed_rungs
    )
    assert lt.seed_compressions(0.49, (0, 1, 2)) == (1.0, 1.961, 3.845)
    rungs = [(1 - s.strength) ** k for k in (4, 5, 6)]
    assert all(0.9 * d < r <= d for r, d in zip(rungs, lt.DENSITIES, strict=True))
    # the search stopped where the dense lineage reaches each density: 4, 5, 6 generations
    assert [lt.imp_rounds(lt.MODEL, [1 / d], s.strength) for d in lt.DENSITIES] == [4, 5, 6]


def test_the_search_is_in_ticket_mode_on_theta0_with_the_dense_mask_among_its_seeds(tmp_path) -> None:
    s = lt.SETTINGS["small"]
    cfg = lt.search_config(s, 2, "ga_random_prune", tmp_path, "")
    assert cfg.fitness.mode == "ticket" and cfg.fitness.init_seeds == (2,) and cfg.seeding.init_seeds == (2,)
    assert 1.0 in cfg.seeding.compressions and cfg.seeding.random_share == 0
    assert cfg.ga.mutations == ("prune",) and cfg.ga.mutation_rate == 1.0 and not cfg.ga.align
    main = lt.search_config(s, 2, "ga", tmp_path, "")
    assert main.ga.mutations == ("magnitude_prune",) and main.ga.crossover_rate == 0
    assert main.fitness.steps == s.fitness_steps == 2000
    assert lt.search_config(s, 2, "ga_crossover", tmp_path, "").ga.crossover_rate == 0.5
    assert lt.search_config(s, 2, "ga_short_fitness", tmp_path, "").fitness.steps == 1000


def test_a_search_stopped_early_is_the_first_generations_of_a_longer_one(tmp_path) -> None:
    s = lt.LeNetTicketSettings(
        inits=(0,),
        fitness_steps=10,
        generations=3,
        model="mlp:40-100-100-10",
        dataset="mnist1d",
        evaluator="local",
    )
    runs = {}
    for g in (2, 3):
        cfg = lt.search_config(dataclasses.replace(s, generations=g), 0, "ga", tmp_path / str(g), "")
        with ls.search(cfg, local=True) as run:
            runs[g] = run.individuals()

    def born(inds, g):  # what each individual born by generation g is, and how it scored
        return [
            (i.id, i.generation, i.mask.pack(), i.accuracy, i.evaluated) for i in inds if i.generation <= g
        ]

    assert max(i.generation for i in runs[3]) == 3 and born(runs[3], 2) == born(runs[2], 2)
    # stopped at 30% of the weights, which the dense lineage reaches in two prunes: the two-generation run
    stop = lt.stopped_search(s, runs[3], 1 / 0.3)
    assert stop["generations"] == 2
    assert stop["steps"] == sum(i.evaluated for i in runs[2]) * s.fitness_steps
    best = lt.best_at(runs[2], 1 / 0.3)
    assert best is not None and stop["winner"].mask == best.mask and stop["winner"].accuracy == best.accuracy


def test_the_section_runs_every_method_at_the_searchs_steps_and_renders(tmp_path) -> None:
    s = lt.LeNetTicketSettings(
        inits=(0, 1),
        fitness_steps=10,
        population=4,
        generations=3,
        densities=(0.3,),
        variants=("ga", "ga_random_prune"),
        confirm=TrainingConfig(steps=20, optimizer="adam", lr=0.01, batch_size=32, eval_every=10, fused=True),
        model="mlp:40-100-100-10",
        dataset="mnist1d",
        evaluator="local",
    )
    ctx = Context("small", tmp_path, "", progress=lambda line: None)
    res = lt.measure(s, ctx)
    assert res["imp_full"] is None  # no section 5 results in this root
    for row in res["rows"]:
        budget = row["steps"]["ga"]
        assert budget > 0 and budget % 10 == 0
        # IMP's short rounds share the search's steps: rounds x round length ≤ S, within one round's rounding
        assert (
            row["imp_rounds"] * row["imp_round_steps"]
            <= budget
            < (row["imp_rounds"] + 1) * row["imp_round_steps"] + row["imp_rounds"]
        )
        at = row["at"]["0.3"]
        assert set(at["test"]) == {"ga", "ga_random_prune", "imp_short", "imp_rate", "synflow", "random"}
        stop = at["stopped"]  # the search stopped at 0.3's rung: fewer steps, and a confirmed winner
        assert 0 < stop["steps"] <= budget and stop["density"] <= 0.3 + 1e-4 and 0 < stop["test"] <= 1
        assert all(m <= 0.3 + 1e-4 for m in at["density"].values())
        assert at["density"]["synflow"] == pytest.approx(0.3, abs=1e-3)
        assert 0 < at["fresh_init"] <= 1 and all(0 < a <= 1 for a in at["test"].values())
        o = at["with_imp_short"]["ga"]
        assert o["kappa"] == pytest.approx((o["jaccard"] - o["chance"]) / (1 - o["chance"]))
    rendered = lt.render(res, ctx)
    assert (
        "| GA: magnitude prune | 2/2 |" in rendered.body and "| IMP at the GA's rate | 2/2 |" in rendered.body
    )
    assert "IMP, full rounds" not in rendered.body  # no section 5 results: no row, no invented numbers
    assert rendered.answer.startswith("**") and "Target 2" in rendered.answer


def test_the_held_out_check_runs_imp_as_section_5_does_and_decides_target_2_on_both(
    tmp_path, monkeypatch
) -> None:
    # a tiny section-5 config: IMP's 20% rounds to 7% of an MNIST-1D MLP, 10 steps a round
    configs = tmp_path / "configs"
    configs.mkdir()
    text = (lt.ROOT / "configs" / "lenet_imp_small.toml").read_text()
    for old, new in (
        ('dataset = "mnist"', 'dataset = "mnist1d"'),
        ('model = "mlp:784-300-100-10:glorot"', 'model = "mlp:40-100-100-10"'),
        ('evaluator = "ray"', 'evaluator = "local"'),
        ("init_seeds = [0, 1, 2]", "init_seeds = [0]"),
        ("rounds = 18", "rounds = 12"),
        ("steps = 3000", "steps = 20"),
        ("eval_every = 100", "eval_every = 10"),
    ):
        assert old in text
        text = text.replace(old, new)
    (configs / "tiny.toml").write_text(text)
    monkeypatch.setattr(lt, "ROOT", tmp_path)
    monkeypatch.setitem(lt.lth.CONFIGS, "small", "tiny.toml")
    s = lt.LeNetTicketSettings(
        inits=(0,),
        fitness_steps=10,
        densities=(0.0703,),
        held_out=(3, 4),
        confirm=TrainingConfig(steps=20, optimizer="adam", lr=0.01, batch_size=32, eval_every=10, fused=True),
        model="mlp:40-100-100-10",
        dataset="mnist1d",
        evaluator="local",
    )
    ctx = Context("small", tmp_path / "ws", "", progress=lambda line: None)
    data = lt.load_dataset("mnist1d", 0)
    held = lt.held_out_check(s, data, ctx, tmp_path / "tmp")
    at = held["at"]["0.0703"]
    assert held["inits"] == [3, 4] and at["imp_steps"] == 12 * 20  # IMP's ticket at 7% is round 12's
    assert set(at["ga"]) == set(at["imp_full"]) == set(at["steps"]) == {"3", "4"}
    assert at["generations"] == lt.imp_rounds(s.model, [1 / 0.0703], s.strength)
    assert all(0 < a <= 1 for a in (*at["ga"].values(), *at["imp_full"].values()))
    # the verdict: shown within 0.2 points (TOST) at most half of IMP's steps, on every held-out init's steps
    res = {
        "densities": [0.0703],
        "held_out": held,
        "imp_full": None,
        "rows": [],  # only the held-out check ran
        "settings": dataclasses.asdict(s) | {"confirm": dataclasses.asdict(s.confirm)},
    }
    decided = lt.verdicts(res)
    assert decided[("table", 0.0703, "synflow")].kind == "no data"
    v = decided[("held", 0.0703)]
    close = lt.close_to_imp(lt.stopped_at(res, 0.0703, held_out=True), v)
    gaps = [100 * (at["ga"][t] - at["imp_full"][t]) for t in ("3", "4")]
    assert v.difference.differences == pytest.approx(gaps) and v.margin == 0.2
    assert close["gap"]["mean"] == pytest.approx(sum(gaps) / 200)
    assert close["close"] == (v.kind == "better" or v.equivalent)
    assert close["reached"] == (close["close"] and max(at["steps"].values()) <= 120)
    assert "| 7.03% |" in lt.stopped_table(res, held_out=True)
