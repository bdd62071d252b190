"""Tests of pareco.search.pareto: non-dominated filter, front, hypervolume, error-cost AUC."""

from __future__ import annotations

import math

import pytest
import torch
from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
from botorch.utils.multi_objective.hypervolume import Hypervolume
from hypothesis import given, settings
from hypothesis import strategies as st

from pareco.search import error_cost_auc, hypervolume_2d, non_dominated, pareto_front


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# Small integer grids make ties and duplicates frequent, which is where filters go wrong.
points = st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=25).map(
    lambda pts: (t([p[0] / 8 for p in pts]), t([p[1] / 8 for p in pts]))
)


def dominates(c1: float, l1: float, c2: float, l2: float) -> bool:
    return c1 <= c2 and l1 <= l2 and (c1 < c2 or l1 < l2)


def test_non_dominated_hand_made() -> None:
    cost = t([0.2, 0.4, 0.4, 0.6, 0.8, 1.0, 0.5])
    loss = t([0.9, 0.5, 0.6, 0.5, 0.3, 0.3, 0.7])
    # (0.4,0.6) is dominated by (0.4,0.5); (0.6,0.5) by (0.4,0.5); (1.0,0.3) by (0.8,0.3);
    # (0.5,0.7) by (0.4,0.5).
    assert non_dominated(cost, loss).tolist() == [True, True, False, False, True, False, False]


def test_non_dominated_deduplicates_and_ignores_nan() -> None:
    cost = t([0.3, 0.3, 0.5, 0.1])
    loss = t([0.4, 0.4, 0.2, float("nan")])
    assert non_dominated(cost, loss).tolist() == [True, False, True, False]
    assert non_dominated(cost, loss, deduplicate=False).tolist() == [True, True, True, False]


def test_pareto_front_sorted_with_indices() -> None:
    cost = t([0.8, 0.2, 0.5, 0.6])
    loss = t([0.1, 0.9, 0.4, 0.5])
    front = pareto_front(cost, loss)
    assert front.cost.tolist() == [0.2, 0.5, 0.8]
    assert front.loss.tolist() == [0.9, 0.4, 0.1]
    assert front.indices.tolist() == [1, 2, 0]


def test_empty_inputs() -> None:
    empty = t([])
    assert non_dominated(empty, empty).numel() == 0
    assert pareto_front(empty, empty).cost.numel() == 0
    assert hypervolume_2d(empty, empty, 1.0, 1.0) == 0.0


@given(points)
@settings(max_examples=60, deadline=None)
def test_non_dominated_set_properties(pts: tuple[torch.Tensor, torch.Tensor]) -> None:
    cost, loss = pts
    mask = non_dominated(cost, loss, deduplicate=False)
    n = cost.numel()
    for i in range(n):
        dominated = any(
            dominates(float(cost[j]), float(loss[j]), float(cost[i]), float(loss[i]))
            for j in range(n)
        )
        # A point is kept exactly when nothing dominates it.
        assert bool(mask[i]) == (not dominated)
    front = pareto_front(cost, loss)
    assert front.cost.numel() >= 1
    assert torch.all(front.cost[1:] > front.cost[:-1])
    assert torch.all(front.loss[1:] < front.loss[:-1])
    # Every input point is dominated by or equal to a front point.
    for i in range(n):
        assert any(
            float(fc) <= float(cost[i]) and float(fl) <= float(loss[i])
            for fc, fl in zip(front.cost, front.loss)
        )


def test_hypervolume_hand_computed() -> None:
    # Front (0.2, 0.8), (0.5, 0.4), (0.9, 0.1) with reference (1, 1):
    # 0.3*0.2 + 0.4*0.6 + 0.1*0.9 = 0.06 + 0.24 + 0.09 = 0.39; the dominated point adds nothing.
    cost = t([0.2, 0.5, 0.9, 0.6])
    loss = t([0.8, 0.4, 0.1, 0.5])
    assert hypervolume_2d(cost, loss, 1.0, 1.0) == pytest.approx(0.39)
    # Points outside the reference box add nothing.
    assert hypervolume_2d(t([1.2, 0.5]), t([0.1, 1.5]), 1.0, 1.0) == 0.0


@given(points)
@settings(max_examples=60, deadline=None)
def test_hypervolume_agrees_with_botorch(pts: tuple[torch.Tensor, torch.Tensor]) -> None:
    cost, loss = pts
    ref = (1.1, 1.05)
    ours = hypervolume_2d(cost, loss, *ref)
    y = -torch.stack([cost, loss], dim=-1)
    ref_point = -torch.tensor(ref, dtype=torch.float64)
    partitioning = DominatedPartitioning(ref_point=ref_point, Y=y)
    assert ours == pytest.approx(float(partitioning.compute_hypervolume()), abs=1e-12)
    front = pareto_front(cost, loss)
    pareto_y = -torch.stack([front.cost, front.loss], dim=-1)
    assert ours == pytest.approx(Hypervolume(ref_point).compute(pareto_y), abs=1e-12)


@given(points, st.tuples(st.integers(0, 8), st.integers(0, 8)))
@settings(max_examples=40, deadline=None)
def test_hypervolume_monotone(pts: tuple[torch.Tensor, torch.Tensor], extra: tuple) -> None:
    cost, loss = pts
    before = hypervolume_2d(cost, loss, 1.1, 1.1)
    after = hypervolume_2d(
        torch.cat([cost, t([extra[0] / 8])]), torch.cat([loss, t([extra[1] / 8])]), 1.1, 1.1
    )
    assert after >= before - 1e-12


def test_auc_hand_computed() -> None:
    cost = t([0.2, 0.5, 0.9, 0.6])
    loss = t([0.8, 0.4, 0.1, 0.5])
    # Step curve over [0.2, 1]: 0.8 on [0.2,0.5), 0.4 on [0.5,0.9), 0.1 on [0.9,1].
    assert error_cost_auc(cost, loss, 0.2, 1.0) == pytest.approx(0.24 + 0.16 + 0.01)
    assert error_cost_auc(cost, loss, 0.2, 1.0, normalize=True) == pytest.approx(0.41 / 0.8)
    # Sub-range inside one step, and a range that starts mid-step.
    assert error_cost_auc(cost, loss, 0.6, 0.7) == pytest.approx(0.04)
    assert error_cost_auc(cost, loss, 0.4, 0.6) == pytest.approx(0.1 * 0.8 + 0.1 * 0.4)
    # Below the cheapest point the curve is undefined unless a fill value is given.
    with pytest.raises(ValueError, match="fill"):
        error_cost_auc(cost, loss, 0.1, 1.0)
    assert error_cost_auc(cost, loss, 0.1, 1.0, fill=1.0) == pytest.approx(0.1 + 0.41)


@given(points)
@settings(max_examples=40, deadline=None)
def test_auc_matches_riemann_sum(pts: tuple[torch.Tensor, torch.Tensor]) -> None:
    cost, loss = pts
    lo, hi = float(cost.min()), 1.0
    if hi <= lo:
        return
    grid = torch.linspace(lo, hi, 2001, dtype=torch.float64)
    mids = (grid[1:] + grid[:-1]) / 2
    best = torch.stack([loss[cost <= c].min() for c in mids])
    riemann = float((best * (grid[1:] - grid[:-1])).sum())
    assert error_cost_auc(cost, loss, lo, hi) == pytest.approx(riemann, abs=3e-3)
    assert math.isfinite(error_cost_auc(cost, loss, lo, hi, normalize=True))


def test_selected_error_auc_chooses_on_validation_and_reports_test() -> None:
    from pareco.search import selected_error_auc

    cost = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    val_error = torch.tensor(
        [0.3, 0.2, 0.1], dtype=torch.float64
    )  # every point on the validation front
    test_error = torch.tensor(
        [0.25, 0.4, 0.1], dtype=torch.float64
    )  # the middle point is worse on test
    # Step curve: 0.25 on [0.2, 0.5), 0.4 on [0.5, 0.8), 0.1 on [0.8, 1]. The test-chosen curve
    # (error_cost_auc on test errors) would keep 0.25 on [0.5, 0.8): the leak this avoids.
    step = selected_error_auc(cost, val_error, test_error, 0.2, 1.0)
    assert step == pytest.approx(0.3 * 0.25 + 0.3 * 0.4 + 0.2 * 0.1)
    leaky = error_cost_auc(cost, test_error, 0.2, 1.0)
    assert leaky == pytest.approx(0.6 * 0.25 + 0.2 * 0.1)
    # Linear: trapezoids between the points, flat after the last.
    linear = selected_error_auc(cost, val_error, test_error, 0.2, 1.0, interpolate=True)
    assert linear == pytest.approx(0.3 * (0.25 + 0.4) / 2 + 0.3 * (0.4 + 0.1) / 2 + 0.2 * 0.1)
    # A sub-range starting between points interpolates at its ends.
    part = selected_error_auc(cost, val_error, test_error, 0.35, 0.5, interpolate=True)
    assert part == pytest.approx(0.15 * ((0.25 + 0.4) / 2 + 0.4) / 2)
    # A point dominated on validation is never chosen, however good on test.
    cost2 = torch.cat([cost, torch.tensor([0.6], dtype=torch.float64)])
    val2 = torch.cat([val_error, torch.tensor([0.25], dtype=torch.float64)])
    test2 = torch.cat([test_error, torch.tensor([0.0], dtype=torch.float64)])
    assert selected_error_auc(cost2, val2, test2, 0.2, 1.0) == pytest.approx(step)
    with pytest.raises(ValueError):
        selected_error_auc(cost, val_error, test_error, 0.1, 1.0)
