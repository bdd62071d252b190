"""The search follows the authors' code where issue #13 found it departing: the confidence-bound
sign, which target bins are eligible, the fixed high loss, no proposal spent on the smallest or
largest network, and TwoStage's stage-two budget."""

from __future__ import annotations

import math

import pytest
import torch
from test_search_engine import ALPHA_MIN, SMALL

from pareco.samplers import default_search_candidates, rescoring_images
from pareco.search import (
    CostStandardizer,
    ParecoSearch,
    Scalarization,
    SearchConfig,
    bisect_lambda,
    chance_loss,
    confidence_bound,
    eligible_bins,
    pareto_aware_weights,
    sample_pareto_aware_target,
)
from pareco.search.synthetic import ChainProblem


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --- 1. the confidence bound ------------------------------------------------------------------
def test_default_bound_is_the_authors_upper_bound() -> None:
    mean, std = t([0.0, 1.0]), t([1.0, 2.0])
    assert confidence_bound(mean, std, 0.1).tolist() == pytest.approx(
        [math.sqrt(0.1), 1.0 + 2.0 * math.sqrt(0.1)]
    )
    assert confidence_bound(mean, std, 0.1, "lower").tolist() == pytest.approx(
        [-math.sqrt(0.1), 1.0 - 2.0 * math.sqrt(0.1)]
    )
    assert SearchConfig(dim=3).loss_bound == "upper"
    with pytest.raises(ValueError, match="loss_bound"):
        SearchConfig(dim=3, loss_bound="optimistic")  # type: ignore[arg-type]


class UncertainMiddle:
    """A loss model with a known front (loss falls linearly with cost) that is very uncertain
    about networks of middle cost: the situation of a real run's GP, whose history holds many
    cheap uniform networks and one full network."""

    def __init__(self, problem: ChainProblem) -> None:
        self.problem = problem

    def posterior_mean_std(self, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cost = self.problem.cost_ratio(alpha)
        mean = 2.0 * (1.0 - cost) - 1.0
        std = 3.0 * torch.exp(-(((cost - 0.55) / 0.12) ** 2))
        return mean, std


@pytest.mark.parametrize("target", [0.8, 0.9])
def test_upper_bound_hits_high_targets_that_the_lower_bound_misses(target: float) -> None:
    problem = ChainProblem(dim=6, seed=1, noise=0.0)
    gen = torch.Generator().manual_seed(0)
    anchors = ALPHA_MIN + (1 - ALPHA_MIN) * torch.rand(30, 6, generator=gen, dtype=torch.float64)
    reached = {}
    for bound in ("upper", "lower"):
        s = Scalarization(
            UncertainMiddle(problem),
            problem.cost_ratio,
            CostStandardizer.from_costs(problem.cost_ratio(anchors)),
            bound=bound,
        )
        solve = SMALL.prepare(
            s, ALPHA_MIN, anchors, problem.true_loss(anchors), torch.Generator().manual_seed(1)
        )
        result = bisect_lambda(lambda lam, solve=solve: solve(lam)[:2], target)
        reached[bound] = result
    assert reached["upper"].hit, reached["upper"]
    # The optimistic bound trades cost for uncertainty: it ends in the uncertain middle.
    assert not reached["lower"].hit
    assert reached["lower"].cost < target - 0.1


# --- 2. eligible bins and the high loss --------------------------------------------------------
def test_a_bin_is_eligible_only_when_its_lower_edge_is_reachable() -> None:
    # cost_min 0.15: bin [0.14, 0.16) has its centre at 0.15 but cannot be reached as a whole.
    eligible = eligible_bins(0.15, 50)
    assert not bool(eligible[7])
    assert bool(eligible[8]) and bool(eligible[8:].all()) and not bool(eligible[:8].any())
    w = pareto_aware_weights(t([0.5, 1.0]), t([0.4, 0.2]), cost_min=0.15, high_loss=2.3)
    assert float(w[:8].sum()) == 0.0
    gen = torch.Generator().manual_seed(0)
    targets = [
        sample_pareto_aware_target(t([0.5, 1.0]), t([0.4, 0.2]), 0.15, gen, high_loss=2.3)
        for _ in range(300)
    ]
    assert min(targets) >= 0.15 + 0.01 - 1e-12  # the first eligible centre, 0.17


def test_fixed_high_loss_asks_for_the_cheap_end_when_the_front_misses_it() -> None:
    # Random fronts that stop short of the cheap end (cheapest scored cost 0.35..0.6).
    gen = torch.Generator().manual_seed(0)
    share = {"fixed": [], "span": []}
    for _ in range(40):
        n = 8
        cost = 0.35 + 0.65 * torch.rand(n, generator=gen, dtype=torch.float64)
        loss = 0.3 + 0.4 * (1 - cost) + 0.05 * torch.rand(n, generator=gen, dtype=torch.float64)
        centres = (torch.arange(50, dtype=torch.float64) + 0.5) / 50
        for name, high in (("fixed", chance_loss(10)), ("span", None)):
            w = pareto_aware_weights(cost, loss, 0.15, full_loss=float(loss.min()), high_loss=high)
            share[name].append(float(w[centres < 0.35].sum()))
    fixed = sum(share["fixed"]) / 40
    span = sum(share["span"]) / 40
    assert fixed > span + 0.1
    assert chance_loss(10) == pytest.approx(math.log(10))
    with pytest.raises(ValueError):
        chance_loss(1)


# --- 3. never a copy of the smallest or largest network ----------------------------------------
class FlatLoss:
    """Every network equally good and certain: cost alone decides, so the cheapest network (the
    smallest one) minimizes T for every λ > 0 unless it is excluded."""

    def posterior_mean_std(self, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(alpha.shape[0], dtype=torch.float64)
        return zeros, zeros


def test_the_smallest_and_largest_networks_are_excluded_from_the_minimizer() -> None:
    problem = ChainProblem(dim=5, seed=0)
    cost_min = float(problem.cost_ratio(torch.full((1, 5), ALPHA_MIN, dtype=torch.float64))[0])
    anchors = torch.full((1, 5), 0.7, dtype=torch.float64)
    costs = problem.cost_ratio(anchors)
    plain = Scalarization(FlatLoss(), problem.cost_ratio, CostStandardizer.from_costs(costs))
    guarded = Scalarization(
        FlatLoss(),
        problem.cost_ratio,
        CostStandardizer.from_costs(costs),
        excluded_costs=(cost_min, 1.0),
    )
    for s, is_smallest in ((plain, True), (guarded, False)):
        solve = SMALL.prepare(s, ALPHA_MIN, anchors, t([0.5]), torch.Generator().manual_seed(0))
        solution = solve(0.9)
        assert (abs(solution.cost - cost_min) < 1e-12) == is_smallest
        assert solution.cost < 1.0


def test_no_proposal_is_the_smallest_or_largest_network_but_the_warmup_full_one() -> None:
    problem = ChainProblem(dim=4, seed=3)
    config = SearchConfig(dim=4, warmup=6, proposals_per_round=2, max_bisection_steps=4, seed=0)
    search = ParecoSearch(problem.cost_ratio, config, minimizer=SMALL)
    gen = torch.Generator().manual_seed(0)
    for step in range(12):
        alphas = search.history.alphas()
        if len(alphas):
            search.update_losses(range(len(alphas)), problem.loss(alphas, gen), step)
        search.propose(step)
    smallest = problem.channels(torch.full((1, 4), ALPHA_MIN, dtype=torch.float64))[0]
    largest = problem.channels(torch.ones(1, 4, dtype=torch.float64))[0]
    kinds = search.history.kinds()
    assert kinds.count("gp") >= 10
    for record in search.history.records():
        channels = problem.channels(torch.tensor([record.alpha], dtype=torch.float64))[0]
        assert not torch.equal(channels, smallest)
        assert torch.equal(channels, largest) == (record.kind == "full")


# --- 4. TwoStage's stage-two budget -------------------------------------------------------------
def test_twostage_budget_matches_pareco_rescoring_and_the_paper_scale() -> None:
    # The README-sized run: 26 proposals, M = 2, a calibration batch of 256, batch 128.
    images = rescoring_images(26, 2, 256)
    assert images == 2 * 256 * 13 * 12 // 2 + 256 * 12  # the history, and the smallest network
    budget = default_search_candidates(26, 2, 256, 128)
    assert budget * 2 * 128 >= images  # at least as many scoring images as PareCO spends
    assert (budget - 1) * 2 * 128 < images
    assert budget >= 26
    # Paper scale: 1000 proposals; the paper's ~1000 candidates.
    assert default_search_candidates(1000, 2, 1024, 1024) == 1000
    # Never fewer candidates than PareCO's own proposals.
    assert default_search_candidates(24, 2, 1, 1024) == 24
