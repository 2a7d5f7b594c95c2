"""The ticket of θ₀: does the genetic search, scoring masks on one fixed init θ₀, find IMP's ticket for θ₀?

"The lottery ticket" is a mask of one initialization: IMP prunes θ₀'s trained weights by magnitude and
rewinds to θ₀. In the search's ticket mode the fitness of a mask is its short training from that same θ₀
(``[fitness] mode = "ticket"``, no alignment: a relabelled mask meets other initial weights). For each θ₀
the demo's search runs in ticket mode, seeded by SynFlow from θ₀ itself, and IMP runs from θ₀ with the same
short training in every round. At each seed density 1/ρ the search's best mask (by fitness) is compared with
IMP's ticket: raw Jaccard overlap against its chance level (independent masks with the same per-layer counts,
``overlap.chance_jaccard``) and κ = (J − J_chance)/(1 − J_chance); SynFlow's mask from θ₀ is the reference.
All three are trained from θ₀ with the fitness protocol and scored on the test split; the accuracy
comparisons, paired by θ₀, are decided together (``lotterysearch.verdicts``: paired t, Holm over the
section, TOST within the declared margin).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lotterysearch as ls
from experiments import common
from experiments.common import ROOT, Context, Rendered, Section
from experiments.demo_gain import best_at
from experiments.lth import train_mask
from lotterysearch.core.data import load_dataset
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.core.overlap import chance_jaccard, excess_overlap, jaccard
from lotterysearch.pruning.pruners import imp
from lotterysearch.settings import SearchConfig, load_config
from lotterysearch.stats import markdown_table, mean_std, pm
from lotterysearch.verdicts import Verdict

DEMO = ROOT / "configs" / "demo.toml"
MASKS = ("search", "magnitude", "synflow")
LABELS = {
    "search": "the search's best (ticket mode)",
    "magnitude": "the same with the magnitude mutation only",
    "synflow": "SynFlow from θ₀",
    "imp": "IMP's ticket",
}
# The search's two variants: the demo's mutations (move, grow/prune), or the magnitude (Lamarckian) mutation
# in their place, which prunes the parent's smallest weights trained from θ₀, as IMP does; all else equal.
MUTATIONS = {"search": None, "magnitude": ("magnitude",)}


@dataclass(frozen=True)
class TicketSettings:
    inits: tuple[int, ...]  # θ₀ seeds (each also the search's GA seed)
    compressions: tuple[float, ...] = (10, 30, 100)
    generations: int | None = None  # None: the config's
    evaluator: str = "ray"  # or "local"
    config: Path = DEMO
    # Two test accuracies within this many points count as level: the margin of every equivalence test (TOST)
    # of the section, as section 1's on the same data. Declared before the next run, which stores it with its
    # results; the saved run was made before it was declared.
    equivalence_margin: float = 0.5


SETTINGS = {
    "small": TicketSettings(inits=(0, 1, 2)),
    "large": TicketSettings(inits=tuple(range(5)), generations=32),
}


def describe(s: TicketSettings) -> str:
    """The settings in one table cell."""
    gens = f"{s.generations or load_config(s.config).ga.generations} generations"
    return f"[{s.config.name}](configs/{s.config.name}) in ticket mode, {gens}: {len(s.inits)} inits θ₀"


def ticket_config(
    s: TicketSettings, theta0: int, workspace: Path, mutations: tuple[str, ...] | None = None
) -> SearchConfig:
    """The demo's config in ticket mode on θ₀: seeded by SynFlow from θ₀, scored by training from θ₀;
    ``mutations`` in place of the config's."""
    cfg = load_config(s.config)
    ga = dataclasses.replace(cfg.ga, align=False, generations=s.generations or cfg.ga.generations)
    if mutations is not None:
        ga = dataclasses.replace(ga, mutations=mutations)
    return dataclasses.replace(
        cfg,
        name="ticket-match",
        seed=theta0,
        workspace=str(workspace),
        seeding=dataclasses.replace(cfg.seeding, init_seeds=(theta0,)),
        fitness=dataclasses.replace(cfg.fitness, mode="ticket", init_seeds=(theta0,)),
        ga=ga,
    )


def overlap(a: Mask, b: Mask) -> dict[str, float]:
    j, c = jaccard(a, b), chance_jaccard(a, b)
    return {"jaccard": j, "chance": c, "kappa": excess_overlap(j, c)}


def measure(s: TicketSettings, ctx: Context) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for theta0 in s.inits:
            everyone, steps = {}, {}
            for variant, mutations in MUTATIONS.items():
                cfg = ticket_config(s, theta0, Path(tmp) / variant, mutations)
                ctx.progress(
                    f"[ticket] θ₀ = {theta0}: the search in ticket mode ({variant}), {cfg.ga.generations} generations"
                )
                with ls.search(cfg, local=s.evaluator == "local") as run:
                    everyone[variant] = run.individuals()
                steps[variant] = sum(i.evaluated for i in everyone[variant]) * cfg.fitness.steps
            data = load_dataset(cfg.dataset, cfg.seed, data_dir=cfg.data_dir or None)
            training = cfg.fitness.training()
            ctx.progress(f"[ticket] θ₀ = {theta0}: IMP with the fitness's training in every round")
            result = imp(
                build_model(cfg.model, theta0),
                max(s.compressions),
                data,
                training=training,
                mode=cfg.mode,
                seed=theta0,
                tickets_at=s.compressions,
            )
            row: dict[str, Any] = {
                "theta0": theta0,
                "search_steps": steps["search"],
                "magnitude_steps": steps["magnitude"],
                "imp_steps": result.rounds * training.steps,
                "at": {},
            }
            for rho in s.compressions:
                best = {v: best_at(everyone[v], rho) for v in MUTATIONS}
                masks = {
                    **{v: b.mask for v, b in best.items()},
                    "synflow": ls.prune(build_model(cfg.model, theta0), "synflow", compression=rho),
                    "imp": result.tickets[rho],
                }
                test = {
                    k: train_mask(data, cfg.model, theta0, m.pack(), m.shapes, training, cfg.mode)[
                        "test_accuracy"
                    ]
                    for k, m in masks.items()
                }
                row["at"][f"{rho:g}"] = {
                    "density": {k: m.density() for k, m in masks.items()},
                    "fitness": {v: b.accuracy for v, b in best.items()},
                    "origin": {v: b.origin for v, b in best.items()},
                    "test": test,
                    "with_imp": {k: overlap(masks[k], masks["imp"]) for k in MASKS},
                    "search_synflow": overlap(masks["search"], masks["synflow"]),
                }
            rows.append(row)
    return {
        "config": s.config.name,
        "compressions": list(s.compressions),
        "inits": list(s.inits),
        "equivalence_margin": s.equivalence_margin,
        "rows": rows,
    }


def run(ctx: Context) -> dict[str, Any]:
    return measure(SETTINGS[ctx.settings], ctx)


# ---- rendering ------------------------------------------------------------------------------------------
def _stat(res: Mapping[str, Any], rho: float, *path: str) -> dict[str, float]:
    def get(row: Mapping[str, Any]) -> float:
        v: Any = row["at"][f"{rho:g}"]
        for p in path:
            v = v[p]
        return float(v)

    return mean_std(get(r) for r in res["rows"])


def paired(res: Mapping[str, Any], rho: float, a: str, b: str) -> dict[str, float]:
    """Test accuracy of mask ``a`` minus mask ``b``, paired by θ₀: mean and standard error (NaN for one θ₀):
    what the report's earlier 2-SE screen read."""
    diffs = [r["at"][f"{rho:g}"]["test"][a] - r["at"][f"{rho:g}"]["test"][b] for r in res["rows"]]
    st = mean_std(diffs)
    return {"mean": st["mean"], "se": st["std"] / math.sqrt(st["n"]) if st["n"] > 1 else math.nan}


def screen(res: Mapping[str, Any], rho: float, a: str, b: str) -> str:
    """What the earlier 2-SE screen said of a − b: 'indistinguishable' (the report's "level") within 2 SE,
    else 'better' or 'worse'. Kept to mark the verdicts that changed."""
    d = paired(res, rho, a, b)
    if not abs(d["mean"]) > 2 * d["se"]:
        return "indistinguishable"
    return "better" if d["mean"] > 0 else "worse"


# The section's comparisons at each density, a − b: the search (either mutation) against IMP's ticket, and
# the magnitude mutation against the demo's.
COMPARISONS = {
    ("search", "imp"): "the search's best − IMP's ticket",
    ("magnitude", "imp"): "magnitude mutation − IMP's ticket",
    ("magnitude", "search"): "magnitude mutation − the demo's mutations",
}


def margin(res: Mapping[str, Any]) -> tuple[float, bool]:
    """The equivalence margin in points, and whether the run stored it (declared before it ran) or it is the
    current settings', declared after the run that ``res`` holds."""
    if "equivalence_margin" in res:
        return float(res["equivalence_margin"]), True
    return SETTINGS[res.get("settings_name", "small")].equivalence_margin, False


def compared(
    res: Mapping[str, Any],
) -> dict[tuple[str, str, float], tuple[dict[int, float], dict[int, float]]]:
    """Every comparison of the section as (a, b) test accuracies by θ₀, keyed (a, b, ρ)."""
    out = {}
    for rho in res["compressions"]:
        for a, b in COMPARISONS:
            acc = {
                m: {r["theta0"]: float(r["at"][f"{rho:g}"]["test"][m]) for r in res["rows"]} for m in (a, b)
            }
            out[(a, b, rho)] = (acc[a], acc[b])
    return out


def verdicts(res: Mapping[str, Any]) -> dict[tuple[str, str, float], Verdict]:
    """``compared``'s comparisons decided as one family, in points (``common.decide``)."""
    return common.decide(compared(res), margin(res)[0])


def verdict_table(res: Mapping[str, Any], decided: Mapping[tuple[str, str, float], Verdict]) -> str:
    rows = [
        [
            f"1/{rho:g}",
            COMPARISONS[(a, b)],
            v.interval(),
            common.test_cell(v),
            common.verdict_cell(v, screen(res, rho, a, b)),
        ]
        for (a, b, rho), v in decided.items()
    ]
    return markdown_table(
        [
            "density ≤",
            "comparison (trained from θ₀)",
            "difference, points [95% CI]",
            "paired test",
            "verdict",
        ],
        rows,
    )


def render(res: Mapping[str, Any], ctx: Context) -> Rendered:
    rows = []
    for rho in res["compressions"]:
        for k in MASKS:
            rows.append(
                [
                    f"1/{rho:g}",
                    LABELS[k],
                    pm(_stat(res, rho, "with_imp", k, "jaccard")),
                    pm(_stat(res, rho, "with_imp", k, "chance")),
                    pm(_stat(res, rho, "with_imp", k, "kappa")),
                    pm(_stat(res, rho, "test", k)),
                ]
            )
        rows.append([f"1/{rho:g}", LABELS["imp"], "1", "", "", pm(_stat(res, rho, "test", "imp"))])
    table = markdown_table(
        ["density ≤", "mask", "J with IMP's ticket", "J chance", "κ", "test accuracy from θ₀"], rows
    )
    steps = mean_std(r["search_steps"] for r in res["rows"])
    magnitude_steps = mean_std(r["magnitude_steps"] for r in res["rows"])
    imp_steps = mean_std(r["imp_steps"] for r in res["rows"])
    decided = verdicts(res)
    how = common.method_text(
        decided,
        *margin(res),
        "`experiments/ticket_match.py` (`TicketSettings.equivalence_margin`)",
        screen="a paired difference beyond 2 standard errors",
    )
    body = (
        f"For each of {len(res['inits'])} inits θ₀: the demo's search (`experiments/configs/{res['config']}`) in "
        "ticket mode on θ₀ (seeded by SynFlow from θ₀, no alignment), IMP from θ₀ (layerwise 20% per round, "
        "rewinding to θ₀) with the fitness's training in every round, and SynFlow's mask from θ₀. The search runs "
        "twice: with the demo's mutations (move, grow/prune), and with the magnitude mutation in their place "
        "(prune the parent's smallest weights trained from θ₀, regrow as many at random; all else equal). Overlap with "
        "IMP's ticket of the same θ₀ at each seed density (mean ± std over θ₀), and each mask trained from θ₀ "
        f"with the fitness protocol on test. Training steps: the search {pm(steps, 0)}, with the magnitude mutation "
        f"{pm(magnitude_steps, 0)}, IMP {pm(imp_steps, 0)}."
        f"\n\n{table}\n\n{how}\n\n{verdict_table(res, decided)}"
    )
    return Rendered(body=body, answer=ticket_answer(res))


def _diffs(res: Mapping[str, Any], decided: Mapping[tuple[str, str, float], Verdict], a: str, b: str) -> str:
    """``−6.33 [−11.64, −1.03] at 1/10, …``: a − b in points with its interval at each density."""
    return ", ".join(f"{decided[(a, b, rho)].interval()} at 1/{rho:g}" for rho in res["compressions"])


def _kinds(res: Mapping[str, Any], decided: Mapping[tuple[str, str, float], Verdict], a: str, b: str) -> str:
    return common.grouped({f"1/{rho:g}": decided[(a, b, rho)] for rho in res["compressions"]})


def ticket_answer(res: Mapping[str, Any]) -> str:
    decided = verdicts(res)
    m, _ = margin(res)
    parts = []
    for rho in res["compressions"]:
        k_search = _stat(res, rho, "with_imp", "search", "kappa")
        k_sf = _stat(res, rho, "with_imp", "synflow", "kappa")
        parts.append(f"κ = {k_search['mean']:+.3f} at 1/{rho:g} (SynFlow's {k_sf['mean']:+.3f})")
    kappas = [_stat(res, rho, "with_imp", "search", "kappa")["mean"] for rho in res["compressions"]]
    head = (
        "**No: the search's best mask for θ₀ is not IMP's ticket for θ₀.**"
        if max(kappas) < 0.5
        else "**Partly: the search's best mask for θ₀ shares much of IMP's ticket for θ₀.**"
    )
    steps = mean_std(r["search_steps"] for r in res["rows"])["mean"]
    imp_steps = mean_std(r["imp_steps"] for r in res["rows"])["mean"]
    magnitude_steps = mean_std(r["magnitude_steps"] for r in res["rows"])["mean"]
    n = len(res["inits"])
    what = {
        ("search", "imp"): "the search against IMP's ticket",
        ("magnitude", "imp"): "the magnitude mutation against IMP's ticket",
        ("magnitude", "search"): "the magnitude mutation against the demo's mutations",
    }
    changed = common.changes(
        [(what[(a, b)], f"1/{rho:g}", v, screen(res, rho, a, b)) for (a, b, rho), v in decided.items()]
    )
    return (
        f"{head} Scored on θ₀ alone (ticket mode), its best mask overlaps IMP's ticket of the same init "
        f"{'; '.join(parts)} over {n} inits, where κ = 0 is chance and 1 identity. Trained from θ₀ (test "
        f"accuracy; differences in points, paired by θ₀, with 95% intervals) it differs from IMP's ticket by "
        f"{_diffs(res, decided, 'search', 'imp')}: {_kinds(res, decided, 'search', 'imp')} (paired t-tests, "
        f"{n - 1} degrees of freedom, Holm over the section's {next(iter(decided.values())).family_size} tests, "
        f"equivalence within ±{m:.2f} points by TOST), after {steps / imp_steps:.1f}× IMP's training steps "
        f"({steps:.0f} against {imp_steps:.0f}). With the magnitude (Lamarckian) mutation in place of the demo's "
        f"mutations, after {magnitude_steps / imp_steps:.1f}× IMP's steps, the search's best mask differs from "
        f"IMP's ticket by {_diffs(res, decided, 'magnitude', 'imp')}: {_kinds(res, decided, 'magnitude', 'imp')}; "
        f"and from the demo's mutations' by {_diffs(res, decided, 'magnitude', 'search')}: "
        f"{_kinds(res, decided, 'magnitude', 'search')}." + (f" {changed}" if changed else "")
    )


SECTION = Section("ticket", "The ticket of θ₀: does the search find IMP's mask?", 2, run, render)
