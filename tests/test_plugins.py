"""Plugins and user cost metrics: a module of the user's registers a metric or a dataset, a run
names it (``plugins:`` / ``--plugins`` / ``PARECO_PLUGINS``), and train, front, export and compare
all price with it; a misbehaving price function or a plugin that does not import is one line."""

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from test_train import TINY

import pareco
from pareco import cli, models, plugins
from pareco.config import ConfigError, TrainConfig, cost_names
from pareco.cost_metrics import (
    MetricError,
    Pricer,
    get_metric,
    names,
    register_cost_metric,
    unregister_metric,
)


@pytest.fixture
def clean_registry():
    """Whatever a test registers or imports as a plugin is gone afterwards."""
    metrics, modules = set(names()), set(sys.modules)
    yield
    for name in set(names()) - metrics:
        unregister_metric(name)
    for mod in set(sys.modules) - modules:
        if mod.startswith("plugin_"):
            del sys.modules[mod]


@pytest.fixture
def net():
    model = models.create("smallnet", num_classes=10, in_channels=1, width=4)
    return pareco.slim(model, torch.zeros(1, 1, 12, 12))


def write_module(folder, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


def _doc_example(name: str) -> str:
    """A plugin of docs/extending.md, so the page's examples are the ones tested."""
    text = (Path(__file__).parent.parent / "docs" / "extending.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    (block,) = [b for b in blocks if b.startswith(f"# {name}")]
    return block


ENERGY = _doc_example("energy_metric.py")


def test_a_registered_metric_prices_batches_and_is_an_objective(net, clean_registry):
    @register_cost_metric("energy", unit="nJ")
    def energy(net, alpha):
        return 0.9 * net.cost(alpha, "macs") + 2.5 * net.cost(alpha, "memory")

    assert "energy" in cost_names() and get_metric("energy").unit == "nJ"
    assert TrainConfig(cost="energy").cost == "energy"
    pricer = Pricer(net)
    alphas = net.space.sample(5, generator=torch.Generator().manual_seed(0))
    expected = 0.9 * net.cost(alphas, "macs") + 2.5 * net.cost(alphas, "memory")
    torch.testing.assert_close(pricer.cost(alphas, "energy"), expected)
    full = pricer.cost(net.space.largest(), "energy")
    assert full.dim() == 0
    torch.testing.assert_close(pricer.ratio(alphas, "energy"), expected / full)
    assert "energy" in pricer.available("objective")
    # the ratio grows with the width along a uniform sweep (the search relies on it)
    sweep = torch.stack([net.space.uniform(t) for t in (0.42, 0.6, 0.8, 1.0)])
    assert bool((pricer.ratio(sweep, "energy").diff() > 0).all())


def test_names_are_checked_and_builtins_are_never_replaced(clean_registry):
    def price(net, alpha):
        return net.cost(alpha, "macs")

    for bad in ("two words", "a,b", "x=y", ""):
        with pytest.raises(MetricError, match="lowercase word"):
            register_cost_metric(bad)(price)
    with pytest.raises(MetricError, match=r"'flops' is already registered$"):
        register_cost_metric("flops", replace=True)(price)
    register_cost_metric("energy")(price)
    with pytest.raises(MetricError, match="pass replace=True"):
        register_cost_metric("energy")(price)
    register_cost_metric("energy", unit="J", replace=True)(price)
    assert get_metric("energy").unit == "J"
    with pytest.raises(MetricError, match="pareco's own"):
        unregister_metric("memory")
    with pytest.raises(ConfigError, match="register it in a module named by plugins"):
        TrainConfig(cost="joules")


@pytest.mark.parametrize(
    "body, message",
    [
        ("return net.cost(alpha, 'macs')[:1]", r"one value per width vector \(shape \(6,\)\)"),
        ("return -net.cost(alpha, 'macs')", "finite and >= 0"),
        ("return net.cost(alpha, 'macs') * float('nan')", "finite and >= 0"),
        ("return 1.0 / net.cost(alpha, 'macs')", "must grow with the width"),
        ("return net.cost(alpha, 'macs') * 0", "the full network costs 0.0"),
        ("raise KeyError('fc')", "price function failed on 6 width vectors .KeyError: 'fc'."),
    ],
)
def test_a_misbehaving_price_function_is_one_line(net, clean_registry, body, message):
    namespace: dict = {}
    exec(f"def price(net, alpha):\n    {body}\n", namespace)
    register_cost_metric("broken")(namespace["price"])
    with pytest.raises(MetricError, match=message) as err:
        Pricer(net).ratio_fn("broken")
    assert "\n" not in str(err.value) and str(err.value).startswith("cost metric 'broken'")


def test_a_plugin_that_does_not_import_is_one_line(tmp_path, monkeypatch, clean_registry, capsys):
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "plugin_broken", "import numpy_nonexistent_module\n")
    with pytest.raises(ConfigError, match="cannot import plugin 'plugin_broken' "
                                          r"\(ModuleNotFoundError"):  # fmt: skip
        TrainConfig(plugins=["plugin_broken"])
    with pytest.raises(ConfigError, match="cannot import plugin 'plugin_nowhere'"):
        TrainConfig(plugins=["plugin_nowhere"])
    monkeypatch.setattr(plugins, "_loaded_environment", False)
    monkeypatch.setenv(plugins.ENV_VAR, "plugin_nowhere")
    for _ in range(2):  # said every time, not only on the first call of the process
        assert cli.main(["models"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pareco: error: PARECO_PLUGINS: cannot import plugin 'plugin_")
        assert len(err.splitlines()) == 1
    with pytest.raises(ConfigError, match="PARECO_PLUGINS: cannot import plugin 'plugin_nowhere'"):
        TrainConfig()


def test_the_environment_variable_loads_plugins_once(tmp_path, monkeypatch, clean_registry):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "plugin_env_energy", ENERGY)
    monkeypatch.setattr(plugins, "_loaded_environment", False)
    monkeypatch.setenv(plugins.ENV_VAR, " plugin_env_energy , ")
    assert "energy" not in names()
    assert TrainConfig(cost="energy").cost == "energy"
    plugins.load_environment()  # a second call imports nothing again (no "already registered")


def test_a_model_module_may_register_the_metric_it_is_trained_under(
    tmp_path, monkeypatch, clean_registry
):
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "plugin_model_energy", ENERGY + """
    def build(num_classes=10, in_channels=1):
        return pareco.models.create("smallnet", num_classes=num_classes,
                                    in_channels=in_channels, width=4)
    """)  # fmt: skip
    config = TrainConfig(model="plugin_model_energy:build", cost="energy")
    assert config.cost == "energy"


def test_a_plugin_dataset_is_named_by_a_run(tmp_path, monkeypatch, clean_registry):
    from pareco.data import dataset_names, registry

    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "plugin_dataset", """
    from pareco.data import SyntheticSpec, make_synthetic, register_dataset

    register_dataset("plugin-blobs", lambda path, size, synthetic: make_synthetic(
        SyntheticSpec(num_train=64, num_test=16, num_classes=2, shape=(1, 8, 8))))
    """)  # fmt: skip
    try:
        assert TrainConfig(data="plugin-blobs", plugins=["plugin_dataset"]).data == "plugin-blobs"
        assert "plugin-blobs" in dataset_names()
    finally:
        registry._REGISTRY.pop("plugin-blobs", None)


def test_the_dataset_example_of_the_docs_loads(tmp_path, monkeypatch, clean_registry):
    import numpy as np

    from pareco.data import load_dataset, registry

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "plugin_npz.py").write_text(_doc_example("npz_data.py"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz",
             train_x=rng.integers(0, 255, (60, 1, 8, 8), dtype=np.uint8),
             train_y=np.arange(60) % 3, test_x=rng.integers(0, 255, (12, 1, 8, 8), dtype=np.uint8),
             test_y=np.arange(12) % 3)  # fmt: skip
    try:
        assert TrainConfig(data="npz", plugins=["plugin_npz"]).data == "npz"
        data = load_dataset("npz", tmp_path, val_size=6, calib_size=6)
        assert data.split_sizes() == {"train": 48, "val": 6, "calib": 6, "test": 12}
        assert data.num_classes == 3
    finally:
        registry._REGISTRY.pop("npz", None)


@pytest.mark.slow
def test_a_run_keeps_its_plugins_for_front_export_and_compare(
    tmp_path, monkeypatch, clean_registry, capsys
):
    """train --plugins → config.json keeps them → a fresh process (registry emptied here) finds
    the metric again for front, export --cost energy and compare --cost energy."""
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "plugin_energy", ENERGY)
    config = tmp_path / "tiny.yaml"
    tiny = {**TINY, "num_proposals": 8, "warmup_proposals": 3, "epochs": 1}
    config.write_text(yaml.safe_dump(tiny))
    run = tmp_path / "run"
    argv = ["train", "--config", str(config), "--plugins", "plugin_energy", "--cost", "energy",
            "--out", str(run), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert json.loads((run / "config.json").read_text())["plugins"] == ["plugin_energy"]
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert history and all(0 < r["cost"] <= 1 for r in history if "cost" in r)

    unregister_metric("energy")  # as a new process would start
    del sys.modules["plugin_energy"]
    assert cli.main(["front", str(run), "--cost", "energy", "--no-progress"]) == 0
    assert "energy ratio" in capsys.readouterr().out.splitlines()[0]
    front = json.loads((run / "front.json").read_text())
    assert front["cost"] == "energy" and "energy" in front["fronts"]
    assert all(0 < p["energy_ratio"] <= 1 for p in front["points"])

    unregister_metric("energy")
    del sys.modules["plugin_energy"]
    out = tmp_path / "small"
    argv = ["export", str(run), "--cost", "energy", "--budget", "0.7", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["cost_ratios"]["energy"] <= 0.7 and report["costs"]["energy"] > 0

    unregister_metric("energy")
    del sys.modules["plugin_energy"]
    assert cli.main(["compare", str(run), str(run), "--cost", "energy"]) == 0
    assert "energy" in capsys.readouterr().out
