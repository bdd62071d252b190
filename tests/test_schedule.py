"""``pareco.schedule``: SGD parameter groups and the warm-up/decay learning-rate schedule."""

import pytest
import torch

from pareco.schedule import lr_factor, param_groups, sgd, warmup_decay


def test_no_weight_decay_on_bn_and_biases():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Linear(2, 2)
    )
    decay, no_decay = param_groups(net, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0
    assert all(p.ndim > 1 for p in decay["params"]) and len(decay["params"]) == 2
    assert len(no_decay["params"]) == 4


def test_lr_schedule():
    assert lr_factor(0, 100, 10, "linear") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "linear") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0, abs=1e-12)


def test_warmup_decay_scales_the_peak_rate_step_by_step():
    net = torch.nn.Linear(2, 2)
    opt = sgd(net, 0.4, 0.9, 0.0)
    sched = warmup_decay(opt, total=10, warmup=2, schedule="linear")
    rates = []
    for _ in range(10):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates == pytest.approx([0.4 * lr_factor(k, 10, 2, "linear") for k in range(10)])
