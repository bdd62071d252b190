"""Tests of pareco.search.engine: warm-up order, placeholders, resume, and an end-to-end search."""

from __future__ import annotations

import io
import math

import pytest
import torch

from pareco.search import (
    ParecoSearch,
    PoolSettings,
    RandomSearchMinimizer,
    SearchConfig,
    hypervolume_2d,
)
from pareco.search.synthetic import ChainProblem, reference_front

ALPHA_MIN = 0.42
# Smaller than the default minimizer, to keep the suite fast; same algorithm.
SMALL = RandomSearchMinimizer(
    pool=PoolSettings(n_sobol=256, n_levels=256, n_front_children=8), n_children=32, n_rounds=3
)


def rescore(search: ParecoSearch, problem: ChainProblem, step: int) -> None:
    """Re-score the whole history, as the trainer does every τ steps (noise seeded by step)."""
    alphas = search.history.alphas()
    if len(alphas):
        gen = torch.Generator().manual_seed(1000 + step)
        search.update_losses(range(len(alphas)), problem.loss(alphas, gen), step)


def run(search: ParecoSearch, problem: ChainProblem, rounds: range) -> None:
    for step in rounds:
        rescore(search, problem, step)
        search.propose(step)


def test_warmup_order() -> None:
    problem = ChainProblem(dim=5, seed=0)
    search = ParecoSearch(problem.cost_ratio, SearchConfig(dim=5, seed=1), minimizer=SMALL)
    run(search, problem, range(11))
    records = list(search.history.records())
    assert len(records) == 22
    for rec in records[:20]:
        assert rec.kind == "uniform"
        assert len(set(rec.alpha)) == 1  # one multiplier shared by all groups
        assert ALPHA_MIN <= rec.alpha[0] <= 1.0
        assert math.isnan(rec.target_cost) and rec.bisection_steps == 0
    assert len({rec.alpha[0] for rec in records[:20]}) == 20
    assert records[20].kind == "full" and records[20].alpha == [1.0] * 5
    assert records[20].cost == pytest.approx(1.0)
    gp = records[21]
    assert gp.kind == "gp" and 1 <= gp.bisection_steps <= 10
    assert 0.0 <= gp.lam <= 1.0 and not math.isnan(gp.target_cost)
    # Only scored proposals feed the GP: the 20 warm-up ones; the full network was proposed in
    # the same round and is not scored yet.
    assert search.last_round is not None and search.last_round.n_scored == 20
    # The newest proposals wait with a placeholder loss.
    assert math.isnan(records[20].loss) and math.isnan(records[21].loss)
    assert records[21].cost == pytest.approx(float(problem.cost_ratio(torch.tensor([gp.alpha]))))


def test_gp_phase_without_scores_falls_back_to_random_vectors() -> None:
    problem = ChainProblem(dim=3, seed=0)
    config = SearchConfig(dim=3, warmup=2, proposals_per_round=2, seed=0)
    search = ParecoSearch(problem.cost_ratio, config, minimizer=SMALL)
    for step in range(3):
        search.propose(step)  # never re-scored
    assert search.history.kinds() == ["uniform", "uniform", "full", "random", "random", "random"]
    assert bool((search.history.alphas() >= ALPHA_MIN).all())


def small_config(seed: int = 3) -> SearchConfig:
    return SearchConfig(dim=4, warmup=4, proposals_per_round=2, max_bisection_steps=4, seed=seed)


def test_resume_proposes_exactly_what_an_uninterrupted_search_would() -> None:
    problem = ChainProblem(dim=4, seed=2)
    uninterrupted = ParecoSearch(problem.cost_ratio, small_config(), minimizer=SMALL)
    run(uninterrupted, problem, range(7))

    first = ParecoSearch(problem.cost_ratio, small_config(), minimizer=SMALL)
    run(first, problem, range(4))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = ParecoSearch(problem.cost_ratio, small_config(), minimizer=SMALL)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    run(resumed, problem, range(4, 7))

    assert uninterrupted.history.kinds()[-4:] == ["gp"] * 4
    assert torch.equal(resumed.history.alphas(), uninterrupted.history.alphas())
    assert [r.to_json() for r in resumed.history.records()] == [
        r.to_json() for r in uninterrupted.history.records()
    ]


def test_load_state_dict_rejects_other_settings() -> None:
    problem = ChainProblem(dim=4, seed=2)
    search = ParecoSearch(problem.cost_ratio, small_config(seed=3), minimizer=SMALL)
    other = ParecoSearch(problem.cost_ratio, small_config(seed=4), minimizer=SMALL)
    with pytest.raises(ValueError, match="settings"):
        other.load_state_dict(search.state_dict())


def test_config_validation_and_round_trip() -> None:
    config = SearchConfig(dim=3, target_mode="uniform")
    assert SearchConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        SearchConfig(dim=3, target_mode="pareto-ish")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SearchConfig.from_dict({"dim": 3, "tau": 5})


def test_uniform_target_mode_runs() -> None:
    problem = ChainProblem(dim=4, seed=5)
    config = SearchConfig(dim=4, warmup=4, target_mode="uniform", max_bisection_steps=4, seed=0)
    search = ParecoSearch(problem.cost_ratio, config, minimizer=SMALL)
    run(search, problem, range(4))
    targets = [r.target_cost for r in search.history.records() if r.kind == "gp"]
    assert len(targets) == 3
    assert all(search.cost_min <= c <= 1.0 for c in targets)


@pytest.fixture(scope="module")
def end_to_end() -> tuple[ChainProblem, ParecoSearch]:
    """100 proposals on an 8-group conv chain, re-scoring with the noisy known loss.

    M = 4 proposals per round halves the number of GP fits (the suite's main cost); the
    algorithm is otherwise the default one.
    """
    problem = ChainProblem(dim=8, seed=0)
    config = SearchConfig(dim=8, proposals_per_round=4, seed=0)
    search = ParecoSearch(problem.cost_ratio, config, minimizer=SMALL)
    step = 0
    while len(search.history) < 100:
        rescore(search, problem, step)
        search.propose(step)
        step += 1
    return problem, search


def test_end_to_end_hits_target_costs(end_to_end: tuple[ChainProblem, ParecoSearch]) -> None:
    _, search = end_to_end
    gp = [r for r in search.history.records() if r.kind == "gp"]
    assert len(gp) >= 70
    hits = [abs(r.cost - r.target_cost) <= 0.02 for r in gp]
    assert all(h == r.hit for h, r in zip(hits, gp))
    assert sum(hits) / len(hits) >= 0.9


def test_end_to_end_front_quality(end_to_end: tuple[ChainProblem, ParecoSearch]) -> None:
    problem, search = end_to_end
    alphas = search.history.alphas()[:100]
    # Reference point: cost of the full network, loss of the smallest network; the reference
    # front is the front of 20,000 random vectors plus a fine λ-sweep minimized with the true loss.
    ref_loss = float(problem.true_loss(torch.full((1, 8), ALPHA_MIN, dtype=torch.float64)))
    reference = reference_front(problem, ALPHA_MIN)
    hv_true = hypervolume_2d(reference.cost, reference.loss, 1.0, ref_loss)
    hv_found = hypervolume_2d(problem.cost_ratio(alphas), problem.true_loss(alphas), 1.0, ref_loss)
    gen = torch.Generator().manual_seed(7)
    hv_random = []
    for _ in range(5):
        rand = ALPHA_MIN + (1 - ALPHA_MIN) * torch.rand(100, 8, generator=gen, dtype=torch.float64)
        hv_random.append(
            hypervolume_2d(problem.cost_ratio(rand), problem.true_loss(rand), 1.0, ref_loss)
        )
    ratio = hv_found / hv_true
    random_ratio = max(hv_random) / hv_true
    assert ratio >= 0.9
    assert ratio <= 1.0 + 1e-9
    assert ratio >= random_ratio + 0.05
