"""Confirmation end to end on the synthetic dataset: a tiny search's masks (and a tiny IMP run's tickets)
retrained under a short full protocol from their own init and from fresh ones, in process and on Ray,
committed as they finish, resumed after SIGKILL to the same numbers, and shown by ``front`` and the API.

The searched workspace is made once per module and copied into each test that writes confirmations.
Runtime about a minute of CPU, two minutes of wall time on two shared cores (a local Ray started).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import time
from pathlib import Path

import pytest
import torch
from helpers import sigkill, start_driver, tiny_config

import lotterysearch as ls
from lotterysearch import api
from lotterysearch.cli import main
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.errors import ConfigError
from lotterysearch.evolution import pareto
from lotterysearch.execution.jobs import on_one_thread
from lotterysearch.readers import report
from lotterysearch.runs import confirmation
from lotterysearch.runs.confirmation import Init, Protocol, RunInits, matches_origin, own_init
from lotterysearch.settings import (
    RunKind,
    TrainingConfig,
    parse_imp_config,
)
from lotterysearch.storage.store import Individual, Store
from lotterysearch.training.trainer import train

PROTOCOL = TrainingConfig(steps=60, eval_every=10)
PROTOCOL_TOML = "[training]\nsteps = 60\neval_every = 10\n"


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, str]:
    """A finished tiny search (2 generations, in process): its workspace and run id."""
    ws = tmp_path_factory.mktemp("searched") / "ws"
    with api.search(tiny_config(evaluator="local", ga={"generations": 1}), ws) as run:
        run_id = run.id
    return ws, run_id


def copy_of(searched: tuple[Path, str], tmp_path: Path, name: str = "ws") -> Path:
    shutil.copytree(searched[0], tmp_path / name)
    return tmp_path / name


def stored(ws: Path, run_id: str) -> dict[tuple[int, str, int, str], dict]:
    with Store.open(ws) as store:
        return {(r.individual_id, r.init, r.seed, r.protocol): r.result for r in store.confirmations(run_id)}


def one_thread_train(spec: str, seed: int, mask: Mask, data, training: TrainingConfig) -> dict:
    """What a confirmation job must store: ``training.train`` from ``seed`` on one thread, with test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model(spec, seed)
        return train(model, mask, data, training, mode="forward", seed=seed, evaluate_test=True).as_dict()
    finally:
        torch.set_num_threads(before)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- the protocol -------------------------------------------------------------------------------------
def test_protocol_key_names_training_model_and_mode() -> None:
    key = Protocol(PROTOCOL, "mlp:16-24-24-4").key
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert Protocol(TrainingConfig(steps=60, eval_every=10), "mlp:16-24-24-4", "forward").key == key
    others = [
        Protocol(PROTOCOL.with_steps(70), "mlp:16-24-24-4"),
        Protocol(TrainingConfig(steps=60, eval_every=10, lr=0.02), "mlp:16-24-24-4"),
        Protocol(PROTOCOL, "mlp:16-24-24-4:glorot"),
        Protocol(PROTOCOL, "mlp:16-24-24-4", "gradient"),
    ]
    assert len({key, *(p.key for p in others)}) == 5
    with pytest.raises(ConfigError) as e:
        Protocol(TrainingConfig(steps=60), "mlp:16-24-24-4")
    assert str(e.value) == (
        "field 'eval_every' must be an integer >= 1 to confirm (the early-stopping iteration needs evaluations"
        " during training), got 0"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\n[ga]\npopulation = 4\n', "protocol file '{path}' has no [training] table"),
        (
            "[training]\nsteps = 60\nlr = -1\neval_every = 10\n",
            "field 'training.lr' must be a number > 0, got -1.0",
        ),
        (
            "[training]\nsteps = 60\nepochs = 3\n",
            "unknown field 'training.epochs' in section [training] (allowed: steps, optimizer, lr, batch_size,"
            " eval_every, fused)",
        ),
        (
            "[training]\nsteps = 60\n",
            "field 'training.eval_every' must be an integer >= 1 to confirm (the early-stopping iteration needs"
            " evaluations during training), got 0",
        ),
        (
            "[training]\nsteps = 60\neval_every = 70\n",
            "field 'training.eval_every' must be at most steps (60): one evaluation or more, got 70",
        ),
    ],
)
def test_protocol_file_errors(tmp_path, text, message) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        confirmation.load_protocol(path)
    assert str(e.value) == message.format(path=path)


def test_protocol_file_reads_the_training_table_of_a_run_config(tmp_path) -> None:
    path = tmp_path / "imp.toml"
    path.write_text('kind = "imp"\nmodel = "mlp:784-300-100-10"\n[imp]\nrounds = 3\n' + PROTOCOL_TOML)
    assert confirmation.load_protocol(path) == PROTOCOL


# ---- own inits and selection --------------------------------------------------------------------------
def _ind(i: int, origin: str) -> Individual:
    return Individual("r", i, 0, b"", (), "", origin, "k", 0.5, 0.5, 0.5, True)


def test_own_init_is_the_seed_the_mask_belongs_to() -> None:
    search = RunInits(RunKind.SEARCH, "mlp:4-4", "forward", "synthetic", 0, "", True, "", (0, 1, 7), 7)
    cases = {
        "synflow:seed=1:rho=10": 1,
        "snip:seed=2:rho=3": 2,
        "synflow:seed=0:rho=3+move": 0,  # a mutated copy of seed 0's mask
        "random:seed=1:rho=10": 7,  # a shuffled control: a topology, the fitness seed
        "child": 7,
    }
    for i, (origin, seed) in enumerate(cases.items()):
        assert own_init(_ind(i, origin), search) == Init("own", seed)
    imp = RunInits("imp", "mlp:4-4", "forward", "synthetic", 0, "", True, "", (5, 6), 5, PROTOCOL, 20, {3: 6})
    assert imp.kind is RunKind.IMP  # the stored string names the type
    assert own_init(_ind(3, "imp:seed=6:round=1"), imp) == Init("own", 6, 20, PROTOCOL)
    assert confirmation.reinit(1000, imp) == Init("reinit", 1000, 20)
    assert confirmation.reinit(1000, search) == Init("reinit", 1000)


def test_origin_patterns() -> None:
    assert matches_origin("synflow:seed=0:rho=3", "synflow")
    assert not matches_origin("synflow:seed=0:rho=3+move", "synflow")
    assert not matches_origin("random:seed=0:rho=3", "synflow")
    assert matches_origin("child", "child")
    assert matches_origin("synflow:seed=0:rho=3+move", "synflow:seed=0:*")
    assert not matches_origin("synflow:seed=1:rho=3", "synflow:seed=0:*")


# ---- confirming a search --------------------------------------------------------------------------------
JOB_LINE = re.compile(
    r"^individual (\d+) (own|reinit) seed (\d+): early stop at iteration (\d+), test accuracy (\d\.\d{4})$"
)


def test_confirm_the_synflow_seeds_prints_each_job_and_the_table(searched, capsys, tmp_path) -> None:
    ws = copy_of(searched, tmp_path)
    run_id = searched[1]
    (tmp_path / "p.toml").write_text(PROTOCOL_TOML)
    argv = [
        "confirm",
        run_id,
        "--workspace",
        str(ws),
        "--origin",
        "synflow",
        "--protocol",
        str(tmp_path / "p.toml"),
    ]
    code, out, err = cli(capsys, *argv, "--local")
    assert code == 0, err
    key = Protocol(PROTOCOL, "mlp:16-24-24-4").key
    with Store.open(ws) as store:
        seeds = [i for i in store.individuals(run_id) if re.fullmatch(r"synflow:seed=\d:rho=\d+", i.origin)]
        data = confirmation.run_inits(store, run_id).data()
    assert len(seeds) == 4  # 2 init seeds x 2 compressions
    lines = out.splitlines()
    assert lines[0] == (
        f"confirming 4 individuals of run {run_id} under protocol {key} (60 steps of adam lr 0.01, batch 128,"
        " evaluated every 10; mlp:16-24-24-4, mode forward): 12 trainings (own init + reinit seeds 1000, 1001),"
        " 0 stored, 12 to train"
    )
    jobs = [JOB_LINE.match(line) for line in lines[1:13]]
    assert all(jobs), lines[1:13]
    results = stored(ws, run_id)
    assert len(results) == 12 and {k[3] for k in results} == {key}
    # every job's numbers are training.train's from that seed, and its line prints them
    for m in jobs:
        i, init, seed = int(m[1]), m[2], int(m[3])
        ind = next(s for s in seeds if s.id == i)
        if init == "own":
            assert seed == int(ind.origin.split(":")[1].removeprefix("seed="))
        expected = one_thread_train("mlp:16-24-24-4", seed, ind.mask, data, PROTOCOL)
        assert results[(i, init, seed, key)] == expected
        es = expected["early_stop"]
        assert (int(m[4]), m[5]) == (es["step"], f"{es['test_accuracy']:.4f}")
        assert es["step"] % 10 == 0 and len(expected["curve"]) == 6
    # the table: density, fitness, own at early stop, reinit mean ± sample std
    assert lines[13] == (
        f"run {run_id}, protocol {key}: test accuracy at the early-stopping iteration; fitness: validation"
        " accuracy after the search's short training"
    )
    header = lines[14].split()
    assert (
        header
        == "id origin density fitness own_seed confirmed_own own_stop confirmed_reinit reinit_stop".split()
    )
    rows = lines[16:]
    assert [int(r.split()[0]) for r in rows] == [s.id for s in seeds]
    for row, ind in zip(rows, seeds, strict=True):
        cells = row.split()
        own_seed = int(cells[4])
        own = results[(ind.id, "own", own_seed, key)]["early_stop"]
        reinit = [results[(ind.id, "reinit", s, key)]["early_stop"] for s in (1000, 1001)]
        accs = [r["test_accuracy"] for r in reinit]
        assert cells[1:4] == [ind.origin, f"{ind.density:.5f}", f"{ind.accuracy:.4f}"]
        assert cells[5:7] == [f"{own['test_accuracy']:.4f}", str(own["step"])]
        assert cells[7:11] == [f"{statistics.mean(accs):.4f}", "±", f"{statistics.stdev(accs):.4f}", "(n=2)"]
        assert cells[11] == f"{statistics.mean(r['step'] for r in reinit):.0f}"

    # the same command again trains nothing: everything is stored
    code, out, _ = cli(capsys, *argv, "--local")
    assert code == 0 and out.splitlines()[0].endswith(
        "12 trainings (own init + reinit seeds 1000, 1001), 12 stored, 0 to train"
    )
    assert not any(JOB_LINE.match(line) for line in out.splitlines())
    assert out.splitlines()[1:] == lines[13:] and stored(ws, run_id) == results


def test_the_front_is_the_default_and_protocols_sit_side_by_side(searched, tmp_path) -> None:
    ws = copy_of(searched, tmp_path)
    run_id = searched[1]
    longer = TrainingConfig(steps=80, eval_every=20)
    first = ls.confirm(ws, run_id, protocol=PROTOCOL, reinit_seeds=(1000,), local=True)
    with Store.open(ws) as store:
        front = [i.id for i in pareto.run_front(store, run_id)]
    assert list(first) == front and front
    time.sleep(0.01)  # the later protocol is the later one by the store's millisecond timestamps
    second = ls.confirm(ws, run_id, ids=front[:1], protocol=longer, reinit_seeds=(1000,), local=True)
    k1, k2 = Protocol(PROTOCOL, "mlp:16-24-24-4").key, Protocol(longer, "mlp:16-24-24-4").key
    with ls.open_run(ws, run_id) as run:
        assert len(run.confirmations()) == 2 * len(front) + 2
        assert len(run.confirmations(k1)) == 2 * len(front)
        assert [c.protocol for c in run.confirmations(longer)] == [k2, k2]
        c = run.confirmations(k2)[0]
        assert isinstance(c.result, ls.TrainResult) and c.result.steps == 80
        assert c.test_accuracy == c.result.early_stop.test_accuracy and c.early_stop_step % 20 == 0
        assert run.confirmed(PROTOCOL) == first
        assert run.confirmed() == second == run.confirmed(k2)  # the latest protocol by default
    summary = first[front[0]]
    assert summary.protocol == k1 and summary.own.n == 1 and summary.reinit.seeds == (1000,)
    assert summary.reinit.std == 0.0 and summary.own.mean == summary.own.accuracies[0]


def test_front_lists_the_confirmed_accuracies(searched, capsys, tmp_path) -> None:
    ws = copy_of(searched, tmp_path)
    run_id = searched[1]
    code, before, _ = cli(capsys, "front", run_id, "--workspace", str(ws), "--format", "csv")
    assert (
        before.splitlines()[0]
        == "id,accuracy,density,effective_density,compression,class_key,generation,origin,lineage_steps,run_steps"
    )
    with Store.open(ws) as store:
        front = [i.id for i in pareto.run_front(store, run_id)]
    summaries = ls.confirm(ws, run_id, ids=front[:2], protocol=PROTOCOL, local=True)
    code, out, _ = cli(capsys, "front", run_id, "--workspace", str(ws), "--format", "json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert list(rows) == front
    for i in front:
        c = summaries.get(i)
        if i in front[:2]:
            r = summaries[i]
            assert rows[i]["confirmed_own"] == r.own.accuracies[0] and rows[i]["own_stop"] == r.own.stops[0]
            assert rows[i]["confirmed_reinit"] == pytest.approx(statistics.mean(r.reinit.accuracies))
            assert rows[i]["reinit_std"] == pytest.approx(statistics.stdev(r.reinit.accuracies))
            assert rows[i]["reinit_stop"] == pytest.approx(statistics.mean(r.reinit.stops))
        else:
            assert c is None and all(rows[i][f] is None for f in report.CONFIRMED_FIELDS)
    code, out, _ = cli(capsys, "front", run_id, "--workspace", str(ws))
    title, header, _, *lines = out.splitlines()
    key = Protocol(PROTOCOL, "mlp:16-24-24-4").key
    assert title.endswith(f"; 2 confirmed under protocol {key} (test accuracy at early stop)")
    assert header.split()[-5:] == list(report.CONFIRMED_FIELDS)
    for line in lines:
        i, cells = int(line.split()[0]), line.split()[-5:]
        if i in front[:2]:
            c = summaries[i]
            assert cells[:3] == [f"{c.own.mean:.4f}", str(c.own.stops[0]), f"{c.reinit.mean:.4f}"]
        else:
            assert cells == ["-"] * 5
    code, out, _ = cli(capsys, "front", run_id, "--workspace", str(ws), "--format", "csv", "--all")
    assert out.splitlines()[0].endswith(
        ",is_pareto,lineage_steps,run_steps,confirmed_own,own_stop,confirmed_reinit,reinit_std,reinit_stop"
    )

    # the plot draws them: own init filled at the mask's density, the reinit mean open, dodged right
    with Store.open(ws) as store:
        summary = report.run_summary(store, run_id)
    ax = report.front_figure(summary).axes[0]
    density = {i.id: i.density for i in summary.individuals}
    own = next(c for c in ax.collections if c.get_label() == "confirmed, own init (2)")
    assert own.get_offsets().tolist() == [[density[i], summaries[i].own.mean] for i in front[:2]]
    assert own.get_facecolor()[0][3] == 1.0  # filled
    _, labels = ax.get_legend_handles_labels()
    assert "confirmed, reinit mean ± std (2)" in labels
    reinit = next(c for c in ax.containers if c.get_label() == "confirmed, reinit mean ± std (2)")
    line = reinit.lines[0]
    assert line.get_markerfacecolor() == "none"
    assert line.get_xdata().tolist() == pytest.approx([density[i] * 1.03 for i in front[:2]])
    assert line.get_ydata().tolist() == pytest.approx([summaries[i].reinit.mean for i in front[:2]])
    with Store.open(ws) as store:
        path = report.plot_front(store, run_id, tmp_path / "front.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_one_line_and_write_nothing(searched, capsys, tmp_path) -> None:
    ws = copy_of(searched, tmp_path)
    run_id = searched[1]
    good = tmp_path / "p.toml"
    good.write_text(PROTOCOL_TOML)
    bad = tmp_path / "bad.toml"
    bad.write_text('[training]\nsteps = 60\noptimizer = "lbfgs"\neval_every = 10\n')
    none = tmp_path / "none.toml"
    none.write_text("[fitness]\nsteps = 60\n")
    base = ["--workspace", str(ws), "--local"]
    cases = [
        (
            ["nope-001", "--protocol", str(good)],
            f"unknown run 'nope-001' in workspace '{ws}'; known: {run_id}",
        ),
        (
            [run_id, "--ids", "3", "999", "--protocol", str(good)],
            f"no individuals [999] in run '{run_id}' (its ids run from 0 to 15)",
        ),
        ([run_id, "--protocol", str(none)], f"protocol file '{none}' has no [training] table"),
        (
            [run_id, "--protocol", str(bad)],
            "field 'training.optimizer' must be one of adam, sgd, got 'lbfgs'",
        ),
        (
            [run_id],
            f"run '{run_id}' is a search: confirming it needs --protocol FILE.toml (a [training] table)",
        ),
        (
            [run_id, "--protocol", str(good), "--reinit-seeds", "1000", "1"],
            f"reinit seed 1 is an init seed of run '{run_id}' (0, 1); a reinit control needs weights the run"
            " never trained from",
        ),
        (
            [run_id, "--protocol", str(good), "--origin", "snip"],
            f"no individual of run '{run_id}' has origin 'snip' (origins: child, random, synflow)",
        ),
        (
            [run_id, "--protocol", str(tmp_path / "missing.toml")],
            f"config file '{tmp_path / 'missing.toml'}' does not exist",
        ),
    ]
    locks = sorted((ws / "locks").iterdir())
    for args, message in cases:
        code, out, err = cli(capsys, "confirm", *args, *base)
        assert (code, out, err) == (2, "", f"lotterysearch: error: {message}\n"), args
    assert main(["confirm", run_id, "--ids", "3", "--front", *base]) == 2  # argparse's code, returned
    assert capsys.readouterr().err == (
        "lotterysearch confirm: error: argument --front: not allowed with argument --ids (see --help)\n"
    )
    assert stored(ws, run_id) == {} and sorted((ws / "locks").iterdir()) == locks


# ---- durability ---------------------------------------------------------------------------------------
def test_a_killed_confirmation_resumes_to_the_same_numbers(searched, capsys, tmp_path) -> None:
    """SIGKILL the CLI after its first training is committed; the same command then trains only the rest,
    and every number equals an uninterrupted confirmation's."""
    killed, clean = copy_of(searched, tmp_path, "killed"), copy_of(searched, tmp_path, "clean")
    run_id = searched[1]
    with Store.open(killed) as store:
        ids = [str(i.id) for i in pareto.run_front(store, run_id)[:2]]
    (tmp_path / "p.toml").write_text("[training]\nsteps = 200\neval_every = 20\n")
    argv = [
        "confirm",
        run_id,
        "--ids",
        *ids,
        "--reinit-seeds",
        "1000",
        "--protocol",
        str(tmp_path / "p.toml"),
        "--local",
    ]
    driver = start_driver(*argv, "--workspace", str(killed))
    try:
        deadline = time.monotonic() + 300
        while not stored(killed, run_id):
            assert driver.poll() is None, driver.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no confirmation committed in 300 s"
            time.sleep(0.02)
        sigkill(driver)
    finally:
        sigkill(driver)
    partial = stored(killed, run_id)
    assert 1 <= len(partial) < 4, "every training finished before the kill: make the protocol longer"
    code, out, err = cli(capsys, *argv, "--workspace", str(killed))
    assert code == 0, err
    assert out.splitlines()[0].endswith(
        f"4 trainings (own init + reinit seed 1000), {len(partial)} stored, {4 - len(partial)} to train"
    )
    assert sum(bool(JOB_LINE.match(line)) for line in out.splitlines()) == 4 - len(partial)
    code, clean_out, err = cli(capsys, *argv, "--workspace", str(clean))
    assert code == 0, err
    resumed = stored(killed, run_id)
    assert resumed == stored(clean, run_id) and len(resumed) == 4
    assert all(resumed[k] == v for k, v in partial.items())
    assert out.splitlines()[-len(ids) - 3 :] == clean_out.splitlines()[-len(ids) - 3 :]  # the same table


def test_ray_tasks_give_the_numbers_of_in_process_training(searched, ray_local, tmp_path) -> None:
    on_ray, here = copy_of(searched, tmp_path, "ray"), copy_of(searched, tmp_path, "local")
    run_id = searched[1]
    done = []
    ls.confirm(
        on_ray,
        run_id,
        origin="random",
        protocol=PROTOCOL,
        reinit_seeds=(1000,),
        local=False,
        on_result=lambda job, result: done.append(job.key),
    )
    ls.confirm(here, run_id, origin="random", protocol=PROTOCOL, reinit_seeds=(1000,), local=True)
    a, b = stored(on_ray, run_id), stored(here, run_id)
    assert a == b and len(a) == 4  # 2 random controls x (own + 1 reinit)
    assert sorted(done) == sorted((i, init, s) for i, init, s, _ in a)
    fitness_seed = tiny_config().fitness.init_seeds[0]
    assert {s for _, init, s, _ in a if init == "own"} == {fitness_seed}


# ---- confirming an IMP run ------------------------------------------------------------------------------
IMP_TOML = """kind = "imp"
name = "imp"
dataset = "synthetic"
model = "mlp:16-24-24-4"
seed = 3
evaluator = "local"
[imp]
init_seeds = [0, 1]
rounds = 2
rewind_step = {rewind}
[training]
steps = 60
eval_every = 10
"""


def imp_run(workspace: Path, rewind: int) -> str:
    """A finished tiny IMP run (2 trajectories of 3 rounds), driven in process."""
    with api.imp(parse_imp_config(IMP_TOML.format(rewind=rewind)), workspace, local=True) as run:
        return run.id


@pytest.mark.parametrize("rewind", [0, 20])
def test_an_imp_ticket_retrained_from_its_own_init_repeats_its_round(tmp_path, rewind) -> None:
    """Without --protocol an IMP run is confirmed under its own protocol, so each ticket's own-init training
    is its round's training again, to the bit: the round's numbers are stored as that confirmation, not
    trained again; the reinit starts at the rewind step from fresh weights."""
    ws = tmp_path / "ws"
    run_id = imp_run(ws, rewind)
    with Store.open(ws) as store:
        p = confirmation.plan(store, run_id, reinit_seeds=(1000,))
        data = confirmation.run_inits(store, run_id).data()
    assert len(p.from_rounds) == 6 and len(p.todo) == 6 and all(j.init.init == "reinit" for j in p.todo)
    assert confirmation.plan_line(p).endswith(
        "12 trainings (own init + reinit seed 1000), 0 stored, 6 from their IMP rounds, 6 to train"
    )
    own_jobs = [j for j in p.jobs if j.init.init == "own"]
    for job in (own_jobs[1], own_jobs[-1]):  # a pruned ticket of each trajectory, trained for real
        assert on_one_thread(confirmation.train_job, data, job) == p.from_rounds[job.key]  # as jobs train
    summaries = ls.confirm(ws, run_id, reinit_seeds=(1000,), local=True)
    with Store.open(ws) as store:
        rounds = store.imp_rounds(run_id)
        individuals = store.individuals(run_id)
    assert list(summaries) == [i.id for i in individuals] and len(rounds) == 6
    key = Protocol(TrainingConfig(steps=60, eval_every=10), "mlp:16-24-24-4").key
    results = stored(ws, run_id)
    for r in rounds:
        assert results[(r.individual_id, "own", r.trajectory, key)] == r.result
        assert summaries[r.individual_id].own.seeds == (r.trajectory,)
    masks = {i.id: i.mask for i in individuals}
    for i in masks:
        fresh = one_thread_train(
            "mlp:16-24-24-4", 1000, masks[i], data, TrainingConfig(steps=60 - rewind, eval_every=10)
        )
        assert results[(i, "reinit", 1000, key)] == fresh
    with Store.open(ws) as store:
        p = confirmation.plan(store, run_id, reinit_seeds=(1000,))
        table = report.format_confirmed(p, confirmation.plan_summaries(store, p)).splitlines()
    assert p.todo == [] and p.protocol.training == TrainingConfig(steps=60, eval_every=10)
    after = f" (iterations after the rewind step {rewind})" if rewind else ""
    assert table[0] == (
        f"run {run_id}, protocol {key}: test accuracy at the early-stopping iteration{after}; fitness: the"
        " round's validation accuracy"
    )
    first = summaries[0]
    assert table[3].split()[-3:] == [f"{first.reinit.mean:.4f}", "(n=1)", str(first.reinit.stops[0])]
    imp_origin = ls.confirm(ws, run_id, origin="imp", reinit_seeds=(1000,), local=True)
    assert imp_origin == summaries  # all stored: nothing trained again
    assert all(math.isfinite(c.own.mean) for c in summaries.values())
