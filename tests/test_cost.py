import pytest
import torch
from torch import nn

import pareco
from pareco import models
from pareco.cost import normalize_metric


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 4, 1, bias=False)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv2(self.relu(self.conv1(x))).mean((2, 3)))


def test_peak_memory_by_hand():
    net = pareco.slim(Chain(), torch.randn(1, 3, 4, 4))
    # node order: x 48 | conv1 8*16 | relu 8*16 | conv2 4*16 | mean 4 | fc 2
    # live: conv1 = x + conv1 = 176; relu = conv1 + relu = 256; conv2 = 128 + 64 ...
    assert net.cost(net.space.largest(), "memory").item() == 256
    # half width: conv1 4 ch, conv2 2 ch -> conv1 node 48 + 64 = 112, relu node 128
    assert net.cost(net.space.uniform(0.5), "memory").item() == 128
    # at the smallest, conv1 has 3 ch: the input-bound node (48 + 48 = 96) is the peak
    assert net.cost(net.space.smallest(), "memory").item() == 96


def test_macs_and_params_by_hand():
    net = pareco.slim(Chain(), torch.randn(1, 3, 4, 4))
    a = net.space.uniform(0.5)  # conv1 4 ch, conv2 2 ch
    assert net.cost(a, "macs").item() == 3 * 4 * 9 * 16 + 4 * 2 * 16 + 2 * 2
    assert net.cost(a, "params").item() == 3 * 4 * 9 + 4 * 2 + 2 * 2 + 2
    assert net.cost(a, "flops").item() == 2 * net.cost(a, "macs").item()


def test_batched_costs_equal_one_by_one():
    net = pareco.slim(models.create("mobilenetv2", stem="cifar"), torch.randn(1, 3, 32, 32),
                      ignored=models.entry("mobilenetv2").ignored)  # fmt: skip
    alphas = net.space.sample(50, torch.Generator().manual_seed(0))
    for metric in ("macs", "params", "memory"):
        batched = net.cost(alphas, metric)
        assert batched.shape == (50,)
        singles = torch.stack([net.cost(a, metric) for a in alphas])
        assert torch.equal(batched, singles)
        ratio = net.cost_ratio(alphas, metric)
        assert (ratio > 0).all() and (ratio <= 1).all()
    assert net.cost_ratio(net.space.largest(), "memory").item() == 1.0


def test_hundred_thousand_alphas_at_once():
    net = pareco.slim(models.create("resnet56"), torch.randn(1, 3, 32, 32))
    alphas = net.space.sample(100_000, torch.Generator().manual_seed(0))
    picks = [0, 4_321, 99_999]  # speed is measured by benchmarks/cost_throughput.py
    for metric in ("macs", "params", "memory"):
        costs = net.cost(alphas, metric)
        assert costs.shape == (100_000,)
        singles = torch.stack([net.cost(alphas[i], metric) for i in picks])
        assert torch.equal(costs[picks], singles)


def test_unknown_metric():
    assert normalize_metric(" FLOPs ") == "flops"
    with pytest.raises(ValueError, match="choose one of"):
        normalize_metric("latency")
