"""Question 2: can a genetic algorithm find the lottery ticket?

The SynFlow-seeded NSGA-II search (``lotterysearch.api``) against three baselines at equal training
compute, counted in training steps:

* the GA: the steps its generations report (``GenerationReport.steps``: one fitness training per isomorphism
  class it trained); isomorph hits cost nothing and SynFlow seeding trains nothing;
* SynFlow masks alone: SynFlow from more inits on a grid of densities (the GA's own seeds first), each
  scored with the GA's fitness, as many as the GA's steps pay for;
* random masks with SynFlow's per-layer densities (``masks.layerwise_shuffle`` of those SynFlow masks);
* IMP tickets (Frankle & Carbin 2019, rewinding to init): trajectories from successive inits, every round
  of training counted, tickets landed at the grid densities (``pruning.imp(..., tickets_at=grid)``: one
  trajectory per init cuts every grid ticket) and scored with the same fitness.

Each baseline gets the steps the aligned-crossover GA spent in the same replicate (GA seed: its RNG and its
validation split). Fronts are compared as hypervolume of (validation accuracy, density) and as A(d), the
best accuracy among masks of density ≤ d, at fixed d. Selection used validation accuracy, so the selected
masks are then retrained from fresh init seeds and scored on the test split: a method is not credited for
the noise it selected on (the winner's curse). The same search with ``ga.align = false`` measures what
aligning hidden neurons before crossover buys. Every comparison is paired by GA seed and decided in one family
(``lotterysearch.verdicts``: paired t, Holm over the section, TOST within the declared margin), in points.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tempfile
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments import common
from experiments.common import Context, Rendered, Section
from lotterysearch.api import create_run
from lotterysearch.core.data import Dataset, load_dataset
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model
from lotterysearch.evolution import pareto
from lotterysearch.evolution.loop import GenerationReport
from lotterysearch.evolution.pareto import REF_POINT, hypervolume
from lotterysearch.pruning.pruners import imp, imp_plan, prune
from lotterysearch.readers.report import origin_label
from lotterysearch.settings import (
    FitnessConfig,
    GAConfig,
    SearchConfig,
    SeedingConfig,
    TrainingConfig,
    validate,
)
from lotterysearch.stats import markdown_table, mean_std, pm
from lotterysearch.training.fitness import evaluate_mask
from lotterysearch.training.trainer import train
from lotterysearch.verdicts import Verdict

PENDING = False

Point = tuple[float, float]  # (accuracy, density), as the search's objectives
OTHER_ORDER = 7919  # batch seed offset for "own init, another batch order"


# ---- settings ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GAModel:
    """One model/dataset: the search, its fitness training (also IMP's round) and the baselines' grid."""

    model: str
    dataset: str
    population: int
    generations: int
    seed_compressions: tuple[float, ...]  # the GA's SynFlow seeds (ρ); include 1/d of the fixed densities
    grid_compressions: tuple[float, ...]  # SynFlow-alone, random and IMP masks are made at these ρ
    training: TrainingConfig = field(default_factory=TrainingConfig)  # fitness, IMP rounds, retraining
    seed_inits: int = 4  # SynFlow inits seeding the GA (per replicate)
    imp_rate: float = 0.2  # IMP prunes this share of each layer per round (the output layer half of it)
    synflow_iterations: int = 100


@dataclass(frozen=True)
class GASettings:
    models: tuple[GAModel, ...]
    replicates: tuple[int, ...]  # GA seeds; replicate r finds its masks from inits 1000·(r+1) on
    retrain_seeds: tuple[int, ...]  # fresh inits for the test retraining
    densities: tuple[float, ...] = (0.1, 0.03, 0.01)  # A(d) is reported here
    sparse_density: float = 0.1  # HV restricted to density ≤ this (the ticket regime)
    # Two test accuracies (or hypervolumes, × 100) within this many points count as level: the margin of every
    # equivalence test (TOST) of the section, as section 1's on the same data. Declared before the next run,
    # which stores it with its settings; the saved runs were made before it was declared.
    equivalence_margin: float = 0.5


GRID = (3.0, 5.0, 20 / 3, 10.0, 100 / 7, 20.0, 100 / 3, 50.0, 200 / 3, 100.0)  # densities 1/3 ... 1%
MNIST1D = GAModel(
    "mlp:40-100-100-10",
    "mnist1d",
    population=24,
    generations=8,
    seed_compressions=(3.0, 10.0, 100 / 3, 100.0),
    grid_compressions=GRID,
)
MNIST1D_LARGE = dataclasses.replace(MNIST1D, population=48, generations=25)
LENET = dataclasses.replace(
    MNIST1D,
    model="mlp:784-300-100-10",
    dataset="mnist",
    generations=10,
    training=TrainingConfig(steps=200, lr=0.0012, batch_size=60),
)
SETTINGS = {
    "small": GASettings(models=(MNIST1D,), replicates=(0, 1, 2), retrain_seeds=(100_000, 100_001, 100_002)),
    "large": GASettings(
        models=(MNIST1D_LARGE, LENET),
        replicates=(0, 1, 2, 3, 4),
        retrain_seeds=tuple(range(100_000, 100_005)),
    ),
}
METHODS = ("ga_aligned", "ga_unaligned", "synflow", "random", "imp")
LABELS = {
    "ga_aligned": "GA, aligned crossover",
    "ga_unaligned": "GA, unaligned crossover",
    "synflow": "SynFlow masks alone",
    "random": "random, SynFlow's layer densities",
    "imp": "IMP tickets",
}
STYLE = {
    "ga_aligned": ("#1f77b4", "-"),
    "ga_unaligned": ("#17becf", "--"),
    "synflow": ("#2ca02c", "-"),
    "random": ("#7f7f7f", ":"),
    "imp": ("#d62728", "-."),
}


def describe(s: GASettings) -> str:
    """One table cell for ``run_all``'s settings table."""
    models = "; ".join(
        f"`{m.model}`/{m.dataset}: population {m.population}, {m.generations} generations, fitness "
        f"{m.training.steps} steps"
        for m in s.models
    )
    return (
        f"{models}; {len(s.replicates)} GA seeds × aligned/unaligned; baselines at equal steps on "
        f"{len(s.models[0].grid_compressions)} densities; {len(s.retrain_seeds)} fresh inits for the test retraining"
    )


# ---- pure helpers (tests/test_experiments_ga.py) ---------------------------------------------------------
def spread_order(n: int) -> list[int]:
    """0..n-1 ordered so that every prefix spreads over the range: both ends, then midpoints by bisection.
    A budget that runs out inside one init's grid still buys dense and sparse masks alike."""
    if n <= 0:
        return []
    if n == 1:
        return [0]
    order, queue = [0, n - 1], deque([(0, n - 1)])
    while queue:
        lo, hi = queue.popleft()
        if hi - lo >= 2:
            mid = (lo + hi) // 2
            order.append(mid)
            queue += [(lo, mid), (mid, hi)]
    return order


def affordable(costs: Sequence[int], budget: int) -> int:
    """How many of ``costs``, paid in order, fit in ``budget``: the longest prefix with sum ≤ budget."""
    total = 0
    for i, cost in enumerate(costs):
        total += cost
        if total > budget:
            return i
    return len(costs)


def best_at_density(points: Sequence[Point], density: float) -> int | None:
    """Index of the most accurate point with density ≤ ``density`` (ties: the sparser, then the first), or
    None when no point is that sparse. Its accuracy is A(d), the accuracy reported at a fixed density."""
    best = None
    for i, (acc, d) in enumerate(points):
        if d <= density * (1 + 1e-9) and (
            best is None or acc > points[best][0] or (acc == points[best][0] and d < points[best][1])
        ):
            best = i
    return best


def accuracy_at_density(points: Sequence[Point], density: float) -> float:
    """A(d): the best accuracy among points with density ≤ d; NaN when there is none."""
    i = best_at_density(points, density)
    return math.nan if i is None else points[i][0]


def mean_best_accuracy(points: Sequence[Point], max_density: float) -> float:
    """(1/d_max)·∫₀^d_max A(d) dd with A(d) = 0 below the sparsest point: the hypervolume of the points of
    density < d_max against the reference (0, d_max), over d_max. At d_max = 1 it is the search's
    hypervolume (reference (0, 1)), i.e. hypervolume is the integral of A over all densities."""
    return hypervolume([p for p in points if p[1] < max_density], (0.0, max_density)) / max_density


def step_value(xs: Sequence[float], ys: Sequence[float], x: float, before: float = 0.0) -> float:
    """The step function through (xs, ys) (xs ascending) at x: the y of the last xs ≤ x, ``before`` left of
    the first. Used to read a method's hypervolume at a given number of training steps."""
    i = bisect_right(list(xs), x) - 1
    return float(ys[i]) if i >= 0 else before


def hypervolume_curve(items: Sequence[tuple[int, Point | None]]) -> tuple[list[int], list[float]]:
    """Cumulative steps and hypervolume of the points scored so far, after each item paid in order: an item
    is (its steps, the point it scored or None for training that scores nothing, e.g. an IMP trajectory)."""
    steps, hvs, points, total = [], [], [], 0
    for cost, point in items:
        total += cost
        if point is not None:
            points.append(point)
        steps.append(total)
        hvs.append(hypervolume(points, REF_POINT) if points else 0.0)
    return steps, hvs


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean, std and n of the per-replicate differences a_r − b_r (same GA seed, split and budget)."""
    return mean_std(x - y for x, y in zip(a, b, strict=True))


def verdict(diff: Mapping[str, float], z: float = 2.0) -> str:
    """The report's earlier 2-SE screen, kept to mark the verdicts that changed: 'better' / 'worse' when a
    paired mean difference lies beyond ``z`` standard errors of zero, else 'indistinguishable' (also with fewer
    than two replicates: no error estimate); 'no data' when a method had no mask to compare (NaN). The
    section's verdicts are tests (``verdicts``)."""
    n, mean, std = diff["n"], diff["mean"], diff["std"]
    if math.isnan(mean):
        return "no data"
    if n < 2:
        return "indistinguishable"
    se = std / math.sqrt(n)
    if abs(mean) <= z * se:
        return "indistinguishable"
    return "better" if mean > 0 else "worse"


def paired_text(diff: Mapping[str, float]) -> str:
    se = diff["std"] / math.sqrt(diff["n"]) if diff["n"] > 1 else math.nan
    return f"{diff['mean']:+.3f} ± {se:.3f} (SE)"


# ---- work done on Ray (one CPU, one torch thread each) -------------------------------------------------
def _one_thread(fn: Callable[..., Any], *args: Any) -> Any:
    torch.set_num_threads(1)
    return fn(*args)


def _submit(fn: Callable[..., Any], calls: Sequence[tuple]) -> list[Any]:
    """Start ``fn(*args)`` for each args on the local Ray the search started; ``ray.get`` the refs."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=2)(_one_thread)
    return [remote.remote(fn, *args) for args in calls]


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _synflow_masks(spec: str, seed: int, compressions: Sequence[float], iterations: int) -> list[bytes]:
    model = build_model(spec, seed)
    return [prune(model, "synflow", c, iterations=iterations, seed=seed).pack() for c in compressions]


def _fitness(
    spec: str,
    packed: Sequence[bytes],
    shapes: Mapping[str, tuple[int, ...]],
    data: Dataset,
    cfg: FitnessConfig,
    mode: str,
) -> list[float]:
    return [evaluate_mask(Mask.unpack(p, shapes), spec, data, cfg, mode).accuracy for p in packed]


def _test_accuracy(
    spec: str,
    jobs: Sequence[tuple[bytes, int]],
    shapes: Mapping[str, tuple[int, ...]],
    test_as_val: Dataset,
    cfg: FitnessConfig,
    mode: str,
) -> list[float]:
    """Test accuracy of each (mask, init seed): the fitness training from that init, scored on the test split
    (``test_as_val`` holds the test split in place of the validation one)."""
    return [
        evaluate_mask(
            Mask.unpack(p, shapes), spec, test_as_val, dataclasses.replace(cfg, init_seeds=(s,)), mode
        ).accuracy
        for p, s in jobs
    ]


def _other_batch_order(
    spec: str,
    packed: bytes,
    shapes: Mapping[str, tuple[int, ...]],
    data: Dataset,
    seed: int,
    cfg: FitnessConfig,
    mode: str,
) -> float:
    """Test accuracy of a ticket trained from its own init ``seed`` but on another batch order than IMP's."""
    model = build_model(spec, seed)
    mask = Mask.unpack(packed, shapes)
    r = train(model, mask, data, cfg.training(), mode=mode, seed=seed + OTHER_ORDER, evaluate_test=True)
    return float(r.test_accuracy)


def _imp_trajectory(
    spec: str, seed: int, grid: Sequence[float], m: GAModel, data: Dataset, mode: str
) -> dict[str, Any]:
    """One IMP trajectory from init ``seed`` to the sparsest grid point, with every grid ticket cut on the
    way (layerwise, rewinding to init, one fitness training per round)."""
    model = build_model(spec, seed)
    result = imp(
        model, max(grid), data, training=m.training, rate=m.imp_rate, mode=mode, seed=seed, tickets_at=grid
    )
    return {"tickets": {c: t.pack() for c, t in result.tickets.items()}, "rounds": result.rounds}


# ---- one replicate --------------------------------------------------------------------------------------
def init_base(replicate: int) -> int:
    """First init seed of a replicate: 1000·(r+1), so no mask is found from the fitness's init seed 0 (an
    IMP ticket scored from its own init would get its ticket advantage in the fitness) nor from another
    replicate's or the retraining's inits."""
    return 1000 * (replicate + 1)


def search_config(m: GAModel, replicate: int, align: bool, data_dir: str) -> SearchConfig:
    base = init_base(replicate)
    return validate(
        SearchConfig(
            name=f"ga-{'aligned' if align else 'unaligned'}-r{replicate}",
            dataset=m.dataset,
            model=m.model,
            seed=replicate,
            data_dir=data_dir,
            seeding=SeedingConfig(
                init_seeds=tuple(base + j for j in range(m.seed_inits)),
                compressions=m.seed_compressions,
                iterations=m.synflow_iterations,
            ),
            ga=GAConfig(population=m.population, generations=m.generations, align=align),
            fitness=FitnessConfig(
                **asdict(m.training),
                init_seeds=(0,),
                # every class at the full budget: the steps the generations report are then all it cost
                successive_halving=False,
            ),
        )
    )


@dataclass
class Candidate:
    """A scored mask of one method: where it came from, its objectives, the packed mask.

    With ``id`` (its place among the method's masks), ``fidelity`` and ``class_key`` it is a
    ``pareto.Scored``, so a method's front is ``pareto.front`` of its candidates; the key is left empty, so
    the front lists one mask per (accuracy, density), the first.
    """

    id: int
    packed: bytes
    density: float
    accuracy: float  # validation (the fitness)
    origin: str
    own_seed: int | None = None  # IMP: the init its ticket was found from
    fidelity: float = 1.0
    class_key: str = ""


def run_search(cfg: SearchConfig, workspace: Path, ctx: Context) -> dict[str, Any]:
    """Run one search to the end and read back what the comparison needs: the steps each generation
    trained and its hypervolume, the front, and the fitness of the SynFlow seeds."""
    reports: list[GenerationReport] = []

    def progress(g: GenerationReport) -> None:
        reports.append(g)
        if g.generation % 4 == 0:
            ctx.progress(f"  [ga] {cfg.name} {g.line()}")

    with create_run(cfg, workspace) as run:
        run.optimize(progress=progress)
        individuals = run.individuals()
        front = run.front()
        history = run.history()
    synflow_seeds = {
        ind.origin: ind.accuracy
        for ind in individuals
        if ind.origin.startswith("synflow:") and "+" not in ind.origin
    }
    return {
        "run_id": run.id,
        "steps": sum(g.steps for g in reports),
        "classes": sum(g.evaluated for g in reports),
        "individuals": len(individuals),
        "generation_steps": list(itertools.accumulate(g.steps for g in reports)),
        "generation_hv": [g.hypervolume for g in history],
        "front": [
            Candidate(i, ind.packed, ind.density, ind.accuracy, origin_label(ind))
            for i, ind in enumerate(front)
        ],
        "synflow_seeds": synflow_seeds,
    }


def run_replicate(m: GAModel, s: GASettings, r: int, workspace: Path, ctx: Context) -> dict[str, Any]:
    import ray

    t0 = time.monotonic()
    tag = f"[ga] {m.model} replicate {r}"
    ga = {
        align: run_search(search_config(m, r, align, ctx.data_dir), workspace, ctx) for align in (True, False)
    }
    cfg = search_config(m, r, True, ctx.data_dir)
    fit, mode = cfg.fitness, cfg.mode
    shapes = Mask.ones(build_model(m.model, 0)).shapes
    budget = ga[True]["steps"]
    unit = fit.steps * len(fit.init_seeds)
    t_ga = time.monotonic() - t0
    ctx.progress(f"{tag}: GA aligned {budget} steps, unaligned {ga[False]['steps']} steps ({t_ga:.0f} s)")

    data = load_dataset(m.dataset, r, data_dir=ctx.data_dir or None)
    data_ref = ray.put(data)
    test_ref = ray.put(dataclasses.replace(data, x_val=data.x_test, y_val=data.y_test))
    base = init_base(r)
    grid = list(m.grid_compressions)
    order = spread_order(len(grid))

    # IMP: whole trajectories from successive inits (every round counted, charged before any ticket), then
    # their tickets in spread order, as far as the budget goes. Submitted first: they are the longest tasks.
    rounds = len(imp_plan(build_model(m.model, 0), max(grid), rate=m.imp_rate))
    trajectory = rounds * m.training.steps
    items = [
        (("trajectory", j, 0.0), trajectory) if i < 0 else (("ticket", j, grid[order[i]]), unit)
        for j in range(budget // trajectory + 1)
        for i in [-1, *range(len(grid))]
    ]
    chosen = items[: affordable([cost for _, cost in items], budget)]
    imp_seeds = sorted({base + j for (what, j, _), _ in chosen if what == "trajectory"})
    imp_refs = _submit(_imp_trajectory, [(m.model, seed, grid, m, data_ref, mode) for seed in imp_seeds])

    # SynFlow alone and random: as many masks as the budget pays for, init-major (the GA's inits first).
    n = affordable([unit] * (budget // unit + 1), budget)
    plan = [(base + k // len(grid), grid[order[k % len(grid)]]) for k in range(n)]
    by_seed: dict[int, list[float]] = {}
    for seed, c in plan:
        by_seed.setdefault(seed, []).append(c)
    pruned = ray.get(
        _submit(_synflow_masks, [(m.model, seed, cs, m.synflow_iterations) for seed, cs in by_seed.items()])
    )
    packed_of = {
        (seed, c): p
        for (seed, cs), ps in zip(by_seed.items(), pruned, strict=True)
        for c, p in zip(cs, ps, strict=True)
    }
    synflow = [packed_of[key] for key in plan]
    rng = np.random.default_rng([r, 2])
    random = [layerwise_shuffle(Mask.unpack(p, shapes), rng).pack() for p in synflow]
    fit_refs = _submit(
        _fitness, [(m.model, ch, shapes, data_ref, fit, mode) for ch in _chunks(synflow + random, 8)]
    )
    trajectories = dict(zip(imp_seeds, ray.get(imp_refs), strict=True))
    tickets = [(base + j, c) for (what, j, c), _ in chosen if what == "ticket"]
    ticket_packed = [trajectories[seed]["tickets"][c] for seed, c in tickets]
    ticket_refs = _submit(
        _fitness, [(m.model, ch, shapes, data_ref, fit, mode) for ch in _chunks(ticket_packed, 8)]
    )
    accs = list(itertools.chain.from_iterable(ray.get(fit_refs)))
    ticket_acc = list(itertools.chain.from_iterable(ray.get(ticket_refs)))
    sf_acc, rnd_acc = accs[:n], accs[n:]

    def cands(packed: Sequence[bytes], acc: Sequence[float], origin: str) -> list[Candidate]:
        return [
            Candidate(i, p, Mask.unpack(p, shapes).density(), a, f"{origin}:seed={seed}:rho={c:g}")
            for i, (p, a, (seed, c)) in enumerate(zip(packed, acc, plan, strict=True))
        ]

    methods: dict[str, dict[str, Any]] = {
        "synflow": {"all": cands(synflow, sf_acc, "synflow"), "steps": n * unit},
        "random": {"all": cands(random, rnd_acc, "random"), "steps": n * unit},
    }
    for key in ("synflow", "random"):
        methods[key]["curve"] = hypervolume_curve(
            [(unit, (c.accuracy, c.density)) for c in methods[key]["all"]]
        )
    # the GA's SynFlow seeds are among the SynFlow-alone masks: their fitness must agree exactly
    seeded = {f"synflow:seed={seed}:rho={c:g}": a for (seed, c), a in zip(plan, sf_acc, strict=True)}
    consistency = [
        abs(a - seeded[o]) for g in ga.values() for o, a in g["synflow_seeds"].items() if o in seeded
    ]

    imp_all = [
        Candidate(i, p, Mask.unpack(p, shapes).density(), a, f"imp:seed={seed}:rho={c:g}", own_seed=seed)
        for i, (p, a, (seed, c)) in enumerate(zip(ticket_packed, ticket_acc, tickets, strict=True))
    ]
    scored = iter(imp_all)
    curve_items: list[tuple[int, Point | None]] = []
    for (what, _, _), cost in chosen:
        t = None if what == "trajectory" else next(scored)
        curve_items.append((cost, None if t is None else (t.accuracy, t.density)))
    methods["imp"] = {
        "all": imp_all,
        "steps": sum(cost for _, cost in chosen),
        "curve": hypervolume_curve(curve_items),
        "trajectories": len(imp_seeds),
        "rounds": rounds,
    }
    for align, key in ((True, "ga_aligned"), (False, "ga_unaligned")):
        g = ga[align]
        methods[key] = {
            "front": g["front"],
            "steps": g["steps"],
            "curve": (g["generation_steps"], g["generation_hv"]),
            "classes": g["classes"],
            "individuals": g["individuals"],
        }
    for key in ("synflow", "random", "imp"):
        methods[key]["front"] = pareto.front(methods[key]["all"])
    t_base = time.monotonic() - t0 - t_ga
    ctx.progress(
        f"{tag}: baselines {n} SynFlow + {n} random masks, {len(imp_seeds)} IMP trajectories of {rounds} "
        f"rounds + {len(tickets)} tickets ({t_base:.0f} s)"
    )

    # Test retraining: every front mask from the fresh inits and from the selection init (0); IMP's also
    # from their own init. The IMP picks once more from their own init with another batch order.
    jobs: list[tuple[bytes, int]] = []
    for key in METHODS:
        for c in methods[key]["front"]:
            jobs += [(c.packed, seed) for seed in (*s.retrain_seeds, fit.init_seeds[0])]
            if c.own_seed is not None:
                jobs.append((c.packed, c.own_seed))
    unique = list(dict.fromkeys(jobs))
    test_refs = _submit(
        _test_accuracy, [(m.model, ch, shapes, test_ref, fit, mode) for ch in _chunks(unique, 6)]
    )
    imp_picks = {}
    for d in s.densities:
        i = best_at_density([(c.accuracy, c.density) for c in methods["imp"]["front"]], d)
        if i is not None:
            imp_picks[d] = methods["imp"]["front"][i]
    order_refs = _submit(
        _other_batch_order,
        [(m.model, c.packed, shapes, data_ref, c.own_seed, fit, mode) for c in imp_picks.values()],
    )
    test = dict(zip(unique, itertools.chain.from_iterable(ray.get(test_refs)), strict=True))
    other_order = {c.packed: a for c, a in zip(imp_picks.values(), ray.get(order_refs), strict=True)}
    out: dict[str, Any] = {}
    for key in METHODS:
        meth = methods[key]
        front = []
        for c in meth["front"]:
            front.append(
                {
                    "density": c.density,
                    "val": c.accuracy,
                    "test": [test[(c.packed, seed)] for seed in s.retrain_seeds],
                    "test_selection_init": test[(c.packed, fit.init_seeds[0])],
                    "test_own_init": None if c.own_seed is None else test[(c.packed, c.own_seed)],
                    "test_own_init_other_order": other_order.get(c.packed),
                    "origin": c.origin,
                }
            )
        val_points = [(f["val"], f["density"]) for f in front]
        test_points = [(float(np.mean(f["test"])), f["density"]) for f in front]
        picks = {}
        for d in s.densities:
            i = best_at_density(val_points, d)
            picks[f"{d:g}"] = None if i is None else front[i]
        out[key] = {
            "steps": meth["steps"],
            "hv": hypervolume(val_points, REF_POINT),
            "hv_sparse": mean_best_accuracy(val_points, s.sparse_density),
            "test_hv": hypervolume(test_points, REF_POINT),
            "test_hv_sparse": mean_best_accuracy(test_points, s.sparse_density),
            "curve": {"steps": list(meth["curve"][0]), "hv": list(meth["curve"][1])},
            "front": front,
            "picks": picks,
            **{k: meth[k] for k in ("classes", "individuals", "trajectories", "rounds") if k in meth},
        }
    t_test = time.monotonic() - t0 - t_ga - t_base
    ctx.progress(f"{tag}: test retraining of {len(unique)} (mask, init) pairs ({t_test:.0f} s)")
    return {
        "replicate": r,
        "init_base": base,
        "budget": budget,
        "unit": unit,
        "methods": out,
        "seed_consistency": max(consistency, default=math.nan),
        "seed_consistency_n": len(consistency),
        "seconds": {"ga": t_ga, "baselines": t_base, "test": t_test, "total": time.monotonic() - t0},
    }


def run(ctx: Context) -> dict[str, Any]:
    from lotterysearch.execution.cluster import connect, disconnect

    s = SETTINGS[ctx.settings]
    out: dict[str, Any] = {"settings": asdict(s), "models": []}
    connect()
    try:
        for m in s.models:
            with tempfile.TemporaryDirectory(prefix="ga-experiment-") as ws:
                reps = [run_replicate(m, s, r, Path(ws), ctx) for r in s.replicates]
            out["models"].append({**asdict(m), "replicates": reps})
    finally:
        disconnect()
    return out


# ---- rendering (reads only the saved results) -----------------------------------------------------------
def _nan_stats(values: Sequence[float]) -> dict[str, float]:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return mean_std(v if len(v) == len(values) else [])


def _field(reps: Sequence[Mapping[str, Any]], method: str, field: str) -> list[float]:
    return [float(rep["methods"][method][field]) for rep in reps]


def _pick(reps: Sequence[Mapping[str, Any]], method: str, d: float, what: str) -> list[float]:
    """Per replicate, one number of the mask chosen at density ≤ d: "val", "density", "test" (mean over the
    fresh inits), "test_selection_init", "test_own_init" or "test_own_init_other_order"; NaN where the method
    has no mask that sparse."""
    out = []
    for rep in reps:
        p = rep["methods"][method]["picks"][f"{d:g}"]
        if p is None or p.get(what) is None:
            out.append(math.nan)
        else:
            out.append(float(np.mean(p[what])) if what == "test" else float(p[what]))
    return out


def _band(ax: Any, x: np.ndarray, ys: np.ndarray, method: str, label: str) -> None:
    color, ls = STYLE[method]
    mean = ys.mean(0)
    ax.plot(x, mean, ls, color=color, lw=1.8, label=label)
    if len(ys) > 1:
        sd = ys.std(0, ddof=1)
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)


def hypervolume_figure(res: Mapping[str, Any]):  # noqa: ANN201 - matplotlib Figure
    from matplotlib.figure import Figure

    reps = res["replicates"]
    fig = Figure(figsize=(11.5, 4.3), dpi=110, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    gens = np.arange(res["generations"] + 1)
    for method in ("ga_aligned", "ga_unaligned"):
        ys = np.array([rep["methods"][method]["curve"]["hv"] for rep in reps])
        _band(ax1, gens, ys, method, LABELS[method])
    for method in ("synflow", "random", "imp"):
        color, ls = STYLE[method]
        ax1.axhline(
            np.mean(_field(reps, method, "hv")),
            color=color,
            ls=ls,
            lw=1.3,
            label=f"{LABELS[method]}, at equal steps",
        )
    ax1.set_xlabel("generation")
    ax1.set_ylabel(f"hypervolume, validation (mean ± std, {len(reps)} GA seeds)")
    ax1.set_title("Per generation (baselines: at the GA's final steps)", fontsize=10)
    # against steps, up to the budget (the aligned GA's steps); a method that stopped spending stays flat
    top = max(rep["budget"] for rep in reps)
    x = np.linspace(0, top, 400)
    for method in METHODS:
        ys = np.array(
            [[step_value(rep["methods"][method]["curve"]["steps"], rep["methods"][method]["curve"]["hv"], v) for v in x]
             for rep in reps]
        )  # fmt: skip
        _band(ax2, x / 1000, ys, method, LABELS[method])
    ax2.set_xlabel("training steps spent (thousands); the right edge is the GA's budget")
    ax2.set_title("Against training compute", fontsize=10)
    ga_hv = [
        v for rep in reps for m in ("ga_aligned", "ga_unaligned") for v in rep["methods"][m]["curve"]["hv"]
    ]
    hi = max(v for rep in reps for m in METHODS for v in rep["methods"][m]["curve"]["hv"])
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower right")
    ax1.set_ylim(min(ga_hv) - 0.04, hi + 0.01)
    fig.suptitle(f"Hypervolume of the (accuracy, density) front: {res['model']} on {res['dataset']}")
    return fig


def fronts_figure(res: Mapping[str, Any], densities: Sequence[float]):  # noqa: ANN201 - matplotlib Figure
    from matplotlib.figure import Figure

    rep = res["replicates"][0]
    fig = Figure(figsize=(15.5, 4.6), dpi=110, layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    right = 1.15 * max(f["density"] for m in METHODS for f in rep["methods"][m]["front"])
    for method in METHODS:
        color, ls = STYLE[method]
        front = rep["methods"][method]["front"]
        if not front:
            continue
        d = [f["density"] for f in front]
        a = [f["val"] for f in front]
        axes[0].step([*d, right], [*a, a[-1]], where="post", color=color, ls=ls, lw=1.6, label=LABELS[method])
        axes[0].plot(d, a, "o", color=color, ms=3)
        t = np.array([f["test"] for f in front])
        sd = t.std(1, ddof=1) if t.shape[1] > 1 else np.zeros(len(t))
        axes[1].errorbar(d, t.mean(1), yerr=sd, color=color, ls=ls, lw=1.2, marker="o", ms=3, capsize=2,
                         label=LABELS[method])  # fmt: skip
        own = "test_own_init" if method == "imp" else "test_selection_init"
        label = "IMP tickets, own init" if method == "imp" else f"{LABELS[method]}, init 0"
        axes[2].plot(d, [f[own] for f in front], ls, color=color, lw=1.2, marker="o", ms=3, label=label)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("density (kept weights / all)")
        ax.grid(True, which="both", alpha=0.25)
        for d in densities:
            ax.axvline(d, color="black", lw=0.7, ls=":", alpha=0.6)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("accuracy")
    axes[0].set_title("Validation fronts A(d): what each method selects", fontsize=10)
    n = len(rep["methods"]["ga_aligned"]["front"][0]["test"])
    axes[1].set_title(f"The same masks from {n} fresh inits: test (mean ± std)", fontsize=10)
    axes[2].set_title("With the init they were found (IMP) or selected (init 0) with: test", fontsize=10)
    fig.suptitle(
        f"Accuracy–density fronts at equal training steps, GA seed {rep['replicate']}: {res['model']} on "
        f"{res['dataset']}"
    )
    return fig


def _steps_text(reps: Sequence[Mapping[str, Any]], method: str) -> str:
    return f"{np.mean(_field(reps, method, 'steps')) / 1000:.1f}k"


# ---- verdicts (``lotterysearch.verdicts``) --------------------------------------------------------------
OTHERS = ("ga_unaligned", "synflow", "random", "imp")  # what the aligned GA is compared with
Key = tuple  # (model, kind, *what): see ``compared``
Pairs = tuple[dict[int, float], dict[int, float]]


def margin(results: Mapping[str, Any]) -> tuple[float, bool]:
    """The equivalence margin in points, and whether the run stored it with its settings (declared before it
    ran) or it is the current settings', declared after the run that ``results`` holds."""
    if "equivalence_margin" in results["settings"]:
        return float(results["settings"]["equivalence_margin"]), True
    return SETTINGS[results.get("settings_name", "small")].equivalence_margin, False


def _hv_final(reps: Sequence[Mapping[str, Any]], method: str) -> list[float]:
    return [rep["methods"][method]["curve"]["hv"][-1] for rep in reps]


def compared(res: Mapping[str, Any], densities: Sequence[float]) -> dict[Key, Pairs]:
    """Every comparison of one model, a − b by GA seed (the replicate), as accuracies or hypervolumes:

    * ``(model, "topo", m, d)``: the aligned GA's chosen mask at density ≤ d against method m's, both
      retrained from fresh inits (test); ``(model, "hv", m)``: their test hypervolumes;
    * ``(model, "ticket", d)``: the GA's mask from its selection init against IMP's ticket from its own init;
    * ``(model, "imp_gain" | "order" | "ga_gain" | "sf_gain", d)``: IMP's ticket from its own init against
      the same mask from fresh inits, and against its own init with another batch order; the GA's and
      SynFlow alone's masks from their selection init against fresh inits;
    * ``(model, "hv_val")``: the GA's validation hypervolume against SynFlow alone's;
    * ``(model, "align_final" | "align_equal")``: the aligned GA's validation hypervolume against the
      unaligned one's, at the end and at the steps the cheaper one spent.
    """
    reps = res["replicates"]
    ids = [rep["replicate"] for rep in reps]
    m = res["model"]

    def by(values: Sequence[float]) -> dict[int, float]:
        return common.by_replicate(values, ids)

    def pick(method: str, d: float, what: str) -> dict[int, float]:
        return by(_pick(reps, method, d, what))

    out: dict[Key, Pairs] = {}
    for d in densities:
        for b in OTHERS:
            out[(m, "topo", b, d)] = (pick("ga_aligned", d, "test"), pick(b, d, "test"))
    for b in OTHERS:
        out[(m, "hv", b)] = (by(_field(reps, "ga_aligned", "test_hv")), by(_field(reps, b, "test_hv")))
    for d in densities:
        own = pick("imp", d, "test_own_init")
        out[(m, "ticket", d)] = (pick("ga_aligned", d, "test_selection_init"), own)
        out[(m, "imp_gain", d)] = (own, pick("imp", d, "test"))
        out[(m, "order", d)] = (own, pick("imp", d, "test_own_init_other_order"))
        for key, method in (("ga_gain", "ga_aligned"), ("sf_gain", "synflow")):
            out[(m, key, d)] = (pick(method, d, "test_selection_init"), pick(method, d, "test"))
    out[(m, "hv_val")] = (by(_field(reps, "ga_aligned", "hv")), by(_field(reps, "synflow", "hv")))
    out[(m, "align_final")] = (by(_hv_final(reps, "ga_aligned")), by(_hv_final(reps, "ga_unaligned")))
    at_equal = _hv_at_common_steps(reps)
    out[(m, "align_equal")] = (by(at_equal["ga_aligned"]), by(at_equal["ga_unaligned"]))
    return out


def verdicts(results: Mapping[str, Any]) -> dict[Key, Verdict]:
    """Every model's comparisons decided as one family, in points (``common.decide``)."""
    ds = [float(d) for d in results["settings"]["densities"]]
    return common.decide(
        {k: v for res in results["models"] for k, v in compared(res, ds).items()}, margin(results)[0]
    )


# The comparisons the report's earlier 2-SE screen gave a verdict for (the others it gave as numbers only).
SCREENED = ("topo", "hv", "ticket", "hv_val", "align_final", "align_equal")


def screen(pairs: Pairs, kind: str) -> str | None:
    """What the earlier screen (``verdict``: a paired difference beyond 2 SE) said of a − b, or None where the
    report gave the difference without a verdict."""
    if kind not in SCREENED:
        return None
    a, b = pairs
    return verdict(paired(list(a.values()), [b[r] for r in a]))


def cell(v: Verdict) -> str:
    """A table's difference column: the interval in points, then the verdict."""
    return f"{v.interval()}: {v}" if v.difference.n else "–"


def fronts_table(res: Mapping[str, Any], sparse: float, decided: Mapping[Key, Verdict]) -> str:
    reps = res["replicates"]
    columns = {  # header: the replicates' field
        "HV (val)": "hv",
        f"mean A(d), d ≤ {sparse:g} (val)": "hv_sparse",
        "HV (test, fresh inits)": "test_hv",
        f"mean A(d), d ≤ {sparse:g} (test)": "test_hv_sparse",
    }
    rows = [
        (
            LABELS[method],
            _steps_text(reps, method),
            *(pm(mean_std(_field(reps, method, f))) for f in columns.values()),
            "–" if method == "ga_aligned" else cell(decided[(res["model"], "hv", method)]),
        )
        for method in METHODS
    ]
    header = ["method", "training steps", *columns, "GA aligned − method, HV test, points [95% CI]"]
    return markdown_table(header, rows)


def density_table(res: Mapping[str, Any], densities: Sequence[float], decided: Mapping[Key, Verdict]) -> str:
    reps = res["replicates"]
    columns = {  # header: the field at d, and its digits
        "density of the chosen mask": ("density", 4),
        "A(d) val (selection)": ("val", 3),
        "test, selection init (0)": ("test_selection_init", 3),
        "test, fresh inits": ("test", 3),
    }
    rows = [
        (
            f"{d:g}",
            LABELS[method],
            *(pm(_nan_stats(_pick(reps, method, d, f)), digits) for f, digits in columns.values()),
            "–" if method == "ga_aligned" else cell(decided[(res["model"], "topo", method, d)]),
        )
        for d in densities
        for method in METHODS
    ]
    header = ["d", "method", *columns, "GA aligned − method, test (fresh inits), points [95% CI]"]
    return markdown_table(header, rows)


def ticket_table(res: Mapping[str, Any], densities: Sequence[float], decided: Mapping[Key, Verdict]) -> str:
    reps = res["replicates"]
    columns = {  # header: the method and its field at d
        "IMP ticket, own init": ("imp", "test_own_init"),
        "own init, another batch order": ("imp", "test_own_init_other_order"),
        "IMP mask, fresh inits": ("imp", "test"),
        "GA mask, selection init (0)": ("ga_aligned", "test_selection_init"),
        "GA mask, fresh inits": ("ga_aligned", "test"),
    }
    rows = [
        (
            f"{d:g}",
            *(pm(_nan_stats(_pick(reps, method, d, f))) for method, f in columns.values()),
            cell(decided[(res["model"], "ticket", d)]),
        )
        for d in densities
    ]
    header = ["d", *columns, "GA (selection init) − IMP ticket (own init), points [95% CI]"]
    return markdown_table(header, rows)


def align_table(res: Mapping[str, Any]) -> str:
    reps = res["replicates"]
    rows = []
    for method in ("ga_aligned", "ga_unaligned"):
        rows.append(
            (
                LABELS[method],
                pm(mean_std(_field(reps, method, "classes")), 1),
                _steps_text(reps, method),
                pm(mean_std(_hv_final(reps, method))),
                pm(mean_std(_hv_at_common_steps(reps)[method])),
                pm(mean_std(_field(reps, method, "test_hv"))),
            )
        )
    return markdown_table(
        [
            "crossover",
            "classes trained",
            "training steps",
            "final HV (val)",
            "HV at equal steps (val)",
            "HV (test)",
        ],
        rows,
    )


def _hv_at_common_steps(reps: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Each GA's validation hypervolume at the steps the cheaper of the two spent, per replicate."""
    out: dict[str, list[float]] = {"ga_aligned": [], "ga_unaligned": []}
    for rep in reps:
        steps = min(rep["methods"][m]["steps"] for m in out)
        for m in out:
            c = rep["methods"][m]["curve"]
            out[m].append(step_value(c["steps"], c["hv"], steps, math.nan))
    return out


OWNER = {"ga_unaligned": "the unaligned GA's", "synflow": "SynFlow alone's", "random": "the random masks'",
         "imp": "IMP's masks'"}  # fmt: skip
IN_WORDS = {  # what each kind of comparison is, for the table and the "changed" sentence
    "topo": "the GA's mask against {m}, both from fresh inits (test)",
    "hv": "the GA's test hypervolume against {m}",
    "ticket": "the GA's mask from its selection init against IMP's ticket from its own init",
    "imp_gain": "IMP's ticket from its own init against the same mask from fresh inits",
    "order": "IMP's ticket from its own init against the same init with another batch order",
    "ga_gain": "the GA's mask from its selection init against fresh inits",
    "sf_gain": "SynFlow alone's mask from its selection init against fresh inits",
    "hv_val": "the GA's validation hypervolume against SynFlow alone's",
    "align_final": "the aligned GA's final validation hypervolume against the unaligned one's",
    "align_equal": "the aligned GA's validation hypervolume at equal steps against the unaligned one's",
}


def _words(key: Key) -> str:
    kind = key[1]
    return IN_WORDS[kind].format(m=OWNER[key[2]]) if kind in ("topo", "hv") else IN_WORDS[kind]


def _where(key: Key) -> str:
    d = key[-1]
    return f"d = {d:g}" if key[1] in ("topo", "ticket", "imp_gain", "order", "ga_gain", "sf_gain") else ""


def verdict_table(results: Mapping[str, Any], decided: Mapping[Key, Verdict]) -> str:
    models = len(results["models"])
    ds = [float(d) for d in results["settings"]["densities"]]
    pairs = {k: v for res in results["models"] for k, v in compared(res, ds).items()}
    rows = []
    for key, v in decided.items():
        s = screen(pairs[key], key[1])
        rows.append(
            [
                *([f"`{key[0]}`"] if models > 1 else []),
                _words(key),
                _where(key) or "–",
                v.interval(),
                common.test_cell(v),
                common.verdict_cell(v, s) if s else str(v),
            ]
        )
    header = ["comparison (a − b)", "at", "difference, points [95% CI]", "paired test", "verdict"]
    return markdown_table(["model", *header] if models > 1 else header, rows)


# ---- the written answer ---------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def _at(decided: Mapping[Key, Verdict], keys: Mapping[str, Key]) -> str:
    """``inconclusive at d = 0.1 and 0.03, better at d = 0.01 (in points: +0.94 [...] at d = 0.1, ...)``."""
    at = {where: decided[k] for where, k in keys.items()}
    diffs = ", ".join(f"{v.interval()} at {where}" for where, v in at.items())
    return f"{common.grouped(at)} (in points: {diffs})"


KINDS = ("better", "worse", "equivalent", "inconclusive", "no data")


def _counts(kinds: Sequence[str]) -> str:
    """e.g. 'better at 1, inconclusive at 2 of 3 densities'."""
    parts = [f"{w} at {kinds.count(w)}" for w in KINDS if w in kinds]
    return ", ".join(parts) + f" of {len(kinds)} densities"


def model_answer(
    res: Mapping[str, Any], s: Mapping[str, Any], decided: Mapping[Key, Verdict], m: float
) -> tuple[list[str], dict[str, Any]]:
    """The paragraphs of one model's answer, and its verdicts for the headline."""
    reps = res["replicates"]
    ds = [float(d) for d in s["densities"]]
    model = res["model"]

    def at(kind: str, *what: str) -> dict[str, Key]:
        return {f"d = {d:g}": (model, kind, *what, d) for d in ds}

    def one(key: Key) -> str:
        v = decided[key]
        return f"{v} ({v.interval()} points)"

    def picks(method: str, what: str) -> list[list[float]]:
        return [_pick(reps, method, d, what) for d in ds]

    budget = mean_std([rep["budget"] for rep in reps])
    family = next(iter(decided.values())).family_size
    n = len(reps)
    out = [
        f"On `{model}` / {res['dataset']}, every method spends {budget['mean'] / 1000:.1f}k ± "
        f"{budget['std'] / 1000:.1f}k training steps ({n} GA seeds, the replicate: differences are paired by GA "
        f"seed, in points with 95% intervals; paired t-tests with {n - 1} degrees of freedom, Holm over the "
        f"section's {family} tests, equivalence within ±{m:.2f} points by TOST). As topologies, i.e. the selected "
        f"masks retrained from {len(s['retrain_seeds'])} fresh inits and scored on test, the GA's (aligned "
        f"crossover) against the IMP tickets are {_at(decided, at('topo', 'imp'))}; against SynFlow masks alone "
        f"{_at(decided, at('topo', 'synflow'))}; against random masks with SynFlow’s layer densities "
        f"{_at(decided, at('topo', 'random'))}. Their test hypervolume against that of "
        + ", ".join(f"{LABELS[b]}: {one((model, 'hv', b))}" for b in ("imp", "synflow", "random"))
        + "."
    ]
    own, other = picks("imp", "test_own_init"), picks("imp", "test_own_init_other_order")
    imp_gain = [decided[(model, "imp_gain", d)].difference.mean for d in ds]
    ga_gain = [decided[(model, "ga_gain", d)].difference.mean for d in ds]
    order = [decided[(model, "order", d)] for d in ds]
    if all(decided[(model, "ticket", d)].kind == "no data" for d in ds):
        out.append("IMP scored no ticket within the GA's budget, so the ticket comparison is missing here.")
    else:
        out.append(
            "The lottery ticket in Frankle & Carbin's sense is a mask *with its own init*. From their own (rewound) "
            "init IMP's tickets reach "
            + ", ".join(f"{pm(_nan_stats(o))} at d = {d:g}" for d, o in zip(ds, own, strict=True))
            + f" on test; against the same masks from fresh inits they are {_at(decided, at('imp_gain'))}. From "
            "their own init with another batch order they reach "
            + ", ".join(pm(_nan_stats(o)) for o in other)
            + f"; against that order IMP's own is {_at(decided, at('order'))}"
            + (
                ", so the advantage belongs to the init, not to IMP's batch order."
                if all(v.kind == "equivalent" for v in order)
                else ": that the advantage belongs to the init rather than to IMP's batch order is not shown "
                f"(an equivalence within ±{m:.2f} points at every density would show it)."
            )
            + " The GA's chosen masks, from the init they were selected with (init 0), reach "
            + ", ".join(pm(_nan_stats(g)) for g in picks("ga_aligned", "test_selection_init"))
            + f"; against the IMP ticket they are {_at(decided, at('ticket'))}. Against the same masks from fresh "
            f"inits they are {_at(decided, at('ga_gain'))} (SynFlow alone's chosen masks: "
            f"{_at(decided, at('sf_gain'))}): {_mean(ga_gain):+.2f} points on average against IMP's "
            f"{_mean(imp_gain):+.2f} from its own init. By those means, "
            + (
                "a search that scores masks from one shared init tunes them to it far less than IMP's masks are "
                "tied to theirs (the difference of the two gains is not tested)."
                if _mean(ga_gain) < _mean(imp_gain) / 2
                else "the GA's masks are tuned to the fitness's init about as much as IMP's to their own (not "
                "tested)."
            )
        )
    curse = {}
    for method in ("ga_aligned", "synflow", "imp"):
        pairs = zip(sum(picks(method, "val"), []), sum(picks(method, "test_selection_init"), []), strict=True)
        curse[method] = _nan_stats([100 * (v - t) for v, t in pairs if not math.isnan(v)])
    out.append(
        "Selection noise: from validation to test, on the very networks that were selected (init 0), the chosen "
        f"masks lose {curse['ga_aligned']['mean']:+.2f} (GA), {curse['synflow']['mean']:+.2f} (SynFlow alone) "
        f"and {curse['imp']['mean']:+.2f} (IMP) points on average over the fixed densities and seeds (the "
        "winner's curse plus the validation/test shift). On validation the GA's hypervolume against SynFlow "
        f"alone's is {one((model, 'hv_val'))}; after retraining, on test, it is {one((model, 'hv', 'synflow'))}. "
        "This is why the comparisons above retrain and use the test split."
    )
    out.append(
        f"Aligned vs unaligned crossover: after {res['generations']} generations the aligned GA's validation "
        f"hypervolume against the unaligned one's is {one((model, 'align_final'))}; at equal steps "
        f"{one((model, 'align_equal'))}; its test hypervolume {one((model, 'hv', 'ga_unaligned'))}; and at the "
        f"fixed densities {_at(decided, at('topo', 'ga_unaligned'))}."
    )
    kinds = {
        k: [decided[(model, *key, d)].kind for d in ds]
        for k, key in (("ticket", ("ticket",)), ("imp", ("topo", "imp")), ("synflow", ("topo", "synflow")),
                       ("random", ("topo", "random")), ("own", ("imp_gain",)))
    }  # fmt: skip
    align = [decided[(model, k)].kind for k in ("align_final", "align_equal")]
    align += [decided[(model, "hv", "ga_unaligned")].kind] + [
        decided[(model, "topo", "ga_unaligned", d)].kind for d in ds
    ]
    ticket = [decided[(model, "ticket", d)].difference.mean for d in ds]
    return out, {**kinds, "own_gain": imp_gain, "ticket_gap": ticket, "align": align}


def headline(verdicts: Sequence[Mapping[str, Any]], family: int, n: int, m: float) -> str:
    """The verdict over every model and fixed density, from the tested comparisons (``family`` tests in all,
    ``n`` GA seeds, margin ``m`` points): the ticket (IMP's mask with its own init against the GA's mask with
    its selection init) first, then the masks alone."""

    def words(key: str) -> list[str]:
        return [w for v in verdicts for w in v[key]]

    ticket, imp, sf, rnd, own = words("ticket"), words("imp"), words("synflow"), words("random"), words("own")
    topo = (
        f"As topologies (retrained from fresh inits) the GA's masks are {_counts(imp)} against IMP's masks, "
        f"{_counts(sf)} against SynFlow masks alone given the same steps, and {_counts(rnd)} against random "
        "masks with SynFlow's layer densities"
    )
    gain = [g for v in verdicts for g in v["own_gain"] if not math.isnan(g)]
    gap = [g for v in verdicts for g in v["ticket_gap"] if not math.isnan(g)]
    evolution = (
        f"evolving masks beats scoring more SynFlow masks at {sf.count('better')} of {len(sf)} densities"
        if "better" in sf
        else "evolving masks is not shown to beat scoring more SynFlow masks"
    )
    shown = (
        f"shown at {own.count('better')} of {len(own)} densities"
        if "better" in own
        else f"not shown at any density with {n} GA seeds"
    )
    lose = (
        f"IMP's masks lose {min(gain):.2f} to {max(gain):.2f} points of test accuracy retrained from fresh inits "
        f"({shown})"
        if gain
        else ""
    )
    edge = f": {lose}" if lose else ""
    if all(w == "no data" for w in ticket):
        lead = (
            "**Not measured at these settings.** The GA's budget paid for no IMP ticket to compare with. "
            f"{topo}: at equal compute, {evolution}."
        )
    elif "worse" in ticket:
        lead = (
            "**No, not at equal training compute.** The lottery ticket, IMP's mask trained from its own init, "
            f"beats the GA's best mask trained from the init the GA selected it with at {ticket.count('worse')} "
            f"of {len(ticket)} fixed densities. Its edge comes with its init{edge}. {topo}: at equal compute, "
            f"{evolution}."
        )
    elif "better" not in ticket and "equivalent" not in ticket:
        lead = (
            f"**Not shown with {n} GA seeds.** The GA's best mask, trained from the init the GA selected it with, "
            f"differs from the lottery ticket, IMP's mask trained from its own init, by {min(gap):+.2f} to "
            f"{max(gap):+.2f} points at the fixed densities, and no density's difference is shown different or "
            f"equivalent within ±{m:.2f} points. "
            + (f"{lose}. " if lose else "")
            + f"{topo}: at equal compute, {evolution}."
        )
    elif "worse" in imp:
        lead = (
            f"**Partly.** With their selection init the GA's masks are {_counts(ticket)} against IMP's tickets "
            f"with their own init. {topo}."
        )
    elif "better" in sf and "worse" not in sf:
        lead = f"**Yes, at these settings.** The GA's masks match or beat IMP's tickets with their own init. {topo}."
    else:
        lead = (
            "**As good as the ticket, but not beyond its seeds.** The GA's masks match or beat IMP's tickets with "
            f"their own init; SynFlow masks alone, given the same steps, are not shown to do worse. {topo}."
        )
    align = words("align")
    if set(align) == {"equivalent"}:
        aligned = f"makes no difference beyond ±{m:.2f} points in any of {len(align)} comparisons."
    elif set(align) <= {"inconclusive", "no data"}:
        aligned = f"is not shown to matter or not: {len(align)} of {len(align)} comparisons are inconclusive."
    else:
        aligned = (
            f"matters somewhere: the aligned GA is {_counts(align)[: -len(' densities')]} comparisons "
            "(hypervolume in validation at the end and at equal steps, in test, then the fixed densities)."
        )
    return (
        lead
        + f" Aligning hidden neurons before crossover {aligned} With {n} GA seeds ({n - 1} degrees of freedom) "
        f"and Holm's correction over the section's {family} tests, most differences are inconclusive: that is "
        f"what {n} replicates can tell."
    )


def render(results: Mapping[str, Any], ctx: Context) -> Rendered:
    s = results["settings"]
    parts, answers, summaries = [], [], []
    ctx.figures.mkdir(parents=True, exist_ok=True)
    ds = [float(d) for d in s["densities"]]
    decided = verdicts(results)
    m, before = margin(results)
    for res in results["models"]:
        reps = res["replicates"]
        slug = res["dataset"]
        hv_path, fronts_path = (
            ctx.figures / f"ga_hypervolume_{slug}.png",
            ctx.figures / f"ga_fronts_{slug}.png",
        )
        hypervolume_figure(res).savefig(hv_path)
        fronts_figure(res, ds).savefig(fronts_path)
        imp_method, t = reps[0]["methods"]["imp"], res["training"]
        parts += [
            f"### `{res['model']}` on {res['dataset']}",
            "",
            f"**Design.** {len(reps)} replicates (GA seeds {', '.join(str(r['replicate']) for r in reps)}: the "
            "search's RNG and validation split). In each, the search runs twice, with aligned and with unaligned "
            f"crossover: population {res['population']}, {res['generations']} generations, seeded with SynFlow "
            f"masks from {res['seed_inits']} inits at ρ = {', '.join(f'{c:g}' for c in res['seed_compressions'])} "
            "plus random controls; fitness = validation accuracy after "
            f"{t['steps']} steps of {t['optimizer']} (lr {t['lr']:g}, batch {t['batch_size']}) from "
            "init seed 0. **Compute** is training steps: the GA's is the sum over the isomorphism classes it "
            "trained (isomorph hits and SynFlow seeding cost none). Every baseline gets the steps the aligned GA "
            "spent in the same replicate: *SynFlow alone* scores SynFlow masks from successive inits (the GA's "
            f"seeds first) at the {len(res['grid_compressions'])} densities "
            f"{', '.join(f'{1 / c:.3g}' for c in res['grid_compressions'])} with the same fitness; *random* scores "
            "each of those masks layerwise shuffled; *IMP* runs trajectories from successive inits (prune "
            f"{res['imp_rate']:g} of each layer per round, {res['imp_rate'] / 2:g} of the output layer, rewind to "
            f"init; one round = one fitness training, {imp_method['rounds']} rounds to density "
            f"{1 / max(res['grid_compressions']):.3g}; all its tickets come from one trajectory, "
            "`pruning.imp(..., tickets_at=grid)`) and scores its tickets at the same densities, the rounds charged "
            "before any ticket. Masks are found from inits 1000·(r+1) on, never from the fitness's init 0. "
            "*A(d)* is the best accuracy among a method's masks with density ≤ d; the hypervolume (reference "
            "(0, 1), as the search) is ∫₀¹ A(d) dd, so it is dominated by the densest masks; *mean A(d), "
            f"d ≤ {s['sparse_density']:g}* is the same integral over the sparse end, divided by its width. "
            "Selection (fronts, A(d)) uses validation accuracy, so the selected masks (every front mask) are "
            f"retrained from {len(s['retrain_seeds'])} fresh inits and scored on the test split: no method is "
            "credited for the noise it selected on (the winner's curse). *Selection init (0)*: the very networks "
            "that were selected, scored on test.",
            "",
            "Consistency check: the GA's SynFlow seeds and the same masks scored by the SynFlow-alone baseline got "
            f"identical fitness (largest difference {max(r['seed_consistency'] for r in reps):.1g} over "
            f"{sum(r['seed_consistency_n'] for r in reps)} pairs).",
            "",
            f"Fronts at equal compute (mean ± std over {len(reps)} GA seeds; the last column is the paired "
            "difference in points (hypervolume × 100) with its 95% interval, and its verdict):",
            "",
            fronts_table(res, s["sparse_density"], decided),
            "",
            f"![hypervolume]({ctx.figure_link(hv_path)})",
            "",
            "Accuracy at fixed densities: the mask each method selects (best validation accuracy at density "
            "≤ d), then its test accuracy:",
            "",
            density_table(res, ds, decided),
            "",
            "The lottery ticket, mask *and* init: IMP's chosen tickets from their own init (the rewind point, "
            "with IMP's batch order), from their own init with another batch order, and from fresh inits; the "
            "GA's chosen masks from their selection init and from fresh inits (test):",
            "",
            ticket_table(res, ds, decided),
            "",
            f"![fronts]({ctx.figure_link(fronts_path)})",
            "",
            "Aligned vs unaligned crossover (the same search, `ga.align` on and off):",
            "",
            align_table(res),
            "",
            "Per replicate, wall time (shared machine, noisy): "
            + ", ".join(
                f"{rep['seconds']['total']:.0f} s (GA {rep['seconds']['ga']:.0f} s, baselines "
                f"{rep['seconds']['baselines']:.0f} s, test retraining {rep['seconds'].get('test', 0):.0f} s)"
                for rep in reps
            )
            + ".",
            "",
        ]
        text, v = model_answer(res, s, decided, m)
        answers += text
        summaries.append(v)
    parts += [
        common.method_text(
            decided,
            m,
            before,
            "`experiments/ga.py` (`GASettings.equivalence_margin`)",
            unit="GA seed",
        ),
        "",
        verdict_table(results, decided),
        "",
    ]
    pairs = {k: v for res in results["models"] for k, v in compared(res, ds).items()}
    moved = common.changes([(_words(k), _where(k), v, screen(pairs[k], k[1])) for k, v in decided.items()])
    n = max(len(res["replicates"]) for res in results["models"])
    family = next(iter(decided.values())).family_size
    answer = "\n\n".join([headline(summaries, family, n, m), *answers, *([moved] if moved else [])])
    return Rendered(body="\n".join(parts), answer=answer)


SECTION = Section("ga", "Genetic algorithm vs lottery tickets", 2, run, render)
