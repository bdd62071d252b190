"""Real third-party models (random weights, tiny configurations, no downloads) through pareco.slim.

Hugging Face ``transformers`` vision models take keyword inputs (``pixel_values=``); timm models
are imported without torchvision (see ``timm_without_torchvision.py``). Both come with the
``models`` extra of pareco (``pip install -e .[dev]`` and ``scripts/setup.sh`` install them).
"""

import copy
import warnings

import pytest
import torch
from timm_without_torchvision import import_timm

import pareco
from pareco import export

transformers = pytest.importorskip("transformers")
timm = import_timm()
needs_timm = pytest.mark.skipif(timm is None, reason="timm is not installed (models extra)")


def _hf(name: str):
    T = transformers
    if name == "hf_resnet":
        cfg = T.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=3)
        return T.ResNetForImageClassification(cfg)
    if name == "hf_convnext":
        cfg = T.ConvNextConfig(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=3)
        return T.ConvNextForImageClassification(cfg)
    if name == "hf_vit":
        cfg = T.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64, num_labels=3)  # fmt: skip
        return T.ViTForImageClassification(cfg)
    if name == "hf_mobilenetv2":
        cfg = T.MobileNetV2Config(image_size=32, depth_multiplier=0.35, num_labels=3)
        return T.MobileNetV2ForImageClassification(cfg)
    if name == "hf_mobilevit":  # eager attention: view(*shape, -1, head_size), then matmuls
        necks = [8, 8, 16, 16, 24, 32, 64]
        cfg = T.MobileViTConfig(image_size=32, neck_hidden_sizes=necks, hidden_sizes=[16, 24, 32],
                                num_attention_heads=2, num_labels=3)  # fmt: skip
        return T.MobileViTForImageClassification(cfg)
    raise KeyError(name)


def _timm(name: str):
    kwargs = {"num_classes": 3}
    if name == "timm_resnet":
        return timm.create_model("resnet10t", **kwargs)
    if name == "timm_efficientnet":
        return timm.create_model("tinynet_e", **kwargs)  # an EfficientNet at 0.51x width
    if name == "timm_convnext":
        return timm.create_model("convnext_atto", depths=(1, 1, 1, 1), **kwargs)
    if name == "timm_mobilenetv3":
        return timm.create_model("mobilenetv3_small_050", **kwargs)
    if name == "timm_densenet":
        return timm.create_model("densenet121", growth_rate=8, block_config=(2, 2, 2, 2), **kwargs)
    raise KeyError(name)


# name → (ratio of MACs allowed at uniform 0.5)
HF = {"hf_resnet": 0.55, "hf_convnext": 0.4, "hf_vit": 0.55, "hf_mobilevit": 0.45}
TIMM = {"timm_resnet": 0.35, "timm_efficientnet": 0.4, "timm_convnext": 0.35,
        "timm_mobilenetv3": 0.45, "timm_densenet": 0.45}  # fmt: skip
_cache: dict = {}


def built(name: str):
    if name not in _cache:
        torch.manual_seed(0)
        model = (_hf if name.startswith("hf_") else _timm)(name).eval()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
        x = torch.randn(2, 3, 32, 32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name.startswith("hf_"):
                net = pareco.slim(model, example_kwargs={"pixel_values": x[:1]})
            else:
                net = pareco.slim(model, x[:1])
        _cache[name] = (model, net, x)
    return _cache[name]


def _call(name: str, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if name.startswith("hf_"):
        return module(pixel_values=x).logits
    return module(x)


PARAMS = [pytest.param(n, id=n) for n in HF] + [
    pytest.param(n, id=n, marks=needs_timm) for n in TIMM
]


@pytest.mark.parametrize("name", PARAMS)
def test_third_party_model_slims_exactly(name):
    model, net, x = built(name)
    net.eval()
    limit = {**HF, **TIMM}[name]
    assert net.space.dim > 0
    assert net.cost_ratio(net.space.uniform(0.5)).item() <= limit, net.describe()
    alpha = net.space.sample(1, torch.Generator().manual_seed(4))[0]
    with torch.no_grad(), net.widths(alpha):
        expected = _call(name, net, x)
    sub = net.export(alpha).eval()
    with torch.no_grad():
        torch.testing.assert_close(_call(name, sub, x), expected, atol=1e-4, rtol=1e-4)
        assert torch.equal(_call(name, net, x), _call(name, model, x))


@pytest.mark.parametrize("name", ["hf_convnext", pytest.param("timm_efficientnet",
                                                                marks=needs_timm)])  # fmt: skip
def test_third_party_model_trains_like_the_original(name):
    model, net, x = built(name)
    model, net = copy.deepcopy(model).train(), copy.deepcopy(net).train()
    torch.manual_seed(3)
    want = _call(name, model, x)
    torch.manual_seed(3)
    assert torch.equal(_call(name, net, x), want)
    for a, b in zip(model.state_dict().values(), net.module.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["hf_vit", pytest.param("timm_resnet", marks=needs_timm)])
def test_third_party_sub_network_saves_and_loads(tmp_path, name):
    _, net, x = built(name)
    sub = net.export(net.space.uniform(0.5)).eval()
    export.save(sub, tmp_path / "m")
    loaded = export.load(tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(
            _call(name, loaded, x) if not name.startswith("hf_") else loaded(pixel_values=x)[0],
            _call(name, sub, x),
            atol=1e-5,
            rtol=1e-5,
        )


def _text(name: str):
    T = transformers
    if name == "hf_bert":
        return T.BertForSequenceClassification(T.BertConfig(
            vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, num_labels=3))  # fmt: skip
    return T.GPT2ForSequenceClassification(T.GPT2Config(
        vocab_size=200, n_embd=32, n_layer=2, n_head=2, num_labels=3, pad_token_id=0,
        bos_token_id=1, eos_token_id=1))  # fmt: skip


@pytest.mark.parametrize("name", ["hf_bert", "hf_gpt2"])
def test_text_models_slim_on_the_first_call(tmp_path, name):
    """BERT, and GPT-2 (its classification head gathers the last token with tensor indices; its
    Conv1D keeps its size in ``nf``; its cache is no tensor output, so it is traced without
    one): slimmed on the first call, exported and saved sub-networks equal the slimmable one."""
    torch.manual_seed(0)
    model = _text(name).eval()
    ids = torch.randint(2, 200, (2, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pareco.slim(model, example_kwargs={"input_ids": ids})
    assert net.cost_ratio(net.space.uniform(0.5), "macs").item() <= 0.45, net.describe()
    assert any("use_cache=False" in n for n in net.notes) == (name == "hf_gpt2")
    alpha = net.space.sample(1, torch.Generator().manual_seed(4))[0]
    with torch.no_grad(), net.widths(alpha):
        expected = net(input_ids=ids).logits
    sub = net.export(alpha).eval()
    export.save(sub, tmp_path / "m")
    loaded = export.load(tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(sub(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(loaded(input_ids=ids)[0], expected, atol=1e-5, rtol=1e-5)
