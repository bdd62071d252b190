"""Which confidence bound lets the bisection hit its target costs: μ + √β·σ or μ − √β·σ.

Fits the loss GP once on a scored history, then, for each bound, bisects λ toward a grid of target
costs with the same GP, the same candidate pool seed and the same minimizer, and prints the cost it
reached, the λ it ended at and whether the target was hit (±0.02). The history is either a real
run's `history.jsonl` (`--run RUNDIR`: its model gives the exact cost) or the synthetic chain
problem of the tests (default), scored after a PareCO-like history of uniform networks and random
per-group vectors.

    python benchmarks/search_bound.py                       # synthetic chain problem
    python benchmarks/search_bound.py --run runs/fmnist     # a real run's last scored history
"""

from __future__ import annotations

import argparse
import math

import torch

from pareco.search import (
    CostStandardizer,
    RandomSearchMinimizer,
    Scalarization,
    bisect_lambda,
    fit_loss_model,
)
from pareco.search.synthetic import ChainProblem


def synthetic(dim: int, n: int, seed: int):
    problem = ChainProblem(dim=dim, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    level = 0.42 + 0.58 * torch.rand(n // 2, 1, generator=gen, dtype=torch.float64)
    uniform = level.expand(-1, dim)
    rand = 0.42 + 0.58 * torch.rand(n - n // 2, dim, generator=gen, dtype=torch.float64)
    alphas = torch.cat([uniform, torch.ones(1, dim, dtype=torch.float64), rand])
    return alphas, problem.loss(alphas, gen), problem.cost_ratio


def from_run(run_dir: str, cost: str | None):
    from pathlib import Path

    from pareco.front import open_run, read_history

    run = open_run(run_dir)
    metric = cost or run.config.cost
    history = read_history(Path(run_dir) / "history.jsonl")
    records = [r for r in history if r.get("loss") is not None and math.isfinite(r["loss"])]
    alphas = torch.tensor([r["alpha"] for r in records], dtype=torch.float64)
    losses = torch.tensor([r["loss"] for r in records], dtype=torch.float64)
    return alphas, losses, lambda a: run.net.cost_ratio(a, metric).to(torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a PareCO run directory (default: synthetic problem)")
    parser.add_argument("--cost", help="cost objective of --run (default: the run's)")
    parser.add_argument("--dim", type=int, default=12)
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", type=float, nargs="+",
                        default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    alpha_min = 0.42
    totals = {"upper": [0, 0], "lower": [0, 0]}
    for seed in args.seeds if not args.run else [0]:
        if args.run:
            alphas, losses, cost_fn = from_run(args.run, args.cost)
        else:
            alphas, losses, cost_fn = synthetic(args.dim, args.points, seed)
        model = fit_loss_model(alphas, losses, alpha_min, seed=seed)
        costs = cost_fn(alphas)
        print(f"history of {len(alphas)} scored points (seed {seed})")
        print("target | bound | reached cost | lambda | steps | hit")
        for target in args.targets:
            for bound in ("upper", "lower"):
                s = Scalarization(model, cost_fn, CostStandardizer.from_costs(costs),
                                  bound=bound, excluded_costs=(float(cost_fn(torch.full((1, alphas.shape[1]), alpha_min, dtype=torch.float64))[0]), 1.0))  # fmt: skip
                solve = RandomSearchMinimizer().prepare(
                    s, alpha_min, alphas, losses, torch.Generator().manual_seed(seed)
                )

                def solve_pair(lam: float, solve=solve) -> tuple[torch.Tensor, float]:
                    solution = solve(lam)
                    return solution.alpha, solution.cost

                result = bisect_lambda(solve_pair, target)
                totals[bound][0] += int(result.hit)
                totals[bound][1] += 1
                print(
                    f"{target:.2f} | {bound} | {result.cost:.3f} | {result.lam:.4f} | {result.steps} | {result.hit}"
                )
    for bound, (hit, n) in totals.items():
        print(f"{bound} bound: {hit}/{n} targets hit ({100 * hit / n:.0f}%)")
    print(f"ratio of hits, upper / lower: {totals['upper'][0] / max(1, totals['lower'][0]):.2f}")


if __name__ == "__main__":
    main()
