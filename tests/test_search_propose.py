"""Tests of pareco.search.propose: bisection on λ."""

from __future__ import annotations

import pytest
import torch

from pareco.search import bisect_lambda


class FakeMinimizer:
    """cost(α(λ)) = 1 − λ: more weight on cost gives a cheaper network. Records the λ asked."""

    def __init__(self, cost_of_lambda=lambda lam: 1.0 - lam) -> None:
        self.cost_of_lambda = cost_of_lambda
        self.asked: list[float] = []

    def __call__(self, lam: float) -> tuple[torch.Tensor, float]:
        self.asked.append(lam)
        cost = self.cost_of_lambda(lam)
        return torch.full((2,), cost), cost


def test_hit_at_first_step() -> None:
    solve = FakeMinimizer()
    result = bisect_lambda(solve, target=0.51)
    assert result.hit and result.steps == 1 and result.lam == 0.5
    assert solve.asked == [0.5]


def test_network_too_small_moves_lambda_down() -> None:
    # Target 0.88: at λ = 0.5 the cost 0.5 is too small, so λ must decrease.
    solve = FakeMinimizer()
    result = bisect_lambda(solve, target=0.88)
    assert solve.asked[:3] == [0.5, 0.25, 0.125]
    assert result.hit and result.cost == pytest.approx(0.875)
    assert result.steps == 3 and result.lam == 0.125


def test_network_too_large_moves_lambda_up() -> None:
    solve = FakeMinimizer()
    result = bisect_lambda(solve, target=0.2)
    assert solve.asked[:3] == [0.5, 0.75, 0.875]
    assert result.hit and abs(result.cost - 0.2) <= 0.02


def test_interval_update_rule() -> None:
    # Down then up: λ = 0.5 (too small) -> 0.25 (too large) -> (0.25 + 0.5)/2 = 0.375.
    solve = FakeMinimizer()
    bisect_lambda(solve, target=0.65, tolerance=0.001, max_steps=3)
    assert solve.asked == [0.5, 0.25, 0.375]


def test_miss_keeps_last_alpha_and_counts_steps() -> None:
    # A piecewise constant cost that jumps over the target: never within tolerance.
    solve = FakeMinimizer(lambda lam: 0.8 if lam < 0.3 else 0.4)
    result = bisect_lambda(solve, target=0.6, max_steps=10)
    assert not result.hit and result.steps == 10
    assert len(solve.asked) == 10
    assert result.lam == solve.asked[-1]
    assert result.cost == solve.cost_of_lambda(solve.asked[-1])
    assert torch.equal(result.alpha, torch.full((2,), result.cost))
    # λ converges to the jump.
    assert result.lam == pytest.approx(0.3, abs=1e-2)


def test_max_steps_validated() -> None:
    with pytest.raises(ValueError):
        bisect_lambda(FakeMinimizer(), target=0.5, max_steps=0)
