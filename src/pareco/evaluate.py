"""Evaluation of sub-networks: accuracy on a split, and the search's loss of a width.

A sub-network is only ever evaluated after its BatchNorm statistics are recomputed
(:mod:`pareco.recalibrate`); evaluating without it warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco.distributed import DistContext, all_reduce_sum, average_bn_statistics
from pareco.outputs import logits_of
from pareco.recalibrate import bn_layers, recalibrate_bn
from pareco.slimming import SlimmableNet

__all__ = ["EvalResult", "evaluate", "recalibrate_bn", "score_widths"]


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    samples: int


@torch.no_grad()
def evaluate(
    net: SlimmableNet,
    alpha: Tensor | Sequence[float],
    loader: Iterable,
    *,
    recalibration: Iterable | None,
    ctx: DistContext | None = None,
) -> EvalResult:
    """Accuracy and mean cross-entropy of the sub-network ``alpha`` on ``loader``.

    ``recalibration`` (training batches) is required: BN statistics are recomputed first. Passing
    None evaluates with whatever statistics are there, which is almost always wrong, so it warns.
    Under torchrun (``ctx``) each rank passes its share of the recalibration batches and of the
    data; statistics and counts are reduced across ranks.
    """
    ctx = ctx or DistContext()
    if recalibration is None:
        warnings.warn(
            "evaluating a sub-network without BN recalibration: its accuracy is not meaningful",
            RuntimeWarning,
            stacklevel=2,
        )
    else:
        recalibrate_bn(net, alpha, recalibration)
        average_bn_statistics(net, ctx)
    was_training = net.training
    net.eval()
    correct, total, loss_sum = 0, 0, 0.0
    try:
        with net.widths(alpha):
            for x, y in loader:
                out = logits_of(batch_inputs.call(net, x)).float()
                loss_sum += F.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
                total += y.numel()
    finally:
        net.train(was_training)
    sums = all_reduce_sum(torch.tensor([correct, total, loss_sum], dtype=torch.float64), ctx)
    correct, total, loss_sum = sums.tolist()
    return EvalResult(correct / max(total, 1), loss_sum / max(total, 1), int(total))


@torch.no_grad()
def score_widths(
    net: SlimmableNet,
    alphas: Tensor,
    batches: Sequence[tuple[Tensor, Tensor]],
    forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
) -> Tensor:
    """Mean cross-entropy of each width on fixed labelled batches: ``n x dim`` → ``n`` (float64).

    This is how the search sees a width: BN normalizes with each batch's own statistics (train
    mode), since the running statistics belong to no width in particular; they are left exactly
    as they were.
    """
    forward = forward or batch_inputs.call
    bn = bn_layers(net)
    saved = [
        (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bn
    ]
    was_training = net.training
    device = batch_inputs.first(batches[0][0]).device
    out = torch.zeros(len(alphas), dtype=torch.float64, device=device)
    net.train()
    try:
        for i, alpha in enumerate(alphas):
            with net.widths(alpha):
                for x, y in batches:
                    out[i] += F.cross_entropy(logits_of(forward(net, x)).float(), y).double()
    finally:
        for m, (mean, var, count) in zip(bn, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
        net.train(was_training)
    return (out / len(batches)).cpu()
