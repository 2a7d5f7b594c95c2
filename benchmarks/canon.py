"""Benchmark: class keys of LeNet-300-100 masks (mlp:784-300-100-10) and of two convnets beside networkx, and
beside one fitness run.

Masks at 10%, 1% and 0.1% density: SynFlow (``prune(model, "synflow", ρ)``, the hard, symmetric case) and
uniformly random masks of the same kept count, of LeNet-300-100 and then of the convnets ``CONV_SPECS``
(a small 2-D convnet for MNIST and the MNIST-1D paper's CNN), whose keys carry kernel patterns as edge
labels. For each mask, in one process:

* ``effective``: ``effective_mask`` (best of ``--repeats``);
* ``class_key``: the canonical key, effective subnetwork included (best of ``--repeats``), and ``canon``:
  the same without the effective-subnetwork sweep (twins, refinement, search, hash);
* ``WL hash``: networkx's Weisfeiler-Lehman hash of ``mask_graph`` (the graph build not included; on
  convnets with ``edge_attr="pattern"``), the baseline: a hash that can collide, where ``class_key`` is exact;
* ``vf2``: networkx's ``vf2pp_is_isomorphic`` (MLPs) or VF2 ``is_isomorphic`` with the edge patterns
  matched (convnets; VF2++ takes no edge labels) of the mask's graph against a copy with every hidden
  layer permuted, in a forked process stopped after ``--timeout`` seconds;
* ``fitness``: one ``evaluate_mask`` on MNIST with the default ``FitnessConfig``, and class_key's share of it
  (LeNet-300-100 only).

Goals: class_key under 50 ms on every case and under 5% of one fitness evaluation.

    python benchmarks/canon.py [--repeats 10] [--timeout 10] [--data-dir DIR (default $LOTTERYSEARCH_DATA)] [--no-fitness]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
import warnings

import networkx as nx
import numpy as np
from benchtools import best_of

from lotterysearch.core.alignment import permute_hidden
from lotterysearch.core.canon import class_key, effective_mask, mask_graph, twin_count
from lotterysearch.core.masks import Mask
from lotterysearch.core.models import build_model
from lotterysearch.training.family import family_of

SPEC = "mlp:784-300-100-10"
CONV_SPECS = {"conv:28x28x1:16-16-M:64-10": "conv 28x28", "cnn1d:40:25k5-25-25:10": "cnn1d 40"}
COMPRESSIONS = (10.0, 100.0, 1000.0)


def random_mask(like: Mask, kept: int, rng: np.random.Generator) -> Mask:
    """Uniformly random positions, ``kept`` of them over all layers."""
    sizes = [int(np.prod(s)) for s in like.shapes.values()]
    flat = np.zeros(sum(sizes), dtype=bool)
    flat[rng.choice(flat.size, kept, replace=False)] = True
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return Mask({n: p.reshape(s) for (n, s), p in zip(like.shapes.items(), parts, strict=True)})


def permuted_copy(mask: Mask, rng: np.random.Generator) -> Mask:
    """Every hidden layer's units (neurons, conv channels) permuted at random."""
    return permute_hidden(mask, [rng.permutation(s[0]) for s in list(mask.shapes.values())[:-1]])


def _vf2_child(g: nx.DiGraph, h: nx.DiGraph, out: mp.Queue) -> None:
    t0 = time.perf_counter()
    if g.graph.get("labelled"):
        same = nx.is_isomorphic(
            g,
            h,
            node_match=lambda a, b: a["label"] == b["label"],
            edge_match=lambda a, b: a["pattern"] == b["pattern"],
        )
    else:
        same = nx.vf2pp_is_isomorphic(g, h, node_label="label")
    out.put((same, time.perf_counter() - t0))


def vf2_with_limit(g: nx.DiGraph, h: nx.DiGraph, limit: float) -> str:
    """Seconds of one VF2++ (MLP) or VF2 (convnet) call in a forked process, or '>limit s' when it is still
    running."""
    if g.number_of_nodes() == h.number_of_nodes() == 0:
        return "(empty graphs)"  # VF2++ answers False for two empty graphs
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_vf2_child, args=(g, h, out), daemon=True)
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return f">{limit:g} s"
    same, seconds = out.get()
    return f"{seconds * 1e3:.1f} ms" + ("" if same else " (says NOT isomorphic!)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("LOTTERYSEARCH_DATA"),
        help="MNIST IDX files (default $LOTTERYSEARCH_DATA)",
    )
    parser.add_argument("--no-fitness", action="store_true", help="skip the fitness evaluations")
    args = parser.parse_args()
    if not args.data_dir and not args.no_fitness:
        parser.error(
            "the fitness comparison needs MNIST: pass --data-dir DIR, set LOTTERYSEARCH_DATA or --no-fitness"
        )
    warnings.filterwarnings("ignore", message="The hashes produced for directed graphs changed")

    from lotterysearch.pruning.pruners import prune

    rng = np.random.default_rng(0)
    cases: list[tuple[str, str, Mask]] = []  # (row name, spec, mask)
    for spec, short in {SPEC: "", **CONV_SPECS}.items():
        for rho in COMPRESSIONS:
            t0 = time.perf_counter()
            syn = prune(build_model(spec, 0), "synflow", rho)
            print(f"{spec} synflow rho={rho:g}: pruned in {time.perf_counter() - t0:.1f} s", flush=True)
            cases.append((f"{short} synflow {100 / rho:g}%".strip(), spec, syn))
            cases.append((f"{short} random  {100 / rho:g}%".strip(), spec, random_mask(syn, syn.kept(), rng)))

    data = cfg = None
    if not args.no_fitness:
        from lotterysearch.core.data import load_dataset
        from lotterysearch.settings import FitnessConfig
        from lotterysearch.training.fitness import evaluate_mask

        data, cfg = load_dataset("mnist", data_dir=args.data_dir), FitnessConfig()
        evaluate_mask(cases[1][2], SPEC, data, cfg)  # warm-up: one-time costs stay out of the figures

    header = (
        f"{'mask':<25} {'eff.dens':>8} {'twins':>5} {'effective':>10} {'class_key':>10} {'canon':>10} {'WL hash':>10}"
        f" {'key/WL':>7} {'vf2 (permuted copy)':>22} {'fitness':>9} {'key share':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header), flush=True)
    worst_key, worst_share = 0.0, 0.0
    for name, spec, mask in cases:
        class_key(mask)  # warm caches
        t_eff = best_of(args.repeats, lambda m=mask: effective_mask(m))
        t_key = best_of(args.repeats, lambda m=mask: class_key(m))
        eff = effective_mask(mask)
        t_canon = best_of(args.repeats, lambda m=mask, e=eff: class_key(m, e))
        graph, edge_attr = mask_graph(mask), "pattern" if family_of(spec).convolutional else None
        t_wl = best_of(
            args.repeats,
            lambda g=graph, e=edge_attr: nx.weisfeiler_lehman_graph_hash(g, node_attr="label", edge_attr=e),
        )
        copy = permuted_copy(mask, rng)
        assert class_key(copy) == class_key(mask)
        copy_graph = mask_graph(copy)
        graph.graph["labelled"] = copy_graph.graph["labelled"] = edge_attr is not None
        vf2 = vf2_with_limit(graph, copy_graph, args.timeout)
        fit, share = "-", "-"
        if data is not None and spec == SPEC:
            t0 = time.perf_counter()
            evaluate_mask(mask, SPEC, data, cfg)
            t_fit = time.perf_counter() - t0
            fit, share = f"{t_fit:.2f} s", f"{100 * t_key / t_fit:.2f}%"
            worst_share = max(worst_share, t_key / t_fit)
        worst_key = max(worst_key, t_key)
        print(
            f"{name:<25} {mask.effective_density():>8.4%} {twin_count(mask):>5} {t_eff * 1e3:>7.2f} ms"
            f" {t_key * 1e3:>7.2f} ms {t_canon * 1e3:>7.2f} ms {t_wl * 1e3:>7.2f} ms {t_key / t_wl:>6.2f}x {vf2:>22} {fit:>9} {share:>9}",
            flush=True,
        )
    print(f"\nworst class_key: {worst_key * 1e3:.1f} ms (goal < 50 ms)", end="")
    print(f"; worst share of a fitness evaluation: {100 * worst_share:.2f}% (goal < 5%)" if data else "")
    print("timings are wall-clock, best of --repeats; on a shared machine they are noisy.")


if __name__ == "__main__":
    main()
