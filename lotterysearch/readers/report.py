"""Reports that read a store: the runs of a workspace, the Pareto front of a run, its plot and HTML page,
and exporting one mask (the CLI's ``runs``, ``front``, ``export``).

Nothing here writes to the store. The front is the one the search committed with its last generation
(``pareto.front`` over every individual up to it); ``--all`` lists every individual with ``is_pareto``.
Objectives are (validation accuracy ↑, density ↓), as in the search. An IMP run (``imp_runs``) has no
generations: its front is ``pareto.front`` over its tickets, every committed round of every trajectory.
A plot can overlay another run's points on a run's front (``overlay_sets``: IMP tickets on a GA front).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lotterysearch.errors import ConfigError, MaskError
from lotterysearch.evolution import pareto
from lotterysearch.runs.confirmation import Confirmed, Plan, Retrained, stored_confirmed
from lotterysearch.runs.ledger import RunCompute, run_compute, run_steps_summary
from lotterysearch.settings import ROUND_KINDS, RunKind
from lotterysearch.storage.store import GenerationRecord, Individual, RunRecord, Store

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("table", "json", "csv")
FRONT_FIELDS = (
    "id",
    "accuracy",
    "density",
    "effective_density",
    "compression",
    "class_key",
    "generation",
    "origin",
)
RUN_FIELDS = (
    "id",
    "name",
    "status",
    "generations",
    "created",
    "individuals",
    "trained",
    "best_accuracy",
    "steps",
    "critical_path",
)
# The compute ledger per individual (``runs.ledger``): steps along its lineage, the run's steps up to its
# generation; listed where the run recorded them
COMPUTE_FIELDS = ("lineage_steps", "run_steps")

Row = dict[str, Any]


# ---- rows -------------------------------------------------------------------------------------------


def origin_label(rec: Individual) -> str:
    """Where an individual came from: its seed origin (``synflow:seed=2:rho=100``, ``...+move``,
    ``random:...``) or, for a child, ``child:`` + the operators that made it."""
    if rec.origin == "child":
        return f"child:{rec.operator}" if rec.operator else "child"
    return rec.origin


def individual_row(rec: Individual) -> Row:
    """One front row (``FRONT_FIELDS``); compression is 1/density (ρ of Eq. 4), infinite for an empty mask."""
    return {
        "id": rec.id,
        "accuracy": rec.accuracy,
        "density": rec.density,
        "effective_density": rec.effective_density,
        "compression": rec.compression,
        "class_key": rec.class_key,
        "generation": rec.generation,
        "origin": origin_label(rec),
    }


def front_of(records: Sequence[Individual], *, all: bool = False) -> list[Row]:
    """The rows of ``pareto.front(records)`` (density, then accuracy descending, then id). With ``all`` every
    individual is listed, duplicates included, with ``is_pareto`` True for every non-dominated one (so
    duplicates of a front row are marked too)."""
    if all:
        ids = pareto.on_front(records)
        rows = [individual_row(r) | {"is_pareto": r.id in ids} for r in records]
        return sorted(rows, key=lambda row: (row["density"], -row["accuracy"], row["id"]))
    return [individual_row(r) for r in pareto.front(records)]


def front_rows(store: Store, run_id: str, *, all: bool = False) -> list[Row]:
    """The run's stored front as rows, or with ``all`` every individual (see ``front_of``)."""
    if all:
        return front_of(store.individuals(run_id), all=True)
    return [individual_row(r) for r in pareto.run_front(store, run_id)]


@dataclass(frozen=True)
class RunSummary:
    """What one run amounts to, read once from the store (for titles, the runs table and the HTML page)."""

    run: RunRecord
    individuals: list[Individual]
    generations: list[GenerationRecord]
    trained: int  # classes trained (isomorphism classes), each once
    front: list[Row]
    confirmed: Mapping[int, Confirmed] = field(default_factory=dict)  # by individual, latest protocol

    @property
    def kind(self) -> RunKind:
        """A search, or an IMP run (whose individuals are tickets, their generation the IMP round)."""
        return self.run.kind

    @property
    def stage(self) -> str:
        """How far the run got, for titles: the last generation, or an IMP run's rounds committed."""
        if self.kind in ROUND_KINDS:
            return f"{len(self.individuals)} {self.kind.value.upper()} rounds committed"
        gen = self.last_generation
        return "no generation committed" if gen is None else f"after generation {gen}"

    @property
    def last_generation(self) -> int | None:
        """The last committed generation, as the progress line counts it (0 = the seeded population)."""
        return self.generations[-1].gen if self.generations else None

    @property
    def hypervolume(self) -> float:
        """Area dominated by the front above the run's reference point (exact 2-D staircase)."""
        return pareto.hypervolume(
            [(r["accuracy"], r["density"]) for r in self.front], tuple(self.run.ref_point)
        )

    @property
    def best_accuracy(self) -> float | None:
        return max((r.accuracy for r in self.individuals), default=None)

    @property
    def isomorph_hits(self) -> int:
        """Individuals whose objectives came from an already trained class instead of training."""
        return sum(not r.evaluated for r in self.individuals)


def run_summary(store: Store, run_id: str) -> RunSummary:
    individuals = store.individuals(run_id)
    return RunSummary(
        run=store.run(run_id),
        individuals=individuals,
        generations=store.generations(run_id),
        trained=len(store.classes(run_id)),
        front=[individual_row(r) for r in pareto.run_front(store, run_id)],
        confirmed=stored_confirmed(store, run_id),
    )


def runs_rows(store: Store) -> list[Row]:
    """The runs of a workspace, oldest first (``RUN_FIELDS``): ``generations`` is the last committed
    generation (None before the first), ``individuals`` those evaluated (trained or isomorph hits),
    ``trained`` the classes actually trained, ``steps`` and ``critical_path`` the run's compute ledger in
    training steps (``runs.ledger``; None where not known)."""
    rows = []
    for run in store.runs():
        c = store.run_counts(run.id)
        steps, critical_path = run_steps_summary(store, run.id)
        rows.append(
            {
                "id": run.id,
                "name": run.name,
                "status": run.status,
                "generations": imp_rounds_reached(store, run) if run.kind in ROUND_KINDS else c["generation"],
                "created": run.created,
                "individuals": c["individuals"],
                "trained": c["trained"],
                "best_accuracy": c["best_accuracy"],
                "steps": steps,
                "critical_path": critical_path,
            }
        )
    return rows


# ---- formatting -------------------------------------------------------------------------------------

_TABLE_FORMATS = {
    "val_accuracy": "{:.4f}",
    "test_accuracy": "{:.4f}",
    "fitness": "{:.4f}",
    "accuracy": "{:.4f}",
    "best_accuracy": "{:.4f}",
    "density": "{:.5f}",
    "effective_density": "{:.5f}",
    "compression": "{:.1f}",
    "confirmed_own": "{:.4f}",
    "confirmed_reinit": "{:.4f}",
    "reinit_std": "{:.4f}",
    "own_stop": "{:.0f}",
    "reinit_stop": "{:.0f}",
}


def _cell(field: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field == "created" and isinstance(value, str):
        return value[:19].replace("T", " ")  # the store writes UTC ISO timestamps
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        return _TABLE_FORMATS.get(field, "{:.6g}").format(value)
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], title: str | None) -> str:
    lines = [title] if title else []
    if not rows:
        return "\n".join([*lines, "(no rows)"])
    cells = [[_cell(f, row.get(f)) for f in fields] for row in rows]
    widths = [max(len(f), *(len(c[i]) for c in cells)) for i, f in enumerate(fields)]
    numeric = [
        all(isinstance(row.get(f), int | float) or row.get(f) is None for row in rows)
        and not all(isinstance(row.get(f), bool) for row in rows)
        for f in fields
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([*lines, line(fields), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)  # repr: floats round-trip exactly


def format_rows(
    rows: Sequence[Mapping[str, Any]],
    fmt: str,
    *,
    title: str | None = None,
    fields: Sequence[str] | None = None,
) -> str:
    """Rows as ``table`` (aligned, with ``title`` as its first line), ``json`` (a list of objects; infinite
    numbers become null) or ``csv`` (a header of ``fields``, then one line per row; floats exactly).

    ``fields`` defaults to the keys of the first row, so pass it when there may be no rows.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    fields = list(fields if fields is not None else (rows[0].keys() if rows else ()))
    if fmt == "table":
        return _table(rows, fields, title)
    if fmt == "json":
        return json.dumps([{f: _json_value(row.get(f)) for f in fields} for row in rows], indent=2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    writer.writerows([_csv_value(row.get(f)) for f in fields] for row in rows)
    return out.getvalue().rstrip("\n")


def imp_rounds_reached(store: Store, run: RunRecord) -> int | None:
    """The last IMP round every trajectory of ``run`` has committed (None before each has its dense round),
    what the runs table shows as an IMP run's generations."""
    seeds = json.loads(run.config_json).get(run.kind.value, {}).get("init_seeds", [0])  # [imp] or [cs]
    done: dict[int, int] = {}
    for r in store.imp_rounds(run.id):
        done[r.trajectory] = max(done.get(r.trajectory, -1), r.round)
    reached = min((done.get(s, -1) for s in seeds), default=-1)
    return None if reached < 0 else reached


def format_runs(store: Store, fmt: str = "table") -> str:
    """``lotterysearch runs``: the runs table with a title naming the workspace."""
    rows = runs_rows(store)
    title = f"{len(rows)} run{'s' * (len(rows) != 1)} in workspace {store.paths.root}"
    return format_rows(rows, fmt, title=title, fields=RUN_FIELDS)


def front_title(summary: RunSummary, *, all: bool = False) -> str:
    """The table's first line: run, status, last generation, front size and hypervolume."""
    at = summary.stage
    n, k = len(summary.individuals), len(summary.front)
    listed = (
        f"all {n} evaluated masks, {k} on the Pareto front"
        if all
        else f"Pareto front: {k} of {n} evaluated masks"
    )
    return (
        f"run {summary.run.id} ({summary.run.status}, {at}): {listed}, hypervolume {summary.hypervolume:.4f}"
    )


def format_front(store: Store, run_id: str, fmt: str = "table", *, all: bool = False) -> str:
    """``lotterysearch front RUN [--all]``: the front (or every mask with ``is_pareto``) in ``fmt``."""
    if fmt not in FORMATS:  # before reading the store
        raise ConfigError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    summary = run_summary(store, run_id)
    rows = front_of(summary.individuals, all=all)
    fields = [*FRONT_FIELDS, "is_pareto"] if all else list(FRONT_FIELDS)
    rows, compute_fields = with_compute(rows, run_compute(store, run_id, flops=False))
    rows, extra, note = with_confirmed(rows, summary.confirmed)
    return format_rows(
        rows, fmt, title=front_title(summary, all=all) + note, fields=[*fields, *compute_fields, *extra]
    )


def with_compute(rows: Sequence[Row], compute: RunCompute) -> tuple[list[Row], list[str]]:
    """Rows with ``COMPUTE_FIELDS`` (the steps along each individual's lineage, the run's steps up to its
    generation) and those fields, when the run recorded them (or they are derived); unchanged otherwise."""
    if all(compute.lineage_steps.get(row["id"]) is None for row in rows):
        return list(rows), []
    out = [
        row
        | {
            "lineage_steps": compute.lineage_steps.get(row["id"]),
            "run_steps": compute.run_steps.get(row["id"]),
        }
        for row in rows
    ]
    return out, list(COMPUTE_FIELDS)


# ---- confirmations ----------------------------------------------------------------------------------

# Test accuracy at the early-stopping iteration under the full protocol (``confirm``): own init, and the
# reinit control's mean and sample std over its seeds; the iterations are means over seeds.
CONFIRMED_FIELDS = ("confirmed_own", "own_stop", "confirmed_reinit", "reinit_std", "reinit_stop")


def _stop(r: Retrained) -> float | int | None:
    return r.stops[0] if r.n == 1 else r.stop


def confirmed_row(c: Confirmed | None) -> Row:
    """The ``CONFIRMED_FIELDS`` of one individual (all None when it is not confirmed)."""
    if c is None:
        return dict.fromkeys(CONFIRMED_FIELDS)
    return {
        "confirmed_own": c.own.mean,
        "own_stop": _stop(c.own),
        "confirmed_reinit": c.reinit.mean,
        "reinit_std": c.reinit.std if c.reinit.n else None,
        "reinit_stop": _stop(c.reinit),
    }


def with_confirmed(
    rows: Sequence[Row], confirmed: Mapping[int, Confirmed]
) -> tuple[list[Row], list[str], str]:
    """Rows with the confirmation columns, those columns and a note for the title, when the run has
    confirmations; the rows unchanged otherwise."""
    if not confirmed:
        return list(rows), [], ""
    protocol = next(iter(confirmed.values())).protocol
    out = [row | confirmed_row(confirmed.get(row["id"])) for row in rows]
    n = sum(row["id"] in confirmed for row in rows)
    note = f"; {n} confirmed under protocol {protocol} (test accuracy at early stop)"
    return out, list(CONFIRMED_FIELDS), note


CONFIRM_TABLE_FIELDS = (
    "id",
    "origin",
    "density",
    "fitness",
    "own_seed",
    "confirmed_own",
    "own_stop",
    "confirmed_reinit",
    "reinit_stop",
)


def _mean_pm(r: Retrained) -> str | None:
    if not r.n:
        return None
    return f"{r.mean:.4f} (n=1)" if r.n == 1 else f"{r.mean:.4f} ± {r.std:.4f} (n={r.n})"


def format_confirmed(plan: Plan, summaries: Mapping[int, Confirmed]) -> str:
    """``lotterysearch confirm``'s table: per individual its density, short-training fitness (the stored
    validation accuracy) and confirmed test accuracy at early stop, own init and reinit mean ± std."""
    rows = []
    for ind in plan.individuals:
        c = summaries.get(ind.id)
        own = next(
            (j.init.seed for j in plan.jobs if j.individual_id == ind.id and j.init.init == "own"), None
        )
        reinit = c.reinit if c is not None else Retrained()
        rows.append(
            {
                "id": ind.id,
                "origin": origin_label(ind),
                "density": ind.density,
                "fitness": ind.accuracy,
                "own_seed": own,
                "confirmed_own": c.own.mean if c is not None else None,
                "own_stop": _stop(c.own) if c is not None else None,
                "confirmed_reinit": _mean_pm(reinit),
                "reinit_stop": _stop(reinit),
            }
        )
    imp = plan.inits.kind in ROUND_KINDS
    fitness = (
        "the round's validation accuracy" if imp else "validation accuracy after the search's short training"
    )
    k = plan.inits.rewind_step if imp else 0
    title = (
        f"run {plan.run_id}, protocol {plan.protocol.key}: test accuracy at the early-stopping iteration"
        f"{f' (iterations after the rewind step {k})' if k else ''}; fitness: {fitness}"
    )
    return format_rows(rows, "table", title=title, fields=CONFIRM_TABLE_FIELDS)


# ---- IMP tickets --------------------------------------------------------------------------------------

# One row per committed IMP round: the ticket (the round's mask), its trajectory and round, and the
# protocol's numbers at the early-stopping iteration (after the last step when eval_every = 0).
IMP_FIELDS = (
    "id",
    "seed",
    "round",
    "density",
    "effective_density",
    "early_stop",
    "val_accuracy",
    "test_accuracy",
    "is_pareto",
)


def imp_ticket_rows(store: Store, run_id: str) -> list[Row]:
    """The tickets of an IMP run (``IMP_FIELDS``) by round, then seed; ``is_pareto`` marks the front's."""
    individuals = {r.id: r for r in store.individuals(run_id)}
    on_front = pareto.on_front(list(individuals.values()))
    rows = []
    for rec in store.imp_rounds(run_id):
        ind, result, es = individuals[rec.individual_id], rec.result, rec.result.get("early_stop")
        rows.append(
            {
                "id": ind.id,
                "seed": rec.trajectory,
                "round": rec.round,
                "density": ind.density,
                "effective_density": ind.effective_density,
                "early_stop": es["step"] if es else result["steps"],
                "val_accuracy": es["val_accuracy"] if es else result["val_accuracy"],
                "test_accuracy": es["test_accuracy"] if es else result.get("test_accuracy"),
                "is_pareto": ind.id in on_front,
            }
        )
    return sorted(rows, key=lambda row: (row["round"], row["seed"]))


def format_imp_tickets(store: Store, run_id: str, fmt: str = "table") -> str:
    """``lotterysearch imp``'s closing table: every ticket of the run with its early-stop numbers."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    run = store.run(run_id)
    rows = imp_ticket_rows(store, run_id)
    title = (
        f"run {run_id} ({run.status}): {len(rows)} {run.kind.value.upper()} tickets, {sum(r['is_pareto'] for r in rows)} on the"
        " Pareto front (accuracies at the early-stopping iteration)"
    )
    return format_rows(rows, fmt, title=title, fields=IMP_FIELDS)


# ---- plot -------------------------------------------------------------------------------------------

_FRONT_COLOR = "#1f4e9c"
_SEED_COLOR = "#e07b00"
_RANDOM_COLOR = "#8e3ca8"
_POINT_COLOR = "#9a9a9a"
_HV_COLOR = "#1f4e9c"
_ACC_COLOR = "#2a8a3a"
_CONFIRM_COLOR = "#c0282d"
_IMP_COLOR = "#10908a"
_OVERLAY_COLOR = "#d4572a"
# How each kind of point is drawn; its legend label is made where it is drawn (it names the pruner, counts)
_POINT_STYLES: dict[str, dict[str, Any]] = {
    "child": dict(marker="o", s=14, color=_POINT_COLOR, alpha=0.35, lw=0),
    "seed+": dict(marker="D", s=22, facecolors="none", edgecolors=_SEED_COLOR, alpha=0.7, lw=0.9),
    "random": dict(marker="x", s=34, color=_RANDOM_COLOR, alpha=0.85, lw=1.2),
    "seed": dict(marker="*", s=110, color=_SEED_COLOR, edgecolors="black", lw=0.5),
    "imp": dict(marker="^", s=30, color=_IMP_COLOR, lw=0),
    "overlay": dict(marker="v", s=26, facecolors="none", edgecolors=_OVERLAY_COLOR, lw=1.0, zorder=6),
    "confirmed": dict(marker="o", s=38, color=_CONFIRM_COLOR, edgecolors="black", lw=0.5, zorder=6),
}
_REINIT_DODGE = 1.03


def origin_kind(origin: str) -> str:
    """``seed`` (a pruner's mask), ``seed+`` (a mutated copy of one), ``random`` (the control), ``child``, or
    ``imp`` (an IMP or a CS ticket)."""
    if origin.startswith("child"):
        return "child"
    if origin.startswith(("imp:", "cs:")):
        return "imp"
    if origin.startswith("random"):
        return "random"
    return "seed+" if "+" in origin else "seed"


def _write_error(path: Path, e: OSError) -> ConfigError:
    return ConfigError(f"cannot write '{path}': {e.strerror or e}")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(path, e) from None


def front_figure(summary: RunSummary, overlay: RunSummary | None = None) -> Figure:
    """Accuracy vs density (log-x) with the front as a staircase, seeds and random controls marked; beside
    it the hypervolume and best accuracy per generation (for an IMP run: each trajectory's accuracy per
    round). ``overlay``: another run's points and front drawn over this one's (``overlay_sets``). Built
    without pyplot (no display, no global state).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.5, 5.2), dpi=110, layout="constrained")
    ax, ax_gen = fig.subplots(1, 2, width_ratios=[1.75, 1])
    run = summary.run
    gen = summary.last_generation
    imp = summary.kind in ROUND_KINDS
    stage = summary.stage if imp else ("no generation" if gen is None else f"generation {gen}")
    fig.suptitle(
        f"{run.id}  ·  {stage}  ·  "
        f"{len(summary.individuals)} {'tickets' if imp else 'evaluated'}, {summary.trained} trained  ·  "
        f"hypervolume {summary.hypervolume:.4f}",
        fontsize=12,
        fontweight="bold",
    )

    rows = [individual_row(r) for r in summary.individuals if r.density > 0]  # log axis
    by_kind: dict[str, list[Row]] = {"child": [], "seed+": [], "seed": [], "random": [], "imp": []}
    for row in rows:
        by_kind[origin_kind(row["origin"])].append(row)
    pruner = next((r["origin"].split(":")[0] for r in by_kind["seed"] + by_kind["seed+"]), "")
    pruner = pruner if re.fullmatch(r"[A-Za-z0-9_]{1,20}", pruner) else "pruner"  # no mathtext ($) in labels
    labels = {
        "child": "children",
        "seed+": f"mutated {pruner} seeds",
        "random": "random controls",
        "seed": f"{pruner} seeds",
        "imp": "IMP tickets",
    }
    for kind, label in labels.items():
        pts = by_kind[kind]
        if pts:
            ax.scatter(
                [p["density"] for p in pts],
                [p["accuracy"] for p in pts],
                label=f"{label} ({len(pts)})",
                zorder=2 if kind == "child" else 5,
                **_POINT_STYLES[kind],
            )
    front = [r for r in summary.front if r["density"] > 0]
    if front:
        ax.plot(
            [r["density"] for r in front],
            [r["accuracy"] for r in front],
            drawstyle="steps-post",
            color=_FRONT_COLOR,
            lw=1.8,
            marker="o",
            ms=6.5,
            mfc=_FRONT_COLOR,
            mec="white",
            mew=0.9,
            zorder=4,
            label=f"Pareto front ({len(summary.front)})",
        )
        for r in _apart(front, rows):
            ax.annotate(
                str(r["id"]),
                (r["density"], r["accuracy"]),
                xytext=(-3, 6),
                textcoords="offset points",
                ha="right",
                fontsize=7,
                color=_FRONT_COLOR,
            )
    confirmed = _plot_confirmed(ax, summary)
    overlaid = _plot_overlay(ax, summary, overlay)
    if rows or overlaid:
        ax.set_xscale("log")
        top = ax.secondary_xaxis("top", functions=(_reciprocal, _reciprocal))
        top.set_xlabel("compression ρ = 1 / density")
        for axis, suffix in ((ax.xaxis, ""), (top.xaxis, "×")):  # plain numbers, not 2×10⁻¹
            axis.set_major_formatter(_plain_log_formatter(suffix))
            axis.set_minor_formatter(_plain_log_formatter(suffix, minor=True))
        ax.legend(loc="best", fontsize=8.5, framealpha=0.9)
    else:
        ax.text(0.5, 0.5, "no evaluated masks yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("density (kept / total weights, log scale)")
    ax.set_ylabel("validation accuracy" + ("; test accuracy at early stop (confirmed)" if confirmed else ""))
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)

    if summary.kind in ROUND_KINDS:  # an IMP run has rounds, not generations
        _plot_imp_rounds(ax_gen, summary)
        return fig
    gens = summary.generations
    ax_gen.set_title("progress per generation", fontsize=10)
    ax_gen.set_xlabel("generation")
    if gens:
        g = [r.gen for r in gens]
        (l1,) = ax_gen.plot(g, [r.hypervolume for r in gens], "o-", color=_HV_COLOR, label="hypervolume")
        ax_acc = ax_gen.twinx()
        (l2,) = ax_acc.plot(
            g, [r.best_accuracy for r in gens], "s--", color=_ACC_COLOR, label="best accuracy (population)"
        )
        ax_gen.set_ylabel("hypervolume", color=_HV_COLOR)
        ax_acc.set_ylabel("best validation accuracy", color=_ACC_COLOR)
        ax_gen.tick_params(axis="y", colors=_HV_COLOR)
        ax_acc.tick_params(axis="y", colors=_ACC_COLOR)
        ax_gen.xaxis.get_major_locator().set_params(integer=True)
        ax_gen.legend(handles=[l1, l2], loc="lower right", fontsize=8.5)
        ax_gen.grid(True, alpha=0.3)
    else:
        ax_gen.text(
            0.5, 0.5, "no generation committed yet", ha="center", va="center", transform=ax_gen.transAxes
        )
    return fig


def _plot_confirmed(ax: Any, summary: RunSummary) -> bool:
    """The confirmed test accuracies at early stop: own init filled, the reinit control's mean open with
    its std, a thin line from each to the individual's short-training accuracy. True when any is drawn."""
    by_id = {r.id: r for r in summary.individuals if r.density > 0}
    shown = [(by_id[i], c) for i, c in summary.confirmed.items() if i in by_id]
    if not shown:
        return False
    for ind, c in shown:
        ys = [y for y in (c.own.mean, c.reinit.mean) if y is not None]
        ax.plot([ind.density] * (len(ys) + 1), [ind.accuracy, *ys], color=_CONFIRM_COLOR, lw=0.6, alpha=0.4)
    own = [(ind.density, c.own.mean) for ind, c in shown if c.own.n]
    if own:
        ax.scatter(
            *zip(*own, strict=True), label=f"confirmed, own init ({len(own)})", **_POINT_STYLES["confirmed"]
        )
    # Drawn 3% to the right of the density (a log axis: the same gap everywhere), so an own-init marker at
    # the same accuracy does not hide it.
    reinit = [(ind.density * _REINIT_DODGE, c.reinit.mean, c.reinit.std) for ind, c in shown if c.reinit.n]
    if reinit:
        x, y, err = zip(*reinit, strict=True)
        ax.errorbar(
            x,
            y,
            yerr=err,
            fmt="o",
            ms=6.5,
            mfc="none",
            mec=_CONFIRM_COLOR,
            ecolor=_CONFIRM_COLOR,
            elinewidth=0.8,
            capsize=2,
            zorder=6,
            label=f"confirmed, reinit mean ± std ({len(reinit)})",
        )
    return True


@dataclass(frozen=True)
class OverlaySets:
    """The point sets of one run drawn over another's front, each as (density, accuracy) by density: the
    base run's front, the other run's points (all of them) and front, and the ids of the other run's
    points that the base front dominates (as good or better on both objectives, better on one)."""

    base_run: str
    other_run: str
    base_front: list[tuple[float, float]]
    other_points: list[tuple[float, float]]
    other_front: list[tuple[float, float]]
    dominated: list[int]


def overlay_sets(base: RunSummary, other: RunSummary) -> OverlaySets:
    """What an overlay plot shows (``front --plot P --overlay OTHER``): ``other``'s points over ``base``'s
    front. Only full-fidelity points of ``other`` (those that may stand on a front) are drawn."""
    points = sorted(
        (r for r in other.individuals if pareto.is_full(r.fidelity)),
        key=lambda r: (r.density, -r.accuracy, r.id),
    )
    front = [(r["density"], r["accuracy"]) for r in base.front]

    def dominated(r: Individual) -> bool:
        return any(a >= r.accuracy and d <= r.density and (a > r.accuracy or d < r.density) for d, a in front)

    return OverlaySets(
        base.run.id,
        other.run.id,
        front,
        [(r.density, r.accuracy) for r in points],
        [(r["density"], r["accuracy"]) for r in other.front],
        sorted(r.id for r in points if dominated(r)),
    )


def _plot_overlay(ax: Any, summary: RunSummary, overlay: RunSummary | None) -> bool:
    """Draw ``overlay``'s points and front over the base plot; True when anything was drawn."""
    if overlay is None:
        return False
    sets = overlay_sets(summary, overlay)
    pts = [(d, a) for d, a in sets.other_points if d > 0]  # log axis
    if not pts:
        return False
    n, k = len(sets.other_points), len(sets.dominated)
    label = _plain_label(sets.other_run)
    ax.scatter(
        *zip(*pts, strict=True),
        label=f"{label} ({n}; {k} below the front of {_plain_label(sets.base_run)})",
        **_POINT_STYLES["overlay"],
    )
    front = [(d, a) for d, a in sets.other_front if d > 0]
    if front:
        ax.plot(
            *zip(*front, strict=True),
            drawstyle="steps-post",
            color=_OVERLAY_COLOR,
            lw=1.2,
            ls="--",
            zorder=5,
            label=f"{label} front ({len(front)})",
        )
    return True


def _plain_label(text: str) -> str:
    """A run id as a legend label: no mathtext ($) or other markup."""
    return text if re.fullmatch(r"[A-Za-z0-9_.\-]{1,60}", text) else "run"


def _plot_imp_rounds(ax: Any, summary: RunSummary) -> None:
    """An IMP run's right panel: each trajectory's ticket accuracy (validation, at early stop when the
    protocol evaluates along the way) per round, density on the top axis."""
    ax.set_title("IMP: accuracy per round, one line per init seed", fontsize=10)
    ax.set_xlabel("round (density ≈ (1 - rate)^round)")
    ax.set_ylabel("validation accuracy of the round's ticket")
    by_seed: dict[str, list[Individual]] = {}
    for r in summary.individuals:
        seed = r.origin.split(":")[1] if r.origin.count(":") >= 2 else "?"
        by_seed.setdefault(seed, []).append(r)
    if not by_seed:
        ax.text(0.5, 0.5, "no round committed yet", ha="center", va="center", transform=ax.transAxes)
        return
    for seed, inds in sorted(by_seed.items()):
        inds.sort(key=lambda r: r.generation)
        label = seed if re.fullmatch(r"seed=-?[0-9]{1,12}", seed) else "seed"
        ax.plot([r.generation for r in inds], [r.accuracy for r in inds], "o-", ms=3.5, lw=1.1, label=label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(True, alpha=0.3)


def _apart(front: Sequence[Row], rows: Sequence[Row]) -> list[Row]:
    """Front points to label with their id (what ``export`` takes): greedily, those at least ~3% of the
    plot's width or height from every label already placed, so labels do not overprint."""
    xs = [math.log10(r["density"]) for r in rows]
    ys = [r["accuracy"] for r in rows]
    dx, dy = 0.035 * (max(xs) - min(xs) or 1.0), 0.04 * (max(ys) - min(ys) or 1.0)
    placed: list[Row] = []
    for r in front:
        x, y = math.log10(r["density"]), r["accuracy"]
        if all(abs(x - math.log10(p["density"])) > dx or abs(y - p["accuracy"]) > dy for p in placed):
            placed.append(r)
    return placed


def _plain_log_formatter(suffix: str, minor: bool = False) -> Any:
    """Matplotlib's log formatter (which labels minor ticks only when few decades are shown) writing plain
    numbers (0.2, 30) with ``suffix``."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}{suffix}" if super().__call__(x, pos) else ""

    return Plain(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)) if minor else Plain()


def _reciprocal(x: Any) -> Any:
    import numpy as np

    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.maximum(x, 1e-300), np.inf)


def _png_bytes(summary: RunSummary, overlay: RunSummary | None = None) -> bytes:
    buf = io.BytesIO()
    front_figure(summary, overlay).savefig(buf, format="png")
    return buf.getvalue()


def plot_front(
    store: Store, run_id: str, path: str | Path, *, overlay: tuple[Store, str] | None = None
) -> Path:
    """Write the front plot of a run as PNG (see ``front_figure``), with ``overlay`` (a store and a run id:
    another run's points over this run's front); returns the path."""
    path = Path(path)
    summary = run_summary(store, run_id)
    other = run_summary(*overlay) if overlay is not None else None
    _make_parent(path)  # fail before spending a second on rendering
    png = _png_bytes(summary, other)
    try:
        path.write_bytes(png)
    except OSError as e:
        raise _write_error(path, e) from None
    return path


# ---- HTML -------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.num { text-align: right; }
table.front th { cursor: pointer; user-select: none; background: #f3f5f9; position: sticky; top: 0; }
table.front th:hover { background: #e3e8f2; }
table.front th.asc::after { content: " ▲"; } table.front th.desc::after { content: " ▼"; }
table.summary th { font-weight: normal; color: #555; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border: 1px solid #e4e4e4; }
code { font-size: .95em; }
"""

# Click a header to sort by it (numbers by data-v, text otherwise); click again to reverse.
_JS = """
document.querySelectorAll("table.front").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var c = (x !== undefined && y !== undefined) ? Number(x) - Number(y)
          : a.cells[col].textContent.localeCompare(b.cells[col].textContent);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

# Only inline styles, inline script and data: images may load: the page works offline by construction.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _html_cell(field: str, value: Any) -> str:
    text = _e(_cell(field, value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = value if math.isfinite(value) else (1e308 if value > 0 else -1e308)
        return f'<td class="num" data-v="{_e(repr(v))}">{text}</td>'
    return f"<td>{text}</td>"


def _html_table(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], css_class: str) -> str:
    head = "".join(f"<th>{_e(f)}</th>" for f in fields)
    body = "\n".join("<tr>" + "".join(_html_cell(f, r.get(f)) for f in fields) + "</tr>" for r in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def front_html(summary: RunSummary, png: bytes) -> str:
    """The self-contained page: plot (base64 PNG), summary, front table and stored config, all escaped."""
    run = summary.run
    gen = summary.last_generation
    facts = [
        ("run", run.id),
        ("name", run.name),
        ("status", run.status),
        ("created", _cell("created", run.created) + " UTC"),
        ("IMP rounds committed", len(summary.individuals))
        if summary.kind in ROUND_KINDS
        else ("last generation", "-" if gen is None else gen),
        ("masks evaluated", len(summary.individuals)),
        ("classes trained", summary.trained),
        ("isomorph hits (training skipped)", summary.isomorph_hits),
        ("Pareto front", f"{len(summary.front)} masks"),
        ("hypervolume", f"{summary.hypervolume:.6f} (reference point {tuple(run.ref_point)})"),
        ("best accuracy", _cell("accuracy", summary.best_accuracy)),
        ("seed", run.seed),
        ("config hash", run.config_hash),
        ("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items() if v)),
    ]
    summary_table = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lotterysearch front: {_e(run.id)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Pareto front of run <code>{_e(run.id)}</code></h1>
<p class="sub">{_e(run.name)} · objectives: validation accuracy (maximised) and density (minimised)</p>
<img alt="accuracy vs density of every evaluated mask, the Pareto front, and progress per generation"
 src="data:image/png;base64,{image}">
<h2>Summary</h2>
<table class="summary">
{summary_table}
</table>
<h2>Front ({len(summary.front)} masks; click a column to sort)</h2>
<p class="sub">Export one with <code>lotterysearch export {_e(run.id)} ID --out mask.npz</code>.</p>
{_html_table(summary.front, FRONT_FIELDS, "front")}
<h2>Config</h2>
<pre><code>{_e(run.config_toml)}</code></pre>
<script>{_JS}</script>
</body>
</html>
"""


def html_front(store: Store, run_id: str, path: str | Path) -> Path:
    """Write one HTML file that works offline (no external JS, CSS, fonts or images); returns the path."""
    path = Path(path)
    summary = run_summary(store, run_id)
    _make_parent(path)
    page = front_html(summary, _png_bytes(summary))
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as e:
        raise _write_error(path, e) from None
    return path


# ---- export -----------------------------------------------------------------------------------------


def export_mask(store: Store, run_id: str, individual_id: int, out_path: str | Path) -> Path:
    """Write an individual's mask as ``.npz`` (``Mask.save``), the file ``lotterysearch train --mask``
    reads; an unknown run or id raises the store's one-line ``StoreError``."""
    rec = store.individual(run_id, individual_id)
    mask = rec.mask
    try:
        return mask.save(out_path)
    except OSError as e:
        raise MaskError(f"cannot write mask file '{out_path}': {e.strerror or e}") from None
