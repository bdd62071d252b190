"""The cost metric registry: one object per metric, read by config, CLI, front and export."""

import pytest
import torch

import pareco
from pareco import budget, cli, compare, front, models, report
from pareco.config import ConfigError, TrainConfig, cost_names
from pareco.cost_metrics import (
    Metric,
    Pricer,
    UnknownMetric,
    all_metrics,
    get_metric,
    names,
    register_metric,
)


def test_the_registry_lists_each_metric_once_with_its_roles():
    assert names() == ("macs", "flops", "memory", "params", "latency")
    assert names("objective") == ("flops", "memory", "latency") == cost_names()
    assert names("front") == ("flops", "memory", "params", "latency")
    assert names("front", tables=False) == front.COSTS == ("flops", "memory", "params")
    assert front.ALL_METRICS == ("macs", "flops", "memory", "params")
    assert front.PLOTTED_COSTS == ("flops", "memory")
    assert set(front.COST_UNITS) == set(names()) and front.COST_UNITS["latency"] == "ms"
    assert [m.name for m in all_metrics() if m.needs_table] == ["latency"]
    assert get_metric("latency").show(12.3456) == "12.346 ms"


def test_an_unknown_metric_is_one_line_listing_the_known_ones():
    with pytest.raises(UnknownMetric) as err:
        get_metric("energy")
    assert str(err.value) == (
        "unknown cost 'energy'; choose one of macs, flops, memory, params, latency"
    )
    with pytest.raises(UnknownMetric, match="unknown search cost 'params'; choose one of flops"):
        get_metric("params", "objective")
    assert get_metric(" FLOPs ").name == "flops"
    with pytest.raises(ValueError, match="already registered"):
        register_metric(Metric("flops", "FLOPs", "FLOPs", True, True, True))


def test_config_and_cli_read_the_registry(capsys):
    with pytest.raises(ConfigError, match="cost must be one of flops, memory, latency"):
        TrainConfig(cost="params")
    with pytest.raises(ConfigError, match="cost latency needs latency_table"):
        TrainConfig(cost="latency")
    assert TrainConfig(cost="latency", latency_table="t.json").latency_table == "t.json"
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "{flops,memory,latency}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    assert "flops, memory, params or latency" in capsys.readouterr().out


def test_front_costs_are_checked_against_what_a_front_has():
    assert front.check_cost("Memory") == "memory"
    assert front.check_cost("latency") == "latency"  # a run may have a table
    with pytest.raises(front.FrontError, match="unknown front cost 'macs'"):
        front.check_cost("macs")
    plain = {"fronts": {"flops": [], "memory": [], "params": []}}
    with pytest.raises(front.FrontError, match="this front has no latency cost"):
        front.check_cost("latency", plain)
    timed = {"fronts": {**plain["fronts"], "latency": []}, "full_network": {"latency": 1.0}}
    assert front.check_cost("latency", timed) == "latency"
    assert front.front_costs(timed)[-1] == "latency" and front.plotted_costs(plain) == (
        "flops",
        "memory",
    )


def test_pricer_prices_exact_metrics_as_the_net_and_needs_a_table_for_latency():
    model = models.create("smallnet", num_classes=10, in_channels=1, width=4)
    net = pareco.slim(model, torch.zeros(1, 1, 12, 12))
    pricer = Pricer(net)
    alphas = net.space.sample(7, generator=torch.Generator().manual_seed(0))
    for m in ("macs", "flops", "memory", "params"):
        assert torch.equal(pricer.cost(alphas, m), net.cost(alphas, m))
        torch.testing.assert_close(pricer.ratio(alphas, m), net.cost_ratio(alphas, m))
    assert pricer.available() == ("macs", "flops", "memory", "params")
    with pytest.raises(UnknownMetric, match="needs a latency table"):
        pricer.ratio_fn("latency")


def _timed_front(ratios, val, run):
    points = [
        {"id": i, "flops_ratio": c, "memory_ratio": c, "params_ratio": c, "latency_ratio": c,
         "latency": 4.0 * c, "val_accuracy": v, "test_accuracy": v, "alpha": [c],
         "channels": [round(10 * c)], "source": "history"}
        for i, (c, v) in enumerate(zip(ratios, val))
    ]  # fmt: skip
    ids = list(range(len(points)))
    return {"run": run, "method": "pareco", "cost": "latency", "model": "smallnet",
            "model_kwargs": {}, "data": "synthetic", "input_shape": [1, 12, 12],
            "points": points, "full_network": {"latency": 4.0},
            "fronts": {"flops": ids, "memory": ids, "params": ids, "latency": ids},
            "groups": [{"name": "g0", "size": 10}]}  # fmt: skip


def test_pick_and_compare_accept_latency_where_fronts_have_it():
    a = _timed_front([0.2, 0.5, 1.0], [0.5, 0.7, 0.9], "a")
    b = _timed_front([0.4, 1.0], [0.6, 0.8], "b")
    assert budget.pick_for_budget(a, "latency", 0.6)["id"] == 1
    result = compare.compare_fronts([a, b], ["a", "b"], "latency")
    assert result["cost"] == "latency" and result["cost_range"] == [0.4, 1.0]
    assert "| a | pareco | latency | 3 |" in report.compare_markdown(result)
    table = report.format_front_table({**a, "metrics": {"latency": {
        "cost_range": [0.2, 1.0], "mean_test_error": 0.3, "hypervolume": 0.5,
        "accuracy_at": []}}, "samples": {"val": 10, "test": 10}})  # fmt: skip
    assert "latency" in table.splitlines()[0] and "2.000 ms" in table
    plain = {**b, "fronts": {k: v for k, v in b["fronts"].items() if k != "latency"}}
    with pytest.raises(front.FrontError, match="this front has no latency cost"):
        compare.compare_fronts([a, plain], ["a", "plain"], "latency")
