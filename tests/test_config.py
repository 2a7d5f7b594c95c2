"""Search configs: TOML to validated dataclasses, one-line errors naming the field, stable run hashes."""

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from lotterysearch.api import check_run, load_config, load_cs_config, load_imp_config
from lotterysearch.errors import ConfigError
from lotterysearch.settings import (
    FitnessConfig,
    SearchConfig,
    TrainingConfig,
    config_hash,
    parse_cs_config,
    parse_imp_config,
    to_toml,
)
from lotterysearch.settings import parse_config as parse_fields


def parse_config(text: str) -> SearchConfig:
    """A search config from TOML text, checked through as ``lotterysearch search`` checks it."""
    return check_run(parse_fields(text))


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.toml"))


@pytest.mark.parametrize(
    "path",
    [p for p in CONFIGS if "stability" not in p.name and "frontier" not in p.name],
    ids=lambda p: p.name,
)
def test_example_configs_load_and_round_trip(path: Path) -> None:
    if config_kind_of(path) == "imp":
        cfg = load_imp_config(path)
        assert parse_imp_config(to_toml(cfg)) == cfg
    elif config_kind_of(path) == "cs":
        cfg = load_cs_config(path)
        assert parse_cs_config(to_toml(cfg)) == cfg
    else:
        cfg = load_config(path)
        assert parse_config(to_toml(cfg)) == cfg


def config_kind_of(path: Path) -> str:
    return tomllib.loads(path.read_text()).get("kind", "search")


def test_defaults_and_overrides() -> None:
    cfg = parse_config('dataset = "synthetic"\nmodel = "mlp:16-8-4"\n[ga]\npopulation = 22\n')
    assert cfg.ga.population == 22 and cfg.ga.generations == SearchConfig().ga.generations
    assert cfg.seeding.compressions == (3.0, 10.0, 30.0, 100.0)  # ints in TOML become floats where declared


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'datset = "mnist1d"',
            r"^unknown field 'datset' in the top level \(allowed: name, dataset, model, mode, seed, ",
        ),
        (
            "[ga]\npopulaton = 3",
            r"^unknown field 'ga.populaton' in section \[ga\] \(allowed: population, generations, ",
        ),
        (
            'dataset = "cifar"',
            r"^field 'dataset' must be one of mnist1d, mnist, digits, synthetic, cifar10, tensors, got 'cifar'$",
        ),
        ('mode = "both"', r"^field 'mode' must be one of forward, gradient, straight_through, got 'both'$"),
        ('model = "mlp:40"', r"^field 'model': model spec 'mlp:40': need at least input and output widths"),
        ("[ga]\npopulation = 'many'", r"^field 'ga.population' must be an integer, got 'many'$"),
        ("[ga]\ncrossover_rate = 1.5", r"^field 'ga.crossover_rate' must be in \[0, 1\], got 1.5$"),
        (
            "[ga]\ncrossovers = ['uniform']",
            r"^field 'ga.crossovers' must be one of layer, layer_density, neuron, got 'uniform'$",
        ),
        (
            "[ga]\nmutations = ['flip']",
            r"^field 'ga.mutations' must be one of move, grow_prune, grow, prune, layer_density, neuron_grow, "
            r"neuron_prune, magnitude, magnitude_prune, adaptive_prune, drawn_prune, got 'flip'$",
        ),
        ("[fitness]\nmode = 'lucky'", r"^field 'fitness.mode' must be one of topology, ticket, got 'lucky'$"),
        ("[ga]\nstrength_min = 0", r"^field 'ga.strength_min' must be in \(0, 1\), got 0\.0$"),
        (
            "[ga]\nstrength_min = 0.3\nstrength_max = 0.2",
            r"^field 'ga.strength_max' must be in \[strength_min, 1\) = \[0\.3, 1\), got 0\.2$",
        ),
        (
            "[ga]\nstrength_tau = -1",
            r"^field 'ga.strength_tau' must be a number >= 0 \(0: 1/√n\), got -1\.0$",
        ),
        (
            "[ga]\nregrow = 0.5",
            r"^field 'ga.regrow': 0.5 regrows what the adaptive_prune and drawn_prune mutations drop; name one"
            r" of them in ga.mutations or set ga.regrow = 0$",
        ),
        (
            "[ga]\nmutations = ['adaptive_prune']\nregrow = 0.5",
            r"^field 'ga.regrow': regrowth by gradient needs fitness.mode = \"ticket\" \(a gradient is kept for"
            r" the positions of the parent's own θ₀, not relabelled onto an isomorph\)$",
        ),
        (
            "[ga]\ndensity_targets = [0.07, 1.5]",
            r"^field 'ga.density_targets' must be shares of the weights in \(0, 1\), got \[0\.07, 1\.5\]$",
        ),
        (
            "[ga]\ndensity_targets = [0.07]",
            r"^field 'ga.density_targets': only the adaptive_prune and drawn_prune mutations land on targets;"
            r" name one of them in ga.mutations or leave ga.density_targets empty$",
        ),
        (
            "[ga]\nmutations = ['adaptive_prune']\ndensity_targets = [0.07]\nregrow = 0.5",
            r"^field 'ga.density_targets': a regrown child leaves its target; set ga.regrow = 0 or leave"
            r" ga.density_targets empty$",
        ),
        (
            "[ga]\norder_seeds = true",
            r"^field 'ga.order_seeds': a child's own batch order needs fitness.mode = \"ticket\" \(one θ₀, the"
            r' order part of the key\) and ga.mode = "generational"$',
        ),
        (
            "[fitness]\nearly_bird_every = 5\nearly_bird_strength = 1",
            r"^field 'fitness\.early_bird_strength' must be a number in \(0, 1\), got 1\.0$",
        ),
        (
            "[fitness]\nmode = 'ticket'\ninit_seeds = [0, 1]\n[ga]\nalign = false",
            r"^field 'fitness.init_seeds' must be one init seed θ₀ in ticket mode \(a ticket is a mask of one "
            r"initialization\), got \[0, 1\]$",
        ),
        (
            "[fitness]\nmode = 'ticket'",
            r"^field 'ga.align' must be false in ticket mode \(aligning relabels hidden neurons, which gives a "
            r"mask other initial weights under θ₀\), got True$",
        ),
        (
            "[seeding]\npruner = 'imp'",
            r"^field 'seeding.pruner' must be one of synflow, snip, magnitude, random, got 'imp'$",
        ),
        (
            "[seeding]\ncompressions = [0.5]",
            r"^field 'seeding.compressions' must be a non-empty list of numbers >= 1",
        ),
        (
            "[fitness]\noptimizer = 'rmsprop'",
            r"^field 'fitness.optimizer' must be one of adam, sgd, got 'rmsprop'$",
        ),
        ("[fitness]\ninit_seeds = 3", r"^field 'fitness.init_seeds' must be a list of integers, got 3$"),
        # the section's own check (``TrainingConfig``), named as the file has it; the loader has made the
        # TOML integer a float by then
        ("[fitness]\nlr = -1", r"^field 'fitness\.lr' must be a number > 0, got -1\.0$"),
        ("[fitness]\nsteps = 0", r"^field 'fitness\.steps' must be an integer >= 1, got 0$"),
        ("[fitness]\nbatch_size = 0", r"^field 'fitness\.batch_size' must be an integer >= 1, got 0$"),
        ('evaluator = "gpu"', r"^field 'evaluator' must be one of ray, local, got 'gpu'$"),
        ("ga = 3", r"^field 'ga' must be a \[ga\] section$"),
        ("[ray]\ngpus_per_eval = -0.5", r"^field 'ray.gpus_per_eval' must be a number >= 0, got -0.5$"),
        (
            "[ga]\npopulation = 10",
            r"^field 'ga.population' must be at least 16 SynFlow seeds \+ 2 random controls, got 10$",
        ),
        ("name = [", r"^<config> is not valid TOML: "),
    ],
)
def test_bad_configs_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        parse_config(text)
    assert "\n" not in str(e.value)


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^config file '.*nope.toml' does not exist$"):
        load_config(tmp_path / "nope.toml")


def test_hash_names_what_is_computed_not_where() -> None:
    base = SearchConfig()
    assert config_hash(replace(base, workspace="elsewhere", data_dir="/data")) == config_hash(base)
    assert config_hash(replace(base, ray=replace(base.ray, address="10.0.0.1:6379"))) == config_hash(base)
    assert config_hash(replace(base, seed=1)) != config_hash(base)
    # only non-default fields enter the hash, so a new field with a default never renames old runs
    import hashlib

    assert config_hash(base) == config_hash(parse_config("")) == hashlib.sha256(b"{}").hexdigest()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"optimizer": "lbfgs"}, "field 'optimizer' must be one of adam, sgd, got 'lbfgs'"),
        ({"lr": -1.0}, "field 'lr' must be a number > 0, got -1.0"),
        ({"lr": 0}, "field 'lr' must be a number > 0, got 0"),
        ({"lr": True}, "field 'lr' must be a number > 0, got True"),
        ({"steps": -1}, "field 'steps' must be an integer >= 0, got -1"),
        ({"steps": 1.5}, "field 'steps' must be an integer >= 0, got 1.5"),
        ({"batch_size": 0}, "field 'batch_size' must be an integer >= 1, got 0"),
    ],
)
def test_training_config_checks_itself(fields: dict, message: str) -> None:
    """Every trainer takes its settings as a ``TrainingConfig``, so a bad value fails where it is made."""
    with pytest.raises(ConfigError) as e:
        TrainingConfig(**fields)
    assert str(e.value) == message


def test_fitness_config_is_a_training_config_that_needs_a_step() -> None:
    assert TrainingConfig(steps=0).steps == 0  # an untrained baseline is a valid training run
    with pytest.raises(ConfigError) as e:
        FitnessConfig(steps=0)
    assert str(e.value) == "field 'steps' must be an integer >= 1, got 0"
    f = FitnessConfig(steps=40, lr=0.02, init_seeds=(1, 2), successive_halving=True)
    assert f.training() == TrainingConfig(steps=40, lr=0.02) and type(f.training()) is TrainingConfig
    short = f.with_steps(7)
    assert type(short) is FitnessConfig and short.steps == 7
    assert replace(short, steps=40) == f  # nothing else changed
    with pytest.raises(ConfigError, match=r"^field 'steps' must be an integer >= 1, got 0$"):
        f.with_steps(0)


def test_the_fitness_section_is_the_fitness_config() -> None:
    cfg = parse_config('mode = "gradient"\nevaluator = "local"\n[fitness]\nsteps = 30\nlr = 0.05\n')
    assert cfg.fitness == FitnessConfig(steps=30, lr=0.05) and cfg.mode == "gradient"
    assert cfg.evaluator == "local" and SearchConfig().evaluator == "ray"
    # where the fitness runs is placement, not identity
    assert config_hash(cfg) == config_hash(replace(cfg, evaluator="ray"))


def test_training_part_carries_every_training_field_by_name() -> None:
    """A ``FitnessConfig``'s training part has each ``TrainingConfig`` field's own value, whatever the order."""
    fitness = FitnessConfig(steps=7, optimizer="sgd", lr=0.5, batch_size=3, init_seeds=(4,), mode="ticket")
    assert fitness.training() == TrainingConfig(steps=7, optimizer="sgd", lr=0.5, batch_size=3)
    assert type(fitness.training()) is TrainingConfig


# ---- bounds --------------------------------------------------------------------------------------------
def test_every_float_is_finite_and_every_integer_fits_the_store() -> None:
    with pytest.raises(ConfigError, match=r"^field 'fitness.lr' must be a finite number, got inf$"):
        parse_config("[fitness]\nlr = inf\n")
    with pytest.raises(ConfigError, match=r"^field 'seeding.compressions' must be a finite number, got nan$"):
        parse_config("[seeding]\ncompressions = [3, nan]\n")
    with pytest.raises(ConfigError, match=r"^field 'seed' must be an integer in \[-2\^63, 2\^63 - 1\]"):
        parse_config(f"seed = {2**63}\n")
    with pytest.raises(ConfigError, match=r"^field 'seed' must be an integer in \[0, 2\^63 - 1\], got -1$"):
        parse_config("seed = -1\n")
    with pytest.raises(ConfigError, match=r"^field 'lr' must be a finite number, got inf$"):
        TrainingConfig(lr=float("inf"))


def test_a_limit_names_itself_and_how_to_raise_it(monkeypatch) -> None:
    from lotterysearch.settings import LIMITS

    text = "[ga]\npopulation = 100001\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    assert str(e.value) == (
        "field 'ga.population' must be at most 100000 (the limit on a population), got 100001; to go higher,"
        " set LOTTERYSEARCH_MAX_POPULATION=100001"
    )
    monkeypatch.setenv(LIMITS["population"].env, "100001")
    assert parse_config(text).ga.population == 100001
    monkeypatch.setenv(LIMITS["population"].env, "0")
    with pytest.raises(
        ConfigError, match=r"^\$LOTTERYSEARCH_MAX_POPULATION must be a positive integer, got '0'$"
    ):
        parse_config(text)


def test_the_parameter_count_is_counted_from_the_spec_without_building_it() -> None:
    from lotterysearch.core.models import build_model, parameter_count, prunable_layers

    for spec in ("mlp:40-100-100-10", "conv2:32x32x3", "cnn1d:40:25k5-25-25:10", "conv:28x28x1:8-M-16:32-10"):
        model = build_model(spec, 0)
        assert parameter_count(spec) == sum(p.numel() for p in model.parameters())
        assert parameter_count(spec, biases=False) == sum(
            w.weight.numel() for w in prunable_layers(model).values()
        )
    # 40·10^8 + 10^8 + 10^8·10 + 10 = 5 100 000 010, refused before a byte is allocated
    assert parameter_count("mlp:40-100000000-10") == 5_100_000_010
    with pytest.raises(Exception, match=r"^model spec 'mlp:40-100000000-10' must be at most 100000000 "):
        build_model("mlp:40-100000000-10", 0)


def test_a_config_made_in_python_is_checked_before_its_run_is_recorded(tmp_path) -> None:
    """``create_run`` with a dataclass skips the loader: it is validated and read back from its TOML first,
    so no run is recorded for a config that could not be opened again."""
    import lotterysearch as ls

    cfg = replace(
        parse_config('dataset = "synthetic"\nmodel = "mlp:16-8-4"\nevaluator = "local"\n'),
        fitness=FitnessConfig(steps=5),
    )
    bad = replace(cfg, seeding=replace(cfg.seeding, compressions=(3.0, float("inf"))))
    with pytest.raises(ConfigError, match=r"^field 'seeding.compressions' must be a finite number, got inf$"):
        ls.create_run(bad, tmp_path / "ws", local=True)
    assert not (tmp_path / "ws").exists()
