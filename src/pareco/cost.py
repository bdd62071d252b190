"""Exact costs of sub-networks, vectorized over a batch of widths.

Every cost pareco reports is a polynomial of degree at most two in the channel counts:

* MACs: a conv costs ``c_in * c_out * k * H_out * W_out`` (depthwise: ``c * k * H_out * W_out``),
  a linear layer ``c_in * e_in * c_out`` where ``e_in`` is the elements per input channel;
* parameters: the same bilinear terms without the spatial factor, plus biases and BN affine terms;
* peak activation memory: the max over graph nodes of the sum of the live tensors, each
  ``channels * elements_per_channel`` at batch 1 — a max of linear functions.

So one trace of the network yields a few small matrices, and a batch of 10^5 widths costs two
matrix products. Channel vectors here are *full*: one column per group, searchable groups first,
then the fixed ones at their full size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

METRICS = ("macs", "flops", "params", "memory")


@dataclass(frozen=True)
class LayerFacts:
    """What the cost of one layer depends on. ``kind`` is conv, dwconv, linear or bn."""

    kind: str
    in_col: int
    out_col: int
    kernel: int = 1  # kernel height * width
    out_spatial: int = 1  # H_out * W_out
    in_per_channel: int = (
        1  # elements per input channel (H*W for a linear layer reading a flattened map)
    )
    bias: bool = False
    affine: bool = False


@dataclass(frozen=True)
class TensorFacts:
    """One activation tensor: its group column, size per channel, and lifetime in node order."""

    col: int
    per_channel: int
    first: int  # index of the node that produces it
    last: int  # index of the last node that reads it (or any view of it)


@dataclass
class CostModel:
    """Coefficients of the three costs. ``G`` = number of groups (columns), ``R`` = memory rows.

    Attributes:
        macs_lin, params_lin: ``G`` linear coefficients.
        macs_bil, params_bil: ``G x G`` bilinear coefficients.
        params_const: parameters that never shrink (layers held at full width by construction).
        memory_rows: ``R x G``; memory at node r is ``memory_rows[r] @ channels``.
    """

    macs_lin: Tensor
    macs_bil: Tensor
    params_lin: Tensor
    params_bil: Tensor
    params_const: float
    memory_rows: Tensor

    @classmethod
    def from_facts(
        cls,
        layers: list[LayerFacts],
        tensors: list[TensorFacts],
        n_cols: int,
        params_const: int = 0,
    ) -> CostModel:
        z1 = lambda: torch.zeros(n_cols, dtype=torch.float64)  # noqa: E731
        z2 = lambda: torch.zeros(n_cols, n_cols, dtype=torch.float64)  # noqa: E731
        macs_lin, macs_bil, params_lin, params_bil = z1(), z2(), z1(), z2()
        for f in layers:
            if f.kind == "conv":
                macs_bil[f.in_col, f.out_col] += f.kernel * f.out_spatial
                params_bil[f.in_col, f.out_col] += f.kernel
            elif f.kind == "dwconv":
                macs_lin[f.out_col] += f.kernel * f.out_spatial
                params_lin[f.out_col] += f.kernel
            elif f.kind == "linear":
                macs_bil[f.in_col, f.out_col] += f.in_per_channel
                params_bil[f.in_col, f.out_col] += f.in_per_channel
            elif f.kind == "bn":
                params_lin[f.out_col] += 2 if f.affine else 0
            else:
                raise ValueError(f"unknown layer kind {f.kind!r}")
            if f.bias:
                params_lin[f.out_col] += 1
        last_node = max((t.last for t in tensors), default=-1)
        rows = torch.zeros(last_node + 1, n_cols, dtype=torch.float64)
        for t in tensors:
            rows[t.first : t.last + 1, t.col] += t.per_channel
        rows = torch.unique(rows[rows.sum(1) > 0], dim=0)  # identical rows add nothing to the max
        return cls(macs_lin, macs_bil, params_lin, params_bil, float(params_const), rows)

    def evaluate(self, channels: Tensor, metric: str) -> Tensor:
        """Absolute cost.

        Args:
            channels: ``n x G`` (or ``G``) channel counts of every group.
            metric: ``macs``, ``flops`` (2 per MAC), ``params`` or ``memory`` (elements at batch 1).

        Returns:
            ``n`` (or a scalar) float64 tensor; exact integers.
        """
        c = channels.to(torch.float64)
        if metric in ("macs", "flops"):
            macs = c @ self.macs_lin + ((c @ self.macs_bil) * c).sum(-1)
            return 2.0 * macs if metric == "flops" else macs
        if metric == "params":
            return self.params_const + c @ self.params_lin + ((c @ self.params_bil) * c).sum(-1)
        if metric == "memory":
            return (c @ self.memory_rows.T).amax(-1)
        raise ValueError(f"unknown cost metric {metric!r}; choose one of {', '.join(METRICS)}")

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def normalize_metric(name: str) -> str:
    """Map the user's cost names (``flops``, ``macs``, ``memory``, ``params``) to a metric.

    Raises:
        ValueError: an unknown name, with the valid ones.
    """
    key = name.strip().lower()
    if key not in METRICS:
        raise ValueError(f"unknown cost {name!r}; choose one of {', '.join(METRICS)}")
    return key
