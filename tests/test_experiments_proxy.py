"""The proxy section of the report: its premises (a short run is a long run's prefix), Spearman by hand, and
the section end to end on a tiny setting (in process)."""

from __future__ import annotations

import math

import pytest

from experiments import proxy
from experiments.common import Context
from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.pruning.pruners import prune
from lotterysearch.settings import TrainingConfig
from lotterysearch.training.trainer import train

SPEC = "mlp:16-24-24-4:glorot"
TINY = proxy.ProxySettings(
    dataset="synthetic",
    model=SPEC,
    training=TrainingConfig(steps=40, optimizer="adam", lr=0.01, batch_size=32, eval_every=10),
    budgets=(10, 20, 40),
    compressions=(3.0, 10.0),
    prune_seeds=(10,),
    evaluator="local",
)


def test_proxy_is_the_prefix_of_the_long_run() -> None:
    data = load_dataset("synthetic", 0)
    mask = prune(build_model(SPEC, 3), "synflow", compression=5)
    long = train(build_model(SPEC, 1), mask, data, TINY.training, seed=1)
    for b in TINY.budgets:
        short = TrainingConfig(steps=b, optimizer="adam", lr=0.01, batch_size=32)
        alone = train(build_model(SPEC, 1), mask, data, short, seed=1)
        assert proxy.proxy_at(long.curve, b) == alone.val_accuracy  # the same bits
    with pytest.raises(KeyError, match="no evaluation at step 15"):
        proxy.proxy_at(long.curve, 15)


def test_spearman_by_hand() -> None:
    # ranks (1,2,3,4) and (1,3,2,4): Σd² = 2, ρ = 1 - 6·2 / (4·15) = 0.8
    assert proxy.spearman([0.1, 0.2, 0.3, 0.4], [5, 7, 6, 8]) == pytest.approx(0.8)
    assert proxy.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(proxy.spearman([1, 1, 1], [1, 2, 3]))


def test_budgets_must_be_evaluations_of_the_run() -> None:
    with pytest.raises(ValueError, match=r"budgets \[15, 80\] are not multiples of eval_every 10"):
        proxy.ProxySettings("synthetic", SPEC, TINY.training, (10, 15, 80), (3.0,), (10,))


def test_the_section_measures_every_mask_and_renders(tmp_path) -> None:
    ctx = Context("small", tmp_path, "", progress=lambda s: None)
    res = proxy.measure(TINY, ctx)
    rows = res["masks"]
    assert len(rows) == len(TINY.compressions) * len(proxy.KINDS)
    assert [r["kind"] for r in rows[: len(proxy.KINDS)]] == list(proxy.KINDS)
    for c in TINY.compressions:
        group = {r["kind"]: r for r in rows if r["compression"] == c}
        sf = group["synflow"]["density"]
        assert abs(1 / sf - c) / c < 0.01  # SynFlow keeps exactly 1/c of the weights (to one weight)
        for kind in ("random", "move 0.1", "move 0.3", "move 0.6"):  # density-preserving variants
            assert group[kind]["density"] == sf
        assert group["neuron prune"]["density"] < sf < group["neuron grow"]["density"]
    for r in rows:
        assert sorted(r["proxy"]) == ["0", "1"] and all(len(v) == 3 for v in r["proxy"].values())
        assert all(0 <= a <= 1 for v in r["proxy"].values() for a in v) and len(r["confirmed"]) == 2
    assert res["training_steps"] == len(rows) * 4 * 40

    rho = proxy.correlations(res)
    assert set(rho) == {"overall_1", "overall_2", "within_1", "within_2"}
    assert all(math.isnan(x) or -1 <= x <= 1 for v in rho.values() for x in v)
    assert proxy.chosen_budget(res) in TINY.budgets
    rendered = proxy.render(res, ctx)
    table = [line for line in rendered.body.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(TINY.budgets) + 1 + len(TINY.compressions)  # per budget, per compression
    groups = proxy.per_compression(res)
    assert [g["compression"] for g in groups] == list(TINY.compressions)
    assert all(len(g["rho"]) == len(TINY.budgets) for g in groups)
    assert len(proxy.informative_rho(res)) == len(TINY.budgets)
    assert (tmp_path / "figures" / "proxy_synthetic.png").stat().st_size > 10_000
    assert rendered.answer.startswith("**Short training ranks masks")


def test_mask_set_is_a_function_of_the_settings() -> None:
    a, b = proxy.mask_set(TINY), proxy.mask_set(TINY)
    assert [m["mask"] for m in a] == [m["mask"] for m in b]
    assert all(isinstance(m["mask"], Mask) for m in a)
