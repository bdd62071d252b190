"""Tests of pareco.search.scalarize and the scalarization minimizers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pareco.search import (
    CostStandardizer,
    GradientMinimizer,
    PoolSettings,
    RandomSearchMinimizer,
    Scalarization,
    augmented_chebyshev,
    fit_loss_model,
    fit_quadratic_cost,
    lower_confidence_bound,
)
from pareco.search.synthetic import ChainProblem, OracleLoss

ALPHA_MIN = 0.42


def test_augmented_chebyshev_hand_computed() -> None:
    u, c = torch.tensor([0.5]), torch.tensor([-1.0])
    # loss term (1-0.25)(0.5+3) = 2.625, cost term 0.25*(−1+3) = 0.5
    value = augmented_chebyshev(u, c, 0.25, baseline=-3.0, rho=1e-6)
    assert float(value) == pytest.approx(2.625 + 1e-6 * (2.625 + 0.5))
    assert float(augmented_chebyshev(u, c, 1.0, rho=0.0)) == pytest.approx(2.0)
    assert float(augmented_chebyshev(u, c, 0.0, rho=0.0)) == pytest.approx(3.5)


def test_optimistic_bound_for_a_minimized_loss() -> None:
    mean, std = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 2.0])
    # Uncertainty makes a point look better (lower), as optimism requires when minimizing.
    assert lower_confidence_bound(mean, std, 0.1).tolist() == pytest.approx(
        [1.0, 1.0 - 2 * math.sqrt(0.1)]
    )


@given(
    st.floats(-2.5, 2.5),
    st.floats(-2.5, 2.5),
    st.floats(-2.5, 2.5),
    st.floats(-2.5, 2.5),
    st.floats(0.01, 0.99),
)
@settings(max_examples=100, deadline=None)
def test_chebyshev_is_monotone_in_both_objectives(
    u1: float, c1: float, u2: float, c2: float, lam: float
) -> None:
    # A point that dominates another never scores worse (for values above the baseline b = −3).
    if u1 <= u2 and c1 <= c2:
        v1 = augmented_chebyshev(torch.tensor(u1), torch.tensor(c1), lam)
        v2 = augmented_chebyshev(torch.tensor(u2), torch.tensor(c2), lam)
        assert float(v1) <= float(v2) + 1e-12


def test_cost_standardizer() -> None:
    s = CostStandardizer.from_costs(torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64))
    assert s.mean == pytest.approx(0.4) and s.std == pytest.approx(0.2)
    assert float(s(torch.tensor(0.6))) == pytest.approx(1.0)
    assert CostStandardizer.from_costs(torch.tensor([0.5])).std == 1.0


def oracle_scalarization(problem: ChainProblem) -> tuple[Scalarization, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    alphas = ALPHA_MIN + (1 - ALPHA_MIN) * torch.rand(
        200, problem.dim, generator=gen, dtype=torch.float64
    )
    losses = problem.true_loss(alphas)
    oracle = OracleLoss(problem, float(losses.mean()), float(losses.std()))
    costs = problem.cost_ratio(alphas)
    return Scalarization(oracle, problem.cost_ratio, CostStandardizer.from_costs(costs)), alphas


def test_more_lambda_gives_cheaper_minimizer() -> None:
    problem = ChainProblem(dim=6, seed=1)
    scalarization, alphas = oracle_scalarization(problem)
    solve = RandomSearchMinimizer().prepare(
        scalarization, ALPHA_MIN, alphas, problem.true_loss(alphas), torch.Generator()
    )
    costs = [solve(lam).cost for lam in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert costs == sorted(costs, reverse=True)
    assert costs[0] > costs[-1] + 0.3


def test_random_search_improves_on_its_pool() -> None:
    problem = ChainProblem(dim=6, seed=2)
    scalarization, alphas = oracle_scalarization(problem)
    losses = problem.true_loss(alphas)
    gen = torch.Generator().manual_seed(0)
    no_refine = RandomSearchMinimizer(n_rounds=0).prepare(
        scalarization, ALPHA_MIN, alphas, losses, gen
    )
    refine = RandomSearchMinimizer().prepare(scalarization, ALPHA_MIN, alphas, losses, gen)
    for lam in (0.2, 0.5, 0.8):
        found = refine(lam)
        assert found.value <= no_refine(lam).value
        assert float(found.alpha.min()) >= ALPHA_MIN and float(found.alpha.max()) <= 1.0
        # The reported value and cost are the exact ones of the returned point.
        assert found.cost == pytest.approx(float(problem.cost_ratio(found.alpha.unsqueeze(0))))
        assert found.value == pytest.approx(float(scalarization(found.alpha.unsqueeze(0), lam)))


def test_quadratic_cost_surrogate_fits_a_bilinear_cost() -> None:
    problem = ChainProblem(dim=5, seed=3)
    gen = torch.Generator().manual_seed(0)
    unit = torch.rand(600, 5, generator=gen, dtype=torch.float64)
    cost = problem.cost_ratio(ALPHA_MIN + (1 - ALPHA_MIN) * unit)
    smooth = fit_quadratic_cost(unit, cost)
    # Flooring channels leaves only a small residual.
    assert float((smooth(unit) - cost).abs().max()) < 0.03


def test_gradient_minimizer_runs_on_a_fitted_gp() -> None:
    problem = ChainProblem(dim=4, seed=4)
    gen = torch.Generator().manual_seed(0)
    alphas = ALPHA_MIN + (1 - ALPHA_MIN) * torch.rand(30, 4, generator=gen, dtype=torch.float64)
    losses = problem.loss(alphas, gen)
    model = fit_loss_model(alphas, losses, ALPHA_MIN, seed=0)
    scalarization = Scalarization(
        model, problem.cost_ratio, CostStandardizer.from_costs(problem.cost_ratio(alphas))
    )
    pool = PoolSettings(n_sobol=128, n_levels=128)
    grad = GradientMinimizer(pool=pool, num_restarts=2, maxiter=30)
    solve = grad.prepare(scalarization, ALPHA_MIN, alphas, losses, gen)
    solution = solve(0.5)
    assert float(solution.alpha.min()) >= ALPHA_MIN - 1e-12
    assert float(solution.alpha.max()) <= 1.0 + 1e-12
    assert solution.value == pytest.approx(float(scalarization(solution.alpha.unsqueeze(0), 0.5)))


def test_line_search_helps_on_a_fitted_gp() -> None:
    problem = ChainProblem(dim=10, seed=6)
    gen = torch.Generator().manual_seed(0)
    alphas = ALPHA_MIN + (1 - ALPHA_MIN) * torch.rand(60, 10, generator=gen, dtype=torch.float64)
    losses = problem.loss(alphas, gen)
    model = fit_loss_model(alphas, losses, ALPHA_MIN, seed=0)
    scalarization = Scalarization(
        model, problem.cost_ratio, CostStandardizer.from_costs(problem.cost_ratio(alphas))
    )
    pool = PoolSettings(n_sobol=256, n_levels=256)
    lams = (0.3, 0.4, 0.5, 0.6)
    means = []
    for line_search_steps in (0, 16):
        minimizer = RandomSearchMinimizer(pool=pool, line_search_steps=line_search_steps)
        solve = minimizer.prepare(
            scalarization, ALPHA_MIN, alphas, losses, torch.Generator().manual_seed(1)
        )
        means.append(sum(solve(lam).value for lam in lams) / len(lams))
    assert means[1] <= means[0]
