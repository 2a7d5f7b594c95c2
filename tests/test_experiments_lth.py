"""The lottery-ticket section of the report, end to end on a tiny IMP config (in process)."""

from __future__ import annotations

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
    res = {"config": "tiny", **lth.measure(cfg, ctx)}
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
    assert len(table) == 1 + len(lth.ROUNDS) + 1 + 2 * (len(lth.ROUNDS) - 1)  # two tables with their headers
    assert (tmp_path / "figures" / "lth_lenet.png").stat().st_size > 10_000
    assert rendered.answer.startswith("**Winning tickets") or rendered.answer.startswith(
        "**No winning tickets"
    )
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


def test_the_section_run_again_resumes_from_its_workspace_and_trains_nothing_twice(tmp_path) -> None:
    from lotterysearch.storage.store import Store

    cfg = parse_imp_config(TINY_IMP, "<tiny imp>")
    ctx = Context("small", tmp_path, "", progress=lambda s: None)
    first = lth.measure(cfg, ctx)
    ws = tmp_path / "workspace" / "lth-test"
    lines = (ws / "masks.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * 5  # SynFlow and random, 2 seeds, 5 densities
    # a section killed after half of the SynFlow and random trainings: only those are trained again
    (ws / "masks.jsonl").write_text("\n".join(lines[:7]) + "\n")
    progress: list[str] = []
    again = lth.measure(cfg, Context("small", tmp_path, "", progress=progress.append))
    assert again == first
    assert len((ws / "masks.jsonl").read_text().splitlines()) == 20
    assert sum(line.startswith(("  synflow", "  random")) for line in progress) == 13
    with Store.open(ws) as store:
        assert len(store.runs()) == 1 and store.runs()[0].status == "finished"
