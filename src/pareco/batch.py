"""A batch's inputs, whatever the model takes: one tensor, or a dict of tensors passed as keyword
arguments (a Hugging Face model's ``input_ids`` and ``attention_mask``).

The data path moves, joins, cuts and feeds inputs only through these functions, so a user's
loader may yield ``(x, y)`` or ``({"input_ids": ..., "attention_mask": ...}, y)`` alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["apply", "call", "cat", "first", "is_inputs", "num_samples", "take", "to"]

Inputs = Tensor | Mapping[str, Tensor]


def is_inputs(x: Any) -> bool:
    """A tensor, or a non-empty dict of tensors keyed by the model's argument names."""
    if isinstance(x, Tensor):
        return True
    return (
        isinstance(x, Mapping)
        and bool(x)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in x.items())
    )


def call(model: nn.Module, x: Inputs) -> Any:
    """``model(x)``, or ``model(**x)`` for a dict."""
    return model(**x) if isinstance(x, Mapping) else model(x)


def apply(fn: Any, x: Inputs) -> Inputs:
    """``fn`` on the tensor, or on every tensor of the dict."""
    return {k: fn(v) for k, v in x.items()} if isinstance(x, Mapping) else fn(x)


def to(x: Inputs, device: torch.device | str, **kwargs: Any) -> Inputs:
    return apply(lambda t: t.to(device, **kwargs), x)


def take(x: Inputs, n: int) -> Inputs:
    """The first ``n`` samples."""
    return apply(lambda t: t[:n], x)


def cat(xs: list[Inputs]) -> Inputs:
    """Batches joined along the batch dimension."""
    if xs and isinstance(xs[0], Mapping):
        return {k: torch.cat([x[k] for x in xs]) for k in xs[0]}
    return torch.cat(xs)


def num_samples(x: Inputs) -> int:
    """The batch size: the first dimension (of the first tensor of a dict)."""
    t = next(iter(x.values())) if isinstance(x, Mapping) else x
    return int(t.shape[0])


def first(x: Inputs) -> Tensor:
    """The tensor, or the dict's first one (what a shape or dtype is read from)."""
    return next(iter(x.values())) if isinstance(x, Mapping) else x
