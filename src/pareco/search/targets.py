"""Target cost sampling: Pareto-aware (PareCO) or uniform (the Joslim variant).

Pareto-aware (DESIGN.md §2): take the empirical front of H sorted by cost; if it does not reach
down to cost(α_min), prepend (cost(α_min), a high loss); if it does not reach cost 1, append
(1, loss of the full network). Segment k between front points k and k+1 leaves the gap rectangle
of area (cost_{k+1} − cost_k)·(loss_k − loss_{k+1}) above the front. The cost axis [0, 1] is cut
into `n_bins` equal bins; bins whose *lower edge* lies below cost(α_min) get 0, as in the authors'
code (a bin that straddles cost(α_min) would ask for networks at or below the smallest one, which
the sandwich rule trains anyway). Each eligible bin gets a mean of segment areas by the reference's
walk (`pareto_aware_weights`): segments that lie below the first eligible bin are folded into it,
not dropped. If every weight is 0 the eligible bins are weighted uniformly (the reference falls
back to all 50 bins, including those below cost(α_min)). The target is a bin centre drawn in
proportion to the weights.

The "high loss" of the point prepended at cost(α_min) is the reference's constant 8
(`REFERENCE_HIGH_LOSS`, the authors' PareCO `train.py`); ln(classes) (`chance_loss`) is an option.
It matters only while the front stops short of cost(α_min): pareco's search puts the smallest
network's *measured* loss into the front it weights targets with (`ParecoSearch`), as the authors'
TwoStage search does, so once that is measured nothing is prepended. `default_high_loss` (the
cheapest front loss plus the front's span) is the fallback when None is given.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pareco.search.pareto import pareto_front

__all__ = [
    "REFERENCE_HIGH_LOSS",
    "bin_centres",
    "chance_loss",
    "default_high_loss",
    "eligible_bins",
    "pareto_aware_weights",
    "sample_pareto_aware_target",
    "sample_uniform_target",
]

N_BINS = 50
#: The loss of the point prepended at cost(α_min) in the authors' PareCO code (`train.py`).
REFERENCE_HIGH_LOSS = 8.0


def bin_centres(n_bins: int = N_BINS) -> Tensor:
    """`n_bins` centres of equal bins of the cost-ratio axis [0, 1]."""
    return (torch.arange(n_bins, dtype=torch.float64) + 0.5) / n_bins


def eligible_bins(cost_min: float, n_bins: int = N_BINS) -> Tensor:
    """`n_bins` booleans: bins whose lower edge is at least `cost_min` (the last bin always)."""
    lower_edges = torch.arange(n_bins, dtype=torch.float64) / n_bins
    eligible = lower_edges >= cost_min - 1e-12
    if not eligible.any():
        eligible[-1] = True
    return eligible


def chance_loss(num_classes: int) -> float:
    """Cross-entropy of a uniform prediction over `num_classes` classes, ln(num_classes)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return math.log(num_classes)


def default_high_loss(front_loss: Tensor) -> float:
    """The "high loss" of the point prepended at cost(α_min) when the front stops short of it.

    DESIGN.md does not fix the value. We take the cheapest front point's loss plus the front's loss
    span (cheapest minus best), i.e. the gap below the front's cheapest point is as tall as the
    whole front: large enough that a front missing its cheap end asks for cheap targets, without
    depending on the loss scale. A front of one point uses a span of max(|loss|, 1).

    Args:
        front_loss: `k` losses of the front sorted by cost (so decreasing), `k >= 1`.
    """
    first, last = float(front_loss[0]), float(front_loss[-1])
    span = first - last
    if not span > 0:
        span = max(abs(first), 1.0)
    return first + span


def _padded_front(
    cost: Tensor, loss: Tensor, cost_min: float, full_loss: float | None, high_loss: float | None
) -> tuple[list[float], list[float]]:
    """The front of (cost, loss) sorted by cost, prepended at `cost_min` and appended at 1."""
    front = pareto_front(cost.to(torch.float64), loss.to(torch.float64))
    f_cost, f_loss = front.cost.tolist(), front.loss.tolist()
    if not f_cost:
        return f_cost, f_loss
    if f_cost[0] > cost_min:
        high = default_high_loss(front.loss) if high_loss is None else high_loss
        f_cost.insert(0, cost_min)
        f_loss.insert(0, max(high, f_loss[0]))
    if f_cost[-1] < 1.0:
        f_cost.append(1.0)
        f_loss.append(f_loss[-1] if full_loss is None else full_loss)
    return f_cost, f_loss


def pareto_aware_weights(
    cost: Tensor,
    loss: Tensor,
    cost_min: float,
    full_loss: float | None = None,
    high_loss: float | None = REFERENCE_HIGH_LOSS,
    n_bins: int = N_BINS,
) -> Tensor:
    """Bin weights for Pareto-aware target sampling, by the reference's binning rule.

    The front's segments are walked once, cheapest first, alongside the eligible bins. Each bin
    takes the mean area of the segments it passes: every segment not yet passed whose right end
    lies below the bin's upper edge, plus the segment that reaches past that edge (which the next
    bin takes too). The mean divides by one more than the number of segments passed, as the
    reference counts. So the first eligible bin also takes every segment that lies below its
    lower edge (they are folded into it rather than dropped), and a segment that ends exactly on
    a bin edge counts in both bins.

    Args:
        cost: `n` cost ratios of the scored history (and the smallest network, if measured).
        loss: `n` their losses (non-finite ones are ignored).
        cost_min: cost ratio of the smallest network, cost(α_min).
        full_loss: loss of the full network, for the point appended at cost 1 when the front
            does not reach it; None uses the front's last loss (no gap there).
        high_loss: loss of the point prepended at cost_min when the front stops short of it;
            default the reference's constant 8; None uses `default_high_loss`.
        n_bins: number of equal bins of [0, 1].

    Returns:
        `n_bins` non-negative weights summing to 1.
    """
    eligible = eligible_bins(cost_min, n_bins)
    weights = torch.zeros(n_bins, dtype=torch.float64)
    f_cost, f_loss = _padded_front(cost, loss, cost_min, full_loss, high_loss)
    if f_cost:
        # A full-network loss above the front's last loss would give a negative area: no gap.
        areas = [
            max(0.0, (f_cost[j + 1] - f_cost[j]) * (f_loss[j] - f_loss[j + 1]))
            for j in range(len(f_cost) - 1)
        ]
        k = 0  # the segment the walk stands on
        while k < len(f_cost) and f_cost[k] < cost_min - 1e-12:
            k += 1
        for i in eligible.nonzero().flatten().tolist():
            upper = (i + 1) / n_bins
            total, count = 0.0, 1
            while k + 1 < len(f_cost) and upper > f_cost[k + 1]:
                total += areas[k]
                count += 1
                k += 1
            if k < len(areas):
                total += areas[k]
            weights[i] = total / count
    weights = torch.where(eligible, weights, torch.zeros_like(weights))
    if not weights.sum() > 0:
        weights = eligible.to(torch.float64)
    return weights / weights.sum()


def sample_pareto_aware_target(
    cost: Tensor,
    loss: Tensor,
    cost_min: float,
    generator: torch.Generator,
    full_loss: float | None = None,
    high_loss: float | None = REFERENCE_HIGH_LOSS,
    n_bins: int = N_BINS,
) -> float:
    """A target cost ratio: a bin centre drawn in proportion to `pareto_aware_weights`."""
    weights = pareto_aware_weights(cost, loss, cost_min, full_loss, high_loss, n_bins)
    k = int(torch.multinomial(weights, 1, generator=generator))
    return float(bin_centres(n_bins)[k])


def sample_uniform_target(cost_min: float, generator: torch.Generator) -> float:
    """A target cost ratio uniform on [cost_min, 1] (the Joslim variant)."""
    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
    return cost_min + (1.0 - cost_min) * u
