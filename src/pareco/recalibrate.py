"""BatchNorm recalibration: the statistics a sub-network needs before it is evaluated.

All widths share one set of BN running statistics, which fit none of them well. So a sub-network
is only ever evaluated after its statistics are recomputed: reset, then a cumulative average over
a few training batches in train mode (as US-Nets and PareCO do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from pareco import batch as batch_inputs
from pareco.slimming import SlimmableNet


def bn_layers(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``net`` (any dimension)."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(
    net: SlimmableNet, alpha: Tensor | Sequence[float] | None, batches: Iterable
) -> int:
    """Recompute BN running statistics of the sub-network ``alpha`` from ``batches``.

    Args:
        net: the slimmable network (its widths are restored afterwards).
        alpha: ``dim`` widths (None: the active ones).
        batches: tensors ``B x C x H x W`` or ``(x, y)`` pairs, e.g. a few training batches.

    Returns:
        The number of batches used.
    """
    layers = bn_layers(net)
    saved = [(m.momentum, m.training) for m in layers]
    was_training = net.training
    alpha = net.alpha if alpha is None else alpha
    n = 0
    with net.widths(alpha):
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the batches
        net.train()
        try:
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                batch_inputs.call(net, x)
                n += 1
        finally:
            for m, (momentum, training) in zip(layers, saved):
                m.momentum = momentum
                m.train(training)
            net.train(was_training)
    if n == 0:
        raise ValueError("recalibrate_bn got no batches")
    return n
