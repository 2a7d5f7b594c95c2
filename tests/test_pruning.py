"""Pruning: SynFlow's conservation laws and closed form, exact kept counts, rounding rules, IMP (every
round, tickets at several targets from one trajectory), collapse sweeps; the same on convnets."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from convtools import one_thread  # noqa: F401 - a fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from lotterysearch.core.data import Dataset, load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model, prunable_layers
from lotterysearch.errors import PruningError
from lotterysearch.pruning.pruners import (
    IMP_TRAINING,
    SCORERS,
    SynFlow,
    collapse_sweep,
    compression_grid,
    imp,
    imp_plan,
    imp_rewind_state,
    imp_round,
    imp_schedule,
    iterative_prune,
    keep_highest,
    kept_count,
    kept_schedule,
    max_compression,
    prune,
    prune_round,
    snip_scores,
    synflow_scores,
)
from lotterysearch.settings import TrainingConfig
from lotterysearch.training.trainer import train

SPEC = "mlp:16-12-8-4"  # 192 + 96 + 32 = 320 prunable weights
SIZES = {"fc1": 192, "fc2": 96, "fc3": 32}
N = 320
ONE_SHOT = ("snip", "magnitude", "random")


@pytest.fixture(scope="module")
def synthetic() -> Dataset:
    return load_dataset("synthetic", 0)


def random_mask(model: torch.nn.Module, seed: int, density: float) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(s, generator=g) < density for n, s in Mask.ones(model).shapes.items()})


def abs_weights(model: torch.nn.Module, mask: Mask) -> list[torch.Tensor]:
    return [layer.weight.detach().double().abs() * mask[n] for n, layer in prunable_layers(model).items()]


def closed_form(ws: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
    """R = 1ᵀ(∏|W|)1 and Eq. 7: S^[l]_ij = [1ᵀ ∏_{k>l}|W^[k]|]_i |W^[l]_ij| [∏_{k<l}|W^[k]| 1]_j."""
    scores = []
    for layer, w in enumerate(ws):
        right = torch.ones(ws[0].shape[1], dtype=torch.float64)
        for below in ws[:layer]:
            right = below @ right
        left = torch.ones(ws[-1].shape[0], dtype=torch.float64)
        for above in reversed(ws[layer + 1 :]):
            left = left @ above
        scores.append(left[:, None] * w * right[None, :])
    r = torch.ones(ws[-1].shape[0], dtype=torch.float64)
    for w in reversed(ws):
        r = r @ w
    return float(r.sum()), scores


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---- SynFlow: theorems and closed form -------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), density=st.sampled_from([1.0, 0.7, 0.3]))
def test_synflow_conserves_flow_per_neuron_and_per_layer(seed: int, density: float) -> None:
    """Theorem 1 (in = out at every hidden neuron) and Theorem 2 (every layer's total is R), rel. err < 1e-9."""
    model = build_model("mlp:10-9-8-7-3", seed, bias=False)
    mask = random_mask(model, seed, density)
    s = synflow_scores(model, mask)
    r, _ = closed_form(abs_weights(model, mask))
    names = list(s)
    for lower, upper in zip(names[:-1], names[1:], strict=True):
        incoming, outgoing = s[lower].sum(dim=1), s[upper].sum(dim=0)
        scale = max(float(incoming.abs().max()), 1e-300)
        assert float((incoming - outgoing).abs().max()) / scale < 1e-9
    for n in names:
        assert s[n].dtype == torch.float64
        assert abs(float(s[n].sum()) - r) <= 1e-9 * r
    assert all(float(s[n][~mask[n]].abs().sum()) == 0 for n in names)


@pytest.mark.parametrize("masked", [False, True])
def test_synflow_autograd_equals_eq7(masked: bool) -> None:
    model = build_model("mlp:5-4-3-2", 3, bias=False)
    mask = random_mask(model, 1, 0.6) if masked else Mask.ones(model)
    s = synflow_scores(model, mask)
    _, expected = closed_form(abs_weights(model, mask))
    for n, e in zip(s, expected, strict=True):
        torch.testing.assert_close(s[n], e, rtol=1e-12, atol=0)


def test_synflow_with_biases_counts_bias_flow() -> None:
    """Two layers with bias, by hand: R = 1ᵀ|W2|(|W1|1 + |b1|) + 1ᵀ|b2|, S1 = (1ᵀ|W2|)ᵢ|W1ᵢⱼ|,
    S2 = |W2ᵢⱼ|(|W1|1 + |b1|)ⱼ."""
    model = build_model("mlp:3-2-2", 0)
    w1, w2 = (layer.weight.detach().double().abs() for layer in prunable_layers(model).values())
    b1 = model.layers.fc1.bias.detach().double().abs()
    s = synflow_scores(model, Mask.ones(model))
    torch.testing.assert_close(s["fc1"], w2.sum(0)[:, None] * w1, rtol=1e-12, atol=0)
    torch.testing.assert_close(s["fc2"], w2 * (w1.sum(1) + b1)[None, :], rtol=1e-12, atol=0)


def test_synflow_float32_variant_agrees_with_float64() -> None:
    model = build_model(SPEC, 0)
    s64, s32 = synflow_scores(model, Mask.ones(model)), SynFlow(torch.float32)(model, Mask.ones(model))
    for n in s64:
        assert s32[n].dtype == torch.float64
        torch.testing.assert_close(s32[n], s64[n], rtol=1e-4, atol=0)


# ---- scorers leave the model and the RNG alone --------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SCORERS))
def test_scorers_leave_model_and_global_rng_untouched(name: str, synthetic: Dataset) -> None:
    model = build_model(SPEC, 0)
    before, rng = state(model), torch.get_rng_state()
    grads = [p.requires_grad for p in model.parameters()]
    mask = random_mask(model, 0, 0.5)
    SCORERS[name](model, mask, synthetic, torch.Generator().manual_seed(0))
    prune(model, name, 10, data=synthetic, iterations=3)
    assert all(torch.equal(v, state(model)[k]) for k, v in before.items())
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_magnitude_and_random_scores() -> None:
    model = build_model(SPEC, 0)
    mask = random_mask(model, 2, 0.5)
    g = torch.Generator().manual_seed(5)
    mag = SCORERS["magnitude"](model, mask, None, g)
    for n, layer in prunable_layers(model).items():
        assert torch.equal(mag[n], layer.weight.detach().double().abs() * mask[n])
    r1 = SCORERS["random"](model, mask, None, torch.Generator().manual_seed(5))
    r2 = SCORERS["random"](model, mask, None, torch.Generator().manual_seed(5))
    r3 = SCORERS["random"](model, mask, None, torch.Generator().manual_seed(6))
    assert all(torch.equal(r1[n], r2[n]) for n in r1)
    assert not torch.equal(r1["fc1"], r3["fc1"])
    assert all(float(r1[n][~mask[n]].abs().sum()) == 0 for n in r1)


def test_snip_equals_hand_gradient_on_a_linear_model() -> None:
    """One linear layer, 100 samples (all used): ∂L/∂W = (softmax(z) − onehot(y))ᵀ x / n, score |g ⊙ W|."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 6, generator=g), torch.randint(0, 3, (100,), generator=g)
    data = Dataset("toy", x, y, x[:10], y[:10], x[:10], y[:10], 3)
    model = build_model("mlp:6-3", 1)
    mask = random_mask(model, 0, 0.5)
    w, b = model.layers.fc1.weight.detach(), model.layers.fc1.bias.detach()
    p = torch.softmax(x @ (w * mask["fc1"]).T + b, dim=1)
    grad = (p - torch.nn.functional.one_hot(y, 3)).T @ x / 100 * mask["fc1"]
    s = snip_scores(model, mask, data, torch.Generator().manual_seed(0))
    torch.testing.assert_close(s["fc1"], (grad * w).abs().double(), rtol=1e-5, atol=1e-7)


# ---- exact kept counts and ties ------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(scores=st.lists(st.integers(0, 4), min_size=1, max_size=60), data=st.data())
def test_keep_highest_equals_stable_sort(scores: list[int], data: st.DataObject) -> None:
    t = torch.tensor(scores, dtype=torch.float64)
    k = data.draw(st.integers(0, len(scores)))
    order = torch.sort(t, descending=True, stable=True).indices[:k]
    expected = torch.zeros(len(scores), dtype=torch.bool)
    expected[order] = True
    assert torch.equal(keep_highest(t, k), expected)


def test_keep_highest_rejects_nan() -> None:
    with pytest.raises(
        PruningError, match=r"^pruning scores contain NaN \(an overflow\? SynFlow should run in float64\)$"
    ):
        keep_highest(torch.tensor([1.0, math.nan, 0.5]), 1)
    assert keep_highest(torch.tensor([1.0, math.inf, 0.5]), 2).tolist() == [True, True, False]


@pytest.mark.parametrize("scope", ["global", "layerwise"])
@pytest.mark.parametrize("pruner", ["synflow", *ONE_SHOT])
def test_kept_counts_are_exact(pruner: str, scope: str, synthetic: Dataset) -> None:
    model = build_model(SPEC, 1)
    for rho in (1.0, 1.5, 3.0, 7.3, 31.0):
        iterations = 20 if pruner == "synflow" else None
        mask = prune(model, pruner, rho, scope=scope, data=synthetic, iterations=iterations)
        mask.check_fits(model)
        if scope == "global":
            assert mask.kept() == round(N / rho)
        else:
            assert mask.layer_kept() == {n: round(t / rho) for n, t in SIZES.items()}
        densities = mask.layer_densities()
        assert math.isclose(sum(densities[n] * SIZES[n] for n in SIZES) / N, mask.density(), rel_tol=1e-12)
        assert sum(mask.layer_kept().values()) == mask.kept()


@settings(max_examples=25, deadline=None)
@given(rho=st.floats(1.0, 100.0), seed=st.integers(0, 50), pruner=st.sampled_from(["magnitude", "random"]))
def test_kept_count_is_round_n_over_rho(rho: float, seed: int, pruner: str) -> None:
    assert prune(build_model(SPEC, seed), pruner, rho, seed=seed).kept() == round(N / rho)


@pytest.mark.parametrize("pruner", ["synflow", *ONE_SHOT])
def test_ties_keep_exact_counts_lower_index_first(pruner: str, synthetic: Dataset) -> None:
    """All weights equal: every score ties; ``score <= threshold`` would prune all, we keep the count."""
    model = build_model(SPEC, 0, bias=False)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    for rho in (2.0, 10.0):
        g = prune(model, pruner, rho, data=synthetic)
        lw = prune(model, pruner, rho, scope="layerwise", data=synthetic)
        assert g.kept() == round(N / rho)
        assert lw.layer_kept() == {n: round(t / rho) for n, t in SIZES.items()}
        if pruner == "magnitude":  # pure ties: the first flat positions win
            flat = torch.cat([g[n].reshape(-1) for n in g])
            assert bool(flat[: round(N / rho)].all()) and not bool(flat[round(N / rho) :].any())
            for n, t in SIZES.items():
                assert bool(lw[n].reshape(-1)[: round(t / rho)].all())


def test_pruned_weights_stay_pruned_and_synflow_is_deterministic() -> None:
    model = build_model(SPEC, 4)
    seen: list[Mask] = []

    def recording(model: torch.nn.Module, mask: Mask, data: object, g: torch.Generator) -> dict:
        seen.append(mask.copy())
        return SCORERS["random"](model, mask, None, g)

    final = iterative_prune(model, recording, 50, iterations=6)
    assert len(seen) == 6
    for earlier, later in zip(seen, seen[1:] + [final], strict=True):
        assert all(not bool((later[n] & ~earlier[n]).any()) for n in earlier)  # no weight comes back
        assert later.kept() < earlier.kept()
    assert prune(model, "synflow", 30) == prune(model, "synflow", 30)


# ---- the two rounding rules: round(N·s_k), and the reference code's N − int((1 − s_k)·N) -------------
def test_rounding_rules_by_hand() -> None:
    # N = 320, ρ = 10, n = 2: s_1 = 10^-0.5 = 0.3162..., 320·s_1 = 101.19 → round 101;
    # reference keeps 320 − int(0.6838·320 = 218.8) = 102. Both end at 32 = 320/10.
    assert kept_schedule(N, 10, 2, "round") == [101, 32]
    assert kept_schedule(N, 10, 2, "reference") == [102, 32]
    # 320/6 = 53.33: round → 53, reference 320 − int(266.67) = 54.
    assert kept_count(N, 6) == 53 and kept_count(N, 6, "reference") == 54
    model = build_model(SPEC, 0)
    assert prune(model, "magnitude", 6).kept() == 53
    assert prune(model, "magnitude", 6, rounding="reference").kept() == 54


@pytest.mark.parametrize("rounding", ["round", "reference"])
def test_each_step_keeps_what_its_formula_says(rounding: str) -> None:
    rho, n = 100.0, 30
    counts: list[int] = []

    def recording(model: torch.nn.Module, mask: Mask, data: object, g: torch.Generator) -> dict:
        counts.append(mask.kept())
        return SCORERS["magnitude"](model, mask, None, g)

    final = iterative_prune(build_model(SPEC, 0), recording, rho, iterations=n, rounding=rounding)
    if rounding == "round":
        formula = [round(N * rho ** (-k / n)) for k in range(1, n)] + [round(N / rho)]
    else:
        formula = [N - int((1 - (1 / rho) ** (k / n)) * N) for k in range(1, n + 1)]
    assert counts[1:] + [final.kept()] == formula
    assert counts[0] == N


# ---- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pruner": "grasp"}, "unknown pruner 'grasp' (known: synflow, snip, magnitude, random, imp, cs)"),
        ({"scope": "local"}, "unknown scope 'local' (known: global, layerwise)"),
        ({"rounding": "floor"}, "unknown rounding rule 'floor' (known: round, reference)"),
        ({"compression": 0.5}, "compression must be >= 1 (ρ = |θ| / |θ_pruned|), got 0.5"),
        ({"compression": float("nan")}, "compression must be >= 1 (ρ = |θ| / |θ_pruned|), got nan"),
        (
            {"compression": 1000},
            "compression 1000 would keep no weight of the 320 (global scope allows at most ρ = 320)",
        ),
        (
            {"compression": 100, "scope": "layerwise"},
            "compression 100 would keep no weight of layer 'fc3' (32 weights; layerwise scope allows at most ρ = 32)",
        ),
        ({"iterations": 0}, "iterations must be >= 1, got 0"),
        ({"pruner": "snip"}, "pruner 'snip' needs training data: pass data=load_dataset(...)"),
        ({"pruner": "imp"}, "pruner 'imp' needs training data: pass data=load_dataset(...)"),
        (
            {"pruner": "imp", "iterations": 5},
            "pruner 'imp' sets its rounds from rate; pass rate=..., not iterations",
        ),
        ({"rate": 0.5}, "option(s) rate apply only to pruners 'imp' and 'cs'"),
    ],
)
def test_error_messages(kwargs: dict, message: str) -> None:
    args = {"pruner": "magnitude", "compression": 10.0, **kwargs}
    with pytest.raises(PruningError) as e:
        prune(build_model(SPEC, 0), args.pop("pruner"), args.pop("compression"), **args)
    assert str(e.value) == message


def test_imp_error_messages(synthetic: Dataset) -> None:
    model = build_model(SPEC, 0)
    cases = [
        (
            {"epochs": 3},
            "unknown IMP option(s) epochs (known: training, rate, output_rate, rewind_step, mode)",
        ),
        ({"steps": 5}, "unknown IMP option(s) steps (known: training, rate, output_rate, rewind_step, mode)"),
        ({"rate": 1.0}, "IMP rate must be in (0, 1), got 1"),
        (
            {"rewind_step": 5, "training": TrainingConfig(steps=5)},
            "IMP needs 0 <= rewind_step < steps, got rewind_step=5, steps=5",
        ),
        ({"training": 5}, "IMP training must be a TrainingConfig, got 5"),
    ]
    for options, message in cases:
        with pytest.raises(PruningError) as e:
            prune(model, "imp", 4, data=synthetic, **options)
        assert str(e.value) == message


# ---- IMP ----------------------------------------------------------------------------------------------
def short(steps: int) -> TrainingConfig:
    """IMP's own training settings (F&C's Adam, batch 60) at a test-sized budget and a faster lr."""
    return dataclasses.replace(IMP_TRAINING, steps=steps, lr=1e-2)


def test_imp_training_defaults_to_frankle_and_carbin() -> None:
    assert IMP_TRAINING == TrainingConfig(steps=1000, optimizer="adam", lr=1.2e-3, batch_size=60)


def test_imp_schedule_by_hand() -> None:
    # Layerwise, ρ = 4 → target 80; rates 0.2 / 0.2 / 0.1 (output at half rate), round(p·kept) per round:
    # 192,96,32 → 154,77,29 → 123,62,26 → 98,50,23 → 78,40,21 → 62,32,19 → 50,26,17 (=93); the next
    # round (40,21,15 = 76) would pass 80, so it removes 13 split by 10 : 5.2 : 1.7 → 8,4,1 → 42,22,16.
    rates = {"fc1": 0.2, "fc2": 0.2, "fc3": 0.1}
    rounds = imp_schedule(SIZES, 80, rates)
    assert rounds[0] == {"fc1": 154, "fc2": 77, "fc3": 29}
    assert rounds[5] == {"fc1": 50, "fc2": 26, "fc3": 17}
    assert rounds[-1] == {"fc1": 42, "fc2": 22, "fc3": 16}
    # Global, p = 0.2, target 100: 320 → 256 → 205 → 164 → 131 → 105 → 100 (84 would pass it).
    assert imp_schedule(SIZES, 100, {n: 0.2 for n in SIZES}, "global") == [256, 205, 164, 131, 105, 100]


def test_imp_reaches_target_in_expected_rounds(synthetic: Dataset) -> None:
    model = build_model(SPEC, 0)
    before = state(model)
    rho = 4.0
    target = round(N / rho)
    # Expected rounds from the rates: the first r with Σ N_l (1 − p_l)^r <= target.
    rates = {"fc1": 0.2, "fc2": 0.2, "fc3": 0.1}
    expected = next(r for r in range(1, 100) if sum(SIZES[n] * (1 - rates[n]) ** r for n in SIZES) <= target)
    assert expected == 7  # 192·0.8^7 + 96·0.8^7 + 32·0.9^7 = 75.7 <= 80 < 92.5 at r = 6
    rng = torch.get_rng_state()
    result = imp(model, rho, synthetic, training=short(15))
    assert torch.equal(torch.get_rng_state(), rng)
    assert result.rounds == expected
    assert result.mask.kept() == target and result.kept[-1] == target and len(result.kept) == expected
    assert result.mask.layer_kept() == {"fc1": 42, "fc2": 22, "fc3": 16}
    assert all(torch.equal(v, state(model)[k]) for k, v in before.items())  # model untouched
    assert all(torch.equal(result.rewind_state[k], v) for k, v in before.items())  # rewind to init
    assert prune(model, "imp", rho, data=synthetic, training=short(15)) == result.mask
    glob = prune(model, "imp", rho, data=synthetic, scope="global", training=short(15))
    assert glob.kept() == target


def test_imp_one_round_is_magnitude_of_the_trained_weights(synthetic: Dataset) -> None:
    """ρ = 320/260: one round removes 38, 19, 3 weights, the smallest |θ| after training."""
    model = build_model(SPEC, 2)
    result = imp(model, 320 / 260, synthetic, training=short(25), seed=3)
    assert result.rounds == 1
    trained = build_model(SPEC, 2)
    train(trained, Mask.ones(trained), synthetic, TrainingConfig(steps=25, lr=1e-2, batch_size=60), seed=3)
    counts = {"fc1": 154, "fc2": 77, "fc3": 29}
    expected = Mask(
        {
            n: keep_highest(layer.weight.detach().abs().double().reshape(-1), counts[n]).view(
                layer.weight.shape
            )
            for n, layer in prunable_layers(trained).items()
        }
    )
    assert result.mask == expected


def test_imp_rewinds_to_step_k(synthetic: Dataset) -> None:
    model = build_model(SPEC, 0)
    result = imp(model, 1.5, synthetic, training=short(12), rewind_step=4)
    early = build_model(SPEC, 0)
    train(early, None, synthetic, TrainingConfig(steps=4, lr=1e-2, batch_size=60), seed=0)
    assert all(torch.equal(result.rewind_state[k], v) for k, v in state(early).items())
    assert result.mask.kept() == round(N / 1.5)


def test_imp_hands_back_every_round(synthetic: Dataset) -> None:
    """Each round's mask (nested: no weight comes back), its kept count and density, and the validation
    accuracy of the network that round trained: round 1 trains the dense network from the init."""
    model = build_model(SPEC, 1)
    result = imp(model, 4.0, synthetic, training=short(10), seed=2)
    assert len(result.history) == result.rounds == 7
    assert tuple(r.kept for r in result.history) == result.kept
    assert result.history[-1].mask == result.mask
    previous = Mask.ones(model)
    for r in result.history:
        assert r.mask.kept() == r.kept and r.density == pytest.approx(r.kept / N)
        assert all(not bool((r.mask[n] & ~previous[n]).any()) for n in r.mask)
        assert 0 <= r.trained_accuracy <= 1
        previous = r.mask
    dense = build_model(SPEC, 1)
    first = train(dense, Mask.ones(dense), synthetic, short(10), seed=2)
    assert result.history[0].trained_accuracy == first.val_accuracy
    second = build_model(SPEC, 1)
    assert (
        result.history[1].trained_accuracy
        == train(second, result.history[0].mask, synthetic, short(10), seed=2).val_accuracy
    )


@pytest.mark.parametrize(("seed", "scope"), [(0, "layerwise"), (3, "layerwise"), (1, "global")])
def test_imp_tickets_at_equal_imp_at_each_target_from_one_trajectory(
    synthetic: Dataset, seed: int, scope: str
) -> None:
    """IMP's schedules for different targets share every round but their last: one trajectory to the
    sparsest target cuts the very ticket ``imp`` returns for each, at the rounds of the longest alone."""
    model = build_model(SPEC, seed)
    options = {"training": TrainingConfig(steps=4, lr=0.01, batch_size=32), "seed": seed, "scope": scope}
    result = imp(model, 10.0, synthetic, tickets_at=[1.0, 2.0, 5.0], **options)
    assert set(result.tickets) == {1.0, 2.0, 5.0, 10.0}
    assert result.tickets[1.0] == Mask.ones(model)  # no round at all
    for c in (2.0, 5.0, 10.0):
        ref = imp(model, c, synthetic, **options)
        assert result.tickets[c] == ref.mask
        assert ref.mask.kept() == round(N / c)
        assert len(imp_plan(model, c, scope=scope)) == ref.rounds <= result.rounds
    assert result.rounds == len(imp_plan(model, 10.0, scope=scope)) == len(result.history)
    assert result.tickets[10.0] == result.mask


def test_imp_plan_is_the_schedule_with_imps_rates() -> None:
    model = build_model(SPEC, 0)
    assert imp_plan(model, 4.0) == imp_schedule(SIZES, 80, {"fc1": 0.2, "fc2": 0.2, "fc3": 0.1})
    assert imp_plan(model, 3.2, scope="global") == imp_schedule(
        SIZES, 100, dict.fromkeys(SIZES, 0.2), "global"
    )
    assert imp_plan(model, 1.0) == []
    with pytest.raises(PruningError, match=r"^IMP output_rate must be in \(0, 1\), got 1.5$"):
        imp_plan(model, 4.0, output_rate=1.5)
    for both_or_neither in ({"compression": 4.0, "rounds": 3}, {}):
        with pytest.raises(PruningError, match=r"^an IMP plan needs one of compression and rounds$"):
            imp_plan(model, **both_or_neither)


def test_imp_schedule_with_a_fixed_number_of_rounds_by_hand() -> None:
    # The plain rule with no landing: the rounds of test_imp_schedule_by_hand, and as many as asked.
    rates = {"fc1": 0.2, "fc2": 0.2, "fc3": 0.1}
    assert imp_schedule(SIZES, 0, rates, rounds=3) == [
        {"fc1": 154, "fc2": 77, "fc3": 29},
        {"fc1": 123, "fc2": 62, "fc3": 26},
        {"fc1": 98, "fc2": 50, "fc3": 23},
    ]
    assert imp_schedule(SIZES, 0, dict.fromkeys(SIZES, 0.2), "global", rounds=4) == [256, 205, 164, 131]
    assert imp_schedule(SIZES, 0, rates, rounds=0) == []
    model = build_model(SPEC, 0)
    assert imp_plan(model, rounds=3) == imp_schedule(SIZES, 0, rates, rounds=3)
    assert imp_plan(model, rounds=4, scope="global") == [256, 205, 164, 131]
    # at 0.9 per round fc3 goes 32 → 3 → 0 (round(2.7) = 3), an empty layer after round 2
    with pytest.raises(PruningError) as e:
        imp_plan(model, rounds=5, rate=0.9, output_rate=0.9)
    assert str(e.value) == "rounds = 5 would keep no weight of layer 'fc3' (none left after round 2)"
    with pytest.raises(PruningError) as e:  # 320 → 32 → 3 → 0
        imp_plan(model, rounds=3, rate=0.9, scope="global")
    assert str(e.value) == "rounds = 3 would keep no weight of the 320 (none left after round 3)"


def test_a_round_is_the_trained_magnitudes_from_the_rewind_point(synthetic: Dataset) -> None:
    """``imp_rewind_state`` (k dense steps, evaluating nothing), ``imp_round`` (the steps after it, batches
    from seed + 1, then ``prune_round``: the largest |θ|) by hand; an interval longer than the rewind phase
    does not matter there, only in the rounds."""
    model = build_model(SPEC, 4)
    training = TrainingConfig(steps=12, lr=1e-2, batch_size=60, eval_every=6)
    rewind = imp_rewind_state(model, synthetic, training, 4, seed=3)
    early = build_model(SPEC, 4)
    train(early, None, synthetic, TrainingConfig(steps=4, lr=1e-2, batch_size=60), seed=3)
    assert all(torch.equal(rewind[k], v) for k, v in state(early).items())
    assert all(
        torch.equal(imp_rewind_state(model, synthetic, training, 0)[k], v) for k, v in state(model).items()
    )
    mask = random_mask(model, 0, 0.7)
    counts = {"fc1": 60, "fc2": 30, "fc3": 20}
    rnd = imp_round(model, rewind, mask, synthetic, training, 4, kept=counts, seed=3, evaluate_test=True)
    net, result, pruned = rnd.net, rnd.result, rnd.pruned
    by_hand = train(early, mask, synthetic, training.with_steps(8), seed=4, evaluate_test=True)
    assert result == by_hand and result.steps == 8 and [c["step"] for c in result.curve] == [6, 8]
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state(early).items())
    assert pruned == prune_round(net, mask, counts)
    assert imp_round(model, rewind, mask, synthetic, training, 4, seed=3).pruned is None
    expected = {
        n: keep_highest((layer.weight.detach().abs().double() * mask[n]).reshape(-1), counts[n])
        for n, layer in prunable_layers(early).items()
    }
    assert pruned.layer_kept() == counts and all(not bool((pruned[n] & ~mask[n]).any()) for n in pruned)
    assert all(torch.equal(pruned[n].reshape(-1), expected[n]) for n in pruned)
    assert prune_round(net, mask, 110).kept() == 110  # one global count


def test_imp_rewinds_with_an_interval_longer_than_the_rewind_phase(synthetic: Dataset) -> None:
    training = TrainingConfig(steps=12, lr=1e-2, batch_size=60, eval_every=6)
    result = imp(build_model(SPEC, 0), 1.5, synthetic, training=training, rewind_step=4)
    assert result.mask.kept() == round(N / 1.5)


def test_imp_tickets_at_past_the_compression_is_an_error(synthetic: Dataset) -> None:
    with pytest.raises(PruningError) as e:
        imp(build_model(SPEC, 0), 10.0, synthetic, training=short(2), tickets_at=[5, 20])
    assert str(e.value) == "IMP ticket at ρ = 20 lies past the trajectory's compression 10"


# ---- collapse -----------------------------------------------------------------------------------------
def test_max_compression_is_weights_per_layer() -> None:
    assert max_compression(build_model(SPEC, 0)) == 320 / 3
    assert max_compression(build_model("mlp:784-300-100-10", 0)) == 266200 / 3


def test_synflow_bias_free_reaches_max_compression() -> None:
    """Maximal critical compression (Tanaka et al. 2020): bias-free SynFlow keeps a path up to ρ_max.

    Default grid x = 0, 0.25, ..., 2 (log10 ρ_max = 2.03): the last point keeps 3 weights, one per layer.
    """
    assert collapse_sweep(SPEC, "synflow", bias=False, until_collapse=True).critical == 100.0
    assert not prune(build_model(SPEC, 0, bias=False), "synflow", 100.0).is_collapsed()


def test_compression_grid() -> None:
    assert compression_grid(320 / 3) == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert compression_grid(320 / 3, include_max=True)[-1] == pytest.approx(math.log10(320 / 3))
    assert compression_grid(100.0, 0.5, include_max=True) == [0, 0.5, 1.0, 1.5, 2.0]  # ρ_max already on it
    assert compression_grid(1000.0, 0.1)[-1] == 3.0 and len(compression_grid(1000.0, 0.1)) == 31


def test_collapse_sweep_records_every_grid_point() -> None:
    grid = [0, 0.5, 1, 1.5, 2]
    sweep = collapse_sweep(SPEC, "magnitude", grid=[2, 0, 1.5, 1, 0.5], seed=1)  # sorted by the sweep
    model = build_model(SPEC, 1)
    masks = [prune(model, "magnitude", 10.0**x) for x in grid]
    assert sweep.exponents == tuple(grid)
    assert sweep.collapsed == tuple(m.is_collapsed() for m in masks)
    assert sweep.effective_fraction == tuple(m.effective().kept() / m.kept() for m in masks)
    assert sweep.effective_fraction[0] == 1.0  # ρ = 1: every weight on a path
    first = sweep.collapsed.index(True)
    assert sweep.effective_fraction[first] == 0.0  # a collapsed layer cuts every path
    assert sweep.critical == 10.0 ** grid[first - 1]
    early = collapse_sweep(SPEC, "magnitude", grid=grid, seed=1, until_collapse=True)
    assert early.exponents == tuple(grid[: first + 1]) and early.critical == sweep.critical


# ---- convolutional networks ----------------------------------------------------------------------------
CONV = "conv:6x6x2:3-M-4:5-3"  # conv [3,2,3,3], pool, conv [4,3,3,3], flatten 4×3×3, fc [5,36], fc [3,5]


def test_synflow_on_a_conv_by_hand() -> None:
    """``conv:2x2x1:1:1`` with every weight 1, bias-free: on the all-ones 2×2 input (padding 1) each output
    pixel sums the 4 kernel entries that land on the image, so R = 4 pixels × 4 = 16. A kernel entry's
    score is the number of output pixels where it lands on the image: 4 at the centre, 2 on the edges, 1 in
    the corners; each fc weight carries one pixel's flow, 4."""
    model = build_model("conv:2x2x1:1:1", 0, bias=False)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    s = synflow_scores(model, Mask.ones(model))
    assert s["conv1"][0, 0].tolist() == [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    assert s["fc1"].tolist() == [[4.0, 4.0, 4.0, 4.0]]
    assert float(s["conv1"].sum()) == 16.0


@pytest.mark.parametrize("seed", range(5))
def test_synflow_on_convs_conserves_flow_per_channel_and_per_layer(seed: int) -> None:
    """Theorems 1 and 2 of Tanaka et al. on a convnet with max-pooling: |θ| makes every layer positively
    homogeneous (the pool too), so every layer's total is R and every hidden channel passes on what enters
    it (the fc inputs of a channel count as its outgoing weights)."""
    model = build_model(CONV, seed, bias=False)
    mask = random_mask(model, seed, 0.6)
    s = synflow_scores(model, mask)
    net = build_model(CONV, seed, bias=False).double()
    with torch.no_grad():
        for name, layer in net.layers.items():
            layer.weight.abs_().mul_(mask[name])
    with torch.no_grad():
        r = float(net(torch.ones(1, 72, dtype=torch.float64)).sum())
    for n in s:
        assert abs(float(s[n].sum()) - r) <= 1e-9 * r
        assert float(s[n][~mask[n]].abs().sum()) == 0
    pairs = [
        (s["conv1"].sum(dim=(1, 2, 3)), s["conv2"].sum(dim=(0, 2, 3))),
        (s["conv2"].sum(dim=(1, 2, 3)), s["fc1"].view(5, 4, 9).sum(dim=(0, 2))),
        (s["fc1"].sum(dim=1), s["fc2"].sum(dim=0)),
    ]
    for incoming, outgoing in pairs:
        torch.testing.assert_close(incoming, outgoing, rtol=1e-9, atol=1e-12 * r)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("pruner", ["synflow", "snip", "magnitude", "random"])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_scorers_prune_conv_weights_to_exact_counts(pruner: str, scope: str) -> None:
    data = load_dataset("mnist1d", 0)
    model = build_model("cnn1d:40:25k5-25-25:10", 0)
    before = state(model)
    mask = prune(model, pruner, 10, scope=scope, data=data, iterations=5 if pruner == "synflow" else None)
    assert mask.shapes == Mask.ones(model).shapes
    if scope == "global":
        assert mask.kept() == 512  # round(5125 / 10): 125 + 1875 + 1875 + 1250 weights
    else:
        assert mask.layer_kept() == {"conv1": 12, "conv2": 188, "conv3": 188, "fc1": 125}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.usefixtures("one_thread")
@pytest.mark.slow  # ~26 s at load 11 on 2 cores: 50 SynFlow iterations through Conv-2's layers
def test_synflow_keeps_conv2_uncollapsed_where_random_and_magnitude_collapse() -> None:
    """Tanaka et al. (2020), Fig. 1: SynFlow avoids layer collapse at compressions where one-shot pruners
    cut a layer. Conv-2's layers on a 12×12 image (695 360 weights), bias-free, at ρ = 10^4 (70 weights)."""
    model = build_model("conv:12x12x1:64-64-M:256-256-10", 0, bias=False)
    syn = prune(model, "synflow", 1e4, iterations=50)
    assert syn.kept() == 70 and not syn.is_collapsed()
    assert prune(model, "random", 1e4).is_collapsed()
    assert prune(model, "magnitude", 1e4).is_collapsed()


@pytest.mark.usefixtures("one_thread")
def test_conv_max_compression_and_bias_free_synflow_reaches_it() -> None:
    """ρ_max = |θ| / L holds for convnets: one kernel entry per convolution and one fc weight per layer,
    each in the right channel's block, is a path. Bias-free SynFlow gets there on the MNIST-1D CNN."""
    model = build_model("cnn1d:40:25k5-25-25:10", 0, bias=False)
    assert max_compression(model) == 5125 / 4
    mask = prune(model, "synflow", max_compression(model))
    assert mask.layer_kept() == {"conv1": 1, "conv2": 1, "conv3": 1, "fc1": 1} and not mask.is_collapsed()


@pytest.mark.usefixtures("one_thread")
def test_imp_prunes_conv_weights() -> None:
    """One round to ρ = 1.2 (4271 of 5125 weights): 20% of each layer would leave 4225, so the round lands
    on the target, split in proportion to the rates (the output layer's is half)."""
    data = load_dataset("mnist1d", 0)
    model = build_model("cnn1d:40:25k5-25-25:10", 0)
    result = imp(model, 1.2, data, training=TrainingConfig(steps=10, batch_size=64))
    kept = result.mask.layer_kept()
    assert result.rounds == 1 and result.mask.kept() == 4271
    assert kept == dict(zip(kept, imp_plan(model, 1.2)[0].values(), strict=True))
    assert 1 - kept["fc1"] / 1250 == pytest.approx((1 - kept["conv2"] / 1875) / 2, abs=0.01)
