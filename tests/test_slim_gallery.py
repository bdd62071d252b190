"""Every architecture pattern of the gallery, slimmed and checked end to end."""

import copy

import numpy as np
import pytest
import torch
from gallery import GALLERY, DenseNet, TwoInputNet

import pareco
from pareco import export
from pareco.slimming import flop_counter

_cache: dict = {}


def _randomize_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)


def built(name: str):
    if name not in _cache:
        cls, shape, _ = GALLERY[name]
        torch.manual_seed(0)
        model = cls()
        _randomize_bn(model)
        with torch.no_grad():
            for p in model.parameters():  # non-trivial norms and gains
                if p.ndim <= 1:
                    p.add_(torch.rand_like(p) * 0.2)
        net = pareco.slim(model, torch.randn(shape))
        _cache[name] = (model, net, torch.randn(3, *shape[1:]))
    return _cache[name]


def _macs(module: torch.nn.Module, x: torch.Tensor) -> float:
    """FlopCounterMode, with CPU attention counted (torch's own table names only CUDA kernels)."""
    with flop_counter() as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("name", list(GALLERY))
def test_export_and_costs_match_at_random_widths(name):
    _, net, x = built(name)
    net.eval()
    assert net.space.dim > 0
    for seed in (1, 2):
        alpha = net.space.sample(1, torch.Generator().manual_seed(seed))[0]
        with torch.no_grad(), net.widths(alpha):
            expected = net(x)
        sub = net.export(alpha).eval()
        with torch.no_grad():
            torch.testing.assert_close(sub(x), expected, atol=1e-5, rtol=1e-5)
        assert net.cost(alpha, "macs").item() == _macs(sub, x[:1])
        assert net.cost(alpha, "params").item() == sum(p.numel() for p in sub.parameters())


@pytest.mark.parametrize("name", list(GALLERY))
def test_real_saving_at_half_width(name):
    _, net, _ = built(name)
    ratio = net.cost_ratio(net.space.uniform(0.5)).item()
    assert ratio <= GALLERY[name][2], net.describe()


@pytest.mark.parametrize("name", list(GALLERY))
def test_full_width_equals_the_original_in_train_and_eval(name):
    model, net, x = built(name)
    model, net = copy.deepcopy(model), copy.deepcopy(net)
    model.eval()
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), model(x))
    model.train()
    net.train()
    torch.manual_seed(5)
    want = model(x)
    torch.manual_seed(5)
    got = net(x)
    assert torch.equal(got, want)  # same dropout masks, same batch statistics
    for (k, a), b in zip(model.state_dict().items(), net.module.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after a training step"


@pytest.mark.parametrize("name", ["densenet", "convnext", "shuffle", "vit"])
def test_saved_sub_network_loads_without_its_classes(tmp_path, name):
    _, net, x = built(name)
    alpha = net.space.uniform(0.6)
    sub = net.export(alpha).eval()
    export.save(sub, tmp_path / name, meta={"alpha": alpha.tolist()})
    loaded = export.load(tmp_path / name)
    assert not loaded.training and loaded.meta["alpha"] == pytest.approx(alpha.tolist())
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), sub(x), atol=1e-5, rtol=1e-5)


def test_segmented_model_goes_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _, net, x = built("densenet")
    sub = net.export(net.space.uniform(0.5)).eval()
    path = export.to_onnx(sub, x[:1], tmp_path / "m.onnx")
    (out,) = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, sub(x).numpy(), atol=1e-4, rtol=1e-4)


def test_concatenation_slices_each_segment():
    _, net, _ = built("densenet")
    # stem and the three growth layers are four groups, read segment by segment by the norms
    names = [g.name for g in net.space.groups]
    assert names[:4] == ["stem", "layers.0.2", "layers.1.2", "layers.2.2"]
    assert net.export(net.space.uniform(0.5)).norm.weight.shape == (4 + 3 + 3 + 3,)


@pytest.mark.parametrize("name", ["groupnorm", "vit"])
def test_what_cannot_shrink_is_kept_with_a_note(name):
    _, net, _ = built(name)
    assert net.notes and all("full width" in n for n in net.notes)


@pytest.mark.parametrize("name", ["chunk", "shuffle", "resnext"])
def test_chunks_shuffles_and_grouped_convs_shrink(name):
    _, net, _ = built(name)
    assert not net.notes, net.notes


def test_grouped_conv_is_sliced_in_whole_groups():
    _, net, _ = built("resnext")
    (group,) = [g for g in net.space.groups if "grouped.0" in g.members]
    assert (group.size, group.unit) == (4, 4)  # 4 groups of 4 channels
    assert "4 x 4 ch" in net.space.describe()
    alpha = torch.ones(net.space.dim, dtype=torch.float64)
    alpha[net.space.groups.index(group)] = 0.5
    sub = net.export(alpha)
    assert sub.grouped[0].groups == 2 and sub.grouped[0].weight.shape == (8, 4, 3, 3)
    assert pareco.WidthSpace.from_json(net.space.to_json()) == net.space


def test_channel_split_and_shuffle_are_sliced_per_segment():
    _, net, _ = built("shuffle")
    sub = net.export(net.space.uniform(0.5))
    # the stem's two halves shrink alike (chunk), the shuffle keeps the branch as wide as them
    assert sub.stem[0].out_channels == 8 and sub.branch[3][0].out_channels == 4


def test_tuple_and_keyword_inputs():
    torch.manual_seed(0)
    model = TwoInputNet().eval()
    rgb, depth = torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8)
    by_tuple = pareco.slim(model, (rgb, depth)).eval()
    by_kwargs = pareco.slim(model, example_kwargs={"pixel_values": rgb, "depth": depth}).eval()
    assert by_tuple.space.dim == by_kwargs.space.dim == 2
    alpha = by_kwargs.space.uniform(0.5)
    with torch.no_grad(), by_kwargs.widths(alpha):
        out = by_kwargs(pixel_values=rgb, depth=depth)["logits"]
        assert torch.equal(out, by_tuple.export(alpha)(rgb, depth)["logits"])


def test_bad_input_is_one_clear_error():
    with pytest.raises(pareco.SlimError, match="failed on example_input"):
        pareco.slim(DenseNet(), torch.randn(1, 5, 8, 8))
    with pytest.raises(pareco.SlimError, match="holds no tensor"):
        pareco.slim(DenseNet(), example_kwargs={"x": 3})
