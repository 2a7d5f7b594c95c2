"""Benchmark: class keys of LeNet-300-100 masks (mlp:784-300-100-10) beside networkx, and beside one fitness run.

Masks at 10%, 1% and 0.1% density: SynFlow (``prune(model, "synflow", ρ)``, the hard, symmetric case) and
uniformly random masks of the same kept count. For each mask, in one process:

* ``effective``: ``effective_mask`` (best of ``--repeats``);
* ``class_key``: the canonical key, effective subnetwork included (best of ``--repeats``), and ``canon``:
  the same without the effective-subnetwork sweep (twins, refinement, search, hash);
* ``WL hash``: networkx's Weisfeiler-Lehman hash of ``mask_graph`` (the graph build not included), the
  baseline: a hash that can collide, where ``class_key`` is exact;
* ``vf2pp``: networkx's ``vf2pp_is_isomorphic`` of the mask's graph against a copy with every hidden layer
  permuted, in a forked process stopped after ``--timeout`` seconds;
* ``fitness``: one ``evaluate_mask`` on MNIST with the default ``FitnessConfig``, and class_key's share of it.

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

from lotterysearch.canon import _key, _quotient, class_key, effective_mask, mask_graph, twin_count
from lotterysearch.masks import Mask
from lotterysearch.models import build_model

SPEC = "mlp:784-300-100-10"
COMPRESSIONS = (10.0, 100.0, 1000.0)


def best_of(repeats: int, fn) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def random_mask(like: Mask, kept: int, rng: np.random.Generator) -> Mask:
    """Uniformly random positions, ``kept`` of them over all layers."""
    sizes = [int(np.prod(s)) for s in like.shapes.values()]
    flat = np.zeros(sum(sizes), dtype=bool)
    flat[rng.choice(flat.size, kept, replace=False)] = True
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return Mask({n: p.reshape(s) for (n, s), p in zip(like.shapes.items(), parts, strict=True)})


def permute_hidden(mask: Mask, rng: np.random.Generator) -> Mask:
    a = [mask[n].numpy().copy() for n in mask.names]
    for layer in range(len(a) - 1):
        p = rng.permutation(a[layer].shape[0])
        a[layer], a[layer + 1] = a[layer][p], a[layer + 1][:, p]
    return Mask(dict(zip(mask.names, a, strict=True)))


def _vf2pp_child(g: nx.DiGraph, h: nx.DiGraph, out: mp.Queue) -> None:
    t0 = time.perf_counter()
    same = nx.vf2pp_is_isomorphic(g, h, node_label="label")
    out.put((same, time.perf_counter() - t0))


def vf2pp_with_limit(g: nx.DiGraph, h: nx.DiGraph, limit: float) -> str:
    """Seconds of one VF2++ call in a forked process, or '>limit s' when it is still running."""
    if g.number_of_nodes() == h.number_of_nodes() == 0:
        return "(empty graphs)"  # VF2++ answers False for two empty graphs
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_vf2pp_child, args=(g, h, out), daemon=True)
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

    from lotterysearch.pruning import prune

    rng = np.random.default_rng(0)
    cases: list[tuple[str, Mask]] = []
    for rho in COMPRESSIONS:
        t0 = time.perf_counter()
        syn = prune(build_model(SPEC, 0), "synflow", rho)
        print(f"synflow rho={rho:g}: pruned in {time.perf_counter() - t0:.1f} s", flush=True)
        cases.append((f"synflow {100 / rho:g}%", syn))
        cases.append((f"random  {100 / rho:g}%", random_mask(syn, syn.kept(), rng)))

    data = cfg = None
    if not args.no_fitness:
        from lotterysearch.config import FitnessConfig
        from lotterysearch.data import load_dataset
        from lotterysearch.fitness import evaluate_mask

        data, cfg = load_dataset("mnist", data_dir=args.data_dir), FitnessConfig()
        evaluate_mask(cases[-1][1], SPEC, data, cfg)  # warm-up: one-time costs stay out of the figures

    header = (
        f"{'mask':<14} {'eff.dens':>8} {'twins':>5} {'effective':>10} {'class_key':>10} {'canon':>10} {'WL hash':>10}"
        f" {'key/WL':>7} {'vf2pp (permuted copy)':>22} {'fitness':>9} {'key share':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header), flush=True)
    worst_key, worst_share = 0.0, 0.0
    for name, mask in cases:
        class_key(mask)  # warm caches
        t_eff = best_of(args.repeats, lambda m=mask: effective_mask(m))
        t_key = best_of(args.repeats, lambda m=mask: class_key(m))
        eff = effective_mask(mask)
        t_canon = best_of(args.repeats, lambda m=mask, e=eff: _key(_quotient(m, e)))
        graph = mask_graph(mask)
        t_wl = best_of(args.repeats, lambda g=graph: nx.weisfeiler_lehman_graph_hash(g, node_attr="label"))
        copy = permute_hidden(mask, rng)
        assert class_key(copy) == class_key(mask)
        vf2pp = vf2pp_with_limit(graph, mask_graph(copy), args.timeout)
        fit, share = "-", "-"
        if data is not None:
            t0 = time.perf_counter()
            evaluate_mask(mask, SPEC, data, cfg)
            t_fit = time.perf_counter() - t0
            fit, share = f"{t_fit:.2f} s", f"{100 * t_key / t_fit:.2f}%"
            worst_share = max(worst_share, t_key / t_fit)
        worst_key = max(worst_key, t_key)
        print(
            f"{name:<14} {mask.effective_density():>8.4%} {twin_count(mask):>5} {t_eff * 1e3:>7.2f} ms"
            f" {t_key * 1e3:>7.2f} ms {t_canon * 1e3:>7.2f} ms {t_wl * 1e3:>7.2f} ms {t_key / t_wl:>6.2f}x {vf2pp:>22} {fit:>9} {share:>9}",
            flush=True,
        )
    print(f"\nworst class_key: {worst_key * 1e3:.1f} ms (goal < 50 ms)", end="")
    print(f"; worst share of a fitness evaluation: {100 * worst_share:.2f}% (goal < 5%)" if data else "")
    print("timings are wall-clock, best of --repeats; on a shared machine they are noisy.")


if __name__ == "__main__":
    main()
