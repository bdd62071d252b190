"""Bisection on λ: find the scalarization weight whose minimizer has the target cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

__all__ = ["BisectionResult", "bisect_lambda"]


@dataclass(frozen=True)
class BisectionResult:
    """Outcome of `bisect_lambda`.

    Attributes:
        alpha: `dim` multipliers of the last minimization.
        cost: their exact cost ratio.
        lam: the λ that produced `alpha`.
        steps: number of minimizations run (1 to `max_steps`).
        hit: whether `cost` is within the tolerance of the target.
    """

    alpha: Tensor
    cost: float
    lam: float
    steps: int
    hit: bool


def bisect_lambda(
    solve: Callable[[float], tuple[Tensor, float]],
    target: float,
    tolerance: float = 0.02,
    max_steps: int = 10,
    lam_start: float = 0.5,
) -> BisectionResult:
    """Bisect λ ∈ [0, 1] until the minimizer's cost is within `tolerance` of `target`.

    A larger λ weighs cost more and gives a cheaper α. If cost(α) < target the network is too
    small: hi = λ, λ = (lo + λ)/2. If cost(α) > target: lo = λ, λ = (λ + hi)/2. As in DESIGN.md,
    the last α is kept when the tolerance is not met after `max_steps` minimizations.

    Args:
        solve: λ -> (alpha `dim`, exact cost ratio of alpha); the scalarization minimizer.
        target: target cost ratio.
        tolerance: accepted absolute deviation of the cost ratio.
        max_steps: maximum number of minimizations.
        lam_start: first λ.

    Returns:
        The last minimization's α and cost, its λ, the number of steps and whether it hit.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    lo, hi, lam = 0.0, 1.0, lam_start
    for step in range(1, max_steps + 1):
        alpha, cost = solve(lam)
        if abs(cost - target) <= tolerance:
            return BisectionResult(alpha=alpha, cost=cost, lam=lam, steps=step, hit=True)
        if step == max_steps:
            break
        if cost < target:
            hi, lam = lam, (lo + lam) / 2
        else:
            lo, lam = lam, (lam + hi) / 2
    return BisectionResult(alpha=alpha, cost=cost, lam=lam, steps=max_steps, hit=False)
