"""Mask type and the three masking modes, against hand-computed values; MLP and convolutional masks."""

import hashlib

import numpy as np
import pytest
import torch
from masktools import random_mask

from lotterysearch.core.masks import MODES, Mask, apply_mask, check_chain, masked_call
from lotterysearch.core.models import build_model
from lotterysearch.errors import MaskError


def two_layer_net() -> tuple[torch.nn.Module, Mask, torch.Tensor]:
    """W1 = [[1,1],[2,.5]], b1 = [0,.5], W2 = [[3,2]], b2 = [0]; M1 = [[1,0],[1,1]], M2 = [[0,1]]; x = [1,2]."""
    net = build_model("mlp:2-2-1", 0).double()
    with torch.no_grad():
        net.layers.fc1.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 0.5]]))
        net.layers.fc1.bias.copy_(torch.tensor([0.0, 0.5]))
        net.layers.fc2.weight.copy_(torch.tensor([[3.0, 2.0]]))
        net.layers.fc2.bias.zero_()
    mask = Mask({"fc1": [[1, 0], [1, 1]], "fc2": [[0, 1]]})
    return net, mask, torch.tensor([[1.0, 2.0]], dtype=torch.float64)


# Hand computation, L = z2:
#  forward:          z1 = [1, 3.5], h1 = [1, 3.5], z2 = 2*3.5 = 7
#                    dW2 = M2*h1 = [0, 3.5]; dz1 = (M2*W2)^T = [0, 2]; dW1 = M1*(dz1 x^T) = [[0,0],[2,4]]
#  gradient:         z1 = [3, 3.5] (dense), z2 = 3*3 + 2*3.5 = 16
#                    dW2 = M2*[3, 3.5] = [0, 3.5]; dz1 = W2^T = [3, 2]; dW1 = M1*[[3,6],[2,4]] = [[3,0],[2,4]]
#  straight_through: z2 = 7 as forward; dW2 = h1 = [1, 3.5] (dense); dz1 = [0, 2]; dW1 = [[0,0],[2,4]]
EXPECTED = {
    "forward": (7.0, [[0.0, 0.0], [2.0, 4.0]], [[0.0, 3.5]]),
    "gradient": (16.0, [[3.0, 0.0], [2.0, 4.0]], [[0.0, 3.5]]),
    "straight_through": (7.0, [[0.0, 0.0], [2.0, 4.0]], [[1.0, 3.5]]),
}


@pytest.mark.parametrize("mode", MODES)
def test_mode_output_and_gradient_match_hand_values(mode: str) -> None:
    net, mask, x = two_layer_net()
    out = masked_call(net, mask, x, mode)
    out.sum().backward()
    value, g1, g2 = EXPECTED[mode]
    assert out.item() == pytest.approx(value)
    assert net.layers.fc1.weight.grad.tolist() == g1
    assert net.layers.fc2.weight.grad.tolist() == g2


def test_forward_mode_gives_pruned_weights_exactly_zero_gradient() -> None:
    torch.manual_seed(0)
    w = torch.randn(5, 7, requires_grad=True)
    m = torch.rand(5, 7) > 0.5
    h = torch.randn(3, 7)
    (h @ apply_mask(w, m, "forward").T).pow(2).sum().backward()
    assert torch.all(w.grad[~m] == 0)
    assert torch.all(w.grad[m] != 0)


def test_unknown_mode_is_one_line_error() -> None:
    with pytest.raises(
        MaskError, match=r"^unknown masking mode 'sideways' \(known: forward, gradient, straight_through\)$"
    ):
        apply_mask(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool), "sideways")


def test_density_compression_and_layer_densities() -> None:
    mask = Mask({"fc1": np.eye(4, 6), "fc2": np.zeros((2, 4))})
    assert mask.kept() == 4 and mask.total() == 32
    assert mask.density() == pytest.approx(4 / 32)
    assert mask.compression_ratio() == pytest.approx(8.0)  # rho = |theta| / |theta_pruned| (Eq. 4)
    assert mask.layer_densities() == {"fc1": pytest.approx(4 / 24), "fc2": 0.0}
    assert Mask({"fc1": np.zeros((2, 2))}).compression_ratio() == float("inf")


def test_effective_mask_removes_weights_on_no_path_and_is_a_fixed_point() -> None:
    # inputs 0,1,2 -> hidden 0,1 -> outputs 0; hidden 1 has no incoming weight, hidden 0 feeds the output.
    fc1 = np.array([[1, 1, 0], [0, 0, 0]])
    fc2 = np.array([[1, 1]])  # the weight out of hidden 1 lies on no input->output path
    mask = Mask({"fc1": fc1, "fc2": fc2})
    eff = mask.effective()
    assert eff["fc1"].tolist() == [[True, True, False], [False, False, False]]
    assert eff["fc2"].tolist() == [[True, False]]
    assert eff.effective() == eff
    assert mask.effective_density() == pytest.approx(3 / 8)
    # a weight into a hidden neuron with no outgoing weight is dead too
    dead_end = Mask({"fc1": [[1, 0, 0], [0, 1, 0]], "fc2": [[1, 0]]})
    assert dead_end.effective()["fc1"].tolist() == [[True, False, False], [False, False, False]]


def test_layer_collapse_detects_empty_layer_and_cut_paths() -> None:
    assert Mask({"fc1": np.ones((3, 4)), "fc2": np.ones((2, 3))}).collapsed_layers() == []
    assert Mask({"fc1": np.ones((3, 4)), "fc2": np.zeros((2, 3))}).collapsed_layers() == ["fc1", "fc2"]
    # every layer has weights, but hidden neuron 0 has inputs and neuron 1 feeds the output: no path
    cut = Mask({"fc1": [[1, 1], [0, 0]], "fc2": [[0, 1]]})
    assert cut.kept() == 3 and cut.is_collapsed()


def test_save_load_and_pack_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    mask = Mask({"fc1": rng.random((30, 40)) < 0.2, "fc2": rng.random((10, 30)) < 0.5})
    assert Mask.load(mask.save(tmp_path / "m.npz")) == mask
    assert Mask.unpack(mask.pack(), mask.shapes) == mask
    assert len(mask.pack()) == (30 * 40 + 10 * 30 + 7) // 8


def test_mask_validates_values_and_shapes() -> None:
    with pytest.raises(MaskError, match=r"^mask layer 'fc1' has values other than 0 and 1$"):
        Mask({"fc1": np.array([[0, 2]])})
    net = build_model("mlp:4-3-2", 0)
    with pytest.raises(
        MaskError, match=r"^mask layer 'fc2' has shape \[3, 2\], the model's weight \[2, 3\]$"
    ):
        Mask({"fc1": np.ones((3, 4)), "fc2": np.ones((3, 2))}).check_fits(net)
    with pytest.raises(MaskError, match=r"^mask layers \['fc1'\] do not match the model's prunable layers"):
        Mask({"fc1": np.ones((3, 4))}).check_fits(net)
    assert Mask.ones(net).check_fits(net).density() == 1.0


def test_load_rejects_missing_truncated_and_foreign_files(tmp_path) -> None:
    with pytest.raises(MaskError, match=r"^mask file '.*nope.npz' does not exist$"):
        Mask.load(tmp_path / "nope.npz")
    path = Mask({"fc1": np.ones((20, 20))}).save(tmp_path / "m.npz")
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(path.read_bytes()[:40])
    with pytest.raises(MaskError, match=r"^mask file '.*t.npz' is damaged or not an .npz file"):
        Mask.load(truncated)
    foreign = tmp_path / "f.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(MaskError, match=r"^'.*f.npz' is not a lotterysearch mask"):
        Mask.load(foreign)


# ---- convolutional masks -------------------------------------------------------------------------
def pruned_to_fixed_point(mask: Mask) -> Mask:
    """The effective subnetwork the slow way, as a test oracle: repeatedly delete every weight that touches a
    dead unit (a hidden unit, neuron or channel, with no live weight in or no live weight out) until nothing
    changes. A convolution's units are its channels; fc inputs after a flatten are grouped into channels."""
    arrays = [a.copy() for a in mask.to_numpy().values()]
    while True:
        changed = False
        for k in range(1, len(arrays)):  # the units between layer k-1 and layer k
            units = arrays[k - 1].shape[0]
            into = arrays[k - 1].reshape(units, -1).any(axis=1)
            block = arrays[k].shape[1] // units  # 1, or HW at a flatten
            out_of = arrays[k].reshape(arrays[k].shape[0], units, block, -1).any(axis=(0, 2, 3))
            dead = ~(into & out_of)
            for u in np.flatnonzero(dead):
                if arrays[k - 1][u].any() or arrays[k][:, u * block : (u + 1) * block].any():
                    arrays[k - 1][u] = False
                    arrays[k][:, u * block : (u + 1) * block] = False
                    changed = True
        if not changed:
            return Mask(dict(zip(mask.names, arrays, strict=True)))


def conv_net_mask(rng: np.random.Generator, density: float) -> Mask:
    """A mask of ``conv:6x6x2:3-M-4:5-3``: conv [3,2,3,3], conv [4,3,3,3], flatten 4 channels × 3×3, fc, fc."""
    net = build_model("conv:6x6x2:3-M-4:5-3", 0)
    return Mask({n: rng.random(s) < density for n, s in Mask.ones(net).shapes.items()})


@pytest.mark.parametrize("seed", range(30))
def test_effective_equals_the_fixed_point_of_removing_dead_units(seed: int) -> None:
    rng = np.random.default_rng(seed)
    density = [0.05, 0.15, 0.3][seed % 3]
    for mask in (conv_net_mask(rng, density), random_mask(rng, (7, 6, 5, 3), density * 2)):
        eff = mask.effective()
        assert eff == pruned_to_fixed_point(mask)
        assert eff.effective() == eff


def test_conv_effective_by_hand_flatten_ties_channels_to_their_fc_block() -> None:
    # conv:4x4x1:2-M:3 : conv1 [2, 1, 3, 3]; pool to 2x2; fc1 [3, 8], columns 0-3 channel 0, 4-7 channel 1
    conv1 = np.zeros((2, 1, 3, 3), dtype=bool)
    conv1[0, 0, 1, 1] = conv1[1, 0, 0, 2] = True
    fc1 = np.zeros((3, 8), dtype=bool)
    fc1[0, 2] = fc1[2, 5] = True
    mask = Mask({"conv1": conv1, "fc1": fc1})
    assert mask.effective() == mask and not mask.is_collapsed()
    no_kernel_in = Mask({"conv1": conv1 & (np.arange(2) == 0)[:, None, None, None], "fc1": fc1})
    eff = no_kernel_in.effective()  # channel 1 has no live kernel: its fc column 5 is on no path
    assert eff["fc1"].nonzero().tolist() == [[0, 2]] and int(eff["conv1"].sum()) == 1
    no_fc_out = Mask({"conv1": conv1, "fc1": fc1 & (np.arange(8) < 4)[None, :]})
    eff = no_fc_out.effective()  # channel 1 feeds no fc weight: its kernel is dead
    assert eff["conv1"].nonzero().tolist() == [[0, 0, 1, 1]] and eff["fc1"].nonzero().tolist() == [[0, 2]]
    cut = Mask({"conv1": conv1 & (np.arange(2) == 1)[:, None, None, None], "fc1": fc1 & (np.arange(8) < 4)})
    assert cut.kept() == 2 and cut.collapsed_layers() == ["conv1", "fc1"]


def test_conv_mask_counts_round_trips_and_packing(tmp_path) -> None:
    rng = np.random.default_rng(1)
    mask = conv_net_mask(rng, 0.3)
    assert mask.shapes == {"conv1": (3, 2, 3, 3), "conv2": (4, 3, 3, 3), "fc1": (5, 36), "fc2": (3, 5)}
    assert mask.total() == 54 + 108 + 180 + 15
    assert mask.layer_densities()["conv1"] == pytest.approx(int(mask["conv1"].sum()) / 54)
    assert Mask.load(mask.save(tmp_path / "c.npz")) == mask
    assert Mask.unpack(mask.pack(), mask.shapes) == mask
    one_d = Mask.ones(build_model("cnn1d:40:25k5-25-25:10", 0))
    assert one_d.shapes["conv1"] == (25, 1, 5) and Mask.unpack(one_d.pack(), one_d.shapes) == one_d
    assert one_d.effective() == one_d and one_d.compression_ratio() == 1.0


def test_mlp_packing_is_unchanged() -> None:
    """Stored runs hold packed masks: the bits of an MLP mask must stay exactly these."""
    rng = np.random.default_rng(0)
    mask = Mask({"fc1": rng.random((30, 40)) < 0.2, "fc2": rng.random((10, 30)) < 0.5})
    assert hashlib.sha256(mask.pack()).hexdigest()[:16] == "b89c77a9a3064847"


@pytest.mark.parametrize("mode", MODES)
def test_masking_modes_on_conv_weights(mode: str) -> None:
    """The modes' gradient rules hold for [out, in, kh, kw] weights as for [out, in] ones."""
    net = build_model("conv:6x6x2:3-M-4:5-3", 0)
    mask = conv_net_mask(np.random.default_rng(2), 0.5)
    x = torch.randn(4, 72)
    masked_call(net, mask, x, mode).pow(2).sum().backward()
    for name in ("conv1", "conv2"):
        g, m = net.layers[name].weight.grad, mask[name]
        assert bool((g[~m] == 0).all()) == (mode != "straight_through")
    dense = build_model("conv:6x6x2:3-M-4:5-3", 0)
    with torch.no_grad():
        for name, layer in dense.layers.items():
            if mode != "gradient":
                layer.weight.mul_(mask[name])
    assert torch.allclose(masked_call(net, mask, x, mode), dense(x), atol=1e-6)


def test_conv_masks_name_what_supports_mlps_only() -> None:
    mask = conv_net_mask(np.random.default_rng(3), 0.5)
    assert mask.is_convnet()
    assert not Mask({"fc1": np.ones((5, 10)), "fc2": np.ones((2, 5))}).is_convnet()
    assert Mask({"conv1": np.ones((3, 2, 3)), "fc1": np.ones((5, 24))}).is_convnet()
    with pytest.raises(MaskError) as e:
        check_chain(mask)
    assert str(e.value) == (
        "mask layer 'conv1' has shape [3, 2, 3, 3], a convolution: this takes MLP masks only"
    )
    broken = Mask({"conv1": np.ones((3, 2, 3, 3)), "fc1": np.ones((5, 10))})
    with pytest.raises(MaskError) as e:
        broken.effective()
    assert (
        str(e.value)
        == "mask layers 'conv1' [3, 2, 3, 3] and 'fc1' [5, 10] do not join (3 units into 10 inputs)"
    )
