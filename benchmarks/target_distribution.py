"""Where Pareto-aware targets fall, under each rule for the "high loss" and for the binning.

Random histories of n scored networks (cost ratios uniform in [low, 1], losses falling with cost
plus noise), cost(α_min) = 0.15, the full network's loss known. Everything is exact (computed from
the bin weights) and averaged over many histories:

* the high loss of the point prepended at cost(α_min): the reference's constant 8 (default), the
  chance-level ln(10), and the smallest network's measured loss in the front instead (pareco's
  default `smallest_in_front`; here its loss is the history's loss curve extended to cost_min);
  prints P(target < 0.25), the mean target and P(target below the history's cheapest point);
* the binning: the reference's walk (`pareto_aware_weights`, segments below the first eligible
  bin folded into it) against the earlier rule (each bin the mean area of the segments overlapping
  it, segments below the first eligible bin dropped); prints their mean total-variation distance.

    python benchmarks/target_distribution.py [--histories 500] [--points 8]
"""

from __future__ import annotations

import argparse

import torch

from pareco.search import (
    REFERENCE_HIGH_LOSS,
    bin_centres,
    chance_loss,
    eligible_bins,
    pareto_aware_weights,
    pareto_front,
)


def overlap_weights(cost, loss, cost_min, full_loss, high_loss, n_bins=50):
    """The earlier rule, kept here only to measure the change: each eligible bin takes the mean
    area of the segments overlapping it; segments below the first eligible bin are dropped."""
    front = pareto_front(cost, loss)
    fc, fl = front.cost.tolist(), front.loss.tolist()
    if fc[0] > cost_min:
        fc.insert(0, cost_min)
        fl.insert(0, max(high_loss, fl[0]))
    if fc[-1] < 1.0:
        fc.append(1.0)
        fl.append(full_loss)
    fc, fl = torch.tensor(fc), torch.tensor(fl)
    areas = ((fc[1:] - fc[:-1]) * (fl[:-1] - fl[1:])).clamp_min(0.0)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    lo, hi = edges[:-1].unsqueeze(1), edges[1:].unsqueeze(1)
    overlaps = (fc[:-1].unsqueeze(0) < hi) & (fc[1:].unsqueeze(0) > lo)
    count = overlaps.sum(dim=1)
    w = torch.where(count > 0, (overlaps * areas).sum(dim=1) / count.clamp_min(1), 0.0)
    w = torch.where(eligible_bins(cost_min, n_bins), w, torch.zeros_like(w))
    return w / w.sum() if w.sum() > 0 else eligible_bins(cost_min, n_bins).double() / 1.0


def history(low: float, n: int, gen: torch.Generator):
    cost = low + (1 - low) * torch.rand(n, generator=gen, dtype=torch.float64)
    loss = 0.3 + 0.4 * (1 - cost) + 0.05 * torch.rand(n, generator=gen, dtype=torch.float64)
    return cost, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=500)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--cost-min", type=float, default=0.15)
    args = parser.parse_args()
    centres = bin_centres()
    gen = torch.Generator().manual_seed(0)
    cmin = args.cost_min
    for low in (cmin, 0.35):
        rules = ["constant 8 (reference)", "ln(10)", "measured smallest"]
        acc = {k: [0.0, 0.0, 0.0] for k in rules}
        for _ in range(args.histories):
            cost, loss = history(low, args.points, gen)
            full = float(loss.min())
            smallest = 0.3 + 0.4 * (1 - cmin) + 0.025  # the loss curve at cost_min
            weights = {
                rules[0]: pareto_aware_weights(cost, loss, cmin, full, REFERENCE_HIGH_LOSS),
                rules[1]: pareto_aware_weights(cost, loss, cmin, full, chance_loss(10)),
                rules[2]: pareto_aware_weights(
                    torch.cat([cost, cost.new_tensor([cmin])]),
                    torch.cat([loss, loss.new_tensor([smallest])]),
                    cmin,
                    full,
                ),
            }
            for name, w in weights.items():
                acc[name][0] += float(w[centres < 0.25].sum())
                acc[name][1] += float((w * centres).sum())
                acc[name][2] += float(w[centres < float(cost.min())].sum())
        print(f"histories with costs in [{low:.2f}, 1] ({args.histories} of {args.points} points):")
        for name, (p25, mean, below) in acc.items():
            n = args.histories
            print(f"  {name:<23} P(target < 0.25) {p25 / n:.3f}   mean target {mean / n:.3f}   "
                  f"P(target below the cheapest point) {below / n:.3f}")  # fmt: skip
    for points in (8, 200):
        tv = 0.0
        for _ in range(args.histories):
            cost, loss = history(cmin, points, gen)
            full = float(loss.min())
            walk = pareto_aware_weights(cost, loss, cmin, full, REFERENCE_HIGH_LOSS)
            old = overlap_weights(cost, loss, cmin, full, REFERENCE_HIGH_LOSS)
            tv += 0.5 * float((walk - old).abs().sum())
        print(f"binning, {points}-point histories: total-variation distance between the "
              f"reference's walk and the earlier overlap rule {tv / args.histories:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
