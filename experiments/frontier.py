"""IMP's frontier on LeNet-300-100 / MNIST: the yardstick every ticket-finding method here is measured with.

One untuned IMP (20% per round, 3000-step rounds) is not a baseline: a user who does not know the right rate
tries several, and Frankle & Carbin's own cheap baselines (one-shot and few-shot magnitude pruning with
rewinding) cost a fraction of it. Each point of ``configs/lenet_frontier.toml`` is an IMP run of the service
from the same inits θ₀ (per-layer rates 20, 49 and 80 %, the output layer at half; rounds of 1000 and 3000
steps; one and two shots to each target density), and every ticket is confirmed with the full protocol
(``lotterysearch confirm``: from θ₀, early stop at the lowest validation loss; a round trained under that
protocol already is its own confirmation). At each target density (IMP-20's rounds 12, 15 and 18) a point's
ticket is the first mask of its trajectory at or below the target.

Compute is counted two ways: total training steps to find the ticket (every round before the ticket's own
training, which is its confirmation and costs every method the same), and the critical path, the longest
chain of trainings that waited for each other. IMP's rounds wait for each other, so for one trajectory the two
are equal; its inits are independent trajectories, run side by side on a cluster.

Every run lives in ``experiments/workspace/frontier`` and commits each round as it finishes, so a killed
frontier, run again, resumes where it stopped; the numbers so far are saved to ``results/frontier.json`` after
every point.

    python -m experiments.frontier --data-dir ../shared/data/mnist --inits dev
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import math
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lotterysearch as ls
from experiments.common import ROOT, Context, Rendered, Section, load_results, save_results
from lotterysearch import api
from lotterysearch.core.overlap import chance_jaccard, jaccard
from lotterysearch.errors import ConfigError, LotterySearchError
from lotterysearch.readers import frontier as frontier_view
from lotterysearch.runs.imp import round_plan
from lotterysearch.runs.stability import compare_masks
from lotterysearch.settings import IMPConfig, config_hash, load_config, load_cs_config, load_imp_config
from lotterysearch.stats import markdown_table
from lotterysearch.storage.store import Store, workspace_paths
from lotterysearch.verdicts import Family, Verdict, mean_interval

SETTINGS = ROOT / "configs" / "lenet_frontier.toml"
KEY = "frontier"
# The numbers come from the resumable driver below (``main``), run for hours across sessions, not from one
# ``run_all`` invocation: the report renders whatever it has saved, saying which points have not run.
PENDING = True


@dataclass(frozen=True)
class Point:
    """One frontier point: IMP at ``rate`` (the output layer at half) for ``rounds`` rounds of ``steps``, or
    ``shots`` rounds per target, each pruning the reference's per-round rates compounded over the target's
    rounds divided by ``shots``."""

    name: str
    label: str
    steps: int = 0
    rate: float = 0.0
    rounds: int = 0
    shots: int = 0
    search: str = ""  # a search config beside the settings: one ticket-mode run per init θ₀
    control: str = ""  # a search point: its population-of-one control, the same steps on each θ₀
    # a search point: its children land on the target densities (``ga.density_targets``) instead of passing
    land_on_targets: bool = False
    batch_order: int = 0  # an IMP point: the order of minibatches its rounds train on (``imp.batch_order``)
    repeats: str = ""  # an IMP point that repeats this one under another batch order: their overlap's level
    cs: str = ""  # a Continuous Sparsification config beside the settings: one run of every init


@dataclass(frozen=True)
class FrontierSettings:
    base: str
    dev_inits: tuple[int, ...]
    heldout_inits: tuple[int, ...]
    reference: str
    target_rounds: tuple[int, ...]
    density_tolerance: float
    equivalence_margin: float
    evaluator: str
    points: tuple[Point, ...]

    def point(self, name: str) -> Point:
        return next(p for p in self.points if p.name == name)


def load_settings(path: Path = SETTINGS) -> FrontierSettings:
    """The frontier's settings; a point that is neither IMP (rate and rounds) nor shots is a one-line error."""
    raw = tomllib.loads(path.read_text())
    raw["base"] = str(path.parent / raw["base"])  # beside the settings
    points = []
    for p in raw.pop("point"):
        point = Point(**p)
        kinds = [point.rate > 0 and point.rounds > 0, point.shots > 0, bool(point.search), bool(point.cs)]
        if sum(kinds) + bool(point.control) != 1:
            raise ConfigError(
                f"{path.name}: point '{point.name}' needs rate and rounds, shots, search, cs or control"
            )
        if point.search or point.cs:
            point = dataclasses.replace(
                point,
                search=point.search and str(path.parent / point.search),
                cs=point.cs and str(path.parent / point.cs),
            )
        points.append(point)
    s = FrontierSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}, points=tuple(points)
    )
    ref = s.point(s.reference)
    if ref.shots or max(s.target_rounds) > ref.rounds:
        raise ConfigError(
            f"{path.name}: the reference must be an IMP point reaching round {max(s.target_rounds)}"
        )
    return s


def base_config(s: FrontierSettings, data_dir: str) -> IMPConfig:
    cfg = load_imp_config(s.base)
    return dataclasses.replace(cfg, data_dir=cfg.data_dir or data_dir, evaluator=s.evaluator)


def run_configs(
    s: FrontierSettings, base: IMPConfig, which: str
) -> list[tuple[Point, int | None, IMPConfig]]:
    """Every IMP run of the frontier on the ``which`` inits ("dev" or "heldout"): (point, the target round a
    shots run is for or None, its config)."""
    inits = s.dev_inits if which == "dev" else s.heldout_inits
    ref = s.point(s.reference)
    ref_out = (
        base.imp.output_rate / base.imp.rate * ref.rate
    )  # the output layer at the same share of the rate
    runs = []
    for p in s.points:
        if p.search or p.cs or p.control:
            continue
        training = dataclasses.replace(base.training, steps=p.steps)
        if p.shots:
            for k in s.target_rounds:
                rate = 1 - (1 - ref.rate) ** (k / p.shots)
                out = 1 - (1 - ref_out) ** (k / p.shots)
                imp = dataclasses.replace(
                    base.imp, init_seeds=inits, rounds=p.shots, rate=rate, output_rate=out
                )
                name = f"frontier-{p.name}-r{k}-{which}"
                runs.append((p, k, dataclasses.replace(base, name=name, imp=imp, training=training)))
        else:
            out = base.imp.output_rate / base.imp.rate * p.rate
            imp = dataclasses.replace(
                base.imp,
                init_seeds=inits,
                rounds=p.rounds,
                rate=p.rate,
                output_rate=out,
                batch_order=p.batch_order,
            )
            name = f"frontier-{p.name}-{which}"
            runs.append((p, None, dataclasses.replace(base, name=name, imp=imp, training=training)))
    return runs


def finished_imp_run(cfg: IMPConfig, ws: Path, ctx: Context) -> ls.Run:
    """The finished IMP run of ``cfg`` in ``ws``: the stored one (resumed if it did not finish) or a new one.
    Every IMP run of the report's LeNet sections (this frontier, section 5) starts or resumes through it."""
    local = cfg.evaluator == "local"
    report = lambda r: ctx.progress(f"  {r.line()}")  # noqa: E731
    if workspace_paths(ws).store.is_file():
        with Store.open(ws) as store:
            ours = [r for r in store.runs() if r.config_hash == config_hash(cfg)]
        if ours:
            run = ls.open_run(ws, ours[-1].id, local=local)
            if run.status == "finished":
                return run
            ctx.progress(f"[imp] resuming IMP run {run.id} with {len(run.imp_rounds())} rounds committed")
            return run.optimize(progress=report)
    return ls.imp(cfg, ws, local=local, progress=report)


def reference_configs(s: FrontierSettings, data_dir: str) -> list[IMPConfig]:
    """The reference point's IMP runs: the development inits' run, then the held-out inits'. Section 5 reads
    its small settings' tickets from them (``base`` is its config), so the two sections share one IMP."""
    base = base_config(s, data_dir)
    return [
        cfg
        for which in ("dev", "heldout")
        for p, _, cfg in run_configs(s, base, which)
        if p.name == s.reference
    ]


def target_densities(s: FrontierSettings, base: IMPConfig) -> dict[int, float]:
    """The reference's density at each target round, from its plan (known before any training)."""
    ref = s.point(s.reference)
    cfg = dataclasses.replace(
        base,
        imp=dataclasses.replace(
            base.imp,
            rounds=ref.rounds,
            rate=ref.rate,
            output_rate=base.imp.output_rate / base.imp.rate * ref.rate,
        ),
    )
    plan = round_plan(cfg)
    total = sum(math.prod(shape) for shape in ls.Mask.ones(ls.build_model(base.model, 0)).shapes.values())
    kept = lambda c: c if isinstance(c, int) else sum(c.values())  # noqa: E731
    return {k: kept(plan[k - 1]) / total for k in s.target_rounds}


def measure(
    cfg: IMPConfig, target: int | None, s: FrontierSettings, targets: Mapping[int, float], ctx: Context
) -> dict[str, Any]:
    """One run's tickets at each target, confirmed: per init, the density, the confirmed test accuracy at the
    early stop, and the steps spent to find the ticket (total and critical path)."""
    ws = ctx.workspace / "frontier"
    with finished_imp_run(cfg, ws, ctx) as run:
        run_id = run.id
    mine = targets if target is None else {target: targets[target]}  # a shots run is for one target
    with Store.open(ws) as store:
        ids = _first_rounds(store, run_id, cfg.imp.init_seeds, mine, s.density_tolerance)
    return {"targets": _confirm_and_read(ws, run_id, ids, s, mine, ctx)}


def _first_rounds(
    store: Store, run_id: str, inits: Sequence[int], targets: Mapping[int, float], tolerance: float
) -> list[int]:
    """The ids to confirm of a trajectory run (IMP, CS): per target and init, its first round at or below."""
    rounds = store.imp_rounds(run_id)
    density = {i.id: i.density for i in store.individuals(run_id)}
    ids = set()
    for d in targets.values():
        for seed in inits:
            fits = [
                r
                for r in rounds
                if r.trajectory == seed and r.round > 0 and density[r.individual_id] <= d + tolerance
            ]
            if fits:
                ids.add(min(fits, key=lambda r: r.round).individual_id)
    return sorted(ids)


def _choose(individuals, targets: Mapping[int, float], tolerance: float, key) -> list[int]:  # noqa: ANN001
    """The ids to confirm: per target, the individual ``key`` picks among those at or below it."""
    ids = set()
    for d in targets.values():
        fits = [i for i in individuals if i.density <= d + tolerance]
        if fits:
            ids.add(key(fits).id)
    return sorted(ids)


def _confirm_and_read(
    ws: Path, run_id: str, ids: Sequence[int], s: FrontierSettings, targets: Mapping[int, float], ctx: Context
) -> dict[str, dict[str, Any]]:
    """Confirm ``ids`` with the protocol, then read each init's ticket per target through the frontier view."""
    protocol = load_imp_config(s.base).training
    ls.confirm(
        ws,
        run_id,
        ids=ids,
        protocol=protocol,
        reinit_seeds=(),
        local=s.evaluator == "local",
        on_result=lambda job, r: ctx.progress(
            f"  confirmed {job.individual_id} of init {job.init.seed}: test {r['early_stop']['test_accuracy']:.4f}"
        ),
    )
    by_density = {d: k for k, d in targets.items()}
    with Store.open(ws) as store:
        found = frontier_view.run_tickets(
            store, run_id, list(targets.values()), protocol, s.density_tolerance
        )
        generation = {i.id: i.generation for i in store.individuals(run_id)}
    out: dict[str, dict[str, Any]] = {}
    for t in found:
        out.setdefault(str(by_density[t.target]), {})[str(t.init)] = {
            "round": generation[t.individual_id],
            "density": t.density,
            "test_accuracy": t.test_accuracy,
            "early_stop_step": t.early_stop_step,
            "total_steps": t.total_steps,
            "critical_path_steps": t.critical_path_steps,
        }
    return out


def _stored_run(ws: Path, cfg: Any) -> str | None:  # noqa: ANN401 - any run config
    if not workspace_paths(ws).store.is_file():
        return None
    with Store.open(ws) as store:
        ours = [r for r in store.runs() if r.config_hash == config_hash(cfg)]
    return ours[-1].id if ours else None


def _finished(ws: Path, cfg: Any, start: Any, ctx: Context) -> str:  # noqa: ANN401 - any run config
    """The id of ``cfg``'s finished run in ``ws``: the stored one (resumed if it did not finish), or a new
    one made with ``start`` (``ls.search``, ``ls.cs``) and run to its end."""
    report = lambda r: ctx.progress(f"  {r.line()}")  # noqa: E731
    run_id = _stored_run(ws, cfg)
    if run_id is None:
        with start(cfg, ws, local=True, progress=report) as run:
            return run.id
    with ls.open_run(ws, run_id, local=True) as run:
        if run.status != "finished":
            run.optimize(progress=report)
    return run_id


def search_config(p: Point, which: str, init: int, ctx: Context, targets: Mapping[int, float]) -> Any:  # noqa: ANN401 - SearchConfig
    """The search of point ``p`` on θ₀ = ``init``: its template with the seed, the seeds' and the fitness's
    init set to it, in this process; the frontier's target densities as its density targets if ``p`` lands
    on them."""
    template = load_config(p.search)
    ga = template.ga
    if p.land_on_targets:
        ga = dataclasses.replace(ga, density_targets=tuple(sorted(targets.values(), reverse=True)))
    return api.check_run(
        dataclasses.replace(
            template,
            name=f"frontier-{p.name}-{which}",
            seed=init,
            evaluator="local",
            data_dir=template.data_dir or ctx.data_dir,
            seeding=dataclasses.replace(template.seeding, init_seeds=(init,)),
            fitness=dataclasses.replace(template.fitness, init_seeds=(init,)),
            ga=ga,
        )
    )


def _winners(ws: Path, run_id: str, s: FrontierSettings, targets: Mapping[int, float], ctx: Context) -> dict:
    """A search's best mask by fitness at or below each target, confirmed and read (per target, per init)."""
    with Store.open(ws) as store:
        inds = store.individuals(run_id)
    ids = _choose(
        inds, targets, s.density_tolerance, lambda fits: max(fits, key=lambda i: (i.accuracy, i.density))
    )
    return _confirm_and_read(ws, run_id, ids, s, targets, ctx)


def _control_config(
    p: Point, which: str, init: int, s: FrontierSettings, targets: Mapping[int, float], ctx: Context
) -> ls.SearchConfig | None:
    """The population-of-one control of search point ``p.control`` on θ₀ = ``init``
    (``ls.single_lineage_config``: the same operators on one lineage, one child a generation, with that
    search's steps there); None where that search has not finished on θ₀."""
    ws = ctx.workspace / "frontier"
    searched = s.point(p.control)
    run_id = _stored_run(ws, search_config(searched, which, init, ctx, targets))
    if run_id is None:
        ctx.progress(f"[frontier] {p.name} on θ₀ = {init}: {searched.name} has not run there yet")
        return None
    with ls.open_run(ws, run_id, local=True) as run:
        if run.status != "finished":
            ctx.progress(f"[frontier] {p.name} on θ₀ = {init}: {searched.name} has not finished there")
            return None
        cfg = ls.single_lineage_config(run, name=f"frontier-{p.name}-{which}")
    ctx.progress(f"[frontier] {cfg.name} on θ₀ = {init}: one lineage, {cfg.ga.control_steps} steps")
    return cfg


def measure_search(
    p: Point,
    which: str,
    s: FrontierSettings,
    targets: Mapping[int, float],
    ctx: Context,
    save: Callable[[Mapping[str, Any]], None] = lambda rows: None,
) -> dict[str, Any]:
    """A search point on each init θ₀, run or resumed: the search of ``p.search`` (one ticket-mode run each,
    one method by name), or else the control of ``p.control`` where that search has finished; per target its
    best mask by fitness at or below it, confirmed."""
    ws = ctx.workspace / "frontier"
    out: dict[str, Any] = {"targets": {}}
    for init in s.dev_inits if which == "dev" else s.heldout_inits:
        if p.search:
            cfg = search_config(p, which, init, ctx, targets)
            ctx.progress(
                f"[frontier] {cfg.name} on θ₀ = {init}: {cfg.ga.generations} generations of {cfg.ga.population}"
            )
        elif (cfg := _control_config(p, which, init, s, targets, ctx)) is None:
            continue
        for k, rows in _winners(ws, _finished(ws, cfg, ls.search, ctx), s, targets, ctx).items():
            out["targets"].setdefault(k, {}).update(rows)
        save(out["targets"])  # each θ₀ as it finishes: a search point takes hours
    return out


def measure_cs(
    p: Point, which: str, s: FrontierSettings, targets: Mapping[int, float], ctx: Context
) -> dict[str, Any]:
    """Continuous Sparsification (``p.cs``) on every init in one run, run or resumed; per target each
    trajectory's first round at or below it, confirmed (its ticket trained with the protocol already)."""
    ws = ctx.workspace / "frontier"
    template = load_cs_config(p.cs)
    inits = s.dev_inits if which == "dev" else s.heldout_inits
    cfg = api.check_run(
        dataclasses.replace(
            template,
            name=f"frontier-{p.name}-{which}",
            evaluator=s.evaluator,
            data_dir=template.data_dir or ctx.data_dir,
            cs=dataclasses.replace(template.cs, init_seeds=inits),
        )
    )
    ctx.progress(f"[frontier] {cfg.name}: inits {list(inits)}, {cfg.cs.rounds} rounds")
    run_id = _finished(ws, cfg, ls.cs, ctx)
    with Store.open(ws) as store:
        ids = _first_rounds(store, run_id, inits, targets, s.density_tolerance)
    return {"targets": _confirm_and_read(ws, run_id, ids, s, targets, ctx)}


def run(
    ctx: Context,
    which: Sequence[str] = ("dev",),
    points: Sequence[str] = (),
    settings: Path = SETTINGS,
    overlap_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the frontier's points (``points``: these only) on the chosen init sets, saving the
    numbers after each run. Two processes may share the workspace on different points. ``overlap_only``:
    train nothing; save every confirmed ticket's overlap with the reference's (``overlaps``)."""
    s = load_settings(settings)
    base = base_config(s, ctx.data_dir)
    targets = target_densities(s, base)
    unknown = set(points) - {p.name for p in s.points}
    if unknown:
        raise ConfigError(f"unknown frontier point(s) {', '.join(sorted(unknown))}")
    head = {
        "settings": settings.name,
        "base": Path(s.base).name,
        "model": base.model,
        "protocol": dataclasses.asdict(base.training),
        "reference": s.reference,
        "targets": {str(k): d for k, d in targets.items()},
        "equivalence_margin": s.equivalence_margin,
        "labels": {p.name: p.label for p in s.points},
        "repeats": {p.name: p.repeats for p in s.points if p.repeats},
        "controls": {p.name: p.control for p in s.points if p.control},
        "workers": {p.name: load_config(p.search).ga.population for p in s.points if p.search},
    }
    res: dict[str, Any] = {**(load_results(ctx, KEY) or {}), **head}

    def update(change: Callable[[dict[str, Any]], None]) -> None:
        """Read, change and write the results under one lock: another process may save meanwhile, and a
        read-then-write of its own would lose that process's rows."""
        nonlocal res
        ctx.workspace.mkdir(parents=True, exist_ok=True)
        with open(ctx.workspace / "frontier.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            res = {**(load_results(ctx, KEY) or {}), **head}
            change(res)
            save_results(ctx, KEY, res)

    def save(which: str, point: str, found: Mapping[str, Any]) -> None:
        def add(r: dict[str, Any]) -> None:
            per = r.setdefault("points", {}).setdefault(which, {}).setdefault(point, {})
            for tk, rows in found.items():
                per.setdefault(tk, {}).update(rows)

        update(add)

    if overlap_only:
        ws = ctx.workspace / "frontier"
        by_set = {w: ticket_masks(ws, s, targets, w) for w in SETS}  # read once, for both passes
        over = {w: overlaps(s, by_set[w]) for w in which}
        across = across_inits(by_set.values(), done=(load_results(ctx, KEY) or {}).get("across_inits"))
        update(lambda r: r.update(overlap={**r.get("overlap", {}), **over}, across_inits=across))
        return res
    for w in which:
        for p in s.points:
            if p.cs and (not points or p.name in points):
                save(w, p.name, measure_cs(p, w, s, targets, ctx)["targets"])
            elif (p.search or p.control) and (not points or p.name in points):
                measure_search(p, w, s, targets, ctx, save=lambda found, w=w, p=p: save(w, p.name, found))
        for p, k, cfg in run_configs(s, base, w):
            if points and p.name not in points:
                continue
            ctx.progress(
                f"[frontier] {cfg.name}: inits {list(cfg.imp.init_seeds)}, {cfg.imp.rounds} rounds x {cfg.training.steps} steps"
            )
            save(w, p.name, measure(cfg, k, s, targets, ctx)["targets"])
    return res


Masks = dict[
    str, dict[int, dict[int, ls.Mask]]
]  # point → target round → init → its ticket (``ticket_masks``)


def ticket_masks(ws: Path, s: FrontierSettings, targets: Mapping[int, float], which: str) -> Masks:
    """Every point's ticket masks on the ``which`` inits: point → target round → init → mask, chosen as the
    accuracy tables choose them (``frontier_view.run_tickets``), from the runs stored under the point's names."""
    protocol = load_imp_config(s.base).training
    by_density = {d: k for k, d in targets.items()}
    out: dict[str, dict[int, dict[int, ls.Mask]]] = {}
    if not workspace_paths(ws).store.is_file():
        return out
    with Store.open(ws) as store:
        runs = store.runs()
        for p in s.points:
            # a shots run is for one target (``measure``); every other run has a ticket at each
            names = {f"frontier-{p.name}-{which}": targets} | {
                f"frontier-{p.name}-r{k}-{which}": {k: d} for k, d in targets.items()
            }
            for run in (r for r in runs if r.name in names):
                mine = names[run.name]
                found = frontier_view.run_tickets(
                    store, run.id, list(mine.values()), protocol, s.density_tolerance
                )
                masks = {i.id: i.mask for i in store.individuals(run.id, [t.individual_id for t in found])}
                for t in found:
                    if t.test_accuracy is not None:  # confirmed: the ticket the accuracy tables show
                        out.setdefault(p.name, {}).setdefault(by_density[t.target], {})[t.init] = masks[
                            t.individual_id
                        ]
    return out


Overlaps = dict[str, dict[str, dict[str, list[float]]]]  # point → target round → init → [J, chance J]


def overlaps(s: FrontierSettings, masks: Masks) -> dict[str, Overlaps]:
    """Per point, target and init, [Jaccard of its ticket with another's from the same θ₀, the Jaccard expected
    by chance at the two masks' layer densities] (``overlap.jaccard``, ``chance_jaccard``): under "reference"
    with the reference's ticket, under "repeat" (a point that ``repeats`` another under another batch order)
    with that point's ticket, the level two runs of one method reach (Grosse & Backes 2020). ``masks``: one
    set of inits' tickets."""

    def against(p: str, other: str) -> dict[str, dict[str, list[float]]]:
        out: dict[str, dict[str, list[float]]] = {}
        for k, inits in masks.get(p, {}).items():
            for init, m in inits.items():
                r = masks.get(other, {}).get(k, {}).get(init)
                if r is not None:
                    out.setdefault(str(k), {})[str(init)] = [jaccard(m, r), chance_jaccard(m, r)]
        return out

    ref = {p.name: against(p.name, s.reference) for p in s.points if p.name != s.reference}
    rep = {p.name: against(p.name, p.repeats) for p in s.points if p.repeats}
    return {"reference": {p: v for p, v in ref.items() if v}, "repeat": {p: v for p, v in rep.items() if v}}


# The methods whose tickets are compared across inits (question 1 for masks found with data): IMP's, the
# search's, Continuous Sparsification's.
ACROSS_INITS = ("imp20_3000", "ga_targets", "cs")


def across_inits(
    sets: Iterable[Masks],
    points: Sequence[str] = ACROSS_INITS,
    seed: int = 0,
    done: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Do different inits find the same ticket? Per method of ``points`` and target, the tickets of every
    init that has one (``sets``, each set's ``ticket_masks``, pooled) compared by ``stability.compare_masks``: raw overlap
    against chance, aligned overlap against the layerwise and the degree-preserving nulls, live units;
    intervals by the bootstrap over inits (from three inits on). An entry of ``done`` over the same inits is
    kept as it is (its comparison is a function of the masks and ``seed``)."""
    masks: Masks = {}
    for tickets in sets:
        for p, per in tickets.items():
            for k, inits in per.items():
                masks.setdefault(p, {}).setdefault(k, {}).update(inits)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for p in points:
        for k, inits in sorted(masks.get(p, {}).items()):
            if len(inits) < 2:
                continue
            before = (done or {}).get(p, {}).get(str(k))
            if before is not None and before["inits"] == sorted(inits):
                out.setdefault(p, {})[str(k)] = dict(before)
                continue
            m = compare_masks([inits[i] for i in sorted(inits)], np.random.default_rng([seed, k]))
            means = ("jaccard", "chance_jaccard", "aligned_jaccard", "aligned_chance_jaccard")
            out.setdefault(p, {})[str(k)] = {
                "inits": sorted(inits),
                "density": m["density"]["mean"],
                **{key: m[key]["mean"] for key in (*means, "degree_aligned_chance_jaccard")},
                "excess_overlap_ci": m["excess_overlap_ci"] and list(m["excess_overlap_ci"]),
                "aligned_excess_ci": m["aligned_excess_ci"] and list(m["aligned_excess_ci"]),
                "live_units": [[u["mean"], u["std"]] for u in m["live_units"]],
                "classes": m["classes"],
            }
    return out


def _ci(ci: Sequence[float] | None) -> str:
    return "[{:+.4f}, {:+.4f}]".format(*ci) if ci else "—"


def across_inits_text(res: Mapping[str, Any]) -> str:
    """The across-inits table: one row per method and target."""
    rows = []
    for p, per in res.get("across_inits", {}).items():
        for k, m in per.items():
            units = " / ".join(f"{mean:.0f} ± {sd:.1f}" for mean, sd in m["live_units"][:-1])
            rows.append(
                [
                    res["labels"][p],
                    f"≤ {100 * res['targets'][k]:.2f}%",
                    len(m["inits"]),
                    f"{m['jaccard']:.3f} ({m['chance_jaccard']:.3f})",
                    _ci(m["excess_overlap_ci"]),
                    f"{m['aligned_jaccard']:.3f} ({m['aligned_chance_jaccard']:.3f}, "
                    f"{m['degree_aligned_chance_jaccard']:.3f})",
                    _ci(m["aligned_excess_ci"]),
                    units,
                    f"{m['classes']} of {len(m['inits'])}",
                ]
            )
    if not rows:
        return ""
    header = [
        "method",
        "target",
        "inits",
        "Jaccard (chance)",
        "κ, 95% CI",
        "aligned Jaccard (layerwise null, degree null)",
        "aligned − degree null, 95% CI",
        "live units: input / hidden",
        "isomorphism classes",
    ]
    return (
        "**Do different inits find the same ticket?** Each method's tickets from every init that has one "
        "(development and held-out inits pooled), compared pair by pair: raw Jaccard against chance (κ, the "
        "excess over chance as a share of what chance leaves), Jaccard after aligning hidden units against "
        "aligned copies shuffled layerwise and shuffled keeping every unit's degrees, and live units per layer "
        "(mean ± sd over inits); intervals are percentile bootstraps over inits, not over pairs.\n\n"
        + markdown_table(header, rows)
    )


def across_inits_answer(res: Mapping[str, Any]) -> str:
    """Question 1 for the masks training finds: the across-inits table in a paragraph, read against the level
    two IMP runs from one θ₀ reach (empty before the overlaps pass)."""
    found = res.get("across_inits", {})
    if not found:
        return ""
    pct = lambda k: f"{100 * res['targets'][k]:.1f}%"  # noqa: E731
    span = lambda vals: f"{min(vals):+.3f} to {max(vals):+.3f}"  # noqa: E731
    where = lambda ks, of: "every target" if len(ks) == of else ", ".join(map(pct, ks)) or "no target"  # noqa: E731
    methods, above_chance, above_degree, all_distinct = [], [], [], True
    for p, per in found.items():
        n = max(len(m["inits"]) for m in per.values())
        all_distinct &= all(m["classes"] == len(m["inits"]) for m in per.values())
        kappa = [k for k, m in per.items() if m["excess_overlap_ci"] and m["excess_overlap_ci"][0] > 0]
        aligned = [k for k, m in per.items() if m["aligned_excess_ci"] and m["aligned_excess_ci"][0] > 0]
        excess = [m["aligned_jaccard"] - m["degree_aligned_chance_jaccard"] for m in per.values()]
        methods.append(f"{res['labels'][p]} ({n} inits)")
        above_chance.append(f"{res['labels'][p]} at {where(kappa, len(per))}")
        above_degree.append(f"{res['labels'][p]} at {where(aligned, len(per))}, by {span(excess)}")
    aligned_j = [m["aligned_jaccard"] for per in found.values() for m in per.values()]
    level = ""
    for p, per in res.get("overlap", {}).get("dev", {}).get("repeat", {}).items():
        js = [sum(r[0] for r in per[k].values()) / len(per[k]) for k in res["targets"] if per.get(k)]
        level = (
            f", where two runs of {res['labels'][res['repeats'][p]]} from one θ₀ under different batch orders "
            f"share J = {', '.join(f'{j:.2f}' for j in js)} at the same targets (one init: nothing to align)"
        )
    return (
        "**The masks that training finds** (LeNet-300-100 / MNIST, section 2f: "
        + ", ".join(methods)
        + ", at 7.0, 3.6 and 1.9% of the weights): "
        + ("every init's ticket is an isomorphism class of its own. " if all_distinct else "")
        + "Unlike SynFlow's masks, these tickets overlap above chance as sets of weights (κ's 95% bootstrap "
        "interval over inits above 0: "
        + "; ".join(above_chance)
        + ") and, after aligning hidden units, above the degree-preserving null ("
        + "; ".join(above_degree)
        + "): training reproduces a little of which weights a ticket keeps beyond the units' degrees. It is "
        f"far from one ticket: aligned Jaccard across inits is {min(aligned_j):.2f} to {max(aligned_j):.2f}"
        + level
        + "."
    )


# ---- the report ------------------------------------------------------------------------------------------
SETS = {"dev": "development inits", "heldout": "held-out inits"}


def _rows(res: Mapping[str, Any], which: str, point: str, k: int) -> dict[int, Mapping[str, Any]]:
    got = res.get("points", {}).get(which, {}).get(point, {}).get(str(k), {})
    return {int(seed): row for seed, row in got.items()}


def _acc(rows: Mapping[int, Mapping[str, Any]]) -> dict[int, float]:
    return {seed: 100 * row["test_accuracy"] for seed, row in rows.items()}


def _steps(rows: Mapping[int, Mapping[str, Any]], what: str) -> float:
    return sum(r[what] for r in rows.values()) / len(rows) if rows else math.nan


def verdicts(res: Mapping[str, Any], which: str) -> dict[tuple[str, int], Verdict]:
    """Every point against the reference at every target, paired by init: one family per init set."""
    family, ref = Family(), res["reference"]
    for k in map(int, res["targets"]):
        base = _acc(_rows(res, which, ref, k))
        for p in res["labels"]:
            if p != ref and _rows(res, which, p, k):
                family.compare((p, k), _acc(_rows(res, which, p, k)), base, res["equivalence_margin"])
    return family.decide()


def _cell(values: Mapping[int, float]) -> str:
    mean, lo, hi = mean_interval(list(values.values()))
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]" if len(values) > 1 else f"{mean:.2f}"


def table(res: Mapping[str, Any], which: str, k: int, decided: Mapping[tuple[str, int], Verdict]) -> str:
    rows = []
    for p, label in res["labels"].items():
        got = _rows(res, which, p, k)
        if not got:
            continue
        v = decided.get((p, k))
        rows.append(
            [
                label + (" (reference)" if p == res["reference"] else ""),
                len(got),
                f"{100 * sum(r['density'] for r in got.values()) / len(got):.2f}%",
                _cell(_acc(got)),
                f"{_steps(got, 'total_steps'):,.0f}",
                f"{_steps(got, 'critical_path_steps'):,.0f}",
                v.interval() if v else "",
                v.test_text() if v else "",
                str(v) if v else "",
            ]
        )
    header = [
        "method",
        "inits",
        "density",
        "test accuracy, % [95% CI]",
        "total steps",
        "critical-path steps",
        "− reference, points [95% CI]",
        "paired test",
        "verdict",
    ]
    return markdown_table(header, rows)


def cheapest(
    res: Mapping[str, Any],
    which: str,
    k: int,
    what: str,
    decided: Mapping[tuple[str, int], Verdict] | None = None,
) -> tuple[str, float] | None:
    """The point with the fewest ``what`` steps that reaches the reference's accuracy within the margin: by
    its verdict (equivalent within the margin by TOST, or better) when ``decided`` is given, else by its mean
    alone; with those steps. The reference itself always qualifies; None when it has no rows."""
    ref = _acc(_rows(res, which, res["reference"], k))
    if not ref:
        return None
    bar = sum(ref.values()) / len(ref) - res["equivalence_margin"]
    fits = []
    for p in res["labels"]:
        got = _rows(res, which, p, k)
        if not got:
            continue
        if decided is None or p == res["reference"]:
            ok = sum(_acc(got).values()) / len(got) >= bar
        else:
            v = decided.get((p, k))
            ok = v is not None and (v.kind == "better" or v.equivalent)
        if ok:
            fits.append((_steps(got, what), p))
    return min(fits)[::-1] if fits else None


def figure(res: Mapping[str, Any], which: str, ctx: Context) -> str:
    """Confirmed accuracy at each target against total and critical-path steps, every point on one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [int(k) for k in res["targets"]]
    fig, axes = plt.subplots(2, len(targets), figsize=(4.2 * len(targets), 7), squeeze=False)
    markers = "osD^v<>phX*"
    for col, k in enumerate(targets):
        ref = _acc(_rows(res, which, res["reference"], k))
        for row, (what, name) in enumerate(
            (("total_steps", "total"), ("critical_path_steps", "critical-path"))
        ):
            ax = axes[row][col]
            if ref:
                m = sum(ref.values()) / len(ref)
                ax.axhspan(
                    m - res["equivalence_margin"], m + res["equivalence_margin"], color="0.9", zorder=0
                )
            for i, (p, label) in enumerate(res["labels"].items()):
                got = _rows(res, which, p, k)
                if not got:
                    continue
                mean, lo, hi = mean_interval(list(_acc(got).values()))
                x = max(_steps(got, what), 1)
                ax.errorbar(
                    x,
                    mean,
                    yerr=[[mean - lo], [hi - mean]] if len(got) > 1 else None,
                    fmt=markers[i % len(markers)],
                    capsize=3,
                    label=label,
                )
            ax.set_xscale("log")
            ax.set_xlabel(f"{name} training steps to find the ticket")
            ax.set_ylabel("confirmed test accuracy, %")
            ax.set_title(f"≤ {100 * res['targets'][str(k)]:.2f}% of the weights")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    ctx.figures.mkdir(parents=True, exist_ok=True)
    path = ctx.figures / f"frontier_{which}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ctx.figure_link(path)


def render(res: Mapping[str, Any], ctx: Context) -> Rendered:
    t = res["protocol"]
    ref_label = res["labels"][res["reference"]]
    body = [
        f"IMP's frontier on `{res['model']}` / MNIST, every point an IMP run of the service (settings "
        f"[`{res['settings']}`](configs/{res['settings']})) from the same inits θ₀: per-layer rates of 20, 49 and "
        "80 % (the output layer at half), rounds of 1000 and 3000 steps, and one-shot and two-shot magnitude "
        "pruning with rewinding to each target density (the reference's per-round rates compounded). Every ticket "
        f"is confirmed with the full protocol (Adam lr {t['lr']:g}, batch {t['batch_size']}, {t['steps']} steps "
        f"from θ₀, evaluation every {t['eval_every']}, test accuracy at the lowest validation loss; a 3000-step "
        "round is its own confirmation). A point's ticket at a target is the first mask of its trajectory at or "
        "below the target's density. Steps are those spent to find the ticket (the rounds before its own "
        "training, which every method pays alike); IMP's rounds wait for each other, so its critical path equals "
        "its total for one init, and inits run side by side. The reference is "
        f"{ref_label}; verdicts compare each point with it, paired by init, as one family per set of inits "
        f"(paired t, Holm, TOST within ±{res['equivalence_margin']:.2f} points declared in the settings before "
        "any run).\n\nBeside IMP: Continuous Sparsification (a ticket of round r is its trajectory's first at or "
        "below the target; it cost the r searches before it), and the genetic search in ticket mode, one run per "
        "θ₀, its ticket at a target the best mask at or below it by the search's own fitness (validation "
        "accuracy after the fitness's steps), its cost the run's steps up to that mask's generation, its "
        "critical path one training per generation (its population trains side by side). Two searches ran on "
        "the development inits; the one run on the held-out inits was picked by a rule committed before the "
        "second ran (the higher mean confirmed accuracy over the three targets), and its population-of-one "
        "control (the same operators on one lineage, one child a generation, the search's total steps) ran "
        "beside it."
    ]
    answers = []
    for which, name in SETS.items():
        if not res.get("points", {}).get(which):
            continue
        decided = verdicts(res, which)
        body.append(f"\n\n### On the {name}\n\n![frontier]({figure(res, which, ctx)})")
        lines = []
        for k, d in res["targets"].items():
            body.append(f"\n\n**Density ≤ {100 * d:.2f}%** (the reference's round {k})\n\n")
            body.append(table(res, which, int(k), decided))
            parts = []
            for what, words in (
                ("total_steps", "total steps"),
                ("critical_path_steps", "critical-path steps"),
            ):
                c = cheapest(res, which, int(k), what, decided)
                m = cheapest(res, which, int(k), what)
                if c:
                    ref_steps = _steps(_rows(res, which, res["reference"], int(k)), what)
                    text = f"in {words}, {res['labels'][c[0]]} ({c[1]:,.0f}, {c[1] / ref_steps:.2f} of the reference's)"
                    if m and m[0] != c[0]:
                        text += (
                            f" (by the means alone: {res['labels'][m[0]]}, {m[1]:,.0f}, "
                            f"{m[1] / ref_steps:.2f}, not shown by its test)"
                        )
                    parts.append(text)
            if parts:
                lines.append(
                    f"at ≤ {100 * d:.2f}%, the cheapest point shown within ±{res['equivalence_margin']:.2f} points "
                    f"of the reference (TOST) or better: " + "; ".join(parts)
                )
        goals = search_targets(res, which, decided)
        if goals:
            body.append("\n\n" + goals)
        over = res.get("overlap", {}).get(which)
        if over and over.get("reference"):
            body.append("\n\n" + overlap_text(res, over))
        ran = [res["labels"][p] for p in res["labels"] if res["points"][which].get(p)]
        missing = [res["labels"][p] for p in res["labels"] if not res["points"][which].get(p)]
        if not lines:
            lines.append(f"the reference ({ref_label}) has not run on them yet, so nothing is compared")
        if missing:
            lines.append(
                f"not run yet: {', '.join(f'*{m}*' for m in missing)} ({len(ran)} of {len(res['labels'])} points ran)"
            )
        answers.append(f"On the {name}: " + "; ".join(lines) + ".")
    across = across_inits_text(res)
    if across:
        body.append("\n\n" + across)
    return Rendered(body="".join(body), answer=" ".join(answers), also={1: across_inits_answer(res)})


def search_targets(res: Mapping[str, Any], which: str, decided: Mapping[tuple[str, int], Verdict]) -> str:
    """The search's targets against the reference, per target density: the search is the point the
    population-of-one control controls (frozen on the development inits before the held-out ones ran).
    Ticket: equivalent within the margin (TOST) or better; critical path at most 1/4 of the reference's with
    at most 16 workers; total steps at most 1/2, and no other point at least as accurate on its mean with
    fewer total and critical-path steps; the control at equal steps worse (a family of its own, Holm over
    the targets); stretch: total steps at most 1/10."""
    controls = res.get("controls", {})
    if not controls:
        return ""
    control, search = next(iter(controls.items()))
    ref, ks = res["reference"], list(res["targets"])
    if not all(_rows(res, which, search, int(k)) and _rows(res, which, ref, int(k)) for k in ks):
        return ""
    own = Family()
    for k in ks:
        got = _acc(_rows(res, which, control, int(k)))
        if got:
            own.compare(k, _acc(_rows(res, which, search, int(k))), got, res["equivalence_margin"])
    versus = own.decide()
    workers = res.get("workers", {}).get(search, 0)
    cells: dict[str, list[str]] = {name: [] for name in ("ticket", "critical", "total", "control", "stretch")}
    for k in ks:
        # per point with tickets here: (mean confirmed accuracy, total steps, critical-path steps)
        at = {
            p: (
                sum(_acc(got).values()) / len(got),
                _steps(got, "total_steps"),
                _steps(got, "critical_path_steps"),
            )
            for p in res["labels"]
            if (got := _rows(res, which, p, int(k)))
        }
        mine, ref_at = at[search], at[ref]
        v = decided[(search, int(k))]
        total, crit = mine[1] / ref_at[1], mine[2] / ref_at[2]
        cheaper = [
            res["labels"][p]
            for p, (acc, steps, path) in at.items()
            if p not in (search, control) and acc >= mine[0] and steps < mine[1] and path < mine[2]
        ]
        ok = lambda b: "**reached**" if b else "**not reached**"  # noqa: E731
        cells["ticket"].append(f"{ok(v.kind == 'better' or v.equivalent)}: {v.interval()}, {v}")
        cells["critical"].append(f"{ok(crit <= 0.25 and 0 < workers <= 16)}: {crit:.2f}×, {workers} workers")
        beaten = f"; as accurate and cheaper both ways: {', '.join(cheaper)}" if cheaper else ""
        cells["total"].append(f"{ok(total <= 0.5 and not cheaper)}: {total:.2f}×{beaten}")
        c = versus.get(k)
        cells["control"].append(
            "not run" if c is None else f"{ok(c.kind == 'better')}: search − control {c.interval()}, {c}"
        )
        cells["stretch"].append(f"{ok(total <= 0.1)}: {total:.2f}×")
    names = {
        "ticket": f"confirmed ticket within ±{res['equivalence_margin']:.2f} points of the reference (TOST) or better",
        "critical": "critical path ≤ 1/4 of the reference's, ≤ 16 workers",
        "total": "total steps ≤ 1/2 of the reference's, no point as accurate (means) with fewer of both",
        "control": "the population-of-one control at equal steps worse (paired t, Holm over the targets)",
        "stretch": "stretch: total steps ≤ 1/10 of the reference's",
    }
    header = ["target", *(f"≤ {100 * res['targets'][k]:.2f}%" for k in ks)]
    table_rows = [[names[n], *cells[n]] for n in names]
    return (
        f"**The search's targets** ({res['labels'][search]}, against the reference; its control: "
        f"{res['labels'][control]}).\n\n" + markdown_table(header, table_rows)
    )


def _jaccard_cell(rows: Mapping[str, Sequence[float]]) -> str:
    mean, lo, hi = mean_interval([r[0] for r in rows.values()])
    chance = sum(r[1] for r in rows.values()) / len(rows)
    interval = f" [{lo:.3f}, {hi:.3f}]" if len(rows) > 1 else ""
    return f"{mean:.3f}{interval} ({chance:.3f})"


def overlap_text(res: Mapping[str, Any], over: Mapping[str, Overlaps]) -> str:
    """Each point's ticket against the reference's from the same θ₀: mean Jaccard with its 95% t interval
    over inits and, in parentheses, the Jaccard expected by chance; then the level of two runs of one method."""
    ks = list(res["targets"])
    rows = [
        [res["labels"][p], *(_jaccard_cell(per[k]) if per.get(k) else "" for k in ks)]
        for p, per in over["reference"].items()
    ]
    header = ["method", *(f"≤ {100 * res['targets'][k]:.2f}%" for k in ks)]
    ref = res["labels"][res["reference"]]
    text = (
        f"**Overlap with the reference's ticket.** Jaccard J of each method's ticket with the ticket of {ref} "
        "from the same θ₀ (kept weights over all layers; mean [95% CI] over inits; in parentheses the J of "
        "masks drawn at random at the same layer densities).\n\n" + markdown_table(header, rows)
    )
    for p, per in over.get("repeat", {}).items():
        other = res["repeats"][p]
        cells = "; ".join(
            f"≤ {100 * res['targets'][k]:.2f}%: J = {_jaccard_cell(per[k])}" for k in ks if per.get(k)
        )
        text += (
            f"\n\nThe level two runs of one method reach: {res['labels'][p]} against {res['labels'][other]} "
            f"from the same θ₀, the same schedule under another order of minibatches: {cells}."
        )
    return text


SECTION = Section(KEY, "IMP's frontier: the yardstick", 2, lambda ctx: run(ctx, ("dev", "heldout")), render)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="", help="MNIST's IDX files (default: $LOTTERYSEARCH_DATA)")
    ap.add_argument("--inits", choices=("dev", "heldout", "both"), default="dev")
    ap.add_argument("--points", default="", help="comma-separated point names (default: every point)")
    ap.add_argument(
        "--overlaps",
        action="store_true",
        help="train nothing: save the tickets' overlap with the reference's and across inits",
    )
    args = ap.parse_args(argv)
    ctx = Context(
        settings="small", root=ROOT, data_dir=args.data_dir, progress=lambda m: print(m, flush=True)
    )
    which = ("dev", "heldout") if args.inits == "both" else (args.inits,)
    try:
        run(ctx, which, [p for p in args.points.split(",") if p], overlap_only=args.overlaps)
    except LotterySearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
