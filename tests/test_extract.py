"""``pareco.extract``: candidates and the validation front for a loop of one's own."""

import itertools

import torch
from torch.utils.data import DataLoader, TensorDataset

import pareco
from pareco.extract import candidate_widths, extract_front


def _net():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3),
    )  # fmt: skip
    return pareco.slim(model, torch.zeros(1, 1, 6, 6))


def test_candidates_are_unique_sub_networks_from_smallest_to_largest():
    net = _net()
    alphas = candidate_widths(net, sweep=6)
    channels = [tuple(c.tolist()) for c in net.space.channels(alphas)]
    assert len(set(channels)) == len(channels)
    assert torch.equal(alphas[0], net.space.smallest().double())
    assert torch.equal(alphas[1], net.space.largest().double())


def test_the_front_is_non_dominated_and_by_increasing_cost():
    net = _net()
    x, y = torch.randn(24, 1, 6, 6), torch.arange(24) % 3
    val = DataLoader(TensorDataset(x, y), batch_size=12)
    recal = [torch.randn(8, 1, 6, 6) for _ in range(2)]
    front = extract_front(net, candidate_widths(net, sweep=6), lambda: val, recal)
    costs = [p.cost_ratio for p in front]
    accs = [p.val_accuracy for p in front]
    assert costs == sorted(costs) and costs[0] > 0
    assert all(a < b for a, b in itertools.pairwise(accs))  # costlier points are more accurate
