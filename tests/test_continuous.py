"""Continuous Sparsification on its defining properties (Savarese et al. 2020), trained for real on the
digits dataset with a 64-32-32-10 MLP: σ(β·s) tends to the hard mask 1[s > 0] as β grows, a larger λ gives
a sparser mask, every round starts from θ₀ bit for bit with β = 1 and the scores reset to min(β_T·s, s₀),
λ = 0 with s₀ > 0 prunes nothing, the search is a pure function of its seed, and ``prune("cs", ...)``
lands on the exact kept count."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from lotterysearch.core.data import load_dataset
from lotterysearch.core.models import build_model
from lotterysearch.errors import PruningError
from lotterysearch.pruning import continuous as cs
from lotterysearch.pruning.pruners import imp_rewind_state, kept_count, prune
from lotterysearch.settings import TrainingConfig

MODEL = "mlp:64-32-32-10"  # 2048 + 1024 + 320 = 3392 prunable weights
TRAINING = TrainingConfig(steps=150, lr=0.01, batch_size=64)


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here trains: one thread (``conftest.one_thread``)."""


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


@pytest.fixture(scope="module")
def model():
    return build_model(MODEL, 0)


# ---- the pure pieces, by hand ---------------------------------------------------------------------------
def test_temperature_schedule_and_reset_by_hand() -> None:
    assert cs.beta_at(0, 4, 200.0) == 1.0 and cs.beta_at(4, 4, 200.0) == 200.0
    # β ← β·β_T^(1/T) after every step: the same numbers as the closed form
    beta = 1.0
    for t in range(1, 5):
        beta *= 200.0 ** (1 / 4)
        assert cs.beta_at(t, 4, 200.0) == pytest.approx(beta, rel=1e-12)
    s = {"fc1": torch.tensor([[0.5, -0.01, 0.0]])}
    assert cs.soft_mask(s, 2.0)["fc1"][0].tolist() == pytest.approx(
        [1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(0.02)), 0.5]
    )
    assert cs.hard_mask(s)["fc1"].tolist() == [[True, False, False]]
    # min(β_T·s, s₀): the kept restart at s₀, the pruned keep their sign, scaled by β_T
    assert cs.reset_scores(s, 200.0, 0.0)["fc1"][0].tolist() == pytest.approx([0.0, -2.0, 0.0])
    assert cs.reset_scores(s, 200.0, 0.1)["fc1"][0].tolist() == pytest.approx([0.1, -2.0, 0.0])
    assert float(cs.mask_penalty(cs.soft_mask(s, 1.0))) == pytest.approx(
        sum(1 / (1 + math.exp(-v)) for v in (0.5, -0.01, 0.0))
    )


def test_top_scores_keeps_exactly_k_with_ties_to_the_lower_index() -> None:
    s = {"fc1": torch.tensor([[0.3, 0.1], [0.1, -1.0]]), "fc2": torch.tensor([[0.1, 0.5]])}
    mask = cs.top_scores(s, 3)
    assert mask["fc1"].tolist() == [[True, True], [False, False]] and mask["fc2"].tolist() == [[False, True]]
    assert cs.top_scores(s, 0).kept() == 0 and cs.top_scores(s, 6).kept() == 6
    with pytest.raises(PruningError, match="^cannot keep 7 of 6 weights$"):
        cs.top_scores(s, 7)


def test_scores_round_trip_through_bytes_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(0)
    s = {"fc1": torch.randn(3, 4, generator=g), "fc2": torch.randn(2, 3, generator=g)}
    back = cs.scores_from_bytes(cs.scores_bytes(s), {n: t.shape for n, t in s.items()})
    assert all(torch.equal(back[n], s[n]) for n in s)
    with pytest.raises(PruningError, match="^stored scores hold 72 bytes, expected 80$"):
        cs.scores_from_bytes(cs.scores_bytes(s), {"fc1": (3, 4), "fc2": (2, 4)})


# ---- the search ---------------------------------------------------------------------------------------
def test_the_soft_mask_tends_to_the_hard_mask_as_beta_grows(digits, model) -> None:
    rnd = cs.cs_round(model, None, cs.init_scores(model, 0.0), digits, TRAINING, penalty=1e-3, seed=0)
    hard = {n: rnd.mask[n].float() for n in rnd.mask}

    def agreement(beta: float) -> float:
        soft = cs.soft_mask(rnd.scores, beta)
        close = sum(int(((soft[n] - hard[n]).abs() <= 0.01).sum()) for n in soft)
        return close / sum(t.numel() for t in soft.values())

    shares = [agreement(b) for b in (1.0, 10.0, cs.BETA_FINAL)]
    assert shares[0] < shares[1] < shares[2]
    assert shares[0] < 0.5 and shares[2] > 0.99  # at β_T the two masks agree on > 99% of the weights
    assert 0.05 < rnd.density < 0.95  # the round pruned, and kept


def test_a_larger_penalty_gives_a_sparser_mask(digits, model) -> None:
    densities = [
        cs.cs_round(model, None, cs.init_scores(model, 0.0), digits, TRAINING, penalty=lam, seed=0).density
        for lam in (3e-4, 1e-3, 3e-3)
    ]
    assert densities[0] > densities[1] > densities[2] > 0


def test_every_round_starts_from_theta0_with_beta_one_and_the_reset_scores(digits, model) -> None:
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[tuple[int, int, float, dict, dict]] = []

    def observe(r, step, beta, net, scores) -> None:
        weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        seen.append((r, step, beta, weights, {n: s.detach().clone() for n, s in scores.items()}))

    res = cs.continuous_sparsification(
        model, digits, TRAINING, rounds=3, penalty=[1e-3, 2e-3, 3e-3], s_init=0.0, observe=observe
    )
    assert [(r, step) for r, step, *_ in seen] == [(r, s) for r in range(3) for s in (0, TRAINING.steps)]
    for _, step, beta, weights, _ in seen:
        assert beta == (1.0 if step == 0 else cs.BETA_FINAL)
        if step == 0:  # rewound to θ₀ exactly, every round
            assert all(torch.equal(weights[k], theta0[k]) for k in theta0)
        else:  # and trained away from it within the round
            assert not torch.equal(weights["layers.fc1.weight"], theta0["layers.fc1.weight"])
    starts = [scores for _, step, _, _, scores in seen if step == 0]
    ends = [scores for _, step, _, _, scores in seen if step > 0]
    assert all(torch.equal(s, torch.zeros_like(s)) for s in starts[0].values())
    for r in (1, 2):
        reset = cs.reset_scores(ends[r - 1], cs.BETA_FINAL, 0.0)
        assert all(torch.equal(starts[r][n], reset[n]) for n in reset)
    assert all(torch.equal(res.scores[n], ends[2][n]) for n in res.scores)
    assert [m.density() for m in res.masks] == list(res.densities) and res.mask == res.masks[-1]
    assert res.densities[0] > res.densities[1] > res.densities[2]  # each round sparsifies further
    assert all(torch.equal(model.state_dict()[k], theta0[k]) for k in theta0)  # the model is only read


def test_rounds_rewind_to_a_rewind_point_when_given_one(digits, model) -> None:
    state = imp_rewind_state(model, digits, TRAINING, 20, seed=0)
    starts = []
    cs.continuous_sparsification(
        model,
        digits,
        TRAINING,
        rounds=2,
        penalty=1e-3,
        steps=30,
        rewind_state=state,
        observe=lambda r, step, beta, net, s: (
            starts.append(copy.deepcopy(net.state_dict())) if step == 0 else None
        ),
    )
    assert len(starts) == 2 and all(torch.equal(w[k], state[k]) for w in starts for k in state)


def test_no_penalty_and_a_positive_init_prune_nothing(digits, model) -> None:
    res = cs.continuous_sparsification(model, digits, TRAINING, rounds=2, penalty=0.0, s_init=1.0)
    assert res.densities == (1.0, 1.0)


def test_the_search_is_a_pure_function_of_its_seed(digits, model) -> None:
    a, b, c = (
        cs.continuous_sparsification(model, digits, TRAINING, rounds=2, penalty=1e-3, seed=seed)
        for seed in (0, 0, 1)
    )
    assert a.masks == b.masks and all(torch.equal(a.scores[n], b.scores[n]) for n in a.scores)
    assert a.masks != c.masks  # other batches, another mask


def test_target_density_stops_the_rounds(digits, model) -> None:
    res = cs.continuous_sparsification(model, digits, TRAINING, rounds=5, penalty=1e-3, target_density=0.5)
    assert res.rounds < 5 and res.densities[-1] <= 0.5 < min(res.densities[:-1], default=1.0)


def test_prune_cs_lands_on_the_exact_count(digits, model) -> None:
    mask = prune(model, "cs", 10.0, data=digits, training=TRAINING, penalty=1e-3, rounds=2)
    assert mask.kept() == kept_count(3392, 10.0) == 339


def test_conv_networks_are_searched_the_same_way(digits) -> None:
    net = build_model("conv:8x8x1:4-M:10", 0)
    rnd = cs.cs_round(net, None, cs.init_scores(net, 0.0), digits, TRAINING, penalty=1e-3, seed=0)
    assert rnd.mask["conv1"].shape == (4, 1, 3, 3) and 0 < rnd.density < 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "pruner 'cs' needs training data: pass data=load_dataset(...)"),
        (
            {"data": "digits", "scope": "layerwise"},
            "pruner 'cs' keeps the highest scores of all layers at once"
            " (scope 'global'), got scope 'layerwise'",
        ),
        (
            {"data": "digits", "rate": 0.2},
            "unknown CS option(s) rate (known: training, penalty, beta_final,"
            " s_init, rounds, steps, rewind_step)",
        ),
        (
            {"data": "digits", "iterations": 3},
            "pruner 'cs' runs rounds of its search; pass rounds=..., not iterations",
        ),
        ({"data": "digits", "penalty": -1.0}, "the mask penalty λ must be >= 0, got -1.0"),
        ({"data": "digits", "penalty": [1e-3]}, "give one penalty λ, or one per round (5), got 1"),
    ],
)
def test_prune_cs_errors_are_one_line(digits, model, kwargs, message) -> None:
    if kwargs.get("data") == "digits":
        kwargs = {**kwargs, "data": digits}
    with pytest.raises(PruningError) as e:
        prune(model, "cs", 10.0, **kwargs)
    assert str(e.value) == message
