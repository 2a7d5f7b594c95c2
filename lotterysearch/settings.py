"""Run configuration: plain dataclasses loaded from TOML and validated with one-line errors.

A search is a ``SearchConfig``; an IMP run an ``IMPConfig`` (its file says ``kind = "imp"``). As in OpenLTH,
a run's identity is a hash of its non-default fields (``config_hash``), so adding a field with a default
never renames old runs. Where a run runs (workspace, Ray address) is not part of its identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lotterysearch.errors import ConfigError

# ---- bounds -------------------------------------------------------------------------------------------
SEED_MAX = 2**63 - 1  # seeds and ids are SQLite integers (signed 64-bit)
NAME_MAX = 100  # characters of a run name: its id names a lock file, which the file system caps at 255 bytes


@dataclass(frozen=True)
class Limit:
    """An upper bound on a setting where memory or time would otherwise run away unnoticed (a population of
    10^12 grows memory for minutes before anything fails). ``$LOTTERYSEARCH_MAX_<NAME>`` raises it."""

    name: str
    default: int
    what: str

    @property
    def env(self) -> str:
        return f"LOTTERYSEARCH_MAX_{self.name.upper()}"

    def value(self) -> int:
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"${self.env} must be a positive integer, got {text!r}")
        return int(text)

    def check(self, path: str, value: int, subject: str = "") -> None:
        """A one-line ``ConfigError`` naming the field (or ``subject``), the limit and how to raise it."""
        limit = self.value()
        if value > limit:
            raise ConfigError(
                f"{subject or f'field {path!r}'} must be at most {limit} ({self.what}), got {value!r}; to go"
                f" higher, set {self.env}={value}"
            )


LIMITS: dict[str, Limit] = {
    limit.name: limit
    for limit in (
        Limit("population", 100_000, "the limit on a population"),
        Limit("generations", 1_000_000, "the limit on generations"),
        Limit("parameters", 100_000_000, "the limit on a model's weights and biases"),
        Limit("steps", 10_000_000, "the limit on training steps"),
        Limit("batch_size", 65_536, "the limit on a batch"),
        Limit("iterations", 100_000, "the limit on pruning iterations"),
        Limit("seeds", 1_000, "the limit on init seeds in a list"),
        Limit("rounds", 1_000, "the limit on IMP rounds"),
        Limit("evaluators", 10_000, "the limit on evaluators"),
        Limit("halving_rungs", 32, "the limit on successive-halving rungs"),
        Limit("halving_rate", 1_000, "the limit on the successive-halving rate"),
    )
}


def check_limit(path: str, value: int, limit: str, subject: str = "") -> None:
    """``LIMITS[limit].check``: the one place bounds are enforced."""
    LIMITS[limit].check(path, value, subject)


def check_seed(path: str, value: int) -> None:
    """Seeds seed numpy (which refuses negatives) and are stored as SQLite integers."""
    check_field(path, 0 <= value <= SEED_MAX, "an integer in [0, 2^63 - 1]", value)


class RunKind(StrEnum):
    """What a run is: a genetic search (a ``SearchConfig``) or an IMP run (an ``IMPConfig``). Stored as its
    value, in the run's config (``kind = "imp"``; a search's config has none), so every store opens as before;
    code compares kinds by identity (``kind is RunKind.IMP``), and a kind still equals its value as a string."""

    SEARCH = "search"
    IMP = "imp"
    CS = "cs"


# Run kinds made of rounds of tickets, one trajectory per init seed (stored as IMP rounds): IMP, and
# Continuous Sparsification, which learns each round's mask instead of reading it off magnitudes.
ROUND_KINDS = frozenset({RunKind.IMP, RunKind.CS})


@dataclass(frozen=True)
class SeedingConfig:
    """The initial population: SynFlow masks from each init seed at each compression, plus random controls
    with the same per-layer densities (``random_share`` of the population)."""

    pruner: str = "synflow"
    init_seeds: tuple[int, ...] = (0, 1, 2, 3)
    compressions: tuple[float, ...] = (3.0, 10.0, 30.0, 100.0)
    random_share: float = 0.25
    iterations: int = 100


@dataclass(frozen=True)
class GAConfig:
    """NSGA-II on (validation accuracy ↑, density ↓) with mask crossover and mutation."""

    population: int = 24
    generations: int = 6
    crossover_rate: float = 0.7
    mutation_rate: float = 0.3
    mutation_strength: float = 0.05  # share of a layer's live weights a mutation moves, grows or prunes
    crossovers: tuple[str, ...] = ("layer", "neuron")
    mutations: tuple[str, ...] = ("move", "grow_prune")  # operators.MUTATIONS, drawn with equal weight
    align: bool = True  # align hidden neurons before crossover (competing conventions)
    mode: str = "generational"  # or "steady_state": no generation barrier (``steady_state``)
    # Noise-aware selection (``loop.SearchLoop.reevaluate_elites``): before each generation breeds, every
    # class on the population's front not yet re-evaluated is trained once more under a second order of
    # minibatches (same initial weights), and its accuracy becomes the mean of the two trainings.
    reevaluate_elites: bool = False
    # The population-of-one control (``single_lineage.SingleLineageLoop``): "single_lineage" runs the same
    # mutation operators on one lineage, one child per generation kept unless its parent dominates it, until
    # ``control_steps`` training steps are spent (the total of the run it controls for).
    control: str = "none"
    control_steps: int = 0
    # The prune strength of the adaptive_prune and drawn_prune mutations (``operators.child_strengths``): a
    # child's strength is drawn uniformly on [strength_min, strength_max] (drawn_prune), or is its parent's
    # gene σ times exp(τ·N(0, 1)) clipped to that range (adaptive_prune; seeds start at mutation_strength).
    strength_min: float = 0.05
    strength_max: float = 0.9
    strength_tau: float = 0.0  # τ of the self-adaptation; 0: 1/√n for a gene of n strengths
    strength_per_layer: bool = False  # one strength per layer (else one per network)
    # Share of the weights a strength mutation drops that grow back where the parent's loss has the largest
    # gradient (RigL, Evci et al. 2020); 0: none (the search then needs no gradients).
    regrow: float = 0.0
    # Densities (shares of the weights) a strength-pruned child lands on instead of passing below them
    # (``operators.land_on_target``): the densities a user wants tickets at; empty: none.
    density_targets: tuple[float, ...] = ()
    # Each child trains with its own batch order, drawn from the run's generator and stored with it; in
    # ticket mode the order is then part of what the fitness is a property of (``fitness.fitness_key``).
    order_seeds: bool = False


# Option names, here with the settings that name them; each registry of code keyed by one of these has
# exactly these keys (asserted where the registry is defined), so a config is checked without importing it.
GA_MODES = ("generational", "steady_state")  # ``loop.SearchLoop``, ``steady_state.SteadyStateLoop``
CONTROLS = ("none", "single_lineage")  # a search; ``single_lineage.SingleLineageLoop``
OPTIMIZERS = ("adam", "sgd")  # ``trainer.OPTIMIZERS``
# ``data.DATASETS``; "tensors": data given from Python (``data.as_dataset``)
DATASETS = ("mnist1d", "mnist", "digits", "synthetic", "cifar10", "tensors")
MODES = ("forward", "gradient", "straight_through")  # the masking modes of ``masks``
FITNESS_MODES = ("topology", "ticket")  # what a mask's fitness is a property of (``fitness.fitness_key``)
SCORERS = ("synflow", "snip", "magnitude", "random")  # ``pruners.SCORERS``
PRUNERS = (*SCORERS, "imp", "cs")  # what ``prune`` takes: a scorer, IMP, or Continuous Sparsification
SCOPES = ("global", "layerwise")  # one threshold for all layers, or one per layer
ROUNDINGS = ("round", "reference")  # how a layer's kept count is rounded (``pruners.layer_counts``)
CROSSOVERS = ("layer_crossover", "layer_density_crossover", "neuron_crossover")  # ``operators.CROSSOVERS``
MUTATIONS = (  # ``operators.MUTATIONS``
    "move_mutation",
    "grow_prune_mutation",
    "grow_mutation",
    "prune_mutation",
    "layer_density_mutation",
    "neuron_grow_mutation",
    "neuron_prune_mutation",
    "magnitude_mutation",
    "magnitude_prune_mutation",
    "adaptive_prune_mutation",
    "drawn_prune_mutation",
)
# the mutations that prune at a child's own strength (``operators.child_strengths``)
STRENGTH_MUTATIONS = frozenset({"adaptive_prune_mutation", "drawn_prune_mutation"})
WEIGHTED_MUTATIONS = frozenset({"magnitude_mutation", "magnitude_prune_mutation"}) | STRENGTH_MUTATIONS


def check_training(cfg: TrainingConfig, min_steps: int = 0) -> None:
    """What every trainer needs of its settings; a one-line ``ConfigError`` naming the field otherwise (the
    config loader adds the section: ``field 'fitness.lr'``)."""
    check_one_of("optimizer", cfg.optimizer, OPTIMIZERS)
    number = isinstance(cfg.lr, int | float) and not isinstance(cfg.lr, bool)
    check_field("lr", number and cfg.lr > 0, "a number > 0", cfg.lr)
    check_field("lr", math.isfinite(cfg.lr), "a finite number", cfg.lr)
    for name, low in (("steps", min_steps), ("batch_size", 1), ("eval_every", 0)):
        v = getattr(cfg, name)
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= low
        check_field(name, ok, f"an integer >= {low}", v)
    check_limit("steps", cfg.steps, "steps")
    check_limit("batch_size", cfg.batch_size, "batch_size")
    check_field(
        "eval_every",
        cfg.eval_every <= cfg.steps,
        f"at most steps ({cfg.steps}): one evaluation or more",
        cfg.eval_every,
    )
    check_field("fused", isinstance(cfg.fused, bool), "true or false", cfg.fused)


@dataclass(frozen=True)
class TrainingConfig:
    """One training run's settings, used as they are by ``training.train``, the batched trainers, fitness,
    IMP, the stability study and the experiments. Checks itself on construction (``check_training``)."""

    MIN_STEPS: typing.ClassVar[int] = 0

    steps: int = 115
    optimizer: str = "adam"
    lr: float = 0.01
    batch_size: int = 128
    # Evaluate on the validation split every this many steps (0: once, after the last): the curve and the
    # early-stopping iteration of Frankle & Carbin's protocol (``training.EarlyStop``).
    eval_every: int = 0
    # torch's fused optimizer kernel: the same update, another rounding, steps 1.3-2x faster on CPU here. Only
    # ``training.train`` has it (the batched trainers run their own flat Adam and SGD).
    fused: bool = False

    def __post_init__(self) -> None:
        check_training(self, self.MIN_STEPS)

    def with_steps(self, steps: int) -> TrainingConfig:
        """The same settings at another budget (successive halving's rungs, IMP's rewinding)."""
        return dataclasses.replace(self, steps=int(steps))

    def training(self) -> TrainingConfig:
        """The plain ``TrainingConfig`` part of this one (of a ``FitnessConfig``, say), field by name."""
        return TrainingConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainingConfig)})


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _in_section(e: ConfigError, prefix: str) -> ConfigError:
    """A settings type's own ``field 'lr'`` message, named as the config file has it: ``field 'fitness.lr'``."""
    text = str(e)
    return ConfigError(text.replace("field '", f"field '{prefix}", 1) if prefix else text)


@dataclass(frozen=True)
class FitnessConfig(TrainingConfig):
    """The short training run that scores a mask (see ``lotterysearch.training.fitness``): ``TrainingConfig`` plus the
    init seeds every mask is trained from (common random numbers) and successive halving."""

    MIN_STEPS: typing.ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_field(
            "eval_every",
            self.eval_every == 0,
            "0: a mask's fitness is measured after its last step",
            self.eval_every,
        )
        check_field(
            "fused", not self.fused, "false: the fitness trainers have no fused optimizer", self.fused
        )
        check_field("keep_weights", isinstance(self.keep_weights, bool), "true or false", self.keep_weights)
        ok = (
            isinstance(self.batch_order, int)
            and not isinstance(self.batch_order, bool)
            and self.batch_order >= 0
        )
        check_field("batch_order", ok, "an integer >= 0", self.batch_order)
        check_field(
            "keep_gradients", isinstance(self.keep_gradients, bool), "true or false", self.keep_gradients
        )
        every = self.early_bird_every
        ok = isinstance(every, int) and not isinstance(every, bool) and 0 <= every <= self.steps
        check_field("early_bird_every", ok, f"an integer in [0, steps] = [0, {self.steps}] (0: off)", every)
        eps = self.early_bird_epsilon
        check_field("early_bird_epsilon", _number(eps) and 0 <= eps <= 1, "a number in [0, 1]", eps)
        w = self.early_bird_window
        ok = isinstance(w, int) and not isinstance(w, bool) and w >= 1
        check_field("early_bird_window", ok, "an integer >= 1", w)
        st = self.early_bird_strength
        check_field("early_bird_strength", _number(st) and 0 < st < 1, "a number in (0, 1)", st)

    init_seeds: tuple[int, ...] = (0,)
    # What a mask's fitness is a property of (``fitness.FITNESS_MODES``): "topology", its isomorphism class,
    # trained from every init seed; "ticket", the mask itself under one fixed init θ₀ (``init_seeds[0]``).
    mode: str = "topology"
    # Successive halving inside a generation (``search.halving_rungs``): every new class of the children is
    # trained for steps·η^-(rungs-1), the best 1/η by non-dominated rank go on to η times the budget, ... up
    # to ``steps``. η = 6 with 2 rungs: the demo's hypervolume (0.998×) at 37.5% of the steps (benchmarks/search.py).
    successive_halving: bool = False
    halving_rate: int = 6  # η
    halving_rungs: int = 2
    # Return each mask's network trained from ``init_seeds[0]`` with its objectives (``trained.pack_weights``),
    # which the search stores with the class: the magnitude mutation reads it. The search sets this itself
    # when ``[ga] mutations`` names "magnitude"; it changes no objective.
    keep_weights: bool = False
    # Which order of minibatches each training sees (``fitness.batch_seed``): 0, the order seeded by the init
    # seed; k > 0, another order from the same initial weights. Elite re-evaluation (``ga.reevaluate_elites``)
    # trains a front's classes once more at order 1 and averages the two accuracies.
    batch_order: int = 0

    def with_batch_order(self, order: int) -> FitnessConfig:
        """The same settings with another order of minibatches (elite re-evaluation)."""
        return dataclasses.replace(self, batch_order=int(order))

    # With the weights, the dense gradient of the loss at the pruned positions (RigL's regrowth reads it); the
    # search sets this itself when ``ga.regrow`` > 0.
    keep_gradients: bool = False
    # Early-Bird stopping (You et al. 2020): every ``early_bird_every`` steps (0: off) the magnitude mask that
    # pruning ``early_bird_strength`` of each layer's kept weights would give is compared with the previous
    # one; training stops once their normalized Hamming distance stays below ``early_bird_epsilon`` for
    # ``early_bird_window`` consecutive comparisons. The steps trained are what the ledger counts.
    early_bird_every: int = 0
    early_bird_epsilon: float = 0.1
    early_bird_window: int = 3
    early_bird_strength: float = 0.5


@dataclass(frozen=True)
class RayConfig:
    """The ``[ray]`` section: where evaluators run and what each holds. Checks itself on construction, so
    the evaluator pool takes it as it is."""

    address: str = ""  # empty: a local Ray (or $RAY_ADDRESS)
    cpus_per_eval: float = 1.0
    # GPUs each evaluator holds (0.25: four share one). 0 keeps evaluators on CPUs: Ray hides the GPUs from an
    # actor that asks for none (CUDA_VISIBLE_DEVICES=""), and fitness then trains on the CPU.
    gpus_per_eval: float = 0.0
    num_evaluators: int = 0  # 0: one per available CPU (and GPU share, with gpus_per_eval)

    def __post_init__(self) -> None:
        check_field("cpus_per_eval", self.cpus_per_eval > 0, "a number > 0", self.cpus_per_eval)
        check_field("gpus_per_eval", self.gpus_per_eval >= 0, "a number >= 0", self.gpus_per_eval)
        check_field("num_evaluators", self.num_evaluators >= 0, "an integer >= 0", self.num_evaluators)
        check_limit("num_evaluators", self.num_evaluators, "evaluators")


@dataclass(frozen=True)
class SearchConfig:
    name: str = "search"
    dataset: str = "mnist1d"
    model: str = "mlp:40-100-100-10"
    mode: str = "forward"
    seed: int = 0
    evaluator: str = "ray"  # ray: a pool of Ray actors (local Ray or a cluster); local: in this process
    workspace: str = "workspace"
    data_dir: str = ""
    # What a run on the user's network and data checks a resume against (empty for built-in ones):
    # ``modules.model_fingerprint`` of a factory's network, ``Dataset.fingerprint`` of dataset "tensors".
    model_fingerprint: str = ""
    data_fingerprint: str = ""
    seeding: SeedingConfig = field(default_factory=SeedingConfig)
    ga: GAConfig = field(default_factory=GAConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass(frozen=True)
class IMPSettings:
    """The ``[imp]`` section: one trajectory per init seed, each training ``rounds + 1`` masks (the dense
    one, then each pruned one): every round prunes ``rate`` of each layer's remaining weights by |θ| (the
    output layer at ``output_rate``; ``global``: ``rate`` of all by one threshold) and rewinds to the init
    (``rewind_step = 0``) or to the weights after ``rewind_step`` dense steps (Frankle & Carbin; Frankle et
    al. 2020). The output layer is the last prunable layer: an MLP's last, a convnet's last fully connected
    layer (its classifier's logits, as Frankle & Carbin's Conv-2/4/6 prune their output layer at 10%)."""

    init_seeds: tuple[int, ...] = (0,)
    rounds: int = 10
    rate: float = 0.2
    output_rate: float = 0.1
    scope: str = "layerwise"
    rewind_step: int = 0
    # The convolutions' rate when layerwise (0: ``rate``): Frankle & Carbin prune Conv-2/4/6's convolutions
    # at 10% per round and their fully connected layers at 20%.
    conv_rate: float = 0.0
    # Which order of minibatches every round trains on (``fitness.batch_seed``): 0, the order seeded by the
    # init seed; k > 0, another order from the same θ₀. Two runs that differ only here are Grosse & Backes'
    # (2020) reference for how much of a ticket the order of the data decides.
    batch_order: int = 0


@dataclass(frozen=True)
class TrajectoryRunConfig:
    """The top-level fields of a run of per-init trajectories, an IMP run's and a CS run's alike; each kind
    sets its ``kind`` and ``name`` and adds its section and ``[training]``."""

    kind: str = ""
    name: str = ""
    dataset: str = "mnist1d"
    model: str = "mlp:40-100-100-10"
    mode: str = "forward"
    seed: int = 0  # the validation split
    evaluator: str = "ray"  # ray: rounds as Ray tasks; local: in this process, one after another
    workspace: str = "workspace"
    data_dir: str = ""
    model_fingerprint: str = ""  # as in ``SearchConfig``
    data_fingerprint: str = ""


@dataclass(frozen=True)
class IMPConfig(TrajectoryRunConfig):
    """An IMP run (``kind = "imp"`` at the top of its file; a search config has no ``kind``): the model, the
    data, the pruning schedule (``[imp]``) and the training protocol of every round (``[training]``, with
    ``eval_every`` for the early-stopping iteration)."""

    kind: str = RunKind.IMP.value
    name: str = "imp"
    imp: IMPSettings = field(default_factory=IMPSettings)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass(frozen=True)
class CSSettings:
    """The ``[cs]`` section: Continuous Sparsification (Savarese et al. 2020), one trajectory per init seed.
    Each round trains the weights and a score s per weight on L(w ⊙ σ(β·s)) + λ·‖σ(β·s)‖₁ for ``steps``
    steps from the rewind point, β rising from 1 to ``beta_final``; its ticket is the mask 1[s > 0] with the
    weights rewound, trained under ``[training]``. Between rounds s ← min(β_T·s, s₀) and β ← 1 (Algorithm
    1). How sparse a round gets follows from λ (``penalty``: one for every round, or one per round) and
    s₀ (``s_init``), not from a rate."""

    init_seeds: tuple[int, ...] = (0,)
    rounds: int = 3
    penalty: tuple[float, ...] = (1e-6,)
    beta_final: float = 200.0
    s_init: float = 0.0
    rewind_step: int = 0
    # steps of each round's search (0: training.steps - rewind_step, a ticket's training)
    steps: int = 0


@dataclass(frozen=True)
class CSConfig(TrajectoryRunConfig):
    """A Continuous Sparsification run (``kind = "cs"`` at the top of its file): the fields of an IMP run,
    with the search in ``[cs]``; ``[training]`` trains every round's ticket, as an IMP round's."""

    kind: str = RunKind.CS.value
    name: str = "cs"
    cs: CSSettings = field(default_factory=CSSettings)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    ray: RayConfig = field(default_factory=RayConfig)


# Fields that say where a search runs, not what it computes: left out of the hash.
_PLACEMENT = {"workspace", "data_dir", "ray", "evaluator"}
EVALUATORS = ("ray", "local")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}[typing.get_args(tp)[0]]
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[tp]


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, str, bool or tuple[...] of them)."""
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"field '{path}' must be {_type_name(tp)}, got {value!r}")
        return tuple(_coerce(path, v, typing.get_args(tp)[0]) for v in value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(f"field '{path}' must be {_type_name(tp)}, got {value!r}")
    if tp is float and not math.isfinite(
        value
    ):  # TOML's inf and nan: a run's stored TOML could not hold them
        raise ConfigError(f"field '{path}' must be a finite number, got {value!r}")
    if tp is int and not -SEED_MAX - 1 <= value <= SEED_MAX:
        raise ConfigError(f"field '{path}' must be an integer in [-2^63, 2^63 - 1], got {value!r}")
    return float(value) if tp is float else value


def build_config(cls: type, table: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in table:
        if key not in names:
            where = f"section [{prefix.rstrip('.')}]" if prefix else "the top level"
            raise ConfigError(f"unknown field '{prefix}{key}' in {where} (allowed: {', '.join(names)})")
    kwargs = {}
    for name in names:
        if name not in table:
            continue
        tp, value = hints[name], table[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"field '{prefix}{name}' must be a [{name}] section")
            kwargs[name] = build_config(tp, value, f"{prefix}{name}.")
        else:
            if isinstance(tp, types.UnionType):  # not used yet; keep the loader honest
                raise ConfigError(f"field '{prefix}{name}' has an unsupported type")
            kwargs[name] = _coerce(prefix + name, value, tp)
    try:
        return cls(**kwargs)
    except ConfigError as e:  # a self-checking section (``TrainingConfig``)
        raise _in_section(e, prefix) from None


def check_one_of(path: str, value: str, allowed: typing.Iterable[str]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"field '{path}' must be one of {', '.join(allowed)}, got {value!r}")


def check_field(path: str, ok: bool, requirement: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"field '{path}' must be {requirement}, got {value!r}")


def validate(cfg: SearchConfig) -> SearchConfig:
    """Check values against the option names; the first problem found raises ``ConfigError``. What needs
    the model itself (its spec, IMP's schedule) is checked by ``api.check_run``."""
    _check_run_fields(cfg)
    s, g, f = cfg.seeding, cfg.ga, cfg.fitness
    check_one_of("seeding.pruner", s.pruner, SCORERS)
    check_field(
        "seeding.init_seeds", len(s.init_seeds) >= 1, "a non-empty list of integers", list(s.init_seeds)
    )
    _check_seeds("seeding.init_seeds", s.init_seeds)
    check_field("seeding.random_share", 0 <= s.random_share < 1, "in [0, 1)", s.random_share)
    check_field("seeding.iterations", s.iterations >= 1, "an integer >= 1", s.iterations)
    check_limit("seeding.iterations", s.iterations, "iterations")
    _check_compressions(s.compressions)
    check_one_of("ga.control", g.control, CONTROLS)
    check_field("ga.control_steps", g.control_steps >= 0, "an integer >= 0", g.control_steps)
    if g.control != "none":
        check_field(
            "ga.control_steps",
            g.control_steps >= f.steps * len(f.init_seeds),
            f"at least one training (fitness.steps × init seeds = {f.steps * len(f.init_seeds)}) with"
            f' ga.control = "{g.control}"',
            g.control_steps,
        )
        check_field(
            "ga.mode", g.mode == "generational", f'"generational" with ga.control = "{g.control}"', g.mode
        )
    if g.reevaluate_elites and g.mode == "steady_state":
        raise ConfigError(
            "field 'ga.reevaluate_elites': steady_state breeds without a generation to re-evaluate before;"
            ' set ga.reevaluate_elites = false or ga.mode = "generational"'
        )
    check_field("ga.population", g.population >= 2, "an integer >= 2", g.population)
    check_limit("ga.population", g.population, "population")
    n_random = round(s.random_share * g.population)
    need = len(s.init_seeds) * len(s.compressions)
    check_field(
        "ga.population",
        g.population - n_random >= need,
        f"at least {need} SynFlow seeds + {n_random} random controls",
        g.population,
    )
    check_field("ga.generations", g.generations >= 0, "an integer >= 0", g.generations)
    check_limit("ga.generations", g.generations, "generations")
    check_field("ga.crossover_rate", 0 <= g.crossover_rate <= 1, "in [0, 1]", g.crossover_rate)
    check_field("ga.mutation_rate", 0 <= g.mutation_rate <= 1, "in [0, 1]", g.mutation_rate)
    check_field("ga.mutation_strength", 0 < g.mutation_strength <= 1, "in (0, 1]", g.mutation_strength)
    short = [name.removesuffix("_crossover") for name in CROSSOVERS]
    for op in g.crossovers:
        check_one_of("ga.crossovers", op, short)
    short = [name.removesuffix("_mutation") for name in MUTATIONS]
    for op in g.mutations:
        check_one_of("ga.mutations", op, short)
    check_one_of("ga.mode", g.mode, GA_MODES)
    _check_strengths(g)
    weighted = [m for m in g.mutations if f"{m}_mutation" in WEIGHTED_MUTATIONS]
    if g.mode == "steady_state" and weighted:
        raise ConfigError(
            f"field 'ga.mutations': {weighted[0]} reads the parents' trained weights, which the steady_state"
            ' workers that breed do not hold; drop it or set ga.mode = "generational"'
        )
    if g.regrow > 0 and f.mode != "ticket":
        raise ConfigError(
            "field 'ga.regrow': regrowth by gradient needs fitness.mode = \"ticket\" (a gradient is kept for the"
            " positions of the parent's own θ₀, not relabelled onto an isomorph)"
        )
    if g.order_seeds and (f.mode != "ticket" or g.mode != "generational"):
        raise ConfigError(
            "field 'ga.order_seeds': a child's own batch order needs fitness.mode = \"ticket\" (one θ₀, the"
            ' order part of the key) and ga.mode = "generational"'
        )
    if g.mode == "steady_state" and f.successive_halving:
        raise ConfigError(
            "field 'ga.mode': steady_state does not do successive halving; set"
            ' fitness.successive_halving = false or ga.mode = "generational"'
        )
    check_field(
        "fitness.init_seeds", len(f.init_seeds) >= 1, "a non-empty list of integers", list(f.init_seeds)
    )
    _check_seeds("fitness.init_seeds", f.init_seeds)
    check_one_of("fitness.mode", f.mode, FITNESS_MODES)
    if f.mode == "ticket":
        check_field(
            "fitness.init_seeds",
            len(f.init_seeds) == 1,
            "one init seed θ₀ in ticket mode (a ticket is a mask of one initialization)",
            list(f.init_seeds),
        )
        check_field(
            "ga.align",
            not g.align,
            "false in ticket mode (aligning relabels hidden neurons, which gives a mask other initial weights "
            "under θ₀)",
            g.align,
        )
    check_field("fitness.halving_rate", f.halving_rate >= 2, "an integer >= 2", f.halving_rate)
    check_field("fitness.halving_rungs", f.halving_rungs >= 1, "an integer >= 1", f.halving_rungs)
    check_limit("fitness.halving_rate", f.halving_rate, "halving_rate")
    check_limit("fitness.halving_rungs", f.halving_rungs, "halving_rungs")
    if f.successive_halving:
        check_field(
            "fitness.steps",
            f.steps >= f.halving_rate ** (f.halving_rungs - 1),
            f"at least halving_rate^(halving_rungs-1) = {f.halving_rate ** (f.halving_rungs - 1)} with"
            " successive halving (every rung needs a step)",
            f.steps,
        )
    return cfg


def _check_strengths(g: GAConfig) -> None:
    """The strength mutations' settings (``GAConfig.strength_min`` and after)."""
    lo, hi = g.strength_min, g.strength_max
    check_field("ga.strength_min", 0 < lo < 1, "in (0, 1)", lo)
    check_field("ga.strength_max", lo <= hi < 1, f"in [strength_min, 1) = [{lo:g}, 1)", hi)
    check_field("ga.strength_tau", g.strength_tau >= 0, "a number >= 0 (0: 1/√n)", g.strength_tau)
    check_field("ga.regrow", 0 <= g.regrow <= 1, "in [0, 1]", g.regrow)
    strength = [m for m in g.mutations if f"{m}_mutation" in STRENGTH_MUTATIONS or m in STRENGTH_MUTATIONS]
    targets = g.density_targets
    check_field(
        "ga.density_targets",
        all(isinstance(t, int | float) and 0 < t < 1 for t in targets),
        "shares of the weights in (0, 1)",
        list(targets),
    )
    if targets and not strength:
        raise ConfigError(
            "field 'ga.density_targets': only the adaptive_prune and drawn_prune mutations land on targets;"
            " name one of them in ga.mutations or leave ga.density_targets empty"
        )
    if targets and g.regrow > 0:
        raise ConfigError(
            "field 'ga.density_targets': a regrown child leaves its target; set ga.regrow = 0 or leave"
            " ga.density_targets empty"
        )
    if g.regrow > 0 and not strength:
        raise ConfigError(
            f"field 'ga.regrow': {g.regrow:g} regrows what the adaptive_prune and drawn_prune mutations drop;"
            " name one of them in ga.mutations or set ga.regrow = 0"
        )


def _check_run_fields(cfg: SearchConfig | IMPConfig | CSConfig) -> None:
    """The top-level fields a search and an IMP run share: option names and the run name."""
    check_one_of("dataset", cfg.dataset, DATASETS)
    check_one_of("mode", cfg.mode, MODES)
    check_one_of("evaluator", cfg.evaluator, EVALUATORS)
    check_field("model", bool(cfg.model), "a model spec", cfg.model)
    check_seed("seed", cfg.seed)
    check_field(
        "name",
        bool(cfg.name) and all(c.isalnum() or c in "-_." for c in cfg.name),
        "letters, digits, - _ .",
        cfg.name,
    )
    check_field("name", len(cfg.name) <= NAME_MAX, f"at most {NAME_MAX} characters", cfg.name)


def _check_seeds(path: str, seeds: tuple[int, ...]) -> None:
    check_limit(path, len(seeds), "seeds")
    for seed in seeds:
        check_seed(path, seed)


def _check_compressions(compressions: tuple[float, ...]) -> None:
    """Compressions are ratios >= 1; that each leaves a weight of the model is ``api.check_run``'s check."""
    check_field(
        "seeding.compressions",
        len(compressions) >= 1 and min(compressions) >= 1,
        "a non-empty list of numbers >= 1",
        list(compressions),
    )


def _check_trajectory_fields(cfg: IMPConfig | CSConfig, kind: RunKind, what: str, *, min_rounds: int) -> None:
    """The fields every run of per-init trajectories (IMP, CS) shares, checked in this order: its kind, the
    run's top-level fields, the init seeds (one trajectory each) and the number of rounds."""
    check_field("kind", cfg.kind == kind, f'"{kind}" in {what}', cfg.kind)
    _check_run_fields(cfg)
    section = kind.value
    part = getattr(cfg, section)
    seeds = list(part.init_seeds)
    check_field(
        f"{section}.init_seeds",
        len(seeds) >= 1 and len(set(seeds)) == len(seeds),
        "a non-empty list of distinct integers (one trajectory each)",
        seeds,
    )
    _check_seeds(f"{section}.init_seeds", part.init_seeds)
    check_field(f"{section}.rounds", part.rounds >= min_rounds, f"an integer >= {min_rounds}", part.rounds)
    check_limit(f"{section}.rounds", part.rounds, "rounds")


def _check_rewind_step(section: str, rewind_step: int, t: TrainingConfig) -> None:
    """A trajectory's rewind point lies before the protocol's last step."""
    check_field(
        f"{section}.rewind_step",
        0 <= rewind_step < t.steps,
        f"in [0, training.steps) = [0, {t.steps}): a rewind point before the last step",
        rewind_step,
    )


def _check_round_evaluations(section: str, rewind_step: int, t: TrainingConfig) -> None:
    """With a rewind point, a round trains ``training.steps - rewind_step`` steps: it must evaluate within
    them."""
    if rewind_step:
        check_field(
            "training.eval_every",
            t.eval_every <= t.steps - rewind_step,
            f"at most training.steps - {section}.rewind_step ({t.steps - rewind_step}): the steps of a round",
            t.eval_every,
        )


def validate_imp(cfg: IMPConfig) -> IMPConfig:
    """Check an IMP config's fields; the first problem found raises a one-line ``ConfigError``. Its pruning
    schedule, which needs the model, is worked out by ``api.check_run`` before any run is written."""
    _check_trajectory_fields(cfg, RunKind.IMP, "an IMP config", min_rounds=0)
    i, t = cfg.imp, cfg.training
    check_field("imp.rate", 0 < i.rate < 1, "in (0, 1)", i.rate)
    check_field("imp.output_rate", 0 < i.output_rate < 1, "in (0, 1)", i.output_rate)
    check_field("imp.conv_rate", 0 <= i.conv_rate < 1, "in [0, 1) (0: imp.rate)", i.conv_rate)
    check_field(
        "imp.batch_order", i.batch_order >= 0, "an integer >= 0 (0: the init seed's order)", i.batch_order
    )
    check_one_of("imp.scope", i.scope, SCOPES)
    _check_rewind_step("imp", i.rewind_step, t)
    _check_round_evaluations("imp", i.rewind_step, t)
    return cfg


def validate_cs(cfg: CSConfig) -> CSConfig:
    """Check a Continuous Sparsification config's fields; the first problem found raises a one-line
    ``ConfigError``."""
    _check_trajectory_fields(cfg, RunKind.CS, "a CS config", min_rounds=1)
    c, t = cfg.cs, cfg.training
    check_field(
        "cs.penalty",
        len(c.penalty) in (1, c.rounds),
        f"one λ, or one per round ({c.rounds})",
        list(c.penalty),
    )
    check_field("cs.penalty", min(c.penalty) >= 0, "a list of numbers >= 0 (λ)", list(c.penalty))
    check_field("cs.beta_final", c.beta_final >= 1, "a number >= 1 (β_T)", c.beta_final)
    _check_rewind_step("cs", c.rewind_step, t)
    check_field("cs.steps", c.steps >= 0, "an integer >= 0 (0: training.steps - cs.rewind_step)", c.steps)
    check_limit("cs.steps", c.steps, "steps")
    _check_round_evaluations("cs", c.rewind_step, t)
    return cfg


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML table of a config text; invalid TOML is a one-line ``ConfigError`` naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}") from None


def read_config_file(path: str | Path) -> str:
    """The text of a config file; a missing or unreadable file is a one-line ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file '{path}' ({type(e).__name__})") from None


# The command that runs a config of each kind (a search's config has none): a file given to another
# command is refused with it.
_RUN_WITH: dict[str | None, str] = {
    None: 'is a search config (no kind = "imp" at its top): run it with `lotterysearch search`',
    RunKind.IMP: 'is an IMP config (kind = "imp"): run it with `lotterysearch imp`',
    RunKind.CS: 'is a CS config (kind = "cs"): run it with `lotterysearch cs`',
}


def _run_table(text: str, source: str, kind: RunKind | None) -> dict[str, Any]:
    """The TOML table of a config meant for a run of ``kind`` (None: a search). A config of another kind
    that ``lotterysearch`` runs is a one-line ``ConfigError`` naming the command that runs it."""
    table = parse_toml(text, source)
    found = table.get("kind")
    if found != kind:
        hint = next((h for k, h in _RUN_WITH.items() if k == found), None)  # a TOML value may be unhashable
        if hint is not None:
            raise ConfigError(f"{source} {hint}")
    return table


def parse_config(text: str, source: str = "<config>") -> SearchConfig:
    return validate(build_config(SearchConfig, _run_table(text, source, None), ""))


def load_config(path: str | Path) -> SearchConfig:
    return parse_config(read_config_file(path), str(path))


def parse_imp_config(text: str, source: str = "<config>") -> IMPConfig:
    """An IMP config from TOML text: it must say ``kind = "imp"`` (a file without it is a search's)."""
    return validate_imp(build_config(IMPConfig, _run_table(text, source, RunKind.IMP), ""))


def load_imp_config(path: str | Path) -> IMPConfig:
    return parse_imp_config(read_config_file(path), str(path))


def parse_cs_config(text: str, source: str = "<config>") -> CSConfig:
    """A Continuous Sparsification config from TOML text: it must say ``kind = "cs"``."""
    table = parse_toml(text, source)
    kind = table.get("kind")
    if kind != RunKind.CS:
        what = "a search config" if kind is None else f"a config of kind {kind!r}"
        raise ConfigError(f'{source} is {what}, not a CS config (kind = "cs" at its top)')
    return validate_cs(build_config(CSConfig, table, ""))


def load_cs_config(path: str | Path) -> CSConfig:
    return parse_cs_config(read_config_file(path), str(path))


def parse_run_config(
    text: str, kind: RunKind, source: str = "<config>"
) -> SearchConfig | IMPConfig | CSConfig:
    """A stored run's config by its kind: a search's, an IMP run's or a CS run's."""
    parse = {RunKind.SEARCH: parse_config, RunKind.IMP: parse_imp_config, RunKind.CS: parse_cs_config}[kind]
    return parse(text, source)


def config_kind(config_json: str) -> RunKind:
    """The kind of a stored run from its config JSON, the one place that reads it: ``RunKind.IMP``, or
    ``RunKind.SEARCH`` (a search's config has no kind). A kind this version does not know is a ``ConfigError``."""
    value = json.loads(config_json).get("kind", RunKind.SEARCH)
    try:
        return RunKind(value)
    except ValueError:
        known = ", ".join(RunKind)
        raise ConfigError(f"a run of kind {value!r}: this lotterysearch knows {known}; upgrade it") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists), the JSON form stored with a run."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def to_toml(cfg: SearchConfig | IMPConfig | CSConfig) -> str:
    """A TOML text that ``parse_config`` (``parse_imp_config``) reads back to ``cfg`` (stored with every run)."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, float) and not math.isfinite(v):  # TOML's spelling, which the loader then refuses
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return json.dumps(v)

    d = to_dict(cfg)
    top = [f"{k} = {scalar(v)}" for k, v in d.items() if not isinstance(v, dict)]
    sections = [
        f"\n[{k}]\n" + "\n".join(f"{kk} = {scalar(vv)}" for kk, vv in v.items())
        for k, v in d.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(sections) + "\n"


def _non_default(cfg: Any, default: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cfg):
        v, dv = getattr(cfg, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(v):
            sub = _non_default(v, dv)
            if sub:
                out[f.name] = sub
        elif v != dv:
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def config_hash(cfg: SearchConfig | IMPConfig | CSConfig) -> str:
    """sha256 of the non-default fields that define what a run computes (OpenLTH's run naming). An IMP
    config's kind is always hashed, so it never shares a name with a search."""
    fields = {k: v for k, v in _non_default(cfg, type(cfg)()).items() if k not in _PLACEMENT}
    if isinstance(cfg, IMPConfig | CSConfig):
        fields["kind"] = cfg.kind
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
