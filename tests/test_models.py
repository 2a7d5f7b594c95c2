import pytest
import torch

from lotterysearch.errors import ModelError
from lotterysearch.models import build_model, prunable_layers


def test_mlp_spec_builds_named_layers_in_order() -> None:
    net = build_model("mlp:784-300-100-10", 0)
    shapes = {n: tuple(layer.weight.shape) for n, layer in prunable_layers(net).items()}
    assert shapes == {"fc1": (300, 784), "fc2": (100, 300), "fc3": (10, 100)}
    assert sum(p.numel() for p in net.parameters()) == 266610  # LeNet-300-100 with biases
    assert net(torch.zeros(5, 784)).shape == (5, 10)


def test_seed_fixes_weights_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = build_model("mlp:4-3-2", 7), build_model("mlp:4-3-2", 7), build_model("mlp:4-3-2", 8)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a.layers.fc1.weight, b.layers.fc1.weight)
    assert not torch.equal(a.layers.fc1.weight, c.layers.fc1.weight)


def test_bias_free_option() -> None:
    net = build_model("mlp:4-3-2", 0, bias=False)
    assert all(layer.bias is None for layer in prunable_layers(net).values())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cnn:1-2", r"^unknown model spec 'cnn:1-2' \(known: 'mlp:\.\.\.', e\.g\. 'mlp:40-100-100-10'\)$"),
        ("mlp:40-x-10", r"^model spec 'mlp:40-x-10': widths must be integers joined by '-'$"),
        ("mlp:40", r"^model spec 'mlp:40': need at least input and output widths, all >= 1$"),
    ],
)
def test_bad_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build_model(spec, 0)


def test_glorot_initialization_is_gaussian_with_the_glorot_variance_and_zero_biases() -> None:
    model = build_model("mlp:784-300-100-10:glorot", 3)
    for layer in model.layers.values():
        fan_out, fan_in = layer.weight.shape
        w = layer.weight.detach().double().flatten()
        assert abs(float(w.mean())) < 4 * (2 / (fan_in + fan_out)) ** 0.5 / w.numel() ** 0.5
        assert float(w.std()) == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)
        assert float((w.abs() > 3 * w.std()).double().mean()) == pytest.approx(
            0.0027, abs=0.002
        )  # not uniform
        assert torch.count_nonzero(layer.bias) == 0
    again = build_model("mlp:784-300-100-10:glorot", 3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))
    torch_init = build_model("mlp:784-300-100-10:torch", 3)
    plain = build_model("mlp:784-300-100-10", 3)
    assert all(torch.equal(a, b) for a, b in zip(torch_init.parameters(), plain.parameters(), strict=True))
    with pytest.raises(
        ModelError, match=r"^model spec 'mlp:4-2:he': unknown initialization 'he' \(known: torch, glorot\)$"
    ):
        build_model("mlp:4-2:he", 0)
