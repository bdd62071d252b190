"""The augmented Chebyshev scalarization of (loss, cost) that each proposal minimizes.

    T_λ(α) = max((1−λ)(u(α)−b), λ(ĉ(α)−b)) + ρ·((1−λ)(u(α)−b) + λ(ĉ(α)−b))

- u(α) is a confidence bound of the standardized loss, β = 0.1. By default it is the *upper*
  bound u = μ + sqrt(β)·σ, as the authors' code computes it (BoTorch's `UpperConfidenceBound` of the
  loss GP, put into a minimized T). Measured on real runs, the optimistic alternative
  u = μ − sqrt(β)·σ (`bound="lower"`) lets the minimizer trade cost for uncertainty: high targets
  collapse onto mid-cost networks and the bisection misses them (docs/method.md). It stays available
  as an option.
- ĉ(α) is the *exact* cost ratio standardized with the mean and standard deviation of the cost
  ratios of the points the GP was fitted on, so that u and ĉ are on comparable scales.
- b = −3 (a reference point below almost every standardized value), ρ = 1e−6.
- Candidates whose exact cost equals an excluded cost (the smallest and the largest network, which
  the sandwich rule trains at every step anyway) get T = +inf, so no proposal is spent on them;
  so do candidates whose channels were already proposed (`seen`, a `SeenWidths`).

A larger λ weighs cost more, so its minimizer is cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import torch
from torch import Tensor

from pareco.search.seen import SeenWidths

__all__ = [
    "CostFn",
    "CostStandardizer",
    "LossPosterior",
    "Scalarization",
    "ScalarizationParts",
    "augmented_chebyshev",
    "confidence_bound",
    "lower_confidence_bound",
]

#: Which confidence bound of the loss enters T: "upper" (μ + sqrt(β)·σ, the authors' code and the
#: default) or "lower" (μ − sqrt(β)·σ, optimistic for a minimized loss).
Bound = Literal["upper", "lower"]

#: An exact, vectorized cost: `n x dim` multipliers (float64) -> `n` cost ratios in (0, 1].
CostFn = Callable[[Tensor], Tensor]


class LossPosterior(Protocol):
    """What the scalarization needs of a loss model (`LossModel` is the GP implementation)."""

    def posterior_mean_std(self, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """`m x dim` multipliers -> `m` means and `m` standard deviations (standardized loss)."""
        ...


def lower_confidence_bound(mean: Tensor, std: Tensor, beta: float) -> Tensor:
    """Optimistic bound of a minimized quantity, μ − sqrt(β)·σ (shapes broadcast)."""
    return mean - math.sqrt(beta) * std


def confidence_bound(mean: Tensor, std: Tensor, beta: float, bound: Bound = "upper") -> Tensor:
    """μ + sqrt(β)·σ (`bound="upper"`) or μ − sqrt(β)·σ (`"lower"`), shapes broadcast."""
    if bound == "upper":
        return mean + math.sqrt(beta) * std
    if bound == "lower":
        return lower_confidence_bound(mean, std, beta)
    raise ValueError(f"bound must be 'upper' or 'lower', got {bound!r}")


def augmented_chebyshev(
    u: Tensor,
    c_hat: Tensor,
    lam: float | Tensor,
    baseline: float = -3.0,
    rho: float = 1e-6,
) -> Tensor:
    """Augmented Chebyshev scalarization of two minimized objectives (shapes broadcast).

    Args:
        u: `...` optimistic standardized loss.
        c_hat: `...` standardized exact cost.
        lam: weight on cost in [0, 1] (scalar or broadcastable tensor).
        baseline: reference value b subtracted from both objectives.
        rho: weight of the linear augmentation term.

    Returns:
        `...` values of T_λ; lower is better.
    """
    loss_term = (1.0 - lam) * (u - baseline)
    cost_term = lam * (c_hat - baseline)
    return torch.maximum(loss_term, cost_term) + rho * (loss_term + cost_term)


@dataclass(frozen=True)
class CostStandardizer:
    """ĉ = (cost − mean) / std, with the statistics of the GP's training costs."""

    mean: float
    std: float

    @classmethod
    def from_costs(cls, costs: Tensor) -> CostStandardizer:
        """Statistics of `n` cost ratios; a unit scale when fewer than two or all equal."""
        costs = costs.to(torch.float64).reshape(-1)
        if costs.numel() == 0:
            return cls(mean=0.0, std=1.0)
        mean = float(costs.mean())
        std = float(costs.std()) if costs.numel() > 1 else 0.0
        if not std > 1e-12:
            std = 1.0
        return cls(mean=mean, std=std)

    def __call__(self, cost: Tensor) -> Tensor:
        return (cost - self.mean) / self.std


class ScalarizationParts(NamedTuple):
    """The λ-independent parts of T_λ for a set of candidates (all `m`)."""

    u: Tensor
    c_hat: Tensor
    cost: Tensor
    key: Tensor | None = None  # `m` channel-vector keys, when the scalarization excludes seen ones


class Scalarization:
    """T_λ for a fitted loss model and an exact cost function.

    The λ-independent parts (one batched GP posterior call and one cost call) are computed by
    `parts` and can be reused for every λ of a bisection.
    """

    def __init__(
        self,
        loss_model: LossPosterior,
        cost_ratio: CostFn,
        cost_standardizer: CostStandardizer,
        beta: float = 0.1,
        baseline: float = -3.0,
        rho: float = 1e-6,
        bound: Bound = "upper",
        excluded_costs: tuple[float, ...] = (),
        seen: SeenWidths | None = None,
    ) -> None:
        if bound not in ("upper", "lower"):
            raise ValueError(f"bound must be 'upper' or 'lower', got {bound!r}")
        self.loss_model = loss_model
        self.cost_ratio = cost_ratio
        self.cost_standardizer = cost_standardizer
        self.beta = beta
        self.baseline = baseline
        self.rho = rho
        self.bound: Bound = bound
        self.excluded_costs = tuple(float(c) for c in excluded_costs)
        self.seen = seen  # read at every `value` call: proposals of the same round are excluded

    def u(self, mean: Tensor, std: Tensor) -> Tensor:
        """The loss term's confidence bound of posterior means and standard deviations."""
        return confidence_bound(mean, std, self.beta, self.bound)

    def excluded(self, cost: Tensor) -> Tensor:
        """`m` booleans: cost equal (to 1e-9) to an excluded cost (smallest/largest network)."""
        out = torch.zeros_like(cost, dtype=torch.bool)
        for c in self.excluded_costs:
            out |= (cost - c).abs() <= 1e-9
        return out

    def parts(self, alpha: Tensor) -> ScalarizationParts:
        """u, ĉ and exact cost of `m x dim` candidates."""
        alpha = alpha.to(torch.float64)
        mean, std = self.loss_model.posterior_mean_std(alpha)
        cost = self.cost_ratio(alpha).to(torch.float64).reshape(-1)
        return ScalarizationParts(
            u=self.u(mean, std),
            c_hat=self.cost_standardizer(cost),
            cost=cost,
            key=None if self.seen is None else self.seen.keys(alpha),
        )

    def value(self, parts: ScalarizationParts, lam: float | Tensor) -> Tensor:
        """`m` values of T_λ from precomputed parts (+inf at excluded costs and seen channels)."""
        value = augmented_chebyshev(parts.u, parts.c_hat, lam, self.baseline, self.rho)
        if self.excluded_costs:
            value = value.masked_fill(self.excluded(parts.cost), math.inf)
        if self.seen is not None and parts.key is not None:
            value = value.masked_fill(self.seen.seen_keys(parts.key), math.inf)
        return value

    def __call__(self, alpha: Tensor, lam: float | Tensor) -> Tensor:
        """`m` values of T_λ for `m x dim` candidates."""
        return self.value(self.parts(alpha), lam)
