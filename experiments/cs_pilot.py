"""Pilot for experiments/configs/lenet_cs.toml: which mask penalty λ of each Continuous Sparsification round
takes LeNet-300-100 (MNIST, init seed 0, the config's protocol) to about 7%, 3.6% and 1.9% of its weights.

Round r searches λ from the state the previous round's chosen λ left: it tries a first λ (``--start``, then
the previous round's; ``--fixed`` gives the first rounds' λ, one try each), then steps in log λ along the
slope of log density (``--slope`` until two tries measure it) to the round's target, at most ``--tries``
times, and keeps the λ whose hard mask lands nearest the target (in log density). Prints one line per try.
One thread, torch's default Adam kernel; a try is one round of the search.

    python experiments/cs_pilot.py --data-dir /work/shared/data/mnist --steps 3000
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from lotterysearch.core.data import load_dataset
from lotterysearch.core.models import build_model
from lotterysearch.pruning.continuous import cs_round, init_scores, reset_scores
from lotterysearch.settings import TrainingConfig

TARGETS = (0.07, 0.036, 0.019)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=None)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--s-init", type=float, default=0.0)
    p.add_argument("--beta-final", type=float, default=200.0)
    p.add_argument("--start", type=float, default=4.5e-6, help="round 1's first λ")
    p.add_argument("--slope", type=float, default=-0.35, help="d log density / d log λ, a first guess")
    p.add_argument("--tries", type=int, default=3)
    p.add_argument("--tolerance", type=float, default=0.1, help="stop within this share of the target")
    p.add_argument("--rounds", type=int, default=len(TARGETS))
    p.add_argument(
        "--fixed",
        type=float,
        nargs="*",
        default=[],
        help="λ of the first rounds, one try each; --start is then the first λ of the next round",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist", 0, data_dir=args.data_dir)
    model = build_model("mlp:784-300-100-10:glorot", args.seed)
    training = TrainingConfig(steps=args.steps, optimizer="adam", lr=0.0012, batch_size=60)
    scores = init_scores(model, args.s_init)
    lam = args.start
    for r, target in enumerate(TARGETS[: args.rounds], start=1):
        tries: list[tuple[float, float, object]] = []  # (log λ, log density, round)
        fixed = r <= len(args.fixed)
        if fixed:
            lam = args.fixed[r - 1]
        for _ in range(1 if fixed else args.tries):
            t0 = time.perf_counter()
            rnd = cs_round(
                model, None, scores, data, training, penalty=lam, beta_final=args.beta_final, seed=args.seed
            )
            tries.append((math.log(lam), math.log(max(rnd.density, 1e-9)), rnd))
            print(
                f"round {r}  λ {lam:.3g}  density {rnd.density:.4f}  (target {target})"
                f"  {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            if abs(rnd.density / target - 1) <= args.tolerance:
                break
            slope = args.slope
            if len(tries) >= 2:
                (x0, y0, _), (x1, y1, _) = tries[-2], tries[-1]
                slope = (y1 - y0) / (x1 - x0) if x1 != x0 and y1 != y0 else slope
            lam = math.exp(tries[-1][0] + (math.log(target) - tries[-1][1]) / slope)
        x, y, best = min(tries, key=lambda t: abs(t[1] - math.log(target)))
        print(f"round {r}: chose λ {math.exp(x):.3g}, density {math.exp(y):.4f}", flush=True)
        lam = args.start if r == len(args.fixed) else math.exp(x)
        scores = reset_scores(best.scores, args.beta_final, args.s_init)


if __name__ == "__main__":
    main()
