"""The stability study (``lotterysearch stability``): the config loader's one-line errors, its training
section as a ``TrainingConfig``, and a tiny end-to-end run. The metrics themselves: tests/test_overlap.py."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_stability_toml

from lotterysearch.core.alignment import permute_hidden
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError
from lotterysearch.pruning.pruners import prune
from lotterysearch.runs.stability import (
    ACCURACY_KEYS,
    METRICS_KEYS,
    RESULT_KEYS,
    ROUNDING_KEYS,
    StabilityTraining,
    load_stability_config,
    parse_stability_config,
    run_stability,
    stability_command,
)
from lotterysearch.settings import TrainingConfig

EXPERIMENT_CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


# ---- config -------------------------------------------------------------------------------------------
def test_example_configs_load() -> None:
    for name in sorted(p.name for p in EXPERIMENT_CONFIGS.glob("stability_*.toml")):
        cfg = load_stability_config(EXPERIMENT_CONFIGS / name)
        assert len(cfg.init_seeds) >= 2 and cfg.pruning.pruners


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1", "unknown field 'colour' in the top level (allowed: name, dataset, model, bias, "),
        ("[pruning]\npruners = ['synflow', 'grasp']", "field 'pruning.pruners' must be one of synflow, snip, "),
        ("init_seeds = [1]", "field 'init_seeds' must be at least 2 distinct integers, got [1]"),
        ("init_seeds = [1, 1]", "field 'init_seeds' must be at least 2 distinct integers, got [1, 1]"),
        ("[pruning]\ncompressions = [10, 6000]", "field 'pruning.compressions' must be a non-empty list of numbers in [1, 5000]"),
        ("[pruning]\nrounding = 'floor'", "field 'pruning.rounding' must be one of round, reference, got 'floor'"),
        ("[training]\ncompressions = [30]", "field 'training.compressions' must be a subset of pruning.compressions [10.0, 100.0], got [30.0]"),
        ("[training]\nmode = 'both'", "field 'training.mode' must be one of forward, gradient, straight_through, got 'both'"),
        ("[training]\nsteps = -1", "field 'training.steps' must be an integer >= 0, got -1"),
        ("[training]\noptimizer = 'lbfgs'", "field 'training.optimizer' must be one of adam, sgd, got 'lbfgs'"),
        ("[training]\nlr = -1", "field 'training.lr' must be a number > 0, got -1.0"),
        ("[training]\nbatch_size = 0", "field 'training.batch_size' must be an integer >= 1, got 0"),
        ("[rounding]\nseeds = 3", "field 'rounding.seeds' must be a list of "),
        ("model = 'mlp:40-x-10'", "field 'model': model spec 'mlp:40-x-10': widths must be integers joined by '-'"),
        ("pruning = 3", "field 'pruning' must be a [pruning] section"),
        ("name = [", "<config> is not valid TOML: "),
    ],
)  # fmt: skip
def test_config_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_stability_config(text)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_training_section_is_a_training_config() -> None:
    """``[training]`` is a ``TrainingConfig`` (checked by it) plus what the study trains; its ``training()`` is
    what ``train`` gets."""
    cfg = parse_stability_config("[training]\nsteps = 7\nlr = 0.5\nbatch_size = 3\nmode = 'gradient'")
    assert isinstance(cfg.training, TrainingConfig)
    assert cfg.training.training() == TrainingConfig(steps=7, optimizer="adam", lr=0.5, batch_size=3)
    assert cfg.training.mode == "gradient"
    assert StabilityTraining().steps == 575 and StabilityTraining(steps=0).steps == 0  # 0: no training
    mnist1d = load_stability_config(EXPERIMENT_CONFIGS / "stability_mnist1d.toml").training
    assert mnist1d.training() == TrainingConfig(steps=575, optimizer="adam", lr=0.01, batch_size=128)
    assert mnist1d.compressions == (10.0, 100.0) and mnist1d.permuted_copies == 4


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^config file '{tmp_path / 'no.toml'}' does not exist$"):
        load_stability_config(tmp_path / "no.toml")


def test_model_and_dataset_must_fit(tmp_path: Path) -> None:
    cfg = parse_stability_config("dataset = 'synthetic'\nmodel = 'mlp:40-20-4'\n[rounding]\nseeds = []")
    with pytest.raises(ConfigError, match="^model mlp:40-20-4 takes 40 inputs, dataset synthetic has 16$"):
        run_stability(cfg, tmp_path, progress=lambda _: None)


# ---- end to end ---------------------------------------------------------------------------------------
TINY = tiny_stability_toml()


def test_run_stability_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    stability_command(config, tmp_path / "out")
    assert "wrote" in capsys.readouterr().out
    out = tmp_path / "out"
    for name in (
        "report.md",
        "metrics.json",
        "tiny_overlap.png",
        "tiny_layer_density.png",
        "tiny_accuracy.png",
    ):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert tuple(metrics) == METRICS_KEYS
    assert metrics["total_weights"] == 16 * 24 + 24 * 12 + 12 * 4
    assert [(r["pruner"], r["compression"]) for r in metrics["results"]] == [
        ("synflow", 4.0), ("synflow", 20.0), ("random", 4.0), ("random", 20.0)
    ]  # fmt: skip
    for r in metrics["results"]:
        assert tuple(r) == RESULT_KEYS
        kept = round(metrics["total_weights"] / r["compression"])
        assert r["density"]["mean"] == pytest.approx(kept / metrics["total_weights"])
        assert r["density"]["std"] == pytest.approx(0.0, abs=1e-12)  # global pruning: an exact count
        assert 0 <= r["effective_density"]["mean"] <= r["density"]["mean"]
        assert len(r["pairs"]) == 3 and 1 <= r["classes"] <= 3
        for key in ("jaccard", "chance_jaccard", "aligned_jaccard", "aligned_chance_jaccard"):
            assert 0 <= r[key]["mean"] <= 1
        assert r["aligned_jaccard"]["mean"] >= r["jaccard"]["mean"] - 1e-9
        assert set(r["layer_density"]) == {"fc1", "fc2", "fc3"}
        assert len(r["layer_density"]["fc1"]["per_seed"]) == 3
        # units: inputs, two hidden layers, outputs; a live unit count is at most the layer's width
        assert [len(u["per_seed"]) for u in r["live_units"]] == [3, 3, 3, 3]
        assert all(max(u["per_seed"]) <= w for u, w in zip(r["live_units"], (16, 24, 12, 4), strict=True))
        assert len(r["aligned_unit_jaccard"]) == len(r["degree_aligned_unit_jaccard"]) == 2
        assert 0 <= r["degree_aligned_chance_jaccard"]["mean"] <= 1
        assert r["matched_effective_density"]["mean"] == pytest.approx(
            r["effective_density"]["mean"], abs=max(0.02 * r["effective_density"]["mean"], 1 / 672)
        )
        assert r["shuffled_effective_density"]["mean"] <= r["density"]["mean"]
        lo, hi = r["aligned_excess_ci"]
        paired = [p["aligned_jaccard"] - p["degree_aligned_chance_jaccard"] for p in r["pairs"]]
        assert lo <= hi and min(paired) - 1e-12 <= lo and hi <= max(paired) + 1e-12
        if r["compression"] == 4.0:
            assert tuple(r["accuracy"]) == ACCURACY_KEYS
            assert r["accuracy"]["permuted_same_class"] is True
            assert len(r["accuracy"]["permuted"]["values"]) == 2
            keys = ("own", "other", "shuffled", "matched_shuffled", "degree_shuffled")
            assert all(0 <= v <= 1 for k in keys for v in r["accuracy"][k]["values"])
            assert all(r["accuracy"][k]["stop_steps"] is None for k in keys)  # no eval_every: no early stop
            # the trained controls' effective densities: own and another init train the mask itself, the
            # matched shuffle the mask's effective density within 2% (one weight of 672 here: ± 1/672)
            a = r["accuracy"]
            assert a["own"]["effective_density"] == a["other"]["effective_density"] == r["effective_density"]
            assert a["matched_shuffled"]["effective_density"]["mean"] == pytest.approx(
                r["effective_density"]["mean"], abs=max(0.02 * r["effective_density"]["mean"], 1 / 672)
            )
        else:
            assert r["accuracy"] is None
    rnd = metrics["rounding"]
    assert tuple(rnd) == ROUNDING_KEYS
    assert [p["seed"] for p in rnd["per_seed"]] == [0, 1]
    assert 0 < rnd["jaccard"]["mean"] <= 1
    assert 0 <= rnd["schedule_steps_differing"] <= 10
    report = (out / "report.md").read_text()
    assert "![overlap vs compression](tiny_overlap.png)" in report
    assert "| synflow | 4 |" in report and "## Sensitivity to the rounding rule" in report
    assert "## Units" in report and "degree null" in report


# ---- convnets -----------------------------------------------------------------------------------------
TINY_CONV = """
name = "conv"
dataset = "digits"
model = "conv:8x8x1:4-M:6-10"
init_seeds = [0, 1]
[pruning]
pruners = ["synflow", "magnitude"]
compressions = [4, 20]
[training]
steps = 10
eval_every = 5
pruners = ["synflow"]
compressions = [4]
permuted_copies = 2
[rounding]
seeds = []
"""


def test_run_stability_on_a_convnet(tmp_path: Path, one_thread: None) -> None:
    """The study on a convnet: kernels are pruned whole-network (exact kept counts), channels are the
    hidden units alignment relabels (aligned J of a mask and its permuted copy: 1), and a permuted copy
    stays in its isomorphism class."""
    metrics = run_stability(parse_stability_config(TINY_CONV), tmp_path, progress=lambda _: None)
    assert metrics["layers"] == ["conv1", "fc1", "fc2"]
    assert metrics["layer_sizes"] == {"conv1": 36, "fc1": 384, "fc2": 60}
    assert metrics["max_compression"] == 160.0  # 480 weights / 3 layers
    for r in metrics["results"]:
        kept = round(480 / r["compression"])
        assert r["density"] == {
            "mean": pytest.approx(kept / 480),
            "std": pytest.approx(0.0, abs=1e-12),
            "n": 2,
        }
        assert r["aligned_jaccard"]["mean"] >= r["jaccard"]["mean"] - 1e-9
        assert len(r["layer_density"]["conv1"]["per_seed"]) == 2
    by = {(r["pruner"], r["compression"]): r for r in metrics["results"]}
    acc = by[("synflow", 4.0)]["accuracy"]
    assert acc["permuted_same_class"] is True and len(acc["permuted"]["values"]) == 2
    # evaluated every 5 of 10 steps: each control's accuracy is read at its early-stopping step, stored
    for c in ("own", "other", "shuffled", "matched_shuffled", "degree_shuffled"):
        assert len(acc[c]["stop_steps"]) == 2 and set(acc[c]["stop_steps"]) <= {5, 10}
    assert metrics["dense_accuracy"]["stop_steps"] is not None
    # on the convnet too the matched shuffle keeps SynFlow's effective kept count (120 of 480) within 2%
    row = by[("synflow", 4.0)]
    assert row["matched_effective_density"]["mean"] == pytest.approx(
        row["effective_density"]["mean"], rel=0.02
    )
    assert by[("magnitude", 4.0)]["accuracy"] is None  # training.pruners: synflow only
    assert "| synflow | 4 |" in (tmp_path / "report.md").read_text()


def test_conv_stability_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse_stability_config(TINY_CONV.replace("compressions = [4, 20]", "compressions = [4, 200]"))
    assert str(e.value) == (
        "field 'pruning.compressions' must be a non-empty list of numbers in [1, 160] (ρ_max of "
        "conv:8x8x1:4-M:6-10), got [4.0, 200.0]"
    )
    cfg = parse_stability_config(TINY_CONV.replace('"digits"', '"synthetic"'))
    with pytest.raises(ConfigError) as e:
        run_stability(cfg, tmp_path, progress=lambda _: None)
    assert (
        str(e.value)
        == "model conv:8x8x1:4-M:6-10 takes 8x8x1 inputs, dataset synthetic has 16 plain features"
    )


def test_stability_of_a_users_own_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lotterysearch stability --masks``: the study's overlap and unit tables for masks a user brings; a
    mask compared with its own permuted copy is the same network (aligned J = 1), and one mask is an error."""
    from lotterysearch.cli import main

    model = build_model("mlp:16-24-12-4", 0)
    first = prune(model, "synflow", 10.0, seed=0)
    copy = permute_hidden(
        first, [np.random.default_rng(1).permutation(24), np.random.default_rng(2).permutation(12)]
    )
    other = prune(build_model("mlp:16-24-12-4", 1), "synflow", 10.0, seed=1)
    paths = [str(m.save(tmp_path / f"{name}.npz")) for name, m in (("a", first), ("b", copy), ("c", other))]
    assert main(["stability", "--masks", *paths, "--out", str(tmp_path / "out")]) in (0, None)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    pair = next(p for p in metrics["results"][0]["pairs"] if (p["i"], p["j"]) == (0, 1))
    assert pair["aligned_jaccard"] == pytest.approx(1.0)
    assert "| given | 10 |" in capsys.readouterr().out
    assert main(["stability", "--masks", paths[0]]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "lotterysearch: error: --masks needs two masks or more to compare, got 1"
    )
