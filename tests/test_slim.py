import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from models_for_tests import (
    CUSTOM,
    BlockerNet,
    ConcatNet,
    DataDependentNet,
    HardCodedViewNet,
    ResidualDepthwiseNet,
)
from torch.utils.flop_counter import FlopCounterMode

import pareco
from pareco import SlimError, models

ZOO = {
    "resnet20": ({}, (1, 3, 32, 32), 12),
    "resnet32": ({}, (1, 3, 32, 32), 18),
    "resnet44": ({}, (1, 3, 32, 32), 24),
    "resnet56": ({}, (1, 3, 32, 32), 30),
    "resnet18": ({}, (1, 3, 64, 64), 12),
    "mobilenetv2": ({}, (1, 3, 64, 64), 24),
    "smallnet": ({}, (1, 1, 28, 28), 5),
}
_cache: dict = {}


def zoo_net(name: str) -> tuple[pareco.SlimmableNet, torch.Tensor]:
    if name not in _cache:
        kw, shape, _ = ZOO[name]
        torch.manual_seed(0)
        model = models.create(name, num_classes=7, in_channels=shape[1], **kw)
        net = pareco.slim(model, torch.randn(shape), ignored=models.entry(name).ignored)
        _randomize_bn(net)
        _cache[name] = (net.eval(), torch.randn(2, *shape[1:]))
    return _cache[name]


def custom_net(name: str) -> tuple[pareco.SlimmableNet, torch.Tensor]:
    if name not in _cache:
        cls, shape = CUSTOM[name]
        torch.manual_seed(1)
        net = pareco.slim(cls(), torch.randn(shape))
        _randomize_bn(net)
        _cache[name] = (net.eval(), torch.randn(shape))
    return _cache[name]


def _randomize_bn(net: torch.nn.Module) -> None:
    """Non-trivial BN statistics, so that a wrong slice of them shows in the outputs."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


ALL = [("zoo", n) for n in ZOO] + [("custom", n) for n in CUSTOM]


def get(kind: str, name: str):
    return zoo_net(name) if kind == "zoo" else custom_net(name)


@pytest.mark.parametrize(("name", "expected"), [(n, v[2]) for n, v in ZOO.items()])
def test_zoo_group_counts(name, expected):
    net, _ = zoo_net(name)
    assert net.space.dim == expected


def test_custom_group_structure():
    net, _ = custom_net("residual_depthwise")
    names = [g.name for g in net.space.groups]
    assert names == ["conv0", "conv1", "pw", "hidden"]
    g0 = net.space.groups[0]
    assert set(g0.members) == {"conv0", "bn0", "conv2", "bn2", "dw", "bn_dw"}
    assert "out" in {m for g in net.space.fixed for m in g.members}
    assert custom_net("squeeze_excite")[0].space.dim == 3
    assert custom_net("flatten_map")[0].space.dim == 3


alpha_unit = st.lists(st.floats(0.0, 1.0), min_size=32, max_size=32)


def _alpha(space, unit):
    u = torch.tensor(unit[: space.dim], dtype=torch.float64)
    return space.min_multiplier + (1 - space.min_multiplier) * u


@pytest.mark.parametrize(("kind", "name"), ALL)
@settings(max_examples=6, deadline=None)
@given(unit=alpha_unit)
def test_export_matches_slimmable(kind, name, unit):
    net, x = get(kind, name)
    alpha = _alpha(net.space, unit)
    with torch.no_grad(), net.widths(alpha):
        expected = net(x)
    sub = net.export(alpha).eval()
    with torch.no_grad():
        got = sub(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("kind", "name"), ALL)
@settings(max_examples=6, deadline=None)
@given(unit=alpha_unit)
def test_costs_match_exported_model(kind, name, unit):
    net, x = get(kind, name)
    alpha = _alpha(net.space, unit)
    sub = net.export(alpha).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        sub(x[:1])
    assert net.cost(alpha, "macs").item() == counter.get_total_flops() / 2
    assert net.cost(alpha, "flops").item() == counter.get_total_flops()
    assert net.cost(alpha, "params").item() == sum(p.numel() for p in sub.parameters())


@pytest.mark.parametrize(("kind", "name"), ALL)
@settings(max_examples=15, deadline=None)
@given(unit=alpha_unit, i=st.integers(0, 31), grow=st.floats(0.0, 0.6))
def test_costs_never_decrease_when_a_multiplier_grows(kind, name, unit, i, grow):
    net, _ = get(kind, name)
    alpha = _alpha(net.space, unit)
    bigger = alpha.clone()
    j = i % net.space.dim
    bigger[j] = min(1.0, bigger[j].item() + grow)
    for metric in ("macs", "params", "memory"):
        assert net.cost(bigger, metric) >= net.cost(alpha, metric)


def test_full_network_equals_original_model():
    torch.manual_seed(0)
    model = ResidualDepthwiseNet().eval()
    x = torch.randn(3, 3, 16, 16)
    net = pareco.slim(model, x).eval()
    torch.testing.assert_close(net(x), model(x), atol=0, rtol=0)
    sub = net.export(net.space.largest()).eval()
    torch.testing.assert_close(sub(x), model(x), atol=1e-6, rtol=1e-6)


def test_slim_does_not_modify_the_users_model():
    model = ResidualDepthwiseNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = pareco.slim(model, torch.randn(1, 3, 16, 16))
    net.train()
    with net.widths(net.space.smallest()):
        net(torch.randn(4, 3, 16, 16)).sum().backward()
    assert type(model.conv0) is torch.nn.Conv2d
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_widths_context_restores_previous_widths():
    net, _ = custom_net("residual_depthwise")
    a = net.space.uniform(0.7)
    net.set_widths(a)
    with net.widths(net.space.smallest()):
        assert torch.equal(net.alpha, net.space.smallest())
    assert torch.equal(net.alpha, a)
    net.set_widths(net.space.largest())


@pytest.mark.parametrize(
    ("alpha", "message"),
    [
        (torch.ones(3), r"shape \(4,\)"),
        (torch.ones(2, 5), r"shape \(4,\)"),
        (torch.tensor([1.0, float("nan"), 1.0, 1.0]), "NaN"),
        (torch.tensor([1.0, 0.1, 1.0, 1.0]), r"\[0.42, 1\]"),
        (torch.tensor([1.0, 1.5, 1.0, 1.0]), r"\[0.42, 1\]"),
    ],
)
def test_bad_widths_are_value_errors(alpha, message):
    net, _ = custom_net("residual_depthwise")
    with pytest.raises(ValueError, match=message):
        net.set_widths(alpha)


def test_untraceable_model_gives_clear_error():
    with pytest.raises(SlimError, match="could not trace DataDependentNet"):
        pareco.slim(DataDependentNet(), torch.randn(1, 3, 8, 8))


def test_channel_concat_slims_segment_by_segment():
    x = torch.randn(2, 3, 8, 8)
    net = pareco.slim(ConcatNet(), x[:1]).eval()
    assert [g.name for g in net.space.groups] == ["a", "b", "c"]
    alpha = torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64)
    assert net.export(alpha).c.weight.shape == (8, 2 + 3, 1, 1)  # 2 of a's 4 channels, 3 of b's 6
    with net.widths(alpha):
        expected = net(x)
    torch.testing.assert_close(net.export(alpha)(x), expected)


def test_every_blocker_is_listed_at_once():
    with pytest.raises(SlimError) as info:
        pareco.slim(BlockerNet(), torch.randn(1, 3, 8, 8))
    message = str(info.value)
    assert "2 operation(s)" in message
    assert "cumsum" in message and "flip" in message
    assert "ignored=['a', 'b']" in message and "ignored='auto'" in message
    assert "models_for_tests.py" in message  # the source line of each blocker


def test_auto_keeps_blockers_at_full_width_and_says_so():
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match=r"kept 2 operation\(s\).*cumsum.*flip"):
        net = pareco.slim(BlockerNet(), x, ignored="auto")
    assert [g.name for g in net.space.groups] == ["c", "d"]
    assert sum("ignored='auto'" in n for n in net.notes) == 2
    assert "note:" in net.describe()


def test_ignored_layers_make_concat_slimmable():
    x = torch.randn(2, 3, 8, 8)
    net = pareco.slim(ConcatNet(), x, ignored=["a", "b"]).eval()
    assert [g.name for g in net.space.groups] == ["c"]
    alpha = net.space.smallest()
    with net.widths(alpha):
        expected = net(x)
    torch.testing.assert_close(net.export(alpha)(x), expected)


def test_ignored_accepts_modules_and_prefixes():
    model = models.create("resnet20")
    x = torch.randn(1, 3, 32, 32)
    full = pareco.slim(model, x)
    by_module = pareco.slim(model, x, ignored=[model.fc, model.layers[8]])
    by_prefix = pareco.slim(model, x, ignored=["layers.8"])
    assert by_module.space.dim == full.space.dim - 2  # block 8's internal and the stage-3 stream
    assert by_prefix.space.dim == by_module.space.dim
    with pytest.raises(SlimError, match="not a layer"):
        pareco.slim(model, x, ignored=["nope"])


class _Wrapped(torch.nn.Module):
    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)


def test_hard_coded_view_is_caught_at_conversion_and_its_line_named():
    x = torch.randn(1, 3, 8, 8)
    line = inspect.getsourcelines(HardCodedViewNet.forward)[1] + 1  # its `return ...view(-1, 8))`
    with pytest.raises(SlimError, match="smallest width") as err:
        pareco.slim(HardCodedViewNet(), x)
    assert f"(at models_for_tests.py:{line} `return self.fc(self.conv(x)" in str(err.value)
    with pytest.raises(SlimError, match=rf"\(at module 'body', models_for_tests.py:{line} `"):
        pareco.slim(_Wrapped(HardCodedViewNet()), x)


def test_round_to_rounds_channels_down_and_keeps_full_width():
    net = pareco.slim(models.create("resnet20"), torch.randn(1, 3, 32, 32), round_to=8)
    ch = net.space.channels(net.space.uniform(0.6))
    assert (ch % 8 == 0).all()
    assert torch.equal(net.space.channels(net.space.largest()), net.space.sizes.long())


def test_sliced_layers_get_gradients_only_inside_the_slice():
    net, _ = custom_net("residual_depthwise")
    net.train()
    net.zero_grad()
    alpha = net.space.smallest()
    conv1 = net.module.get_submodule("conv1")
    with net.widths(alpha):
        net(torch.randn(4, 3, 16, 16)).sum().backward()
        c_out, c_in = conv1.active_out, conv1.active_in
    assert c_out < conv1.out_channels and c_in < conv1.in_channels
    g = conv1.weight.grad
    assert g[:c_out, :c_in].abs().sum() > 0
    assert g[c_out:].abs().sum() == 0 and g[:, c_in:].abs().sum() == 0
    net.zero_grad()
    net.eval()


class _LinearOnly(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)


class _MostlyFixed(torch.nn.Module):
    """A wide grouped conv (kept at full width) dominates a small searchable conv."""

    def __init__(self) -> None:
        super().__init__()
        self.small = torch.nn.Conv2d(3, 4, 1)
        self.wide = torch.nn.Conv2d(4, 64, 1)
        self.norm = torch.nn.GroupNorm(4, 64)  # 4 groups of 16 channels: kept at full width
        self.conv = torch.nn.Conv2d(64, 64, 3, padding=1)
        self.norm2 = torch.nn.GroupNorm(4, 64)
        self.fc = torch.nn.Linear(64, 2)

    def forward(self, x):
        x = self.norm2(self.conv(self.norm(self.wide(self.small(x)))))
        return self.fc(x.mean((2, 3)))


def test_nothing_to_search_is_said():
    with pytest.warns(UserWarning, match="no searchable channel group"):
        net = pareco.slim(_LinearOnly(), torch.randn(1, 6))
    assert net.space.dim == 0 and "no searchable" in net.notes[-1]


def test_a_tiny_saving_is_said():
    with pytest.warns(UserWarning, match=r"keeps (9\d|100)% of the MACs.*GroupNorm"):
        net = pareco.slim(_MostlyFixed(), torch.randn(1, 3, 8, 8))
    assert net.space.dim == 1


def test_a_bare_dict_example_is_read_as_keywords_and_the_error_says_how_to_pass_it_positionally():
    class TakesDict(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.head = torch.nn.Conv2d(8, 4, 1)

        def forward(self, batch):
            return self.head(torch.relu(self.conv(batch["image"]))).mean((2, 3))

    example = {"image": torch.randn(1, 3, 8, 8)}
    with pytest.raises(SlimError, match=r"pass \(batch_dict,\) to give the model one dict"):
        pareco.slim(TakesDict(), example)
    net = pareco.slim(TakesDict(), (example,))
    assert net.space.dim == 1
