"""A synthetic search problem with an exact floored-channel cost and a known loss.

Used by the tests and the benchmark: the search engine can be run end to end without a network,
and its front compared with a near-exact reference front.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pareco.search.optimize import RandomSearchMinimizer
from pareco.search.pareto import ParetoFront, pareto_front
from pareco.search.scalarize import CostStandardizer, Scalarization

__all__ = ["ChainProblem", "OracleLoss", "reference_front"]


class ChainProblem:
    """A plain conv chain whose channel groups are the searchable dimensions.

    Group g is the output of a 3x3 convolution from group g−1 (3 input channels for g = 0) at a
    spatial size that halves after each third of the chain (32², 16², 8²), then a linear layer to
    10 classes. Channels are `max(1, floor(α_g·C_g))`, so the cost is exact and piecewise constant.
    The loss is a smooth decreasing function of the kept channel fractions with a random
    importance per group, so cheap groups and important groups differ.

    Args:
        dim: number of groups.
        seed: seeds the channel counts (16..64) and importances.
        noise: standard deviation of the measurement noise of `loss`.
    """

    def __init__(self, dim: int = 8, seed: int = 0, noise: float = 0.002) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.noise = noise
        self.full_channels = torch.randint(16, 65, (dim,), generator=gen).to(torch.float64)
        stage = (torch.arange(dim) * 3) // dim
        self.spatial = (32.0 / 2.0**stage).pow(2).to(torch.float64)
        log_w = math.log(0.02) + (math.log(1.0) - math.log(0.02)) * torch.rand(
            dim, generator=gen, dtype=torch.float64
        )
        self.importance = log_w.exp()
        self.full_macs = float(self.macs(torch.ones(1, dim, dtype=torch.float64))[0])

    def channels(self, alpha: Tensor) -> Tensor:
        """`n x dim` multipliers -> `n x dim` channel counts (float)."""
        return torch.floor(alpha.to(torch.float64) * self.full_channels).clamp_min(1.0)

    def macs(self, alpha: Tensor) -> Tensor:
        """`n x dim` multipliers -> `n` multiply-accumulates."""
        ch = self.channels(alpha)
        inputs = torch.cat([torch.full_like(ch[:, :1], 3.0), ch[:, :-1]], dim=1)
        return (9.0 * inputs * ch * self.spatial).sum(dim=1) + 10.0 * ch[:, -1]

    def cost_ratio(self, alpha: Tensor) -> Tensor:
        """`n x dim` multipliers -> `n` cost ratios in (0, 1]."""
        return self.macs(alpha) / self.full_macs

    def true_loss(self, alpha: Tensor) -> Tensor:
        """`n x dim` multipliers -> `n` noise-free losses."""
        kept = self.channels(alpha) / self.full_channels
        return 0.3 + ((1.0 - kept).pow(2) * self.importance).sum(dim=1)

    def loss(self, alpha: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """`n x dim` multipliers -> `n` noisy losses (the "measured" loss)."""
        clean = self.true_loss(alpha)
        noise = torch.randn(clean.shape, generator=generator, dtype=torch.float64)
        return clean + self.noise * noise


class OracleLoss:
    """A `LossPosterior` that knows the loss exactly (σ = 0), standardized by given statistics."""

    def __init__(self, problem: ChainProblem, mean: float, std: float) -> None:
        self.problem = problem
        self.mean = mean
        self.std = std

    def posterior_mean_std(self, alpha: Tensor) -> tuple[Tensor, Tensor]:
        mean = (self.problem.true_loss(alpha) - self.mean) / self.std
        return mean, torch.zeros_like(mean)


def reference_front(
    problem: ChainProblem,
    alpha_min: float,
    n_random: int = 20000,
    n_lambdas: int = 64,
    seed: int = 0,
) -> ParetoFront:
    """A near-exact front of the noise-free loss: random samples plus a λ-sweep of the scalarization
    minimized with the true loss (one refined minimization per λ, λ on a fine grid of [0, 1]).

    Returns:
        The front of all evaluated points (noise-free loss).
    """
    gen = torch.Generator().manual_seed(seed)
    dim = problem.dim
    box = torch.rand(n_random // 2, dim, generator=gen, dtype=torch.float64)
    level = torch.rand(n_random - n_random // 2, 1, generator=gen, dtype=torch.float64)
    spread = 0.5 * torch.rand(level.shape, generator=gen, dtype=torch.float64)
    noise = 2.0 * torch.rand(level.shape[0], dim, generator=gen, dtype=torch.float64) - 1.0
    around = (level + spread * noise).clamp(0, 1)
    alphas = alpha_min + (1 - alpha_min) * torch.cat([box, around])
    losses = problem.true_loss(alphas)
    costs = problem.cost_ratio(alphas)
    oracle = OracleLoss(problem, float(losses.mean()), float(losses.std()))
    scalarization = Scalarization(oracle, problem.cost_ratio, CostStandardizer.from_costs(costs))
    minimizer = RandomSearchMinimizer(n_rounds=8, n_children=128, top_k=16)
    solve = minimizer.prepare(scalarization, alpha_min, alphas, losses, gen)
    found = torch.stack([solve(float(lam)).alpha for lam in torch.linspace(0, 1, n_lambdas)])
    all_alphas = torch.cat([alphas, found])
    return pareto_front(problem.cost_ratio(all_alphas), problem.true_loss(all_alphas))
