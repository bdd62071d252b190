"""The slimmable network: the user's model whose layers read their parameters sliced."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from pareco.cost import CostModel, normalize_metric
from pareco.layers import SliceSwitch, is_sliceable, set_cuts, to_plain, write_back
from pareco.space import WidthSpace


@dataclass
class _Cut:
    module: nn.Module
    tensor: str
    dims: list[tuple[int, list[tuple[int | None, int, int]]]]  # dim → [(col, per, full size)]


class SlimmableNet(nn.Module):
    """A model whose channel groups can be narrowed at run time; build it with :func:`slim`.

    Attributes:
        module: the user's model (a copy) whose layers read their parameters sliced.
        space: the :class:`~pareco.space.WidthSpace` of its searchable groups.
        notes: what was kept at full width and why, one line each.
    """

    def __init__(
        self,
        module: nn.Module,
        space: WidthSpace,
        cuts: list[_Cut],
        attrs: list[tuple[nn.Module, str, list[tuple[int | None, int, int]], str | int]],
        costs: CostModel,
        example: tuple[tuple, dict],
        notes: list[str],
        switch: SliceSwitch,
    ) -> None:
        super().__init__()
        self.module = module
        self._switch = switch
        self._sliceable = [m for m in module.modules() if is_sliceable(m)]
        self.space = space
        self.notes = list(notes)
        first = next((t for t in pytree.tree_leaves(example) if isinstance(t, Tensor)), None)
        self.input_shape = tuple(first.shape) if first is not None else ()
        self._example = example
        self._cuts = cuts
        self._attrs = attrs
        self._costs = costs
        self._alpha = space.largest()
        self._full_cost: dict[str, Tensor] = {}
        self.set_widths(self._alpha)

    def forward(self, *args, **kwargs):
        with self._slicing():
            return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def _slicing(self) -> Iterator[None]:
        """Parameters read as their active slices (only inside forward: code that reads them
        elsewhere, such as BN recalibration, sees the full tensors)."""
        before = self._switch.active
        self._switch.active = True
        try:
            yield
        finally:
            self._switch.active = before
            if not before:
                for m in self._sliceable:
                    write_back(m)

    # --- widths ---------------------------------------------------------------------------
    @property
    def alpha(self) -> Tensor:
        """The active width vector, ``dim``."""
        return self._alpha.clone()

    def set_widths(self, alpha: Tensor | Sequence[float]) -> None:
        """Make ``alpha`` (``dim``, in ``[min_multiplier, 1]``) the active sub-network."""
        a = self.space.check(alpha)
        if a.ndim != 1:
            raise ValueError(f"set_widths takes one width vector of shape ({self.space.dim},)")
        ch = self.space.channels(a).tolist()

        def active(segs: list[tuple[int | None, int, int]]) -> list[tuple[int, int, int]]:
            return [(full if col is None else ch[col], per, full) for col, per, full in segs]

        per_module: dict[int, dict] = {}
        for cut in self._cuts:
            dims = []
            for dim, segs in cut.dims:
                act = active(segs)
                if len(act) == 1 or all(n == full for n, _, full in act):
                    dims.append((dim, sum(n * per for n, per, _ in act)))
                else:
                    idx, off = [], 0
                    for n, per, full in act:
                        idx.append(torch.arange(off, off + n * per))
                        off += full * per
                    dims.append((dim, torch.cat(idx)))
            per_module.setdefault(id(cut.module), {"m": cut.module, "cuts": {}})["cuts"][
                cut.tensor
            ] = dims
        for entry in per_module.values():
            set_cuts(entry["m"], entry["cuts"])
        for module, attr, segs, kind in self._attrs:
            n = sum(c * per for c, per, _ in active(segs))
            if isinstance(kind, int):  # one entry of a size tuple the module keeps
                value: Any = list(getattr(module, attr))
                value[kind] = n
                value = type(getattr(module, attr))(value)
            else:
                value = (n,) if kind == "shape" else n
            setattr(module, attr, value)
        for entry in per_module.values():  # sizes that forward() may read (timm's StdConv does)
            m = entry["m"]
            with self._slicing():
                w = getattr(m, "weight", None) if "weight" in entry["cuts"] else None
            if not isinstance(w, Tensor) or w.ndim < 2:
                continue
            m.active_out = w.shape[0]
            m.active_in = w.shape[1] * getattr(m, "groups", 1)
            if isinstance(m, nn.modules.conv._ConvNd):
                m.out_channels, m.in_channels = m.active_out, m.active_in
            elif isinstance(m, nn.Linear):
                m.out_features, m.in_features = m.active_out, m.active_in
            elif type(m).__name__ == "Conv1D" and hasattr(m, "nf") and hasattr(m, "nx"):
                m.nx, m.nf = w.shape  # HF's transposed linear (GPT-2): weight is in x out
        self._alpha = a.clone()

    @contextlib.contextmanager
    def widths(self, alpha: Tensor | Sequence[float]) -> Iterator[SlimmableNet]:
        """``with net.widths(alpha): y = net(x)`` — the previous widths come back afterwards."""
        previous = self._alpha
        self.set_widths(alpha)
        try:
            yield self
        finally:
            self.set_widths(previous)

    # --- costs ----------------------------------------------------------------------------
    def cost(self, alpha: Tensor | Sequence[float], metric: str = "macs") -> Tensor:
        """Exact absolute cost of ``alpha`` (``dim`` → scalar, ``n x dim`` → ``n``), float64.

        ``metric``: ``macs``, ``flops`` (2 per MAC), ``params``, or ``memory`` (peak activation
        elements at batch 1).
        """
        return self._costs.evaluate(self.space.channels(alpha), normalize_metric(metric))

    def cost_ratio(self, alpha: Tensor | Sequence[float], metric: str = "macs") -> Tensor:
        """Cost relative to the full network, in (0, 1]."""
        metric = normalize_metric(metric)
        if metric not in self._full_cost:
            self._full_cost[metric] = self.cost(self.space.largest(), metric)
        return self.cost(alpha, metric) / self._full_cost[metric]

    # --- export ---------------------------------------------------------------------------
    def export(self, alpha: Tensor | Sequence[float] | None = None) -> nn.Module:
        """The sub-network at ``alpha`` (default: the active one) as a plain copy of the model:
        the same classes and code, with physically smaller parameters and BN statistics."""
        if alpha is None:
            return _materialize(self)
        with self.widths(alpha):
            return _materialize(self)

    def describe(self) -> str:
        """The width space and the notes on what stays at full width."""
        lines = [self.space.describe()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _materialize(net: SlimmableNet) -> nn.Module:
    """A copy of the model with its active slices as dense tensors. Each sliced tensor is copied
    as its slice (through ``deepcopy``'s memo), never whole: the full weights of a wide model
    are not copied only to be cut."""
    memo: dict[int, Any] = {}
    before = net._switch.active
    net._switch.active = True
    try:
        for m in net._sliceable:
            for name in m.__dict__["_pareco_names"]:
                is_param = name in m._parameters
                full = m._parameters.get(name) if is_param else m._buffers.get(name)
                t = getattr(m, name)
                if full is None or t is full:
                    continue
                small = t.detach().clone()
                memo[id(full)] = nn.Parameter(small, full.requires_grad) if is_param else small
            m.__dict__["_pareco_gathered"].clear()  # read, not updated: nothing to write back
    finally:
        net._switch.active = before
    sub = copy.deepcopy(net.module, memo)
    for m in sub.modules():
        if is_sliceable(m):
            m.__dict__["_pareco_cuts"] = {}  # its tensors are the slices already
            to_plain(m)
    sub.train(net.training)
    sub._pareco_example = net._example  # lets pareco.export.save trace it without being told
    return sub
