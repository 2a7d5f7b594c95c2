"""The MLP family's batched training (``batched.py``, ``batched_mlp.py``) and exact compaction against the
single-network trainer.

Every test runs under one torch thread, as the evaluators do: that is where a mask's objectives must not
depend on the other masks of its batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from masktools import random_masks

from lotterysearch.core.masks import MODES, Mask, masked_call
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError, ModelError
from lotterysearch.settings import FitnessConfig, TrainingConfig
from lotterysearch.training.batched import ALIGN, Layout, train_batch
from lotterysearch.training.batched_mlp import _CSR, MLPBatch, sparse_layers
from lotterysearch.training.compaction import compact_mask, compaction, expand_into, work
from lotterysearch.training.family import COMPACT_BELOW, CONV_FAMILY, MLP_FAMILY, family_of
from lotterysearch.training.fitness import evaluate_mask, evaluate_masks
from lotterysearch.training.trainer import train

pytestmark = [
    pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta"),
    pytest.mark.usefixtures("one_thread"),  # batching is bit-equal on one thread
]

SPEC = "mlp:16-24-24-4"
ODD = "mlp:16-7-5-4"  # blocks of 112, 35 and 20 floats: vector tails everywhere without the padding
LENET = "mlp:784-300-100-10"
train_networks = MLP_FAMILY.train_networks


@pytest.fixture
def data(synthetic):
    """The session's synthetic dataset (split seed 0); read only."""
    return synthetic


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().cpu() for p in model.parameters()]


# On CUDA a network's bits depend on the batch count K (cuBLAS), not on its companions: fix K there.
PAD = 8 if torch.cuda.is_available() else None


# ---- equal to the single-network trainer ---------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 1e-2), ("sgd", 0.05)])
def test_batched_weights_equal_the_single_trainer(data, mode: str, optimizer: str, lr: float) -> None:
    masks = random_masks(SPEC, [0.6, 0.2, 0.05])
    steps = 25
    training = TrainingConfig(steps=steps, optimizer=optimizer, lr=lr)
    singles, single_results = [], []
    for m in masks:
        model = build_model(SPEC, 1)
        single_results.append(train(model, m, data, training, mode=mode, seed=4))
        singles.append(model)
    models = [build_model(SPEC, 1) for _ in masks]
    results = train_networks(models, masks, data, training, mode=mode, seed=4)
    for single, batched, r1, r2 in zip(singles, models, single_results, results, strict=True):
        for a, b in zip(params(single), params(batched), strict=True):
            assert float((a - b).abs().max()) <= 1e-6
        assert r2.val_accuracy == r1.val_accuracy
        assert r2.val_loss == pytest.approx(r1.val_loss, abs=1e-6)
        assert r2.steps == steps
    # and training moved the weights (a test that cannot fail would pass with steps=0)
    assert not torch.equal(params(models[0])[0], params(build_model(SPEC, 1))[0])


def test_pruned_weights_follow_each_mode(data) -> None:
    """forward and gradient: pruned weights keep their initial values; straight_through: they move."""
    (mask,) = random_masks(SPEC, [0.3])
    init = params(build_model(SPEC, 0))[0]
    for mode, moves in [("forward", False), ("gradient", False), ("straight_through", True)]:
        model = build_model(SPEC, 0)
        train_networks([model], [mask], data, TrainingConfig(steps=10), mode=mode)
        pruned = ~mask["fc1"]
        assert torch.equal(params(model)[0][pruned], init[pruned]) != moves


# ---- independent of K and of the companions ------------------------------------------------------
@pytest.mark.parametrize(("spec", "batch_size"), [(SPEC, 128), (ODD, 37)])
@pytest.mark.parametrize("mode", MODES)
def test_a_mask_trains_to_the_same_bits_in_any_batch(data, spec: str, batch_size: int, mode: str) -> None:
    """Alone, or among others in any order and number: the same weights, accuracy and loss, bit for bit.
    (ODD with B = 37 gives matrices of 7x16, 37x7, 5x7, ...: blocks that a packed layout would misalign.)"""
    masks = random_masks(spec, [0.5, 0.2, 0.9, 0.05, 0.3, 0.7], seed=2)
    training = TrainingConfig(steps=20, batch_size=batch_size)
    kw = {"mode": mode, "seed": 1, "pad_to": PAD}
    reference = []
    for m in masks:  # each alone
        model = build_model(spec, 0)
        (r,) = train_networks([model], [m], data, training, **kw)
        reference.append((params(model), r))
    for order in ([5, 4, 3, 2, 1, 0], [2, 0], [1, 1, 3], [0, 2, 4]):
        models = [build_model(spec, 0) for _ in order]
        results = train_networks(models, [masks[j] for j in order], data, training, **kw)
        for j, model, r in zip(order, models, results, strict=True):
            ref_params, ref = reference[j]
            assert all(torch.equal(a, b) for a, b in zip(params(model), ref_params, strict=True))
            assert (r.val_accuracy, r.val_loss) == (ref.val_accuracy, ref.val_loss)


def test_layout_starts_every_block_on_the_alignment() -> None:
    layout = Layout.of([(7, 16), (5, 7), (4, 5)], bias=True)
    assert all(o % ALIGN == 0 for o in (*layout.weight_offsets, *layout.bias_offsets))
    assert layout.size % ALIGN == 0
    # 7x16=112 -> 128, 7 -> 64, 5x7=35 -> 64, 5 -> 64, 4x5=20 -> 64, 4 -> 64
    assert layout.size == 128 + 64 * 5
    flat = torch.arange(2 * layout.size, dtype=torch.float32).view(2, layout.size)
    w = layout.weights(flat)
    assert [tuple(t.shape) for t in w] == [(2, 7, 16), (2, 5, 7), (2, 4, 5)]
    assert w[1][1, 0, 0] == layout.size + layout.weight_offsets[1]


def test_networks_per_batch_batches_small_networks_only() -> None:
    """K = min(16, 1.28e8 // (6·B·Σ in·out)), at least 1."""
    assert family_of("mlp:40-100-100-10") is MLP_FAMILY
    assert work(build_model("mlp:40-100-100-10", 0)) == 40 * 100 + 100 * 100 + 100 * 10
    assert MLP_FAMILY.networks_per_batch(build_model("mlp:40-100-100-10", 0), 128) == 11  # 1.2e7 flops
    assert MLP_FAMILY.networks_per_batch(build_model(LENET, 0), 128) == 1
    assert MLP_FAMILY.networks_per_batch(build_model("mlp:16-8-4", 0), 64) == 16  # capped


def test_batch_arguments_are_checked(data) -> None:
    (mask,) = random_masks(SPEC, [0.5])
    with pytest.raises(ConfigError, match=r"^field 'optimizer' must be one of adam, sgd, got 'lbfgs'$"):
        train_networks([build_model(SPEC, 0)], [mask], data, TrainingConfig(steps=1, optimizer="lbfgs"))
    with pytest.raises(ConfigError, match=r"^got 2 networks but 1 masks$"):
        train_networks([build_model(SPEC, 0)] * 2, [mask], data, TrainingConfig(steps=1))
    with pytest.raises(ModelError, match=r"^batched networks differ: \(16, 8, 4\) and \(16, 24, 24, 4\)$"):
        MLPBatch([build_model(SPEC, 0), build_model("mlp:16-8-4", 0)], [None, None])


# ---- exact compaction ----------------------------------------------------------------------------
def _hand_mask() -> Mask:
    """mlp:3-4-2: hidden 0 is fed and feeds out; hidden 1 has no input but feeds out (a bias constant);
    hidden 2 is fed but feeds nothing; hidden 3 is isolated. Input 2 feeds only hidden 2."""
    fc1 = np.zeros((4, 3), dtype=bool)
    fc1[0, 0] = fc1[0, 1] = fc1[2, 2] = True
    fc2 = np.zeros((2, 4), dtype=bool)
    fc2[0, 0] = fc2[1, 0] = fc2[1, 1] = True
    return Mask({"fc1": fc1, "fc2": fc2})


def test_compaction_keeps_bias_constant_neurons_and_drops_dead_ends() -> None:
    comp = compaction(_hand_mask())
    assert comp.inputs.tolist() == [0, 1]
    assert [h.tolist() for h in comp.kept] == [[0, 1], [0, 1]]  # 1 outputs relu(b_1): kept; 2, 3 dropped
    assert comp.widths == (2, 2, 2)
    no_bias = compaction(_hand_mask(), bias=False)  # without biases hidden 1 outputs relu(0) = 0
    assert [h.tolist() for h in no_bias.kept] == [[0], [0, 1]]


def test_compacted_network_computes_the_same_function_and_gradients() -> None:
    mask = _hand_mask()
    model = build_model("mlp:3-4-2", 5)
    with torch.no_grad():
        model.layers.fc1.bias[1] = 0.7  # so that the bias-constant neuron is active: relu(0.7) > 0
    comp = compaction(mask)
    small, small_mask = MLP_FAMILY.compact_model(model, comp), compact_mask(mask, comp)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    dense_out = masked_call(model, mask, x, "forward")
    small_out = masked_call(small, small_mask, x[:, comp.inputs], "forward")
    assert torch.allclose(small_out, dense_out, atol=1e-6)
    # gradients of the kept weights and biases are the dense ones
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    F.cross_entropy(dense_out, y).backward()
    F.cross_entropy(small_out, y).backward()
    assert small.layers.fc1.bias.grad[1] != 0  # the constant neuron's bias learns
    (rows1, cols1), (rows2, cols2) = comp.rows_and_columns()
    assert torch.allclose(
        small.layers.fc1.weight.grad, model.layers.fc1.weight.grad[rows1][:, cols1], atol=1e-7
    )
    assert torch.allclose(
        small.layers.fc2.weight.grad, model.layers.fc2.weight.grad[rows2][:, cols2], atol=1e-7
    )
    assert torch.allclose(small.layers.fc1.bias.grad, model.layers.fc1.bias.grad[rows1], atol=1e-7)
    # the effective subnetwork (dropping hidden 1 too) is not the same function: the constant is lost
    eff = mask.effective()
    assert not eff["fc2"][1, 1]
    assert not torch.allclose(masked_call(model, eff, x, "forward"), dense_out, atol=1e-3)


@pytest.mark.parametrize("mode", ["forward", "straight_through"])
def test_compacted_training_tracks_dense_training(data, mode: str) -> None:
    """Same losses and kept weights to float tolerance over a short run (training is chaotic: float
    differences grow over hundreds of steps, as they do between machines)."""
    spec = "mlp:16-64-64-4"
    (mask,) = random_masks(spec, [0.04], seed=3)
    comp = compaction(mask)
    assert work(build_model(spec, 0), comp) < 0.5 * work(build_model(spec, 0))
    dense = build_model(spec, 0)
    (rd,) = train_networks([dense], [mask], data, TrainingConfig(steps=8), mode=mode, seed=2)
    small = MLP_FAMILY.compact_model(build_model(spec, 0), comp)
    pop = MLPBatch([small], [compact_mask(mask, comp)], mode)
    (rc,) = train_batch(pop, data, TrainingConfig(steps=8), seed=2, inputs=comp.inputs)
    pop.write_back([small])
    assert rc.val_loss == pytest.approx(rd.val_loss, abs=1e-5)
    assert rc.val_accuracy == rd.val_accuracy
    full = build_model(spec, 0)
    expand_into(full, small, comp)
    for name, a, b in zip(mask.names, dense.layers.values(), full.layers.values(), strict=True):
        live = mask[name]
        assert float((a.weight - b.weight).detach()[live].abs().max()) <= 1e-5


# ---- fitness: the kernel is a function of the mask -----------------------------------------------
def test_fitness_kernel_depends_on_the_mask_and_mode_only() -> None:
    lenet = build_model(LENET, 0)

    def kernel(mask: Mask, model: torch.nn.Module, mode: str) -> str:
        return MLP_FAMILY.plan(mask, model, mode, 128).kernel

    sparse = Mask(
        {
            "fc1": np.eye(300, 784, dtype=bool),
            "fc2": np.eye(100, 300, dtype=bool),
            "fc3": np.eye(10, 100, dtype=bool),
        }
    )
    assert work(lenet, compaction(sparse)) <= COMPACT_BELOW * work(lenet)
    assert kernel(sparse, lenet, "forward") == "compact"
    assert kernel(sparse, lenet, "gradient") == "plain"  # dense forward pass: never compacted
    dense = Mask({n: np.ones(s, dtype=bool) for n, s in sparse.shapes.items()})
    assert kernel(dense, lenet, "forward") == "plain"
    small = random_masks("mlp:40-100-100-10", [0.01])[0]
    assert kernel(small, build_model("mlp:40-100-100-10", 0), "forward") == "batched"
    assert kernel(small, build_model("mlp:40-100-100-10", 0), "gradient") == "batched"


def test_evaluate_masks_equals_evaluate_mask_of_each(data) -> None:
    masks = random_masks(SPEC, [0.5, 0.1, 0.3, 0.02, 0.8], seed=5)
    cfg = FitnessConfig(steps=15, init_seeds=(0, 2))
    together = evaluate_masks(masks, SPEC, data, cfg, "forward")
    assert together == [evaluate_mask(m, SPEC, data, cfg, "forward") for m in masks]
    assert [o.density for o in together] == [m.density() for m in masks]
    assert all(o.steps == 30 for o in together)
    # straight_through is trained as forward: same objectives
    assert evaluate_masks(masks, SPEC, data, cfg, "straight_through") == together


# ---- CSR layers ----------------------------------------------------------------------------------------
def test_csr_pattern_holds_the_live_weights_of_w_and_its_transpose() -> None:
    mask = torch.rand(7, 9, generator=torch.Generator().manual_seed(0)) < 0.3
    csr = _CSR(mask)
    assert csr.nnz == int(mask.sum())
    values = torch.randn(csr.nnz, generator=torch.Generator().manual_seed(1))
    dense = torch.zeros(7, 9)
    dense.view(-1)[csr.positions] = values
    assert torch.equal(dense != 0, mask)
    assert torch.equal(csr.matrix(values).to_dense(), dense)
    assert torch.equal(csr.transposed(values).to_dense(), dense.t())


@pytest.mark.parametrize("sparse", [(True, False, False), (True, True, True)])
def test_csr_layers_train_like_dense_masked_ones(data, sparse: tuple[bool, ...]) -> None:
    spec = "mlp:16-64-64-4"
    (mask,) = random_masks(spec, [0.1], seed=6)
    dense = build_model(spec, 0)
    (rd,) = train_networks([dense], [mask], data, TrainingConfig(steps=8), seed=2)
    model = build_model(spec, 0)
    pop = MLPBatch([model], [mask], "forward", sparse=sparse)
    assert pop.layout.nnz[0] == int(mask["fc1"].sum())
    (rs,) = train_batch(pop, data, TrainingConfig(steps=8), seed=2)
    pop.write_back([model])
    assert rs.val_loss == pytest.approx(rd.val_loss, abs=1e-5)
    assert rs.val_accuracy == rd.val_accuracy
    init = build_model(spec, 0)
    for name, a, b, c in zip(
        mask.names, dense.layers.values(), model.layers.values(), init.layers.values(), strict=True
    ):
        live = mask[name]
        assert float((a.weight - b.weight).detach()[live].abs().max()) <= 1e-5
        assert torch.equal(
            b.weight.detach()[~live], c.weight.detach()[~live]
        )  # pruned: untouched, as in train
    with pytest.raises(
        ConfigError, match=r"^sparse layers need one network with a mask, trained in forward mode$"
    ):
        MLPBatch([model], [mask], "gradient", sparse=sparse)


def test_sparse_layers_are_large_and_mostly_pruned() -> None:
    g = torch.Generator().manual_seed(0)
    mask = Mask(
        {
            "fc1": torch.rand(200, 100, generator=g) < 0.05,  # 20000 weights, 5% live: CSR
            "fc2": torch.rand(200, 200, generator=g) < 0.5,  # half live: dense
            "fc3": torch.rand(10, 200, generator=g) < 0.05,  # 2000 weights: too small to pay
        }
    )
    assert sparse_layers(mask) == [True, False, False]


def test_fitness_plan_uses_csr_where_compaction_cannot_shrink() -> None:
    lenet = build_model(LENET, 0)
    g = torch.Generator().manual_seed(0)
    mask = Mask(
        {
            "fc1": torch.rand(300, 784, generator=g) < 0.05,
            "fc2": torch.rand(100, 300, generator=g) < 0.05,
            "fc3": torch.ones(10, 100, dtype=torch.bool),  # every hidden neuron reaches an output
        }
    )
    plan = MLP_FAMILY.plan(mask, lenet, "forward", 128)
    assert plan.compaction is None and plan.sparse == (True, True, False) and plan.kernel == "csr"
    assert MLP_FAMILY.plan(mask, lenet, "gradient", 128).kernel == "plain"


# ---- the family is the spec's; the MLP batch says in one line that it takes MLPs ----------------------------
def test_the_family_comes_from_the_spec_and_the_mlp_batch_names_its_limit() -> None:
    cnn = "cnn1d:40:25k5-25-25:10"
    assert family_of(cnn) is CONV_FAMILY and family_of("conv2:8x8x1") is CONV_FAMILY
    assert CONV_FAMILY.convolutional and not MLP_FAMILY.convolutional
    with pytest.raises(ModelError, match=r"^unknown model spec 'resnet:18' "):
        family_of("resnet:18")
    net = build_model(cnn, 0)
    with pytest.raises(ModelError) as e:
        MLPBatch([net], [Mask.ones(net)])
    assert str(e.value) == (
        "batched training takes MLPs only; layer 'conv1' is a convolution (weight [25, 1, 5])"
    )
