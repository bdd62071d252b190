"""``pareco.samplers``: the width samplers, and the one mapping of a run's config to the search."""

import pytest
import torch

from pareco.config import ConfigError, TrainConfig
from pareco.samplers import (
    LayerwiseSampler,
    ParecoSampler,
    SlimSampler,
    make_sampler,
    run_sampler,
    search_config,
)
from pareco.space import ChannelGroup, WidthSpace

SPACE = WidthSpace(tuple(ChannelGroup(f"g{i}", 8) for i in range(4)), min_multiplier=0.5)


def _cost(alpha: torch.Tensor) -> torch.Tensor:
    return alpha.mean(-1)


def test_search_config_carries_the_run_settings():
    config = TrainConfig(num_sampled=3, beta=0.2, target="uniform", loss_bound="lower", seed=7)
    search = search_config(config, SPACE, warmup=5, num_classes=10)
    assert (search.dim, search.alpha_min) == (4, 0.5)
    assert search.proposals_per_round == 3 and search.warmup == 5
    assert (search.beta, search.target_mode, search.loss_bound, search.seed) == (
        0.2, "uniform", "lower", 7,
    )  # fmt: skip


def test_run_sampler_builds_each_method_from_its_config(tmp_path):
    kw = dict(cost_ratio=_cost, tau=4, warmup=2, num_classes=3)
    assert isinstance(run_sampler(TrainConfig(method="slim"), SPACE, **kw), SlimSampler)
    assert isinstance(run_sampler(TrainConfig(method="twostage"), SPACE, **kw), LayerwiseSampler)
    config = TrainConfig(method="pareco", num_sampled=2, seed=1)
    sampler = run_sampler(config, SPACE, history_path=tmp_path / "h.jsonl", **kw)
    assert isinstance(sampler, ParecoSampler) and sampler.tau == 4
    assert sampler.search.config == search_config(config, SPACE, warmup=2, num_classes=3)


def test_the_pareco_sampler_appends_then_rewrites_its_history(tmp_path):
    path = tmp_path / "history.jsonl"
    sampler = make_sampler("pareco", SPACE, num=2, seed=0, tau=2, warmup=2, cost_ratio=_cost,
                           history_path=path)  # fmt: skip
    first = sampler.widths(0, lambda a: torch.ones(len(a)))
    assert len(first) == 2 and len(path.read_text().splitlines()) == 2  # appended as proposed
    sampler.widths(2, lambda a: torch.arange(len(a), dtype=torch.float64))
    sampler.flush()
    from pareco.search.history import History

    records = History.read_records(path)
    assert [r["index"] for r in records] == list(range(len(sampler.search.history)))
    assert records[0]["loss"] == 0.0 and records[1]["loss"] == 1.0  # the re-scored losses


@pytest.mark.parametrize("method", ["pareco", "twostage"])
def test_no_sampled_widths_is_refused_where_the_method_needs_them(method):
    with pytest.raises(ConfigError, match=f"num_sampled must be >= 1 with method {method}"):
        TrainConfig(method=method, num_sampled=0)
    assert TrainConfig(method="slim", num_sampled=0).num_sampled == 0


def test_samplers_draw_what_they_should():
    space = WidthSpace(tuple(ChannelGroup(f"g{i}", 8) for i in range(5)))
    slim = SlimSampler(space, 3, seed=0)
    widths = slim.widths(0, None)
    assert len(widths) == 3 and all(torch.all(w == w[0]) for w in widths)
    layerwise = LayerwiseSampler(space, 2, seed=0)
    state = layerwise.state_dict()
    first = layerwise.widths(0, None)
    assert not torch.all(first[0] == first[0][0])
    layerwise.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(first, layerwise.widths(0, None)))


def test_proposal_budget_follows_tau_when_tau_is_given():
    """The paper regime's run (12,840 steps, M = 2, tau 140) makes 2 proposals in each of
    ceil(12840 / 140) = 92 rounds: 184, as its history holds; before, the run described itself
    with the unused default budget (1.2 * sqrt(12840) = 136)."""
    from pareco.samplers import default_num_proposals, proposal_budget

    assert proposal_budget(12840, 2, 140, None) == (184, 140)
    assert proposal_budget(12840, 2, 140, 1000) == (184, 140)  # tau decides
    # The paper's ImageNet settings agree with their 1000 proposals: 250 epochs of 1251 steps.
    assert proposal_budget(250 * 1251, 2, 625, 1000) == (1002, 625)
    # Without tau, tau follows from the budget, given or default.
    assert proposal_budget(12840, 2, None, 184) == (184, 140)
    assert default_num_proposals(12840) == 136
    assert proposal_budget(12840, 2, None, None) == (136, 189)
