"""Question 1's section end to end on tiny studies: the controls decided per init with Holm and TOST, the
converged (early-stopped) budget beside the short one, and a study measured before kept, not run again."""

from __future__ import annotations

import dataclasses
import json

import pytest
from helpers import tiny_stability_toml

from experiments import stability_study
from experiments.common import Context
from lotterysearch.runs.stability import parse_stability_config


def tiny(name: str, steps: int, eval_every: int) -> str:
    """The tiny study at one compression, no rounding seeds, trained ``steps`` evaluated every ``eval_every``."""
    return tiny_stability_toml(
        name=name,
        pruning={"compressions": [4]},
        training={"steps": steps, "eval_every": eval_every, "compressions": [4]},
        rounding={"seeds": [], "compression": 4},
    )


def test_the_section_decides_the_controls_per_init_and_resumes(tmp_path, monkeypatch, one_thread) -> None:
    ctx = Context("small", tmp_path, "", progress=lambda s: None)
    configs = {
        "short.toml": tiny("short", 20, 0),
        "converged.toml": tiny("converged", 60, 20),
    }
    (tmp_path / "configs").mkdir()
    for file, text in configs.items():
        (tmp_path / "configs" / file).write_text(text)
    monkeypatch.setattr(stability_study, "ROOT", tmp_path)  # the section reads its configs from ROOT/configs
    monkeypatch.setitem(stability_study.CONFIGS, "small", tuple(configs))
    results = stability_study.run(ctx)
    assert results["runs"] == ["short", "converged"]

    runs = [stability_study._metrics(ctx, name) for name in results["runs"]]
    verdicts = stability_study.accuracy_verdicts(runs)
    # every trained (pruner, ρ) of every run against each control: 2 runs × 2 pruners × 4 controls, paired by 3 inits
    assert len(verdicts) == 16 and all(v.difference.n == 3 for v in verdicts.values())
    v = verdicts[("short", "synflow", 4.0, "shuffled")]
    acc = next(r for r in runs[0]["results"] if r["pruner"] == "synflow")["accuracy"]
    by_hand = [100 * (a - b) for a, b in zip(acc["own"]["values"], acc["shuffled"]["values"], strict=True)]
    assert v.difference.mean == pytest.approx(sum(by_hand) / 3)
    assert v.family_size == 32  # Holm over every difference test and every equivalence test of the section

    rendered = stability_study.render(results, ctx)
    assert "### Does the mask matter beyond its layer densities and its degrees?" in rendered.body
    assert (
        "| `mlp:16-24-12-4` | 60 steps, early-stopped (evaluation every 20) | synflow | 4 |" in rendered.body
    )
    assert "degree-preserving shuffle" in rendered.body and "live units" in rendered.body
    # the converged rows give every method's mean early-stopping step and how many stopped before 60 steps,
    # from the stored steps; the short budget does not evaluate
    conv = next(r for r in runs[1]["results"] if r["pruner"] == "synflow")["accuracy"]
    steps = conv["shuffled"]["stop_steps"]
    assert len(steps) == 3 and set(steps) <= {20, 40, 60}
    cell = f"{sum(steps) / 3:.0f} ({sum(s < 60 for s in steps)}/3 before 60)"
    table = rendered.body.split("### Does the mask matter")[1]
    row = next(
        line
        for line in table.splitlines()
        if line.startswith("| `mlp:16-24-12-4` | 60 steps") and "| synflow |" in line
    )
    assert cell in row and "none (no evaluation during training: the fixed budget)" in table

    # a study stored before the matched control and the steps: rendered "not measured", not dropped or made up
    path = tmp_path / "results" / "short" / "metrics.json"
    old = stability_study._metrics(ctx, "short")
    for r in old["results"]:
        for c in r["accuracy"].values():
            if isinstance(c, dict):
                c.pop("stop_steps")
        r["accuracy"].pop("matched_shuffled")
        r.pop("matched_effective_density")
    path.write_text(json.dumps(old))
    runs = [stability_study._metrics(ctx, name) for name in results["runs"]]
    assert len(stability_study.accuracy_verdicts(runs)) == 14
    body = stability_study.render(results, ctx).body.split("### Does the mask matter")[1]
    row = next(
        line
        for line in body.splitlines()
        if line.startswith("| `mlp:16-24-12-4` | 20 steps") and "| synflow |" in line
    )
    assert row.count("not measured") == 2  # the matched difference and its effective density

    # measured already with the same settings: kept, not run again (the stored file is left as it is)
    stored = {name: (tmp_path / "results" / name / "metrics.json").read_text() for name in results["runs"]}
    monkeypatch.setattr(stability_study, "run_stability", lambda *a, **k: pytest.fail("ran again"))
    assert stability_study.run(ctx) == results
    assert {n: (tmp_path / "results" / n / "metrics.json").read_text() for n in stored} == stored


def test_a_study_with_other_settings_is_not_kept() -> None:
    cfg = parse_stability_config(tiny("a", 20, 0))
    stored = dataclasses.asdict(cfg)
    assert stability_study._same_study(stored, {**stored, "data_dir": "/elsewhere"})
    assert not stability_study._same_study(stored, {**stored, "init_seeds": [0, 1]})
