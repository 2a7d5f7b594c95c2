"""Mask type and the three masking modes, against hand-computed values."""

import numpy as np
import pytest
import torch

from lotterysearch.errors import MaskError
from lotterysearch.masks import MODES, Mask, apply_mask, masked_call
from lotterysearch.models import build_model


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
