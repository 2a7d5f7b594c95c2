"""The frontier view: every method's confirmed ticket at each density against what it cost, two ways.

A ticket-finding method is judged by three numbers at a density: the test accuracy of its mask confirmed
from its own init under a full protocol, the total training steps spent to find it, and the critical path
in steps (the longest chain of trainings that waited for each other: the wall-clock on a cluster with enough
workers). This module reads them from stored runs, so IMP at any rate and round length, a search, or any
other run kind sits on one table and one picture.

* **Methods** are runs grouped by name: an IMP run holds many inits (its trajectories), a ticket-mode search
  one init θ₀ per run, so the runs of one method share a name.
* **A method's ticket at a density d**, per init: among the masks confirmed from that init (``lotterysearch
  confirm``; the protocol: the latest used, or the one given) that keep at most d (plus ``tolerance``) of
  the weights, an IMP trajectory's first (its round at that density), a search's best by its own fitness
  (the validation accuracy it selected on: choosing by the confirmed test accuracy would select on the test
  set).
* **Steps to find it** (``runs.ledger``), not counting its confirming training, which every method pays
  alike: an IMP ticket's trajectory up to the round before its own (total and critical path are equal: the
  rounds wait for each other); a Continuous Sparsification ticket's search rounds up to its own (the tickets
  trained along the way confirm, they do not make masks); a search winner's run up to and including its
  generation (total), and the sum of those generations' critical paths.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lotterysearch.errors import ConfigError
from lotterysearch.runs.confirmation import latest_protocol, protocol_key
from lotterysearch.runs.ledger import run_compute, search_steps
from lotterysearch.settings import ROUND_KINDS, RunKind, TrainingConfig
from lotterysearch.stats import markdown_table
from lotterysearch.storage.store import Store
from lotterysearch.verdicts import mean_interval


@dataclass(frozen=True)
class Ticket:
    """One method's ticket for one init at one density, with what it cost to find."""

    method: str  # the run's name
    run_id: str
    init: int
    target: float
    individual_id: int
    density: float
    test_accuracy: float
    early_stop_step: int
    total_steps: int | None
    critical_path_steps: int | None


@dataclass(frozen=True)
class FrontierRow:
    """A method at a density over its inits: mean confirmed accuracy with its 95% t interval, mean costs."""

    method: str
    target: float
    inits: tuple[int, ...]
    density: float
    accuracy: tuple[float, float, float]  # mean, low, high (fractions)
    total_steps: float | None
    critical_path_steps: float | None


def check_targets(targets: Sequence[float]) -> tuple[float, ...]:
    """Densities in (0, 1], largest first; anything else is a one-line error."""
    if not targets:
        raise ConfigError(
            "the frontier needs at least one density (--density D, a share of the weights in (0, 1])"
        )
    for d in targets:
        if not 0 < d <= 1:
            raise ConfigError(f"a frontier density is a share of the weights in (0, 1], got {d:g}")
    return tuple(sorted(set(targets), reverse=True))


def run_tickets(
    store: Store,
    run_id: str,
    targets: Sequence[float],
    protocol: str | TrainingConfig | None = None,
    tolerance: float = 0.0,
) -> list[Ticket]:
    """The run's ticket for each init at each of ``targets`` (see the module docstring) under ``protocol``
    (a stored key or a ``TrainingConfig``; default the latest the run was confirmed with); an init with no
    confirmed mask at or below a density has none there."""
    targets = check_targets(targets)
    run = store.run(run_id)
    records = store.confirmations(run_id)
    protocol = protocol_key(store, run_id, protocol) or latest_protocol(records)
    own = {r.individual_id: r for r in records if r.init == "own" and r.protocol == protocol}
    if not own:
        return []
    inds = {i.id: i for i in store.individuals(run_id)}
    compute = run_compute(store, run_id, flops=False)
    trajectory = run.kind in ROUND_KINDS
    config = json.loads(run.config_json)
    if trajectory:
        rounds = {r.individual_id: r.round for r in store.imp_rounds(run_id)}
        rewind = int(config.get(run.kind.value, {}).get("rewind_step", 0))
    else:
        gens = store.generations(run_id)
        path: dict[int, int | None] = {}
        running: int | None = 0
        for g in gens:
            running = (
                None if running is None or g.critical_path_steps is None else running + g.critical_path_steps
            )
            path[g.gen] = running
    out = []
    for d in targets:
        by_init: dict[int, list[int]] = {}
        for i, rec in own.items():
            if inds[i].density <= d + tolerance:
                by_init.setdefault(rec.seed, []).append(i)
        for init, ids in sorted(by_init.items()):
            if trajectory and run.kind is RunKind.CS:  # its search rounds made the mask; tickets confirm
                best = min(ids, key=lambda i: rounds.get(i, math.inf))
                total = critical = rounds[best] * search_steps(config) + rewind
            elif trajectory:
                best = min(ids, key=lambda i: rounds.get(i, math.inf))
                parents = inds[best].parents
                total = critical = compute.lineage_steps.get(parents[0]) if parents else 0
            else:
                best = max(ids, key=lambda i: (inds[i].accuracy, inds[i].density))
                total = compute.run_steps.get(best)
                critical = path.get(inds[best].generation)
            result = own[best].result
            es = result.get("early_stop") or {}
            out.append(
                Ticket(
                    run.name,
                    run_id,
                    init,
                    d,
                    best,
                    inds[best].density,
                    es.get("test_accuracy", result.get("test_accuracy")),
                    es.get("step", result.get("steps")),
                    total,
                    critical,
                )
            )
    return out


def tickets(
    store: Store,
    targets: Sequence[float],
    run_ids: Sequence[str] | None = None,
    protocol: str | TrainingConfig | None = None,
    tolerance: float = 0.0,
) -> list[Ticket]:
    """Every chosen run's tickets (default: every run of the workspace)."""
    ids = list(run_ids) if run_ids else [r.id for r in store.runs()]
    return [t for rid in ids for t in run_tickets(store, rid, targets, protocol, tolerance)]


def _mean(values: Sequence[float | None]) -> float | None:
    return None if not values or None in values else sum(values) / len(values)  # type: ignore[arg-type]


def rows(found: Sequence[Ticket]) -> list[FrontierRow]:
    """Per method and density, the summary over its inits (one ticket per init: a method run twice on one
    init counts the run listed first)."""
    groups: dict[tuple[str, float], dict[int, Ticket]] = {}
    for t in found:
        groups.setdefault((t.method, t.target), {}).setdefault(t.init, t)
    out = []
    for (method, target), by_init in groups.items():
        ts = [by_init[i] for i in sorted(by_init)]
        out.append(
            FrontierRow(
                method,
                target,
                tuple(sorted(by_init)),
                sum(t.density for t in ts) / len(ts),
                mean_interval([t.test_accuracy for t in ts]),
                _mean([t.total_steps for t in ts]),
                _mean([t.critical_path_steps for t in ts]),
            )
        )
    return sorted(out, key=lambda r: (-r.target, r.method))


def _steps(x: float | None) -> str:
    return "?" if x is None else f"{x:,.0f}"


def table(found: Sequence[FrontierRow]) -> str:
    """The frontier as a markdown table, accuracy in percent with its 95% interval."""

    def acc(r: FrontierRow) -> str:
        m, lo, hi = (100 * x for x in r.accuracy)
        return f"{m:.2f} [{lo:.2f}, {hi:.2f}]" if len(r.inits) > 1 else f"{m:.2f}"

    body = [
        [
            f"≤ {100 * r.target:.2f}%",
            r.method,
            len(r.inits),
            f"{100 * r.density:.2f}%",
            acc(r),
            _steps(r.total_steps),
            _steps(r.critical_path_steps),
        ]
        for r in found
    ]
    header = [
        "density",
        "method",
        "inits",
        "mean density",
        "test accuracy, % [95% CI]",
        "total steps",
        "critical-path steps",
    ]
    return markdown_table(header, body)


def figure(
    found: Sequence[FrontierRow], path: str | Path, margin: float | None = None, reference: str | None = None
) -> Path:
    """Accuracy at each density against total steps (top) and critical-path steps (bottom), every method on
    one picture; with a ``reference`` method, a band of ±``margin`` points around its mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({r.target for r in found}, reverse=True)
    methods = sorted({r.method for r in found})
    fig, axes = plt.subplots(2, len(targets), figsize=(4.4 * len(targets), 7.4), squeeze=False)
    markers = "osD^v<>phX*P8"
    for col, d in enumerate(targets):
        at = {r.method: r for r in found if r.target == d}
        for row, (what, name) in enumerate(
            (("total_steps", "total"), ("critical_path_steps", "critical-path"))
        ):
            ax = axes[row][col]
            ref = at.get(reference) if reference else None
            if ref is not None and margin:
                ax.axhspan(
                    100 * ref.accuracy[0] - margin, 100 * ref.accuracy[0] + margin, color="0.9", zorder=0
                )
            for i, m in enumerate(methods):
                r = at.get(m)
                x = getattr(r, what) if r else None
                if r is None or x is None:
                    continue
                mean, lo, hi = (100 * v for v in r.accuracy)
                err = [[mean - lo], [hi - mean]] if len(r.inits) > 1 else None
                ax.errorbar(max(x, 1), mean, yerr=err, fmt=markers[i % len(markers)], capsize=3, label=m)
            ax.set_xscale("log")
            ax.set_xlabel(f"{name} training steps to find the ticket")
            ax.set_ylabel("confirmed test accuracy, %")
            ax.set_title(f"≤ {100 * d:.2f}% of the weights")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def as_json(found: Sequence[FrontierRow]) -> str:
    return json.dumps(
        [
            {
                "method": r.method,
                "density_at_most": r.target,
                "inits": list(r.inits),
                "density": r.density,
                "test_accuracy": dict(zip(("mean", "low", "high"), map(_finite, r.accuracy), strict=True)),
                "total_steps": r.total_steps,
                "critical_path_steps": r.critical_path_steps,
            }
            for r in found
        ],
        indent=1,
    )
