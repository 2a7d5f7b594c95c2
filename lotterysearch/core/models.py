"""Networks with named prunable layers in a fixed order, built from a spec string.

Spec families (``SPECS``), each optionally followed by its initialization: ``...:glorot`` draws the weights
from the Gaussian Glorot distribution N(0, 2/(fan_in + fan_out)) with zero biases, as Frankle & Carbin (2019)
do; the default (``:torch``, or nothing) is PyTorch's Kaiming-uniform.

* ``mlp:784-300-100-10``: a ReLU MLP of these widths (LeNet-300-100); layers ``fc1``, ``fc2``, ...
* ``conv:HxWxC:FEATURES:CLASSIFIER``: a VGG-style 2-D convnet on H×W images of C channels. FEATURES are
  3×3 convolutions (stride 1, padding 1, ReLU) given by their output channels, and ``M`` for a 2×2
  max-pool; CLASSIFIER the widths of the fully connected layers after the flatten, the last being the
  classes. Frankle & Carbin's Conv-2/4/6 are ``conv2:HxWxC``, ``conv4:HxWxC``, ``conv6:HxWxC`` (``CONV_FEATURES``,
  classifier 256-256-10).
* ``cnn1d:L[xC]:FEATURES:CLASSIFIER``: a 1-D convnet on length-L signals of C channels (default 1); FEATURES
  are convolutions ``25k5`` (25 channels, kernel 5; ``25`` alone is kernel 3), each stride 2, padding 1, ReLU.
  ``cnn1d:40:25k5-25-25:10`` is the MNIST-1D paper's CNN (Greydanus 2020, ``ConvBase``): 40→19→10→5
  samples, 25·5 = 125 features into the linear layer, 5 210 parameters.

* ``resnet20`` (or ``resnet20:W``): ResNet-20 for CIFAR-10 (He et al. 2016, Section 4.2) as Frankle et al.
  (2020) train it (OpenLTH's ``cifar_resnet_20``): a 3×3 convolution, three stages of three basic blocks at
  W, 2W, 4W channels (W = 16), batch norm after every convolution, 1×1 convolution shortcuts (with batch
  norm, stride 2) where the shape changes, global average pooling and a linear layer to 10 classes; inputs
  32×32×3. Its prunable layers are named by module path (``conv``, ``blocks.0.conv1``, ...,
  ``blocks.3.shortcut.0``, ..., ``fc``), and it is not a chain (``modules.is_chain``).
* ``package.module:function``: the user's own network, made by that factory from a seed (``modules``).

The prunable layers are the weights of the convolutions (``conv1``, ``conv2``, ..., ``[out, in, k...]``)
then of the fully connected layers (``fc1``, ...), from input to output; a
:class:`~lotterysearch.core.masks.Mask` maps these names to boolean tensors of the weights' shapes. Biases are
never pruned.

Inputs stay flat (``[N, C·H·W]``, as every dataset stores them) and a convnet views them as ``[N, C, H, W]``
(channel-major, the layout of MNIST's and CIFAR-10's files) in ``forward``: the data, batching and Ray
code paths then need nothing per family. The spec carries the input shape, so it alone fixes the network
(a run's identity is its spec) and ``Dataset.check_input_width`` can name a mismatch against the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lotterysearch.core import modules
from lotterysearch.errors import LotterySearchError, ModelError
from lotterysearch.settings import check_limit

# Frankle & Carbin (2019), Figure 2: Conv-2, Conv-4, Conv-6 (3×3 convolutions, 2×2 max-pool after each pair)
CONV_FEATURES = {
    "conv2": "64-64-M",
    "conv4": "64-64-M-128-128-M",
    "conv6": "64-64-M-128-128-M-256-256-M",
}
CONV_CLASSIFIER = "256-256-10"


@dataclass(frozen=True)
class MLPSpec:
    """Widths from input to output, e.g. (40, 100, 100, 10)."""

    widths: tuple[int, ...]

    @property
    def layer_names(self) -> list[str]:
        return [f"fc{i}" for i in range(1, len(self.widths))]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.widths[0],)

    @property
    def outputs(self) -> int:
        return self.widths[-1]

    def build(self, bias: bool) -> nn.Module:
        return MLP(self.widths, bias=bias)


@dataclass(frozen=True)
class ConvLayer:
    """One convolution: output channels, kernel size, stride, padding; ``pool``: a 2×2 max-pool after it."""

    channels: int
    kernel: int
    stride: int = 1
    padding: int = 1
    pool: bool = False


@dataclass(frozen=True)
class ConvSpec:
    """A convnet: input shape ``(C, H, W)`` or ``(C, L)``, its convolutions, then fully connected widths
    (``classifier``, the last being the classes) after the flatten."""

    input_shape: tuple[int, ...]
    convs: tuple[ConvLayer, ...]
    classifier: tuple[int, ...]

    @property
    def outputs(self) -> int:
        return self.classifier[-1]

    def feature_shape(self, spec: str = "") -> tuple[int, ...]:
        """``(C, H, W)`` (or ``(C, L)``) after the last convolution or pool; a size below 1 is an error."""
        size = list(self.input_shape[1:])
        channels = self.input_shape[0]
        for i, c in enumerate(self.convs, start=1):
            size = [(s + 2 * c.padding - c.kernel) // c.stride + 1 for s in size]
            size = [s // 2 for s in size] if c.pool else size
            channels = c.channels
            if min(size) < 1:
                raise ModelError(
                    f"model spec '{spec}': the input {shape_text(self.input_shape)} shrinks to nothing "
                    f"at convolution {i}"
                )
        return (channels, *size)

    def build(self, bias: bool) -> nn.Module:
        return ConvNet(self.input_shape, self.convs, self.classifier, bias=bias)


@dataclass(frozen=True)
class ResNetSpec:
    """ResNet-20 for CIFAR-10 at width W (the first stage's channels; ``resnet20`` is W = 16)."""

    width: int = 16
    input_shape: tuple[int, ...] = (3, 32, 32)
    outputs: int = 10
    blocks_per_stage: int = 3

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """The prunable weights' shapes in the network's module order (nothing is allocated)."""
        w = self.width
        shapes: list[tuple[int, ...]] = [(w, self.input_shape[0], 3, 3)]
        channels = w
        for stage in range(3):
            out = w * 2**stage
            for b in range(self.blocks_per_stage):
                shapes += [(out, channels, 3, 3), (out, out, 3, 3)]
                if b == 0 and out != channels:
                    shapes.append((out, channels, 1, 1))
                channels = out
        return [*shapes, (self.outputs, channels)]

    def build(self, bias: bool) -> nn.Module:
        return ResNet20(self.width, self.input_shape, self.outputs, self.blocks_per_stage, bias=bias)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); the shortcut a 1×1 convolution with batch norm
    (stride 2) where channels change, else the identity (He et al. 2016, option B)."""

    def __init__(self, f_in: int, f_out: int, downsample: bool) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        self.shortcut: nn.Module = nn.Sequential()
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet-20 (see the module docstring); He-normal (fan-in) weights as OpenLTH initializes them, batch
    norm at γ = 1, β = 0. Reads flat ``[N, C·H·W]`` inputs (viewed channel-major) or ``[N, C, H, W]``."""

    def __init__(
        self,
        width: int = 16,
        input_shape: Sequence[int] = (3, 32, 32),
        outputs: int = 10,
        blocks_per_stage: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.conv = nn.Conv2d(self.input_shape[0], width, 3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, channels = [], width
        for stage in range(3):
            out = width * 2**stage
            for b in range(blocks_per_stage):
                blocks.append(BasicBlock(channels, out, downsample=stage > 0 and b == 0))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, outputs, bias=bias)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x.reshape(-1, *self.input_shape))))
        h = self.blocks(h)
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


class MLP(nn.Module):
    """ReLU multilayer perceptron; hidden layers use ReLU, the output layer gives logits."""

    def __init__(self, widths: tuple[int, ...], bias: bool = True) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.layers = nn.ModuleDict(
            {f"fc{i}": nn.Linear(widths[i - 1], widths[i], bias=bias) for i in range(1, len(widths))}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers.values()):
            h = layer(h)
            if i < last:
                h = torch.relu(h)
        return h


class ConvNet(nn.Module):
    """Convolutions with ReLU (and 2×2 max-pools where the spec says), a flatten, then a ReLU MLP head.

    ``forward`` accepts flat ``[N, C·H·W]`` inputs (viewed channel-major) or ``[N, C, H, W]``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        convs: Sequence[ConvLayer],
        classifier: Sequence[int],
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        spec = ConvSpec(self.input_shape, tuple(convs), tuple(classifier))
        conv_class = nn.Conv2d if len(self.input_shape) == 3 else nn.Conv1d
        layers: dict[str, nn.Module] = {}
        channels = self.input_shape[0]
        for i, c in enumerate(spec.convs, start=1):
            layers[f"conv{i}"] = conv_class(
                channels, c.channels, c.kernel, stride=c.stride, padding=c.padding, bias=bias
            )
            channels = c.channels
        widths = (math.prod(spec.feature_shape()), *spec.classifier)
        for i in range(1, len(widths)):
            layers[f"fc{i}"] = nn.Linear(widths[i - 1], widths[i], bias=bias)
        self.layers = nn.ModuleDict(layers)
        self.pooled = frozenset(f"conv{i}" for i, c in enumerate(spec.convs, start=1) if c.pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(len(x), *self.input_shape)
        items = list(self.layers.items())
        for i, (name, layer) in enumerate(items):
            if name.startswith("fc") and h.dim() > 2:
                h = h.flatten(1)
            h = layer(h)
            if i < len(items) - 1:
                h = torch.relu(h)
            if name in self.pooled:
                h = F.max_pool2d(h, 2) if h.dim() == 4 else F.max_pool1d(h, 2)
        return h


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The prunable layers of a model by name, in forward order (input to output): a built-in MLP's or
    convnet's ``layers``, any other network's Linear and convolution modules (``modules.module_weights``)."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleDict):
        found = modules.module_weights(model)
        if not modules.is_chain(model):  # however it was built: its masks' paths need its wiring
            modules.register_graph(model, found)
        return found
    return dict(layers.items())


def weight_names(model: nn.Module) -> dict[str, str]:
    """Layer name → the parameter name of its weight (for ``torch.func.functional_call``)."""
    prefix = "layers." if isinstance(getattr(model, "layers", None), nn.ModuleDict) else ""
    return {name: f"{prefix}{name}.weight" for name in prunable_layers(model)}


# ---- spec parsing -------------------------------------------------------------------------------------
def _widths(spec: str, text: str, what: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(p) for p in text.split("-"))
    except ValueError:
        raise ModelError(f"model spec '{spec}': {what} must be integers joined by '-'") from None
    if min(widths) < 1:
        raise ModelError(f"model spec '{spec}': {what} must be >= 1")
    return widths


def parse_mlp(body: str) -> MLPSpec:
    spec = f"mlp:{body}"
    widths = _widths(spec, body, "widths")
    if len(widths) < 2:
        raise ModelError(f"model spec '{spec}': need at least input and output widths, all >= 1")
    return MLPSpec(widths)


def _shape(spec: str, text: str, dims: int) -> tuple[int, ...]:
    """``HxWxC`` (2-D) or ``L[xC]`` (1-D) → ``(C, H, W)`` or ``(C, L)``."""
    parts = text.split("x")
    form = "HxWxC" if dims == 2 else "L or LxC"
    if dims == 1 and len(parts) == 1:
        parts.append("1")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) != dims + 1 or min(sizes) < 1:
        raise ModelError(f"model spec '{spec}': input shape '{text}' must be {form}, integers >= 1")
    return (sizes[-1], *sizes[:-1])


def shape_text(shape: Sequence[int]) -> str:
    """``(C, H, W)`` → ``HxWxC``, ``(C, L)`` → ``L`` (C = 1) or ``LxC``, ``(D,)`` → ``D``: a spec's notation."""
    if len(shape) == 1:
        return str(shape[0])
    if len(shape) == 2 and shape[0] == 1:
        return str(shape[1])
    return "x".join(str(s) for s in (*shape[1:], shape[0]))


def _split_fields(spec: str, body: str, form: str, example: str) -> tuple[str, str, str]:
    fields = body.split(":")
    if len(fields) != 3 or not all(fields):
        raise ModelError(f"model spec '{spec}': expected {form}, e.g. '{example}'")
    return fields[0], fields[1], fields[2]


def parse_conv(body: str) -> ConvSpec:
    """``HxWxC:FEATURES:CLASSIFIER`` with FEATURES like ``64-64-M-128-128-M`` (see the module docstring)."""
    spec = f"conv:{body}"
    shape, features, classifier = _split_fields(
        spec, body, "conv:HxWxC:FEATURES:CLASSIFIER", "conv:32x32x3:64-64-M:256-256-10"
    )
    convs: list[ConvLayer] = []
    for token in features.split("-"):
        if token == "M":
            if not convs or convs[-1].pool:
                raise ModelError(f"model spec '{spec}': 'M' (max-pool) must follow a convolution")
            convs[-1] = ConvLayer(convs[-1].channels, 3, pool=True)
        elif token.isdigit() and int(token) >= 1:
            convs.append(ConvLayer(int(token), 3))
        else:
            raise ModelError(
                f"model spec '{spec}': feature '{token}' is neither a channel count >= 1 nor 'M'"
            )
    out = ConvSpec(_shape(spec, shape, 2), tuple(convs), _widths(spec, classifier, "classifier widths"))
    out.feature_shape(spec)
    return out


def parse_cnn1d(body: str) -> ConvSpec:
    """``L[xC]:FEATURES:CLASSIFIER`` with FEATURES like ``25k5-25-25`` (see the module docstring)."""
    spec = f"cnn1d:{body}"
    shape, features, classifier = _split_fields(
        spec, body, "cnn1d:L:FEATURES:CLASSIFIER", "cnn1d:40:25k5-25-25:10"
    )
    convs = []
    for token in features.split("-"):
        channels, k, kernel = token.partition("k")
        if not (
            channels.isdigit() and int(channels) >= 1 and (not k or (kernel.isdigit() and int(kernel) >= 1))
        ):
            raise ModelError(
                f"model spec '{spec}': feature '{token}' must be channels with an optional kernel, e.g. 25k5"
            )
        convs.append(ConvLayer(int(channels), int(kernel) if k else 3, stride=2, padding=1))
    out = ConvSpec(_shape(spec, shape, 1), tuple(convs), _widths(spec, classifier, "classifier widths"))
    out.feature_shape(spec)
    return out


def _conv_alias(family: str) -> Callable[[str], ConvSpec]:
    def parse(body: str) -> ConvSpec:
        spec = f"{family}:{body}"
        _shape(spec, body, 2)  # the message names the alias, not the expansion
        return parse_conv(f"{body}:{CONV_FEATURES[family]}:{CONV_CLASSIFIER}")

    return parse


def parse_resnet20(body: str) -> ResNetSpec:
    """``W``: ResNet-20 at width W (16/32/64 channels for W = 16)."""
    if not body.isdigit() or int(body) < 1:
        raise ModelError(
            f"model spec 'resnet20:{body}': the width must be an integer >= 1, e.g. 'resnet20:16'"
        )
    return ResNetSpec(int(body))


# family prefix → (fields in its body, parser of the body); an initialization may follow the fields.
SPECS: dict[str, tuple[int, Callable[[str], MLPSpec | ConvSpec | ResNetSpec]]] = {
    "mlp": (1, parse_mlp),
    "conv": (3, parse_conv),
    **{name: (1, _conv_alias(name)) for name in CONV_FEATURES},
    "cnn1d": (3, parse_cnn1d),
    "resnet20": (1, parse_resnet20),
}
# a family whose body may be left out, and the body it then has: ``resnet20`` is ``resnet20:16``
DEFAULT_BODIES = {"resnet20": "16"}


def _glorot_normal(model: nn.Module) -> None:
    for layer in prunable_layers(model).values():
        nn.init.xavier_normal_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


# initialization name → what it does to a freshly built model (``torch``: leave PyTorch's own)
INITS: dict[str, Callable[[nn.Module], None]] = {"torch": lambda model: None, "glorot": _glorot_normal}


def _parse(spec: str) -> tuple[MLPSpec | ConvSpec | ResNetSpec, str]:
    family, sep, rest = spec.partition(":")
    if not sep and family in DEFAULT_BODIES:
        sep, rest = ":", DEFAULT_BODIES[family]
    if not sep or family not in SPECS:
        specs = [f"'{k}'" if k in DEFAULT_BODIES else f"'{k}:...'" for k in SPECS]
        known = ", ".join([*specs, "a factory 'package.module:function'"])
        raise ModelError(f"unknown model spec '{spec}' (known: {known}, e.g. 'mlp:40-100-100-10')")
    fields, parser = SPECS[family]
    parts = rest.split(":")
    body, init = ":".join(parts[:fields]), ":".join(parts[fields:]) or "torch"
    if init not in INITS:
        raise ModelError(f"model spec '{spec}': unknown initialization '{init}' (known: {', '.join(INITS)})")
    return parser(body), init


def parse_spec(spec: str) -> MLPSpec | ConvSpec | ResNetSpec:
    """The architecture a spec names (input shape, outputs), without building it."""
    return _parse(spec)[0]


def _weight_shapes(arch: MLPSpec | ConvSpec | ResNetSpec) -> list[tuple[int, ...]]:
    """The prunable layers' weight shapes, worked out from the spec alone (nothing is allocated)."""
    if isinstance(arch, ResNetSpec):
        return arch.weight_shapes()
    if isinstance(arch, MLPSpec):
        return [(arch.widths[i], arch.widths[i - 1]) for i in range(1, len(arch.widths))]
    shapes, channels, dims = [], arch.input_shape[0], len(arch.input_shape) - 1
    for c in arch.convs:
        shapes.append((c.channels, channels, *([c.kernel] * dims)))
        channels = c.channels
    widths = (math.prod(arch.feature_shape()), *arch.classifier)
    return shapes + [(widths[i], widths[i - 1]) for i in range(1, len(widths))]


def parameter_count(spec: str, *, biases: bool = True) -> int:
    """Weights (and biases) of the model ``spec`` names, counted without building it (a factory's network,
    ``modules``, is built from seed 0 and its prunable weights and their layers' biases counted)."""
    if is_factory(spec):
        layers = prunable_layers(modules.build_factory(spec, 0)).values()
        shapes = [tuple(m.weight.shape) for m in layers]
        return sum(math.prod(s) for s in shapes) + (
            sum(m.bias.numel() for m in layers if getattr(m, "bias", None) is not None) if biases else 0
        )
    shapes = _weight_shapes(parse_spec(spec))
    return sum(math.prod(s) + (s[0] if biases else 0) for s in shapes)


def build_model(spec: str, seed: int, *, bias: bool = True) -> nn.Module:
    """Build the model of ``spec`` with weights drawn from ``seed`` (the spec's initialization, ``INITS``).

    The global torch RNG is left as it was, so building a model never perturbs other seeded work. A model
    larger than ``config.LIMITS["parameters"]`` is refused before anything is allocated: on a shared
    machine the kernel's OOM killer may pick another user's process.
    """
    if is_factory(spec):
        return modules.build_factory(spec, seed)
    arch, init = _parse(spec)
    try:
        check_limit("model", parameter_count(spec, biases=bias), "parameters", f"model spec '{spec}'")
    except LotterySearchError as e:
        raise ModelError(str(e)) from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = arch.build(bias)
        with torch.no_grad():
            INITS[init](model)
        if isinstance(arch, ResNetSpec):
            modules.register_graph(model)
        return model


def is_factory(spec: str) -> bool:
    """Whether ``spec`` is a factory's import path (``modules``) rather than a spec of ``SPECS``."""
    return spec.partition(":")[0] not in SPECS and modules.is_reference(spec)


def input_shape(model: nn.Module) -> tuple[int, ...]:
    """The shape of one input sample: ``(C, H, W)`` or ``(C, L)`` for a convnet, ``(features,)`` for an MLP."""
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(shape)
    first = next(iter(prunable_layers(model).values()))
    if not isinstance(first, nn.Linear) and first.weight.dim() > 2:
        raise ModelError(
            f"{type(model).__name__} starts with a convolution: give it an input_shape attribute, e.g. (3, 32, 32)"
        )
    return (int(first.weight.shape[1]),)


def input_width(model: nn.Module) -> int:
    """Number of input features (flat: C·H·W for a convnet)."""
    return math.prod(input_shape(model))
