"""What each dashboard page shows, as JSON-ready dicts read from a store.

Every number comes from the modules that own it: rows, fronts, summaries and overlays from ``report``
(so the API's front is the CLI's ``front --format json``), hypervolume from ``pareto``, overlaps from
``overlap`` and ``alignment``. Nothing here writes; the app hands in a store opened read-only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from lotterysearch.core import overlap
from lotterysearch.core.alignment import align
from lotterysearch.core.masks import Mask
from lotterysearch.errors import LotterySearchError, MaskError, StoreError
from lotterysearch.evolution import diagnostics, pareto
from lotterysearch.readers import report
from lotterysearch.runs.confirmation import stored_confirmed
from lotterysearch.runs.ledger import run_compute, stored_confirmation_ledger
from lotterysearch.settings import ROUND_KINDS
from lotterysearch.storage.store import Individual, RunRecord, Store

# What ``Store.create_run`` makes of a name (``_slug``) plus ``-NNN``: letters, digits, '_', '.', '-'.
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
LINEAGE_NODES = 120  # a lineage tree is cut after this many ancestors (a long search's tree is wide)


class NotFound(LotterySearchError):
    """A run, individual or layer the store does not hold (HTTP 404)."""


def json_value(value: Any) -> Any:
    """Infinite or NaN floats as null (JSON has neither), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise NotFound(f"'{run_id[:80]}' is not a run id (letters, digits, '_', '.', '-')")
    return run_id


def stored_run(store: Store, run_id: str) -> RunRecord:
    """The run, or ``NotFound`` naming it."""
    check_run_id(run_id)
    try:
        return store.run(run_id)
    except StoreError as e:
        raise NotFound(str(e)) from None


def stored_individual(store: Store, run_id: str, individual_id: int) -> Individual:
    stored_run(store, run_id)
    try:
        return store.individual(run_id, individual_id)
    except StoreError as e:
        raise NotFound(str(e)) from None


def _config(run: RunRecord) -> dict[str, Any]:
    try:
        value = json.loads(run.config_json)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def planned(run: RunRecord) -> int | None:
    """Generations a search is configured for (an IMP run: rounds per trajectory; None for a population-of-one
    control, which runs until its step budget is spent)."""
    cfg = _config(run)
    ga = cfg.get("ga")
    if isinstance(ga, dict) and ga.get("control", "none") != "none":
        return None
    section, key = (run.kind.value, "rounds") if run.kind in ROUND_KINDS else ("ga", "generations")
    value = cfg.get(section, {}).get(key) if isinstance(cfg.get(section), dict) else None
    return value if isinstance(value, int) else None


def _hypervolume(store: Store, run: RunRecord) -> float:
    if run.kind in ROUND_KINDS:
        return pareto.front_hypervolume(pareto.run_front(store, run.id), tuple(run.ref_point))
    last = store.last_generation(run.id)
    return 0.0 if last is None else last.hypervolume


# ---- runs ---------------------------------------------------------------------------------------------
def runs_view(store: Store) -> dict[str, Any]:
    """``report.runs_rows`` with what a live listing adds: kind, planned length, isomorph hits,
    hypervolume of the committed front, last update."""
    records = {r.id: r for r in store.runs()}
    rows = []
    for row in report.runs_rows(store):
        run = records[row["id"]]
        rows.append(
            row
            | {
                "kind": run.kind,
                "planned": planned(run),
                "isomorph_hits": store.isomorph_hits(run.id),
                "hypervolume": _hypervolume(store, run),
                "updated": run.updated,
            }
        )
    return json_value({"workspace": str(store.paths.root), "runs": rows})


# ---- one run ------------------------------------------------------------------------------------------
def _rungs(store: Store, run_id: str, individuals: list[Individual]) -> list[dict[str, Any]]:
    """Successive halving: per training fidelity, the classes whose last training stopped there (with its
    steps) and the individuals measured at it. A run without halving has one rung, fidelity 1."""
    rungs: dict[float, dict[str, Any]] = {}
    for c in store.classes(run_id).values():
        r = rungs.setdefault(c.fidelity, {"fidelity": c.fidelity, "steps": c.steps, "classes": 0})
        r["classes"] += 1
    for ind in individuals:
        r = rungs.setdefault(ind.fidelity, {"fidelity": ind.fidelity, "steps": None, "classes": 0})
        r["individuals"] = r.get("individuals", 0) + 1
    return [r | {"individuals": r.get("individuals", 0)} for _, r in sorted(rungs.items())]


def run_view(store: Store, run_id: str) -> dict[str, Any]:
    """A run's page: its facts, every evaluated mask (``report.front_of(all=True)`` with confirmations),
    hypervolume per generation, successive-halving rungs, and an IMP run's tickets."""
    stored_run(store, run_id)
    summary = report.run_summary(store, run_id)
    run = summary.run
    masks = report.front_of(summary.individuals, all=True)
    masks, confirmed_fields, note = report.with_confirmed(masks, summary.confirmed)
    by_id = {r.id: r for r in summary.individuals}
    compute = run_compute(store, run_id)
    confirming = stored_confirmation_ledger(store, run_id)
    for row in masks:
        ind = by_id[row["id"]]
        row["fidelity"], row["evaluated"] = ind.fidelity, ind.evaluated
        row["lineage_steps"] = compute.lineage_steps.get(ind.id)
        row["run_steps"] = compute.run_steps.get(ind.id)
        row["kind"] = report.origin_kind(ind.origin)
    facts = {
        "id": run.id,
        "name": run.name,
        "kind": summary.kind,
        "status": run.status,
        "created": run.created,
        "updated": run.updated,
        "stage": summary.stage,
        "generation": summary.last_generation,
        "planned": planned(run),
        "individuals": len(summary.individuals),
        "trained": summary.trained,
        "isomorph_hits": summary.isomorph_hits,
        "front_size": len(summary.front),
        "hypervolume": summary.hypervolume,
        "best_accuracy": summary.best_accuracy,
        "ref_point": list(run.ref_point),
        "seed": run.seed,
        "config_hash": run.config_hash,
        "title": report.front_title(summary) + note,
        # the compute ledger (``runs.ledger``): the run's, and its confirmations' apart
        "ledger": compute.ledger.as_dict(),
        "ledger_line": compute.ledger.line(),
        "confirmation_ledger": confirming.as_dict(),
        "confirmation_ledger_line": confirming.line(),
    }
    generations = [
        {
            "gen": g.gen,
            "hypervolume": g.hypervolume,
            "best_accuracy": g.best_accuracy,
            "evaluated": g.evaluated,
            "skipped": g.skipped,
            "elapsed": g.elapsed,
            "steps": g.steps,
            "critical_path_steps": g.critical_path_steps,
        }
        for g in summary.generations
    ]
    tickets = report.imp_ticket_rows(store, run_id) if summary.kind in ROUND_KINDS else []
    searching = (
        [diagnostics.as_dict(d) for d in diagnostics.run_diagnostics(store, run_id)]
        if summary.kind not in ROUND_KINDS
        else []
    )
    return json_value(
        {
            "run": facts,
            "config_toml": run.config_toml,
            "front_ids": [r["id"] for r in summary.front],
            "masks": masks,
            "confirmed_fields": confirmed_fields,
            "generations": generations,
            "rungs": _rungs(store, run_id, summary.individuals),
            "tickets": tickets,
            "diagnostics": searching,
        }
    )


# ---- one mask -----------------------------------------------------------------------------------------
def layer_rows(mask: Mask) -> list[dict[str, Any]]:
    """Per layer: kept and effective (on an input→output path) weights, and the live neurons on each
    side: inputs that feed an effective weight, outputs that an effective weight feeds."""
    eff = mask.effective()
    rows = []
    for name in mask.names:
        m, e = mask[name].numpy(), eff[name].numpy()
        rows.append(
            {
                "layer": name,
                "shape": list(m.shape),
                "kept": int(m.sum()),
                "total": int(m.size),
                "density": float(m.mean()),
                "effective_kept": int(e.sum()),
                "effective_density": float(e.mean()),
                "live_inputs": int(e.any(axis=0).sum()),
                "inputs": int(m.shape[1]),
                "live_outputs": int(e.any(axis=1).sum()),
                "outputs": int(m.shape[0]),
            }
        )
    return rows


def _node(ind: Individual) -> dict[str, Any]:
    return {
        "id": ind.id,
        "generation": ind.generation,
        "origin": report.origin_label(ind),
        "operator": ind.operator,
        "accuracy": ind.accuracy,
        "density": ind.density,
    }


def lineage(individuals: Mapping[int, Individual], root: int, limit: int = LINEAGE_NODES) -> dict[str, Any]:
    """The ancestry of ``root`` as a tree: each node its parents (and the operator that made it), breadth
    first; an ancestor met twice is shown once (``seen`` on later meetings), and after ``limit`` nodes the
    rest is cut (``cut``)."""
    tree = _node(individuals[root]) | {"parents": []}
    queue, seen, count = [tree], {root}, 1
    while queue:
        node = queue.pop(0)
        for pid in individuals[node["id"]].parents:
            if pid not in individuals:
                continue
            if pid in seen:
                node["parents"].append({"id": pid, "seen": True, "parents": []})
                continue
            if count >= limit:
                node["cut"] = True
                continue
            child = _node(individuals[pid]) | {"parents": []}
            node["parents"].append(child)
            queue.append(child)
            seen.add(pid)
            count += 1
    return tree


def mask_view(store: Store, run_id: str, individual_id: int) -> dict[str, Any]:
    """A mask's page: its row, layers, class (members and isomorph hits), lineage and confirmation."""
    ind = stored_individual(store, run_id, individual_id)
    everyone = {r.id: r for r in store.individuals(run_id)}
    members = [r for r in everyone.values() if r.class_key == ind.class_key]
    cls = store.classes(run_id).get(ind.class_key)
    confirmed = stored_confirmed(store, run_id).get(ind.id)
    first = ind.mask.names[0]
    return json_value(
        {
            "run": run_id,
            "mask": report.individual_row(ind)
            | {"fidelity": ind.fidelity, "evaluated": ind.evaluated, "parents": list(ind.parents)},
            "on_front": ind.id in {r.id for r in pareto.run_front(store, run_id)},
            "layers": layer_rows(ind.mask),
            "mnist_inputs": ind.mask.shapes[first][1] == 28 * 28,
            "class": {
                "key": ind.class_key,
                "members": len(members),
                "isomorph_hits": sum(not r.evaluated for r in members),
                "member_ids": sorted(r.id for r in members)[:200],
                "trained_by": cls.individual_id if cls else None,
                "steps": cls.steps if cls else None,
                "node": cls.node if cls else None,
                "wall_time": cls.wall_time if cls else None,
            },
            "confirmed": report.confirmed_row(confirmed) if confirmed else None,
            "lineage": lineage(everyone, ind.id),
        }
    )


# ---- comparing ----------------------------------------------------------------------------------------
def compare_view(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """Several runs' fronts and full-fidelity points on one plot, and for each run after the first how many
    of its points lie below the first run's front (``report.overlay_sets``). A search's pruner seeds (its
    SynFlow masks, before any variation) have their own front: the pruner alone against the GA."""
    if not run_ids:
        raise NotFound("compare needs at least one run (?run=RUN&run=OTHER)")
    for run_id in run_ids:
        stored_run(store, run_id)
    summaries = [report.run_summary(store, r) for r in run_ids]
    base = summaries[0]
    runs = []
    for s in summaries:
        sets = report.overlay_sets(base, s)
        seeds = pareto.front([r for r in s.individuals if report.origin_kind(r.origin) == "seed"])
        runs.append(
            {
                "id": s.run.id,
                "kind": s.kind,
                "status": s.run.status,
                "stage": s.stage,
                "hypervolume": s.hypervolume,
                "front": s.front,
                "points": [
                    {
                        "id": r.id,
                        "accuracy": r.accuracy,
                        "density": r.density,
                        "origin": report.origin_label(r),
                    }
                    for r in s.individuals
                    if pareto.is_full(r.fidelity)
                ],
                "below_base_front": len(sets.dominated) if s is not base else None,
                "seed_front": [report.individual_row(r) for r in seeds],
                "seed_hypervolume": pareto.front_hypervolume(seeds, tuple(s.run.ref_point)),
            }
        )
    return json_value({"base": base.run.id, "runs": runs})


def overlap_view(store: Store, a: tuple[str, int], b: tuple[str, int]) -> dict[str, Any]:
    """How alike two masks are: Jaccard raw and after aligning B's hidden neurons to A, the chance level
    for their per-layer counts, the excess over chance, per layer too (``overlap``)."""
    ia, ib = stored_individual(store, *a), stored_individual(store, *b)
    ma, mb = ia.mask, ib.mask
    if ma.shapes != mb.shapes:
        raise MaskError(
            f"masks {a[0]}/{a[1]} and {b[0]}/{b[1]} have different layer shapes; compare masks of one model"
        )
    aligned = align(ma, mb)
    raw, chance, matched = (
        overlap.jaccard(ma, mb),
        overlap.chance_jaccard(ma, mb),
        overlap.jaccard(ma, aligned),
    )
    layer_raw, layer_aligned = overlap.layer_jaccard(ma, mb), overlap.layer_jaccard(ma, aligned)
    layer_chance = overlap.layer_chance_jaccard(ma, mb)
    return json_value(
        {
            "a": {"run": a[0], "id": a[1], "class_key": ia.class_key, "density": ia.density},
            "b": {"run": b[0], "id": b[1], "class_key": ib.class_key, "density": ib.density},
            "same_class": ia.class_key == ib.class_key,
            "raw": raw,
            "aligned": matched,
            "chance": chance,
            "raw_excess": overlap.excess_overlap(raw, chance),
            "aligned_excess": overlap.excess_overlap(matched, chance),
            "layers": [
                {"layer": n, "raw": layer_raw[n], "aligned": layer_aligned[n], "chance": layer_chance[n]}
                for n in ma.names
            ],
        }
    )
