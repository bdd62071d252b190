"""Slicing layers: the first ``k`` channels of a full layer, exactly (never masks).

Each layer keeps the full parameters and two integers, ``active_in`` and ``active_out``, set by
:meth:`pareco.slim.SlimmableNet.set_widths`. Slicing rather than masking matters: a masked channel
still carries its BatchNorm bias into the next layer; a sliced one does not exist.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SlimConv2d(nn.Conv2d):
    """Conv2d whose input and output channels are sliced to the first ``active_in/out``.

    A depthwise conv (``groups == in == out``) slices both sides together.
    """

    active_in: int
    active_out: int

    @property
    def depthwise(self) -> bool:
        return self.groups > 1

    def forward(self, x: Tensor) -> Tensor:
        w = (
            self.weight[: self.active_out]
            if self.depthwise
            else self.weight[: self.active_out, : self.active_in]
        )
        b = None if self.bias is None else self.bias[: self.active_out]
        groups = self.active_out if self.depthwise else 1
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, w, b, self.stride, 0, self.dilation, groups)
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, groups)

    def to_dense(self) -> nn.Conv2d:
        """A plain Conv2d holding a copy of the active slice."""
        cin = self.active_out if self.depthwise else self.active_in
        conv = nn.Conv2d(
            cin,
            self.active_out,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            groups=self.active_out if self.depthwise else 1,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
        )
        w = (
            self.weight[: self.active_out]
            if self.depthwise
            else self.weight[: self.active_out, :cin]
        )
        _copy_into(conv.weight, w)
        if self.bias is not None:
            _copy_into(conv.bias, self.bias[: self.active_out])
        return conv


class SlimLinear(nn.Linear):
    """Linear whose features are sliced. ``in_per_channel`` > 1 when it reads a flattened map:
    channel-major flattening puts the first ``k`` channels in the first ``k * H * W`` features."""

    active_in: int
    active_out: int
    in_per_channel: int = 1

    def forward(self, x: Tensor) -> Tensor:
        n_in = self.active_in * self.in_per_channel
        b = None if self.bias is None else self.bias[: self.active_out]
        return F.linear(x, self.weight[: self.active_out, :n_in], b)

    def to_dense(self) -> nn.Linear:
        n_in = self.active_in * self.in_per_channel
        lin = nn.Linear(n_in, self.active_out, bias=self.bias is not None)
        _copy_into(lin.weight, self.weight[: self.active_out, :n_in])
        if self.bias is not None:
            _copy_into(lin.bias, self.bias[: self.active_out])
        return lin


class _SlimBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the first ``active_out`` features. Running statistics are shared by all
    widths, which is why every sub-network is recalibrated before it is evaluated."""

    active_in: int
    active_out: int

    def forward(self, x: Tensor) -> Tensor:
        c = self.active_out
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:  # cumulative moving average, as used for BN recalibration
            momentum = 1.0 / float(self.num_batches_tracked) if self.training else 0.0
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[:c],
            None if self.running_var is None else self.running_var[:c],
            None if self.weight is None else self.weight[:c],
            None if self.bias is None else self.bias[:c],
            use_batch_stats,
            momentum if self.training else 0.0,
            self.eps,
        )

    def to_dense(self) -> nn.modules.batchnorm._BatchNorm:
        c = self.active_out
        dense_cls = nn.BatchNorm2d if isinstance(self, SlimBatchNorm2d) else nn.BatchNorm1d
        bn = dense_cls(c, self.eps, self.momentum, self.affine, self.track_running_stats)
        if self.affine:
            _copy_into(bn.weight, self.weight[:c])
            _copy_into(bn.bias, self.bias[:c])
        if self.track_running_stats:
            _copy_into(bn.running_mean, self.running_mean[:c])
            _copy_into(bn.running_var, self.running_var[:c])
            _copy_into(bn.num_batches_tracked, self.num_batches_tracked)
        return bn


class SlimBatchNorm2d(_SlimBatchNorm, nn.BatchNorm2d):
    pass


class SlimBatchNorm1d(_SlimBatchNorm, nn.BatchNorm1d):
    pass


SLIM_TYPES: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv2d: SlimConv2d,
    nn.Linear: SlimLinear,
    nn.BatchNorm2d: SlimBatchNorm2d,
    nn.BatchNorm1d: SlimBatchNorm1d,
}


def make_slim(module: nn.Module) -> nn.Module:
    """Turn a dense layer into its slicing twin sharing the same parameters and buffers."""
    slim_cls = SLIM_TYPES[type(module)]
    module.__class__ = slim_cls  # same state, slicing forward: no copy of the weights
    module.active_in = _in_features(module)
    module.active_out = _out_features(module)
    return module


def _in_features(m: nn.Module) -> int:
    if isinstance(m, nn.Conv2d):
        return m.in_channels
    if isinstance(m, nn.Linear):
        return m.in_features
    return m.num_features


def _out_features(m: nn.Module) -> int:
    if isinstance(m, nn.Conv2d):
        return m.out_channels
    if isinstance(m, nn.Linear):
        return m.out_features
    return m.num_features


@torch.no_grad()
def _copy_into(dst: Tensor, src: Tensor) -> None:
    dst.copy_(src)
