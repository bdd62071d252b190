"""`SeenWidths`: the channel vectors a search has already proposed, so it never proposes one twice.

Many width vectors α give the same network: the channels of group g are a step function of α_g.
A proposal whose channels equal those of an earlier one adds nothing: on frozen weights (TwoStage's
stage two) it would be scored to the same loss again, and during PareCO's training it would spend a
slot of the sandwich step on a network already in the history. The scalarization treats seen
channel vectors like the smallest and the largest network (T = +inf), and random draws are redrawn.

Keys are one int64 per channel vector (a fixed random linear hash, wrapping on overflow), so
membership of a pool of 10⁴ candidates is one `torch.isin` call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["ChannelsFn", "SeenWidths"]

#: Channel counts of width vectors: `n x dim` float64 multipliers -> `n x dim` integer counts.
ChannelsFn = Callable[[Tensor], Tensor]

_HASH_SEED = 20201207


def _exact(alpha: Tensor) -> Tensor:
    """Without a width space, two width vectors are the same network only when they are equal."""
    return torch.round(alpha.to(torch.float64) * 2**40).to(torch.int64)


class SeenWidths:
    """A set of channel vectors, queried in batches.

    Args:
        dim: number of searchable groups.
        channels: α -> channel counts (`WidthSpace.channels`); None compares α exactly.
    """

    def __init__(self, dim: int, channels: ChannelsFn | None = None) -> None:
        self.dim = dim
        self.channels = channels if channels is not None else _exact
        g = torch.Generator().manual_seed(_HASH_SEED)
        self._weights = torch.randint(1, 2**62, (dim,), generator=g, dtype=torch.int64) | 1
        self._keys = torch.empty(0, dtype=torch.int64)

    def keys(self, alpha: Tensor) -> Tensor:
        """`n` int64 keys of `n x dim` (or `dim`) width vectors; equal channels, equal keys."""
        ch = self.channels(alpha.to(torch.float64).reshape(-1, self.dim)).to(torch.int64)
        return (ch * self._weights).sum(-1)

    def add(self, alpha: Tensor) -> None:
        """Remember the channel vectors of `n x dim` (or `dim`) width vectors."""
        self._keys = torch.unique(torch.cat([self._keys, self.keys(alpha)]))

    def seen_keys(self, keys: Tensor) -> Tensor:
        """`n` booleans: keys (from `keys`) already remembered."""
        return torch.isin(keys, self._keys)

    def seen(self, alpha: Tensor) -> Tensor:
        """`n` booleans: width vectors whose channels were already remembered."""
        return self.seen_keys(self.keys(alpha))

    def __len__(self) -> int:
        return int(self._keys.numel())
