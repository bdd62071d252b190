"""Slicing where a parameter is read: the first ``k`` channels of a full layer, exactly (no masks).

pareco does not replace a user's layers by its own. It gives each module that owns a sliced
parameter or buffer a class derived from the module's own class in which that attribute is a
*property*: while the slimmable network runs forward, reading ``self.weight`` returns the active
slice of the full tensor. So the module's own ``forward`` runs unchanged — a timm
``BatchNormAct2d``, a ``class MyConv(nn.Conv2d)`` or a functional ``F.conv2d(x, self.weight)`` all
compute the sub-network — while ``state_dict()``, ``parameters()``, optimizers, and any code that
reads the attribute outside forward (BN recalibration, DDP statistics) see the full tensors.

Slicing rather than masking matters: a masked channel still carries its BatchNorm bias into the
next layer; a sliced one does not exist. A dimension is cut to a prefix (a view, so in-place
updates such as BatchNorm's running statistics land in the full buffer) or, after a channel
concatenation, gathered segment by segment; a gathered buffer is written back after forward.

"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

# A dimension's active part: a prefix length, or the indices to gather.
DimSlice = int | Tensor

_CLASS_CACHE: dict[tuple[type, tuple[str, ...]], type] = {}


class SliceSwitch:
    """Shared by the sliceable modules of one network: slices are read only while it is on."""

    def __init__(self) -> None:
        self.active = False


def _sliced_getter(name: str):
    def get(self: nn.Module) -> Tensor | None:
        full = self._parameters.get(name) if name in self._parameters else self._buffers.get(name)
        cuts = self.__dict__["_pareco_cuts"].get(name)
        if full is None or not cuts or not self.__dict__["_pareco_switch"].active:
            return full
        cache = self.__dict__["_pareco_gathered"]
        if name in cache:
            return cache[name][0]
        t = full
        gathered = None
        for dim, cut in cuts:
            if isinstance(cut, int):
                t = t.narrow(dim, 0, cut)
            else:
                t = t.index_select(dim, cut)
                gathered = (dim, cut)
        if gathered is not None and name in self._buffers:  # a copy: write it back after forward
            cache[name] = (t, *gathered)
        return t

    return property(get)


def write_back(module: nn.Module) -> None:
    """Copy gathered buffers (updated in place by forward: BN statistics) into the full ones."""
    cache = module.__dict__["_pareco_gathered"]
    for name, (t, dim, index) in cache.items():
        with torch.no_grad():
            module._buffers[name].index_copy_(dim, index, t)
    cache.clear()


def make_sliceable(module: nn.Module, names: tuple[str, ...], switch: SliceSwitch) -> nn.Module:
    """Give ``module`` a class in which the tensors ``names`` are read through their slices.

    The parameters stay where they are (no copy); :func:`set_cuts` chooses the slices.
    """
    base = module.__dict__.get("_pareco_base", type(module))
    names = tuple(sorted(set(names) | set(module.__dict__.get("_pareco_names", ()))))
    key = (base, names)
    if key not in _CLASS_CACHE:
        attrs: dict[str, Any] = {name: _sliced_getter(name) for name in names}
        _CLASS_CACHE[key] = type(base.__name__, (base,), attrs)
    if "_pareco_base" not in module.__dict__:
        module.__dict__["_pareco_cuts"] = {}
        module.__dict__["_pareco_gathered"] = {}
    module.__dict__["_pareco_switch"] = switch
    module.__dict__["_pareco_base"] = base
    module.__dict__["_pareco_names"] = names
    module.__class__ = _CLASS_CACHE[key]
    return module


def set_cuts(module: nn.Module, cuts: dict[str, list[tuple[int, DimSlice]]]) -> None:
    """Set the active slice of each sliced tensor: ``name → [(dim, prefix length or indices)]``.

    A cut equal to the full size is dropped, so the full network reads the full tensors.
    """
    active = {}
    for name, dims in cuts.items():
        full = module._parameters.get(name) if name in module._parameters else module._buffers[name]
        keep = []
        for dim, cut in dims:
            if isinstance(cut, int) and cut >= full.shape[dim]:
                continue
            keep.append((dim, cut))
        if keep:
            active[name] = keep
    module.__dict__["_pareco_cuts"] = active


def is_sliceable(module: nn.Module) -> bool:
    return "_pareco_base" in module.__dict__


def to_plain(module: nn.Module) -> None:
    """Turn a sliceable module (a copy) into its own class holding dense copies of the slices,
    with its size attributes (``in_channels``, ``num_features``...) made to match."""
    if not is_sliceable(module):
        return
    switch = module.__dict__["_pareco_switch"]
    switch.active, before = True, switch.active
    try:
        dense = {name: getattr(module, name) for name in module.__dict__["_pareco_names"]}
    finally:
        switch.active = before
    base = module.__dict__["_pareco_base"]
    for key in ("_pareco_base", "_pareco_names", "_pareco_cuts", "_pareco_gathered"):
        module.__dict__.pop(key, None)
    module.__dict__.pop("_pareco_switch", None)
    module.__class__ = base
    for name, t in dense.items():
        if t is None:
            continue
        value = t.detach().clone()
        if name in module._parameters:
            module._parameters[name] = nn.Parameter(value, module._parameters[name].requires_grad)
        else:
            module._buffers[name] = value
    _match_sizes(module)


def _match_sizes(m: nn.Module) -> None:
    w = m._parameters.get("weight")
    if isinstance(m, nn.modules.conv._ConvNd) and w is not None:
        m.out_channels = w.shape[0]
        m.in_channels = w.shape[1] * m.groups
    elif isinstance(m, nn.Linear) and w is not None:
        m.out_features, m.in_features = w.shape
    elif isinstance(m, nn.modules.batchnorm._NormBase):
        t = w if w is not None else m._buffers.get("running_mean")
        if t is not None:
            m.num_features = t.shape[0]
    elif isinstance(m, nn.GroupNorm) and w is not None:
        m.num_channels = w.shape[0]
    for attr in ("active_in", "active_out"):
        m.__dict__.pop(attr, None)
