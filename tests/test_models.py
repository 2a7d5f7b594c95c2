import math
import re

import pytest
import torch

from lotterysearch.core.models import build_model, input_shape, input_width, parse_spec, prunable_layers
from lotterysearch.errors import ModelError

KNOWN = (
    "'mlp:...', 'conv:...', 'conv2:...', 'conv4:...', 'conv6:...', 'cnn1d:...', 'resnet20',"
    " a factory 'package.module:function'"
)


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
        (
            "cnn:1-2",
            "^" + re.escape(f"unknown model spec 'cnn:1-2' (known: {KNOWN}, e.g. 'mlp:40-100-100-10')") + "$",
        ),
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


def shapes(spec: str) -> dict[str, tuple[int, ...]]:
    return {n: tuple(layer.weight.shape) for n, layer in prunable_layers(build_model(spec, 0)).items()}


def test_conv2_4_6_are_frankle_and_carbins_networks() -> None:
    """3×3 convolutions of 64, 128, 256 channels, a 2×2 max-pool after each pair, then 256-256-10."""
    assert shapes("conv2:32x32x3") == {
        "conv1": (64, 3, 3, 3),
        "conv2": (64, 64, 3, 3),
        "fc1": (256, 16 * 16 * 64),
        "fc2": (256, 256),
        "fc3": (10, 256),
    }
    assert list(shapes("conv4:32x32x3").values())[2:5] == [
        (128, 64, 3, 3),
        (128, 128, 3, 3),
        (256, 8 * 8 * 128),
    ]
    assert list(shapes("conv6:32x32x3").values())[4:7] == [
        (256, 128, 3, 3),
        (256, 256, 3, 3),
        (256, 4 * 4 * 256),
    ]
    assert shapes("conv2:28x28x1")["conv1"] == (64, 1, 3, 3) and shapes("conv2:28x28x1")["fc1"] == (
        256,
        14 * 14 * 64,
    )
    assert shapes("conv6:28x28x1")["fc1"] == (256, 3 * 3 * 256)  # 28 → 14 → 7 → 3 (floor)
    weights = {
        s: sum(math.prod(w) for w in shapes(f"{s}:32x32x3").values()) for s in ("conv2", "conv4", "conv6")
    }
    # F&C's Table 1: 4.3M, 2.4M (their 1.7M for Conv-6 is not what its layers give: 1.14M conv + 1.12M fc)
    assert weights == {"conv2": 4_300_992, "conv4": 2_425_024, "conv6": 2_261_184}
    assert shapes("conv2:32x32x3") == shapes("conv:32x32x3:64-64-M:256-256-10")


def test_mnist1d_cnn_is_the_papers_convbase() -> None:
    """Greydanus (2020): Conv1d(1→25, k5), (25→25, k3), (25→25, k3), stride 2, padding 1; 40 → 19 → 10 → 5."""
    net = build_model("cnn1d:40:25k5-25-25:10", 0)
    assert shapes("cnn1d:40:25k5-25-25:10") == {
        "conv1": (25, 1, 5),
        "conv2": (25, 25, 3),
        "conv3": (25, 25, 3),
        "fc1": (10, 125),
    }
    assert sum(p.numel() for p in net.parameters()) == 5210  # "about 5k"
    conv = net.layers
    assert [conv[f"conv{i}"].stride + conv[f"conv{i}"].padding for i in (1, 2, 3)] == [(2, 1)] * 3
    assert input_shape(net) == (1, 40) and input_width(net) == 40


def test_conv_reads_flat_inputs_channel_major_and_equals_plain_torch() -> None:
    net = build_model("conv:6x6x2:3-M-4:5-3", 1)
    x = torch.randn(4, 2, 6, 6)
    c1, c2, f1, f2 = (net.layers[n] for n in ("conv1", "conv2", "fc1", "fc2"))
    h = torch.relu(c2(torch.max_pool2d(torch.relu(c1(x)), 2)))
    expected = f2(torch.relu(f1(h.flatten(1))))
    assert torch.allclose(net(x.flatten(1)), expected, atol=1e-6) and torch.allclose(
        net(x), expected, atol=1e-6
    )
    assert parse_spec("conv:6x6x2:3-M-4:5-3").input_shape == (2, 6, 6)
    assert parse_spec("cnn1d:40x3:8:10").input_shape == (3, 40)


def test_conv_specs_keep_glorot_and_bias_options() -> None:
    net = build_model("conv2:28x28x1:glorot", 0, bias=False)
    w = net.layers.conv2.weight.detach().double()
    assert float(w.std()) == pytest.approx((2 / (64 * 9 + 64 * 9)) ** 0.5, rel=0.05)
    assert all(layer.bias is None for layer in prunable_layers(net).values())
    assert torch.count_nonzero(build_model("cnn1d:40:25k5-25-25:10:glorot", 0).layers.conv1.bias) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "conv:28x28x1:64-M",
            "expected conv:HxWxC:FEATURES:CLASSIFIER, e.g. 'conv:32x32x3:64-64-M:256-256-10'",
        ),
        ("conv:28x28:64:10", "input shape '28x28' must be HxWxC, integers >= 1"),
        ("conv:28x28x1:64-P:10", "feature 'P' is neither a channel count >= 1 nor 'M'"),
        ("conv:28x28x1:M-64:10", "'M' (max-pool) must follow a convolution"),
        ("conv:28x28x1:64:10-x", "classifier widths must be integers joined by '-'"),
        ("conv:2x2x1:4-M-4-M:10", "the input 2x2x1 shrinks to nothing at convolution 2"),
        ("conv2:32x32", "input shape '32x32' must be HxWxC, integers >= 1"),
        ("conv2:32x32x3:he", "unknown initialization 'he' (known: torch, glorot)"),
        ("cnn1d:40:25q5:10", "feature '25q5' must be channels with an optional kernel, e.g. 25k5"),
        ("cnn1d:8:8-8-8k7:10", "the input 8 shrinks to nothing at convolution 3"),
    ],
)
def test_bad_conv_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ModelError) as e:
        build_model(spec, 0)
    assert str(e.value) == f"model spec '{spec}': {message}"


def test_imp_runs_and_searches_take_convnets() -> None:
    """IMP's layerwise schedule prunes a convnet's last fully connected layer at the output rate; a search
    takes a convnet too (its class keys treat channels as units)."""
    from dataclasses import replace

    from lotterysearch.api import check_run
    from lotterysearch.settings import IMPConfig, SearchConfig, validate, validate_imp

    spec = "cnn1d:40:25k5-25-25:10"
    assert check_run(validate_imp(replace(IMPConfig(), model=spec))).model == spec
    assert check_run(validate(replace(SearchConfig(), model=spec))).model == spec
