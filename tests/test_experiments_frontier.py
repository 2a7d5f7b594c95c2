"""IMP's frontier section end to end on tiny settings (in process): every point an IMP run of the service,
every ticket confirmed, steps to find each ticket by hand, and the section rendered with its verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import toml_of

from experiments import frontier
from experiments.common import Context
from lotterysearch.core.overlap import chance_jaccard, jaccard
from lotterysearch.core.units import live_unit_counts

BASE = {
    "kind": "imp",
    "name": "base",
    "dataset": "synthetic",
    "model": "mlp:16-24-24-4",
    "seed": 3,
    "evaluator": "local",
    "imp": {"init_seeds": [0], "rounds": 1, "rate": 0.5, "output_rate": 0.25},
    "training": {"steps": 40, "lr": 0.01, "batch_size": 60, "eval_every": 20},
}
SEARCH = {
    "name": "ga",
    "dataset": "synthetic",
    "model": "mlp:16-24-24-4",
    "seed": 0,
    "evaluator": "local",
    "seeding": {"init_seeds": [0], "compressions": [1.0, 2.0], "random_share": 0.0},
    "ga": {
        "population": 4,
        "generations": 2,
        "crossover_rate": 0.0,
        "mutation_rate": 1.0,
        "mutation_strength": 0.5,
        "mutations": ["adaptive_prune"],
        "align": False,
    },
    "fitness": {"mode": "ticket", "init_seeds": [0], "steps": 20, "lr": 0.01, "batch_size": 60},
}
CS = {
    "kind": "cs",
    "name": "cs",
    "dataset": "synthetic",
    "model": "mlp:16-24-24-4",
    "seed": 3,
    "evaluator": "local",
    "cs": {"init_seeds": [0], "rounds": 2, "penalty": [1e-3]},
    "training": {"steps": 40, "lr": 0.01, "batch_size": 60, "eval_every": 20},
}
SETTINGS = """
base = "base.toml"
dev_inits = [0, 1]
heldout_inits = [2]
reference = "imp50_40"
target_rounds = [1, 2]
density_tolerance = 0.001
equivalence_margin = 0.2
evaluator = "local"

[[point]]
name = "imp50_20"
label = "IMP 50%, 20-step rounds"
rate = 0.5
steps = 20
rounds = 2

[[point]]
name = "oneshot_40"
label = "one-shot"
shots = 1
steps = 40

[[point]]
name = "imp50_40"
label = "IMP 50%, 40-step rounds"
rate = 0.5
steps = 40
rounds = 2

[[point]]
name = "imp50_40_order1"
label = "IMP 50%, 40-step rounds, another batch order"
rate = 0.5
steps = 40
rounds = 2
batch_order = 1
repeats = "imp50_40"

[[point]]
name = "cs"
label = "CS"
cs = "cs.toml"

[[point]]
name = "ga"
label = "GA"
search = "search.toml"

[[point]]
name = "ga1"
label = "GA on one lineage"
control = "ga"
"""


@pytest.fixture(scope="module")
def section(tmp_path_factory) -> tuple[dict, Context, Path]:
    root = tmp_path_factory.mktemp("frontier")
    (root / "base.toml").write_text(toml_of(BASE))
    (root / "frontier.toml").write_text(SETTINGS)
    (root / "search.toml").write_text(toml_of(SEARCH))
    (root / "cs.toml").write_text(toml_of(CS))
    ctx = Context("small", root, "", progress=lambda s: None)
    return frontier.run(ctx, ("dev",), settings=root / "frontier.toml"), ctx, root


def test_every_point_has_a_confirmed_ticket_per_init_and_target_with_its_steps(section) -> None:
    res, _, _ = section
    dev = res["points"]["dev"]
    assert sorted(dev) == ["cs", "ga", "ga1", "imp50_20", "imp50_40", "imp50_40_order1", "oneshot_40"]
    for point in ("imp50_20", "imp50_40", "oneshot_40"):
        per_target = dev[point]
        assert sorted(per_target) == ["1", "2"]
        for k, rows in per_target.items():
            assert sorted(rows) == ["0", "1"]
            for row in rows.values():
                assert row["density"] <= res["targets"][k] + 0.001
                assert 0 <= row["test_accuracy"] <= 1 and row["early_stop_step"] % 20 == 0
                # IMP: the k rounds before the ticket's; one shot: the dense training before it
                steps = {"imp50_20": 20 * int(k), "imp50_40": 40 * int(k), "oneshot_40": 40}[point]
                assert row["total_steps"] == row["critical_path_steps"] == steps
    # the reference's rounds are trained with the protocol itself: the same early stops as its one-shot twin
    # at round 1 (one round of the same rate from the same θ₀ is the same mask)
    ref, shot = dev["imp50_40"]["1"], dev["oneshot_40"]["1"]
    assert all(ref[s]["test_accuracy"] == shot[s]["test_accuracy"] for s in ("0", "1"))
    assert dev["ga"] and dev["cs"] and all(dev["ga"].values()) and all(dev["cs"].values())
    # the search: one run per θ₀, its winner costs its run up to its generation, side by side on a cluster
    for k, rows in dev["ga"].items():
        for row in rows.values():
            assert row["density"] <= res["targets"][k] + 0.001
            assert row["critical_path_steps"] == 20 * (row["round"] + 1) <= row["total_steps"]
    # the population-of-one control: one child a generation, each training waits for the one before it
    assert dev["ga1"] and all(dev["ga1"].values())
    for rows in dev["ga1"].values():
        for row in rows.values():
            assert row["critical_path_steps"] == row["total_steps"] == 20 * (row["round"] + 1)
    # Continuous Sparsification: a ticket of round r cost its r searches of 40 steps
    for rows in dev["cs"].values():
        for row in rows.values():
            assert row["total_steps"] == row["critical_path_steps"] == 40 * row["round"]


def test_a_rerun_trains_nothing_and_gives_the_same_numbers(section) -> None:
    res, ctx, root = section
    lines: list[str] = []
    again = frontier.run(
        Context("small", root, "", progress=lines.append), ("dev",), settings=root / "frontier.toml"
    )
    assert again["points"] == res["points"]
    assert not any(line.lstrip().startswith(("seed", "confirmed")) for line in lines)


def test_the_section_renders_tables_verdicts_and_both_pictures(section) -> None:
    res, ctx, root = section
    rendered = frontier.render(res, ctx)
    rows = [
        line for line in rendered.body.splitlines() if line.startswith("| IMP") or line.startswith("| one")
    ]
    assert len(rows) == 4 * 2  # four IMP points at two targets, development inits only
    assert "(reference)" in rendered.body and "t(1) =" in rendered.body
    assert (root / "figures" / "frontier_dev.png").stat().st_size > 10_000
    assert rendered.answer.startswith("On the development inits: at ≤ ")
    # the search's five targets, each reached or not at both targets, against its control too
    goals = rendered.body.split(
        "**The search's targets** (GA, against the reference; its control: GA on one"
    )[1]
    table_rows = [line for line in goals.split("\n\n")[1].splitlines() if line.startswith("| ")][1:]
    assert len(table_rows) == 5 and all(line.count("reached**") == 2 for line in table_rows)
    assert "search − control" in table_rows[3]


def test_overlaps_with_the_reference_and_between_two_batch_orders(section) -> None:
    res, ctx, root = section
    res = frontier.run(ctx, ("dev",), settings=root / "frontier.toml", overlap_only=True)
    over = res["overlap"]["dev"]
    assert "imp50_40" not in over["reference"] and set(over["repeat"]) == {"imp50_40_order1"}
    # one round of the reference's rate from the same θ₀ is the reference's round-1 mask: κ = 1 exactly
    for init in ("0", "1"):
        kappa, chance = over["reference"]["oneshot_40"]["1"][init]
        assert kappa == 1.0 and 0 < chance < 1
    # the same schedule under another order of minibatches prunes other weights: 0 < κ < 1, above chance
    for rows in over["repeat"]["imp50_40_order1"].values():
        for kappa, chance in rows.values():
            assert chance < kappa < 1
    assert (
        over["reference"]["imp50_40_order1"] == over["repeat"]["imp50_40_order1"]
    )  # its partner: the reference
    text = frontier.render(res, ctx).body
    assert "**Overlap with the reference's ticket.**" in text
    assert (
        "The level two runs of one method reach: IMP 50%, 40-step rounds, another batch order against" in text
    )


def test_tickets_across_inits_pair_by_pair(section) -> None:
    _, ctx, root = section
    s = frontier.load_settings(root / "frontier.toml")
    targets = frontier.target_densities(s, frontier.base_config(s, ""))
    ws = ctx.workspace / "frontier"
    sets = [frontier.ticket_masks(ws, s, targets, w) for w in frontier.SETS]
    got = frontier.across_inits(sets, points=("imp50_40",))["imp50_40"]
    masks = frontier.ticket_masks(ws, s, targets, "dev")["imp50_40"]
    for k, m in got.items():
        a, b = masks[int(k)][0], masks[int(k)][1]  # two inits: one pair, no bootstrap interval
        assert m["inits"] == [0, 1] and m["excess_overlap_ci"] is None
        assert m["jaccard"] == jaccard(a, b) and m["chance_jaccard"] == chance_jaccard(a, b)
        inputs = (live_unit_counts(a)[0], live_unit_counts(b)[0])
        assert m["live_units"][0][0] == sum(inputs) / 2  # live input units, mean over the two inits
    # a comparison over the same inits is not computed again; over other inits it is
    stale = {"imp50_40": {k: {**m, "jaccard": -1.0} for k, m in got.items()}}
    assert frontier.across_inits(sets, points=("imp50_40",), done=stale) == stale
    moved = {"imp50_40": {k: {**m, "inits": [0]} for k, m in got.items()}}
    assert frontier.across_inits(sets, points=("imp50_40",), done=moved)["imp50_40"] == got
    res = {"labels": {"imp50_40": "IMP"}, "targets": {k: 0.5 for k in got}, "across_inits": {"imp50_40": got}}
    text = frontier.across_inits_text(res)
    assert text.startswith("**Do different inits find the same ticket?**") and text.count("| IMP |") == len(
        got
    )


def test_question_one_reads_the_across_inits_table_against_the_batch_order_level() -> None:
    def row(kappa_ci, aligned_ci, aligned, degree, classes=4):
        return {
            "inits": [0, 1, 2, 3],
            "excess_overlap_ci": kappa_ci,
            "aligned_excess_ci": aligned_ci,
            "aligned_jaccard": aligned,
            "degree_aligned_chance_jaccard": degree,
            "classes": classes,
        }

    res = {
        "labels": {"imp": "IMP", "cs": "CS", "imp_b": "IMP", "imp_o": "IMP, other order"},
        "targets": {"12": 0.07, "15": 0.036},
        "across_inits": {
            "imp": {
                "12": row([0.01, 0.02], [0.01, 0.03], 0.12, 0.10),
                "15": row([-0.01, 0.02], [0.0, 0.1], 0.2, 0.15),
            },
            "cs": {
                "12": row([0.01, 0.02], [0.01, 0.03], 0.21, 0.18),
                "15": row([0.01, 0.02], [0.01, 0.03], 0.2, 0.19),
            },
        },
        "repeats": {"imp_o": "imp_b"},
        "overlap": {
            "dev": {"repeat": {"imp_o": {"12": {0: [0.4, 0.05], 1: [0.5, 0.05]}, "15": {0: [0.3, 0.02]}}}}
        },
    }
    text = frontier.across_inits_answer(res)
    assert (
        "IMP (4 inits), CS (4 inits)" in text
        and "every init's ticket is an isomorphism class of its own" in text
    )
    assert "above 0: IMP at 7.0%; CS at every target)" in text  # IMP's κ interval at 3.6% holds 0
    assert "null (IMP at 7.0%, by +0.020 to +0.050; CS at every target, by +0.010 to +0.030)" in text
    assert "aligned Jaccard across inits is 0.12 to 0.21" in text
    assert "under different batch orders share J = 0.45, 0.30 at the same targets" in text
    assert frontier.across_inits_answer({**res, "across_inits": {}}) == ""
