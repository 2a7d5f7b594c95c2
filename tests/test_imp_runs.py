"""IMP as a durable run kind: the config and its one-line errors, a trajectory equal to ``pruning.imp``'s,
ids and origins, statuses and the driver lock, a SIGKILLed CLI driver that resumes to the same tickets bit
for bit, and Ray tasks that give the numbers of in-process rounds. Real store, training and Ray on the
synthetic dataset with a 16-24-24-4 MLP and short rounds."""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

import pytest
from helpers import (
    TRAJECTORY_RUN,
    confirm_tickets,
    kill_and_resume,
    raises_exactly,
    tickets,
    tiny_config,
    toml_of,
)

import lotterysearch as ls
from lotterysearch import api
from lotterysearch.cli import main
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError, StoreError
from lotterysearch.evolution import pareto
from lotterysearch.execution.cluster import RayJobs
from lotterysearch.pruning.pruners import imp, imp_plan
from lotterysearch.runs.imp import IMPRoundReport, round_plan
from lotterysearch.settings import (
    IMPConfig,
    SearchConfig,
    config_hash,
    load_config,
    load_imp_config,
    parse_config,
    parse_imp_config,
    to_toml,
)
from lotterysearch.storage.store import Store
from lotterysearch.training.fitness import batch_seed
from lotterysearch.training.trainer import TrainResult

MODEL = TRAJECTORY_RUN["model"]
IMP: dict = {
    "kind": "imp",
    **TRAJECTORY_RUN,
    "imp": {"init_seeds": [0, 1], "rounds": 5},
    "training": {"steps": 100, "lr": 0.01, "batch_size": 60, "eval_every": 50},
}


def imp_toml(**overrides) -> str:
    """The test IMP config as TOML; a dict merges into its section, anything else replaces (None drops)."""
    return toml_of(IMP, **overrides)


def imp_config(**overrides) -> IMPConfig:
    """An IMP config checked as a run checks it (``api.check_run``: the schedule needs the model)."""
    return api.check_run(parse_imp_config(imp_toml(**overrides), "<imp config>"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    """The test config run uninterrupted, in process: the reference every resumed run must equal."""
    ws = tmp_path_factory.mktemp("clean")
    with ls.imp(imp_config(), ws) as run:
        assert run.id == "t-001"
    return ws, tickets(ws, "t-001")


# ---- config ---------------------------------------------------------------------------------------------


def test_config_round_trips_and_hashes_what_it_computes() -> None:
    cfg = imp_config()
    assert (cfg.kind, cfg.imp.init_seeds, cfg.imp.rounds, cfg.imp.rate, cfg.imp.output_rate) == (
        "imp",
        (0, 1),
        5,
        0.2,
        0.1,
    )
    assert cfg.training.eval_every == 50 and cfg.imp.scope == "layerwise" and cfg.imp.rewind_step == 0
    assert parse_imp_config(to_toml(cfg)) == cfg
    placed = imp_config(workspace="elsewhere", evaluator="ray", data_dir="/data", ray={"address": "h:1"})
    assert config_hash(placed) == config_hash(cfg)  # where it runs is not what it computes
    assert config_hash(imp_config(imp={"rate": 0.3})) != config_hash(cfg)
    assert config_hash(IMPConfig()) != config_hash(SearchConfig())  # kind is always part of the name


# Bad IMP configs (overrides of IMP) and their one-line errors, the same from the API and the CLI.
BAD_CONFIGS: list[tuple[dict, str]] = [
    # layerwise at 0.9: fc1 384 → 38 → 4 → 0 and fc3 96 → 10 → 1 → 0, both empty after round 3
    (
        {"imp": {"rounds": 3, "rate": 0.9, "output_rate": 0.9}},
        "[imp] rounds = 3 would keep no weight of layer 'fc1' (none left after round 3)",
    ),
    # global at 0.9: 1056 → 106 → 11 → 1 → 0
    (
        {"imp": {"rounds": 4, "rate": 0.9, "scope": "global"}},
        "[imp] rounds = 4 would keep no weight of the 1056 (none left after round 4)",
    ),
    (
        {"imp": {"rewind_step": 100}},
        "field 'imp.rewind_step' must be in [0, training.steps) = [0, 100): a rewind point before the last"
        " step, got 100",
    ),
    (
        {"training": {"eval_every": 200}},
        "field 'training.eval_every' must be at most steps (100): one evaluation or more, got 200",
    ),
    (
        {"imp": {"rewind_step": 60}},
        "field 'training.eval_every' must be at most training.steps - imp.rewind_step (40): the steps of"
        " a round, got 50",
    ),
    (
        {"imp": {"init_seeds": [1, 1]}},
        "field 'imp.init_seeds' must be a non-empty list of distinct integers (one trajectory each), got"
        " [1, 1]",
    ),
    (
        {"imp": {"scope": "per-neuron"}},
        "field 'imp.scope' must be one of global, layerwise, got 'per-neuron'",
    ),
    ({"imp": {"rate": 1.0}}, "field 'imp.rate' must be in (0, 1), got 1.0"),
    ({"kind": "search"}, "field 'kind' must be \"imp\" in an IMP config, got 'search'"),
    (
        {"imp": {"epochs": 3}},
        "unknown field 'imp.epochs' in section [imp] (allowed: init_seeds, rounds, rate,"
        " output_rate, scope, rewind_step, conv_rate, batch_order)",
    ),
    ({"imp": {"conv_rate": 1.0}}, "field 'imp.conv_rate' must be in [0, 1) (0: imp.rate), got 1.0"),
    (
        {"imp": {"batch_order": -1}},
        "field 'imp.batch_order' must be an integer >= 0 (0: the init seed's order), got -1",
    ),
    (
        {"imp": {"conv_rate": 0.1}},
        f"field 'imp.conv_rate' applies to convolutions; model '{MODEL}' has none",
    ),
    (
        {"imp": {"rewind_step": 150}},
        "field 'imp.rewind_step' must be in [0, training.steps) = [0, 100): a rewind point before the last"
        " step, got 150",
    ),
    (
        {"training": {"eval_every": 101}},
        "field 'training.eval_every' must be at most steps (100): one evaluation or more, got 101",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIGS)
def test_config_errors_are_one_line_naming_the_field(overrides, message) -> None:
    with raises_exactly(ConfigError, message):
        imp_config(**overrides)


def test_a_kind_tells_an_imp_config_from_a_search_config() -> None:
    search = 's.toml is a search config (no kind = "imp" at its top): run it with `lotterysearch search`'
    with raises_exactly(ConfigError, search):
        parse_imp_config('name = "x"\n', "s.toml")
    with raises_exactly(
        ConfigError, 'i.toml is an IMP config (kind = "imp"): run it with `lotterysearch imp`'
    ):
        parse_config(imp_toml(), "i.toml")


def test_the_lenet_configs_are_frankle_and_carbins_setup() -> None:
    root = Path(__file__).resolve().parents[1] / "experiments" / "configs"
    full, small = load_imp_config(root / "lenet_imp.toml"), load_imp_config(root / "lenet_imp_small.toml")
    for cfg in (full, small):
        assert (cfg.dataset, cfg.model) == ("mnist", "mlp:784-300-100-10:glorot")
        t, i = cfg.training, cfg.imp
        assert (t.optimizer, t.lr, t.batch_size, t.eval_every) == ("adam", 1.2e-3, 60, 100)
        assert (i.rate, i.output_rate, i.rounds, i.scope, i.rewind_step) == (0.2, 0.1, 18, "layerwise", 0)
    assert full.training.steps == 50_000 and full.imp.init_seeds == (0, 1, 2, 3, 4)
    assert len(small.imp.init_seeds) == 3 and 3000 <= small.training.steps <= 5000
    # density after round k ≈ 0.8^k (the output layer at 0.9^k): Frankle & Carbin's points
    plan = round_plan(full)
    density = {k: sum(plan[k - 1].values()) / 266_200 for k in (3, 7, 12, 15, 18)}
    assert {k: round(100 * d, 1) for k, d in density.items()} == {3: 51.3, 7: 21.1, 12: 7.0, 15: 3.6, 18: 1.9}


# ---- the trajectory -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rewind_step", "batch_order"), [(0, 0), (30, 0), (0, 1)])
def test_a_trajectory_is_pruning_imps(tmp_path, synthetic_3, rewind_step, batch_order) -> None:
    """One seed, global scope (where a fixed number of rounds and imp's landing on a target agree): every
    round's mask and trained accuracy are those of ``pruning.imp``, rewinding included; another batch order
    is ``pruning.imp`` with the same θ₀ and the minibatches of ``batch_seed``."""
    cfg = imp_config(
        imp={
            "init_seeds": [2],
            "rounds": 3,
            "scope": "global",
            "rewind_step": rewind_step,
            "batch_order": batch_order,
        }
    )
    with ls.imp(cfg, tmp_path) as run:
        rounds = run.imp_rounds()
        individuals = run.individuals()
    model = build_model(MODEL, 2)
    plan = round_plan(cfg)
    assert plan == [845, 676, 541]  # 1056 · 0.8 per round, rounded each time
    assert imp_plan(model, 1056 / 541, scope="global") == plan
    ref = imp(
        model,
        1056 / 541,
        synthetic_3,
        training=cfg.training,
        scope="global",
        rewind_step=rewind_step,
        seed=batch_seed(2, batch_order),
    )
    masks = [Mask.ones(model), *(h.mask for h in ref.history)]
    if batch_order:  # the same θ₀ under another order of minibatches prunes to another mask
        with ls.imp(
            dataclasses.replace(cfg, imp=dataclasses.replace(cfg.imp, batch_order=0)), tmp_path
        ) as run0:
            assert [i.mask for i in run0.individuals()][1:] != masks[1:]
    assert [i.mask for i in individuals] == masks
    assert [Mask.unpack(r.pruned, masks[0].shapes) for r in rounds[:-1]] == masks[1:] and rounds[
        -1
    ].pruned is None
    for r, h in zip(rounds, ref.history, strict=False):
        assert TrainResult.from_dict(r.result).val_accuracy == h.trained_accuracy
    assert [i.mask.kept() for i in individuals] == [1056, *plan]
    assert all(r.result["steps"] == 100 - rewind_step for r in rounds)


@pytest.fixture(scope="module")
def synthetic_3():
    from lotterysearch.core.data import load_dataset

    return load_dataset("synthetic", 3)


def test_tickets_ids_origins_and_accuracies(clean) -> None:
    ws, _ = clean
    with ls.open_run(ws, "t-001") as run:
        assert (run.kind, run.status, run.history(), run.generation) == ("imp", "finished", [], -1)
        inds, rounds = run.individuals(), run.imp_rounds()
        front = run.front()
    assert len(inds) == len(rounds) == 2 * 6
    by_id = {i.id: i for i in inds}
    for rec in rounds:
        t = [0, 1].index(rec.trajectory)
        ind = by_id[rec.individual_id]
        assert ind.id == rec.round * 2 + t and ind.generation == rec.round
        assert ind.origin == f"imp:seed={rec.trajectory}:round={rec.round}"
        assert ind.parents == (((rec.round - 1) * 2 + t),) if rec.round else ind.parents == ()
        result = TrainResult.from_dict(rec.result)
        assert ind.accuracy == result.early_stop.val_accuracy  # eval_every > 0: the early-stop accuracy
        assert result.early_stop.test_accuracy is not None and len(result.curve) == 2
        assert ind.evaluated and ind.fidelity == 1.0
    # each pruned mask is the next round's, nested; round 5 prunes nothing
    for a, b in zip(rounds, rounds[1:], strict=False):
        if a.trajectory == b.trajectory:
            assert Mask.unpack(a.pruned, by_id[a.individual_id].mask.shapes) == by_id[b.individual_id].mask
    assert [r.pruned is None for r in rounds].count(True) == 2
    assert [i.mask.kept() for i in inds[::2]] == [1056, *(sum(k.values()) for k in round_plan(imp_config()))]
    assert front == pareto.front(inds) and front


def test_without_eval_every_a_ticket_has_its_final_accuracy(tmp_path) -> None:
    cfg = imp_config(imp={"init_seeds": [0], "rounds": 1}, training={"steps": 20, "eval_every": 0})
    reports: list[IMPRoundReport] = []
    with ls.imp(cfg, tmp_path, progress=reports.append) as run:
        inds, rounds = run.individuals(), run.imp_rounds()
    for ind, rec in zip(inds, rounds, strict=True):
        assert rec.result["early_stop"] is None and ind.accuracy == rec.result["val_accuracy"]
    assert [(r.seed, r.round, r.individual_id) for r in reports] == [(0, 0, 0), (0, 1, 1)]
    line = reports[1].line()
    assert line.startswith("seed   0  round  1/1  density 0.8087  last step      20  val acc ")
    assert f"test acc {rounds[1].result['test_accuracy']:.4f}" in line


def test_statuses_the_driver_lock_and_resume_after_an_exception(tmp_path, clean) -> None:
    """A listener's KeyboardInterrupt leaves the run ``interrupted``, another exception ``failed``; both
    resume to the uninterrupted run's tickets. A second driver of a driven run is refused."""
    _, reference = clean
    for error, status in ((KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")):
        ws = tmp_path / status
        seen = []

        def stop_after_three(report: IMPRoundReport, seen=seen, error=error) -> None:
            seen.append(report)
            if len(seen) == 3:
                raise error

        run = api.create_imp_run(imp_config(), ws)
        with run, pytest.raises(error):
            run.optimize(progress=stop_after_three)
        with Store.open(ws) as store:
            assert store.run("t-001").status == status and len(store.imp_rounds("t-001")) == 3
        with ls.open_run(ws, "t-001") as again:
            with again.store.driving("t-001"), pytest.raises(StoreError) as e:
                again.optimize()
            assert str(e.value) == (
                f"run 't-001' is being driven by pid {os.getpid()} on {platform.node()}; stop that process or"
                " wait for it to end"
            )
            with pytest.raises(
                ConfigError, match="^run 't-001' is an IMP run: it has rounds, not generations$"
            ):
                again.optimize(2)
            again.resume()
            with pytest.raises(StoreError, match="^run 't-001' has already finished; nothing to resume$"):
                again.resume()
        assert tickets(ws, "t-001") == reference


def test_a_killed_cli_driver_resumes_to_the_same_tickets(tmp_path, clean, capsys) -> None:
    _, reference = clean
    kill_and_resume("imp", tmp_path, imp_toml(), reference, capsys, total=12, kill_after=3)


def test_rounds_as_ray_tasks_give_the_in_process_numbers(ray_local, tmp_path) -> None:
    small = {"imp": {"rounds": 2}, "training": {"steps": 40, "eval_every": 20}}
    with ls.imp(imp_config(**small), tmp_path / "local") as run:
        assert run.status == "finished"
    with api.create_imp_run(imp_config(evaluator="ray", **small), tmp_path / "ray") as run:
        assert isinstance(run._imp_jobs, RayJobs)  # connected before the run was written
        run.optimize()
        assert run.status == "finished"
    assert tickets(tmp_path / "ray", "t-001") == tickets(tmp_path / "local", "t-001")


def test_cli_prints_a_line_per_round_and_the_tickets_table(tmp_path, capsys) -> None:
    config = tmp_path / "imp.toml"
    config.write_text(
        imp_toml(imp={"init_seeds": [4], "rounds": 2}, training={"steps": 20, "eval_every": 10})
    )
    ws = tmp_path / "ws"
    assert main(["imp", str(config), "--workspace", str(ws)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"run t-001 in {ws}: IMP of {MODEL} on synthetic, 1 trajectories (init seeds 4), 2 rounds pruning 0.2"
        " per round (layerwise), 20 steps per round"
    )
    assert [line[:44] for line in lines[1:4]] == [
        "seed   4  round  0/2  density 1.0000  early ",
        "seed   4  round  1/2  density 0.8087  early ",
        "seed   4  round  2/2  density 0.6553  early ",
    ]
    with Store.open(ws) as store:
        rounds = store.imp_rounds("t-001")
        front_ids = {i.id for i in pareto.front(store.individuals("t-001"))}
    for line, rec in zip(lines[1:4], rounds, strict=True):
        es = rec.result["early_stop"]
        assert (
            f"early stop {es['step']:>6}  val acc {es['val_accuracy']:.4f}  test acc {es['test_accuracy']:.4f}"
            in line
        )
    assert (
        lines[4]
        == f"run t-001 (finished): 3 IMP tickets, {len(front_ids)} on the Pareto front (accuracies at the early-stopping iteration)"
    )
    assert (
        lines[5].split()
        == "id seed round density effective_density early_stop val_accuracy test_accuracy is_pareto".split()
    )
    assert [row.split()[0] for row in lines[7:10]] == ["0", "1", "2"]
    assert [row.split()[-1] == "yes" for row in lines[7:10]] == [i in front_ids for i in range(3)]
    assert (
        lines[-1]
        == f"front: lotterysearch front t-001 --workspace {ws} [--plot front.png] [--html front.html]"
    )


def one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lotterysearch: error: "), err
    return lines[0].removeprefix("lotterysearch: error: ")


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, clean) -> None:
    ws = tmp_path / "ws"
    # the model that does not fit the data is found when the data is known, after the config's own checks
    mismatch = (
        {"model": "mlp:30-12-4"},
        "field 'model': mlp:30-12-4 takes 30 inputs, dataset synthetic has 16",
    )
    for overrides, message in [*BAD_CONFIGS, mismatch]:
        (tmp_path / "bad.toml").write_text(imp_toml(**overrides))
        assert one_line_error(capsys, "imp", str(tmp_path / "bad.toml"), "--workspace", str(ws)) == message
    assert one_line_error(capsys, "imp") == "imp needs a CONFIG file (or --resume RUN)"
    (tmp_path / "ok.toml").write_text(imp_toml(evaluator="ray"))
    msg = one_line_error(
        capsys, "imp", str(tmp_path / "ok.toml"), "--workspace", str(ws), "--address", "127.0.0.1:9"
    )
    assert "127.0.0.1:9" in msg
    assert not ws.exists()  # nothing was written for any of them

    clean_ws, _ = clean
    changed = tmp_path / "changed.toml"
    changed.write_text(imp_toml(imp={"rounds": 4}))
    with Store.open(clean_ws) as store:
        stored = store.run("t-001").config_hash
        before = store.run("t-001")
    new_hash = config_hash(load_imp_config(changed))
    assert one_line_error(capsys, "imp", "--resume", "t-001", str(changed), "--workspace", str(clean_ws)) == (
        f"run 't-001': the config changed ({changed} hashes to {new_hash[:12]}, the run to {stored[:12]});"
        " resume without it, or start a new run"
    )
    same = tmp_path / "same.toml"
    same.write_text(imp_toml(workspace="moved"))  # placement only: the same config
    assert one_line_error(capsys, "imp", "--resume", "t-001", str(same), "--workspace", str(clean_ws)) == (
        "run 't-001' has already finished; nothing to resume"
    )
    with Store.open(clean_ws) as store:
        assert store.run("t-001") == before  # the refused resumes wrote nothing

    assert one_line_error(capsys, "search", "--resume", "t-001", "--workspace", str(clean_ws)) == (
        "run 't-001' is an IMP run, not a search; resume it with: lotterysearch imp --resume t-001"
    )
    search_ws = tmp_path / "search"
    with api.create_run(tiny_config(), search_ws, local=True) as search:
        assert (search.kind, search.imp_rounds()) == ("search", [])
    assert one_line_error(capsys, "imp", "--resume", "tiny-001", "--workspace", str(search_ws)) == (
        "run 'tiny-001' is a search, not an IMP run; resume it with: lotterysearch search --resume tiny-001"
    )


def test_search_refuses_an_imp_config(tmp_path, capsys) -> None:
    (tmp_path / "imp.toml").write_text(imp_toml())
    assert one_line_error(
        capsys, "search", str(tmp_path / "imp.toml"), "--workspace", str(tmp_path / "w")
    ) == (f'{tmp_path / "imp.toml"} is an IMP config (kind = "imp"): run it with `lotterysearch imp`')
    with pytest.raises(ConfigError):
        load_config(tmp_path / "imp.toml")
    assert not (tmp_path / "w").exists()


# ---- convnets -------------------------------------------------------------------------------------------
# conv1 [4, 1, 3, 3] (36), a 2x2 pool, fc1 [6, 64] after the flatten (384), fc2 [10, 6] (60): 480 weights
CONV = {
    "dataset": "digits",
    "model": "conv:8x8x1:4-M:6-10",
    "imp": {"rounds": 5},
    "training": {"steps": 40, "eval_every": 20},
}


@pytest.fixture(scope="module")
def clean_conv(tmp_path_factory) -> tuple[Path, dict]:
    ws = tmp_path_factory.mktemp("clean_conv")
    with ls.imp(imp_config(**CONV), ws) as run:
        assert run.status == "finished"
    return ws, tickets(ws, "t-001")


def test_a_convnets_output_layer_is_its_last_fully_connected_layer() -> None:
    """Layerwise: 20% of each convolution's and hidden layer's remaining weights per round, 10% of fc2's
    (Python's round: 36·0.2 = 7.2 → 7, 384·0.2 = 76.8 → 77, 60·0.1 = 6)."""
    assert round_plan(imp_config(**CONV))[:3] == [
        {"conv1": 29, "fc1": 307, "fc2": 54},
        {"conv1": 23, "fc1": 246, "fc2": 49},
        {"conv1": 18, "fc1": 197, "fc2": 44},
    ]


def test_convolutions_take_their_own_rate_as_frankle_and_carbin_prune_conv_nets() -> None:
    """conv_rate 0.1 (Conv-2/4/6's 10% per round): conv1 36 → 32 → 29 → 26 (3.6 → 4, 3.2 → 3, 2.9 → 3);
    the fully connected layers as before; a global schedule has one rate, so conv_rate leaves it alone."""
    cfg = imp_config(**{**CONV, "imp": {"rounds": 5, "conv_rate": 0.1}})
    assert round_plan(cfg)[:3] == [
        {"conv1": 32, "fc1": 307, "fc2": 54},
        {"conv1": 29, "fc1": 246, "fc2": 49},
        {"conv1": 26, "fc1": 197, "fc2": 44},
    ]
    assert config_hash(cfg) != config_hash(imp_config(**CONV))
    global_ = {"rounds": 5, "scope": "global"}
    plain = imp_config(**{**CONV, "imp": global_})
    assert round_plan(imp_config(**{**CONV, "imp": {**global_, "conv_rate": 0.1}})) == round_plan(plain)


def test_a_killed_conv_imp_run_resumes_to_the_same_tickets(tmp_path, clean_conv, capsys) -> None:
    ws, reference = clean_conv
    with ls.open_run(ws, "t-001") as run:
        masks = [i.mask for i in run.individuals()]
    assert [m.kept() for m in masks[::2]] == [480, 390, 318, 259, 212, 173]
    assert all(m["conv1"].shape == (4, 1, 3, 3) for m in masks)
    kill_and_resume("imp", tmp_path, imp_toml(**CONV), reference, capsys, total=12, kill_after=3)


def test_conv_tickets_confirm_from_their_own_init_and_a_reinit(clean_conv) -> None:
    """Confirming a conv ticket from its own init repeats its round bit for bit (so the round's numbers are
    stored as that confirmation); the reinit control is another training."""
    ws, reference = clean_conv
    summaries, done = confirm_tickets(ws, reference, 5)
    assert sorted(done) == sorted((i, init) for i in summaries for init in ("own", "reinit"))
    for _, _, individual_id, result, _ in (r for r in reference["rounds"] if r[1] == 5):
        assert done[(individual_id, "reinit")].seed == 1000
        assert summaries[individual_id].own.accuracies == (result["early_stop"]["test_accuracy"],)


def test_conv_cli_errors_are_one_line(tmp_path, capsys) -> None:
    ws = tmp_path / "ws"
    cases = [
        (
            {**CONV, "dataset": "synthetic"},
            "field 'model': conv:8x8x1:4-M:6-10 takes 8x8x1 inputs, dataset synthetic has 16 plain features",
        ),
        (
            {**CONV, "imp": {"rounds": 2, "rate": 0.9, "output_rate": 0.9}},  # conv1: 36 → 4 → 0
            "[imp] rounds = 2 would keep no weight of layer 'conv1' (none left after round 2)",
        ),
        (
            {**CONV, "model": "conv:8x8x1:4-M-M:10"},
            "field 'model': model spec 'conv:8x8x1:4-M-M:10': 'M' (max-pool) must follow a convolution",
        ),
    ]
    for overrides, message in cases:
        (tmp_path / "bad.toml").write_text(imp_toml(**overrides))
        assert one_line_error(capsys, "imp", str(tmp_path / "bad.toml"), "--workspace", str(ws)) == message
    assert not ws.exists()
