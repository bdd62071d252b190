"""Latency tables on a deterministic fake runtime: structure, never wall-clock figures."""

import json
import math
import shutil

import pytest
import torch
from test_train import TINY

import pareco
from pareco import cli, models
from pareco.build import build_data, build_net
from pareco.config import TrainConfig
from pareco.latency import (
    LatencyError,
    bind,
    build_table,
    discover_layers,
    interpolate,
    load_for,
    load_table,
    make_runtime,
    median_ms,
    producible_channels,
    producible_sizes,
    register_runtime,
    suggest_round_to,
)
from pareco.latency.layers import record_call
from pareco.trainer import Trainer

SLOPE, INTERCEPT = 2.0, 0.5


def fake_layer_ms(spec, sizes):
    """Bilinear in (c_in, c_out), linear in c: the table's interpolation is exact for it."""
    hw = math.prod(spec.get("hw", [spec.get("length") or 1]))  # batchnorm1d: its length
    op = spec["op"]
    if op in ("conv2d", "conv1d"):
        k = math.prod(spec["kernel"])
        stride = math.prod(spec["stride"])
        return 1e-5 * sizes["c_in"] * sizes["c_out"] * k * hw / spec["groups"] / stride + 0.01
    if op == "linear":
        return 1e-4 * sizes["c_in"] * sizes["c_out"] * spec["rows"] + 0.02
    per = spec.get("per_channel", hw)
    return 1e-4 * sizes["c"] * per + 0.003 + 0.001 * len(op)


class FakeRuntime:
    """Layers cost ``fake_layer_ms``; a whole model ``SLOPE * Σ layers + INTERCEPT``."""

    name = "fake"
    clock_name = "fake"

    def __init__(self, **_):
        self.layer_calls = 0
        self.model_calls = 0

    def describe(self):
        return {"name": "fake", "device": "cpu", "threads": 1, "clock": "fake"}

    def layer_ms(self, spec, sizes):
        self.layer_calls += 1
        return fake_layer_ms(spec, sizes)

    def model_ms(self, model, example):
        self.model_calls += 1
        total = []

        def hook(m, args, out):
            rec = record_call(m, args[0], out)
            if rec is not None:
                total.append(fake_layer_ms(*rec))

        handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
        try:
            with torch.no_grad():
                model.eval()(example)
        finally:
            for h in handles:
                h.remove()
        return SLOPE * sum(total) + INTERCEPT


register_runtime("fake", FakeRuntime)


class InvertedRuntime(FakeRuntime):
    """Layers cost less the wider they are: narrower sub-networks are predicted slower."""

    def layer_ms(self, spec, sizes):
        return 1.0 / fake_layer_ms(spec, sizes)

    def model_ms(self, model, example):
        layers = []
        hooks = [m.register_forward_hook(lambda m, a, o: layers.append(record_call(m, a[0], o)))
                 for m in model.modules() if not list(m.children())]  # fmt: skip
        with torch.no_grad():
            model.eval()(example)
        for h in hooks:
            h.remove()
        return SLOPE * sum(1.0 / fake_layer_ms(*r) for r in layers if r) + INTERCEPT


def _net(name="smallnet", size=(1, 12, 12), **kw):
    kwargs = {"width": 4} if name == "smallnet" else {"stem": "cifar"}
    model = models.create(name, num_classes=10, in_channels=size[0], **kwargs)
    return pareco.slim(model, torch.zeros(1, *size), ignored=models.entry(name).ignored, **kw)


@pytest.fixture(scope="module")
def small():
    net = _net()
    return net, build_table(net, FakeRuntime(), model="smallnet", samples=6, probe_steps=False)


def test_median_ms_uses_the_injected_clock():
    ticks = iter([0.0, 0.001, 1.0, 1.003, 2.0, 2.002])  # three calls: 1, 3, 2 ms
    calls = []
    ms = median_ms(lambda: calls.append(1), warmup=2, repeats=3, clock=lambda: next(ticks))
    assert ms == pytest.approx(2.0)
    assert len(calls) == 5


def test_layers_follow_the_channel_counts_exactly():
    net = _net()
    layers, notes = discover_layers(net)
    ops = [layer.kind for layer in layers]
    assert any('"op":"conv2d"' in k for k in ops) and any('"op":"linear"' in k for k in ops)
    assert any('"op":"batchnorm2d"' in k for k in ops) and any('"op":"relu"' in k for k in ops)
    assert notes == []
    g = torch.Generator().manual_seed(3)
    for alpha in net.space.sample(4, generator=g):
        c = net.space.channels(alpha)
        sub = net.export(alpha).eval()
        seen = _calls_of(sub, torch.zeros(1, 1, 12, 12))
        assert len(seen) == len(layers)
        for layer, (_, sizes) in zip(layers, seen):
            want = torch.tensor([float(sizes[d]) for d in layer.dims], dtype=torch.float64)
            assert torch.equal(layer.sizes(c[None])[0], want)


def _calls_of(model, x):
    seen = []
    handles = [
        m.register_forward_hook(lambda m, a, o: seen.append(record_call(m, a[0], o)))
        for m in model.modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return [s for s in seen if s is not None]


def test_table_grid_covers_every_width_the_space_can_produce():
    net = _net(round_to=2)
    per_group = producible_channels(net.space)
    # brute force: the channel counts of many random widths, and the two ends
    alphas = torch.cat([net.space.sample(4000, generator=torch.Generator().manual_seed(0)),
                        net.space.smallest()[None], net.space.largest()[None]])  # fmt: skip
    c = net.space.channels(alphas)
    for g in range(c.shape[1]):
        assert set(c[:, g].tolist()) <= set(per_group[g])
        assert all(v % 2 == 0 or v == net.space.sizes[g] for v in per_group[g] if g < net.space.dim)
    exact = build_table(net, FakeRuntime(), max_points=1000, samples=0, probe_steps=False)
    coarse = build_table(net, FakeRuntime(), max_points=3, samples=0, probe_steps=False)
    for layer in exact.layers:
        sizes = producible_sizes(layer, per_group)
        for d, values in enumerate(sizes):
            assert set(values) <= set(exact.kinds[layer.kind].grid[d])  # every size measured
            grid = coarse.kinds[layer.kind].grid[d]
            assert grid[0] <= min(values) and grid[-1] >= max(values)  # none extrapolated
            assert len(grid) <= 3
        got = layer.sizes(c).round().long()
        for d in range(len(layer.dims)):
            assert set(got[:, d].tolist()) <= set(sizes[d])


def test_prediction_and_correction_are_exact_on_the_fake_runtime(small):
    net, table = small
    assert table.slope == pytest.approx(SLOPE) and table.intercept == pytest.approx(INTERCEPT)
    assert len(table.samples) == 6
    model = bind(table, net)
    rt = FakeRuntime()
    g = torch.Generator().manual_seed(7)
    alphas = torch.cat([net.space.sample(5, generator=g), net.space.smallest()[None]])
    predicted = model.predict_alpha(alphas)
    example = torch.zeros(1, 1, 12, 12)
    measured = torch.tensor(
        [rt.model_ms(net.export(a), example) for a in alphas], dtype=torch.float64
    )
    torch.testing.assert_close(predicted, measured, rtol=1e-9, atol=1e-9)
    assert model.predict_alpha(alphas[0]).ndim == 0


def test_prediction_is_vectorized_over_many_widths(small):
    net, table = small
    model = bind(table, net)
    alphas = net.space.sample(20_000, generator=torch.Generator().manual_seed(0))
    many = model.predict_alpha(alphas)
    assert many.shape == (20_000,) and many.dtype == torch.float64
    torch.testing.assert_close(many[:5], torch.stack([model.predict_alpha(a) for a in alphas[:5]]))


def test_mobilenetv2_depthwise_layers_are_one_axis_and_exact():
    net = _net("mobilenetv2", (3, 32, 32))
    table = build_table(net, FakeRuntime(), samples=3, probe_steps=False)
    assert any(k.dims == ("c",) and k.spec["op"] == "dwconv2d" for k in table.kinds.values())
    model = bind(table, net)
    alpha = net.space.sample(1, generator=torch.Generator().manual_seed(1))[0]
    ms = FakeRuntime().model_ms(net.export(alpha), torch.zeros(1, 3, 32, 32))
    assert float(model.predict_alpha(alpha)) == pytest.approx(ms, rel=1e-9)


class TextConvNet(torch.nn.Module):
    """Token ids in: an embedding, a 1-d conv, a depthwise 1-d conv, 1-d batch norms, a head."""

    def __init__(self, vocab: int = 50, width: int = 8) -> None:
        super().__init__()
        nn = torch.nn
        self.embed = nn.Embedding(vocab, width)
        self.conv = nn.Conv1d(width, 2 * width, 3, padding=1)
        self.norm = nn.BatchNorm1d(2 * width)
        self.dw = nn.Conv1d(2 * width, 2 * width, 5, padding=2, groups=2 * width, bias=False)
        self.norm2 = nn.BatchNorm1d(2 * width)
        self.act = nn.ReLU()
        self.head = nn.Linear(2 * width, 3)

    def forward(self, ids):
        h = self.act(self.norm(self.conv(self.embed(ids).transpose(1, 2))))
        return self.head(self.act(self.norm2(self.dw(h))).mean(dim=2))


def test_text_layers_are_priced_and_the_prediction_is_exact():
    """1-d convs (and depthwise ones), 1-d batch norms and embeddings are table layers: their
    sizes follow the channel counts exactly and the prediction equals the fake runtime's sum."""
    ids = torch.randint(0, 50, (1, 16), generator=torch.Generator().manual_seed(0))
    net = pareco.slim(TextConvNet(), ids)
    table = build_table(net, FakeRuntime(), samples=3, probe_steps=False)
    ops = {k.spec["op"] for k in table.kinds.values()}
    assert {"embedding", "conv1d", "dwconv1d", "batchnorm1d", "linear", "relu"} <= ops
    layers, notes = discover_layers(net)
    assert notes == []
    model = bind(table, net)
    for alpha in net.space.sample(3, generator=torch.Generator().manual_seed(2)):
        sub = net.export(alpha).eval()
        seen = _calls_of(sub, ids)
        c = net.space.channels(alpha)
        for layer, (_, sizes) in zip(layers, seen, strict=True):
            want = torch.tensor([float(sizes[d]) for d in layer.dims], dtype=torch.float64)
            assert torch.equal(layer.sizes(c[None])[0], want)
        ms = FakeRuntime().model_ms(sub, ids)
        assert float(model.predict_alpha(alpha)) == pytest.approx(ms, rel=1e-9)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_runtimes_build_and_time_the_text_layers(name):
    if name == "onnxruntime":
        pytest.importorskip("onnxruntime")
    t = iter(range(10_000))
    rt = make_runtime(name, threads=1, warmup=1, repeats=3, clock=lambda: next(t) * 1e-3)
    conv = {"op": "conv1d", "kernel": [3], "stride": [1], "padding": [1], "dilation": [1],
            "bias": True, "hw": [16], "groups": 1}  # fmt: skip
    specs = [
        (conv, {"c_in": 4, "c_out": 6}),
        ({**conv, "op": "dwconv1d"}, {"c": 4}),
        ({"op": "batchnorm1d", "length": 16}, {"c": 4}),
        ({"op": "batchnorm1d", "length": 0}, {"c": 4}),
        ({"op": "embedding", "vocab": 50, "rows": 16}, {"c": 8}),
    ]
    for spec, sizes in specs:
        assert rt.layer_ms(spec, sizes) == pytest.approx(1.0)


def test_table_round_trip(small, tmp_path):
    net, table = small
    path = table.save(tmp_path / "t.json")
    again = load_table(path)
    assert again.to_dict() == table.to_dict()
    a = net.space.sample(50, generator=torch.Generator().manual_seed(2))
    assert torch.equal(load_for(net, path).predict_alpha(a), bind(table, net).predict_alpha(a))


def test_a_table_of_another_model_is_refused_in_one_line(small, tmp_path):
    _, table = small
    path = table.save(tmp_path / "t.json")
    for other in (_net(round_to=2), _net(min_multiplier=0.5), _net(size=(1, 16, 16))):
        with pytest.raises(LatencyError, match="built for another model or width space") as err:
            load_for(other, path)
        assert "\n" not in str(err.value) and "pareco latency-table" in str(err.value)


def test_bad_table_files_are_refused(tmp_path):
    with pytest.raises(LatencyError, match="does not exist"):
        load_table(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LatencyError, match="damaged"):
        load_table(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "pareco-front"}))
    with pytest.raises(LatencyError, match="not a pareco-latency-table"):
        load_table(tmp_path / "other.json")


def test_interpolation_is_exact_on_the_grid_and_bilinear_between():
    grid = [torch.tensor([2.0, 4.0, 8.0]), torch.tensor([1.0, 3.0])]
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], dtype=torch.float64)
    pts = torch.tensor([[2.0, 1.0], [8.0, 3.0], [3.0, 2.0], [6.0, 1.0], [100.0, 0.0]])
    got = interpolate(grid, values, pts.double())
    torch.testing.assert_close(got, torch.tensor([1.0, 7.0, 2.5, 4.0, 5.0], dtype=torch.float64))
    one = interpolate([torch.tensor([1.0, 5.0])], torch.tensor([0.0, 8.0]), torch.tensor([[2.0]]))
    assert float(one[0]) == pytest.approx(2.0)


def test_round_to_is_suggested_from_steps_only():
    smooth = {c: 1.0 + 0.01 * c for c in range(32, 65)}
    assert suggest_round_to(smooth)[0] is None
    steps8 = {c: 1.0 + 0.5 * math.ceil(c / 8) for c in range(32, 65)}
    assert suggest_round_to(steps8)[0] == 8
    steps16 = {c: 1.0 + 0.5 * math.ceil(c / 16) for c in range(32, 65)}
    assert suggest_round_to(steps16)[0] == 16


def test_probe_steps_record_a_suggestion(small):
    net = _net("mobilenetv2", (3, 32, 32))
    table = build_table(net, FakeRuntime(), samples=0, probe_steps=True)
    assert "suggested" in table.steps and table.steps["suggested"] is None  # the fake is smooth


def test_make_runtime_refuses_bad_names():
    with pytest.raises(ValueError, match="unknown runtime 'tflite'; choose one of torch"):
        make_runtime("tflite")
    with pytest.raises(ValueError, match="unknown clock"):
        make_runtime("torch", clock="sundial")
    with pytest.raises(ValueError, match="one CPU thread"):
        make_runtime("torch", threads=2, clock="cpu")
    assert make_runtime("torch", threads=1, clock="cpu").describe()["clock"] == "cpu"


def test_torch_runtime_times_a_layer_and_a_model_with_a_fake_clock():
    t = iter(range(10_000))
    rt = make_runtime("torch", threads=1, warmup=1, repeats=3, clock=lambda: next(t) * 1e-3)
    spec = {"op": "conv2d", "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1],
            "dilation": [1, 1], "bias": False, "hw": [8, 8], "groups": 1}  # fmt: skip
    assert rt.layer_ms(spec, {"c_in": 3, "c_out": 5}) == pytest.approx(1.0)
    assert rt.model_ms(torch.nn.Linear(4, 2), torch.zeros(3, 4)) == pytest.approx(1.0)


def test_onnxruntime_times_a_layer():
    pytest.importorskip("onnxruntime")
    t = iter(range(10_000))
    rt = make_runtime("onnxruntime", warmup=1, repeats=3, clock=lambda: next(t) * 1e-3)
    assert rt.layer_ms({"op": "relu", "per_channel": 16}, {"c": 4}) == pytest.approx(1.0)
    assert rt.describe()["name"] == "onnxruntime"


def test_latency_needs_a_table_in_the_config():
    with pytest.raises(ValueError, match="cost latency needs latency_table"):
        TrainConfig(**{**TINY, "cost": "latency"})


@pytest.mark.slow
def test_pareco_run_with_latency_then_front_then_export_by_ms(tmp_path, capsys):
    base = TrainConfig(**{**TINY, "method": "pareco", "out": str(tmp_path / "run")})
    net = build_net(base, build_data(base))
    table_path = tmp_path / "table.json"
    build_table(net, FakeRuntime(), model="smallnet", samples=4, probe_steps=False).save(table_path)
    cfg = TrainConfig(**{**base.to_dict(), "cost": "latency", "latency_table": str(table_path)})
    Trainer(cfg, progress=False).fit()
    run = tmp_path / "run"
    assert (run / "latency_table.json").is_file()
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    model = load_for(net, table_path)
    full = float(model.predict_alpha(net.space.largest()))
    first = history[0]
    assert first["cost"] == pytest.approx(float(model.predict_alpha(first["alpha"])) / full)

    assert cli.main(["front", str(run), "--cost-sweep", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "front under latency" in out and " ms" in out
    front = json.loads((run / "front.json").read_text())
    assert "latency" in front["fronts"] and front["full_network"]["latency"] == pytest.approx(full)
    pts = [front["points"][i] for i in front["fronts"]["latency"]]
    budget = (pts[0]["latency"] + pts[-1]["latency"]) / 2

    assert cli.main(["export", str(run), "--budget-ms", f"{budget}", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "predicted" in out and "within the budget" in out
    (export_dir,) = (run / "export").iterdir()
    report = json.loads((export_dir / "report.json").read_text())
    lat = report["latency"]
    assert lat["predicted_ms"] <= budget and lat["within_budget"]
    assert lat["measured_ms"] == pytest.approx(lat["predicted_ms"], rel=1e-6)  # the fake is exact
    md = (export_dir / "report.md").read_text()
    assert "Latency on fake" in md and f"latency ≤ {budget:g} ms (predicted)" in md

    smallest = float(model.predict_alpha(net.space.smallest()))
    assert cli.main(["export", str(run), "--budget-ms", f"{smallest / 2}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"no sub-network fits {smallest / 2:g} ms" in err and err.count("\n") == 1
    assert cli.main(["export", str(run), "--budget", "0.5", "--budget-ms", "3"]) == 2
    assert "give one budget" in capsys.readouterr().err

    # a latency that falls with width (where it is flat on a device, noise can do that): the
    # smallest network is not the cheapest, and a budget at the full network's latency finds it
    inverted = build_table(net, InvertedRuntime(), model="smallnet", samples=4, probe_steps=False)
    inverted.save(run / "latency_table.json")
    (run / "front.json").unlink()
    shutil.rmtree(run / "export")
    full_ms = float(load_for(net, run / "latency_table.json").predict_alpha(net.space.largest()))
    args = ["export", str(run), "--budget-ms", f"{full_ms * 1.001}", "--no-progress"]
    assert cli.main(args) == 0, capsys.readouterr().err
    (export_dir,) = (run / "export").iterdir()
    assert json.loads((export_dir / "report.json").read_text())["latency"]["within_budget"]
    capsys.readouterr()
    assert cli.main([*args[:3], f"{full_ms / 2}", "--no-progress"]) == 2
    assert "the cheapest on the front is predicted at" in capsys.readouterr().err

    # the same table does not fit another model: the run refuses it before training
    other = TrainConfig(**{**cfg.to_dict(), "model_kwargs": {"width": 6},
                           "out": str(tmp_path / "other")})  # fmt: skip
    with pytest.raises(LatencyError, match="built for another model"):
        Trainer(other, progress=False)


def test_latency_table_command_then_a_run_refusing_it_for_another_model(tmp_path, capsys):
    out = tmp_path / "t.json"
    args = ["latency-table", "--model", "smallnet", "--model-kwargs", "width=4", "--input-size",
            "1x12x12", "--runtime", "fake", "--samples", "3", "--out", str(out)]  # fmt: skip
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "end-to-end correction: measured = 2.0000 x table sum + 0.5000 ms" in text
    assert f"wrote {out}" in text and load_table(out).model == "smallnet"
    assert cli.main([*args[:-1], str(tmp_path / "u.json"), "--runtime", "tflite"]) == 2
    assert "unknown runtime 'tflite'" in capsys.readouterr().err
    # a run of another width refuses the table before training, in one line
    train = ["train", "--model", "smallnet", "--model-kwargs", "width=6", "--data", "synthetic",
             "--synthetic", "num_train=96", "num_test=32", "shape=[1,12,12]", "--val-size", "16",
             "--batch-size", "16", "--epochs", "1", "--threads", "1", "--cost", "latency",
             "--latency-table", str(out), "--out", str(tmp_path / "run"),
             "--no-progress"]  # fmt: skip
    assert cli.main(train) == 2
    err = capsys.readouterr().err
    assert "was built for another model or width space" in err and err.count("\n") == 1
