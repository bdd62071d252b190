"""Tests of pareco.search.targets: Pareto-aware and uniform target costs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pareco.search import (
    REFERENCE_HIGH_LOSS,
    bin_centres,
    default_high_loss,
    pareto_aware_weights,
    sample_pareto_aware_target,
    sample_uniform_target,
)


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_bin_centres() -> None:
    c = bin_centres(50)
    assert c.shape == (50,)
    assert float(c[0]) == pytest.approx(0.01) and float(c[-1]) == pytest.approx(0.99)


def test_weights_hand_computed() -> None:
    # Front reaching both ends: (0.2, 1.0), (0.6, 0.8), (1.0, 0.0); 10 bins of width 0.1.
    # Segment areas: 0.4*0.2 = 0.08 on [0.2, 0.6], 0.4*0.8 = 0.32 on [0.6, 1]. The first segment
    # ends on the edge 0.6, so the bin [0.6, 0.7) takes both (the reference's walk): 0.4 / 2.
    w = pareto_aware_weights(t([0.2, 0.6, 1.0]), t([1.0, 0.8, 0.0]), cost_min=0.2, n_bins=10)
    expected = t([0, 0, 0.08, 0.08, 0.08, 0.08, 0.2, 0.32, 0.32, 0.32])
    assert torch.allclose(w, expected / expected.sum())


def test_more_mass_in_the_gap() -> None:
    # A dense front with one big gap between costs 0.45 and 0.75.
    cost = t([0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0])
    loss = t([1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2])
    w = pareto_aware_weights(cost, loss, cost_min=0.2)
    centres = bin_centres()
    gap = (centres > 0.45) & (centres < 0.75)
    # Bins of width 0.02 that do not touch the gap (boundary bins average both sides).
    elsewhere = (centres >= 0.2) & ((centres + 0.01 <= 0.45 + 1e-9) | (centres - 0.01 >= 0.75))
    assert float(w[gap].min()) > 10 * float(w[elsewhere].max())
    assert float(w[gap].sum()) > 0.8
    gen = torch.Generator().manual_seed(0)
    draws = t([sample_pareto_aware_target(cost, loss, 0.2, gen) for _ in range(200)])
    assert float(((draws > 0.45) & (draws < 0.75)).float().mean()) > 0.85


def test_bins_below_cost_min_get_nothing_and_prepend_rule() -> None:
    # The front starts at 0.5 > cost_min = 0.3: a high-loss point is prepended at 0.3.
    cost, loss = t([0.5, 1.0]), t([0.6, 0.2])
    w = pareto_aware_weights(cost, loss, cost_min=0.3, high_loss=None, n_bins=10)
    centres = bin_centres(10)
    assert torch.all(w[centres < 0.3] == 0)
    high = default_high_loss(t([0.6, 0.2]))
    assert high == pytest.approx(1.0)
    # Areas: prepended segment (0.5-0.3)*(1.0-0.6) = 0.08, then 0.5*0.4 = 0.2. The bin
    # [0.4, 0.5) sees only the first; [0.5, 0.6) both, as the first ends on its lower edge.
    assert float(w[4] / w[5]) == pytest.approx(0.08 / ((0.08 + 0.2) / 2))
    explicit = pareto_aware_weights(cost, loss, cost_min=0.3, high_loss=0.6, n_bins=10)
    assert float(explicit[3]) == 0 and float(explicit[4]) == 0
    # The default is the reference's constant 8: the prepended gap is (0.5-0.3)*(8-0.6).
    reference = pareto_aware_weights(cost, loss, cost_min=0.3, n_bins=10)
    assert float(reference[3] / reference[9]) == pytest.approx(0.2 * 7.4 / 0.2)
    assert REFERENCE_HIGH_LOSS == 8.0


def test_segments_below_the_first_eligible_bin_are_folded_into_it() -> None:
    # cost_min 0.31 makes [0.3, 0.4) ineligible; the segment (0.31, 0.35) lies wholly below the
    # first eligible bin [0.4, 0.5) and is folded into it: (a0 + a1) / 2, where a1 = the segment
    # (0.35, 0.8) that crosses the bin.
    cost, loss = t([0.31, 0.35, 0.8, 1.0]), t([1.0, 0.6, 0.3, 0.2])
    w = pareto_aware_weights(cost, loss, cost_min=0.31, n_bins=10)
    a0, a1, a2 = 0.04 * 0.4, 0.45 * 0.3, 0.2 * 0.1
    raw = t([0, 0, 0, 0, (a0 + a1) / 2, a1, a1, a1, (a1 + a2) / 2, a2])
    assert torch.allclose(w, raw / raw.sum())


def test_append_rule_uses_full_network_loss() -> None:
    cost, loss = t([0.3, 0.6]), t([0.9, 0.5])
    # Full network loss 0.1 at cost 1 leaves a gap (1-0.6)*(0.5-0.1) = 0.16 on [0.6, 1].
    w = pareto_aware_weights(cost, loss, cost_min=0.3, full_loss=0.1, n_bins=10)
    assert float(w[8]) > float(w[4])
    # Without the full network's loss there is no gap on the right.
    w_none = pareto_aware_weights(cost, loss, cost_min=0.3, n_bins=10)
    assert float(w_none[8]) == 0.0
    # A full network worse than the front gives no negative area.
    w_bad = pareto_aware_weights(cost, loss, cost_min=0.3, full_loss=0.7, n_bins=10)
    assert torch.all(w_bad >= 0)


def test_all_zero_weights_fall_back_to_uniform_over_reachable_bins() -> None:
    # A single point at cost_min with no full-network loss: no gap anywhere.
    w = pareto_aware_weights(t([0.3]), t([0.5]), cost_min=0.3, n_bins=10)
    centres = bin_centres(10)
    reachable = centres >= 0.3
    assert torch.allclose(w[reachable], torch.full_like(w[reachable], 1 / int(reachable.sum())))
    assert torch.all(w[~reachable] == 0)
    # No scored point at all: uniform too.
    w_empty = pareto_aware_weights(t([]), t([]), cost_min=0.3, n_bins=10)
    assert torch.allclose(w_empty, w)


def test_sampling_is_reproducible_and_in_range() -> None:
    cost, loss = t([0.2, 0.5, 1.0]), t([1.0, 0.5, 0.2])
    a = [sample_pareto_aware_target(cost, loss, 0.2, torch.Generator().manual_seed(5))]
    b = [sample_pareto_aware_target(cost, loss, 0.2, torch.Generator().manual_seed(5))]
    assert a == b
    assert float((bin_centres() - a[0]).abs().min()) < 1e-12
    gen = torch.Generator().manual_seed(1)
    u = t([sample_uniform_target(0.25, gen) for _ in range(500)])
    assert float(u.min()) >= 0.25 and float(u.max()) <= 1.0
    assert float(u.mean()) == pytest.approx(0.625, abs=0.03)


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=0, max_size=15),
    st.integers(1, 15),
    st.one_of(st.none(), st.integers(0, 20)),
)
@settings(max_examples=60, deadline=None)
def test_weights_are_a_distribution_over_reachable_bins(
    pts: list[tuple[int, int]], cost_min_20: int, full_loss_20: int | None
) -> None:
    cost_min = cost_min_20 / 20
    cost = t([max(cost_min, p[0] / 20) for p in pts])
    loss = t([p[1] / 20 for p in pts])
    full_loss = None if full_loss_20 is None else full_loss_20 / 20
    w = pareto_aware_weights(cost, loss, cost_min, full_loss=full_loss)
    assert w.shape == (50,)
    assert torch.all(w >= 0)
    assert float(w.sum()) == pytest.approx(1.0)
    assert torch.all(w[bin_centres() < cost_min] == 0)
