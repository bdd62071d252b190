"""How often Pareto-aware targets ask for cheap networks, under each rule for the "high loss".

Random histories of n scored networks (cost ratios uniform in [low, 1], losses falling with cost
plus noise), cost(α_min) = 0.15, the full network's loss known. For the fixed chance-level high
loss (ln 10, pareco's default) and the earlier rule (cheapest front loss + the front's span),
prints P(target < 0.25), the target distribution's mean, and the share of targets below the
history's cheapest point, averaged over many histories (exact: computed from the bin weights).

    python benchmarks/target_distribution.py [--histories 500] [--points 8]
"""

from __future__ import annotations

import argparse
import math

import torch

from pareco.search import bin_centres, chance_loss, pareto_aware_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=500)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--cost-min", type=float, default=0.15)
    args = parser.parse_args()
    centres = bin_centres()
    gen = torch.Generator().manual_seed(0)
    for low in (args.cost_min, 0.35):
        rules = {"fixed ln(10)": chance_loss(10), "front span": None}
        acc = {k: [0.0, 0.0, 0.0] for k in rules}
        for _ in range(args.histories):
            cost = low + (1 - low) * torch.rand(args.points, generator=gen, dtype=torch.float64)
            noise = 0.05 * torch.rand(args.points, generator=gen, dtype=torch.float64)
            loss = 0.3 + 0.4 * (1 - cost) + noise
            for name, high in rules.items():
                w = pareto_aware_weights(
                    cost, loss, args.cost_min, full_loss=float(loss.min()), high_loss=high
                )
                acc[name][0] += float(w[centres < 0.25].sum())
                acc[name][1] += float((w * centres).sum())
                acc[name][2] += float(w[centres < float(cost.min())].sum())
        print(f"histories with costs in [{low:.2f}, 1] ({args.histories} of {args.points} points):")
        for name, (p25, mean, below) in acc.items():
            n = args.histories
            print(f"  {name:<13} P(target < 0.25) {p25 / n:.3f}   mean target {mean / n:.3f}   "
                  f"P(target below the cheapest point) {below / n:.3f}")  # fmt: skip
        ratio = acc["fixed ln(10)"][0] / max(acc["front span"][0], 1e-12)
        print(f"  ratio of P(target < 0.25), fixed / span: {ratio:.2f}")
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
