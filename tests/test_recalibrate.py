"""``pareco.recalibrate``: BN statistics of a sub-network recomputed over fixed batches."""

import pytest
import torch
from test_train import tiny

from pareco.recalibrate import recalibrate_bn
from pareco.trainer import Trainer


def test_recalibrate_bn_equals_fresh_bn_over_the_same_batches(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim"), progress=False)
    net = trainer.net
    alpha = net.space.uniform(0.6)
    batches = trainer.batches.recal
    recalibrate_bn(net, alpha, batches)
    sub = net.export(alpha)
    for m in sub.modules():  # fresh BN layers with the same affine parameters
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    sub.train()
    with torch.no_grad():
        for x in batches:
            sub(x)
    recal = net.export(alpha)
    for (name, a), (_, b) in zip(recal.named_buffers(), sub.named_buffers()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)


def test_recalibration_restores_widths_and_modes_and_needs_batches(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim"), progress=False)
    net = trainer.net.eval()
    before = net.alpha.clone()
    assert recalibrate_bn(net, net.space.uniform(0.5), trainer.batches.recal) == 2
    assert torch.equal(net.alpha, before) and not net.training
    with pytest.raises(ValueError, match="got no batches"):
        recalibrate_bn(net, None, [])
