"""The convnet family's batched training (``batched_conv.py``) and exact compaction of dead channels, against
the single-network trainer on real data (MNIST-1D and digits).

Every test runs under one torch thread, as the evaluators do.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from masktools import random_masks

from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask, masked_call
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError, ModelError
from lotterysearch.settings import FitnessConfig, TrainingConfig
from lotterysearch.training.batched_conv import ConvBatch
from lotterysearch.training.compaction import compact_mask, compaction, expand_into, work
from lotterysearch.training.family import COMPACT_BELOW, CONV_FAMILY
from lotterysearch.training.fitness import evaluate_mask, evaluate_masks, masks_per_call
from lotterysearch.training.trainer import train

CNN1D = "cnn1d:40:25k5-25-25:10"  # the MNIST-1D paper's CNN
SMALL = "conv:8x8x1:8-8-M:32-10"  # a 2-D convnet on digits' 8x8 images
# On CUDA a network's bits depend on the batch count K (cuBLAS), not on its companions: fix K there.
PAD = 8 if torch.cuda.is_available() else None
train_convnets = CONV_FAMILY.train_networks


def kernel(mask: Mask, model: torch.nn.Module, mode: str, batch_size: int) -> str:
    return CONV_FAMILY.plan(mask, model, mode, batch_size).kernel


pytestmark = pytest.mark.usefixtures("one_thread")  # batching is bit-equal on one thread


@pytest.fixture(scope="module")
def mnist1d():
    return load_dataset("mnist1d", 0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def far_share(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-6) -> float:
    """The share of weights further apart than ``tol``."""
    far = sum(int(((x - y).abs() > tol).sum()) for x, y in zip(a, b, strict=True))
    return far / sum(x.numel() for x in a)


# ---- equal to the single-network trainer ---------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "dataset", "mode", "optimizer", "lr"),
    [
        (CNN1D, "mnist1d", "forward", "adam", 1e-2),
        (CNN1D, "mnist1d", "gradient", "adam", 1e-2),
        (CNN1D, "mnist1d", "straight_through", "sgd", 0.05),
        (SMALL, "digits", "forward", "sgd", 0.05),
        (SMALL, "digits", "straight_through", "adam", 1e-2),
    ],
)
def test_batched_convnets_train_like_the_single_trainer(
    request, spec: str, dataset: str, mode: str, optimizer: str, lr: float
) -> None:
    """Weights within 1e-6 of ``train``'s after 15 steps but for at most 0.1% of them, and all within 1e-4;
    the same accuracies, losses within 1e-5. (im2col and bmm sum in another order than torch's
    convolution; where a weight's gradient stays below Adam's ε the update is lr·g/ε, which multiplies a
    rounding difference in g by lr/ε = 1e6: one weight of the 1-D CNN's 5 210 lands 1.5e-5 away on some CPUs.)"""
    data = request.getfixturevalue(dataset)
    masks = random_masks(spec, [0.6, 0.2, 0.05])
    training = TrainingConfig(steps=15, optimizer=optimizer, lr=lr)
    singles = []
    for m in masks:
        model = build_model(spec, 1)
        r = train(model, m, data, training, mode=mode, seed=4)
        singles.append((params(model), r))
    models = [build_model(spec, 1) for _ in masks]
    results = train_convnets(models, masks, data, training, mode=mode, seed=4)
    for (p1, r1), model, r2 in zip(singles, models, results, strict=True):
        assert max_diff(p1, params(model)) <= 1e-4 and far_share(p1, params(model)) <= 1e-3
        assert r2.val_accuracy == pytest.approx(r1.val_accuracy, abs=1e-9)
        assert r2.val_loss == pytest.approx(r1.val_loss, abs=1e-5)
    assert max_diff(params(models[0]), params(build_model(spec, 1))) > 1e-3  # training moved the weights
    if mode != "straight_through":  # pruned weights keep their initial values
        init, trained = build_model(spec, 1).layers.conv2.weight, models[1].layers.conv2.weight
        pruned = ~masks[1]["conv2"]
        assert torch.equal(trained.detach()[pruned], init.detach()[pruned])


@pytest.mark.parametrize(("spec", "dataset"), [(CNN1D, "mnist1d"), (SMALL, "digits")])
def test_a_convnet_trains_to_the_same_bits_in_any_batch(request, spec: str, dataset: str) -> None:
    """Alone, or among others in any order and number: the same weights, accuracy and loss, bit for bit."""
    data = request.getfixturevalue(dataset)
    masks = random_masks(spec, [0.5, 0.1, 0.9, 0.3], seed=2)
    training = TrainingConfig(steps=10, lr=1e-2)

    def run(ms: list[Mask]) -> list[tuple[list[torch.Tensor], object]]:
        models = [build_model(spec, 0) for _ in ms]
        results = train_convnets(models, ms, data, training, seed=1, pad_to=PAD)
        return [(params(m), (r.val_accuracy, r.val_loss)) for m, r in zip(models, results, strict=True)]

    together = run(masks)
    alone = run(masks[1:2])[0]
    pair = run(masks[2:0:-1])[::-1]  # masks 1 and 2, in the other order
    reversed_ = run(masks[::-1])[::-1]
    for a, b in [
        (alone, together[1]),
        *zip(pair, together[1:3], strict=True),
        *zip(reversed_, together, strict=True),
    ]:
        assert a[1] == b[1]
        assert all(torch.equal(x, y) for x, y in zip(a[0], b[0], strict=True))


def test_networks_per_batch_batches_small_convnets_only() -> None:
    cnn = build_model(CNN1D, 0)
    assert work(cnn) == 25 * 5 * 19 + 25 * 25 * 3 * 10 + 25 * 25 * 3 * 5 + 125 * 10
    assert CONV_FAMILY.networks_per_batch(cnn, 128) == 8  # 2.4e7 flops a step
    assert CONV_FAMILY.networks_per_batch(cnn, 256) == 1  # 4.9e7: 5 would not pay, alone
    assert CONV_FAMILY.networks_per_batch(build_model("conv2:28x28x1", 0), 128) == 1  # 2.4e10 flops a step
    assert masks_per_call(CNN1D, 128) == CONV_FAMILY.networks_per_batch(cnn, 128)
    assert masks_per_call("conv2:28x28x1", 128) == 1


def test_conv_batch_arguments_are_checked() -> None:
    cnn, mlp = build_model(CNN1D, 0), build_model("mlp:40-10", 0)
    with pytest.raises(ConfigError, match="at least one network"):
        ConvBatch([], [])
    with pytest.raises(ModelError) as e:
        ConvBatch([mlp], [None])
    assert str(e.value) == "convnet batches take convnets; got MLP"
    with pytest.raises(ModelError, match="differ in architecture"):
        ConvBatch([cnn, build_model("cnn1d:40:25k5-25:10", 0)], [None, None])


# ---- exact compaction of dead channels -----------------------------------------------------------
HAND = (
    "conv:4x4x1:4-3-M:3-2"  # conv1 [4, 1, 3, 3], conv2 [3, 4, 3, 3], pool to 3 x 2x2, fc1 [3, 12], fc2 [2, 3]
)


def _hand_mask() -> Mask:
    """conv1: channels 0-2 fed by the input, 3 not (a bias constant); conv2: channel 0 reads conv1's 0 and
    3, channel 1 reads 1, channel 2 reads 2; fc1: neuron 0 reads one pixel of conv2 channel 0's block,
    neuron 2 reads channel 1's block, neuron 1 reads nothing (a bias constant); fc2 reads neurons 0 and 1.
    So conv2 channel 2 (no fc block) and channel 1 (into the dead-end neuron 2) die, with conv1's 1 and 2."""
    conv1 = np.zeros((4, 1, 3, 3), dtype=bool)
    conv1[0, 0, 1, 1] = conv1[1, 0, 0, 0] = conv1[2, 0, 2, 2] = True
    conv2 = np.zeros((3, 4, 3, 3), dtype=bool)
    conv2[0, 0, 1, :] = conv2[0, 3, 0, 0] = conv2[1, 1, 1, 1] = conv2[2, 2, 1, 1] = True
    fc1 = np.zeros((3, 12), dtype=bool)
    fc1[0, 2] = fc1[2, 4:8] = True
    fc2 = np.zeros((2, 3), dtype=bool)
    fc2[0, 0] = fc2[1, 0] = fc2[1, 1] = True
    return Mask({"conv1": conv1, "conv2": conv2, "fc1": fc1, "fc2": fc2})


def test_compaction_keeps_bias_constant_channels_and_drops_dead_ends() -> None:
    comp = compaction(_hand_mask())
    assert [k.tolist() for k in comp.kept] == [[0, 3], [0], [0, 1], [0, 1]]
    assert (comp.inputs.tolist(), comp.flatten, comp.block) == ([0], 2, 4)  # input channels: all kept
    assert comp.widths == (1, 2, 1, 2, 2)
    small = CONV_FAMILY.compact_model(build_model(HAND, 0), comp)
    assert compact_mask(_hand_mask(), comp).shapes == {
        "conv1": (2, 1, 3, 3),
        "conv2": (1, 2, 3, 3),
        "fc1": (2, 4),
        "fc2": (2, 2),
    }
    assert Mask.ones(small).shapes == compact_mask(_hand_mask(), comp).shapes
    no_bias = compaction(_hand_mask(), bias=False)  # without biases the constants are relu(0) = 0
    assert [k.tolist() for k in no_bias.kept] == [[0], [0], [0], [0, 1]]
    convolutions_only = Mask({n: _hand_mask()[n] for n in ("conv1", "conv2")})
    with pytest.raises(ModelError, match=r"^compaction needs fully connected layers after the convolutions$"):
        compaction(convolutions_only)
    full = build_model(HAND, 0)
    assert work(full) == 4 * 9 * 16 + 3 * 36 * 16 + 36 + 6
    assert work(full, comp) == 2 * 9 * 16 + 1 * 18 * 16 + 8 + 4


def test_compacted_convnet_computes_the_same_function_and_gradients() -> None:
    mask = _hand_mask()
    model = build_model(HAND, 5)
    with torch.no_grad():  # the bias-constant units are active: relu(0.7) > 0
        model.layers.conv1.bias[3] = 0.7
        model.layers.fc1.bias[1] = 0.7
    comp = compaction(mask)
    small, small_mask = CONV_FAMILY.compact_model(model, comp), compact_mask(mask, comp)
    x = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    dense_out, small_out = masked_call(model, mask, x), masked_call(small, small_mask, x)
    assert torch.allclose(small_out, dense_out, atol=1e-6)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    F.cross_entropy(dense_out, y).backward()
    F.cross_entropy(small_out, y).backward()
    assert small.layers.conv1.bias.grad[1] != 0  # the constant channel's bias learns
    for (name, layer), (rows, cols) in zip(small.layers.items(), comp.rows_and_columns(), strict=True):
        dense = model.layers[name]
        assert torch.allclose(layer.weight.grad, dense.weight.grad[rows][:, cols], atol=1e-7)
        assert torch.allclose(layer.bias.grad, dense.bias.grad[rows], atol=1e-7)
    # the effective subnetwork drops the constant channel too: another function
    assert not mask.effective()["conv2"][0, 3].any()
    assert not torch.allclose(masked_call(model, mask.effective(), x), dense_out, atol=1e-3)


@pytest.mark.parametrize("mode", ["forward", "straight_through"])
def test_compacted_convnet_training_tracks_dense_training(mnist1d, mode: str) -> None:
    """Same losses and kept weights to float tolerance over a short run of the MNIST-1D CNN."""
    (mask,) = random_masks(CNN1D, [0.3], seed=3)
    layers = {name: mask[name].clone() for name in mask.names}
    layers["conv2"][10:] = False  # conv2 channels 10-24 read nothing ...
    layers["conv3"][:, 10:] = False  # ... and feed nothing: dead
    layers["fc1"][:, 12 * 5 :] = False  # conv3 channels 12-24 have no fc block: dead
    mask = Mask(layers)
    comp = compaction(mask)
    assert [len(k) for k in comp.kept] == [25, 10, 12, 10]
    cnn = build_model(CNN1D, 0)
    assert work(cnn, comp) < 0.5 * work(cnn)
    training = TrainingConfig(steps=8, lr=1e-2)
    rd = train(cnn, mask, mnist1d, training, mode=mode, seed=2)
    small = CONV_FAMILY.compact_model(build_model(CNN1D, 0), comp)
    rc = train(small, compact_mask(mask, comp), mnist1d, training, mode=mode, seed=2)
    assert rc.val_loss == pytest.approx(rd.val_loss, abs=1e-5)
    assert rc.val_accuracy == rd.val_accuracy
    full = build_model(CNN1D, 0)
    expand_into(full, small, comp)
    for name in mask.names:
        live = mask[name]
        assert float((cnn.layers[name].weight - full.layers[name].weight).detach()[live].abs().max()) <= 1e-5


# ---- fitness: the kernel is a function of the mask; a mask's objectives do not depend on its batch ---
def test_fitness_plan_batches_small_convnets_and_compacts_large_ones() -> None:
    (sparse,) = random_masks("conv2:28x28x1", [0.002])
    conv2 = build_model("conv2:28x28x1", 0)
    assert work(conv2, compaction(sparse)) <= COMPACT_BELOW * work(conv2)
    assert kernel(sparse, conv2, "forward", 128) == "compact"
    assert kernel(sparse, conv2, "gradient", 128) == "plain"  # dense forward pass
    assert kernel(Mask.ones(conv2), conv2, "forward", 128) == "plain"
    cnn = build_model(CNN1D, 0)
    assert kernel(random_masks(CNN1D, [0.01])[0], cnn, "forward", 128) == "batched"
    small = build_model(SMALL, 0)  # 3.5e7 flops a step: alone
    assert kernel(Mask.ones(small), small, "forward", 128) == "plain"


def test_convnet_evaluate_masks_equals_evaluate_mask_of_each(mnist1d) -> None:
    masks = random_masks(CNN1D, [0.5, 0.1, 0.3, 0.02, 0.8, 0.2, 0.6, 0.4, 0.05], seed=5)
    cfg = FitnessConfig(steps=8, init_seeds=(0, 2), lr=0.01)
    together = evaluate_masks(masks, CNN1D, mnist1d, cfg, "forward")
    assert len(masks) > masks_per_call(CNN1D, cfg.batch_size)  # more than one batch
    assert together[-1] == evaluate_mask(masks[-1], CNN1D, mnist1d, cfg, "forward")  # alone
    assert evaluate_masks(masks[::-1], CNN1D, mnist1d, cfg, "straight_through")[::-1] == together
    for mask, o in zip(masks[:1], together, strict=False):  # and the trainer's numbers, to float rounding
        runs = [train(build_model(CNN1D, s), mask, mnist1d, cfg.training(), seed=s) for s in (0, 2)]
        assert o.loss == pytest.approx(sum(r.val_loss for r in runs) / 2, abs=1e-5)
    assert [o.density for o in together] == [m.density() for m in masks]
    assert all(o.steps == 16 for o in together)
