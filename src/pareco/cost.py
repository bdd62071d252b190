"""Exact costs of sub-networks, vectorized over a batch of widths.

Every cost pareco reports is a polynomial of degree at most two in the channel counts:

* MACs: a conv costs ``c_in/groups * c_out * k * H_out * W_out``, a linear layer or a matmul
  ``rows * c_in * c_out``; ops whose inputs never shrink (attention on fixed heads) are constants;
* parameters: the size of every parameter tensor, a product of at most two channel counts;
* peak activation memory: the max over graph nodes of the sum of the live tensors, each
  ``channels * elements_per_channel`` at batch 1 — a max of linear functions.

So one trace of the network yields a few small matrices, and a batch of 10^5 widths costs two
matrix products. Channel vectors here are *full*: one column per group, searchable groups first,
then the fixed ones at their full size. A channel concatenation makes a tensor's channel count a
sum of groups, which keeps every term of degree at most two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

METRICS = ("macs", "flops", "params", "memory")


# One factor of a cost term: ``([(column, weight), ...], constant)`` — a sum of searchable channel
# counts (several after a channel concatenation) plus the part that never shrinks — or a number.
Factor = tuple[list[tuple[int, int]], int] | int


class Polynomial:
    """Accumulates ``const + lin @ c + c @ bil @ c`` from products of channel factors."""

    def __init__(self, n_cols: int) -> None:
        self.const = 0.0
        self.lin = torch.zeros(n_cols, dtype=torch.float64)
        self.bil = torch.zeros(n_cols, n_cols, dtype=torch.float64)

    def add(self, factors: list[Factor], coef: float = 1.0) -> None:
        """Add ``coef * prod(factors)``; at most two factors may depend on the widths.

        Raises:
            ValueError: a term of degree three or more.
        """
        sums = []
        for f in factors:
            if isinstance(f, int):
                coef *= f
            elif not f[0]:
                coef *= f[1]
            else:
                sums.append(f)
        if len(sums) > 2:
            raise ValueError("a cost term depends on more than two channel groups")
        if not sums:
            self.const += coef
        elif len(sums) == 1:
            (terms, const) = sums[0]
            self.const += coef * const
            for col, w in terms:
                self.lin[col] += coef * w
        else:
            (ta, ca), (tb, cb) = sums
            self.const += coef * ca * cb
            for col, w in ta:
                self.lin[col] += coef * w * cb
            for col, w in tb:
                self.lin[col] += coef * w * ca
            for ci, wi in ta:
                for cj, wj in tb:
                    self.bil[ci, cj] += coef * wi * wj

    def evaluate(self, c: Tensor) -> Tensor:
        """``n x G`` (or ``G``) channel counts → ``n`` (or scalar) values."""
        return self.const + c @ self.lin + ((c @ self.bil) * c).sum(-1)


@dataclass
class CostModel:
    """Coefficients of the three costs. ``G`` = number of groups (columns), ``R`` = memory rows.

    Attributes:
        macs, params: polynomials of degree two in the ``G`` channel counts.
        memory_rows: ``R x G``; memory at node r is ``memory_const[r] + memory_rows[r] @ c``.
        memory_const: ``R`` elements that never shrink (the input, fixed-width tensors).
    """

    macs: Polynomial
    params: Polynomial
    memory_rows: Tensor
    memory_const: Tensor

    @classmethod
    def from_memory(
        cls,
        macs: Polynomial,
        params: Polynomial,
        tensors: list[tuple[Factor, int, int]],
        n_cols: int,
    ) -> CostModel:
        """``tensors``: each activation's size (a factor: elements at batch 1, linear in the
        channel counts) with its lifetime ``(first, last)`` in node order."""
        last_node = max((t[2] for t in tensors), default=-1)
        rows = torch.zeros(last_node + 1, n_cols + 1, dtype=torch.float64)
        for size, first, last in tensors:
            terms, const = ([], size) if isinstance(size, int) else size
            rows[first : last + 1, n_cols] += const
            for col, w in terms:
                rows[first : last + 1, col] += w
        rows = torch.unique(rows[rows.sum(1) > 0], dim=0)  # identical rows add nothing to the max
        return cls(macs, params, rows[:, :n_cols].contiguous(), rows[:, n_cols].contiguous())

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
            macs = self.macs.evaluate(c)
            return 2.0 * macs if metric == "flops" else macs
        if metric == "params":
            return self.params.evaluate(c)
        if metric == "memory":
            return (c @ self.memory_rows.T + self.memory_const).amax(-1)
        raise ValueError(f"unknown cost metric {metric!r}; choose one of {', '.join(METRICS)}")


def normalize_metric(name: str) -> str:
    """Map the user's cost names (``flops``, ``macs``, ``memory``, ``params``) to a metric.

    Raises:
        ValueError: an unknown name, with the valid ones.
    """
    key = name.strip().lower()
    if key not in METRICS:
        raise ValueError(f"unknown cost {name!r}; choose one of {', '.join(METRICS)}")
    return key
