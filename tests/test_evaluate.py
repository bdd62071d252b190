"""``pareco.evaluate``: accuracy of a sub-network on a split, and the search's loss of widths."""

import pytest
import torch
from test_train import tiny

from pareco.evaluate import evaluate, score_widths
from pareco.trainer import Trainer


def test_evaluate_warns_without_recalibration(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim"), progress=False)
    loader = trainer.data.eval_loader("val", batch_size=16)
    with pytest.warns(RuntimeWarning, match="without BN recalibration"):
        evaluate(trainer.net, trainer.net.space.largest(), loader, recalibration=None)
    result = evaluate(
        trainer.net, trainer.net.space.largest(), loader, recalibration=trainer.batches.recal
    )
    assert result.samples == 32 and 0 <= result.accuracy <= 1


def test_score_widths_gives_one_loss_per_width(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim"), progress=False)
    net, space = trainer.net, trainer.net.space
    alphas = torch.stack([space.smallest(), space.uniform(0.7), space.largest()])
    losses = score_widths(net, alphas, [trainer.batches.calib])
    assert losses.shape == (3,) and torch.isfinite(losses).all()
    again = score_widths(net, alphas[1:2], [trainer.batches.calib])
    torch.testing.assert_close(again, losses[1:2])  # a width's loss does not depend on the others
