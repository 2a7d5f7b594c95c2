"""Frankle & Carbin's lottery tickets reproduced on LeNet-300-100 / MNIST, and question 1 in that regime.

An IMP run of the service (``lotterysearch imp``: layerwise 20% per round, 10% for the output layer,
rewinding to the Gaussian Glorot init) gives one trajectory of tickets per init seed; each ticket's training
in its round is its confirmation from its own init (the protocol: Adam 1.2e-3, batch 60, evaluation every
100 iterations, early stop at the lowest validation loss). Beside them, at the densities of the paper's
figures, trained with the same protocol from the same init: the tickets randomly reinitialised
(``lotterysearch confirm``'s reinit control), SynFlow masks at the ticket's density, and random masks with
SynFlow's per-layer densities. Question 1 again: do tickets (and SynFlow masks) from different inits coincide?
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import lotterysearch as ls
from experiments import frontier
from experiments.common import (
    ROOT,
    Context,
    Rendered,
    Section,
    differs,
    in_points,
    load_results,
    method_text,
    verdict_cell,
)
from lotterysearch.core.data import Dataset, load_dataset
from lotterysearch.core.masks import Mask, layerwise_shuffle
from lotterysearch.core.models import build_model
from lotterysearch.execution import backend
from lotterysearch.execution.jobs import Jobs
from lotterysearch.runs.stability import compare_masks
from lotterysearch.settings import IMPConfig, TrainingConfig, load_imp_config
from lotterysearch.stats import markdown_table, mean_std, pm
from lotterysearch.training.trainer import train
from lotterysearch.verdicts import Family, Verdict

CONFIGS = {"small": "lenet_imp_small.toml", "large": "lenet_imp_large.toml"}
ROUNDS = (0, 3, 7, 12, 15, 18)  # 100, 51.3, 21.1, 7.0, 3.6, 1.9 % of the weights (layerwise 20% / 10%)
REINIT_SEED = 1000  # the reinit control's init seed, far from every trajectory's
# Two test accuracies within this many points count as level (a ticket "matches" the dense network): the
# margin of every equivalence test of the section, stored with the results a run writes.
EQUIVALENCE_MARGIN = 0.2
# The section's comparisons, each ticket − the other at the same round (the dense network: round 0).
VERSUS = {
    "dense": "the dense network",
    "reinit": "the same mask, random reinit",
    "synflow": "a SynFlow mask, same init",
}
METHODS = ("ticket", "reinit", "synflow", "random")
LABELS = {
    "ticket": "winning ticket (IMP, own init)",
    "reinit": "same mask, random reinit",
    "synflow": "SynFlow mask, same init",
    "random": "random, SynFlow's layer densities",
}
# Frankle & Carbin (2019), LeNet-300-100 on MNIST, as their text states it (their Figures 3-4 give curves):
# winning tickets reach the dense test accuracy or better from 51.3% down to 3.6% of the weights, reach
# their minimum validation loss sooner (38% sooner at 21.1%), and randomly reinitialised they lose accuracy
# from 21.1% down.
PAPER = {
    100.0: "dense",
    51.3: "≥ dense",
    21.1: "≥ dense, early stop 38% sooner",
    7.0: "≥ dense",
    3.6: "≥ dense",
    1.9: "not stated (the range ends at 3.6%)",
}


def train_mask(
    data: Dataset, spec: str, seed: int, packed: bytes, shapes: Mapping, training: TrainingConfig, mode: str
) -> dict[str, Any]:
    """A job: the mask trained with the protocol from ``build_model(spec, seed)``; the protocol's numbers."""
    mask = Mask.unpack(packed, shapes)
    return train(
        build_model(spec, seed), mask, data, training, mode=mode, seed=seed, evaluate_test=True
    ).as_dict()


def _point(result: Mapping[str, Any], density: float, seed: int) -> dict[str, Any]:
    es = result["early_stop"]
    return {
        "seed": seed,
        "density": density,
        "es_step": es["step"],
        "es_test": es["test_accuracy"],
        "es_val": es["val_accuracy"],
        "final_test": result["test_accuracy"],
    }


def _jobs(data: Dataset, local: bool) -> Jobs:
    return backend.jobs(train_mask, data, local=local)


def run(ctx: Context) -> dict[str, Any]:
    """The small settings read their IMP tickets from the frontier's reference runs (section 2f: the same
    config on its 8 development and 4 held-out inits) and train the controls beside them; the large settings
    run their own IMP."""
    cfg = load_imp_config(ROOT / "configs" / CONFIGS[ctx.settings])
    data_dir = cfg.data_dir or ctx.data_dir
    if ctx.settings != "small":
        return {
            "config": CONFIGS[ctx.settings],
            **measure([dataclasses.replace(cfg, data_dir=data_dir)], ctx),
        }
    s = frontier.load_settings()
    runs = frontier.reference_configs(s, data_dir)
    found = measure(
        runs, ctx, ws=ctx.workspace / "frontier", controls=ctx.workspace / "lth", evaluator=cfg.evaluator
    )
    return {
        "config": CONFIGS["small"],
        "imp_runs": [c.name for c in runs],
        "heldout_seeds": list(s.heldout_inits),
        **found,
    }


def measure(
    cfgs: Sequence[IMPConfig],
    ctx: Context,
    ws: Path | None = None,
    controls: Path | None = None,
    evaluator: str | None = None,
) -> dict[str, Any]:
    """Everything the section reports, for IMP runs ``cfgs`` that differ only in their init seeds (their rounds
    ``ROUNDS`` must exist), kept in the workspace ``ws`` (default ``ctx.workspace / <first name>``).

    The IMP runs, their confirmations and the other masks' trainings (in ``controls``, default ``ws``) are
    kept as they finish: a killed section, run again, resumes each run at its last committed round and trains
    nothing twice (the large settings take hours). ``evaluator`` ("local" or "ray", default the configs')
    trains the confirmations and controls."""
    cfg = cfgs[0]
    ws = ws or ctx.workspace / cfg.name
    controls = controls or ws
    local = backend.runs_locally(evaluator or cfg.evaluator)
    seeds = [s for c in cfgs for s in c.imp.init_seeds]
    ctx.progress(
        f"[lth] IMP: {len(seeds)} trajectories x {cfg.imp.rounds + 1} rounds x {cfg.training.steps} steps in {ws}"
    )
    tickets: dict[tuple[int, int], tuple[Any, Any]] = {}  # (init seed, round) -> (its round, its individual)
    confirmed: dict[tuple[int, int], Mapping[str, Any]] = {}  # (init seed, round) -> the reinit control
    for c in cfgs:
        with frontier.finished_imp_run(c, ws, ctx) as imp_run:
            run_id = imp_run.id
            by_id = {i.id: i for i in imp_run.individuals()}
            mine = {(r.trajectory, r.round): (r, by_id[r.individual_id]) for r in imp_run.imp_rounds()}
        tickets.update(mine)
        chosen = [mine[(s, k)][1].id for k in ROUNDS if k > 0 for s in c.imp.init_seeds]
        ctx.progress(
            f"[lth] confirming {len(chosen)} tickets of {c.name} from init seed {REINIT_SEED}; from their own init"
            " a ticket's confirmation is its round"
        )
        ls.confirm(ws, run_id, ids=chosen, reinit_seeds=[REINIT_SEED], local=local)
        with ls.open_run(ws, run_id) as again:
            reinit = {
                x.individual_id: x.result.as_dict() for x in again.confirmations() if x.init == "reinit"
            }
        confirmed.update(
            {(s, k): reinit[mine[(s, k)][1].id] for k in ROUNDS if k > 0 for s in c.imp.init_seeds}
        )

    data = load_dataset(cfg.dataset, cfg.seed, data_dir=cfg.data_dir or None)
    masks = {key: ind.mask for key, (_, ind) in tickets.items()}
    points: dict[str, dict[str, list[dict[str, Any]]]] = {m: {} for m in METHODS}
    for s in seeds:
        for k in ROUNDS:
            rec, ind = tickets[(s, k)]
            points["ticket"].setdefault(str(k), []).append(_point(rec.result, ind.density, s))
            if k > 0:
                points["reinit"].setdefault(str(k), []).append(_point(confirmed[(s, k)], ind.density, s))

    ctx.progress(
        "[lth] SynFlow masks at the tickets' densities, and random masks with SynFlow's layer densities"
    )
    controls.mkdir(parents=True, exist_ok=True)
    done = _Finished(controls / "masks.jsonl")
    jobs = None
    synflow: dict[tuple[int, int], Mask] = {}
    rng = np.random.default_rng(cfg.seed)
    for s in seeds:
        for k in ROUNDS[1:]:
            ticket = masks[(s, k)]
            sf = ls.prune(build_model(cfg.model, s), "synflow", compression=ticket.total() / ticket.kept())
            synflow[(s, k)] = sf
            for method, mask in (("synflow", sf), ("random", layerwise_shuffle(sf, rng))):
                if (method, s, k) not in done:
                    jobs = jobs or _jobs(data, local)
                    jobs.submit(
                        (method, s, k), cfg.model, s, mask.pack(), mask.shapes, cfg.training, cfg.mode
                    )
    while jobs is not None and jobs.pending():
        job, result = jobs.next_done()
        done.add(job, result)
        ctx.progress(
            f"  {job[0]} seed {job[1]} round {job[2]}: test {result['early_stop']['test_accuracy']:.4f}"
        )
    if jobs is not None:
        jobs.close()
    for (method, s, k), result in sorted(done.items()):
        if s in seeds:
            points[method].setdefault(str(k), []).append(_point(result, synflow[(s, k)].density(), s))

    stability = {}
    for k in ROUNDS[1:]:
        ctx.progress(f"[lth] overlaps across {len(seeds)} inits at round {k}")
        rng_k = np.random.default_rng(1000 + k)
        stability[str(k)] = {
            "ticket": _overlap(compare_masks([masks[(s, k)] for s in seeds], rng_k)),
            "synflow": _overlap(compare_masks([synflow[(s, k)] for s in seeds], rng_k)),
        }
    total_steps = cfg.training.steps * (
        len(seeds) * (cfg.imp.rounds + 1) + 3 * len(seeds) * (len(ROUNDS) - 1)
    )
    return {
        "model": cfg.model,
        "seeds": seeds,
        "training": dataclasses.asdict(cfg.training),
        "rounds": list(ROUNDS),
        "points": points,
        "stability": stability,
        "training_steps": total_steps,
        "equivalence_margin": EQUIVALENCE_MARGIN,
    }


class _Finished:
    """Trainings finished so far, one JSON line each in ``path``, appended as they return."""

    def __init__(self, path: Path):
        self.path = path
        self._done: dict[tuple[str, int, int], dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self._done[tuple(rec["job"])] = rec["result"]

    def __contains__(self, job: tuple[str, int, int]) -> bool:
        return job in self._done

    def add(self, job: tuple[str, int, int], result: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"job": list(job), "result": result}) + "\n")
        self._done[job] = result

    def items(self):  # noqa: ANN201 - ItemsView
        return self._done.items()


def _overlap(m: Mapping[str, Any]) -> dict[str, Any]:
    keep = (
        "density",
        "jaccard",
        "chance_jaccard",
        "aligned_jaccard",
        "aligned_chance_jaccard",
        "classes",
        "excess_overlap",
    )
    return {k: m[k] for k in keep}


# ---- rendering ------------------------------------------------------------------------------------------
def round_stat(res: Mapping[str, Any], method: str, k: int, field: str) -> dict[str, float] | None:
    """Mean ± std of ``field`` over the seeds' points of ``method`` at IMP round ``k`` (None: no points); the
    convnet section reads its IMP run's points with it too."""
    pts = res["points"][method].get(str(k))
    return mean_std(p[field] for p in pts) if pts else None


def round_percent(res: Mapping[str, Any], k: int) -> float:
    """Percent of the weights the tickets of round ``k`` keep, mean over seeds."""
    return 100 * mean_std(p["density"] for p in res["points"]["ticket"][str(k)])["mean"]


def accuracy_table(res: Mapping[str, Any]) -> str:
    rows = []
    for k in res["rounds"]:
        pct = round_percent(res, k)
        cells = [f"{pct:.1f}", str(k)]
        for m in METHODS:
            acc, it = round_stat(res, m, k, "es_test"), round_stat(res, m, k, "es_step")
            cells.append("—" if acc is None else f"{pm(acc, 4)} @ {it['mean']:.0f}")
        paper = min(PAPER, key=lambda p: abs(math.log(p) - math.log(pct)))
        cells.append(PAPER[paper])
        rows.append(cells)
    header = [
        "% weights",
        "round",
        *(f"{LABELS[m]}: test acc @ early-stop iter" for m in METHODS),
        "paper (text)",
    ]
    return markdown_table(header, rows)


def overlap_table(res: Mapping[str, Any]) -> str:
    rows = []
    for k in res["rounds"][1:]:
        st = res["stability"][str(k)]
        for method in ("ticket", "synflow"):
            o = st[method]
            rows.append(
                [
                    f"{round_percent(res, k):.1f}",
                    LABELS[method],
                    pm(o["jaccard"], 4),
                    pm(o["chance_jaccard"], 4),
                    pm(o["aligned_jaccard"], 4),
                    pm(o["aligned_chance_jaccard"], 4),
                    f"{o['classes']} of {len(res['seeds'])}",
                ]
            )
    header = ["% weights", "masks", "J raw", "J chance", "J aligned", "J aligned, shuffled copies", "classes"]
    return markdown_table(header, rows)


def lth_figure(res: Mapping[str, Any]):  # noqa: ANN201 - matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_it, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {
        "ticket": ("#1f4e9c", "o-"),
        "reinit": ("#1f4e9c", "o--"),
        "synflow": ("#e07b00", "s-"),
        "random": ("#8e3ca8", "^:"),
    }
    for m in METHODS:
        ks = [k for k in res["rounds"] if res["points"][m].get(str(k))]
        xs = [round_percent(res, k) for k in ks]
        for ax, field in ((ax_it, "es_step"), (ax_acc, "es_test")):
            stats = [round_stat(res, m, k, field) for k in ks]
            color, style = styles[m]
            ax.errorbar(
                xs,
                [s["mean"] for s in stats],
                yerr=[s["std"] for s in stats],
                fmt=style,
                color=color,
                label=LABELS[m],
                capsize=3,
                ms=4,
            )
    for ax, label in ((ax_it, "early-stop iteration"), (ax_acc, "test accuracy at early stop")):
        ax.set_xscale("log")
        ax.set_xlim(110, 1.5)
        ax.set_xticks([100, 51.3, 21.1, 7.0, 3.6, 1.9])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("percent of weights remaining")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"LeNet-300-100 / MNIST, {res['training']['steps']} iterations, mean ± std over {len(res['seeds'])} inits"
    )
    fig.tight_layout()
    return fig


def _screen(res: Mapping[str, Any], k: int, other: str) -> str:
    """What the report's earlier 2-SE screen said of the ticket against ``other`` at round ``k``: 'better',
    'worse' or 'indistinguishable' (a Welch difference beyond 2 SE, unpaired)."""
    sa = round_stat(res, "ticket", k, "es_test")
    sb = round_stat(res, "ticket" if other == "dense" else other, 0 if other == "dense" else k, "es_test")
    if sa is None or sb is None:
        return "no data"
    if not differs(sa, sb):
        return "indistinguishable"
    return "better" if sa["mean"] > sb["mean"] else "worse"


def _by_seed(
    res: Mapping[str, Any], method: str, k: int, seeds: Sequence[int] | None = None
) -> dict[int, float]:
    pts = res["points"][method].get(str(k), [])
    return in_points({p["seed"]: p["es_test"] for p in pts if seeds is None or p["seed"] in seeds})


def inits(res: Mapping[str, Any]) -> dict[str, list[int]]:
    """The sets of inits the section decides on separately: the development inits, then the held-out ones
    (results without a held-out set: all inits, one set)."""
    held = res.get("heldout_seeds", [])
    dev = [s for s in res["seeds"] if s not in held]
    return {"development": dev, "held-out": list(held)} if held else {"all": list(res["seeds"])}


def screened(res: Mapping[str, Any]) -> bool:
    """Whether the report once decided these results by the 2-SE screen: results that store their margin
    were decided by tests from the start, so their verdicts have no earlier reading to differ from."""
    return "equivalence_margin" not in res


def margin(res: Mapping[str, Any]) -> tuple[float, bool]:
    """The equivalence margin in points, and whether the run stored it (declared before it ran) or it is the
    module's, declared after the run that ``res`` holds."""
    if "equivalence_margin" in res:
        return float(res["equivalence_margin"]), True
    return EQUIVALENCE_MARGIN, False


def verdicts(res: Mapping[str, Any], seeds: Sequence[int] | None = None) -> dict[tuple[str, int], Verdict]:
    """Every comparison of the section on ``seeds`` (default all), decided as one family
    (``lotterysearch.verdicts``): the ticket of each sparse round against the dense network, its reinit
    control and the SynFlow mask, paired by init."""
    m, _ = margin(res)
    family = Family()
    for k in res["rounds"][1:]:
        ticket = _by_seed(res, "ticket", k, seeds)
        for other in VERSUS:
            b = _by_seed(res, "ticket", 0, seeds) if other == "dense" else _by_seed(res, other, k, seeds)
            family.compare((other, k), ticket, b, m)
    return family.decide()


def verdict_table(res: Mapping[str, Any], decided: Mapping[tuple[str, int], Verdict]) -> str:
    rows = [
        [
            f"{round_percent(res, k):.1f}",
            VERSUS[other],
            v.interval(),
            v.test_text(),
            verdict_cell(v, _screen(res, k, other)) if screened(res) else str(v),
        ]
        for (other, k), v in decided.items()
    ]
    header = ["% weights", "ticket against", "ticket − it, points [95% CI]", "paired test", "verdict"]
    return markdown_table(header, rows)


def answer(res: Mapping[str, Any]) -> str:
    """The section's answer from its verdicts on the first set of inits (the development inits where there is a
    held-out set, which gets a sentence of its own), with its descriptive numbers over all inits."""
    sets = inits(res)
    seeds = next(iter(sets.values()))
    decided = verdicts(res, seeds)
    dense = round_stat(res, "ticket", 0, "es_test")
    sparse = res["rounds"][1:]
    m, _ = margin(res)

    def where(other: str, *kinds: str) -> list[int]:
        return [k for k in sparse if decided[(other, k)].kind in kinds]

    matching = where("dense", "better", "equivalent")
    lower = where("dense", "worse")
    untold = where("dense", "inconclusive", "no data")
    was_level = [k for k in sparse if _screen(res, k, "dense") != "worse"]
    es0 = round_stat(res, "ticket", 0, "es_step")["mean"]
    sooner = {k: 1 - round_stat(res, "ticket", k, "es_step")["mean"] / es0 for k in sparse}
    pct = lambda ks: ", ".join(f"{round_percent(res, k):.1f}%" for k in ks) or "none"  # noqa: E731
    j = {k: res["stability"][str(k)]["ticket"] for k in sparse}
    kappa = [(o["jaccard"]["mean"] - o["chance_jaccard"]["mean"]) for o in j.values()]
    classes = all(o["classes"] == len(res["seeds"]) for o in j.values())
    stops = [p["es_step"] for k in sparse for p in res["points"]["ticket"][str(k)]]
    at_end = sum(s == res["training"]["steps"] for s in stops) / len(stops)
    n, n_all = len(seeds), len(res["seeds"])
    on = f" on the {n} development inits" if "held-out" in sets else ""
    diffs = [decided[("dense", k)].difference.mean for k in sparse]
    if matching:
        head = (
            f"**Winning tickets shown here: at {pct(matching)} of the weights IMP's tickets, trained from their "
            f"own init, match the dense network (test accuracy at early stop {pm(dense, 4)}) within "
            f"±{m:.2f} points or beat it{on}.**"
        )
    else:
        head = (
            f"**Not shown with {n} inits: IMP's tickets from their own init differ from the dense network (test "
            f"accuracy at early stop {pm(dense, 4)}) by {min(diffs):+.2f} to {max(diffs):+.2f} points at "
            f"{pct(sparse)} of the weights, but no density's difference is shown equivalent within ±{m:.2f} "
            "points or different.**"
        )
    tail = f" Shown below it at {pct(lower)}; inconclusive at {pct(untold)}." if matching or lower else ""
    change = (
        f" This verdict changed: the report's earlier 2-SE screen called the tickets not below the dense "
        f"network at {pct(was_level)}, which only said that no difference was detected."
        if screened(res) and set(was_level) != set(matching)
        else ""
    )

    def against(other: str) -> str:
        worse = where(other, "better")
        screened_at = [k for k in sparse if _screen(res, k, other) == "better"]
        text = f"worse than the tickets at {pct(worse)}"
        if screened(res) and set(screened_at) != set(worse):
            text += f" (changed: the 2-SE screen said at {pct(screened_at)})"
        return text

    return (
        head
        + tail
        + change
        + _held_out(res, pct)
        + f" Randomly reinitialised, the same masks are {against('reinit')}; SynFlow masks of the same density "
        f"from the same init are {against('synflow')} (paired t-tests, Holm over the section's tests). Tickets "
        "reach their early-stopping iteration "
        + ", ".join(
            f"{100 * abs(v):.0f}% {'sooner' if v >= 0 else 'later'} at {round_percent(res, k):.1f}%"
            for k, v in sooner.items()
        )
        + f" than the dense network on average ({res['training']['steps']} iterations per round against the "
        f"paper's 50k; {100 * at_end:.0f}% of the sparse tickets stop early at their last evaluation). Question 1 "
        "in this regime: tickets from different inits overlap close to chance (raw J exceeds its chance level "
        f"by {min(kappa):+.3f} to {max(kappa):+.3f}; with {n_all} inits the {n_all * (n_all - 1) // 2} pairs share their "
        "masks, so no test) and are "
        + ("all distinct isomorphism classes" if classes else "not all distinct isomorphism classes")
        + ": IMP, like SynFlow, finds a different ticket for every init."
    )


def _held_out(res: Mapping[str, Any], pct) -> str:  # noqa: ANN001 - the answer's percent lister
    """One sentence on the held-out inits' own verdicts (empty without a held-out set)."""
    held = inits(res).get("held-out")
    if not held:
        return ""
    decided = verdicts(res, held)
    clauses = {
        "the tickets match or beat the dense network": ("dense", "better", "equivalent"),
        "they fall below it": ("dense", "worse"),
        "they beat their reinit control": ("reinit", "better"),
        "they beat the SynFlow mask": ("synflow", "better"),
    }
    found = []
    for text, (other, *kinds) in clauses.items():
        ks = [k for (o, k), v in decided.items() if o == other and v.kind in kinds]
        if ks:
            found.append(f"{text} at {pct(ks)}")
    said = "; ".join(found) if found else "no comparison is decided"
    return (
        f" On the {len(held)} held-out inits, decided as a family of their own: {said}; every other comparison "
        "there is inconclusive."
    )


def _verdicts_text(res: Mapping[str, Any]) -> str:
    """The section's verdicts: how they were reached, then the table, for each set of inits."""
    m, before = margin(res)
    parts = []
    for name, seeds in inits(res).items():
        decided = verdicts(res, seeds)
        how = method_text(
            decided,
            m,
            before,
            "`experiments/lth.py` (`EQUIVALENCE_MARGIN`)",
            screen="a difference beyond 2 Welch standard errors, unpaired" if screened(res) else None,
        )
        title = "" if name == "all" else f"**The {name} inits** ({', '.join(map(str, seeds))}). "
        parts.append(f"{title}{how}\n\n{verdict_table(res, decided)}")
    return "\n\n".join(parts)


def _figure(res: Mapping[str, Any], ctx: Context, name: str) -> str:
    """The paper-style figure of ``res`` saved as ``figures/<name>``; its link from the report."""
    import matplotlib.pyplot as plt

    ctx.figures.mkdir(parents=True, exist_ok=True)
    path = ctx.figures / name
    fig = lth_figure(res)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ctx.figure_link(path)


def _large(large: Mapping[str, Any], ctx: Context, n_small: int) -> tuple[str, str]:
    """The large settings' table, figure and answer, shown after the small settings' (body, answer), and what
    running them on the small settings' ``n_small`` inits would cost, at their measured pace."""
    t = large["training"]
    n = len(large["seeds"])
    extra = large["training_steps"] // n * (n_small - n)
    short = (
        f" They ran on {n} inits, all of them read as one set: the small settings' {n_small} inits with a held-out "
        f"set would take {extra:,} more training steps, about "
        f"{extra * large['elapsed_s'] / large['training_steps'] / 3600:.1f} h on these cores at this run's pace."
        if n < n_small
        else ""
    )
    head = (
        f"{len(large['seeds'])} init seeds, {t['steps']} iterations per round (`experiments/configs/{large['config']}`), "
        f"{large['training_steps']:,} training steps, measured in {large['elapsed_s'] / 60:.1f} min on "
        f"{os.cpu_count()} CPU cores (load average {large['load_average'][0]:.1f} at the start, "
        f"{large['load_average'][1]:.1f} at the end; target 3 hours)"
    )
    body = (
        f"\n\n**At the large settings** ({head}).{short}\n\n"
        + accuracy_table(large)
        + f"\n\n![the large settings]({_figure(large, ctx, 'lth_lenet_large.png')})\n\n"
        + _verdicts_text(large)
        + "\n\n"
        + overlap_table(large)
    )
    return body, f"\n\n**At the large settings** ({head}):{short} " + answer(large)


def render(res: Mapping[str, Any], ctx: Context) -> Rendered:
    link = _figure(res, ctx, "lth_lenet.png")
    t = res["training"]
    runs = (
        f"; its runs are section 2f's reference, `{'`, `'.join(res['imp_runs'])}`, so both sections read one IMP"
        if "imp_runs" in res
        else ""
    )
    few = len(res["seeds"]) < 5
    body = (
        f"IMP on `{res['model']}` (the service's `lotterysearch imp experiments/configs/{res['config']}`{runs}): "
        f"{len(res['seeds'])} init seeds, layerwise pruning of 20% per round (10% for the output layer), rewinding to "
        f"the init, Adam lr {t['lr']:g}, batch {t['batch_size']}, {t['steps']} iterations per round with evaluation every "
        f"{t['eval_every']} on the validation split; the early-stopping iteration is the one with the lowest validation "
        f"loss, and its test accuracy is what the table shows (mean ± std over inits, then `@` the mean early-stop "
        f"iteration). Reinit: the ticket's mask from init seed {REINIT_SEED} (`lotterysearch confirm`); SynFlow: a SynFlow "
        "mask at the ticket's density from the ticket's own init; random: SynFlow's mask shuffled within each layer. "
        f"{res['training_steps']:,} training steps in all.\n\n"
        + accuracy_table(res)
        + f"\n\n![accuracy and early-stop iteration against weights remaining]({link})\n\n"
        + _verdicts_text(res)
        + "\n\n"
        "Where this differs from the paper, the likely causes: far fewer iterations per round at these settings (the "
        "paper trains 50k; the large settings train more), inputs standardised with MNIST's mean and std (the paper's "
        "preprocessing may differ)"
        + (", and fewer inits than the paper's five at the small settings" if few else "")
        + ".\n\n"
        "**Question 1 in this regime**: do the tickets (and SynFlow masks) of different inits coincide? Jaccard overlap "
        "between every pair of inits, against its chance level (hypergeometric, same per-layer counts), after aligning "
        "hidden neurons (and aligned after shuffling each layer: what alignment alone buys), and the number of distinct "
        "isomorphism classes:\n\n" + overlap_table(res)
    )
    large = load_results(ctx, "lth", "large") if ctx.settings == "small" else None
    if large is None:
        return Rendered(body=body, answer=answer(res))
    large_body, large_answer = _large(large, ctx, len(res["seeds"]))
    return Rendered(body=body + large_body, answer=answer(res) + large_answer)


SECTION = Section("lth", "Lottery tickets on LeNet-300-100 (Frankle & Carbin reproduced)", 5, run, render)
