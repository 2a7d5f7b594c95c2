"""Continuous Sparsification as a durable run kind: the config and its one-line errors, rounds equal to the
pure search's (``continuous.continuous_sparsification``) with tickets trained as IMP trains its rounds, a
SIGKILLed CLI driver that resumes to the same tickets bit for bit, and confirm and front on its tickets.
Real store and training on the synthetic dataset with a 16-24-24-4 MLP and short rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TRAJECTORY_RUN, confirm_tickets, kill_and_resume, raises_exactly, tickets, toml_of

import lotterysearch as ls
from lotterysearch import api
from lotterysearch.cli import main
from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError
from lotterysearch.evolution import pareto
from lotterysearch.pruning import continuous
from lotterysearch.pruning.pruners import imp_round_from_init
from lotterysearch.readers import export
from lotterysearch.settings import RunKind, config_hash, parse_cs_config, parse_imp_config, to_toml
from lotterysearch.storage.store import Store

MODEL = TRAJECTORY_RUN["model"]
CS: dict = {
    "kind": "cs",
    **TRAJECTORY_RUN,
    "cs": {"init_seeds": [0, 1], "rounds": 3, "penalty": [1e-3]},
    "training": {"steps": 60, "lr": 0.01, "batch_size": 60, "eval_every": 30},
}


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here trains: one thread (``conftest.one_thread``)."""


def cs_toml(**overrides) -> str:
    """The test CS config as TOML; a dict merges into its section, anything else replaces (None drops)."""
    return toml_of(CS, **overrides)


def cs_config(**overrides):
    return api.check_run(parse_cs_config(cs_toml(**overrides), "<cs config>"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    """The test config run uninterrupted, in process: the reference a resumed run must equal."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ws = tmp_path_factory.mktemp("clean")
        with ls.cs(cs_config(), ws) as run:
            assert run.id == "t-001" and run.kind is RunKind.CS
        return ws, tickets(ws, "t-001")
    finally:
        torch.set_num_threads(threads)


# ---- config ---------------------------------------------------------------------------------------------
def test_config_round_trips_and_hashes_what_it_computes() -> None:
    cfg = cs_config()
    assert (cfg.kind, cfg.cs.init_seeds, cfg.cs.rounds, cfg.cs.penalty, cfg.cs.beta_final, cfg.cs.s_init) == (
        "cs",
        (0, 1),
        3,
        (1e-3,),
        200.0,
        0.0,
    )
    assert parse_cs_config(to_toml(cfg)) == cfg
    assert config_hash(cfg) != config_hash(cs_config(cs={"penalty": [2e-3]}))
    assert config_hash(cfg) == config_hash(cs_config(workspace="elsewhere"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cs": {"penalty": [-1e-6]}}, "field 'cs.penalty' must be a list of numbers >= 0 (λ), got [-1e-06]"),
        (
            {"cs": {"penalty": [1e-3, 2e-3]}},
            "field 'cs.penalty' must be one λ, or one per round (3), got [0.001, 0.002]",
        ),
        ({"cs": {"rounds": 0}}, "field 'cs.rounds' must be an integer >= 1, got 0"),
        ({"cs": {"beta_final": 0.5}}, "field 'cs.beta_final' must be a number >= 1 (β_T), got 0.5"),
        (
            {"cs": {"init_seeds": [1, 1]}},
            "field 'cs.init_seeds' must be a non-empty list of distinct integers"
            " (one trajectory each), got [1, 1]",
        ),
        (
            {"cs": {"rewind_step": 60}},
            "field 'cs.rewind_step' must be in [0, training.steps) = [0, 60): a rewind"
            " point before the last step, got 60",
        ),
        (
            {"cs": {"rate": 0.2}},
            "unknown field 'cs.rate' in section [cs] (allowed: init_seeds, rounds, penalty,"
            " beta_final, s_init, rewind_step, steps)",
        ),
        (
            {"kind": "imp"},
            "<cs config> is a config of kind 'imp', not a CS config (kind = \"cs\" at its top)",
        ),
    ],
)
def test_config_errors_are_one_line(overrides, message) -> None:
    with raises_exactly(ConfigError, message):
        cs_config(**overrides)


def test_the_other_commands_refuse_a_cs_config() -> None:
    with raises_exactly(ConfigError, 'cs.toml is a CS config (kind = "cs"): run it with `lotterysearch cs`'):
        parse_imp_config(cs_toml(), "cs.toml")


def test_cli_config_error_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    config = tmp_path / "cs.toml"
    config.write_text(cs_toml(cs={"penalty": [-1.0]}))
    assert main(["cs", str(config), "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert err == "lotterysearch: error: field 'cs.penalty' must be a list of numbers >= 0 (λ), got [-1.0]\n"
    assert not (tmp_path / "ws").exists()


# ---- the run ----------------------------------------------------------------------------------------------
def test_rounds_are_the_pure_search_with_tickets_trained_as_imp_rounds(clean) -> None:
    ws, reference = clean
    data = load_dataset("synthetic", 3)
    cfg = cs_config()
    rounds = reference["rounds"]
    assert [(t, r) for t, r, *_ in rounds] == [(s, r) for s in (0, 1) for r in range(4)]
    with ls.open_run(ws, "t-001") as run:
        inds = {i.id: i for i in run.individuals()}
        assert run.status == "finished" and len(run.imp_rounds()) == 8
        shapes = run.record.shapes
    for seed in (0, 1):
        model = build_model(MODEL, seed)
        search = continuous.continuous_sparsification(
            model, data, cfg.training, rounds=3, penalty=1e-3, seed=seed
        )
        mine = [rec for rec in rounds if rec[0] == seed]
        masks = [inds[rec[2]].mask for rec in mine]
        assert masks[0] == Mask.ones(model) and masks[1:] == list(search.masks)
        # the stored scores are those the next round's ticket was cut from, bit for bit
        last = continuous.scores_from_bytes(mine[2][4], shapes)
        assert continuous.hard_mask(last) == masks[3] and mine[3][4] is None
        # each ticket trained from θ₀ under the run's protocol, as an IMP round trains its mask
        for mask, rec in zip(masks, mine, strict=True):
            assert imp_round_from_init(model, mask, data, cfg.training, seed=seed).result.as_dict() == rec[3]
        assert [inds[rec[2]].origin for rec in mine] == [f"cs:seed={seed}:round={r}" for r in range(4)]
    assert 1.0 > masks[1].density() > masks[2].density() > masks[3].density() > 0


def test_a_killed_cli_driver_resumes_to_the_same_tickets(tmp_path, clean, capsys) -> None:
    _, reference = clean
    kill_and_resume("cs", tmp_path, cs_toml(), reference, capsys, total=8, kill_after=2)


def test_tickets_confirm_from_their_own_init_and_front_reads_them(clean, capsys) -> None:
    """A CS ticket's own-init confirmation under the run's protocol is its round's training (stored as it);
    the reinit control is another training; ``front`` lists the run's front over its tickets."""
    ws, reference = clean
    with Store.open(ws) as store:
        front = pareto.run_front(store, "t-001")
        assert export.run_training(store, "t-001") == cs_config().training  # what `export` retrains with
    confirm_tickets(ws, reference, 3)
    assert front and {i.id for i in front} <= {r[2] for r in reference["rounds"]}
    capsys.readouterr()
    assert main(["front", "t-001", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "8 CS rounds committed" in out and all(f" {i.origin} " in out for i in front)


def test_the_ledger_counts_each_round_search_and_the_frontier_only_the_searches(clean) -> None:
    """Each trajectory: its 3 searches of 60 steps (training.steps, no rewind) and its 4 tickets' trainings
    of 60, one after another; the two trajectories side by side. A ticket of round r took r searches."""
    from lotterysearch.readers import frontier

    workspace, _ = clean
    ls.confirm(workspace, "t-001", reinit_seeds=(), local=True)  # each ticket's own round: nothing trained
    with Store.open(workspace) as store:
        (run,) = store.runs()
        ledger = api.Run(store, run.id).ledger
        rounds = store.imp_rounds(run.id)
        found = frontier.run_tickets(store, run.id, [1.0])
    per_trajectory = 3 * 60 + 4 * 60
    assert (ledger.total_steps, ledger.critical_path_steps) == (2 * per_trajectory, per_trajectory)
    # every round keeps the seconds its job took (its ticket's training and the next mask's search)
    assert all(r.wall_time > 0 for r in rounds)
    assert ledger.wall_time == pytest.approx(sum(r.wall_time for r in rounds))
    round_of = {r.individual_id: r.round for r in rounds}
    assert found and all(
        t.total_steps == t.critical_path_steps == 60 * round_of[t.individual_id] for t in found
    )
