"""The lottery-ticket section of the report, end to end on a tiny IMP config (in process)."""

from __future__ import annotations

import pytest

from experiments import lth
from experiments.common import Context, save_results
from lotterysearch.settings import parse_imp_config

TINY_IMP = """
kind = "imp"
name = "lth-test"
dataset = "synthetic"
model = "mlp:16-24-24-4:glorot"
evaluator = "local"
[imp]
init_seeds = [3, 5]  # not 0, 1: a trajectory is named by its init seed, not its index
rounds = 18
[training]
steps = 30
lr = 0.01
batch_size = 32
eval_every = 10
"""


def test_the_section_measures_every_method_at_every_density_and_renders(tmp_path) -> None:
    cfg = parse_imp_config(TINY_IMP, "<tiny imp>")
    ctx = Context("small", tmp_path, "", progress=lambda s: None)
    res = {"config": "tiny", **lth.measure([cfg], ctx)}
    seeds = [3, 5]
    assert res["seeds"] == seeds and res["rounds"] == list(lth.ROUNDS)
    ticket = res["points"]["ticket"]
    assert [len(ticket[str(k)]) for k in lth.ROUNDS] == [2] * len(lth.ROUNDS)
    densities = [ticket[str(k)][0]["density"] for k in lth.ROUNDS]
    assert densities[0] == 1.0 and densities == sorted(densities, reverse=True)
    # layerwise: 20% of each hidden layer per round, 10% of the output layer's, so between 0.8^k and 0.9^k remain
    assert all(0.8**k - 0.01 <= d <= 0.9**k + 0.01 for d, k in zip(densities, lth.ROUNDS, strict=True))
    for method in ("reinit", "synflow", "random"):
        got = res["points"][method]
        assert sorted(got) == sorted(str(k) for k in lth.ROUNDS[1:])
        assert all([p["seed"] for p in got[k]] == seeds for k in got)
    for k in lth.ROUNDS[1:]:  # SynFlow masks and their shuffles keep the ticket's number of weights
        for method in ("synflow", "random"):
            for p, t in zip(res["points"][method][str(k)], ticket[str(k)], strict=True):
                assert abs(p["density"] - t["density"]) < 1e-9
    for p in (p for m in res["points"].values() for ps in m.values() for p in ps):
        assert p["es_step"] % 10 == 0 and 0 < p["es_step"] <= 30 and 0 <= p["es_test"] <= 1
    assert res["training_steps"] == 30 * (2 * 19 + 3 * 2 * 5)  # rounds, then reinit, SynFlow, random
    st = res["stability"]["3"]["ticket"]
    assert 0 <= st["chance_jaccard"]["mean"] <= 1 and st["classes"] in (1, 2)

    rendered = lth.render(res, ctx)
    table = [line for line in rendered.body.splitlines() if line.startswith("| ")]
    # the accuracies, the verdicts (three comparisons a sparse round) and the overlaps, with their headers
    assert len(table) == 1 + len(lth.ROUNDS) + 1 + 3 * (len(lth.ROUNDS) - 1) + 1 + 2 * (len(lth.ROUNDS) - 1)
    assert (tmp_path / "figures" / "lth_lenet.png").stat().st_size > 10_000
    assert rendered.answer.startswith(("**Winning tickets shown here", "**Not shown with 2 inits"))
    assert res["equivalence_margin"] == lth.EQUIVALENCE_MARGIN  # stored with the run: declared before it
    assert "margin declared in `experiments/lth.py` (`EQUIVALENCE_MARGIN`) before the run" in rendered.body
    assert "At the large settings" not in rendered.body
    # the large settings' results, where they exist, follow the small ones' in the same section
    large = {**res, "elapsed_s": 600.0, "load_average": [0.5, 2.0]}
    save_results(Context("large", tmp_path, ""), "lth", large)
    assert (tmp_path / "results" / "lth.large.json").is_file()
    both = lth.render(res, ctx)
    assert both.body.startswith(rendered.body) and both.answer.startswith(rendered.answer)
    assert "**At the large settings** (2 init seeds, 30 iterations per round" in both.body
    assert "measured in 10.0 min" in both.answer
    assert (tmp_path / "figures" / "lth_lenet_large.png").stat().st_size > 10_000
    # run on fewer inits than the small settings, the large settings say what the rest would cost at their pace
    body, _ = lth._large(large, ctx, n_small=4)
    assert (
        "They ran on 2 inits, all of them read as one set: the small settings' 4 inits with a held-out set "
        in body
    )
    assert "would take 2,040 more training steps, about 0.2 h on these cores at this run's pace." in body


def test_the_section_run_again_resumes_from_its_workspace_and_trains_nothing_twice(tmp_path) -> None:
    from lotterysearch.storage.store import Store

    cfg = parse_imp_config(TINY_IMP, "<tiny imp>")
    ctx = Context("small", tmp_path, "", progress=lambda s: None)
    first = lth.measure([cfg], ctx)
    ws = tmp_path / "workspace" / "lth-test"
    lines = (ws / "masks.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * 5  # SynFlow and random, 2 seeds, 5 densities
    # a section killed after half of the SynFlow and random trainings: only those are trained again
    (ws / "masks.jsonl").write_text("\n".join(lines[:7]) + "\n")
    progress: list[str] = []
    again = lth.measure([cfg], Context("small", tmp_path, "", progress=progress.append))
    assert again == first
    assert len((ws / "masks.jsonl").read_text().splitlines()) == 20
    assert sum(line.startswith(("  synflow", "  random")) for line in progress) == 13
    with Store.open(ws) as store:
        assert len(store.runs()) == 1 and store.runs()[0].status == "finished"


def _points(by_seed: dict[int, float]) -> list[dict[str, float]]:
    return [{"seed": t, "density": 0.5, "es_step": 100, "es_test": a} for t, a in by_seed.items()]


def _results(dense: dict, ticket: dict, reinit: dict, synflow: dict, **more) -> dict:
    """Section results at round 3 (50% of the weights) from each method's accuracy by seed."""
    points = {"ticket": {"0": _points(dense), "3": _points(ticket)}, "reinit": {"3": _points(reinit)}}
    points |= {m: {"3": _points(synflow)} for m in ("synflow", "random")}
    return {"seeds": list(dense), "rounds": [0, 3], "points": points, **more}


def test_verdicts_are_paired_by_seed_and_decided_as_one_family() -> None:
    dense = {0: 0.9700, 1: 0.9750, 2: 0.9720, 3: 0.9690}
    ticket = {0: 0.9701, 1: 0.9749, 2: 0.9720, 3: 0.96905}  # within ±0.01 points of dense, seed by seed
    reinit = {t: a - 0.02 - 0.0001 * t for t, a in ticket.items()}  # 2 points below, every seed
    synflow = {0: 0.9600, 1: 0.9800, 2: 0.9650, 3: 0.9750}  # as much above as below
    res = _results(dense, ticket, reinit, synflow)
    decided = lth.verdicts(res)
    assert lth.margin(res) == (lth.EQUIVALENCE_MARGIN, False)  # not stored with these results: declared after
    assert set(decided) == {("dense", 3), ("reinit", 3), ("synflow", 3)}
    assert all(v.family_size == 6 for v in decided.values())  # three difference tests, three TOSTs
    d = decided[("dense", 3)].difference
    assert d.differences == pytest.approx((0.01, -0.01, 0.0, 0.005))  # in points, paired by seed
    assert [decided[k].kind for k in (("dense", 3), ("reinit", 3), ("synflow", 3))] == [
        "equivalent",
        "better",
        "inconclusive",
    ]
    assert decided[("reinit", 3)].interval().startswith("+2.02 [")
    table = lth.verdict_table(res, decided)
    # the unpaired 2-SE screen could not tell ticket from SynFlow, nor call the ticket level with dense
    assert "| 50.0 | a SynFlow mask, same init | +0.15 [-1.16, +1.46] |" in table
    assert table.count("(was indistinguishable by the 2-SE screen)") == 1
    assert "| equivalent within ±0.20 |" in table
    res["stability"] = {
        "3": {"ticket": {"jaccard": {"mean": 0.5}, "chance_jaccard": {"mean": 0.5}, "classes": 4}}
    }
    res["training"] = {"steps": 300}
    assert lth.answer(res).startswith(
        "**Winning tickets shown here: at 50.0% of the weights IMP's tickets, trained from their own init, "
        "match the dense network (test accuracy at early stop 0.9715 ± 0.0026) within ±0.20 points or beat it.**"
    )
    assert lth.margin({**res, "equivalence_margin": 0.5}) == (0.5, True)


def test_held_out_inits_are_decided_as_a_family_of_their_own() -> None:
    dev, held = (0, 1, 2, 3), (8, 9, 10)
    seeds = dev + held
    dense = {t: 0.9700 + 0.0001 * t for t in seeds}
    ticket = {t: a + 0.0000001 * (t % 2) for t, a in dense.items()}  # level with dense on every init
    reinit = {t: a - 0.02 - 0.0001 * (t % 3) for t, a in ticket.items()}  # 2 points below, every init
    stability = {"3": {"ticket": {"jaccard": {"mean": 0.5}, "chance_jaccard": {"mean": 0.5}, "classes": 7}}}
    res = _results(
        dense,
        ticket,
        reinit,
        ticket,
        heldout_seeds=list(held),
        equivalence_margin=0.2,
        stability=stability,
        training={"steps": 300},
    )
    assert lth.inits(res) == {"development": [0, 1, 2, 3], "held-out": [8, 9, 10]}
    assert lth.verdicts(res, dev)[("reinit", 3)].difference.n == 4
    assert lth.verdicts(res, held)[("reinit", 3)].difference.n == 3
    text = lth._verdicts_text(res)
    assert (
        "**The development inits** (0, 1, 2, 3). " in text and "**The held-out inits** (8, 9, 10). " in text
    )
    assert "was " not in text  # decided by tests from the start: no earlier screen to differ from
    answer = lth.answer(res)
    assert "within ±0.20 points or beat it on the 4 development inits.**" in answer
    assert "On the 3 held-out inits, decided as a family of their own" in answer
    assert "2-SE" not in answer
