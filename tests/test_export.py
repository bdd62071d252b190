import json

import numpy as np
import pytest
import torch
from models_for_tests import ResidualDepthwiseNet, SqueezeExciteNet

import pareco
from pareco import export, models
from pareco.layers import is_sliceable


@pytest.fixture(scope="module")
def net_and_input():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    net = pareco.slim(ResidualDepthwiseNet(), x)
    net.train()
    for _ in range(3):  # non-trivial BN statistics
        net(torch.randn(8, 3, 16, 16))
    return net.eval(), x


def test_exported_model_is_plain_and_smaller(net_and_input):
    net, _ = net_and_input
    sub = net.export(net.space.smallest())
    assert not any(is_sliceable(m) for m in sub.modules())
    assert type(sub.get_submodule("conv1")) is torch.nn.Conv2d
    assert sub.get_submodule("conv1").out_channels < 10
    # exporting leaves the slimmable net at its previous widths
    assert torch.equal(net.alpha, net.space.largest())


def test_save_load_round_trip(tmp_path, net_and_input):
    net, x = net_and_input
    alpha = net.space.uniform(0.6)
    sub = net.export(alpha).eval()
    export.save(sub, tmp_path / "m", meta={"alpha": alpha.tolist()})
    arch = json.loads((tmp_path / "m" / "model.json").read_text())
    assert arch["format"] == "pareco-subnet"
    loaded = export.load(tmp_path / "m")
    assert not loaded.training
    torch.testing.assert_close(loaded(x), sub(x), atol=0, rtol=0)
    assert loaded.meta["alpha"] == pytest.approx(alpha.tolist())
    assert export.load_meta(tmp_path / "m")["alpha"] == pytest.approx(alpha.tolist())


@pytest.mark.slow
def test_round_trip_of_zoo_model(tmp_path):
    x = torch.randn(2, 3, 32, 32)
    entry = models.entry("mobilenetv2")
    net = pareco.slim(models.create("mobilenetv2", stem="cifar"), x, ignored=entry.ignored).eval()
    sub = net.export(net.space.sample(1, torch.Generator().manual_seed(3))[0]).eval()
    export.save(sub, tmp_path / "mb")
    torch.testing.assert_close(export.load(tmp_path / "mb")(x), sub(x), atol=0, rtol=0)


@pytest.mark.parametrize("cls", [ResidualDepthwiseNet, SqueezeExciteNet])
def test_onnx_matches_torch(tmp_path, cls):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    net = pareco.slim(cls(), x).eval()
    sub = net.export(net.space.uniform(0.5)).eval()
    path = export.to_onnx(sub, x, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path))
    xb = torch.randn(5, 3, 16, 16)  # another batch size: the batch axis is dynamic
    (out,) = session.run(None, {"input": xb.numpy()})
    np.testing.assert_allclose(out, sub(xb).detach().numpy(), atol=1e-4, rtol=1e-4)


def test_load_errors(tmp_path, net_and_input):
    with pytest.raises(export.ExportError, match="no exported model"):
        export.load(tmp_path / "missing")
    net, _ = net_and_input
    export.save(net.export(net.space.smallest()), tmp_path / "m")
    (tmp_path / "m" / "weights.pt").write_bytes(b"truncated")
    with pytest.raises(export.ExportError, match="damaged"):
        export.load(tmp_path / "m")


def test_architecture_refuses_unknown_functions():
    arch = {"format": "pareco-subnet", "version": 1, "modules": {}, "graph": [
        {"name": "x", "op": "placeholder", "target": "x", "args": [], "kwargs": {"$dict": {}}},
        {"name": "y", "op": "call_function", "target": "os.system", "args": [],
         "kwargs": {"$dict": {}}},
    ]}  # fmt: skip
    with pytest.raises(export.ExportError, match="does not load"):
        export.from_architecture(arch)


class DictInputNet(torch.nn.Module):
    """Takes one dict, as models fed by a collate_fn of named fields do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, batch):
        return self.head(self.bn(self.conv(batch["image"])).relu().mean((2, 3)))


class KeywordNet(DictInputNet):
    def forward(self, image):
        return super().forward({"image": image})


@pytest.mark.parametrize("cls", [DictInputNet, KeywordNet])
def test_onnx_of_dict_inputs(tmp_path, cls):
    """A dict passed positionally (``(batch,)``) and a dict of keyword arguments both export;
    the batch axis stays dynamic and onnxruntime agrees with torch."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    example = ({"image": x},) if cls is DictInputNet else {"image": x}
    net = pareco.slim(cls(), example).eval()
    sub = net.export(net.space.uniform(0.5)).eval()
    path = export.to_onnx(sub, example, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path))
    xb = torch.randn(5, 3, 8, 8)
    (name,) = [i.name for i in session.get_inputs()]
    (out,) = session.run(None, {name: xb.numpy()})
    expected = sub({"image": xb}) if cls is DictInputNet else sub(image=xb)
    np.testing.assert_allclose(out, expected.detach().numpy(), atol=1e-4, rtol=1e-4)


def test_onnx_falls_back_to_the_torchscript_exporter(tmp_path, monkeypatch):
    """Where the dynamo exporter fails on a model (HF Swin: "Failed to decompose the FX graph"),
    to_onnx writes the file with the TorchScript exporter, batch axis still dynamic; where both
    fail, the dynamo exporter's error is the one raised."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    net = pareco.slim(ResidualDepthwiseNet(), x).eval()
    sub = net.export(net.space.uniform(0.5)).eval()
    real = torch.onnx.export
    calls = []

    def dynamo_fails(*args, dynamo=True, **kwargs):
        calls.append(dynamo)
        if dynamo:
            raise RuntimeError("Failed to decompose the FX graph for ONNX compatibility")
        return real(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    path = export.to_onnx(sub, x, tmp_path / "m.onnx")
    assert calls == [True, False]
    session = ort.InferenceSession(str(path))
    xb = torch.randn(4, 3, 16, 16)
    (out,) = session.run(None, {"input": xb.numpy()})
    np.testing.assert_allclose(out, sub(xb).detach().numpy(), atol=1e-4, rtol=1e-4)

    def both_fail(*args, dynamo=True, **kwargs):
        raise RuntimeError("dynamo exporter" if dynamo else "torchscript exporter")

    monkeypatch.setattr(torch.onnx, "export", both_fail)
    with pytest.raises(RuntimeError, match=r"^dynamo exporter$"):
        export.to_onnx(sub, x, tmp_path / "n.onnx")
    assert not (tmp_path / "n.onnx").exists()
