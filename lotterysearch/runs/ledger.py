"""The compute ledger: what a run cost, counted the two ways every method is compared on.

* **Total training steps**: every optimizer step of every training the run did (every init seed of a
  fitness evaluation, every rung of successive halving, every IMP round, every confirmation). An isomorph
  whose objectives were looked up costs 0.
* **Critical path in steps**: the longest chain of trainings that had to wait for each other, the run's
  wall-clock on a cluster with enough workers. A generation's trainings run side by side, the init seeds of a
  fitness evaluation too (one training's steps), successive halving's rungs one after another (each waits
  for the one before it to choose its classes), and each generation waits for the one before it: so a
  generational search's critical path is the sum over generations of the sum over rungs of the rung's
  budget, where that rung trained anything. A steady-state search has no barriers: its critical path is the
  longest lineage chain (``lineage_steps`` per training). An IMP trajectory is sequential (its rounds'
  steps, plus the rewind's dense steps once); trajectories are independent, so an IMP run's critical path
  is its longest trajectory. Confirmation trainings are independent of each other: the longest one.
* **FLOPs on kept weights**: a training step's count from the model family (``ModelFamily.training_flops``:
  6 per kept weight use and sample, Kaplan et al. 2020), times its steps. Evaluation forwards are not
  training and are not counted.
* **Wall time**: the seconds the trainings took where they ran, summed (a search's generation: what its
  trainings took, a resumed generation what its replay trained).

Per individual of a run: ``lineage_steps``, the steps spent to reach it along its lineage (its own class's
trainings in its generation, plus its parents' lineage steps; for a crossover child the larger of its
parents', the critical path's choice, so ancestors shared by both parents count once), and ``run_steps``,
the run's total steps up to and including its generation.

The search loops and the IMP driver record these numbers as the trainings happen (storage schema 5); a run
stored earlier gets what its config and records allow (``derived``): without successive halving every
trained class was one training of the full budget per init seed, an IMP round's steps are in its result;
what cannot be known (lower rungs, older wall times) is None. Ledgers add (``+``: one phase after another,
e.g. a run and its confirmation) and run side by side (``parallel``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any

from lotterysearch.settings import ROUND_KINDS, RunKind
from lotterysearch.storage.store import (
    ConfirmationRecord,
    GenerationRecord,
    IMPRoundRecord,
    Individual,
    RunRecord,
    Store,
)

if TYPE_CHECKING:
    from lotterysearch.core.masks import Mask
    from lotterysearch.training.trainer import TrainResult


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


@dataclass(frozen=True)
class Ledger:
    """What some trainings cost: total steps, critical path in steps, FLOPs on kept weights, and the seconds
    they took where they ran. None where it is not known (a run stored before the ledger existed)."""

    total_steps: int | None = 0
    critical_path_steps: int | None = 0
    flops: float | None = 0.0
    wall_time: float | None = 0.0

    def __add__(self, other: Ledger) -> Ledger:
        """One phase after the other (a run, then its confirmation): every number adds."""
        return Ledger(
            _add(self.total_steps, other.total_steps),  # type: ignore[arg-type]
            _add(self.critical_path_steps, other.critical_path_steps),  # type: ignore[arg-type]
            _add(self.flops, other.flops),
            _add(self.wall_time, other.wall_time),
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def line(self) -> str:
        """One line for the CLI and the dashboard."""

        def num(x: float | None, fmt: str) -> str:
            return "?" if x is None else format(x, fmt)

        return (
            f"{num(self.total_steps, ',d')} training steps, critical path {num(self.critical_path_steps, ',d')}"
            f" steps, {num(self.flops, '.3g')} FLOPs on kept weights, {num(self.wall_time, '.1f')} s training"
        )


def sequential(ledgers: Iterable[Ledger]) -> Ledger:
    """Ledgers of trainings that waited for each other, one after another."""
    out = Ledger()
    for ledger in ledgers:
        out = out + ledger
    return out


def parallel(ledgers: Iterable[Ledger]) -> Ledger:
    """Ledgers of independent trainings (or chains): totals add, the critical path is the longest one."""
    ledgers = list(ledgers)
    paths = [x.critical_path_steps for x in ledgers]
    return Ledger(
        sequential(ledgers).total_steps,
        None if None in paths else max(paths, default=0),  # type: ignore[type-var]
        sequential(ledgers).flops,
        sequential(ledgers).wall_time,
    )


@cache
def _counter(model_spec: str, batch_size: int) -> Callable[[Mask], int]:
    # torch only when FLOPs are counted: the readers of stored ledgers (``runs``, the report) start without it
    from lotterysearch.core.models import build_model
    from lotterysearch.training.family import family_of

    template = build_model(model_spec, 0)
    family = family_of(model_spec)
    return lambda mask: family.training_flops(mask, template, batch_size)


def step_flops(model_spec: str, batch_size: int) -> Callable[[Mask], int]:
    """FLOPs of one training step of a mask of ``model_spec``'s network at ``batch_size``
    (``ModelFamily.training_flops``)."""
    return _counter(model_spec, int(batch_size))


# ---- searches --------------------------------------------------------------------------------------
def generation_ledger(gen: GenerationRecord) -> Ledger:
    """The ledger a search loop recorded with one generation."""
    return Ledger(gen.steps, gen.critical_path_steps, gen.flops, gen.train_seconds)


def lineage_steps(individuals: Iterable[Individual], per_training: int = 1) -> dict[int, int | None]:
    """Each individual's steps along its lineage: its own (``Individual.steps``, divided by
    ``per_training``) plus the largest of its parents' (the critical path through a crossover: a shared
    ancestor counts once). A parent not in the run adds 0; an unknown own count makes it None."""
    by_id = {i.id: i for i in individuals}
    out: dict[int, int | None] = {}
    for ind in sorted(by_id.values(), key=lambda i: i.id):  # parents have smaller ids than their children
        parents = [out.get(p, 0) for p in ind.parents if p in by_id]
        own = None if ind.steps is None else ind.steps // per_training
        if own is None or None in parents:
            out[ind.id] = None
        else:
            out[ind.id] = own + max(parents, default=0)  # type: ignore[type-var, operator]
    return out


def steps_to_generation(generations: Sequence[GenerationRecord]) -> dict[int, int | None]:
    """The run's total training steps up to and including each generation."""
    out: dict[int, int | None] = {}
    total: int | None = 0
    for g in generations:
        total = None if total is None or g.steps is None else total + g.steps
        out[g.gen] = total
    return out


def search_ledger(
    generations: Sequence[GenerationRecord], individuals: Sequence[Individual], config: Mapping
) -> Ledger:
    """A search run's ledger: its generations one after another; a steady-state run's critical path is its
    longest lineage chain in one training's steps (its init seeds side by side)."""
    out = sequential(generation_ledger(g) for g in generations)
    if config.get("ga", {}).get("mode") == "steady_state":
        seeds = max(1, len(config.get("fitness", {}).get("init_seeds", [0])))
        chains = lineage_steps(individuals, seeds).values()
        path = None if None in chains else max(chains, default=0)
        out = Ledger(out.total_steps, path, out.flops, out.wall_time)  # type: ignore[arg-type]
    return out


def derived(
    run: RunRecord,
    generations: Sequence[GenerationRecord],
    individuals: Sequence[Individual],
    wall_times: Mapping[int, float],
    flops: bool = True,
) -> tuple[list[GenerationRecord], list[Individual]]:
    """Generations and individuals of a search stored before the ledger, with what their config allows.

    Without successive halving each trained class was one training of ``fitness.steps`` per init seed, for
    the individual it was trained for (``evaluated``) in that individual's generation; an isomorph cost 0.
    ``wall_times``: the seconds each such individual's class took (``ClassRecord.wall_time``). With halving
    the lower rungs' trainings are not stored: left None, as is everything of a config that does not say.
    Records that have their numbers are kept; ``flops=False`` leaves FLOPs None (no mask is unpacked)."""
    config = json.loads(run.config_json)
    f = config.get("fitness", {})
    if f.get("successive_halving") or not {"steps", "init_seeds"} <= f.keys():
        return list(generations), list(individuals)
    per_class = int(f["steps"]) * len(f["init_seeds"])
    count = _counter_of(config, f) if flops else None
    inds = [
        i if i.steps is not None else _with(i, steps=per_class if i.evaluated else 0) for i in individuals
    ]
    by_gen: dict[int, list[Individual]] = {}
    for i in inds:
        by_gen.setdefault(i.generation, []).append(i)
    gens = []
    for g in generations:
        if g.steps is not None:
            gens.append(g)
            continue
        trained = [i for i in by_gen.get(g.gen, []) if i.evaluated]
        steady = config.get("ga", {}).get("mode") == "steady_state"
        gens.append(
            _with(
                g,
                steps=sum(i.steps for i in by_gen.get(g.gen, [])),  # type: ignore[misc]
                critical_path_steps=None if steady else (int(f["steps"]) if trained else 0),
                flops=None if count is None else float(sum(per_class * count(i.mask) for i in trained)),
                train_seconds=sum(wall_times.get(i.id, 0.0) for i in trained)
                if all(i.id in wall_times for i in trained)
                else None,
            )
        )
    return gens, inds


def _counter_of(config: Mapping, training: Mapping) -> Callable[[Mask], int] | None:
    """``step_flops`` of the run's model at ``training``'s batch size, None where the config does not say."""
    if "model" not in config or "batch_size" not in training:
        return None
    return step_flops(config["model"], int(training["batch_size"]))


def _with(record, **fields):  # noqa: ANN001, ANN202 - any frozen record
    return replace(record, **fields)


# ---- IMP and confirmations --------------------------------------------------------------------------
def search_steps(config: Mapping) -> int:
    """Steps of the search that made each round's mask before its ticket was trained: a Continuous
    Sparsification round's (``[cs] steps``, 0: ``training.steps - rewind_step``); IMP's masks come from its
    tickets' own trainings, 0."""
    if config.get("kind") != RunKind.CS.value:
        return 0
    cs, training = config.get("cs", {}), config.get("training", {})
    return int(cs.get("steps") or int(training.get("steps", 0)) - int(cs.get("rewind_step", 0)))


def round_steps(result: TrainResult | Mapping[str, Any], round: int, rewind_step: int) -> int:
    """Training steps of an IMP or CS round: those from its rewind point, and for round 0 also the
    ``rewind_step`` dense steps that reach it (once per trajectory: every later round starts from the same
    point)."""
    steps = int(result["steps"]) if isinstance(result, Mapping) else result.steps
    return steps + (rewind_step if round == 0 else 0)


def imp_ledger(rounds: Sequence[IMPRoundRecord], masks: Mapping[int, Mask] | None, config: Mapping) -> Ledger:
    """An IMP run's ledger: each trajectory's rounds one after another (round 0 with the rewind's
    ``rewind_step`` dense steps, which every round's training starts from: ``round_steps``),
    trajectories side by side. A Continuous Sparsification round adds the search that made its mask
    (``search_steps``), which trains every weight: its FLOPs are the dense network's. Without ``masks`` (or
    a config naming the model) FLOPs are None."""
    count = _counter_of(config, config.get("training", {})) if masks is not None else None
    rewind = int(config.get(config.get("kind", "imp"), {}).get("rewind_step", 0))  # [imp] or [cs]
    search = search_steps(config)
    dense = {r.trajectory: r.individual_id for r in rounds if r.round == 0}
    chains: dict[int, list[Ledger]] = {}
    for r in rounds:
        steps = round_steps(r.result, r.round, rewind)
        extra = search if r.round > 0 else 0
        flops = None
        if count is not None and masks is not None:
            flops = float(steps * count(masks[r.individual_id]))
            if extra:
                first = dense.get(r.trajectory)
                flops = None if first is None else flops + float(extra * count(masks[first]))
        chains.setdefault(r.trajectory, []).append(Ledger(steps + extra, steps + extra, flops, r.wall_time))
    return parallel(sequential(c) for c in chains.values())


def confirmation_ledger(confirmations: Sequence[ConfirmationRecord]) -> Ledger:
    """Confirmation trainings are independent: totals add, the critical path is the longest one. One stored
    before the ledger counts its result's steps, its FLOPs and seconds unknown (None)."""
    return parallel(
        Ledger(
            int(c.result["steps"]) if c.steps is None else c.steps,
            int(c.result["steps"]) if c.steps is None else c.steps,
            c.flops,
            c.wall_time,
        )
        for c in confirmations
    )


# ---- from a store ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunCompute:
    """A run's ledger read from its store, with each individual's lineage and run steps by id."""

    ledger: Ledger
    lineage_steps: dict[int, int | None]
    run_steps: dict[int, int | None]  # the run's total steps up to the individual's generation


def run_compute(store: Store, run_id: str, *, flops: bool = True) -> RunCompute:
    """The run's ledger (``Run.ledger``), recorded or ``derived``, and its individuals' numbers. With
    ``flops=False`` no mask is unpacked (a listing's steps): FLOPs not recorded stay None."""
    run = store.run(run_id)
    config = json.loads(run.config_json)
    individuals = store.individuals(run_id)
    if run.kind in ROUND_KINDS:  # a CS round: its search, then its ticket's training
        rounds = store.imp_rounds(run_id)
        rewind = int(config.get(run.kind.value, {}).get("rewind_step", 0))
        by_id = {r.individual_id: r for r in rounds}
        individuals = [
            i
            if i.steps is not None or i.id not in by_id
            else _with(
                i,
                steps=round_steps(by_id[i.id].result, by_id[i.id].round, rewind)
                + (search_steps(config) if by_id[i.id].round > 0 else 0),
            )
            for i in individuals
        ]
        ledger = imp_ledger(rounds, {i.id: i.mask for i in individuals} if flops else None, config)
        lineage = lineage_steps(individuals)
        running = 0
        run_steps: dict[int, int | None] = {}
        for rnd in sorted({i.generation for i in individuals}):
            running += sum(i.steps or 0 for i in individuals if i.generation == rnd)
            run_steps.update({i.id: running for i in individuals if i.generation == rnd})
        return RunCompute(ledger, lineage, run_steps)
    generations = store.generations(run_id)
    if any(g.steps is None for g in generations) or any(i.steps is None for i in individuals):
        walls = {c.individual_id: c.wall_time for c in store.classes(run_id).values()}
        generations, individuals = derived(run, generations, individuals, walls, flops)
    upto = steps_to_generation(generations)
    return RunCompute(
        search_ledger(generations, individuals, config),
        lineage_steps(individuals),
        {i.id: upto.get(i.generation) for i in individuals},
    )


def run_steps_summary(store: Store, run_id: str) -> tuple[int | None, int | None]:
    """(total steps, critical path) for a listing of runs: a generational search's recorded numbers summed
    by SQL, without reading its individuals; anything else through ``run_compute`` (no mask unpacked)."""
    run = store.run(run_id)
    if run.kind is RunKind.SEARCH and json.loads(run.config_json).get("ga", {}).get("mode") != "steady_state":
        _, steps, path, missing = store.ledger_sums(run_id)
        if not missing:
            return steps, path
    ledger = run_compute(store, run_id, flops=False).ledger
    return ledger.total_steps, ledger.critical_path_steps


def run_ledger(store: Store, run_id: str) -> Ledger:
    """The run's ledger (``run_compute``)."""
    return run_compute(store, run_id).ledger


def stored_confirmation_ledger(store: Store, run_id: str, protocol: str | None = None) -> Ledger:
    """The ledger of the run's confirmations (under ``protocol`` only, if given), apart from the run's own:
    add them (``+``) for the whole cost."""
    return confirmation_ledger(store.confirmations(run_id, protocol))
