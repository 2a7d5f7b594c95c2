"""The user's own network and data: factory references, chains and the exact key, path counting, the module
family against the trainer, tensors as a dataset, and runs that refuse a resume on other data or networks."""

from __future__ import annotations

import copy
import dataclasses
import re

import netzoo
import pytest
import torch
from torch import nn

import lotterysearch as ls
from lotterysearch.core import canon, modules
from lotterysearch.core.data import as_dataset
from lotterysearch.core.masks import Mask, exact_key, masked_call
from lotterysearch.core.models import build_model, prunable_layers
from lotterysearch.errors import ConfigError, DataError, ModelError
from lotterysearch.readers.export import masked_dense
from lotterysearch.settings import (
    FitnessConfig,
    GAConfig,
    IMPConfig,
    IMPSettings,
    SearchConfig,
    SeedingConfig,
    TrainingConfig,
)
from lotterysearch.training.family import MODULE_FAMILY, family_of
from lotterysearch.training.trainer import train


def local_factory(seed: int) -> nn.Module:
    return netzoo.mlp(seed)


# ---- references -----------------------------------------------------------------------------------------
def test_a_factory_is_stored_by_its_import_path_and_built_from_it():
    assert modules.reference_of(netzoo.mlp) == "netzoo:mlp"
    a, b = build_model("netzoo:mlp", 3), build_model("netzoo:mlp", 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = build_model("netzoo:mlp", 4)
    assert not torch.equal(a[0].weight, c[0].weight)  # the seed draws the weights


def test_a_factory_that_cannot_be_imported_back_is_one_line():
    with pytest.raises(ModelError, match=r"^model factory tests?.*<lambda> cannot be imported back by a run"):
        modules.reference_of(lambda seed: netzoo.mlp(seed))

    def inner(seed: int) -> nn.Module:
        return netzoo.mlp(seed)

    with pytest.raises(
        ModelError, match=r"<locals>.inner cannot be imported back by a run: define it at the top"
    ):
        modules.reference_of(inner)
    with pytest.raises(
        ModelError, match=r"^model 'nosuchmodule\.x:make': cannot import module 'nosuchmodule\.x'"
    ):
        build_model("nosuchmodule.x:make", 0)
    with pytest.raises(ModelError, match=r"^model 'netzoo:nothing': module 'netzoo' has no 'nothing'$"):
        build_model("netzoo:nothing", 0)


def test_a_model_may_name_its_prunable_layers():
    model = build_model("netzoo:named_prunable", 0)
    assert list(prunable_layers(model)) == ["inp", "block"]
    mask = ls.prune(model, "magnitude", 4.0)
    assert mask.kept() == round((128 + 64) / 4) and mask.names == ["inp", "block"]
    # the unpruned output layer's weights (of either sign) carry every path: a dense mask is all effective
    assert Mask.ones(model).effective() == Mask.ones(model)
    with pytest.raises(
        ModelError,
        match=r"^model netzoo:misnamed_prunable: prunable 'nothing' is not a module with a weight$",
    ):
        build_model("netzoo:misnamed_prunable", 0)


# ---- chains, keys, paths --------------------------------------------------------------------------------
def test_prunable_layers_are_linear_and_conv_weights_in_module_order():
    assert list(prunable_layers(build_model("netzoo:residual_mlp", 0))) == ["inp", "block", "out"]
    assert list(prunable_layers(build_model("netzoo:tiny_conv", 0))) == ["conv", "skip", "fc"]
    assert list(prunable_layers(build_model("netzoo:mlp", 0))) == ["0", "2"]


def test_a_sequential_is_a_chain_and_keeps_isomorphism_classes():
    model = build_model("netzoo:mlp", 0)
    assert modules.is_chain(model) and not modules.is_chain(build_model("netzoo:residual_mlp", 0))
    mask = ls.prune(model, "random", 2.0, seed=1)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    permuted = Mask({"0": mask["0"][perm], "2": mask["2"][:, perm]})
    assert permuted != mask and mask.is_chain()
    assert canon.class_key(permuted) == canon.class_key(mask)  # hidden units relabelled: one class
    assert canon.class_key(mask).startswith("canon-v1:")


def test_a_network_that_is_not_a_chain_has_the_exact_mask_as_its_key():
    model = build_model("netzoo:residual_mlp", 0)
    mask = ls.prune(model, "random", 2.0, seed=1)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    permuted = Mask(
        {"inp": mask["inp"][perm], "block": mask["block"][perm][:, perm], "out": mask["out"][:, perm]}
    )
    assert not mask.is_chain()
    assert canon.class_key(mask) == exact_key(mask) != canon.class_key(permuted) == exact_key(permuted)


def test_effective_weights_follow_the_skip_connection():
    """By hand: input unit 0 → hidden 0 (inp), hidden 0 → hidden 1 (block), hidden 1 → class 2 (out), plus a
    dangling hidden 3 → class 0 with nothing into unit 3. With ``block`` empty the skip still carries
    hidden 0 to the output through out[·, 0]."""
    build_model("netzoo:residual_mlp", 0)  # registers the wiring in this process
    inp, block, out = torch.zeros(8, 16), torch.zeros(8, 8), torch.zeros(4, 8)
    inp[0, 0] = block[1, 0] = out[2, 1] = out[0, 3] = 1
    mask = Mask({"inp": inp, "block": block, "out": out})
    eff = mask.effective()
    assert eff.layer_kept() == {"inp": 1, "block": 1, "out": 1}
    assert bool(eff["out"][2, 1]) and not bool(eff["out"][0, 3])
    assert mask.collapsed_layers() == []

    block[:] = 0
    out[1, 0] = 1  # the skip: hidden 0 reaches class 1 without the block
    skip = Mask({"inp": inp, "block": block, "out": out})
    assert skip.effective().layer_kept() == {"inp": 1, "block": 0, "out": 1}
    assert skip.collapsed_layers() == ["block"]  # the block is collapsed, the network is not constant


# ---- training ---------------------------------------------------------------------------------------------
def test_an_mlp_module_trains_to_the_bits_of_the_spec_mlp(synthetic):
    """``netzoo:mlp`` is ``mlp:16-8-4`` written as an ``nn.Sequential``: the same init from the same seed,
    and the module family's training (the model's own forward) gives the trainer's numbers exactly."""
    spec, module = build_model("mlp:16-8-4", 5), build_model("netzoo:mlp", 5)
    assert torch.equal(spec.layers["fc1"].weight, module[0].weight)
    mask = ls.prune(spec, "synflow", 3.0, iterations=5)
    module_mask = Mask({"0": mask["fc1"], "2": mask["fc2"]})
    training = TrainingConfig(steps=30, batch_size=32)
    family = family_of("netzoo:mlp")
    assert family is MODULE_FAMILY and family.networks_per_batch(module, 32) == 1
    plan = family.plan(module_mask, module, "forward", 32)
    assert not plan.batched and plan.compaction is None
    got, net = family.train_alone(module_mask, plan, module, synthetic, "forward", 7, training, keep=True)
    trained = copy.deepcopy(spec)
    want = train(trained, mask, synthetic, training, seed=7)
    assert (got.val_accuracy, got.val_loss) == (want.val_accuracy, want.val_loss)
    assert torch.equal(net[2].weight, trained.layers["fc2"].weight)


# ---- data ---------------------------------------------------------------------------------------------------
def test_tensors_split_by_the_documented_rule():
    x, y = torch.randn(100, 3, 4, 4), torch.arange(100) % 5
    d = as_dataset((x, y), seed=2)
    assert d.sizes() == (81, 9, 10) and d.input_shape == (3, 4, 4) and d.num_classes == 5
    assert d.x_train.shape == (81, 48)
    assert (
        as_dataset((x, y), seed=2).fingerprint()
        == d.fingerprint()
        != as_dataset((x, y), seed=3).fingerprint()
    )
    # the test split does not depend on the seed
    assert torch.equal(as_dataset((x, y), seed=3).y_test, d.y_test)
    three = as_dataset(((x[:50], y[:50]), (x[50:70], y[50:70]), (x[70:], y[70:])))
    assert three.sizes() == (50, 20, 30) and torch.equal(three.y_val, y[50:70])
    pairs = torch.utils.data.TensorDataset(x, y)
    assert as_dataset(pairs, seed=2).fingerprint() == d.fingerprint()


def test_bad_data_is_one_line():
    with pytest.raises(DataError, match=r"^data: labels must be integers >= 0 \(class indices\)$"):
        as_dataset((torch.randn(10, 4), torch.rand(10)))
    with pytest.raises(
        DataError,
        match=r"^data: need inputs \[N, \.\.\.\] and labels \[N\] with N >= 1, got \[10, 4\] and \[9\]$",
    ):
        as_dataset((torch.randn(10, 4), torch.zeros(9, dtype=torch.long)))
    with pytest.raises(ConfigError, match=r"^model netzoo:mlp fails on dataset tensors's inputs"):
        ls.search(SearchConfig(), "unused", model=netzoo.mlp, data=(torch.randn(30, 5), torch.arange(30) % 4))


# ---- runs -----------------------------------------------------------------------------------------------------
def small_search(name: str) -> SearchConfig:
    return SearchConfig(
        name=name,
        evaluator="local",
        seeding=SeedingConfig(init_seeds=(0,), compressions=(3.0,), iterations=5),
        ga=GAConfig(population=4, generations=1, align=False, crossovers=("layer",), mutations=("move",)),
        fitness=FitnessConfig(steps=20, batch_size=32),
    )


def synthetic_tensors(synthetic):
    return torch.cat([synthetic.x_train, synthetic.x_val]), torch.cat([synthetic.y_train, synthetic.y_val])


def test_a_search_on_a_residual_module_and_tensors_refuses_other_data_or_networks(
    tmp_path, synthetic, monkeypatch
):
    x, y = synthetic_tensors(synthetic)
    ws = tmp_path / "ws"
    with ls.search(small_search("res"), ws, model=netzoo.residual_mlp, data=(x, y), local=True) as run:
        assert run.status == "finished" and run.config.model == "netzoo:residual_mlp"
        assert (
            run.config.dataset == "tensors"
            and run.config.data_fingerprint == as_dataset((x, y)).fingerprint()
        )
        keys = {ind.class_key for ind in run.individuals()}
        assert all(k.startswith("mask-v1:") for k in keys)  # not a chain: exact keys
        best = run.front()[0].id
    fp = as_dataset((x, y)).fingerprint()
    other = as_dataset((x[:-5], y[:-5])).fingerprint()
    with pytest.raises(
        DataError,
        match=rf"^run 'res-001' was made on data with fingerprint {fp}, the data given has {other}: ",
    ):
        ls.open_run(ws, "res-001", data=(x[:-5], y[:-5]))
    with pytest.raises(
        ModelError, match=r"^run 'res-001' was made with model netzoo:residual_mlp, not netzoo:mlp: "
    ):
        ls.open_run(ws, "res-001", model=netzoo.mlp)
    monkeypatch.setattr(netzoo, "residual_mlp", netzoo.wide_mlp)  # the factory now builds another network
    with pytest.raises(
        ModelError,
        match=r"^run 'res-001' was made with a network of fingerprint [0-9a-f]{16}, model netzoo:residual_mlp now builds [0-9a-f]{16} ",
    ):
        ls.open_run(ws, "res-001")
    monkeypatch.undo()
    with ls.open_run(ws, "res-001", data=(x, y)) as run:
        exported = run.export(best, tmp_path / "t.onnx", weights="init")
        assert exported.error <= 1e-5 and "masked dense" in exported.widths
        # the masked network's state_dict loads into the user's own module, with every pruned weight 0
        t = exported.ticket
        state = masked_dense(t.model, t.mask).state_dict()
        own = netzoo.ResidualMLP()
        own.load_state_dict(state)
        assert int((own.block.weight != 0).sum()) == t.mask.layer_kept()["block"]
        x0 = torch.randn(5, 16)
        assert torch.allclose(own(x0), masked_call(t.model, t.mask, x0), atol=1e-6)
    with ls.open_run(ws, "res-001") as run:  # reading needs no data; driving it would
        assert len(run.individuals()) >= 4


def test_a_search_on_tensors_resumes_in_another_run_object_given_its_data(tmp_path, synthetic):
    x, y = synthetic_tensors(synthetic)
    cfg = dataclasses.replace(
        small_search("again"), ga=dataclasses.replace(small_search("").ga, generations=2)
    )
    with ls.create_run(cfg, tmp_path, model="netzoo:residual_mlp", data=(x, y), local=True) as run:
        run.optimize(generations=1)
        assert run.status == "interrupted" and run.generation == 0  # the seeded population
    with ls.open_run(tmp_path, "again-001", local=True) as run:  # readable, but not driven without its data
        with pytest.raises(DataError, match=r"^dataset 'tensors' is given from Python: pass data="):
            run.resume()
        assert run.status == "interrupted"
    with ls.open_run(tmp_path, "again-001", local=True, data=(x, y)) as run:
        run.resume()
        assert run.status == "finished" and run.generation == 2


def test_an_imp_run_and_its_confirmation_on_a_shaped_convnet(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(80, 3, 8, 8, generator=g), torch.randint(0, 10, (80,), generator=g)
    cfg = IMPConfig(
        name="conv",
        evaluator="local",
        imp=IMPSettings(rounds=2),
        training=TrainingConfig(steps=20, batch_size=16, eval_every=10),
    )
    with ls.imp(cfg, tmp_path, model="netzoo:tiny_conv", data=(x, y), local=True) as run:
        assert run.status == "finished"
        rounds = run.imp_rounds()
        assert len(rounds) == 3
        kept = [ind.mask.kept() for ind in run.individuals()]
        # conv 108, skip 12 at 20% a round, the output layer fc (40) at 10%
        assert kept == [160, 108 - 22 + 12 - 2 + 40 - 4, 86 - 17 + 10 - 2 + 36 - 4]
        last = run.individuals()[-1].id
        exported = run.export(last, tmp_path / "conv.onnx", weights="trained")  # the run's own data, kept
        assert exported.error <= 1e-5 and exported.ticket.result.steps == 20
    summary = ls.confirm(tmp_path, "conv-001", ids=[last], reinit_seeds=[9], local=True, data=(x, y))
    assert list(summary) == [last] and summary[last].reinit.seeds == (9,)
    with pytest.raises(DataError, match=r"^dataset 'tensors' is given from Python: pass data="):
        ls.confirm(tmp_path, "conv-001", ids=[1], reinit_seeds=[10], local=True)


def test_a_search_needs_its_network_to_be_a_chain_for_neuron_operators(tmp_path, synthetic):
    x, y = synthetic_tensors(synthetic)
    cfg = SearchConfig(
        name="align",
        evaluator="local",
        seeding=SeedingConfig(init_seeds=(0,), compressions=(3.0,)),
        ga=GAConfig(population=4),
    )
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "field 'ga.align' must be false for model netzoo:residual_mlp, which is not a chain of layers (no interchangeable units)"
        ),
    ):
        ls.create_run(cfg, tmp_path, model=netzoo.residual_mlp, data=(x, y), local=True)
    assert not (tmp_path / "lotterysearch.sqlite").exists()


def test_a_factory_search_on_ray_workers_gives_the_local_numbers(ray_local, tmp_path, synthetic):
    """Ray's workers build the network from the stored import path (``netzoo`` is importable there as here)
    and train it to the numbers this process gets."""
    x, y = synthetic_tensors(synthetic)
    numbers = []
    for where, local in (("ray", False), ("here", True)):
        with ls.search(
            small_search(where), tmp_path / where, model=netzoo.residual_mlp, data=(x, y), local=local
        ) as run:
            assert run.status == "finished"
            numbers.append(sorted((i.class_key, i.accuracy) for i in run.individuals()))
    assert numbers[0] == numbers[1]
