"""Channel sorting: the full network is the same function afterwards (eval and train mode),
every tensor of a group is permuted, sub-networks still export exactly, the criteria order
channels."""

import copy
import warnings
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from gallery import GALLERY
from models_for_tests import CUSTOM
from timm_without_torchvision import import_timm

import pareco
from pareco import models
from pareco.sort_channels import _sites, permute_channels, sort_channels

ZOO = {
    "resnet20": ({}, (1, 3, 32, 32)),
    "resnet18": ({"small_input": True}, (1, 3, 32, 32)),
    "mobilenetv2": ({"stem": "cifar"}, (1, 3, 32, 32)),
    "smallnet": ({}, (1, 1, 28, 28)),
}


def _randomize(model: torch.nn.Module) -> None:
    """Non-trivial norms, statistics and gains: a permutation forgotten anywhere must show."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
        for p in model.parameters():
            if p.ndim <= 1:
                p.add_(torch.rand_like(p) * 0.5)


def _zoo(name):
    kw, shape = ZOO[name]
    torch.manual_seed(0)
    model = models.create(name, num_classes=7, in_channels=shape[1], **kw)
    _randomize(model)
    net = pareco.slim(model, torch.randn(shape), ignored=models.entry(name).ignored)
    return net, (torch.randn(4, *shape[1:]),), {}


def _gallery(name):
    cls, shape, _ = GALLERY[name]
    torch.manual_seed(0)
    model = cls()
    _randomize(model)
    return pareco.slim(model, torch.randn(shape)), (torch.randn(4, *shape[1:]),), {}


def _custom(name):
    cls, shape = CUSTOM[name]
    torch.manual_seed(1)
    model = cls()
    _randomize(model)
    return pareco.slim(model, torch.randn(shape)), (torch.randn(4, *shape[1:]),), {}


def _third_party(name):
    from test_slim_models import _hf, _timm

    torch.manual_seed(0)
    model = (_hf if name.startswith("hf_") else _timm)(name).eval()
    _randomize(model)
    x = torch.randn(4, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name.startswith("hf_"):
            return (
                pareco.slim(model, example_kwargs={"pixel_values": x[:1]}),
                (),
                {"pixel_values": x},
            )
        return pareco.slim(model, x[:1]), (x,), {}


def _logits(out):
    return out.logits if hasattr(out, "logits") else out


def _outputs(net, args, kwargs, train: bool):
    """Full-width logits in float64 (so that only a wrong permutation, never rounding, shows)."""
    net.train(train).double()
    for m in net.modules():  # dropout masks follow positions, not channels: keep them off
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.eval()
    torch.manual_seed(0)  # the same stochastic depth draws on both sides
    args = [a.double() for a in args]
    kwargs = {k: v.double() for k, v in kwargs.items()}
    try:
        with torch.no_grad(), mock.patch.object(F, "dropout", lambda x, *a, **k: x):
            return _logits(net(*args, **kwargs))
    finally:
        net.float()


def _random_perms(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {i: torch.randperm(grp.size, generator=g) for i, grp in enumerate(net.space.groups)}


def _assert_close(a, b, what):
    diff = (a - b).abs().max().item()
    scale = max(b.abs().max().item(), 1e-12)
    assert diff <= 1e-5 * scale, f"{what}: max abs diff {diff:.3g} vs output scale {scale:.3g}"


def _check_same_function(net, args, kwargs, sort):
    """``sort(net)`` on a copy keeps the full network's outputs in eval mode, in train mode
    (batch statistics), and in eval mode again after the running statistics were updated."""
    other = copy.deepcopy(net)
    before = {(id(s.module), s.name): s.tensor.clone() for s in _sites(other)}
    report = sort(other)
    _assert_close(_outputs(other, args, kwargs, False), _outputs(net, args, kwargs, False), "eval")
    _assert_close(_outputs(other, args, kwargs, True), _outputs(net, args, kwargs, True), "train")
    _assert_close(
        _outputs(other, args, kwargs, False), _outputs(net, args, kwargs, False), "eval after train"
    )
    return other, before, report


CASES = (
    [
        pytest.param(_zoo, n, id=f"zoo-{n}", marks=[pytest.mark.slow] if n == "resnet18" else [])
        for n in ZOO
    ]
    + [pytest.param(_gallery, n, id=f"gallery-{n}") for n in GALLERY]
    + [pytest.param(_custom, n, id=f"custom-{n}") for n in CUSTOM]
)
timm = import_timm()
THIRD = ["hf_resnet", "hf_convnext", "hf_vit", "hf_mobilenetv2"]
if timm is not None:
    THIRD += ["timm_resnet", "timm_efficientnet", "timm_convnext", "timm_mobilenetv3"]


def _check_random_permutation(net, args, kwargs):
    perms = _random_perms(net)
    other, before, _ = _check_same_function(net, args, kwargs, lambda n: permute_channels(n, perms))
    # every tensor the plan slices along a group changed; the others did not
    moved = {c for c, p in perms.items() if not torch.equal(p, torch.arange(len(p)))}
    for s in _sites(other):
        touched = any(c in moved for c, _, _ in s.segments)
        changed = not torch.equal(s.tensor, before[id(s.module), s.name])
        if touched and before[id(s.module), s.name].unique().numel() > 1:
            assert changed, f"{type(s.module).__name__}.{s.name} (dim {s.dim}) was not permuted"
    return other


@pytest.mark.parametrize(("build", "name"), CASES)
def test_permutation_keeps_the_full_network(build, name):
    net, args, kwargs = build(name)
    _check_random_permutation(net, args, kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name", THIRD)
def test_permutation_keeps_third_party_models(name):
    pytest.importorskip("transformers")
    net, args, kwargs = _third_party(name)
    _check_random_permutation(net, args, kwargs)


@pytest.mark.parametrize("importance", ["l1", "l2", "bn", "taylor"])
@pytest.mark.parametrize(
    ("build", "name"),
    [
        (_zoo, "resnet20"),
        (_zoo, "mobilenetv2"),
        (_gallery, "densenet"),
        (_gallery, "convnext"),
        (_gallery, "gates"),
    ],
)
def test_sorting_keeps_the_full_network_and_exports(build, name, importance):
    net, args, kwargs = build(name)
    x = args[0]
    batches = [(x, torch.randint(0, 5, (len(x),)))]
    loss = lambda logits, y: torch.nn.functional.cross_entropy(logits, y % logits.shape[1])  # noqa: E731
    sorted_net, _, report = _check_same_function(
        net, args, kwargs,
        lambda n: sort_channels(n, importance, batches=batches, loss_fn=loss),
    )  # fmt: skip
    assert len(report.groups) == net.space.dim
    assert any(g.moved for g in report.groups)
    sorted_net.eval()
    for seed in range(2):
        alpha = net.space.sample(1, torch.Generator().manual_seed(seed))[0]
        with torch.no_grad(), sorted_net.widths(alpha):
            want = sorted_net(*args, **kwargs)
        sub = sorted_net.export(alpha).eval()
        with torch.no_grad():
            torch.testing.assert_close(sub(*args, **kwargs), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("importance", ["l1", "l2", "bn"])
def test_sorted_channels_come_in_order(importance):
    """A second sort finds every group already in order: the permutation was applied the way
    round it was meant (new channel i = old channel perm[i]), in the tensors it scored."""
    net, _, _ = _zoo("resnet20")
    first = sort_channels(net, importance)
    assert sum(g.moved for g in first.groups) > 0
    second = sort_channels(net, importance)
    assert [g.moved for g in second.groups] == [0] * net.space.dim
    for g in second.groups:
        assert torch.all(g.scores[:-1] >= g.scores[1:] - 1e-6)


def test_bn_criterion_orders_by_gamma():
    net, _, _ = _zoo("smallnet")
    bn = net.module.stem[1]
    gamma = bn.weight.detach().abs().clone()
    report = sort_channels(net, "bn")
    stem = report.groups[0]
    assert stem.criterion == "bn"
    # the stem group is the stem BN alone: its order is that of |gamma|
    torch.testing.assert_close(bn.weight.detach().abs(), gamma[stem.permutation])
    assert torch.all(bn.weight.detach().abs()[:-1] >= bn.weight.detach().abs()[1:])


def test_groups_without_norm_fall_back_to_l1():
    net, _, _ = _zoo("smallnet")
    report = sort_channels(net, "bn")
    by_name = {g.name: g for g in report.groups}
    head = next(g for n, g in by_name.items() if n.startswith("head"))
    assert head.criterion == "l1" and "no norm" in head.note


def test_a_forgotten_buffer_is_caught():
    """The equality check of these tests sees a BN statistic left unpermuted."""
    net, args, kwargs = _zoo("resnet20")
    other = copy.deepcopy(net)
    bn = next(m for m in other.modules() if isinstance(m, torch.nn.BatchNorm2d))
    saved = bn.running_mean.clone()
    permute_channels(other, _random_perms(other))
    bn.running_mean.copy_(saved)
    with pytest.raises(AssertionError):
        _assert_close(
            _outputs(other, args, kwargs, False), _outputs(net, args, kwargs, False), "eval"
        )


def test_grouped_conv_groups_are_left_unsorted():
    net, _, _ = _gallery("resnext")
    report = sort_channels(copy.deepcopy(net), "l1")
    for g in report.groups:
        if g.criterion == "none":
            assert g.moved == 0 and g.note


def test_bad_arguments():
    net, _, _ = _zoo("smallnet")
    with pytest.raises(ValueError, match="importance must be one of"):
        sort_channels(net, "magnitude")
    with pytest.raises(ValueError, match="needs batches"):
        sort_channels(net, "taylor")
    with pytest.raises(ValueError, match="not a permutation"):
        permute_channels(net, {0: torch.zeros(net.space.groups[0].size, dtype=torch.long)})
