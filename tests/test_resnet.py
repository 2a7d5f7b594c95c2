"""ResNet-20 (He et al. 2016; OpenLTH's cifar_resnet_20), the lottery-ticket literature's CIFAR-10 network:
its layers counted by hand, SynFlow and the collapse check on its 1×1 shortcuts, an IMP run with rewinding,
and a search, end to end on CIFAR-10 files of random images (the loader's own path)."""

from __future__ import annotations

import math

import pytest
import torch
from convtools import one_thread, write_cifar  # noqa: F401 - fixture

import lotterysearch as ls
from lotterysearch.cli import main
from lotterysearch.core import canon
from lotterysearch.core.masks import Mask, exact_key
from lotterysearch.core.models import build_model, parameter_count, prunable_layers
from lotterysearch.settings import parse_config, parse_imp_config

SHORTCUTS = ["blocks.3.shortcut.0", "blocks.6.shortcut.0"]


def test_resnet20_has_the_papers_layers(one_thread):  # noqa: F811
    """3×3 stem, 3 stages × 3 blocks × 2 convolutions at 16/32/64 channels, two 1×1 shortcuts, fc: 22
    prunable layers; weights 432 + 6·2304 + (4608 + 5·9216 + 512) + (18432 + 5·36864 + 2048) + 640."""
    model = build_model("resnet20", 0)
    layers = prunable_layers(model)
    assert len(layers) == 22 and list(layers)[:3] == ["conv", "blocks.0.conv1", "blocks.0.conv2"]
    assert list(layers)[-1] == "fc"
    shapes = {n: tuple(m.weight.shape) for n, m in layers.items()}
    assert shapes[SHORTCUTS[0]] == (32, 16, 1, 1) and shapes[SHORTCUTS[1]] == (64, 32, 1, 1)
    weights = 432 + 6 * 2304 + (4608 + 5 * 9216 + 512) + (18432 + 5 * 36864 + 2048) + 640
    assert sum(math.prod(s) for s in shapes.values()) == weights == 270_896
    assert parameter_count("resnet20", biases=False) == weights  # worked out without building
    assert build_model("resnet20:16", 0)(torch.zeros(2, 3072)).shape == (2, 10)
    mask = Mask.ones(model)
    assert not mask.is_chain() and canon.class_key(mask) == exact_key(mask)


def test_emptying_a_blocks_first_convolution_cuts_its_second_but_not_the_network(one_thread):  # noqa: F811
    """Paths counted through the real forward pass: block 0's conv2 reads only conv1's output, so with conv1
    empty it lies on no path; the identity shortcut still carries the stem to the rest of the network."""
    model = build_model("resnet20:4", 0)
    mask = Mask.ones(model)
    layers = {n: mask[n].clone() for n in mask}
    layers["blocks.0.conv1"][:] = False
    cut = Mask(layers)
    assert cut.collapsed_layers() == ["blocks.0.conv1", "blocks.0.conv2"]
    eff = cut.effective()
    assert eff.layer_kept()["fc"] == 10 * 16 and eff.layer_kept()["conv"] == 4 * 3 * 9


def test_synflow_on_resnet20_prunes_its_shortcuts_away_and_the_collapse_check_says_so(capsys, one_thread):  # noqa: F811
    """At ρ = 100 (10 iterations, seed 0) SynFlow keeps exactly round(270896/100) weights and none of either
    1×1 shortcut convolution: those layers collapse, the residual network still computes."""
    model = build_model("resnet20", 0)
    mask = ls.prune(model, "synflow", 100, iterations=10, seed=0)
    assert mask.kept() == round(270_896 / 100)
    assert mask.collapsed_layers() == SHORTCUTS
    assert all(mask.layer_kept()[n] == 0 for n in SHORTCUTS)
    assert mask.effective().layer_kept()["fc"] > 0
    argv = [
        "prune",
        "--model",
        "resnet20",
        "--pruner",
        "synflow",
        "--compression",
        "100",
        "--iterations",
        "10",
    ]
    assert main(argv) == 0
    assert f"layer collapse: yes ({', '.join(SHORTCUTS)})" in capsys.readouterr().out


@pytest.fixture
def cifar_dir(tmp_path):
    write_cifar(tmp_path / "data", per_batch=40)  # 200 training images (20 for validation), 40 test
    return tmp_path / "data"


def test_an_imp_run_on_resnet20_rewinds_to_an_early_iteration(tmp_path, cifar_dir, one_thread):  # noqa: F811
    """Two rounds of IMP on the full-width network from CIFAR-10 files, rewinding to iteration 1 (Frankle
    et al. 2020): every round keeps the planned count, the output layer pruned at its own rate."""
    cfg = parse_imp_config(
        f"""kind = "imp"
name = "r20"
dataset = "cifar10"
model = "resnet20"
evaluator = "local"
data_dir = "{cifar_dir}"
[imp]
rounds = 2
rewind_step = 1
[training]
steps = 3
batch_size = 8
"""
    )
    with ls.imp(cfg, tmp_path / "ws", local=True) as run:
        assert run.status == "finished" and len(run.imp_rounds()) == 3
        masks = [ind.mask for ind in run.individuals()]
    convs = 270_896 - 640
    assert masks[1].layer_kept()["fc"] == 640 - 64 and masks[2].layer_kept()["fc"] == 576 - 58
    assert masks[1].kept() - masks[1].layer_kept()["fc"] == pytest.approx(0.8 * convs, abs=22)
    assert masks[2].kept() < masks[1].kept() < masks[0].kept() == 270_896


def test_a_search_on_resnet20_runs_end_to_end(tmp_path, cifar_dir, one_thread):  # noqa: F811
    """A generation of population 4 at a quarter of the width (4/8/16 channels: the same 22 layers and
    shortcuts), tens of training steps: SynFlow seeds, children, exact class keys, a front."""
    cfg = parse_config(
        f"""name = "r20s"
dataset = "cifar10"
model = "resnet20:4"
evaluator = "local"
data_dir = "{cifar_dir}"
[seeding]
init_seeds = [0]
compressions = [10.0]
iterations = 5
[ga]
population = 4
generations = 1
align = false
crossovers = ["layer"]
mutations = ["move"]
[fitness]
steps = 10
batch_size = 16
"""
    )
    with ls.search(cfg, tmp_path / "ws", local=True) as run:
        assert run.status == "finished" and [g.gen for g in run.history()] == [0, 1]
        individuals = run.individuals()
        assert len(individuals) >= 5 and all(i.class_key.startswith("mask-v1:") for i in individuals)
        assert {i.origin.split(":")[0] for i in individuals} >= {"synflow", "child"}
        assert run.front()
