"""Pareto utilities for two minimized objectives: cost ratio and loss (or error).

Everything here is a pure function of 1-D tensors `cost` (`n`) and `loss` (`n`), both minimized.
Points with a non-finite cost or loss (for example the NaN placeholder loss of a proposal that was
never scored) are ignored: they are never on a front and never add area.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from botorch.utils.multi_objective.pareto import is_non_dominated
from torch import Tensor

__all__ = [
    "ParetoFront",
    "error_cost_auc",
    "hypervolume_2d",
    "non_dominated",
    "pareto_front",
    "selected_error_auc",
]


class ParetoFront(NamedTuple):
    """An empirical front, sorted by increasing cost (hence strictly decreasing loss).

    Attributes:
        cost: `k` cost of the front points, strictly increasing.
        loss: `k` loss of the front points, strictly decreasing.
        indices: `k` positions of the front points in the tensors the front was built from.
    """

    cost: Tensor
    loss: Tensor
    indices: Tensor


def _check_pair(cost: Tensor, loss: Tensor) -> None:
    if cost.dim() != 1 or loss.dim() != 1 or cost.shape != loss.shape:
        raise ValueError(
            f"cost and loss must be 1-D tensors of equal length, got {tuple(cost.shape)} "
            f"and {tuple(loss.shape)}"
        )


def non_dominated(cost: Tensor, loss: Tensor, deduplicate: bool = True) -> Tensor:
    """Mask of the points that no other point dominates when both objectives are minimized.

    A point dominates another if it is no worse in both objectives and strictly better in one.
    Wraps BoTorch's `is_non_dominated` (which maximizes) with a sign flip.

    Args:
        cost: `n` costs.
        loss: `n` losses.
        deduplicate: keep only the first of several identical non-dominated points.

    Returns:
        `n` boolean mask; False for every point with a non-finite cost or loss.
    """
    _check_pair(cost, loss)
    mask = torch.zeros(cost.shape[0], dtype=torch.bool, device=cost.device)
    finite = torch.isfinite(cost) & torch.isfinite(loss)
    if finite.any():
        objectives = -torch.stack([cost[finite], loss[finite]], dim=-1)
        mask[finite] = is_non_dominated(objectives, maximize=True, deduplicate=deduplicate)
    return mask


def pareto_front(cost: Tensor, loss: Tensor) -> ParetoFront:
    """The empirical front of (cost, loss) points, sorted by cost.

    Args:
        cost: `n` costs.
        loss: `n` losses (non-finite ones are ignored).

    Returns:
        The deduplicated non-dominated points in increasing cost order (`k <= n`).
    """
    mask = non_dominated(cost, loss, deduplicate=True)
    indices = torch.nonzero(mask, as_tuple=False).squeeze(-1)
    order = torch.argsort(cost[indices], stable=True)
    indices = indices[order]
    return ParetoFront(cost=cost[indices], loss=loss[indices], indices=indices)


def hypervolume_2d(cost: Tensor, loss: Tensor, ref_cost: float, ref_loss: float) -> float:
    """Area dominated by the points and bounded by a reference point, both objectives minimized.

    Exact sweep over the front sorted by cost: between consecutive front costs the best loss is
    that of the cheaper point. Points that do not strictly dominate the reference point add
    nothing. Agrees with BoTorch's `Hypervolume` on the negated objectives (tested).

    Args:
        cost: `n` costs.
        loss: `n` losses.
        ref_cost: cost coordinate of the reference point (worse than every point that counts).
        ref_loss: loss coordinate of the reference point.

    Returns:
        The hypervolume (0.0 when no point dominates the reference point).
    """
    _check_pair(cost, loss)
    inside = (cost < ref_cost) & (loss < ref_loss)
    front = pareto_front(cost[inside], loss[inside])
    if front.cost.numel() == 0:
        return 0.0
    edges = torch.cat([front.cost, front.cost.new_tensor([ref_cost])])
    widths = edges[1:] - edges[:-1]
    return float((widths * (ref_loss - front.loss)).sum())


def error_cost_auc(
    cost: Tensor,
    loss: Tensor,
    lo: float,
    hi: float,
    fill: float | None = None,
    normalize: bool = False,
) -> float:
    """Area under the error-cost step curve over the cost range [lo, hi]; lower is better.

    Convention: at cost c the curve's value is the best (lowest) loss among the points whose cost is
    at most c, so the curve is a right-continuous, non-increasing step function that drops at each
    front point's cost. Where no point is that cheap (c below the cheapest point) the value is
    `fill`; with `fill=None` such a range is an error, because any default would flatter or
    penalize a method arbitrarily. To compare methods, use the same [lo, hi], usually
    [cost(α_min), 1], with α_min among every method's points.

    Args:
        cost: `n` costs.
        loss: `n` losses (or errors).
        lo: start of the cost range.
        hi: end of the cost range, `hi >= lo`.
        fill: value of the curve below the cheapest point, if that part is inside [lo, hi].
        normalize: divide by `hi - lo`, giving the mean error over the range.

    Returns:
        The area (or the mean value if `normalize`).
    """
    _check_pair(cost, loss)
    if hi < lo or (normalize and hi == lo):
        raise ValueError(f"need lo < hi (lo <= hi without normalize), got lo={lo}, hi={hi}")
    front = pareto_front(cost, loss)
    if front.cost.numel() == 0:
        raise ValueError("no point with a finite cost and loss")
    first_cost = float(front.cost[0])
    area = 0.0
    if lo < first_cost:
        if fill is None:
            raise ValueError(
                f"the cheapest point costs {first_cost}, above lo={lo}; pass `fill` for the "
                "value of the curve below it"
            )
        area += fill * (min(hi, first_cost) - lo)
    starts = front.cost
    ends = torch.cat([front.cost[1:], front.cost.new_tensor([float("inf")])])
    overlap = (torch.minimum(ends, ends.new_tensor(hi)) - torch.clamp(starts, min=lo)).clamp_min(0)
    area += float((overlap * front.loss).sum())
    if normalize:
        return area / (hi - lo)
    return area


def selected_error_auc(
    cost: Tensor,
    val_error: Tensor,
    test_error: Tensor,
    lo: float,
    hi: float,
    interpolate: bool = False,
) -> float:
    """Area under the test-error–cost curve of the points chosen *on validation*; lower is better.

    At cost c the curve's value is the test error of the point a user would ship at budget c: the
    one with the lowest validation error among the points costing at most c, that is the last point
    of the validation front at or below c. (Taking the lowest *test* error among them, as
    `error_cost_auc(cost, test_error, ...)` does, lets the test split choose.) With `interpolate`,
    the curve runs linearly between consecutive validation-front points instead of in steps
    (flat after the last one), which weighs a sparse front less harshly than the step curve.

    Args:
        cost: `n` costs.
        val_error: `n` validation errors (they choose).
        test_error: `n` test errors (they are reported).
        lo, hi: the cost range, `lo <= hi`; `lo` must be at least the cheapest point's cost.
        interpolate: linear rather than step curve.

    Returns:
        The area over [lo, hi].
    """
    _check_pair(cost, val_error)
    _check_pair(cost, test_error)
    if hi < lo:
        raise ValueError(f"need lo <= hi, got lo={lo}, hi={hi}")
    front = pareto_front(cost, val_error)
    if front.cost.numel() == 0:
        raise ValueError("no point with a finite cost and validation error")
    x = front.cost.to(torch.float64)
    y = test_error.to(torch.float64)[front.indices]
    if lo < float(x[0]) - 1e-6:  # float32 costs may sit a rounding error above lo
        raise ValueError(f"the cheapest point costs {float(x[0])}, above lo={lo}")
    if not interpolate:
        ends = torch.cat([x[1:], x.new_tensor([float("inf")])])
        overlap = (torch.minimum(ends, x.new_tensor(hi)) - torch.clamp(x, min=lo)).clamp_min(0)
        return float((overlap * y).sum())
    # Piecewise linear through the front points, flat after the last: exact trapezoids between
    # the breakpoints inside [lo, hi].
    inside = x[(x > lo) & (x < hi)]
    grid = torch.cat([x.new_tensor([lo]), inside, x.new_tensor([hi])])
    values = _interp(grid, x, y)
    return float(((grid[1:] - grid[:-1]) * (values[1:] + values[:-1]) / 2).sum())


def _interp(at: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Linear interpolation of (x, y), x increasing, held flat outside [x_0, x_last]."""
    if x.numel() == 1:
        return y.expand(at.shape).clone()
    right = torch.searchsorted(x, at, right=True).clamp(1, x.numel() - 1)
    x0, x1, y0, y1 = x[right - 1], x[right], y[right - 1], y[right]
    w = ((at - x0) / (x1 - x0)).clamp(0, 1)
    return y0 + w * (y1 - y0)
