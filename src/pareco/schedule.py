"""Optimizer parameter groups and the learning-rate schedule of a run.

The paper's recipe: SGD with momentum 0.9, no weight decay on BatchNorm parameters and biases,
a linear warm-up and then linear (or cosine) decay to zero at the last step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on BN parameters and biases (every parameter with fewer than 2 dims)."""
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up over ``warmup`` steps, then linear or cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return max(0.0, 1.0 - progress)


def sgd(net: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """The paper's optimizer: SGD with momentum, weight decay on weights only."""
    return torch.optim.SGD(
        param_groups(net, weight_decay), lr=lr, momentum=momentum, nesterov=False
    )


def warmup_decay(
    optimizer: torch.optim.Optimizer, total: int, warmup: int, schedule: str = "linear"
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler following :func:`lr_factor`; call ``step()`` after every step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, schedule)
    )
