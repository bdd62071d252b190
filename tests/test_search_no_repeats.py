"""Issue #20, items 1-2: the smallest network's measured loss anchors the front that weights the
targets, and no search proposes a channel vector twice (stage two on frozen weights, or PareCO)."""

from __future__ import annotations

import torch
from test_search_engine import ALPHA_MIN, SMALL

from pareco.samplers import ParecoSampler, high_loss_value
from pareco.search import (
    REFERENCE_HIGH_LOSS,
    ParecoSearch,
    SearchConfig,
    chance_loss,
    pareto_aware_weights,
)
from pareco.search.seen import SeenWidths
from pareco.search.synthetic import ChainProblem
from pareco.space import ChannelGroup, WidthSpace


def coarse_problem(dim: int = 3, channels: int = 5) -> ChainProblem:
    """A chain whose groups have few channels: many width vectors give the same network."""
    problem = ChainProblem(dim=dim, seed=1, noise=0.0)
    problem.full_channels = torch.full((dim,), float(channels), dtype=torch.float64)
    problem.full_macs = float(problem.macs(torch.ones(1, dim, dtype=torch.float64))[0])
    return problem


def stage_two(problem: ChainProblem, channels, budget: int) -> ParecoSearch:
    """TwoStage's loop: propose, score once on frozen weights (a fixed loss), never re-score."""
    config = SearchConfig(dim=problem.dim, warmup=6, max_bisection_steps=4, seed=0)
    search = ParecoSearch(problem.cost_ratio, config, minimizer=SMALL, channels=channels)
    smallest = torch.full((1, problem.dim), ALPHA_MIN, dtype=torch.float64)
    search.update_smallest_loss(float(problem.true_loss(smallest)[0]))
    while len(search.history) < budget:
        records = search.propose(len(search.history))
        alphas = torch.stack([torch.tensor(r.alpha, dtype=torch.float64) for r in records])
        search.update_losses([r.index for r in records], problem.true_loss(alphas), 0)
    return search


def distinct(problem: ChainProblem, search: ParecoSearch) -> int:
    return len({tuple(c.tolist()) for c in problem.channels(search.history.alphas())})


def test_stage_two_never_scores_a_channel_vector_twice() -> None:
    problem = coarse_problem()
    guarded = stage_two(problem, problem.channels, budget=30)
    assert distinct(problem, guarded) == len(guarded.history) == 30
    smallest = problem.channels(torch.full((1, 3), ALPHA_MIN, dtype=torch.float64))[0]
    assert not any(torch.equal(c, smallest) for c in problem.channels(guarded.history.alphas()))
    # Comparing width vectors instead of channels lets the same network back in (what stage two
    # did before: the test would fail without the channel check).
    unguarded = stage_two(problem, None, budget=30)
    assert distinct(problem, unguarded) < len(unguarded.history)


def test_pareco_history_has_no_repeated_channel_vector_and_survives_resume() -> None:
    problem = coarse_problem(dim=4, channels=4)
    config = SearchConfig(dim=4, warmup=6, max_bisection_steps=4, seed=2)
    search = ParecoSearch(problem.cost_ratio, config, minimizer=SMALL, channels=problem.channels)
    gen = torch.Generator().manual_seed(0)
    smallest = search.smallest.unsqueeze(0)
    for step in range(14):
        if step == 7:  # a resumed search remembers what it proposed
            state = search.state_dict()
            search = ParecoSearch(problem.cost_ratio, config, SMALL, channels=problem.channels)
            search.load_state_dict(state)
        alphas = search.history.alphas()
        if len(alphas):
            losses = problem.loss(torch.cat([alphas, smallest]), gen)
            search.update_losses(range(len(alphas)), losses[:-1], step)
            search.update_smallest_loss(float(losses[-1]))
        search.propose(step)
    assert search.history.kinds().count("gp") >= 10
    assert distinct(problem, search) == len(search.history) == 28


def test_seen_widths_keys_follow_channels() -> None:
    problem = coarse_problem()
    seen = SeenWidths(3, problem.channels)
    a = torch.tensor([[0.5, 0.7, 0.9], [0.55, 0.75, 0.95]], dtype=torch.float64)  # same channels
    assert seen.keys(a)[0] == seen.keys(a)[1]
    assert not seen.seen(a).any()
    seen.add(a[:1])
    assert seen.seen(a).all() and len(seen) == 1
    other = torch.tensor([[1.0, 0.7, 0.9]], dtype=torch.float64)
    assert not bool(seen.seen(other))


def test_the_measured_smallest_network_replaces_the_made_up_high_loss() -> None:
    # The history never reaches cost_min = 0.2 (coarse costs): its cheapest point costs 0.4.
    cost, loss = torch.tensor([0.4, 0.7, 1.0]), torch.tensor([0.9, 0.6, 0.5])
    prepended = pareto_aware_weights(cost, loss, 0.2, n_bins=10)  # (0.2, 8) is prepended
    measured = pareto_aware_weights(
        torch.cat([cost, torch.tensor([0.2])]), torch.cat([loss, torch.tensor([1.1])]), 0.2,
        n_bins=10,
    )  # fmt: skip
    # With the constant 8 the cheapest bins take almost every target; with the smallest
    # network's measured loss 1.1 the gap at the cheap end is (0.4-0.2)*(1.1-0.9) = 0.04 only.
    assert float(prepended[2:5].sum()) > 0.9  # bins [0.2, 0.5): 0.92
    assert float(measured[2:5].sum()) < 0.4  # 0.33
    # The engine uses the measured loss once it has one, and the constant before.
    problem = coarse_problem()
    search = ParecoSearch(problem.cost_ratio, SearchConfig(dim=3, warmup=2), SMALL)
    assert search.config.high_loss == REFERENCE_HIGH_LOSS == 8.0
    assert search.config.smallest_in_front


def test_high_loss_names() -> None:
    assert high_loss_value("reference", 10) == 8.0
    assert high_loss_value("chance", 10) == chance_loss(10)
    assert high_loss_value("chance", None) == 8.0


def test_the_sampler_scores_the_smallest_network_with_the_history() -> None:
    groups = tuple(ChannelGroup(f"g{i}", 8, (f"m{i}",), (), True) for i in range(3))
    space = WidthSpace(groups, (), min_multiplier=ALPHA_MIN)
    search = SearchConfig(dim=3, alpha_min=ALPHA_MIN, warmup=4)
    sampler = ParecoSampler(
        space, lambda a: space.channels(a).double().mean(-1) / 8, tau=1, search=search
    )
    asked: list[torch.Tensor] = []

    def scorer(alphas: torch.Tensor) -> torch.Tensor:
        asked.append(alphas)
        return 1.0 - alphas.mean(-1)

    sampler.widths(0, scorer)
    sampler.widths(1, scorer)
    assert len(asked) == 1 and len(asked[0]) == 3  # two proposals, then the smallest network
    assert torch.equal(asked[0][-1], space.smallest())
    assert sampler.search.smallest_loss == float(1.0 - asked[0][-1].mean())
